//! Why a plugin call failed, typed.

use super::bindings::api;

/// Why a plugin call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider plugin named {0:?} is loaded")]
    UnknownProvider(String),
    /// The plugin refused a webhook (bad signature, stale timestamp, …).
    #[error("{provider}: {error}")]
    Webhook {
        provider: String,
        error: WebhookRejection,
    },
    /// The plugin reported an error (bad credentials, provider API down, …).
    #[error("{provider}: {error}")]
    Plugin {
        provider: String,
        error: PluginFailure,
    },
    /// The plugin trapped (a bug in the plugin, e.g. a panic).
    #[error("{provider}: the plugin crashed: {detail}")]
    Trap { provider: String, detail: String },
    /// The plugin ran out of its CPU budget or time.
    #[error("{provider}: the plugin ran too long ({limit})")]
    Timeout { provider: String, limit: String },
    /// The plugin tried to use more memory than allowed.
    #[error("{provider}: the plugin exceeded its memory limit of {limit_mib} MiB")]
    OutOfMemory { provider: String, limit_mib: usize },
}

/// A plugin's typed refusal of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("stale timestamp: {0}")]
    StaleTimestamp(String),
    #[error("malformed webhook: {0}")]
    Malformed(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

/// A plugin's typed failure of a call other than `handle-webhook`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("the provider refused the credentials: {0}")]
    InvalidCredentials(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    #[error("the provider failed: {0}")]
    Upstream(String),
    #[error("not supported by this plugin: {0}")]
    Unsupported(String),
}

impl From<api::WebhookError> for WebhookRejection {
    fn from(e: api::WebhookError) -> Self {
        match e {
            api::WebhookError::BadSignature(m) => Self::BadSignature(m),
            api::WebhookError::StaleTimestamp(m) => Self::StaleTimestamp(m),
            api::WebhookError::Malformed(m) => Self::Malformed(m),
            api::WebhookError::Misconfigured(m) => Self::Misconfigured(m),
        }
    }
}

impl From<api::ProviderError> for PluginFailure {
    fn from(e: api::ProviderError) -> Self {
        match e {
            api::ProviderError::InvalidCredentials(m) => Self::InvalidCredentials(m),
            api::ProviderError::Misconfigured(m) => Self::Misconfigured(m),
            api::ProviderError::Upstream(m) => Self::Upstream(m),
            api::ProviderError::Unsupported(m) => Self::Unsupported(m),
        }
    }
}
