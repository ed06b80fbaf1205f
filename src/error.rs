//! The one API error type. Codes are stable strings the host pages can branch on; the message is
//! safe to show a user. The internal cause is logged once here, at the boundary, never sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No bearer, bad signature, expired, or the host says the token is no longer valid.
    InvalidToken,
    /// The host says the user does not hold the requested `X-Role`.
    RoleNotFoundForUser,
    Forbidden,
    NotFound,
    UnknownAction,
    MethodNotAllowed,
    InvalidJson,
    InvalidInput,
    UnknownProvider,
    ProviderNotConfigured,
    PayloadTooLarge,
    /// The host could not confirm the role: we fail closed.
    HostUnavailable,
    /// The mail provider refused or failed.
    ProviderError,
    /// A sync of this account is already running (here or on another replica).
    SyncInProgress,
    /// The provider no longer accepts the mailbox's grant: the user must link it again.
    ReauthRequired,
    /// A send with this idempotency key is being made right now.
    SendInProgress,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::RoleNotFoundForUser => "ROLE_NOT_FOUND_FOR_USER",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::UnknownAction => "UNKNOWN_ACTION",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::UnknownProvider => "UNKNOWN_PROVIDER",
            ErrorCode::ProviderNotConfigured => "PROVIDER_NOT_CONFIGURED",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::HostUnavailable => "HOST_UNAVAILABLE",
            ErrorCode::ProviderError => "PROVIDER_ERROR",
            ErrorCode::SyncInProgress => "SYNC_IN_PROGRESS",
            ErrorCode::ReauthRequired => "REAUTH_REQUIRED",
            ErrorCode::SendInProgress => "SEND_IN_PROGRESS",
            ErrorCode::Internal => "INTERNAL_ERROR",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidToken | ErrorCode::RoleNotFoundForUser => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound | ErrorCode::UnknownAction => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::InvalidJson
            | ErrorCode::InvalidInput
            | ErrorCode::UnknownProvider
            | ErrorCode::ProviderNotConfigured => StatusCode::BAD_REQUEST,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::HostUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ProviderError => StatusCode::BAD_GATEWAY,
            ErrorCode::SyncInProgress | ErrorCode::ReauthRequired | ErrorCode::SendInProgress => {
                StatusCode::CONFLICT
            }
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// What went wrong inside; logged, never returned.
    pub cause: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            cause: None,
        }
    }
    pub fn with_cause(mut self, cause: impl Into<anyhow::Error>) -> Self {
        self.cause = Some(cause.into());
        self
    }
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }
    /// A failure the user cannot act on; the cause goes to the log only.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::new(
            ErrorCode::Internal,
            "Internal error; the sidecar log has the details",
        )
        .with_cause(cause)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        match &self.cause {
            Some(cause) if self.code.status().is_server_error() => {
                log::error!("{} {}: {:#}", self.code.as_str(), self.message, cause)
            }
            Some(cause) => log::info!("{} {}: {:#}", self.code.as_str(), self.message, cause),
            None => {}
        }
        HttpResponse::build(self.status_code())
            .json(json!({"errors": [{"message": self.message, "code": self.code.as_str()}]}))
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::NotFound => ApiError::new(ErrorCode::NotFound, "Record not found"),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        ApiError::internal(e)
    }
}
