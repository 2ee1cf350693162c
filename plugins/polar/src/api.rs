//! Calls to the Polar API (`docs/providers.md` §1.6), written against [`Host`] so native
//! tests can drive them with a [`docobo_plugin_sdk::MockHost`].

use docobo_plugin_sdk::time::{format_rfc3339_ms, parse_rfc3339_ms};
use docobo_plugin_sdk::{
    Billing, Checkout, CheckoutRequest, Host, HttpRequest, LogLevel, ManageLinkRequest, PollResult,
    ProductSpec, ProviderError, ProviderEvent, Subscriber, SubscriberPage, SubscriptionStatus,
    config_get, config_or, config_require,
};
use serde_json::{Value, json};

use crate::events;

/// Production API base.
pub const PRODUCTION_URL: &str = "https://api.polar.sh";
/// Sandbox API base.
pub const SANDBOX_URL: &str = "https://sandbox-api.polar.sh";

/// Subscriptions per page when polling.
pub const POLL_PAGE_SIZE: u32 = 100;
/// Pages fetched by one `poll` call (the host caps fetches per call).
pub const POLL_MAX_PAGES: u32 = 3;
/// How far back the first poll looks.
pub const FIRST_POLL_LOOKBACK_MS: i64 = 3 * 86_400_000;
/// A finished sweep restarts from its start minus this much (clock skew, slow writes).
pub const POLL_OVERLAP_MS: i64 = 10 * 60_000;

/// What the API calls need from the configuration.
#[derive(Debug)]
pub struct ApiSettings<'a> {
    token: &'a str,
    /// Base URL without a trailing slash or `/v1`.
    pub base: String,
}

impl<'a> ApiSettings<'a> {
    /// Reads `access_token`, `environment` and `api_url`.
    pub fn from_config(config: &'a [(String, String)]) -> Result<Self, ProviderError> {
        let token = config_require(config, "access_token").map_err(ProviderError::Misconfigured)?;
        let environment = config_or(config, "environment", "production");
        let default_base = if environment.eq_ignore_ascii_case("production") {
            PRODUCTION_URL
        } else if environment.eq_ignore_ascii_case("sandbox") {
            SANDBOX_URL
        } else {
            return Err(ProviderError::Misconfigured(format!(
                "environment must be `production` or `sandbox`, not `{environment}`"
            )));
        };
        let base = match config_get(config, "api_url") {
            None => default_base.to_string(),
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
        Ok(Self { token, base })
    }

    fn request(&self, method: &str, path_and_query: &str) -> HttpRequest {
        HttpRequest::new(method, format!("{}/v1/{path_and_query}", self.base))
            .bearer(self.token)
            .header("accept", "application/json")
    }
}

/// Sends a request and returns the JSON body of a 2xx answer.
fn send<H: Host>(host: &H, req: &HttpRequest) -> Result<Value, ProviderError> {
    let resp = host
        .http_fetch(req)
        .map_err(|e| ProviderError::Upstream(format!("Polar could not be reached: {e}")))?;
    match resp.status {
        401 => Err(ProviderError::InvalidCredentials(
            "Polar rejected the access token (401): it is wrong, expired or revoked".into(),
        )),
        403 => Err(ProviderError::InvalidCredentials(
            "the Polar access token lacks a scope (403): it needs checkouts:write, \
             products:write, subscriptions:read and customer_sessions:write"
                .into(),
        )),
        s if (200..300).contains(&s) => serde_json::from_slice(&resp.body).map_err(|_| {
            ProviderError::Upstream(format!("Polar answered {s} with a body that is not JSON"))
        }),
        s => Err(ProviderError::Upstream(format!(
            "Polar answered {s}: {}",
            resp.text_snippet(300)
        ))),
    }
}

/// Checks the token with one-item list calls on every resource the plugin uses.
pub fn validate_credentials<H: Host>(
    host: &H,
    config: &[(String, String)],
) -> Result<(), ProviderError> {
    let api = ApiSettings::from_config(config)?;
    config_require(config, "webhook_secret").map_err(ProviderError::Misconfigured)?;
    for path in [
        "checkouts/?limit=1",
        "products/?limit=1",
        "subscriptions/?limit=1",
    ] {
        send(host, &api.request("GET", path))?;
    }
    Ok(())
}

/// A Polar product name (3–64 characters) for a role name.
fn product_name(name: &str) -> String {
    let name: String = name.trim().chars().take(64).collect();
    if name.chars().count() >= 3 {
        name
    } else {
        format!("Discord role {name}").trim().to_string()
    }
}

/// Creates a product with one fixed price; returns its id.
pub fn create_product<H: Host>(
    host: &H,
    config: &[(String, String)],
    spec: &ProductSpec,
) -> Result<String, ProviderError> {
    let interval = match spec.billing {
        Billing::Monthly => Value::from("month"),
        Billing::Yearly => Value::from("year"),
        // Polar's one-time products never end: the host decides what a one-time payment
        // entitles to.
        Billing::OneTime | Billing::Lifetime => Value::Null,
        Billing::Days(n) => {
            return Err(ProviderError::Misconfigured(format!(
                "Polar does not sell {n}-day passes"
            )));
        }
    };
    if spec.price.minor_units <= 0 {
        return Err(ProviderError::Misconfigured(
            "the price must be more than zero".into(),
        ));
    }
    let api = ApiSettings::from_config(config)?;
    let mut body = json!({
        "name": product_name(&spec.name),
        "recurring_interval": interval,
        "prices": [{
            "amount_type": "fixed",
            "price_amount": spec.price.minor_units,
            "price_currency": spec.price.currency.to_ascii_lowercase(),
        }],
        "metadata": {
            "docobo_guild_id": spec.guild_id,
            "docobo_role_id": spec.role_id,
        },
    });
    // A free trial before the first charge: Polar products carry `trial_interval` and
    // `trial_interval_count` (the product schema, docs/providers.md §1.5). Only recurring
    // products have trials; a one-time product ignores the request.
    if let Some(days) = spec.trial_days.filter(|d| *d > 0)
        && !interval.is_null()
    {
        body["trial_interval"] = Value::from("day");
        body["trial_interval_count"] = Value::from(days);
    }
    let resp = send(
        host,
        &api.request("POST", "products/").json(body.to_string()),
    )?;
    resp.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Upstream("Polar's new product has no id".into()))
}

/// Creates a checkout session for one product, carrying the Discord ids in `metadata`
/// (copied by Polar to the order and the subscription) and the user as the external
/// customer id.
pub fn create_checkout<H: Host>(
    host: &H,
    config: &[(String, String)],
    request: &CheckoutRequest,
) -> Result<Checkout, ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let product_id = request
        .product_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ProviderError::Misconfigured("this role has no Polar product yet".into()))?;
    let mut body = json!({
        "products": [product_id],
        "external_customer_id": request.user_id,
        "metadata": {
            "docobo_guild_id": request.guild_id,
            "docobo_user_id": request.user_id,
            "docobo_role_id": request.role_id,
        },
    });
    if let Some(url) = request.success_url.as_deref().filter(|u| !u.is_empty()) {
        body["success_url"] = Value::from(url);
    }
    let resp = send(
        host,
        &api.request("POST", "checkouts/").json(body.to_string()),
    )?;
    let url = resp
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ProviderError::Upstream("Polar's checkout has no url".into()))?;
    Ok(Checkout {
        url: Some(url.to_string()),
        expires_at: resp
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339_ms),
        ..Checkout::default()
    })
}

/// Where a poll sweep stands.
///
/// Polar cannot sort or filter subscriptions by modification time, so `poll` sweeps the
/// list (newest start first: new subscriptions only push older ones down, none is skipped)
/// a few pages per call, and emits those modified at or after `since`. The cursor is
/// `"{since_ms}"` between sweeps and `"{since_ms}:{next_page}:{sweep_start_ms}"` inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollCursor {
    /// Emit subscriptions modified at or after this time (unix ms).
    pub since: i64,
    /// The next page to fetch.
    pub page: u32,
    /// Host time when this sweep began.
    pub sweep_start: i64,
}

impl PollCursor {
    /// Reads a cursor; `None` or an unreadable one starts a sweep over the last three days.
    #[must_use]
    pub fn parse(cursor: Option<&str>, now: i64) -> Self {
        let fresh = Self {
            since: now - FIRST_POLL_LOOKBACK_MS,
            page: 1,
            sweep_start: now,
        };
        let Some(cursor) = cursor else { return fresh };
        let parts: Vec<&str> = cursor.split(':').collect();
        match parts.as_slice() {
            [since] => since.parse().map_or(fresh, |since| Self {
                since,
                page: 1,
                sweep_start: now,
            }),
            [since, page, start] => match (since.parse(), page.parse(), start.parse()) {
                (Ok(since), Ok(page), Ok(sweep_start)) if page >= 1 => Self {
                    since,
                    page,
                    sweep_start,
                },
                _ => fresh,
            },
            _ => fresh,
        }
    }

    /// The cursor text for the next call.
    #[must_use]
    pub fn to_cursor(self, sweep_done: bool) -> String {
        if sweep_done {
            (self.sweep_start - POLL_OVERLAP_MS)
                .max(self.since)
                .to_string()
        } else {
            format!("{}:{}:{}", self.since, self.page, self.sweep_start)
        }
    }
}

/// Lists subscriptions and emits one subscription event per Docobo subscription modified
/// since the cursor, with the event id `poll:{subscription id}:{modified ms}` (the same
/// state polled twice dedupes). Subscriptions without `metadata.docobo_guild_id` were not
/// sold by Docobo and are skipped.
pub fn poll<H: Host>(
    host: &H,
    config: &[(String, String)],
    cursor: Option<&str>,
) -> Result<PollResult, ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let now = host.now_ms();
    let mut state = PollCursor::parse(cursor, now);
    let mut events = Vec::new();
    let mut done = false;
    for _ in 0..POLL_MAX_PAGES {
        let path = format!(
            "subscriptions/?limit={POLL_PAGE_SIZE}&page={}&sorting=-started_at",
            state.page
        );
        let resp = send(host, &api.request("GET", &path))?;
        let items = resp.get("items").and_then(Value::as_array).ok_or_else(|| {
            ProviderError::Upstream("Polar's subscription list has no items".into())
        })?;
        for item in items {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            if item
                .get("metadata")
                .and_then(|m| m.get("docobo_guild_id"))
                .is_none()
            {
                continue;
            }
            let modified = item
                .get("modified_at")
                .and_then(Value::as_str)
                .or_else(|| item.get("created_at").and_then(Value::as_str))
                .and_then(parse_rfc3339_ms);
            let Some(modified) = modified else { continue };
            if modified < state.since {
                continue;
            }
            let event_id = format!("poll:{id}:{modified}");
            match events::subscription_event(
                event_id,
                "poll.subscription",
                item,
                &Value::Null,
                modified,
            ) {
                Ok(event) => events.push(event),
                Err(e) => host.log(
                    LogLevel::Warn,
                    &format!("polar poll: skipped subscription {id}: {e}"),
                ),
            }
        }
        let max_page = resp
            .get("pagination")
            .and_then(|p| p.get("max_page"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if items.is_empty() || u64::from(state.page) >= max_page {
            done = true;
            break;
        }
        state.page += 1;
    }
    if done {
        poll_orders(host, &api, state.since, &mut events)?;
    }
    host.log(
        LogLevel::Debug,
        &format!(
            "polar poll: {} event(s) since {}",
            events.len(),
            format_rfc3339_ms(state.since)
        ),
    );
    Ok(PollResult {
        events,
        next_cursor: Some(state.to_cursor(done)),
    })
}

/// One-time purchases are orders, not subscriptions: once a subscription sweep is complete,
/// the newest page of orders is read too, and each paid one-time order Docobo sold since
/// `since` becomes the payment event its `order.paid` webhook would have carried (the same
/// subscription id, the order's id, so a webhook that did arrive and its polled copy meet
/// the same subscription and the second moves nothing).
fn poll_orders<H: Host>(
    host: &H,
    api: &ApiSettings<'_>,
    since: i64,
    events: &mut Vec<ProviderEvent>,
) -> Result<(), ProviderError> {
    let path = format!("orders/?limit={POLL_PAGE_SIZE}&page=1&sorting=-created_at");
    let resp = send(host, &api.request("GET", &path))?;
    let items = resp
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Upstream("Polar's order list has no items".into()))?;
    for item in items {
        let Some(id) = item.get("id").and_then(Value::as_str) else {
            continue;
        };
        let ours = item
            .get("metadata")
            .and_then(|m| m.get("docobo_guild_id"))
            .is_some();
        let paid = item.get("status").and_then(Value::as_str) == Some("paid")
            || item.get("paid").and_then(Value::as_bool) == Some(true);
        let one_time = item.get("billing_reason").and_then(Value::as_str) == Some("purchase");
        let created = item
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339_ms);
        let Some(created) = created else { continue };
        if !ours || !paid || !one_time || created < since {
            continue;
        }
        match events::order_event(
            format!("poll:{id}:paid"),
            "poll.order",
            item,
            &Value::Null,
            created,
        ) {
            Ok(event) => events.push(event),
            Err(e) => host.log(
                LogLevel::Warn,
                &format!("polar poll: skipped order {id}: {e}"),
            ),
        }
    }
    Ok(())
}

/// A short-lived customer-portal link for one customer: a Polar customer session
/// (`POST /v1/customer-sessions/`, scope `customer_sessions:write`), whose
/// `customer_portal_url` signs the member in. By Polar customer id when Docobo has one from
/// the events, else by the external customer id Docobo's checkouts set (the Discord user id).
pub fn manage_link<H: Host>(
    host: &H,
    config: &[(String, String)],
    request: &ManageLinkRequest,
) -> Result<String, ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let mut body = match request.customer_id.as_deref().filter(|c| !c.is_empty()) {
        Some(customer) => json!({ "customer_id": customer }),
        None => json!({ "external_customer_id": request.user_id }),
    };
    if let Some(url) = request
        .return_url
        .as_deref()
        .filter(|u| u.starts_with("https://"))
    {
        body["return_url"] = Value::from(url);
    }
    let resp = send(
        host,
        &api.request("POST", "customer-sessions/")
            .json(body.to_string()),
    )?;
    resp.get("customer_portal_url")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://"))
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::Upstream("Polar's customer session has no customer_portal_url".into())
        })
}

/// One page of the organization's active subscriptions (`GET /v1/subscriptions/?active=true`,
/// Polar's "active" = active or trialing, canceled-at-period-end included). The cursor is
/// the next page number.
pub fn list_subscribers<H: Host>(
    host: &H,
    config: &[(String, String)],
    cursor: Option<&str>,
) -> Result<SubscriberPage, ProviderError> {
    let api = ApiSettings::from_config(config)?;
    let page: u32 =
        match cursor {
            None => 1,
            Some(c) => c.parse().ok().filter(|p| *p >= 1).ok_or_else(|| {
                ProviderError::Misconfigured(format!("bad subscriber cursor {c:?}"))
            })?,
        };
    let path = format!("subscriptions/?active=true&limit={POLL_PAGE_SIZE}&page={page}");
    let resp = send(host, &api.request("GET", &path))?;
    let items = resp
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Upstream("Polar's subscription list has no items".into()))?;
    let test = crate::is_sandbox(config);
    let mut subscribers = Vec::new();
    for item in items {
        match events::subscription_event(String::new(), "list.subscription", item, &Value::Null, 0)
        {
            Ok(e) => {
                let (Some(subscription_id), Some(status)) = (e.subscription_id, e.status) else {
                    continue;
                };
                // Only those that are (still) entitled: the list is for import.
                if !matches!(
                    status,
                    SubscriptionStatus::Active
                        | SubscriptionStatus::Trialing
                        | SubscriptionStatus::Canceled
                        | SubscriptionStatus::PastDue
                ) {
                    continue;
                }
                subscribers.push(Subscriber {
                    subscription_id,
                    customer_id: e.customer_id,
                    guild_id: e.guild_id,
                    user_id: e.user_id,
                    role_id: e.role_id,
                    product_id: e.product_id,
                    status,
                    period_end: e.period_end,
                    amount: e.amount,
                    test,
                });
            }
            Err(e) => host.log(
                LogLevel::Warn,
                &format!("polar subscribers: skipped an item: {e}"),
            ),
        }
    }
    let max_page = resp
        .get("pagination")
        .and_then(|p| p.get("max_page"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let next_cursor =
        (!items.is_empty() && u64::from(page) < max_page).then(|| (page + 1).to_string());
    Ok(SubscriberPage {
        subscribers,
        next_cursor,
    })
}
