//! The background loop that starts due syncs: polls the database for accounts whose
//! `next_sync_at` has passed (or is woken when one becomes due) and runs a bounded number at once.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::db::now_millis;
use crate::db::sync as book;
use crate::state::AppState;

/// Accounts synced at once by one process.
const PARALLEL_ACCOUNTS: usize = 4;
/// How often the database is asked for due accounts when nothing wakes the loop.
const POLL: Duration = Duration::from_secs(2);

pub fn spawn(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL_ACCOUNTS));
        loop {
            let free = slots.available_permits() as i64;
            if free > 0 {
                let now = now_millis();
                let until = now + state.settings.sync.lease_secs as i64 * 1000;
                let owner = state.sync.owner.clone();
                match state
                    .db
                    .run(move |c| book::claim_due(c, &owner, now, until, free))
                    .await
                {
                    Ok(ids) => {
                        for id in ids {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let state = state.clone();
                            actix_web::rt::spawn(async move {
                                let _permit = permit;
                                match super::run(&state, id, false).await {
                                    Ok(_) | Err(super::SyncError::Busy) => {}
                                    Err(e) => log::error!("sync of mail account {id}: {e}"),
                                }
                            });
                        }
                    }
                    Err(e) => log::error!("looking for due mail accounts: {e}"),
                }
            }
            let _ = tokio::time::timeout(POLL, state.sync.wake.notified()).await;
        }
    });
}

/// Makes an account due now and wakes the loop.
pub async fn sync_soon(state: &AppState, account_id: i64) -> Result<(), crate::db::DbError> {
    state
        .db
        .run(move |c| book::schedule_now(c, account_id))
        .await?;
    state.sync.wake.notify_one();
    Ok(())
}
