//! Docobo's domain: ids, money, billing and the subscription state machine.
//!
//! Pure code: nothing in this module does I/O or reads the clock. Time comes in as an
//! argument (unix milliseconds), so every rule can be tested with fixed instants.

mod event;
mod ids;
mod money;
mod scope;
mod subscription;
#[cfg(test)]
mod subscription_props;

pub use event::{
    Claim, DisputeStatus, EventKind, MAX_ID_BYTES, MAX_SHORT_BYTES, PaidAmount, ProviderEvent,
    Refund, check_length,
};
pub use ids::{
    ChannelId, ChannelMarker, GuildId, GuildMarker, Id, ProviderId, RoleId, RoleMarker, UserId,
    UserMarker,
};
pub use money::{Billing, Currency, Money};
pub use scope::Scope;
pub use subscription::{
    StatusChange, SubscriptionState, SubscriptionStatus, Transition, is_entitled,
};

/// A provider account's configuration: the key/value pairs an owner entered in `/setup` (or
/// the operator in `[providers.<id>]`) for the fields its plugin declares. Values may be
/// secrets: never log them.
pub type PluginConfig = Vec<(String, String)>;

/// Unix time in milliseconds. Plain `i64` at the edges (SQLite, WIT), named by convention
/// `*_at` / `*_ms`.
pub type UnixMillis = i64;

/// Input that breaks a domain rule, with the field it concerns and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field or concept that is wrong (`price`, `id`, …).
    pub field: &'static str,
    /// What is wrong and how to fix it; never contains secrets.
    pub message: String,
}

impl ValidationError {
    #[must_use]
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Lower-case hexadecimal of `bytes` (digests and random tokens in text).
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
