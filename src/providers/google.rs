//! Google: OAuth 2.0 (accounts.google.com / oauth2.googleapis.com) and the Gmail API.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::http::{classify_status, ProviderHttp};
use super::oauth::OAuthFlow;
use super::{
    AuthorizationRequest, MailProvider, MailboxIdentity, OAuthApp, ProviderError, TokenSet,
};
use crate::config::{join_url, GoogleSettings};
use crate::crypto::SecretString;

pub struct Google {
    settings: GoogleSettings,
    http: ProviderHttp,
    flow: OAuthFlow,
}

impl Google {
    pub fn new(settings: GoogleSettings, http: ProviderHttp) -> Self {
        let flow = OAuthFlow {
            auth_url: settings.auth_url.to_string(),
            token_url: settings.token_url.to_string(),
            credentials_in_body: false,
            scopes: settings.scopes.clone(),
            // A refresh token comes only with offline access, and only on a fresh consent.
            extra_auth_params: vec![
                ("access_type", "offline"),
                ("prompt", "consent"),
                ("include_granted_scopes", "true"),
            ],
            scopes_on_refresh: false,
        };
        Self {
            settings,
            http,
            flow,
        }
    }

    fn gmail(&self, path: &str) -> String {
        join_url(
            &self.settings.gmail_api_base,
            &format!("/gmail/v1/users/me/{path}"),
        )
    }
}

/// Gmail reports quota exhaustion as 403 with a reason; those are retryable, not refusals.
pub fn classify(status: StatusCode, body: &str) -> Option<ProviderError> {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        errors: Vec<Reason>,
    }
    #[derive(Deserialize)]
    struct Reason {
        #[serde(default)]
        reason: String,
    }
    if status == StatusCode::FORBIDDEN {
        let parsed: Body = serde_json::from_str(body).ok()?;
        if parsed.error.errors.iter().any(|r| {
            matches!(
                r.reason.as_str(),
                "rateLimitExceeded"
                    | "userRateLimitExceeded"
                    | "dailyLimitExceeded"
                    | "quotaExceeded"
            )
        }) {
            return Some(ProviderError::RateLimited { retry_after: None });
        }
    }
    None
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    email_address: String,
}

#[async_trait]
impl MailProvider for Google {
    fn id(&self) -> &'static str {
        "google"
    }
    fn display_name(&self) -> &'static str {
        "Google"
    }

    fn authorization_url(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ProviderError> {
        self.flow.authorization_url(app, redirect_uri)
    }

    async fn exchange_code(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow
            .exchange_code(&self.http, app, redirect_uri, code, verifier)
            .await
    }

    async fn refresh(
        &self,
        app: &OAuthApp,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        self.flow.refresh(&self.http, app, refresh_token).await
    }

    async fn revoke(
        &self,
        _app: &OAuthApp,
        access_token: &SecretString,
        refresh_token: Option<&SecretString>,
    ) -> Result<bool, ProviderError> {
        // Revoking the refresh token revokes the whole grant, access tokens included.
        let token = refresh_token.unwrap_or(access_token);
        let (status, body) = self
            .http
            .post_form(
                self.settings.revoke_url.as_str(),
                &[("token", token.expose())],
            )
            .await?;
        if status.is_success()
            || (status == StatusCode::BAD_REQUEST && body.contains("invalid_token"))
        {
            return Ok(true);
        }
        Err(classify_status(status, None, &body, classify))
    }

    async fn identity(&self, tokens: &TokenSet) -> Result<MailboxIdentity, ProviderError> {
        let info: UserInfo = self
            .http
            .get_json(
                self.settings.userinfo_url.as_str(),
                &tokens.access_token,
                classify,
            )
            .await?;
        let profile: Profile = self
            .http
            .get_json(&self.gmail("profile"), &tokens.access_token, classify)
            .await?;
        let email = if profile.email_address.is_empty() {
            info.email.unwrap_or_default()
        } else {
            profile.email_address
        };
        if info.sub.is_empty() || email.is_empty() {
            return Err(ProviderError::Permanent(
                "Google did not return the account id and address".into(),
            ));
        }
        Ok(MailboxIdentity {
            provider_account_id: info.sub,
            email,
            display_name: info.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_403_is_rate_limiting_but_permission_403_is_not() {
        let quota = r#"{"error":{"code":403,"message":"x","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#;
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, quota),
            Some(ProviderError::RateLimited { .. })
        ));
        let denied = r#"{"error":{"code":403,"message":"x","errors":[{"domain":"global","reason":"insufficientPermissions"}]}}"#;
        assert!(classify(StatusCode::FORBIDDEN, denied).is_none());
    }
}
