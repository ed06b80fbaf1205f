//! Microsoft: identity platform v2.0 (login.microsoftonline.com/{tenant}) and Microsoft Graph.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::http::ProviderHttp;
use super::oauth::OAuthFlow;
use super::{
    AuthorizationRequest, MailProvider, MailboxIdentity, OAuthApp, ProviderError, TokenSet,
};
use crate::config::{join_url, MicrosoftSettings};
use crate::crypto::SecretString;

pub const DEFAULT_TENANT: &str = "common";

pub struct Microsoft {
    settings: MicrosoftSettings,
    http: ProviderHttp,
}

impl Microsoft {
    pub fn new(settings: MicrosoftSettings, http: ProviderHttp) -> Self {
        Self { settings, http }
    }

    /// The flow depends on the tenant the admin chose, so it is built per call.
    fn flow(&self, app: &OAuthApp) -> OAuthFlow {
        let tenant = app
            .tenant
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or(DEFAULT_TENANT);
        OAuthFlow {
            auth_url: join_url(
                &self.settings.authority,
                &format!("/{tenant}/oauth2/v2.0/authorize"),
            ),
            token_url: join_url(
                &self.settings.authority,
                &format!("/{tenant}/oauth2/v2.0/token"),
            ),
            credentials_in_body: true,
            scopes: self.settings.scopes.clone(),
            extra_auth_params: vec![("response_mode", "query"), ("prompt", "select_account")],
            scopes_on_refresh: true,
        }
    }

    fn graph(&self, path: &str) -> String {
        join_url(&self.settings.graph_api_base, path)
    }
}

/// Graph says an expired delta cursor with 410 or with `syncStateNotFound` / `resyncRequired`.
pub fn classify(status: StatusCode, body: &str) -> Option<ProviderError> {
    if (status == StatusCode::GONE || status == StatusCode::BAD_REQUEST)
        && (body.contains("syncStateNotFound")
            || body.contains("resyncRequired")
            || body.contains("SyncStateNotFound"))
    {
        return Some(ProviderError::CursorExpired);
    }
    None
}

/// Tenant ids are GUIDs or the three well-known names; anything else would end up in a URL path.
pub fn valid_tenant(t: &str) -> bool {
    matches!(t, "common" | "organizations" | "consumers")
        || (!t.is_empty()
            && t.len() <= 64
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    id: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[async_trait]
impl MailProvider for Microsoft {
    fn id(&self) -> &'static str {
        "microsoft"
    }
    fn display_name(&self) -> &'static str {
        "Microsoft"
    }
    fn uses_tenant(&self) -> bool {
        true
    }

    fn authorization_url(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ProviderError> {
        self.flow(app).authorization_url(app, redirect_uri)
    }

    async fn exchange_code(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow(app)
            .exchange_code(&self.http, app, redirect_uri, code, verifier)
            .await
    }

    async fn refresh(
        &self,
        app: &OAuthApp,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow(app).refresh(&self.http, app, refresh_token).await
    }

    /// The identity platform has no token revocation endpoint for delegated tokens; forgetting
    /// them is all a client can do (the user removes the app's consent at myapps.microsoft.com).
    async fn revoke(
        &self,
        _app: &OAuthApp,
        _access: &SecretString,
        _refresh: Option<&SecretString>,
    ) -> Result<bool, ProviderError> {
        // The identity platform has no endpoint to revoke one application's refresh token
        // (revokeSignInSessions would sign the user out everywhere), so the caller only forgets it.
        Ok(false)
    }

    async fn identity(&self, tokens: &TokenSet) -> Result<MailboxIdentity, ProviderError> {
        let me: Me = self
            .http
            .get_json(&self.graph("/me"), &tokens.access_token, classify)
            .await?;
        let claim = |k: &str| {
            tokens
                .id_claims
                .as_ref()
                .and_then(|c| c.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let tid = claim("tid").ok_or_else(|| {
            ProviderError::Permanent(
                "Microsoft sent no tenant id; the openid scope must be configured".into(),
            )
        })?;
        let email = me
            .mail
            .filter(|m| !m.is_empty())
            .or(me.user_principal_name)
            .or_else(|| claim("preferred_username"))
            .unwrap_or_default();
        if me.id.is_empty() || email.is_empty() {
            return Err(ProviderError::Permanent(
                "Microsoft Graph did not return the account id and address".into(),
            ));
        }
        Ok(MailboxIdentity {
            provider_account_id: format!("{tid}:{}", me.id),
            email,
            display_name: me.display_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_checked_before_they_reach_a_url() {
        assert!(valid_tenant("common"));
        assert!(valid_tenant("7d1c5a2e-5f1b-4c3e-9a7d-2b1f0c9e8a11"));
        assert!(valid_tenant("contoso.onmicrosoft.com"));
        assert!(!valid_tenant("../evil"));
        assert!(!valid_tenant("a/b"));
        assert!(!valid_tenant(""));
    }

    #[test]
    fn expired_delta_cursor_is_recognised() {
        let body = r#"{"error":{"code":"SyncStateNotFound","message":"The sync state generation is not found."}}"#;
        assert!(matches!(
            classify(StatusCode::GONE, body),
            Some(ProviderError::CursorExpired)
        ));
        assert!(classify(StatusCode::BAD_REQUEST, "{}").is_none());
    }
}
