//! Calls to the Stripe API, written against [`Host`] so native tests drive them with a
//! [`docobo_plugin_sdk::MockHost`].
//!
//! Requests are form-encoded ([`Form`]) with `Authorization: Bearer <secret key>`; answers
//! are JSON. No `Stripe-Version` is pinned: requests use the account's default version,
//! like the webhook payloads do, and every reader accepts both the pre-2025 and the
//! `2025-03-31.basil` shapes (see [`crate::events`]).

use docobo_plugin_sdk::url::encode_component;
use docobo_plugin_sdk::{
    Billing, Checkout, CheckoutRequest, Host, HttpRequest, LogLevel, ManageLinkRequest, PollResult,
    ProductSpec, ProviderError, SignedDelivery, Subscriber, SubscriberPage, SubscriptionStatus,
    TestDeliveryRequest, config_get, config_require,
};
use serde_json::{Value, json};

use crate::events::{
    self, META_GUILD, META_PRICE, META_ROLE, META_TRIAL_DAYS, META_USER, MapError,
    SubscriptionLookup, id_field, str_field,
};
use crate::form::Form;
use crate::verify;

/// The API base.
pub const API_URL: &str = "https://api.stripe.com";
/// Events per page when polling (Stripe's maximum).
pub const POLL_PAGE_SIZE: u32 = 100;
/// Pages fetched by one `poll` call (the host allows a few fetches per call; the rest are
/// left for subscription lookups of refunds and disputes).
pub const POLL_MAX_PAGES: u32 = 2;
/// How far back the first poll looks.
pub const FIRST_POLL_LOOKBACK_MS: i64 = 3 * 86_400_000;
/// Subscriptions per page for `list-subscribers`.
pub const SUBSCRIBERS_PAGE_SIZE: u32 = 100;
/// Stripe's longest free trial (`trial_period_days` ≤ 730).
pub const MAX_TRIAL_DAYS: u32 = 730;

/// What the API calls need from the configuration.
#[derive(Debug)]
pub struct ApiSettings<'a> {
    key: &'a str,
    /// Base URL without a trailing slash or `/v1`.
    pub base: String,
}

/// Checks the shape of a secret key and names what is wrong (never echoing the key).
pub fn check_secret_key(key: &str) -> Result<(), ProviderError> {
    const PREFIXES: [&str; 4] = ["sk_test_", "sk_live_", "rk_test_", "rk_live_"];
    if PREFIXES
        .iter()
        .any(|p| key.starts_with(p) && key.len() > p.len())
    {
        return Ok(());
    }
    let why = if key.starts_with("pk_") {
        "`secret_key` is a publishable key (pk_…): use the secret key (sk_…) or a restricted \
         key (rk_…) from Developers → API keys"
    } else if key.starts_with("whsec_") {
        "`secret_key` holds a webhook signing secret (whsec_…): that one goes in \
         `webhook_secret`; `secret_key` is the API key (sk_… or rk_…)"
    } else {
        "`secret_key` must be a Stripe secret key (sk_test_…/sk_live_…) or restricted key \
         (rk_test_…/rk_live_…)"
    };
    Err(ProviderError::Misconfigured(why.into()))
}

impl<'a> ApiSettings<'a> {
    /// Reads `secret_key` and `api_url`.
    pub fn from_config(config: &'a [(String, String)]) -> Result<Self, ProviderError> {
        let key = config_require(config, "secret_key").map_err(ProviderError::Misconfigured)?;
        check_secret_key(key)?;
        let base = match config_get(config, "api_url") {
            None => API_URL.to_string(),
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                let url = url.trim_end_matches('/');
                url.strip_suffix("/v1").unwrap_or(url).to_string()
            }
            Some(_) => {
                return Err(ProviderError::Misconfigured(
                    "api_url must start with https://".into(),
                ));
            }
        };
        Ok(Self { key, base })
    }

    fn request(&self, method: &str, path_and_query: &str) -> HttpRequest {
        HttpRequest::new(method, format!("{}{path_and_query}", self.base))
            .bearer(self.key)
            .header("accept", "application/json")
    }

    fn get(&self, path: &str, query: &Form) -> HttpRequest {
        self.request("GET", &query.query(path))
    }

    fn post(&self, path: &str, form: &Form) -> HttpRequest {
        let mut req = self
            .request("POST", path)
            .header("content-type", "application/x-www-form-urlencoded");
        req.body = Some(form.encode().into_bytes());
        req
    }
}

/// `/v1/{resource}/{id}` with the id percent-encoded (ids come from payloads).
fn object_path(resource: &str, id: &str) -> String {
    format!("/v1/{resource}/{}", encode_component(id))
}

/// Stripe's error message (`{"error": {"message": …}}`), cut short.
fn stripe_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let msg = v.get("error")?.get("message")?.as_str()?;
    Some(msg.chars().take(300).collect())
}

/// A failed call: the HTTP status (0 when Stripe was not reached) and a readable error.
#[derive(Debug)]
struct Failure {
    status: u16,
    error: ProviderError,
}

impl From<Failure> for ProviderError {
    fn from(f: Failure) -> Self {
        f.error
    }
}

/// Sends a request and returns the JSON body of a 2xx answer.
fn send_raw<H: Host>(host: &H, req: &HttpRequest) -> Result<Value, Failure> {
    let resp = host.http_fetch(req).map_err(|e| Failure {
        status: 0,
        error: ProviderError::Upstream(format!("Stripe could not be reached: {e}")),
    })?;
    let status = resp.status;
    let detail = || stripe_message(&resp.body).unwrap_or_else(|| resp.text_snippet(200));
    let error = match status {
        s if (200..300).contains(&s) => {
            return serde_json::from_slice(&resp.body).map_err(|_| Failure {
                status: s,
                error: ProviderError::Upstream(format!(
                    "Stripe answered {s} with a body that is not JSON"
                )),
            });
        }
        401 => ProviderError::InvalidCredentials(
            "Stripe rejected the secret key (`secret_key`, 401): it is wrong, revoked or \
             expired. Copy it again from Developers → API keys."
                .into(),
        ),
        403 => ProviderError::InvalidCredentials(format!(
            "the Stripe key (`secret_key`) lacks a permission (403): {}. A restricted key \
             needs write access to Products, Prices, Checkout Sessions and Customer portal, \
             and read access to Events, Subscriptions, Invoices and Payment Intents.",
            detail()
        )),
        429 => ProviderError::Upstream("Stripe is rate limiting this account (429)".into()),
        s => ProviderError::Upstream(format!("Stripe answered {s}: {}", detail())),
    };
    Err(Failure { status, error })
}

fn send<H: Host>(host: &H, req: &HttpRequest) -> Result<Value, ProviderError> {
    send_raw(host, req).map_err(ProviderError::from)
}

/// Checks the key with one cheap authenticated read, `GET /v1/events?limit=1`, and the
/// shape of the webhook secret.
///
/// `/v1/events` rather than `/v1/balance`: it proves the same thing for a full secret key,
/// and a restricted key needs Events read for `poll` anyway, while Balance read is a
/// permission the plugin would otherwise never use.
pub fn validate_credentials<H: Host>(
    host: &H,
    config: &[(String, String)],
) -> Result<(), ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let secret = config_require(config, "webhook_secret").map_err(ProviderError::Misconfigured)?;
    if !secret.starts_with("whsec_") {
        return Err(ProviderError::Misconfigured(
            "`webhook_secret` must be the endpoint's signing secret (whsec_…), from \
             Developers → Webhooks → your endpoint → Signing secret"
                .into(),
        ));
    }
    send(
        host,
        &api.get("/v1/events", &Form::new().field("limit", "1")),
    )?;
    Ok(())
}

/// Why Stripe does not sell `Billing::Days` passes.
fn no_day_passes(n: u32) -> ProviderError {
    ProviderError::Misconfigured(format!(
        "Stripe cannot sell a {n}-day pass: a one-time Stripe payment never ends, and a price \
         recurring every {n} days would charge the member again without being asked. Use \
         monthly or yearly billing, or a one-time/lifetime price."
    ))
}

/// A product name for a role name (Stripe needs a non-empty one).
fn product_name(name: &str, role_id: &str) -> String {
    let name: String = name.trim().chars().take(250).collect();
    if name.is_empty() {
        format!("Discord role {role_id}")
    } else {
        name
    }
}

/// Creates a Price with its Product inline (`product_data`) in one call; returns the
/// **price** id, which is what checkouts buy and what subscription items name.
///
/// Monthly/yearly → `recurring[interval]=month|year`; one-time and lifetime → a one-time
/// price; `days(n)` is refused ([`no_day_passes`]). Trial days are kept in the price's
/// metadata (`docobo_trial_days`): the checkout request does not carry them, so
/// `create-checkout` reads them back and sets `subscription_data[trial_period_days]`.
pub fn create_product<H: Host>(
    host: &H,
    config: &[(String, String)],
    spec: &ProductSpec,
) -> Result<String, ProviderError> {
    let interval = match spec.billing {
        Billing::Monthly => Some("month"),
        Billing::Yearly => Some("year"),
        Billing::OneTime | Billing::Lifetime => None,
        Billing::Days(n) => return Err(no_day_passes(n)),
    };
    if spec.price.minor_units <= 0 {
        return Err(ProviderError::Misconfigured(
            "the price must be more than zero".into(),
        ));
    }
    let trial = spec.trial_days.filter(|&d| d > 0);
    if let Some(days) = trial {
        if interval.is_none() {
            return Err(ProviderError::Misconfigured(
                "a free trial needs monthly or yearly billing".into(),
            ));
        }
        if days > MAX_TRIAL_DAYS {
            return Err(ProviderError::Misconfigured(format!(
                "Stripe allows free trials of at most {MAX_TRIAL_DAYS} days"
            )));
        }
    }
    let api = ApiSettings::from_config(config)?;
    let ids = [
        (META_GUILD, spec.guild_id.as_str()),
        (META_ROLE, spec.role_id.as_str()),
    ];
    let trial_text = trial.map(|d| d.to_string());
    let mut form = Form::new()
        .field("currency", spec.price.currency.to_ascii_lowercase())
        .field("unit_amount", spec.price.minor_units.to_string())
        .field_opt("recurring[interval]", interval)
        .field(
            "product_data[name]",
            product_name(&spec.name, &spec.role_id),
        )
        .nested("product_data[metadata]", &ids)
        .nested("metadata", &ids);
    if let Some(days) = &trial_text {
        form = form.field(format!("metadata[{META_TRIAL_DAYS}]"), days.as_str());
    }
    let resp = send(host, &api.post("/v1/prices", &form))?;
    str_field(&resp, "id")
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Upstream("Stripe's new price has no id".into()))
}

/// The checkout mode for a billing; `days(n)` is refused.
fn mode(billing: Billing) -> Result<&'static str, ProviderError> {
    match billing {
        Billing::Monthly | Billing::Yearly => Ok("subscription"),
        Billing::OneTime | Billing::Lifetime => Ok("payment"),
        Billing::Days(n) => Err(no_day_passes(n)),
    }
}

/// Reads the price a subscription checkout sells: checks it is recurring and returns its
/// trial days (`metadata.docobo_trial_days`, else the legacy `recurring.trial_period_days`).
fn price_trial_days<H: Host>(
    host: &H,
    api: &ApiSettings<'_>,
    price_id: &str,
) -> Result<Option<u32>, ProviderError> {
    let price = send(
        host,
        &api.get(&object_path("prices", price_id), &Form::new()),
    )?;
    if str_field(&price, "type") == Some("one_time") {
        return Err(ProviderError::Misconfigured(format!(
            "the Stripe price {price_id} is one-time, but this role is billed as a subscription"
        )));
    }
    let from_metadata = price
        .get("metadata")
        .and_then(|m| str_field(m, META_TRIAL_DAYS))
        .and_then(|d| d.parse::<u32>().ok());
    let legacy = price
        .get("recurring")
        .and_then(|r| r.get("trial_period_days"))
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok());
    Ok(from_metadata
        .or(legacy)
        .filter(|&d| d > 0 && d <= MAX_TRIAL_DAYS))
}

/// Creates a Checkout Session for one price.
///
/// The Discord ids go in the session's `metadata` and, so that every later object carries
/// them, in `subscription_data[metadata]` (subscriptions, and their invoices'
/// `subscription_details`) or `payment_intent_data[metadata]` (one-time: the
/// `PaymentIntent` and its charge). `client_reference_id` is `{guild}_{role}_{user}`.
/// One-time checkouts set `customer_creation=always` so a customer id (for the billing
/// portal) exists. The success URL is the request's, else the `success_url` setting, else
/// the Discord server (`https://discord.com/channels/{guild}`).
pub fn create_checkout<H: Host>(
    host: &H,
    config: &[(String, String)],
    request: &CheckoutRequest,
) -> Result<Checkout, ProviderError> {
    let mode = mode(request.billing)?;
    let api = ApiSettings::from_config(config)?;
    let price = request
        .product_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ProviderError::Misconfigured("this role has no Stripe price yet".into()))?;
    let trial = if mode == "subscription" {
        price_trial_days(host, &api, price)?
    } else {
        None
    };
    let success_url = request
        .success_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .or_else(|| config_get(config, "success_url"))
        .map_or_else(
            || format!("https://discord.com/channels/{}", request.guild_id),
            str::to_string,
        );
    let ids = [
        (META_GUILD, request.guild_id.as_str()),
        (META_USER, request.user_id.as_str()),
        (META_ROLE, request.role_id.as_str()),
        (META_PRICE, price),
    ];
    let mut form = Form::new()
        .field("mode", mode)
        .field("line_items[0][price]", price)
        .field("line_items[0][quantity]", "1")
        .field("success_url", success_url)
        .field(
            "client_reference_id",
            format!(
                "{}_{}_{}",
                request.guild_id, request.role_id, request.user_id
            ),
        )
        .nested("metadata", &ids);
    if mode == "subscription" {
        form = form.nested("subscription_data[metadata]", &ids).field_opt(
            "subscription_data[trial_period_days]",
            trial.map(|d| d.to_string()),
        );
    } else {
        form = form
            .nested("payment_intent_data[metadata]", &ids)
            .field("customer_creation", "always");
    }
    let idempotency_key = format!(
        "docobo-checkout-{}-{}-{}-{:016x}",
        request.guild_id, request.role_id, request.user_id, request.nonce
    );
    let resp = send(
        host,
        &api.post("/v1/checkout/sessions", &form)
            .header("idempotency-key", idempotency_key),
    )?;
    let url = str_field(&resp, "url")
        .ok_or_else(|| ProviderError::Upstream("Stripe's checkout session has no url".into()))?;
    Ok(Checkout {
        url: Some(url.to_string()),
        expires_at: resp
            .get("expires_at")
            .and_then(Value::as_i64)
            .and_then(|s| s.checked_mul(1000)),
        ..Checkout::default()
    })
}

/// Asks Stripe which subscription a payment belongs to, for refunds and disputes.
#[derive(Debug)]
pub struct HostLookup<'h, 'c, H> {
    host: &'h H,
    config: &'c [(String, String)],
}

impl<'h, 'c, H: Host> HostLookup<'h, 'c, H> {
    /// A lookup through `host` with the `secret_key` from `config` (read when needed).
    pub fn new(host: &'h H, config: &'c [(String, String)]) -> Self {
        Self { host, config }
    }

    fn api(&self) -> Result<ApiSettings<'c>, MapError> {
        ApiSettings::from_config(self.config).map_err(|e| {
            MapError::Misconfigured(format!(
                "a refund or dispute needs the secret key to find its subscription: {}",
                error_text(&e)
            ))
        })
    }

    fn fetch(&self, req: &HttpRequest) -> Result<Value, Failure> {
        send_raw(self.host, req)
    }
}

/// The message inside a [`ProviderError`].
#[must_use]
pub fn error_text(e: &ProviderError) -> &str {
    match e {
        ProviderError::InvalidCredentials(m)
        | ProviderError::Misconfigured(m)
        | ProviderError::Upstream(m)
        | ProviderError::Unsupported(m) => m,
    }
}

fn lookup_failed(what: &str, f: &Failure) -> MapError {
    MapError::Lookup(format!(
        "could not ask Stripe which subscription {what} belongs to: {}",
        error_text(&f.error)
    ))
}

impl<H: Host> SubscriptionLookup for HostLookup<'_, '_, H> {
    fn subscription_of_invoice(&self, invoice_id: &str) -> Result<Option<String>, MapError> {
        let api = self.api()?;
        let invoice = self
            .fetch(&api.get(&object_path("invoices", invoice_id), &Form::new()))
            .map_err(|f| lookup_failed("the invoice", &f))?;
        Ok(events::invoice_subscription(&invoice))
    }

    /// `GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=…`
    /// with the invoice expanded (API 2025-03-31 and later); when that lists nothing or is
    /// unknown (older versions), `GET /v1/payment_intents/{id}` and its `invoice`.
    fn subscription_of_payment_intent(&self, pi: &str) -> Result<Option<String>, MapError> {
        let api = self.api()?;
        let query = Form::new()
            .field("payment[type]", "payment_intent")
            .field("payment[payment_intent]", pi)
            .field("expand[]", "data.invoice")
            .field("limit", "1");
        match self.fetch(&api.get("/v1/invoice_payments", &query)) {
            Ok(list) => {
                let first = list
                    .get("data")
                    .and_then(Value::as_array)
                    .and_then(|d| d.first());
                if let Some(invoice) = first.and_then(|p| p.get("invoice")) {
                    if invoice.is_object() {
                        return Ok(events::invoice_subscription(invoice));
                    }
                    if let Some(id) = invoice.as_str() {
                        return self.subscription_of_invoice(id);
                    }
                }
            }
            Err(f) if matches!(f.status, 400 | 404) => {}
            Err(f) => return Err(lookup_failed("the payment", &f)),
        }
        let intent = self
            .fetch(&api.get(&object_path("payment_intents", pi), &Form::new()))
            .map_err(|f| lookup_failed("the payment", &f))?;
        match intent.get("invoice") {
            Some(obj @ Value::Object(_)) => Ok(events::invoice_subscription(obj)),
            Some(Value::String(id)) if !id.is_empty() => self.subscription_of_invoice(id),
            _ => Ok(None),
        }
    }
}

fn event_query(page_limit: u32) -> Form {
    let mut form = Form::new().field("limit", page_limit.to_string());
    for t in events::WEBHOOK_EVENTS {
        form = form.field("types[]", t);
    }
    form
}

/// Lists the events the plugin reads, oldest first from the cursor, and maps them as their
/// webhooks would be (same event ids: a polled copy of a delivered event dedupes).
///
/// Stripe lists events **newest first**. The cursor is the id of the newest event already
/// returned:
///
/// * without a cursor, one page of the newest events of the last three days
///   (`created[gte]`) is read; older ones beyond that page are skipped (logged);
/// * with one, `ending_before=<cursor>` returns the page of events just newer than it
///   (still newest first); while `has_more`, the next page is `ending_before=<the newest
///   id of this page>`, up to [`POLL_MAX_PAGES`] pages per call.
///
/// Each page is handled oldest first and the cursor advances event by event, so when a
/// refund's subscription lookup fails (or the host's fetch budget runs out) the call stops
/// there and the next poll resumes at that event. A cursor Stripe no longer knows (events
/// are kept 30 days) restarts as without a cursor.
pub fn poll<H: Host>(
    host: &H,
    config: &[(String, String)],
    cursor: Option<&str>,
) -> Result<PollResult, ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let lookup = HostLookup::new(host, config);
    let now = host.now_ms();
    let mut result = PollResult {
        events: Vec::new(),
        next_cursor: cursor.map(str::to_string),
    };
    let mut before = cursor.filter(|c| !c.is_empty()).map(str::to_string);
    for page in 0..POLL_MAX_PAGES {
        let mut query = event_query(POLL_PAGE_SIZE);
        query = match &before {
            Some(id) => query.field("ending_before", id.as_str()),
            None => query.field(
                "created[gte]",
                ((now - FIRST_POLL_LOOKBACK_MS) / 1000).to_string(),
            ),
        };
        let list = match send_raw(host, &api.get("/v1/events", &query)) {
            Ok(list) => list,
            Err(f) if page == 0 && before.is_some() && matches!(f.status, 400 | 404) => {
                host.log(
                    LogLevel::Warn,
                    "stripe poll: the cursor event is no longer listed; restarting from the \
                     last three days",
                );
                return poll(host, config, None);
            }
            Err(f) => return Err(f.into()),
        };
        let data = list
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| ProviderError::Upstream("Stripe's event list has no data".into()))?;
        let has_more = list.get("has_more").and_then(Value::as_bool) == Some(true);
        if before.is_none() && has_more {
            host.log(
                LogLevel::Warn,
                "stripe poll: more than one page of events in the last three days; only the \
                 newest page is read",
            );
        }
        for item in data.iter().rev() {
            let Some(id) = str_field(item, "id") else {
                continue;
            };
            match events::map_event(&lookup, item, now) {
                Ok(event) => result.events.push(event),
                Err(MapError::Malformed(e)) => host.log(
                    LogLevel::Warn,
                    &format!("stripe poll: skipped event {id}: {e}"),
                ),
                Err(MapError::Lookup(e) | MapError::Misconfigured(e)) => {
                    host.log(
                        LogLevel::Warn,
                        &format!("stripe poll: stopped at event {id}: {e}"),
                    );
                    return Ok(result);
                }
            }
            result.next_cursor = Some(id.to_string());
        }
        // Without a cursor only the newest page is read (see above).
        if data.is_empty() || !has_more || before.is_none() {
            break;
        }
        before.clone_from(&result.next_cursor);
    }
    host.log(
        LogLevel::Debug,
        &format!("stripe poll: {} event(s)", result.events.len()),
    );
    Ok(result)
}

/// The customer of a subscription (`sub_…`) or one-time purchase (`pi_…`).
fn customer_of<H: Host>(
    host: &H,
    api: &ApiSettings<'_>,
    purchase: &str,
) -> Result<Option<String>, ProviderError> {
    let resource = if purchase.starts_with("sub_") {
        "subscriptions"
    } else if purchase.starts_with("pi_") {
        "payment_intents"
    } else {
        return Ok(None);
    };
    let object = send(
        host,
        &api.get(&object_path(resource, purchase), &Form::new()),
    )?;
    Ok(id_field(&object, "customer"))
}

/// A Billing Portal session for the member's customer: `POST /v1/billing_portal/sessions`
/// with `customer` (from the request, else read from the subscription or payment) and
/// `return_url` (the request's, else the `manage_return_url` setting, else the portal
/// configuration's default).
pub fn manage_link<H: Host>(
    host: &H,
    config: &[(String, String)],
    request: &ManageLinkRequest,
) -> Result<String, ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let customer = match request.customer_id.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => customer_of(host, &api, &request.subscription_id)?.ok_or_else(|| {
            ProviderError::Upstream(format!(
                "Stripe has no customer for {}: nothing to manage",
                request.subscription_id
            ))
        })?,
    };
    let return_url = request
        .return_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .or_else(|| config_get(config, "manage_return_url"));
    let form = Form::new()
        .field("customer", customer)
        .field_opt("return_url", return_url);
    let resp = send(host, &api.post("/v1/billing_portal/sessions", &form))?;
    str_field(&resp, "url")
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Upstream("Stripe's portal session has no url".into()))
}

/// One subscription as a [`Subscriber`]; `None` when it does not entitle (or is not yet
/// paid): pending, paused, revoked, or an unknown status.
#[must_use]
pub fn subscriber(sub: &Value) -> Option<Subscriber> {
    use SubscriptionStatus as S;
    let id = str_field(sub, "id")?;
    let status = events::subscription_object_status(sub)?;
    if !matches!(status, S::Active | S::Trialing | S::PastDue | S::Canceled) {
        return None;
    }
    let metadata = sub.get("metadata");
    let meta = |key: &str| {
        metadata
            .and_then(|m| m.get(key))
            .and_then(events::discord_id)
    };
    let item = sub
        .get("items")
        .and_then(|i| i.get("data"))
        .and_then(Value::as_array)
        .and_then(|d| d.first());
    let amount = item.and_then(|item| {
        let price = item.get("price")?;
        let unit = price.get("unit_amount")?.as_i64()?;
        let quantity = item.get("quantity").and_then(Value::as_i64).unwrap_or(1);
        Some(docobo_plugin_sdk::Money {
            minor_units: unit.checked_mul(quantity)?,
            currency: str_field(price, "currency")?.to_ascii_uppercase(),
        })
    });
    Some(Subscriber {
        subscription_id: id.to_string(),
        customer_id: id_field(sub, "customer"),
        guild_id: meta(META_GUILD),
        user_id: meta(META_USER),
        role_id: meta(META_ROLE),
        product_id: events::subscription_price(sub),
        status,
        period_end: events::subscription_period_end(sub),
        amount,
        test: sub.get("livemode").and_then(Value::as_bool) == Some(false),
    })
}

/// One page of current subscriptions: `GET /v1/subscriptions?limit=100` (Stripe's default
/// status filter: every status but `canceled`), from `starting_after=<cursor>`. Entitling
/// ones are returned (see [`subscriber`]); the next cursor is the page's last id while
/// `has_more`.
pub fn list_subscribers<H: Host>(
    host: &H,
    config: &[(String, String)],
    cursor: Option<&str>,
) -> Result<SubscriberPage, ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let query = Form::new()
        .field("limit", SUBSCRIBERS_PAGE_SIZE.to_string())
        .field_opt("starting_after", cursor.filter(|c| !c.is_empty()));
    let list = send(host, &api.get("/v1/subscriptions", &query))?;
    let data = list
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Upstream("Stripe's subscription list has no data".into()))?;
    let has_more = list.get("has_more").and_then(Value::as_bool) == Some(true);
    Ok(SubscriberPage {
        subscribers: data.iter().filter_map(subscriber).collect(),
        next_cursor: if has_more {
            data.last()
                .and_then(|s| str_field(s, "id"))
                .map(str::to_string)
        } else {
            None
        },
    })
}

/// A `checkout.session.completed` event (`livemode: false`) for a test purchase, signed
/// with the configured webhook secret exactly as Stripe signs (`t=<now>,v1=<hex>`).
pub fn test_delivery(
    config: &[(String, String)],
    request: &TestDeliveryRequest,
    now: i64,
) -> Result<SignedDelivery, ProviderError> {
    let mode = mode(request.billing)?;
    let secret = config_require(config, "webhook_secret").map_err(ProviderError::Misconfigured)?;
    let n = format!("{:016x}", request.nonce);
    let now_s = now.div_euclid(1000);
    let mut metadata = json!({
        META_GUILD: request.guild_id,
        META_USER: request.user_id,
        META_ROLE: request.role_id,
    });
    if let Some(price) = request.product_id.as_deref().filter(|p| !p.is_empty()) {
        metadata[META_PRICE] = Value::from(price);
    }
    let subscription = (mode == "subscription").then(|| format!("sub_test_docobo_{n}"));
    let payment_intent = (mode == "payment").then(|| format!("pi_test_docobo_{n}"));
    let body = json!({
        "id": format!("evt_test_docobo_{n}"),
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": now_s,
        "data": {"object": {
            "id": format!("cs_test_docobo_{n}"),
            "object": "checkout.session",
            "amount_total": request.price.minor_units,
            "currency": request.price.currency.to_ascii_lowercase(),
            "client_reference_id": format!("{}_{}_{}", request.guild_id, request.role_id, request.user_id),
            "customer": format!("cus_test_docobo_{n}"),
            "livemode": false,
            "metadata": metadata,
            "mode": mode,
            "payment_intent": payment_intent,
            "payment_status": "paid",
            "status": "complete",
            "subscription": subscription,
        }},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "checkout.session.completed",
    })
    .to_string()
    .into_bytes();
    let header = verify::sign(secret, now_s, &body)
        .map_err(|_| ProviderError::Misconfigured("the webhook secret is unusable".into()))?;
    Ok(SignedDelivery {
        headers: vec![
            (verify::HEADER.to_string(), header),
            (
                "content-type".to_string(),
                "application/json; charset=utf-8".to_string(),
            ),
        ],
        body,
    })
}
