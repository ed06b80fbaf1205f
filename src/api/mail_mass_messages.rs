//! `mailMassMessages`: one separate message per recipient, the template rendered for each.
//!
//! `create` checks everything before it stores anything: the account is the user's (404), the
//! sender one of its addresses, the recipients parsed one by one (invalid and repeated addresses
//! are reported in `rejected` and never sent), every valid recipient's message rendered once so an
//! unknown variable answers 400 naming it, the attachments the user's and within the limits. The
//! job and every recipient then go to the database in one transaction and the worker
//! (`crate::mass`) sends them. `get`/`list` report progress; `pause`, `resume` and `cancel` change
//! the job's state, which the worker reads before every send; `recipients` lists the recipients.
//! Another user's job answers 404 on every action.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::mail_aliases::{account_of, resolve_from};
use super::mail_uploads::open_upload;
use super::{data, iso, list as list_response, ActionCtx};
use crate::auth::Identity;
use crate::config::MAX_MASS_RATE_PER_MINUTE;
use crate::db::compose as compose_store;
use crate::db::mass::{
    self as store, job_status as js, recipient_status as rs, Counts, JobRow, NewJob, NewRecipient,
    RecipientRow,
};
use crate::db::{now_millis, DbError};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::mass::render::{render_for, JobTemplate, RecipientInput};
use crate::send::address::{parse_field, EmailAddress, Mailbox};
use crate::send::mime::generate_message_id;
use crate::send::template::UserValues;
use crate::state::AppState;

/// Failures listed in a job (the rest are in `recipients`).
const FAILURES_SHOWN: i64 = 100;
/// Rejected recipients kept with a job.
const REJECTED_KEPT: usize = 1000;

fn job_not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Mass mailing"),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateValues {
    account_id: Value,
    #[serde(default)]
    from: Option<Value>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    template_id: Option<Value>,
    #[serde(default)]
    recipients: Option<Vec<Value>>,
    #[serde(default)]
    records: Option<Vec<Value>>,
    #[serde(default)]
    email_field: Option<String>,
    #[serde(default)]
    name_field: Option<String>,
    #[serde(default)]
    attachments: Option<Vec<Value>>,
    #[serde(default)]
    rate: Option<Value>,
}

fn record_id(field: &str, v: &Value) -> ApiResult<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
    .ok_or_else(|| ApiError::invalid(format!("{field} must be a record id, got {v}")))
}

/// A recipient that passed the checks.
struct Valid {
    position: i64,
    email: String,
    name: Option<String>,
    variables: Option<Map<String, Value>>,
}

/// A recipient as given, before its address is checked.
struct Given {
    email: Option<String>,
    name: Option<String>,
    variables: Option<Map<String, Value>>,
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `recipients` items: `{email, name?, variables?}`; `records` items: a NocoBase record whose
/// every column is a variable, the address in `emailField`, the name in `nameField`.
fn given(values: &CreateValues) -> ApiResult<Vec<Given>> {
    match (&values.recipients, &values.records) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "Send either recipients or records (with emailField), not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "recipients is required (or records with emailField)",
        )),
        (Some(list), None) => list
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let Value::Object(m) = item else {
                    return Err(ApiError::invalid(format!(
                        "recipients[{i}] must be an object {{email, name?, variables?}}"
                    )));
                };
                if let Some(k) = m
                    .keys()
                    .find(|k| !matches!(k.as_str(), "email" | "name" | "variables"))
                {
                    return Err(ApiError::invalid(format!(
                        "recipients[{i}]: unknown field {k:?} (expected email, name, variables)"
                    )));
                }
                let variables = match m.get("variables") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(v)) => Some(v.clone()),
                    Some(_) => {
                        return Err(ApiError::invalid(format!(
                            "recipients[{i}].variables must be an object"
                        )))
                    }
                };
                Ok(Given {
                    email: m.get("email").and_then(|e| e.as_str()).map(str::to_string),
                    name: text_of(m.get("name")),
                    variables,
                })
            })
            .collect(),
        (None, Some(records)) => {
            let field = values
                .email_field
                .as_deref()
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "emailField is required with records: the column holding the address",
                    )
                })?;
            records
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let Value::Object(m) = item else {
                        return Err(ApiError::invalid(format!("records[{i}] must be an object")));
                    };
                    Ok(Given {
                        email: m.get(field).and_then(|e| e.as_str()).map(str::to_string),
                        name: values.name_field.as_deref().and_then(|n| text_of(m.get(n))),
                        variables: Some(m.clone()),
                    })
                })
                .collect()
        }
    }
}

/// Splits the recipients into the valid ones and the rejected (invalid, repeated).
fn check_recipients(list: Vec<Given>) -> (Vec<Valid>, Vec<Value>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut valid = Vec::with_capacity(list.len());
    let mut rejected = Vec::new();
    for (i, g) in list.into_iter().enumerate() {
        let raw = g.email.clone().unwrap_or_default();
        let address = match g.email.as_deref().map(str::trim) {
            None | Some("") => Err("no email address".to_string()),
            Some(e) => EmailAddress::parse(e).map_err(|err| err.to_string()),
        };
        match address {
            Err(reason) => rejected.push(json!({"index": i, "email": raw, "reason": reason})),
            Ok(a) => match seen.get(&a.key()) {
                Some(first) => rejected.push(json!({
                    "index": i,
                    "email": raw,
                    "reason": format!("duplicate of recipient {first}"),
                })),
                None => {
                    seen.insert(a.key(), i);
                    valid.push(Valid {
                        position: i as i64,
                        email: a.as_str().to_string(),
                        name: g.name,
                        variables: g.variables,
                    });
                }
            },
        }
    }
    (valid, rejected)
}

fn job_json(job: &JobRow, counts: Counts, failures: &[RecipientRow], account_rate: u64) -> Value {
    let rate = job
        .rate
        .map(|r| (r.max(1) as u64).min(account_rate))
        .unwrap_or(account_rate);
    let rejected: Value = serde_json::from_str(&job.rejected).unwrap_or_else(|_| json!([]));
    let from = match &job.from_name {
        Some(n) if !n.is_empty() => format!("{n} <{}>", job.from_address),
        _ => job.from_address.clone(),
    };
    json!({
        "id": job.id,
        "accountId": job.account_id,
        "from": from,
        "subject": job.subject,
        "status": job.status,
        "pauseReason": job.pause_reason,
        "total": job.total,
        "queued": counts.queued,
        "sending": counts.sending,
        "sent": counts.sent,
        "failed": counts.failed,
        "rate": rate,
        "createdAt": iso(job.created_at),
        "startedAt": job.started_at.and_then(iso),
        "finishedAt": job.finished_at.and_then(iso),
        "rejected": rejected,
        "failures": failures
            .iter()
            .map(|f| json!({"email": f.email, "reason": f.error}))
            .collect::<Vec<_>>(),
    })
}

async fn answer(state: &AppState, job: JobRow) -> ApiResult<Value> {
    let id = job.id;
    let (counts, failures) = state
        .db
        .run(move |c| {
            let counts = store::counts(c, &[id])?.remove(&id).unwrap_or_default();
            let failures = store::failures(c, id, FAILURES_SHOWN)?;
            Ok((counts, failures))
        })
        .await?;
    let rate = crate::api::mail_general_settings::effective(state)
        .await
        .mass_rate_per_minute;
    Ok(job_json(&job, counts, &failures, rate))
}

/// `POST /api/mailMassMessages:create`: read here (not by the dispatcher) with its own body limit,
/// since a recipient list is larger than other requests.
pub async fn create_action(
    state: &AppState,
    identity: Identity,
    params: HashMap<String, String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let limit = state
        .settings
        .mail
        .mass_max_body_bytes
        .max(state.settings.server.max_json_bytes);
    let body = super::read_body(payload, limit).await?;
    let ctx = ActionCtx {
        identity,
        params,
        values: super::parse_values(&body)?,
    };
    create(state, &ctx).await
}

pub async fn create(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let user_id = ctx.identity.user_id;
    if !ctx.values.is_object() {
        return Err(ApiError::invalid("values must be a JSON object"));
    }
    let values: CreateValues = ctx.values_as()?;
    let account_id = record_id("accountId", &values.account_id)?;
    let account = account_of(state, user_id, account_id).await?;
    let provider = state.registry.get(&account.provider)?;

    let max = state.settings.mail.mass_max_recipients;
    let given = given(&values)?;
    if given.is_empty() {
        return Err(ApiError::invalid("The recipient list is empty"));
    }
    if given.len() > max {
        return Err(ApiError::invalid(format!(
            "{} recipients is more than the {max} one mass mailing takes (mail.mass_max_recipients)",
            given.len()
        )));
    }
    let rate = match &values.rate {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|r| *r >= 1 && *r <= MAX_MASS_RATE_PER_MINUTE as i64)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "rate must be a whole number of messages per minute from 1 to {MAX_MASS_RATE_PER_MINUTE}, got {v}"
                    ))
                })?,
        ),
    };

    // The message: given, or the template's where not given.
    let mut subject = values.subject.clone();
    let mut html = values.html.clone().filter(|h| !h.is_empty());
    let mut text = values.text.clone().filter(|t| !t.is_empty());
    if let Some(tid) = &values.template_id {
        let tid = record_id("templateId", tid)?;
        let t = state
            .db
            .run(move |c| compose_store::get_visible_template(c, user_id, tid))
            .await
            .map_err(|e| match e {
                DbError::NotFound => ApiError::not_found("Template"),
                other => other.into(),
            })?;
        if subject.is_none() {
            subject = Some(t.subject);
        }
        if html.is_none() && text.is_none() {
            html = Some(t.html).filter(|h| !h.is_empty());
            text = t.text_body.filter(|t| !t.is_empty());
        }
    }
    let subject = subject
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("subject is required (or a templateId with one)"))?;
    if subject.contains(['\r', '\n']) {
        return Err(ApiError::invalid("subject must be one line"));
    }
    if html.is_none() && text.is_none() {
        return Err(ApiError::invalid(
            "Give the message as html or text (or a templateId)",
        ));
    }

    let requested_from = match &values.from {
        None | Some(Value::Null) => None,
        Some(v) => {
            let mut list =
                parse_field("from", Some(v)).map_err(|e| ApiError::invalid(e.0.join("; ")))?;
            if list.len() != 1 {
                return Err(ApiError::invalid("from must be one address"));
            }
            list.pop()
        }
    };
    let from: Mailbox = resolve_from(state, &account, requested_from.as_ref(), None).await?;

    // Attachments: the user's uploads, within the limits, read once to size the message.
    let settings = crate::api::mail_general_settings::effective(state).await;
    let mut upload_ids = Vec::new();
    let mut attachment_bytes: u64 = 0;
    for (i, v) in values.attachments.iter().flatten().enumerate() {
        let id = record_id(&format!("attachments[{i}]"), v)?;
        let (row, _) = open_upload(state, user_id, id)
            .await
            .map_err(|e| match e.code {
                ErrorCode::NotFound => {
                    ApiError::not_found(&format!("attachments[{i}]: upload {id}"))
                }
                _ => e,
            })?;
        let size = row.size.max(0) as u64;
        if size > settings.max_attachment_bytes {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "attachments[{i}] ({}) is {size} bytes, more than the {} bytes allowed (maxAttachmentBytes)",
                    row.filename, settings.max_attachment_bytes
                ),
            ));
        }
        attachment_bytes += size;
        upload_ids.push(id);
    }
    // Base64 makes files a third larger on the wire.
    let limit = provider.max_message_bytes();
    if attachment_bytes * 4 / 3 > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "The attachments make each message larger than the {limit} bytes {} takes",
                provider.display_name()
            ),
        ));
    }

    let (valid, rejected) = check_recipients(given);
    if valid.is_empty() {
        let first: Vec<String> = rejected
            .iter()
            .take(5)
            .map(|r| {
                format!(
                    "[{}] {}: {}",
                    r["index"],
                    r["email"],
                    r["reason"].as_str().unwrap_or("")
                )
            })
            .collect();
        return Err(ApiError::invalid(format!(
            "None of the {} recipients has a valid, distinct address: {}",
            rejected.len(),
            first.join("; ")
        )));
    }

    // Every valid recipient's message renders without unknown variables, or nothing is made.
    let template = JobTemplate {
        user: UserValues {
            nickname: from.name.clone(),
            email: Some(from.address.to_unicode()),
        },
        from: from.clone(),
        subject: subject.clone(),
        html: html.clone(),
        text: text.clone(),
    };
    let mut missing: Vec<String> = Vec::new();
    let mut first_missing: Option<(i64, String)> = None;
    for v in &valid {
        let r = render_for(
            &template,
            &RecipientInput {
                email: &v.email,
                name: v.name.as_deref(),
                variables: v.variables.as_ref(),
            },
        );
        if !r.missing.is_empty() && first_missing.is_none() {
            first_missing = Some((v.position, v.email.clone()));
        }
        for m in r.missing {
            if !missing.contains(&m) {
                missing.push(m);
            }
        }
    }
    if let Some((position, email)) = first_missing {
        return Err(ApiError::invalid(format!(
            "Unknown template variables: {} (first for recipient {position}, {email}); give them in each recipient's variables or record",
            missing
                .iter()
                .map(|m| format!("{{{{{m}}}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }

    let now = now_millis();
    let kept: Vec<Value> = rejected.iter().take(REJECTED_KEPT).cloned().collect();
    let job = NewJob {
        user_id,
        account_id: account.id,
        from_name: from.name.clone(),
        from_address: from.address.as_str().to_string(),
        subject,
        html,
        text_body: text,
        attachments: json!(upload_ids).to_string(),
        rate,
        status: js::RUNNING.into(),
        total: valid.len() as i64,
        rejected: Value::Array(kept).to_string(),
        created_at: now,
        updated_at: now,
    };
    let rows: Vec<NewRecipient> = valid
        .into_iter()
        .map(|v| NewRecipient {
            job_id: 0,
            account_id: account.id,
            position: v.position,
            message_id: generate_message_id(&from.address),
            email: v.email,
            name: v.name,
            variables: v.variables.map(|m| Value::Object(m).to_string()),
            status: rs::QUEUED.into(),
            updated_at: now,
        })
        .collect();
    let row = state
        .db
        .run(move |c| store::create_job(c, &job, rows))
        .await?;
    log::info!(
        "mass mailing {} created: {} recipients ({} rejected) from mail account {}",
        row.id,
        row.total,
        rejected.len(),
        row.account_id
    );
    state.mass.wake.notify_one();
    Ok(data(answer(state, row).await?))
}

async fn own_job(state: &AppState, ctx: &ActionCtx) -> ApiResult<JobRow> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    state
        .db
        .run(move |c| store::get_job(c, user_id, id))
        .await
        .map_err(job_not_found)
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let job = own_job(state, ctx).await?;
    Ok(data(answer(state, job).await?))
}

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (page, page_size) = ctx.paging()?;
    let user_id = ctx.identity.user_id;
    let (jobs, count, counts) = state
        .db
        .run(move |c| {
            let (jobs, count) = store::list_jobs(c, user_id, page_size, (page - 1) * page_size)?;
            let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
            let counts = store::counts(c, &ids)?;
            Ok((jobs, count, counts))
        })
        .await?;
    let rate = crate::api::mail_general_settings::effective(state)
        .await
        .mass_rate_per_minute;
    let mut items = Vec::with_capacity(jobs.len());
    for j in &jobs {
        let id = j.id;
        let failures = state
            .db
            .run(move |c| store::failures(c, id, FAILURES_SHOWN))
            .await?;
        items.push(job_json(
            j,
            counts.get(&j.id).copied().unwrap_or_default(),
            &failures,
            rate,
        ));
    }
    Ok(list_response(items, count, page, page_size))
}

/// pause / resume / cancel: `from` the states the change applies to.
async fn change(
    state: &AppState,
    ctx: &ActionCtx,
    from: &'static [&'static str],
    to: &'static str,
    verb: &str,
) -> ApiResult<HttpResponse> {
    let job = own_job(state, ctx).await?;
    let id = job.id;
    let now = now_millis();
    let changed = state
        .db
        .run(move |c| {
            let changed = store::set_job_status(c, id, from, to, None, now)?;
            // Its last recipients may have finished while it was paused.
            if changed && to == js::RUNNING {
                store::complete_if_done(c, id, now)?;
            }
            Ok(changed)
        })
        .await?;
    if !changed && job.status != to {
        return Err(ApiError::invalid(format!(
            "The mass mailing is {}; it cannot be {verb}",
            job.status
        )));
    }
    if to == js::RUNNING {
        state.mass.wake.notify_one();
    }
    if to == js::CANCELLED {
        state.mass.forget(id);
    }
    let job = state
        .db
        .run(move |c| store::job_by_id(c, id))
        .await
        .map_err(job_not_found)?;
    Ok(data(answer(state, job).await?))
}

pub async fn pause(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    change(state, ctx, &[js::RUNNING], js::PAUSED, "paused").await
}

pub async fn resume(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    change(state, ctx, &[js::PAUSED], js::RUNNING, "resumed").await
}

pub async fn cancel(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    change(
        state,
        ctx,
        &[js::RUNNING, js::PAUSED],
        js::CANCELLED,
        "cancelled",
    )
    .await
}

/// `mailMassMessages:recipients`: a job's recipients in list order, `filter[status]` one of
/// sent, failed, queued (or sending).
pub async fn recipients(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let job = own_job(state, ctx).await?;
    let (page, page_size) = ctx.paging()?;
    let status = ctx
        .params
        .get("filter[status]")
        .cloned()
        .or_else(|| {
            ctx.params.get("filter").and_then(|f| {
                serde_json::from_str::<Value>(f)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_string))
            })
        })
        .or_else(|| ctx.values["filter"]["status"].as_str().map(str::to_string));
    if let Some(s) = &status {
        if ![rs::SENT, rs::FAILED, rs::QUEUED, rs::SENDING].contains(&s.as_str()) {
            return Err(ApiError::invalid(format!(
                "filter[status] must be sent, failed, queued or sending, got {s:?}"
            )));
        }
    }
    let id = job.id;
    let (rows, count) = state
        .db
        .run(move |c| {
            store::recipients(c, id, status.as_deref(), page_size, (page - 1) * page_size)
        })
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "email": r.email,
                "name": r.name,
                "status": r.status,
                "error": r.error,
                "sentAt": r.sent_at.and_then(iso),
                "providerMessageId": r.provider_message_id,
            })
        })
        .collect();
    Ok(list_response(items, count, page, page_size))
}
