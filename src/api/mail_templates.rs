//! `mailTemplates`: subject and body templates with `{{variable}}` placeholders. A user reads
//! their own and the ones others shared; only the owner changes or removes one (another user's
//! template answers 404 to `update`/`destroy`, shared or not). `preview` renders one.

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::mail_signatures::clean_name;
use super::{data, iso, list as list_response, ActionCtx};
use crate::db::compose::{self as store, NewTemplate, TemplateChanges, TemplateRow};
use crate::db::{now_millis, DbError};
use crate::error::{ApiError, ApiResult};
use crate::send::address::EmailAddress;
use crate::send::template::{
    render_message, sanitize_template_html, Context, RecipientValues, TemplateParts, UserValues,
};
use crate::state::AppState;

pub const MAX_SUBJECT_CHARS: usize = 998;
pub const MAX_BODY_BYTES: usize = 512 * 1024;

fn template_json(t: &TemplateRow, user_id: i64) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "subject": t.subject,
        "html": t.html,
        "text": t.text_body,
        "shared": t.shared,
        "readOnly": t.user_id != user_id,
        "createdAt": iso(t.created_at),
        "updatedAt": iso(t.updated_at),
    })
}

fn not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Template"),
        other => other.into(),
    }
}

fn clean_subject(s: &str) -> ApiResult<String> {
    if s.chars().any(|c| c == '\r' || c == '\n') {
        return Err(ApiError::invalid("subject must be one line"));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::invalid("subject has control characters"));
    }
    if s.chars().count() > MAX_SUBJECT_CHARS {
        return Err(ApiError::invalid(format!(
            "subject is longer than {MAX_SUBJECT_CHARS} characters"
        )));
    }
    Ok(s.trim().to_string())
}

fn check_size(field: &str, s: &str) -> ApiResult<()> {
    if s.len() > MAX_BODY_BYTES {
        return Err(ApiError::invalid(format!(
            "{field} is larger than {} KiB",
            MAX_BODY_BYTES / 1024
        )));
    }
    Ok(())
}

fn clean_html(html: &str) -> ApiResult<String> {
    check_size("html", html)?;
    Ok(sanitize_template_html(html))
}

fn clean_text(text: &str) -> ApiResult<String> {
    check_size("text", text)?;
    Ok(text.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateValues {
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    html: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    shared: bool,
}

/// `text: null` removes the text version (it is then made from the HTML). Read-only fields of
/// `get` are accepted and ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateValues {
    name: Option<String>,
    subject: Option<String>,
    html: Option<String>,
    #[serde(default, deserialize_with = "present")]
    text: Option<Option<String>>,
    shared: Option<bool>,
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "readOnly")]
    _read_only: Option<Value>,
    #[serde(default, rename = "createdAt")]
    _created_at: Option<Value>,
    #[serde(default, rename = "updatedAt")]
    _updated_at: Option<Value>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let (page, page_size) = ctx.paging()?;
    let user_id = ctx.identity.user_id;
    let (rows, count) = state
        .db
        .run(move |conn| {
            store::list_visible_templates(conn, user_id, page_size, (page - 1) * page_size)
        })
        .await?;
    let items: Vec<Value> = rows.iter().map(|t| template_json(t, user_id)).collect();
    Ok(list_response(items, count, page, page_size))
}

pub async fn get(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |conn| store::get_visible_template(conn, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(template_json(&row, user_id)))
}

pub async fn create(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let v: CreateValues = ctx.values_as()?;
    let now = now_millis();
    let user_id = ctx.identity.user_id;
    let new = NewTemplate {
        user_id,
        name: clean_name("name", &v.name)?,
        subject: clean_subject(&v.subject)?,
        html: clean_html(&v.html)?,
        text_body: v.text.as_deref().map(clean_text).transpose()?,
        shared: v.shared,
        created_at: now,
        updated_at: now,
    };
    let row = state
        .db
        .run(move |conn| store::create_template(conn, &new))
        .await?;
    Ok(data(template_json(&row, user_id)))
}

pub async fn update(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let v: UpdateValues = ctx.values_as()?;
    let changes = TemplateChanges {
        name: v
            .name
            .as_deref()
            .map(|n| clean_name("name", n))
            .transpose()?,
        subject: v.subject.as_deref().map(clean_subject).transpose()?,
        html: v.html.as_deref().map(clean_html).transpose()?,
        text_body: match v.text {
            None => None,
            Some(None) => Some(None),
            Some(Some(t)) => Some(Some(clean_text(&t)?)),
        },
        shared: v.shared,
        updated_at: Some(now_millis()),
    };
    let user_id = ctx.identity.user_id;
    let row = state
        .db
        .run(move |conn| store::update_template(conn, user_id, id, &changes))
        .await
        .map_err(not_found)?;
    Ok(data(template_json(&row, user_id)))
}

pub async fn destroy(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = ctx.filter_by_tk()?;
    let user_id = ctx.identity.user_id;
    state
        .db
        .run(move |conn| store::delete_template(conn, user_id, id))
        .await
        .map_err(not_found)?;
    Ok(data(json!({ "id": id })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    #[serde(default)]
    pub nickname: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PreviewValues {
    template_id: Option<Value>,
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    recipient: Option<RecipientInput>,
    /// The current user's values as the host knows them (the sidecar only knows the id).
    #[serde(default)]
    user: Option<UserInput>,
}

/// The render context of a send or preview; a recipient email must be an address.
pub fn context(
    variables: Option<&Map<String, Value>>,
    recipient: Option<&RecipientInput>,
    user: Option<&UserInput>,
) -> ApiResult<Context> {
    let recipient = match recipient {
        Some(r) => RecipientValues {
            name: r.name.clone(),
            email: r
                .email
                .as_deref()
                .map(|e| {
                    EmailAddress::parse(e)
                        .map(|a| a.to_unicode())
                        .map_err(|why| {
                            ApiError::invalid(format!(
                                "recipient.email {e:?} is not an email address ({why})"
                            ))
                        })
                })
                .transpose()?,
        },
        None => RecipientValues::default(),
    };
    let user = user
        .map(|u| UserValues {
            nickname: u.nickname.clone(),
            email: u.email.clone(),
        })
        .unwrap_or_default();
    Ok(Context::new(variables, &recipient, &user))
}

/// Parses a record id given in values (a number or a numeric string).
pub fn record_id(field: &str, v: &Value) -> ApiResult<i64> {
    let id = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    id.filter(|i| *i > 0)
        .ok_or_else(|| ApiError::invalid(format!("{field} must be a record id, got {v}")))
}

/// Renders a stored template (`templateId`) or the given `subject`/`html`/`text`; unknown
/// variables are listed in `missingVariables` (a preview never fails on them).
pub async fn preview(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let v: PreviewValues = ctx.values_as()?;
    let parts = match &v.template_id {
        Some(id) if !id.is_null() => {
            if v.subject.is_some() || v.html.is_some() || v.text.is_some() {
                return Err(ApiError::invalid(
                    "send either templateId or subject/html/text, not both",
                ));
            }
            let id = record_id("templateId", id)?;
            let user_id = ctx.identity.user_id;
            let row = state
                .db
                .run(move |conn| store::get_visible_template(conn, user_id, id))
                .await
                .map_err(not_found)?;
            TemplateParts {
                subject: row.subject,
                html: row.html,
                text: row.text_body,
            }
        }
        _ => {
            if v.subject.is_none() && v.html.is_none() && v.text.is_none() {
                return Err(ApiError::invalid(
                    "send templateId, or subject/html/text to render",
                ));
            }
            TemplateParts {
                subject: clean_subject(v.subject.as_deref().unwrap_or_default())?,
                html: clean_html(v.html.as_deref().unwrap_or_default())?,
                text: v.text.as_deref().map(clean_text).transpose()?,
            }
        }
    };
    let context = context(v.variables.as_ref(), v.recipient.as_ref(), v.user.as_ref())?;
    let r = render_message(&parts, &context);
    Ok(data(json!({
        "subject": r.subject,
        "html": r.html,
        "text": r.text,
        "missingVariables": r.missing,
    })))
}
