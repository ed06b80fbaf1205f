//! `mailAliases`: the addresses a mailbox may send as. `list` (optionally one account's) and
//! `sync` (read again from the provider: Gmail's send-as addresses, verified ones only; Outlook:
//! the mailbox's own address). The primary address is always one of them, synced or not.
//! `from` on a send or draft must be one of these ([`resolve_from`]).

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::mail_messages::text_param;
use super::{data, list as list_response, ActionCtx};
use crate::db::compose::{self as store, AliasInput, AliasRow};
use crate::db::models::MailAccountRow;
use crate::db::{self, now_millis, DbError};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::providers::ProviderError;
use crate::send::address::{EmailAddress, Mailbox};
use crate::state::AppState;
use crate::sync::tokens::{self, TokenError};

pub fn alias_json(a: &AliasRow, account: &MailAccountRow) -> Value {
    json!({
        "id": a.id,
        "accountId": a.account_id,
        "address": a.address,
        "name": a.name,
        "isDefault": a.is_default,
        "verified": a.verified,
        "primary": a.address.eq_ignore_ascii_case(&account.email),
    })
}

pub(crate) fn account_not_found(e: DbError) -> ApiError {
    match e {
        DbError::NotFound => ApiError::not_found("Mail account"),
        other => other.into(),
    }
}

/// The user's account `id`; another user's answers 404 like one that does not exist.
pub(crate) async fn account_of(
    state: &AppState,
    user_id: i64,
    id: i64,
) -> ApiResult<MailAccountRow> {
    state
        .db
        .run(move |c| db::accounts::get_for_user(c, user_id, id))
        .await
        .map_err(account_not_found)
}

fn primary_input(account: &MailAccountRow, is_default: bool) -> AliasInput {
    AliasInput {
        address: account.email.clone(),
        name: account.display_name.clone().unwrap_or_default(),
        is_default,
        verified: true,
    }
}

/// The account's aliases, the primary address added when it is not there yet.
pub(crate) async fn aliases_of(
    state: &AppState,
    account: &MailAccountRow,
) -> ApiResult<Vec<AliasRow>> {
    let account = account.clone();
    Ok(state
        .db
        .run(move |c| {
            let list = store::list_aliases(c, account.id)?;
            if list
                .iter()
                .any(|a| a.address.eq_ignore_ascii_case(&account.email))
            {
                return Ok(list);
            }
            let mut inputs: Vec<AliasInput> = list
                .iter()
                .map(|a| AliasInput {
                    address: a.address.clone(),
                    name: a.name.clone(),
                    is_default: a.is_default,
                    verified: a.verified,
                })
                .collect();
            let default = !inputs.iter().any(|a| a.is_default);
            inputs.insert(0, primary_input(&account, default));
            store::replace_aliases(c, account.id, &inputs, now_millis())
        })
        .await?)
}

fn token_error(e: TokenError, account: &MailAccountRow) -> ApiError {
    match e {
        TokenError::Reauth(_) => ApiError::new(
            ErrorCode::ReauthRequired,
            format!("{} must be linked again", account.email),
        ),
        TokenError::Provider(p) => provider_error(p, account),
        TokenError::Internal(why) => ApiError::internal(anyhow::anyhow!(why)),
    }
}

fn provider_error(e: ProviderError, account: &MailAccountRow) -> ApiError {
    ApiError::new(
        ErrorCode::ProviderError,
        format!(
            "Could not read the send-as addresses of {} from the provider",
            account.email
        ),
    )
    .with_cause(e)
}

/// Reads the send-as addresses from the provider and stores them (verified only; the primary
/// always, and the default when the provider names none).
pub(crate) async fn sync_aliases(
    state: &AppState,
    account: &MailAccountRow,
) -> ApiResult<Vec<AliasRow>> {
    let provider = state.registry.get(&account.provider)?;
    let token = tokens::access_token(state, provider.as_ref(), account.id, false)
        .await
        .map_err(|e| token_error(e, account))?;
    let listed = match provider.send_as(&token, &account.email).await {
        Err(ProviderError::Unauthorized) => {
            let token = tokens::access_token(state, provider.as_ref(), account.id, true)
                .await
                .map_err(|e| token_error(e, account))?;
            provider.send_as(&token, &account.email).await
        }
        other => other,
    }
    .map_err(|e| {
        state.metrics.provider_error(provider.id(), e.kind());
        provider_error(e, account)
    })?;
    let mut inputs: Vec<AliasInput> = Vec::new();
    for a in listed {
        // Keep what can go in a From header; the provider's own list is trusted otherwise.
        let Ok(address) = EmailAddress::parse(&a.address) else {
            log::warn!(
                "mail account {}: the provider lists send-as {:?}, which is not an address",
                account.id,
                a.address
            );
            continue;
        };
        if inputs
            .iter()
            .any(|i| i.address.eq_ignore_ascii_case(address.as_str()))
        {
            continue;
        }
        inputs.push(AliasInput {
            address: address.to_string(),
            name: a.name,
            is_default: a.is_default,
            verified: true,
        });
    }
    if !inputs
        .iter()
        .any(|a| a.address.eq_ignore_ascii_case(&account.email))
    {
        inputs.insert(0, primary_input(account, false));
    }
    if !inputs.iter().any(|a| a.is_default) {
        if let Some(p) = inputs
            .iter_mut()
            .find(|a| a.address.eq_ignore_ascii_case(&account.email))
        {
            p.is_default = true;
        }
    }
    let account_id = account.id;
    Ok(state
        .db
        .run(move |c| store::replace_aliases(c, account_id, &inputs, now_millis()))
        .await?)
}

fn mailbox_of(a: &AliasRow, account: &MailAccountRow, name: Option<String>) -> ApiResult<Mailbox> {
    let address = EmailAddress::parse(&a.address).map_err(|e| {
        ApiError::internal(anyhow::anyhow!(
            "stored alias {:?} of account {} is not an address: {e}",
            a.address,
            account.id
        ))
    })?;
    let stored = Some(a.name.clone()).filter(|n| !n.trim().is_empty());
    let own = account
        .display_name
        .clone()
        .filter(|_| a.address.eq_ignore_ascii_case(&account.email));
    let name = name.or(stored).or(own);
    Ok(Mailbox::new(name.as_deref(), address))
}

/// The identity a message goes out as: the `from` asked for (which must be an alias; the
/// aliases are read again from the provider once when it is not among the stored ones), else
/// the address the source was sent to (a reply keeps that identity), else the default alias.
pub(crate) async fn resolve_from(
    state: &AppState,
    account: &MailAccountRow,
    requested: Option<&Mailbox>,
    identity: Option<&EmailAddress>,
) -> ApiResult<Mailbox> {
    let mut aliases = aliases_of(state, account).await?;
    let find = |list: &[AliasRow], key: &str| {
        list.iter()
            .find(|a| a.verified && a.address.to_ascii_lowercase() == key)
            .cloned()
    };
    if let Some(req) = requested {
        let key = req.address.key();
        let mut hit = find(&aliases, &key);
        if hit.is_none() {
            // Added at the provider since the last sync?
            match sync_aliases(state, account).await {
                Ok(fresh) => {
                    aliases = fresh;
                    hit = find(&aliases, &key);
                }
                Err(e) => log::info!(
                    "mail account {}: could not read the send-as addresses again: {e}",
                    account.id
                ),
            }
        }
        let alias = hit.ok_or_else(|| {
            ApiError::invalid(format!(
                "from: {} is not an address {} can send as (mailAliases:list names them)",
                req.address, account.email
            ))
        })?;
        return mailbox_of(&alias, account, req.name.clone());
    }
    if let Some(alias) = identity.and_then(|i| find(&aliases, &i.key())) {
        return mailbox_of(&alias, account, None);
    }
    let default = aliases
        .iter()
        .find(|a| a.verified && a.is_default)
        .or_else(|| {
            aliases
                .iter()
                .find(|a| a.address.eq_ignore_ascii_case(&account.email))
        })
        .cloned()
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "account {} has no primary alias",
                account.id
            ))
        })?;
    mailbox_of(&default, account, None)
}

/// An optional account id from the query or the body.
fn account_param(ctx: &ActionCtx) -> ApiResult<Option<i64>> {
    match text_param(ctx, "accountId").filter(|s| !s.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!("accountId must be a record id, got {raw:?}"))
            }),
    }
}

pub async fn list(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let user_id = ctx.identity.user_id;
    let accounts = match account_param(ctx)? {
        Some(id) => vec![account_of(state, user_id, id).await?],
        None => {
            state
                .db
                .run(move |c| db::accounts::list_for_user(c, user_id))
                .await?
        }
    };
    let mut items = Vec::new();
    for account in &accounts {
        for a in aliases_of(state, account).await? {
            items.push(alias_json(&a, account));
        }
    }
    let count = items.len() as i64;
    Ok(list_response(items, count, 1, count.max(1)))
}

/// `mailAliases:sync` for `accountId` (or `filterByTk`): reads them from the provider.
pub async fn sync(state: &AppState, ctx: &ActionCtx) -> ApiResult<HttpResponse> {
    let id = match account_param(ctx)? {
        Some(id) => id,
        None => ctx
            .filter_by_tk()
            .map_err(|_| ApiError::invalid("accountId is required"))?,
    };
    let account = account_of(state, ctx.identity.user_id, id).await?;
    let aliases = sync_aliases(state, &account).await?;
    Ok(data(
        aliases
            .iter()
            .map(|a| alias_json(a, &account))
            .collect::<Vec<_>>(),
    ))
}
