//! Writes labels through to the providers: Gmail user labels, Outlook master categories and the
//! messages' `categories`.
//!
//! A label change is made here first, with its rows in `mail_label_outbox` (`db::labels`), and
//! delivered at once by the request that made it ([`deliver`]) or, for renames and deletions and
//! whatever a provider did not take for a while, by the worker started by [`spawn`], with
//! exponential backoff. Rows say what to reconcile; delivery reads the local state when it runs,
//! so the provider ends up with what the user has now, whatever the order rows arrive in.
//!
//! A provider that refuses for good never costs the user a label: the label stays here, the
//! rows are dropped, and the refusal is recorded on the label (`syncError` in the API) until a
//! later delivery for it goes through.
//!
//! Per mailbox: a label's twin is created on first use (Gmail `labels.create`, Outlook
//! `masterCategories`), found by name when one exists already, and remembered in
//! `mail_label_links`. Renaming renames the Gmail label; an Outlook category cannot be renamed,
//! so a new one is made, the messages are moved over to it and the old one is deleted. Deleting
//! deletes the twin (Outlook: after taking the name off the messages, which Outlook leaves).

use std::collections::{BTreeMap, HashMap, HashSet};

use actix_web::web;

use crate::crypto::SecretString;
use crate::db::labels::{self as store, op, DeletePayload, LabelOutboxRow, LabelRow, LinkRow};
use crate::db::WriteTransaction;
use crate::db::{now_millis, DbError};
use crate::providers::labels::resolve as resolve_color;
use crate::providers::{MailProvider, ProviderError, ProviderLabel};
use crate::state::AppState;
use crate::sync::tokens;
use crate::writeback::backoff_ms;

const LOCK_MS: i64 = 300_000;
const BATCH: i64 = 500;
const MAX_BACKOFF_MS: i64 = 3_600_000;

#[derive(Default)]
pub struct LabelWriteback {
    /// Wakes the worker (work was left for it).
    pub wake: tokio::sync::Notify,
}

/// What became of one delivery.
#[derive(Debug, Default)]
pub struct LabelDelivery {
    /// Messages whose label change is still waiting for the provider.
    pub pending: Vec<i64>,
    /// Labels the provider refused (their error is recorded on them).
    pub refused: Vec<i64>,
}

enum Outcome {
    Done,
    Later { reason: String, counts: bool },
    Refused(String),
}

fn outcome(e: &ProviderError, refused: String) -> Outcome {
    match e {
        ProviderError::RateLimited { .. }
        | ProviderError::QuotaExceeded(_)
        | ProviderError::Transient(_)
        | ProviderError::Unauthorized => Outcome::Later {
            reason: e.to_string(),
            counts: true,
        },
        ProviderError::InvalidGrant(_) => Outcome::Later {
            reason: "the mailbox must be linked again".into(),
            counts: false,
        },
        ProviderError::NotFound
        | ProviderError::InvalidClient(_)
        | ProviderError::CursorExpired
        | ProviderError::Permanent(_) => Outcome::Refused(refused),
    }
}

/// The result of one piece of work: its rows, the label to blame, what happened.
struct Settled {
    rows: Vec<i64>,
    label: Option<i64>,
    messages: Vec<i64>,
    outcome: Outcome,
}

/// Sends `rows` (all held by `lock`) to their providers and settles them in the outbox.
pub async fn deliver(
    state: &AppState,
    rows: Vec<LabelOutboxRow>,
    lock: &str,
) -> Result<LabelDelivery, DbError> {
    let _ = lock;
    let mut by_account: BTreeMap<i64, Vec<LabelOutboxRow>> = BTreeMap::new();
    for r in rows {
        by_account.entry(r.account_id).or_default().push(r);
    }
    let mut out = LabelDelivery::default();
    for (account_id, rows) in by_account {
        let settled = deliver_account(state, account_id, &rows).await?;
        settle(state, &rows, settled, &mut out).await?;
    }
    Ok(out)
}

/// What delivery needs to know from here, read once per mailbox.
struct Local {
    labels: HashMap<i64, LabelRow>,
    links: Vec<LinkRow>,
    provider_ids: HashMap<i64, String>,
    attached: HashSet<(i64, i64)>,
}

async fn deliver_account(
    state: &AppState,
    account_id: i64,
    rows: &[LabelOutboxRow],
) -> Result<Vec<Settled>, DbError> {
    let all = |outcome: Outcome| {
        vec![Settled {
            rows: rows.iter().map(|r| r.id).collect(),
            label: None,
            messages: rows.iter().filter_map(|r| r.message_id).collect(),
            outcome,
        }]
    };
    let account = state
        .db
        .run(move |c| crate::db::accounts::get(c, account_id))
        .await?;
    if !state.settings.mail.mirror_labels {
        // Mirroring was turned off after these were recorded.
        return Ok(all(Outcome::Done));
    }
    let Ok(provider) = state.registry.get(&account.provider) else {
        return Ok(all(Outcome::Later {
            reason: "unknown provider".into(),
            counts: false,
        }));
    };
    let provider = provider.as_ref();
    let mut token = match tokens::access_token(state, provider, account_id, false).await {
        Ok(t) => t,
        Err(e) => {
            log::info!("mail account {account_id}: label changes wait for the provider: {e}");
            return Ok(all(Outcome::Later {
                reason: "no usable access token".into(),
                counts: false,
            }));
        }
    };
    let mut catalogue = match provider.list_labels(&token).await {
        Ok(c) => c,
        Err(ProviderError::Unauthorized) => {
            match tokens::access_token(state, provider, account_id, true).await {
                Ok(fresh) => token = fresh,
                Err(_) => {
                    return Ok(all(Outcome::Later {
                        reason: "the access token was refused".into(),
                        counts: true,
                    }))
                }
            }
            match provider.list_labels(&token).await {
                Ok(c) => c,
                Err(e) => return Ok(failed_all(state, provider, rows, &e)),
            }
        }
        Err(e) => return Ok(failed_all(state, provider, rows, &e)),
    };

    let user_id = account.user_id;
    let label_ids: Vec<i64> = rows
        .iter()
        .map(|r| r.label_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let pairs: Vec<(i64, i64)> = rows
        .iter()
        .filter_map(|r| r.message_id.map(|m| (m, r.label_id)))
        .collect();
    let mut local = state
        .db
        .run(move |c| {
            use crate::db::schema::mail_messages;
            use diesel::prelude::*;
            let labels = store::get_many(c, user_id, &label_ids)?
                .into_iter()
                .map(|l| (l.id, l))
                .collect();
            let message_ids: Vec<i64> = pairs.iter().map(|p| p.0).collect();
            let mut provider_ids = HashMap::new();
            for chunk in message_ids.chunks(500) {
                let found: Vec<(i64, String)> = mail_messages::table
                    .filter(mail_messages::id.eq_any(chunk))
                    .filter(mail_messages::account_id.eq(account_id))
                    .select((mail_messages::id, mail_messages::provider_message_id))
                    .load(c)?;
                provider_ids.extend(found);
            }
            Ok(Local {
                labels,
                links: store::links_of_account(c, account_id)?,
                provider_ids,
                attached: store::attached(c, &pairs)?,
            })
        })
        .await?;

    let mut settled = Vec::new();
    let name = provider.display_name();

    // Deletions first: a label deleted and made again under the same name starts afresh.
    for row in rows.iter().filter(|r| r.op == op::DELETE) {
        let payload: Option<DeletePayload> = row
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok());
        let outcome = match payload {
            None => Outcome::Done,
            Some(p) => delete_twin(state, provider, &token, account_id, &catalogue, &p).await,
        };
        settled.push(Settled {
            rows: vec![row.id],
            label: None,
            messages: Vec::new(),
            outcome,
        });
    }

    for row in rows
        .iter()
        .filter(|r| r.op == op::RENAME || r.op == op::RECOLOR)
    {
        let (Some(label), Some(link)) = (
            local.labels.get(&row.label_id).cloned(),
            local
                .links
                .iter()
                .find(|l| l.label_id == row.label_id)
                .cloned(),
        ) else {
            settled.push(Settled {
                rows: vec![row.id],
                label: None,
                messages: Vec::new(),
                outcome: Outcome::Done,
            });
            continue;
        };
        let result = if row.op == op::RENAME {
            rename_twin(state, provider, &token, &mut catalogue, &label, &link).await
        } else {
            recolor_twin(provider, &token, &catalogue, &label, &link).await
        };
        let outcome = match result {
            Ok(new_link) => {
                if let Some(l) = new_link {
                    local.links.retain(|x| x.label_id != l.label_id);
                    local.links.push(l.clone());
                    state.db.run(move |c| store::set_link(c, &l)).await?;
                }
                Outcome::Done
            }
            Err(e) => {
                log_refusal(account_id, name, &row.op, &e);
                let what = if row.op == op::RENAME {
                    "rename the label"
                } else {
                    "change the label's colour"
                };
                outcome(&e, format!("{name} refused to {what}"))
            }
        };
        settled.push(Settled {
            rows: vec![row.id],
            label: Some(row.label_id),
            messages: Vec::new(),
            outcome,
        });
    }

    // Messages, one label at a time.
    let mut by_label: BTreeMap<i64, Vec<&LabelOutboxRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.op == op::MESSAGE) {
        by_label.entry(r.label_id).or_default().push(r);
    }
    for (label_id, label_rows) in by_label {
        let row_ids: Vec<i64> = label_rows.iter().map(|r| r.id).collect();
        let Some(label) = local.labels.get(&label_id).cloned() else {
            // Deleted since: its delete row takes care of the provider.
            settled.push(Settled {
                rows: row_ids,
                label: None,
                messages: Vec::new(),
                outcome: Outcome::Done,
            });
            continue;
        };
        let mut add: Vec<(i64, String)> = Vec::new();
        let mut remove: Vec<(i64, String)> = Vec::new();
        let mut seen = HashSet::new();
        for r in &label_rows {
            let Some(m) = r.message_id else { continue };
            if !seen.insert(m) {
                continue;
            }
            let Some(pid) = local.provider_ids.get(&m).cloned() else {
                continue;
            };
            if local.attached.contains(&(m, label_id)) {
                add.push((m, pid));
            } else {
                remove.push((m, pid));
            }
        }
        let messages: Vec<i64> = label_rows.iter().filter_map(|r| r.message_id).collect();
        let link = local.links.iter().find(|l| l.label_id == label_id).cloned();
        let twin = match ensure_twin(
            provider,
            &token,
            &mut catalogue,
            &label,
            link.as_ref(),
            !add.is_empty(),
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                log_refusal(account_id, name, "create", &e);
                settled.push(Settled {
                    rows: row_ids,
                    label: Some(label_id),
                    messages,
                    outcome: outcome(&e, format!("{name} refused to create the label")),
                });
                continue;
            }
        };
        let Some(twin) = twin else {
            // Only removals, and the provider has no such label: nothing to take off.
            settled.push(Settled {
                rows: row_ids,
                label: Some(label_id),
                messages,
                outcome: Outcome::Done,
            });
            continue;
        };
        let new_link = LinkRow {
            label_id,
            account_id,
            provider_label_id: twin.id.clone(),
            provider_name: twin.name.clone(),
        };
        if link.as_ref().is_none_or(|l| {
            l.provider_label_id != new_link.provider_label_id
                || l.provider_name != new_link.provider_name
        }) {
            let l = new_link.clone();
            state.db.run(move |c| store::set_link(c, &l)).await?;
            local.links.retain(|x| x.label_id != label_id);
            local.links.push(new_link);
        }
        let mut result = Ok(());
        for (list, adding) in [(&add, true), (&remove, false)] {
            if result.is_err() {
                break;
            }
            let ids: Vec<String> = list.iter().map(|(_, p)| p.clone()).collect();
            result = relabel_all(provider, &token, &ids, &twin, adding).await;
        }
        let outcome = match result {
            Ok(()) => Outcome::Done,
            Err(e) => {
                log_refusal(account_id, name, "label messages", &e);
                outcome(&e, format!("{name} refused to label the message"))
            }
        };
        settled.push(Settled {
            rows: row_ids,
            label: Some(label_id),
            messages,
            outcome,
        });
    }
    Ok(settled)
}

fn failed_all(
    state: &AppState,
    provider: &dyn MailProvider,
    rows: &[LabelOutboxRow],
    e: &ProviderError,
) -> Vec<Settled> {
    state.metrics.provider_error(provider.id(), e.kind());
    log::warn!(
        "{}: listing the labels for {} label change(s) failed: {e}",
        provider.display_name(),
        rows.len()
    );
    let mut by_label: BTreeMap<i64, Vec<&LabelOutboxRow>> = BTreeMap::new();
    for r in rows {
        by_label.entry(r.label_id).or_default().push(r);
    }
    by_label
        .into_iter()
        .map(|(label, rs)| Settled {
            rows: rs.iter().map(|r| r.id).collect(),
            label: Some(label),
            messages: rs.iter().filter_map(|r| r.message_id).collect(),
            outcome: outcome(
                e,
                format!("{} refused to list its labels", provider.display_name()),
            ),
        })
        .collect()
}

fn log_refusal(account_id: i64, provider: &str, what: &str, e: &ProviderError) {
    log::warn!("mail account {account_id}: {provider} label work ({what}) failed: {e}");
}

/// The provider label for `label`: its twin when it still exists, else one of the same name,
/// else (when `create`) a new one. `None` when there is none and none was to be made.
async fn ensure_twin(
    provider: &dyn MailProvider,
    token: &SecretString,
    catalogue: &mut Vec<ProviderLabel>,
    label: &LabelRow,
    link: Option<&LinkRow>,
    create: bool,
) -> Result<Option<ProviderLabel>, ProviderError> {
    let by_id = link
        .filter(|l| !l.provider_label_id.is_empty())
        .and_then(|l| catalogue.iter().find(|c| c.id == l.provider_label_id));
    // Outlook messages carry the name: a twin is only good while its name is the label's.
    let good = by_id.filter(|c| provider.renames_labels() || same_name(&c.name, &label.name));
    if let Some(found) = good {
        return Ok(Some(found.clone()));
    }
    if let Some(found) = catalogue.iter().find(|c| same_name(&c.name, &label.name)) {
        return Ok(Some(found.clone()));
    }
    if !create {
        return Ok(None);
    }
    let color = label.color.as_deref().and_then(resolve_color);
    match provider
        .create_label(token, &label.name, color.as_ref())
        .await
    {
        Ok(made) => {
            catalogue.push(made.clone());
            Ok(Some(made))
        }
        // Made by someone else meanwhile (a conflict): take that one.
        Err(ProviderError::Permanent(why)) => {
            let fresh = provider.list_labels(token).await?;
            *catalogue = fresh;
            catalogue
                .iter()
                .find(|c| same_name(&c.name, &label.name))
                .cloned()
                .map(Some)
                .ok_or(ProviderError::Permanent(why))
        }
        Err(e) => Err(e),
    }
}

fn same_name(a: &str, b: &str) -> bool {
    store::name_key(a) == store::name_key(b)
}

/// Adds or removes `twin` on messages, a batch at a time; a message gone at the provider is
/// skipped (one batch with such a message is retried message by message).
async fn relabel_all(
    provider: &dyn MailProvider,
    token: &SecretString,
    ids: &[String],
    twin: &ProviderLabel,
    adding: bool,
) -> Result<(), ProviderError> {
    let one = std::slice::from_ref(twin);
    let (add, remove): (&[ProviderLabel], &[ProviderLabel]) =
        if adding { (one, &[]) } else { (&[], one) };
    for chunk in ids.chunks(provider.modify_batch_size().max(1)) {
        match provider.relabel(token, chunk, add, remove).await {
            Ok(()) => {}
            Err(ProviderError::NotFound) if chunk.len() > 1 => {
                for id in chunk {
                    match provider
                        .relabel(token, std::slice::from_ref(id), add, remove)
                        .await
                    {
                        Ok(()) | Err(ProviderError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(ProviderError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn delete_twin(
    state: &AppState,
    provider: &dyn MailProvider,
    token: &SecretString,
    account_id: i64,
    catalogue: &[ProviderLabel],
    p: &DeletePayload,
) -> Outcome {
    let name = provider.display_name();
    let twin = catalogue
        .iter()
        .find(|c| !p.provider_label_id.is_empty() && c.id == p.provider_label_id)
        .or_else(|| {
            // Outlook twins are known by name; Gmail ones by id only.
            (!provider.labels_are_ids())
                .then(|| {
                    catalogue
                        .iter()
                        .find(|c| same_name(&c.name, &p.provider_name))
                })
                .flatten()
        })
        .cloned();
    let result = async {
        if !provider.labels_are_ids() {
            // Outlook leaves a deleted category's name on messages: take it off first.
            let name_only = ProviderLabel {
                id: String::new(),
                name: p.provider_name.clone(),
            };
            relabel_all(provider, token, &p.messages, &name_only, false).await?;
        }
        match &twin {
            Some(t) => provider.delete_label(token, t).await,
            None => Ok(()),
        }
    }
    .await;
    match result {
        Ok(()) => {
            if provider.labels_are_ids() {
                // Gmail labels are folders here too: that folder is gone.
                let folder = format!("user:{}", p.provider_label_id);
                if let Err(e) = state
                    .db
                    .run(move |c| {
                        use crate::db::schema::mail_folders;
                        use diesel::prelude::*;
                        diesel::delete(
                            mail_folders::table
                                .filter(mail_folders::account_id.eq(account_id))
                                .filter(mail_folders::folder.eq(folder)),
                        )
                        .execute(c)?;
                        Ok(())
                    })
                    .await
                {
                    log::warn!("mail account {account_id}: forgetting a deleted label's folder failed: {e}");
                }
            }
            Outcome::Done
        }
        Err(e) => {
            log_refusal(account_id, name, "delete", &e);
            outcome(&e, format!("{name} refused to delete the label"))
        }
    }
}

/// Gmail renames in place; Outlook gets a new category, the messages moved to it, the old one
/// deleted. Answers the new twin when it changed.
async fn rename_twin(
    state: &AppState,
    provider: &dyn MailProvider,
    token: &SecretString,
    catalogue: &mut Vec<ProviderLabel>,
    label: &LabelRow,
    link: &LinkRow,
) -> Result<Option<LinkRow>, ProviderError> {
    if link.provider_name == label.name {
        return Ok(None);
    }
    let old = catalogue
        .iter()
        .find(|c| {
            (!link.provider_label_id.is_empty() && c.id == link.provider_label_id)
                || (!provider.labels_are_ids() && same_name(&c.name, &link.provider_name))
        })
        .cloned();
    if provider.renames_labels() {
        let Some(old) = old else {
            // Gone at the provider: the next use makes a new one.
            return Ok(None);
        };
        let renamed = provider
            .update_label(token, &old, Some(&label.name), None)
            .await?;
        return Ok(Some(LinkRow {
            label_id: label.id,
            account_id: link.account_id,
            provider_label_id: renamed.id,
            provider_name: renamed.name,
        }));
    }
    let new = ensure_twin(provider, token, catalogue, label, None, true)
        .await?
        .ok_or_else(|| ProviderError::Permanent("the new category was not made".into()))?;
    let (account_id, label_id) = (link.account_id, label.id);
    let messages = state
        .db
        .run(move |c| store::provider_messages_with(c, account_id, label_id))
        .await
        .map_err(|e| ProviderError::Transient(format!("reading the label's messages: {e}")))?;
    let old_name = ProviderLabel {
        id: String::new(),
        name: link.provider_name.clone(),
    };
    for chunk in messages.chunks(provider.modify_batch_size().max(1)) {
        match provider
            .relabel(
                token,
                chunk,
                std::slice::from_ref(&new),
                std::slice::from_ref(&old_name),
            )
            .await
        {
            Ok(()) | Err(ProviderError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(old) = old.filter(|o| o.id != new.id) {
        provider.delete_label(token, &old).await?;
        catalogue.retain(|c| c.id != old.id);
    }
    Ok(Some(LinkRow {
        label_id: label.id,
        account_id: link.account_id,
        provider_label_id: new.id,
        provider_name: new.name,
    }))
}

async fn recolor_twin(
    provider: &dyn MailProvider,
    token: &SecretString,
    catalogue: &[ProviderLabel],
    label: &LabelRow,
    link: &LinkRow,
) -> Result<Option<LinkRow>, ProviderError> {
    let twin = catalogue.iter().find(|c| {
        (!link.provider_label_id.is_empty() && c.id == link.provider_label_id)
            || (!provider.labels_are_ids() && same_name(&c.name, &link.provider_name))
    });
    let Some(twin) = twin else {
        return Ok(None);
    };
    let color = label.color.as_deref().and_then(resolve_color);
    provider
        .update_label(token, twin, None, Some(color.as_ref()))
        .await?;
    Ok(None)
}

/// Records what became of the rows: done ones go, later ones wait (given up as refused after
/// `mail.outbox_max_attempts`), refused ones go and leave their error on the label.
async fn settle(
    state: &AppState,
    rows: &[LabelOutboxRow],
    settled: Vec<Settled>,
    out: &mut LabelDelivery,
) -> Result<(), DbError> {
    let now = now_millis();
    let attempts: HashMap<i64, i32> = rows.iter().map(|r| (r.id, r.attempts)).collect();
    let max_attempts = state.settings.mail.outbox_max_attempts as i32;
    let mut done: Vec<i64> = Vec::new();
    let mut cleared: Vec<i64> = Vec::new();
    let mut errors: Vec<(i64, String)> = Vec::new();
    let mut later: Vec<(Vec<i64>, i64, String, bool)> = Vec::new();
    for s in settled {
        match s.outcome {
            Outcome::Done => {
                done.extend(&s.rows);
                cleared.extend(s.label);
            }
            Outcome::Refused(why) => {
                done.extend(&s.rows);
                if let Some(l) = s.label {
                    errors.push((l, why));
                    out.refused.push(l);
                }
            }
            Outcome::Later { reason, counts } => {
                let tried = s
                    .rows
                    .iter()
                    .filter_map(|r| attempts.get(r))
                    .max()
                    .copied()
                    .unwrap_or(0)
                    + i32::from(counts);
                if counts && tried >= max_attempts {
                    log::warn!("label work given up after {tried} attempts: {reason}");
                    done.extend(&s.rows);
                    if let Some(l) = s.label {
                        errors.push((l, format!("the provider kept failing ({reason})")));
                        out.refused.push(l);
                    }
                    continue;
                }
                out.pending.extend(&s.messages);
                let next = (now + backoff_ms(state.settings.mail.outbox_retry_secs, tried.max(1)))
                    .min(now + MAX_BACKOFF_MS);
                later.push((s.rows, next, reason, counts));
            }
        }
    }
    out.pending.sort_unstable();
    out.pending.dedup();
    state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                store::complete(c, &done)?;
                for (ids, next, reason, counts) in &later {
                    store::postpone(c, ids, *next, reason, *counts, now)?;
                }
                let failed: HashSet<i64> = errors.iter().map(|e| e.0).collect();
                cleared.retain(|l| !failed.contains(l));
                store::clear_errors(c, &cleared)?;
                for (label, why) in &errors {
                    store::set_error(c, *label, Some(why), now)?;
                }
                Ok(())
            })
        })
        .await
}

/// Starts the worker that delivers label work left for later.
pub fn spawn(state: web::Data<AppState>) {
    crate::writeback::spawn_queue(
        state,
        "label outbox",
        |s| &s.labels.wake,
        |c, lock, now| store::claim_due(c, lock, now, now + LOCK_MS, BATCH),
        |state, rows, lock| async move {
            let n = rows.len();
            deliver(&state, rows, &lock)
                .await
                .map(|d| {
                    format!(
                        "{n} row(s): {} message(s) pending, {} label(s) refused",
                        d.pending.len(),
                        d.refused.len()
                    )
                })
                .map_err(|e| e.to_string())
        },
    );
}
