//! The OAuth 2.0 code flow shared by the adapters, on the `oauth2` crate: PKCE S256, random state,
//! our no-redirect HTTP client, and the provider's answer turned into [`TokenSet`] / [`ProviderError`].

use base64::Engine;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::http::ProviderHttp;
use super::{AuthorizationRequest, OAuthApp, ProviderError, TokenSet};
use crate::crypto::{random_token, SecretString};

/// The token response fields beyond RFC 6749 that we read: the OpenID id token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenResp = StandardTokenResponse<IdTokenField, BasicTokenType>;
type Client = oauth2::Client<
    BasicErrorResponse,
    TokenResp,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// One provider's OAuth endpoints and habits.
pub struct OAuthFlow {
    pub auth_url: String,
    pub token_url: String,
    /// Microsoft wants the client credentials in the form body; Google takes HTTP Basic.
    pub credentials_in_body: bool,
    pub scopes: Vec<String>,
    /// Extra authorize parameters (Google: offline access and consent; Microsoft: response mode).
    pub extra_auth_params: Vec<(&'static str, &'static str)>,
    /// Microsoft requires the scopes again on every refresh.
    pub scopes_on_refresh: bool,
}

impl OAuthFlow {
    fn client(&self, app: &OAuthApp, redirect_uri: Option<&str>) -> Result<Client, ProviderError> {
        let bad = |what: &str, e: url::ParseError| {
            ProviderError::Permanent(format!("invalid {what}: {e}"))
        };
        let mut client = oauth2::Client::new(ClientId::new(app.client_id.clone()))
            .set_client_secret(ClientSecret::new(app.client_secret.expose().to_string()))
            .set_auth_uri(
                AuthUrl::new(self.auth_url.clone()).map_err(|e| bad("authorization URL", e))?,
            )
            .set_token_uri(TokenUrl::new(self.token_url.clone()).map_err(|e| bad("token URL", e))?)
            .set_auth_type(if self.credentials_in_body {
                AuthType::RequestBody
            } else {
                AuthType::BasicAuth
            });
        if let Some(uri) = redirect_uri {
            client = client.set_redirect_uri(
                RedirectUrl::new(uri.to_string()).map_err(|e| bad("redirect URI", e))?,
            );
        }
        Ok(client)
    }

    pub fn authorization_url(
        &self,
        app: &OAuthApp,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ProviderError> {
        let client = self.client(app, Some(redirect_uri))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(|| CsrfToken::new(random_token(32)))
            .add_scopes(self.scopes.iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge);
        for (k, v) in &self.extra_auth_params {
            req = req.add_extra_param(*k, *v);
        }
        let (url, state) = req.url();
        Ok(AuthorizationRequest {
            url: url.to_string(),
            state: SecretString::new(state.secret().clone()),
            pkce_verifier: SecretString::new(verifier.secret().clone()),
        })
    }

    pub async fn exchange_code(
        &self,
        http: &ProviderHttp,
        app: &OAuthApp,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        let client = self.client(app, Some(redirect_uri))?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_string()))
            .request_async(http.client())
            .await
            .map_err(token_error)?;
        Ok(token_set(&token))
    }

    pub async fn refresh(
        &self,
        http: &ProviderHttp,
        app: &OAuthApp,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        let client = self.client(app, None)?;
        let rt = RefreshToken::new(refresh_token.expose().to_string());
        let mut req = client.exchange_refresh_token(&rt);
        if self.scopes_on_refresh {
            req = req.add_scopes(self.scopes.iter().map(|s| Scope::new(s.clone())));
        }
        let token = req
            .request_async(http.client())
            .await
            .map_err(token_error)?;
        Ok(token_set(&token))
    }
}

fn token_set(token: &TokenResp) -> TokenSet {
    TokenSet {
        access_token: SecretString::new(token.access_token().secret().clone()),
        refresh_token: token
            .refresh_token()
            .map(|t| SecretString::new(t.secret().clone())),
        expires_at: token
            .expires_in()
            .map(|d| crate::db::now_millis() + d.as_millis() as i64),
        scopes: token
            .scopes()
            .map(|s| s.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default(),
        id_claims: token
            .extra_fields()
            .id_token
            .as_deref()
            .and_then(decode_jwt_claims),
    }
}

/// Reads a JWT's payload without checking its signature (see [`TokenSet::id_claims`]).
pub fn decode_jwt_claims(jwt: &str) -> Option<serde_json::Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, BasicErrorResponse>,
) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(resp) => {
            let description = resp.error_description().cloned().unwrap_or_default();
            match resp.error() {
                BasicErrorResponseType::InvalidGrant => ProviderError::InvalidGrant(description),
                BasicErrorResponseType::InvalidClient
                | BasicErrorResponseType::UnauthorizedClient => {
                    ProviderError::InvalidClient(description)
                }
                BasicErrorResponseType::Extension(code)
                    if code == "temporarily_unavailable" || code == "server_error" =>
                {
                    ProviderError::Transient(format!("{code}: {description}"))
                }
                other => ProviderError::Permanent(format!("{}: {description}", other.as_ref())),
            }
        }
        RequestTokenError::Request(e) => {
            ProviderError::Transient(format!("token request failed: {e}"))
        }
        // A body that is not an OAuth error is almost always a proxy or a 5xx page.
        RequestTokenError::Parse(e, _) => {
            ProviderError::Transient(format!("unexpected token response: {e}"))
        }
        RequestTokenError::Other(s) => ProviderError::Transient(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_payload_is_read_without_padding() {
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"tid":"t","oid":"o"}"#);
        let claims = decode_jwt_claims(&format!("e30.{payload}.sig")).expect("claims");
        assert_eq!(claims["tid"], "t");
        assert!(decode_jwt_claims("not-a-jwt").is_none());
    }
}
