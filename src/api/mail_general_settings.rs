//! `mailGeneralSettings:get` / `update` (admin only): the sync interval, the first sync's window,
//! the attachment size limit and the mass-mailing rate per account. Stored in the database (NULL
//! = the configuration's default) and read through [`effective`], so the scheduler, sync, the
//! attachment checks and the mass-mailing worker use a change from the next time they look: at
//! once in the process that took the update, within [`CACHE_TTL`] in other replicas.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{data, ActionCtx};
use crate::config::{Settings, MAX_MASS_RATE_PER_MINUTE};
use crate::db::general_settings::{self as store, GeneralSettingsRow};
use crate::db::now_millis;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a replica trusts its copy of the settings before reading them again.
pub const CACHE_TTL: Duration = Duration::from_secs(3);

/// Bounds of what an admin can set.
const SYNC_INTERVAL_SECS: (i64, i64) = (10, 7 * 86_400);
const INITIAL_WINDOW_DAYS: (i64, i64) = (1, 3650);
const MAX_ATTACHMENT_BYTES: (i64, i64) = (1024, 150 << 20);

/// The settings in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub sync_interval_secs: u64,
    pub initial_window_days: u64,
    pub max_attachment_bytes: u64,
    /// Messages per minute per account for mass mailing.
    pub mass_rate_per_minute: u64,
}

impl Effective {
    fn of(row: &GeneralSettingsRow, s: &Settings) -> Effective {
        let pos = |v: Option<i64>, d: u64| v.filter(|n| *n > 0).map(|n| n as u64).unwrap_or(d);
        Effective {
            sync_interval_secs: pos(row.sync_interval_secs, s.sync.interval_secs),
            initial_window_days: pos(row.initial_window_days, s.sync.initial_window_days),
            max_attachment_bytes: pos(row.max_attachment_bytes, s.mail.max_attachment_bytes),
            mass_rate_per_minute: pos(row.mass_rate_per_minute, s.mail.mass_rate_per_minute),
        }
    }
}

/// This process's copy of the row.
#[derive(Default)]
pub struct GeneralCache {
    inner: Mutex<Option<(Instant, GeneralSettingsRow)>>,
}

impl GeneralCache {
    fn fresh(&self) -> Option<GeneralSettingsRow> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, row)| row.clone())
    }

    fn any(&self) -> Option<GeneralSettingsRow> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|(_, row)| row.clone())
    }

    fn put(&self, row: GeneralSettingsRow) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), row));
    }
}

async fn row(state: &AppState) -> GeneralSettingsRow {
    if let Some(row) = state.general.fresh() {
        return row;
    }
    match state.db.run(store::get).await {
        Ok(row) => {
            state.general.put(row.clone());
            row
        }
        Err(e) => {
            // The last known values (or the configuration's) keep the workers going.
            log::warn!("reading the general settings failed: {e}");
            state.general.any().unwrap_or_default()
        }
    }
}

/// The settings in force now.
pub async fn effective(state: &AppState) -> Effective {
    Effective::of(&row(state).await, &state.settings)
}

fn view(row: &GeneralSettingsRow, s: &Settings) -> Value {
    let e = Effective::of(row, s);
    json!({
        "syncIntervalSecs": e.sync_interval_secs,
        "initialWindowDays": e.initial_window_days,
        "maxAttachmentBytes": e.max_attachment_bytes,
        "massRatePerMinute": e.mass_rate_per_minute,
        "defaults": {
            "syncIntervalSecs": s.sync.interval_secs,
            "initialWindowDays": s.sync.initial_window_days,
            "maxAttachmentBytes": s.mail.max_attachment_bytes,
            "massRatePerMinute": s.mail.mass_rate_per_minute,
        },
        "updatedAt": (row.updated_at > 0).then(|| super::iso(row.updated_at)).flatten(),
    })
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let row = state.db.run(store::get).await?;
    state.general.put(row.clone());
    Ok(data(view(&row, &state.settings)))
}

/// `null` puts a setting back to the configuration's default. Read-only fields of `get` are
/// accepted and ignored so a page may send back what it read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Values {
    #[serde(default, with = "double_option")]
    sync_interval_secs: Option<Option<Value>>,
    #[serde(default, with = "double_option")]
    initial_window_days: Option<Option<Value>>,
    #[serde(default, with = "double_option")]
    max_attachment_bytes: Option<Option<Value>>,
    #[serde(default, with = "double_option")]
    mass_rate_per_minute: Option<Option<Value>>,
    #[serde(default, rename = "defaults")]
    _defaults: Option<Value>,
    #[serde(default, rename = "updatedAt")]
    _updated_at: Option<Value>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A whole number within `bounds`, or `null` (the default).
fn setting(
    field: &str,
    v: Option<Option<Value>>,
    bounds: (i64, i64),
) -> ApiResult<Option<Option<i64>>> {
    let Some(v) = v else { return Ok(None) };
    let Some(v) = v else { return Ok(Some(None)) };
    let n = match &v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= bounds.0 && n <= bounds.1 => Ok(Some(Some(n))),
        _ => Err(ApiError::invalid(format!(
            "{field} must be a whole number from {} to {} (or null for the default), got {v}",
            bounds.0, bounds.1
        ))),
    }
}

pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    if !ctx.values.is_object() {
        return Err(ApiError::invalid("values must be a JSON object"));
    }
    let v: Values = ctx.values_as()?;
    // Everything is checked before anything is written.
    let interval = setting("syncIntervalSecs", v.sync_interval_secs, SYNC_INTERVAL_SECS)?;
    let window = setting(
        "initialWindowDays",
        v.initial_window_days,
        INITIAL_WINDOW_DAYS,
    )?;
    let attach = setting(
        "maxAttachmentBytes",
        v.max_attachment_bytes,
        MAX_ATTACHMENT_BYTES,
    )?;
    let rate = setting(
        "massRatePerMinute",
        v.mass_rate_per_minute,
        (1, MAX_MASS_RATE_PER_MINUTE as i64),
    )?;
    let row = state
        .db
        .run(move |c| {
            let mut row = store::get(c)?;
            if let Some(x) = interval {
                row.sync_interval_secs = x;
            }
            if let Some(x) = window {
                row.initial_window_days = x;
            }
            if let Some(x) = attach {
                row.max_attachment_bytes = x;
            }
            if let Some(x) = rate {
                row.mass_rate_per_minute = x;
            }
            row.updated_at = now_millis();
            store::save(c, &row)?;
            Ok(row)
        })
        .await?;
    state.general.put(row.clone());
    // A shorter interval or a higher rate applies to work waiting now, not only to the next.
    state.sync.wake.notify_one();
    state.mass.wake.notify_one();
    Ok(data(view(&row, &state.settings)))
}
