//! What the plugin host takes and returns, in Docobo's own types (the generated WIT types stay
//! inside `providers`; `convert` maps between the two).

use crate::domain::{
    Billing, Claim, GuildId, Money, PaidAmount, ProviderEvent, RoleId, SubscriptionStatus,
    UnixMillis, UserId,
};

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
    /// Says which account at the provider the credentials reach (plugin API 0.2; false for
    /// 0.1): a change recreates the products ([`crate::shop`]).
    pub identifies_account: bool,
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
    /// Days of free trial before the first charge, where the provider supports it (plugin
    /// API 0.2; 0.1 plugins never see it).
    pub trial_days: Option<u32>,
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

/// The optional calls a plugin implements (plugin API 0.2; a 0.1 plugin has none). The host
/// calls only what is declared and answers the rest with
/// [`super::PluginFailure::Unsupported`] itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `manage_link`: a per-customer page to manage or cancel.
    pub manage_link: bool,
    /// `list_subscribers`: the provider's current subscribers, for import.
    pub list_subscribers: bool,
    /// `test_delivery`: a signed delivery for an owner's test purchase.
    pub test_delivery: bool,
}

impl Capabilities {
    /// The declared calls by their WIT names, for `plugin inspect` and logs.
    #[must_use]
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.manage_link, "manage-link"),
            (self.list_subscribers, "list-subscribers"),
            (self.test_delivery, "test-delivery"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// Which customer's manage page to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageLinkRequest {
    /// From the customer's events, when the provider sent one.
    pub customer_id: Option<String>,
    /// The provider's subscription (or order) id the member holds.
    pub subscription_id: String,
    pub guild: GuildId,
    pub user: UserId,
    /// Where the page sends the member back.
    pub return_url: Option<String>,
}

/// A current subscriber at the provider, for import. Only ids; Discord ids parsed as in
/// events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub subscription_id: String,
    pub customer_id: Option<String>,
    pub guild: Option<Claim<GuildId>>,
    pub user: Option<Claim<UserId>>,
    pub role: Option<Claim<RoleId>>,
    pub product_id: Option<String>,
    pub status: SubscriptionStatus,
    pub period_end: Option<UnixMillis>,
    pub amount: Option<PaidAmount>,
    pub test: bool,
}

/// One page of subscribers, and where the next one starts (`None`: the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberPage {
    pub subscribers: Vec<Subscriber>,
    pub next_cursor: Option<String>,
}

/// What an owner's test purchase buys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDeliveryRequest {
    pub guild: GuildId,
    pub user: UserId,
    pub role: RoleId,
    pub product_id: Option<String>,
    pub price: Money,
    pub billing: Billing,
    /// Bits for the event and subscription ids.
    pub nonce: u64,
    /// For bank transfers: the payment code of the checkout this test pays.
    pub payment_code: Option<String>,
}

/// A delivery signed as the provider would sign it, for the plugin's own `handle_webhook`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDelivery {
    /// Names in lower case, one pair per header line.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}
