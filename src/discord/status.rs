//! The gateway connection's state, shared with `/health`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Where the gateway connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayState {
    /// Not started, or connecting for the first time.
    Connecting,
    Connected,
    /// Lost; serenity (or our loop) is reconnecting.
    Reconnecting,
    /// Discord refused the bot for good (bad token, intents not enabled): a person must fix
    /// the configuration. `/health` answers 503.
    Failed,
    /// The bot is not started (no token needed for this command).
    Disabled,
}

impl GatewayState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Connected,
            2 => Self::Reconnecting,
            3 => Self::Failed,
            4 => Self::Disabled,
            _ => Self::Connecting,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Connecting => 0,
            Self::Connected => 1,
            Self::Reconnecting => 2,
            Self::Failed => 3,
            Self::Disabled => 4,
        }
    }
}

/// A shared, cheap-to-read [`GatewayState`].
#[derive(Debug, Clone)]
pub struct GatewayStatus(Arc<AtomicU8>);

impl Default for GatewayStatus {
    fn default() -> Self {
        Self(Arc::new(AtomicU8::new(GatewayState::Connecting.to_u8())))
    }
}

impl GatewayStatus {
    #[must_use]
    pub fn get(&self) -> GatewayState {
        GatewayState::from_u8(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, state: GatewayState) {
        self.0.store(state.to_u8(), Ordering::Relaxed);
    }
}
