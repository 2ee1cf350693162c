//! What the plugin host takes and returns, in Docobo's own types (the generated WIT types stay
//! inside `providers`; `convert` maps between the two).

use crate::domain::{Billing, GuildId, Money, ProviderEvent, RoleId, UserId};

/// One configuration field a plugin needs (shown in `/setup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigField {
    /// Machine name, e.g. `access_token`.
    pub key: String,
    /// Short human label (at most 45 characters in a Discord modal).
    pub label: String,
    /// Where to find the value at the provider.
    pub help: String,
    /// Stored encrypted; never echoed or logged.
    pub secret: bool,
    pub required: bool,
    pub default_value: Option<String>,
}

/// The provider-side product for a paid role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSpec {
    pub guild: GuildId,
    pub role: RoleId,
    /// Human name, e.g. the role's name.
    pub name: String,
    pub price: Money,
    pub billing: Billing,
}

/// A member's purchase to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub guild: GuildId,
    pub user: UserId,
    pub role: RoleId,
    /// What `create_product` returned for this role, if the plugin needs products.
    pub product_id: Option<String>,
    pub price: Money,
    pub billing: Billing,
    pub success_url: Option<String>,
    /// Bits for payment codes (retried with new bits when a code is taken).
    pub nonce: u64,
}

/// How the member pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// A hosted checkout page (card providers).
    pub url: Option<String>,
    /// A QR image to scan (bank transfers).
    pub qr_image_url: Option<String>,
    pub instructions: Option<String>,
    /// The code the transfer must carry.
    pub payment_code: Option<String>,
    /// When the checkout stops being valid, unix milliseconds.
    pub expires_at: Option<i64>,
}

/// What a `poll` found, and where to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    pub events: Vec<ProviderEvent>,
    pub next_cursor: Option<String>,
}
