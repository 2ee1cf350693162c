//! An unfinished `/setup` and its steps, as pure transitions: each takes what the admin
//! picked or typed and says what to show next ([`Step`]). No Discord, no database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::db::paid_roles::PaidRole;
use crate::discord::custom_id::InputId;
use crate::discord::directory::{GuildSnapshot, Refusal};
use crate::discord::ui::{parse_price, price_input};
use crate::domain::{GuildId, RoleId, UserId};
use crate::providers::PluginInfo;
use crate::shop::{ShopDraft, currency_refusal};

/// Inputs per modal (Discord's limit).
pub(super) const PAGE: usize = 5;
/// How long an unfinished `/setup` is remembered (an interaction token's life).
pub(super) const SESSION_TTL: Duration = Duration::from_mins(15);

/// How many modal pages `n` inputs take.
pub(super) fn pages(n: usize) -> usize {
    n.div_ceil(PAGE).max(1)
}

/// A role and its name.
pub(super) type Named = (RoleId, String);
/// A role Docobo cannot sell, and why.
pub(super) type Problem = (RoleId, Refusal);

/// An unfinished `/setup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// The roles picked, with their names.
    pub(super) roles: Vec<Named>,
    /// What the admin typed for each role's price (pre-filled with the saved price).
    pub(super) price_inputs: Vec<String>,
    pub(super) provider: Option<String>,
    /// Credential fields typed so far (empty: keep the saved value).
    pub(super) cred_inputs: BTreeMap<String, String>,
    started: Instant,
}

/// What `/setup` shows next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Some prices do not parse (the role and why): the same page again, behind a button.
    FixPrices {
        page: usize,
        errors: Vec<(RoleId, String)>,
    },
    /// Page `done` of the prices is noted; the next one is behind a button (a modal cannot
    /// open a modal).
    MorePrices { done: usize, total: usize },
    /// Every price parses: pick the provider.
    PickProvider,
    /// The provider picked does not take some prices' currency (the owner's fix): back to
    /// the prices, behind a button.
    WrongCurrency(String),
    /// The credentials modal's page.
    Credentials { page: usize },
    /// Page `done` of the credentials is noted; the next one is behind a button.
    MoreCredentials { done: usize, total: usize },
    /// Everything is typed: validate with the provider and save.
    Save,
}

/// The roles picked, checked against the role hierarchy: the ones Docobo can sell with their
/// names, or why it cannot sell some (an empty list: none were picked).
pub(super) fn check_roles(
    snapshot: &GuildSnapshot,
    guild: GuildId,
    picked: &[RoleId],
) -> Result<Vec<Named>, Vec<Problem>> {
    let mut sellable = Vec::new();
    let mut problems = Vec::new();
    for &role in picked {
        match snapshot.can_manage(guild, role) {
            Ok(()) => sellable.push((role, snapshot.role_name(role))),
            Err(refusal) => problems.push((role, refusal)),
        }
    }
    if problems.is_empty() && !sellable.is_empty() {
        Ok(sellable)
    } else {
        Err(problems)
    }
}

impl Session {
    /// The roles are picked: the prices start from the saved ones. Next: the first page of
    /// prices.
    pub(super) fn new(roles: Vec<Named>, saved: &[PaidRole], started: Instant) -> Self {
        let price_inputs = roles
            .iter()
            .map(|(role, _)| {
                saved
                    .iter()
                    .find(|p| p.role_id == *role)
                    .map(|p| price_input(p.price, p.billing))
                    .unwrap_or_default()
            })
            .collect();
        Self {
            roles,
            price_inputs,
            provider: None,
            cred_inputs: BTreeMap::new(),
            started,
        }
    }

    /// A page of prices was submitted.
    pub(super) fn prices_submitted(&mut self, typed: &[(InputId, String)], page: usize) -> Step {
        let mut errors = Vec::new();
        for (input, text) in typed {
            let InputId::Price(role) = input else {
                continue;
            };
            let Some(index) = self.roles.iter().position(|(r, _)| r == role) else {
                continue;
            };
            text.trim().clone_into(&mut self.price_inputs[index]);
            if let Err(e) = parse_price(text) {
                errors.push((*role, e));
            }
        }
        let total = pages(self.roles.len());
        if !errors.is_empty() {
            Step::FixPrices { page, errors }
        } else if page + 1 < total {
            Step::MorePrices { done: page, total }
        } else {
            Step::PickProvider
        }
    }

    /// The provider was picked: the credentials typed for another one are dropped. A price
    /// in a currency it does not take is sent back before any credential is asked for.
    pub(super) fn provider_picked(&mut self, plugin: &PluginInfo) -> Step {
        self.provider = Some(plugin.id.to_string());
        self.cred_inputs.clear();
        if let Some(problem) = currency_refusal(plugin, &self.roles, &self.price_inputs) {
            return Step::WrongCurrency(problem);
        }
        if plugin.config_fields.is_empty() {
            Step::Save
        } else {
            Step::Credentials { page: 0 }
        }
    }

    /// A page of credentials was submitted; the provider has `fields` of them.
    pub(super) fn credentials_submitted(
        &mut self,
        typed: &[(InputId, String)],
        page: usize,
        fields: usize,
    ) -> Step {
        for (input, text) in typed {
            if let InputId::Cred(key) = input {
                self.cred_inputs.insert(key.clone(), text.trim().to_owned());
            }
        }
        let total = pages(fields);
        if page + 1 < total {
            Step::MoreCredentials { done: page, total }
        } else {
            Step::Save
        }
    }

    /// What the shop service saves; `None` before a provider is picked.
    pub(super) fn draft(&self) -> Option<ShopDraft> {
        Some(ShopDraft {
            provider: self.provider.clone()?,
            roles: self.roles.clone(),
            prices: self.price_inputs.clone(),
            credentials: self.cred_inputs.clone(),
        })
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) >= SESSION_TTL
    }
}

/// The `/setup`s in progress, per (guild, admin), each for [`SESSION_TTL`].
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<(GuildId, UserId), Session>>);

impl Sessions {
    pub(super) fn get(&self, key: (GuildId, UserId)) -> Option<Session> {
        self.get_at(key, Instant::now())
    }

    fn get_at(&self, key: (GuildId, UserId), now: Instant) -> Option<Session> {
        let mut sessions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| !s.expired(now));
        sessions.get(&key).cloned()
    }

    pub(super) fn put(&self, key: (GuildId, UserId), session: Session) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, session);
    }

    pub(super) fn end(&self, key: (GuildId, UserId)) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::directory::RoleInfo;
    use crate::domain::{Billing, Currency, Money};
    use crate::providers::{CacheOutcome, ConfigField, PluginSource};

    fn role(n: u64) -> RoleId {
        RoleId::new(n).expect("role")
    }

    fn roles(n: u64) -> Vec<(RoleId, String)> {
        (1..=n).map(|i| (role(100 + i), format!("R{i}"))).collect()
    }

    fn price(r: RoleId, text: &str) -> (InputId, String) {
        (InputId::Price(r), text.to_owned())
    }

    fn plugin(fields: usize) -> PluginInfo {
        PluginInfo {
            id: crate::domain::ProviderId::parse("polar").expect("id"),
            name: "Polar".into(),
            version: "1.0.0".into(),
            api_version: "0.1.0".into(),
            config_fields: (0..fields)
                .map(|i| ConfigField {
                    key: format!("k{i}"),
                    label: format!("K{i}"),
                    help: String::new(),
                    required: true,
                    secret: false,
                    default_value: None,
                    identifies_account: false,
                })
                .collect(),
            hosts: vec![],
            allowed_hosts: vec![],
            needs_products: false,
            supports_poll: false,
            capabilities: crate::providers::Capabilities::default(),
            webhook_events: vec![],
            webhook_ack: None,
            currencies: vec![],
            source: PluginSource::Builtin,
            cache: CacheOutcome::Compiled,
        }
    }

    #[test]
    fn picked_roles_start_from_the_saved_prices() {
        let saved = PaidRole {
            id: 1,
            guild_id: GuildId::new(1).expect("guild"),
            role_id: role(102),
            name: "R2".into(),
            price: Money::new(499, Currency::parse("USD").expect("USD")).expect("price"),
            billing: Billing::Yearly,
            product_ref: None,
        };
        let session = Session::new(roles(2), &[saved], Instant::now());
        assert_eq!(session.price_inputs, ["", "4.99 USD yearly"]);
        assert!(session.draft().is_none(), "no provider yet");
    }

    #[test]
    fn roles_the_bot_cannot_manage_are_refused_with_the_reason() {
        let guild = GuildId::new(1).expect("guild");
        let mut snapshot = GuildSnapshot {
            name: "g".into(),
            owner_id: None,
            roles: HashMap::new(),
            bot_roles: Some(vec![role(9)]),
        };
        let info = |position, permissions| RoleInfo {
            name: format!("at {position}"),
            position,
            permissions,
            managed: false,
        };
        snapshot
            .roles
            .insert(role(9), info(5, crate::discord::directory::MANAGE_ROLES));
        snapshot.roles.insert(role(2), info(1, 0));
        assert_eq!(
            check_roles(&snapshot, guild, &[role(2)]),
            Ok(vec![(role(2), "at 1".to_owned())])
        );
        let refused = check_roles(&snapshot, guild, &[role(2), role(3)]).expect_err("unknown");
        assert_eq!(refused, vec![(role(3), Refusal::UnknownRole)]);
        assert_eq!(check_roles(&snapshot, guild, &[]), Err(vec![]));
    }

    #[test]
    fn prices_go_page_by_page_and_bad_ones_are_sent_back() {
        let mut session = Session::new(roles(7), &[], Instant::now());
        let first: Vec<_> = (1..=5).map(|i| price(role(100 + i), " 5 USD ")).collect();
        assert_eq!(
            session.prices_submitted(&first, 0),
            Step::MorePrices { done: 0, total: 2 }
        );
        assert_eq!(session.price_inputs[0], "5 USD", "trimmed");
        let bad = [price(role(106), "5 dollars"), price(role(107), "1 EUR")];
        let Step::FixPrices { page: 1, errors } = session.prices_submitted(&bad, 1) else {
            panic!("the bad price is sent back");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, role(106));
        assert!(errors[0].1.contains("dollars"), "{errors:?}");
        // An input for a role not picked is ignored.
        let fixed = [price(role(106), "5 EUR"), price(role(999), "x")];
        assert_eq!(session.prices_submitted(&fixed, 1), Step::PickProvider);
        assert_eq!(session.price_inputs[5..], ["5 EUR", "1 EUR"]);
    }

    #[test]
    fn credentials_go_page_by_page_then_save() {
        let mut session = Session::new(roles(1), &[], Instant::now());
        session.cred_inputs.insert("old".into(), "x".into());
        assert_eq!(
            session.provider_picked(&plugin(7)),
            Step::Credentials { page: 0 }
        );
        assert!(
            session.cred_inputs.is_empty(),
            "another provider's fields are dropped"
        );
        let typed = [
            (InputId::Cred("k0".into()), " token ".to_owned()),
            (InputId::Price(role(101)), "ignored".to_owned()),
        ];
        assert_eq!(
            session.credentials_submitted(&typed, 0, 7),
            Step::MoreCredentials { done: 0, total: 2 }
        );
        assert_eq!(session.credentials_submitted(&[], 1, 7), Step::Save);
        let draft = session.draft().expect("a provider");
        assert_eq!(draft.provider, "polar");
        assert_eq!(
            draft.credentials.get("k0").map(String::as_str),
            Some("token")
        );
        assert_eq!(
            session.provider_picked(&plugin(0)),
            Step::Save,
            "nothing to type"
        );
    }

    #[test]
    fn a_price_the_provider_does_not_take_is_sent_back_at_the_pick() {
        let mut session = Session::new(roles(2), &[], Instant::now());
        session.price_inputs = vec!["50000 VND 30 days".into(), "4.99 USD".into()];
        let mut sepay = plugin(3);
        sepay.name = "SePay".into();
        sepay.currencies = vec![Currency::parse("VND").expect("VND")];
        let Step::WrongCurrency(text) = session.provider_picked(&sepay) else {
            panic!("USD is refused");
        };
        assert!(text.contains("SePay takes prices in VND only"), "{text}");
        assert!(text.contains("<@&102>: 4.99 USD"), "{text}");
        assert!(!text.contains("<@&101>"), "the VND price is fine: {text}");
        session.price_inputs[1] = "120000 VND".into();
        assert_eq!(
            session.provider_picked(&sepay),
            Step::Credentials { page: 0 }
        );
        sepay.currencies.push(Currency::parse("EUR").expect("EUR"));
        session.price_inputs[1] = "5 USD".into();
        let Step::WrongCurrency(text) = session.provider_picked(&sepay) else {
            panic!("USD is still refused");
        };
        assert!(text.contains("in VND or EUR."), "{text}");
    }

    #[test]
    fn sessions_expire_after_fifteen_minutes() {
        let sessions = Sessions::default();
        let key = (
            GuildId::new(1).expect("guild"),
            UserId::new(2).expect("user"),
        );
        let start = Instant::now();
        sessions.put(key, Session::new(roles(1), &[], start));
        assert!(
            sessions
                .get_at(key, start + Duration::from_mins(14))
                .is_some()
        );
        assert!(sessions.get_at(key, start + SESSION_TTL).is_none());
        assert!(sessions.get(key).is_none(), "dropped once expired");
        sessions.put(key, Session::new(roles(1), &[], Instant::now()));
        sessions.end(key);
        assert!(sessions.get(key).is_none());
    }
}
