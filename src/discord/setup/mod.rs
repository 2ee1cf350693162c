//! `/setup`: an admin picks roles, prices and a payment provider, and enters the provider's
//! credentials. Discord shapes the flow (docs/discord.md §4.2): a role select → price modals
//! (at most five inputs each) → a provider select → credential modals → validation with the
//! provider after a deferral → one transaction → the webhook URL to paste at the provider.
//!
//! The conversation is kept in memory per (guild, admin) for 15 minutes; nothing is stored
//! until the last step succeeds. Running `/setup` again starts from the saved configuration:
//! the current roles are pre-selected, prices pre-filled, and secret fields left empty keep
//! their saved value (secrets are never shown back).
//!
//! This module dispatches on the typed id and does the reads and writes; [`session`] holds
//! the steps (pure), [`view`] what is shown.

mod session {
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
    use crate::shop::ShopDraft;

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
        pub(super) fn prices_submitted(
            &mut self,
            typed: &[(InputId, String)],
            page: usize,
        ) -> Step {
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

        /// The provider was picked: the credentials typed for another one are dropped.
        pub(super) fn provider_picked(&mut self, plugin: &PluginInfo) -> Step {
            self.provider = Some(plugin.id.to_string());
            self.cred_inputs.clear();
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
                    })
                    .collect(),
                hosts: vec![],
                allowed_hosts: vec![],
                needs_products: false,
                supports_poll: false,
                webhook_events: vec![],
                webhook_ack: None,
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
}

mod view {
    //! What `/setup` shows: its selects, modals and buttons, and its texts.

    use std::fmt::Write as _;

    use serenity::all::{
        ButtonStyle, ChannelType, CreateActionRow, CreateButton, CreateInputText, CreateModal,
        CreateSelectMenu, CreateSelectMenuKind, CreateSelectMenuOption, InputTextStyle,
    };

    use super::session::{PAGE, Problem, Session, Step, pages};
    use crate::db::guilds::Guild;
    use crate::db::paid_roles::PaidRole;
    use crate::discord::custom_id::{CustomId, InputId, SetupId};
    use crate::discord::directory::Refusal;
    use crate::discord::notify::truncate;
    use crate::discord::reply::View;
    use crate::discord::ui::{parse_price, price_text};
    use crate::domain::ChannelId;
    use crate::providers::PluginInfo;
    use crate::shop::SavedShop;

    pub(super) const EXPIRED: &str = "This /setup has expired (15 minutes). Run /setup again.";
    pub(super) const NOT_ALLOWED: &str =
        "Only members with the Manage Server permission can set up paid roles.";
    pub(super) const PROVIDER_GONE: &str =
        "That provider is not loaded any more. Run /setup again.";

    fn id(step: SetupId) -> String {
        CustomId::Setup(step).to_string()
    }

    /// `/setup`'s first message: the saved setup (if any), and the role picker.
    pub(super) fn intro(saved: Option<&Guild>, roles: &[PaidRole]) -> View {
        let mut text = String::new();
        if let Some(provider) = saved.and_then(|g| g.provider.as_ref())
            && !roles.is_empty()
        {
            let _ = writeln!(text, "**Current setup** (provider: {provider}):");
            for role in roles {
                let _ = writeln!(
                    text,
                    "- <@&{}>: {}",
                    role.role_id,
                    price_text(role.price, role.billing)
                );
            }
            text.push_str("\nPick the roles to sell; the roles picked now replace this list.");
        } else {
            text.push_str(
            "**Set up paid roles.** Pick the roles members can buy. Docobo's own role must be above them, with the Manage Roles permission.",
        );
        }
        View::text(text).row(role_select())
    }

    /// The role picker. Not pre-filled: serenity 0.12.5 sends `default_values` ids as JSON
    /// numbers where Discord's schema wants snowflake strings.
    pub(super) fn role_select() -> CreateActionRow {
        CreateActionRow::SelectMenu(
            CreateSelectMenu::new(
                id(SetupId::Roles),
                CreateSelectMenuKind::Role {
                    default_roles: None,
                },
            )
            .placeholder("Roles to sell")
            .min_values(1)
            .max_values(25),
        )
    }

    /// The roles picked that Docobo cannot sell, and the picker again.
    pub(super) fn cannot_sell(problems: &[Problem]) -> View {
        let lines: Vec<String> = problems
            .iter()
            .map(|(role, refusal)| match refusal {
                Refusal::UnknownRole => format!("- <@&{role}>: this role no longer exists."),
                Refusal::Permission(p) => format!("- <@&{role}>: {p}."),
            })
            .collect();
        View::text(format!(
            "Docobo cannot sell these roles:\n{}\n\nFix that and pick again:",
            lines.join("\n")
        ))
        .row(role_select())
    }

    /// A page of the price inputs, pre-filled with what was typed or saved.
    pub(super) fn prices_modal(session: &Session, page: usize) -> CreateModal {
        let total = pages(session.roles.len());
        let page = page.min(total - 1);
        let inputs = session
            .roles
            .iter()
            .zip(&session.price_inputs)
            .skip(page * PAGE)
            .take(PAGE)
            .map(|((role, name), typed)| {
                let mut input = CreateInputText::new(
                    InputTextStyle::Short,
                    truncate(&format!("Price of @{name}"), 45),
                    InputId::Price(*role).to_string(),
                )
                .placeholder("4.99 USD monthly · 50000 VND 30 days · 20 EUR one-time")
                .required(true)
                .max_length(40);
                if !typed.is_empty() {
                    input = input.value(typed.clone());
                }
                CreateActionRow::InputText(input)
            })
            .collect();
        let title = if total > 1 {
            format!("Prices ({}/{total})", page + 1)
        } else {
            "Prices".to_owned()
        };
        CreateModal::new(id(SetupId::Prices(page)), title).components(inputs)
    }

    /// A page of the provider's credential fields. With `keeps_saved` (the same provider is
    /// saved), an empty secret keeps the saved one.
    pub(super) fn credentials_modal(
        plugin: &PluginInfo,
        page: usize,
        keeps_saved: bool,
    ) -> CreateModal {
        let total = pages(plugin.config_fields.len());
        let page = page.min(total - 1);
        let inputs = plugin
            .config_fields
            .iter()
            .skip(page * PAGE)
            .take(PAGE)
            .map(|field| {
                let placeholder = if field.secret && keeps_saved {
                    "Saved. Leave empty to keep it.".to_owned()
                } else {
                    field
                        .default_value
                        .clone()
                        .unwrap_or_else(|| truncate(&field.help, 100))
                };
                CreateActionRow::InputText(
                    CreateInputText::new(
                        InputTextStyle::Short,
                        truncate(&field.label, 45),
                        InputId::Cred(field.key.clone()).to_string(),
                    )
                    .placeholder(truncate(&placeholder, 100))
                    .required(field.required && !(field.secret && keeps_saved)),
                )
            })
            .collect();
        let title = if total > 1 {
            format!("{} ({}/{total})", truncate(&plugin.name, 30), page + 1)
        } else {
            truncate(&plugin.name, 45)
        };
        CreateModal::new(id(SetupId::Creds(page)), title).components(inputs)
    }

    fn button(step: SetupId, label: &str) -> CreateActionRow {
        CreateActionRow::Buttons(vec![
            CreateButton::new(id(step))
                .label(label)
                .style(ButtonStyle::Primary),
        ])
    }

    /// The message after a modal: what to fix, the button to the next page, or the providers.
    /// `None` for the steps that are a modal or a save, not a message.
    pub(super) fn after_modal<'p>(
        step: &Step,
        session: &Session,
        plugins: impl Iterator<Item = &'p PluginInfo>,
    ) -> Option<View> {
        Some(match step {
            Step::FixPrices { page, errors } => {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|(role, e)| format!("- <@&{role}>: {e}"))
                    .collect();
                View::text(format!("Some prices need fixing:\n{}", lines.join("\n")))
                    .row(button(SetupId::Prices(*page), "Fix the prices"))
            }
            Step::MorePrices { done, total } => {
                View::text(format!("Prices {}/{total} saved.", done + 1))
                    .row(button(SetupId::Prices(done + 1), "Next prices"))
            }
            Step::PickProvider => provider_pick(session, plugins),
            Step::MoreCredentials { done, total } => {
                View::text(format!("Credentials {}/{total} noted.", done + 1))
                    .row(button(SetupId::Creds(done + 1), "Next fields"))
            }
            Step::Credentials { .. } | Step::Save => return None,
        })
    }

    /// The prices as understood, and the provider select.
    fn provider_pick<'p>(session: &Session, plugins: impl Iterator<Item = &'p PluginInfo>) -> View {
        let options: Vec<CreateSelectMenuOption> = plugins
            .map(|p| {
                CreateSelectMenuOption::new(truncate(&p.name, 100), p.id.to_string())
                    .description(truncate(&format!("{} v{}", p.id, p.version), 100))
            })
            .collect();
        let summary: Vec<String> = session
            .roles
            .iter()
            .zip(&session.price_inputs)
            .map(|((role, _), typed)| match parse_price(typed) {
                Ok((price, billing)) => format!("- <@&{role}>: {}", price_text(price, billing)),
                Err(_) => format!("- <@&{role}>: ?"),
            })
            .collect();
        View::text(format!(
            "{}\n\nNow pick the payment provider:",
            summary.join("\n")
        ))
        .row(CreateActionRow::SelectMenu(
            CreateSelectMenu::new(
                id(SetupId::Provider),
                CreateSelectMenuKind::String { options },
            )
            .placeholder("Payment provider"),
        ))
    }

    /// The shop is saved: what it sells, the webhook URL, and the log channel select.
    pub(super) fn saved(saved: &SavedShop, public_url: Option<&str>) -> View {
        View::text(saved_text(saved, public_url)).row(log_channel_select())
    }

    /// The provider or a price was refused: why, and a way back to the credentials.
    pub(super) fn not_saved(problem: &str) -> View {
        View::text(format!("{problem}\n\nNothing was saved."))
            .row(button(SetupId::Creds(0), "Enter the credentials again"))
    }

    fn saved_text(saved: &SavedShop, public_url: Option<&str>) -> String {
        let path = &saved.webhook_path;
        let url = match public_url {
            Some(base) => format!("`{base}{path}`"),
            None => format!(
                "`https://<your-docobo-address>{path}` (the operator has not set server.public_url: ask them for the address)"
            ),
        };
        let name = &saved.provider_name;
        let mut message = format!("✅ **Saved.** {name} sells:\n");
        for role in &saved.roles {
            let _ = writeln!(
                message,
                "- <@&{}>: {}",
                role.role_id,
                price_text(role.price, role.billing)
            );
        }
        let _ = writeln!(message, "\n**Webhook URL** to paste at {name}:\n{url}");
        if !saved.webhook_events.is_empty() {
            let _ = writeln!(
                message,
                "Enable these events: {}",
                saved.webhook_events.join(", ")
            );
        }
        message.push_str("\nMembers can now use /join. Optional: pick a channel for Docobo's log.");
        message
    }

    fn log_channel_select() -> CreateActionRow {
        CreateActionRow::SelectMenu(
            CreateSelectMenu::new(
                id(SetupId::Log),
                CreateSelectMenuKind::Channel {
                    channel_types: Some(vec![ChannelType::Text]),
                    default_channels: None,
                },
            )
            .placeholder("Optional: a channel for Docobo's log")
            .min_values(0)
            .max_values(1),
        )
    }

    /// The log channel is set (or cleared).
    pub(super) fn log_channel_set(channel: Option<ChannelId>) -> View {
        View::text(match channel {
            Some(c) => format!(
                "Docobo will post purchases, renewals, cancellations, expiries and problems in <#{c}>. Make sure it can send messages there."
            ),
            None => "No log channel: problems will be sent to the server owner by DM.".to_owned(),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::db::paid_roles::NewPaidRole;
        use crate::domain::{Billing, Currency, GuildId, Money, ProviderId, RoleId};
        use serde_json::{Value, json};

        fn wire(value: &impl serde::Serialize) -> Value {
            serde_json::to_value(value).expect("json")
        }

        fn role(n: u64) -> RoleId {
            RoleId::new(n).expect("role")
        }

        #[test]
        fn price_modals_carry_the_typed_ids_and_five_inputs_a_page() {
            let roles = (1..=6).map(|i| (role(i), format!("R{i}"))).collect();
            let session = Session::new(roles, &[], std::time::Instant::now());
            let first = wire(&prices_modal(&session, 0));
            assert_eq!(first["custom_id"], json!("setup:prices:0"));
            assert_eq!(first["title"], json!("Prices (1/2)"));
            assert_eq!(first["components"].as_array().map(Vec::len), Some(5));
            assert_eq!(
                first["components"][0]["components"][0]["custom_id"],
                json!("price:1")
            );
            let last = wire(&prices_modal(&session, 9));
            assert_eq!(last["custom_id"], json!("setup:prices:1"), "clamped");
        }

        #[test]
        fn the_steps_after_a_modal_have_their_buttons() {
            let session = Session::new(vec![(role(1), "R".into())], &[], std::time::Instant::now());
            let buttons = |step: Step| {
                let view = after_modal(&step, &session, std::iter::empty()).expect("a message");
                wire(&view.components)[0]["components"][0]["custom_id"].clone()
            };
            let fix = Step::FixPrices {
                page: 2,
                errors: vec![],
            };
            assert_eq!(buttons(fix), json!("setup:prices:2"));
            assert_eq!(
                buttons(Step::MorePrices { done: 0, total: 2 }),
                json!("setup:prices:1")
            );
            assert_eq!(
                buttons(Step::MoreCredentials { done: 1, total: 3 }),
                json!("setup:creds:2")
            );
            let pick =
                after_modal(&Step::PickProvider, &session, std::iter::empty()).expect("pick");
            assert_eq!(
                wire(&pick.components)[0]["components"][0]["custom_id"],
                json!("setup:provider")
            );
            assert!(after_modal(&Step::Save, &session, std::iter::empty()).is_none());
        }

        #[test]
        fn the_saved_message_has_the_webhook_url_and_the_events() {
            let shop = SavedShop {
                provider: ProviderId::parse("polar").expect("id"),
                provider_name: "Polar".into(),
                roles: vec![NewPaidRole {
                    guild_id: GuildId::new(1).expect("guild"),
                    role_id: role(7),
                    name: "Gold".into(),
                    price: Money::new(499, Currency::parse("USD").expect("USD")).expect("price"),
                    billing: Billing::Monthly,
                    product_ref: None,
                }],
                webhook_path: "/webhooks/polar/k".into(),
                webhook_events: vec!["order.paid".into()],
            };
            let view = saved(&shop, Some("https://d.example"));
            assert!(
                view.text.contains("`https://d.example/webhooks/polar/k`"),
                "{}",
                view.text
            );
            assert!(
                view.text.contains("- <@&7>: 4.99 USD / month"),
                "{}",
                view.text
            );
            assert!(view.text.contains("Enable these events: order.paid"));
            assert_eq!(
                wire(&view.components)[0]["components"][0]["custom_id"],
                json!("setup:log")
            );
            let unset = saved(&shop, None);
            assert!(unset.text.contains("server.public_url"), "{}", unset.text);
        }
    }
}

use std::time::Instant;

pub(crate) use session::Sessions;
use session::{Session, Step};

use super::Bot;
use super::custom_id::{InputId, SetupId};
use super::error::BotError;
use super::interaction::{Actor, Picked};
use super::reply::{Ack, Outcome, Reply};
use super::ui;
use crate::db::{guilds, paid_roles};
use crate::domain::{ChannelId, GuildId, RoleId, UserId};
use crate::shop::{self, ShopError};

type Key = (GuildId, UserId);

/// `/setup`: the saved setup and the role picker.
pub(super) async fn command(bot: &Bot, actor: &Actor) -> Outcome<'static> {
    let key = admin(actor)?;
    let (saved, roles) = ui::offer(bot, key.0).await?;
    Ok(Reply::private(view::intro(saved.as_ref(), &roles)))
}

/// The buttons and selects of the `/setup` messages.
pub(super) async fn component<'a>(
    bot: &'a Bot,
    actor: &Actor,
    id: SetupId,
    picked: Picked,
) -> Outcome<'a> {
    let key = admin(actor)?;
    match (id, picked) {
        (SetupId::Roles, Picked::Roles(roles)) => roles_picked(bot, key, &roles).await,
        (SetupId::Provider, Picked::Strings(values)) => {
            let mut session = session(bot, key)?;
            let plugin = values
                .first()
                .and_then(|p| bot.services.providers.plugin(p))
                .ok_or_else(|| BotError::refused(view::PROVIDER_GONE))?;
            let step = session.provider_picked(plugin);
            bot.sessions.put(key, session.clone());
            show(bot, key, session, &step).await
        }
        (SetupId::Log, Picked::Channels(channels)) => {
            log_channel(bot, key, channels.first().copied()).await
        }
        (SetupId::Prices(page), Picked::Button) => {
            let session = session(bot, key)?;
            Ok(Reply::Modal(view::prices_modal(&session, page)))
        }
        (SetupId::Creds(page), Picked::Button) => {
            let session = session(bot, key)?;
            show(bot, key, session, &Step::Credentials { page }).await
        }
        (id, picked) => {
            tracing::warn!(?id, ?picked, "unexpected /setup component");
            Ok(Reply::Nothing)
        }
    }
}

/// The submitted `/setup` modals.
pub(super) async fn modal<'a>(
    bot: &'a Bot,
    actor: &Actor,
    id: SetupId,
    typed: &[(InputId, String)],
) -> Outcome<'a> {
    let key = (actor.in_guild()?, actor.user);
    let mut session = session(bot, key)?;
    let step = match id {
        SetupId::Prices(page) => session.prices_submitted(typed, page),
        SetupId::Creds(page) => {
            let fields = session
                .provider
                .as_deref()
                .and_then(|p| bot.services.providers.plugin(p))
                .map_or(0, |p| p.config_fields.len());
            session.credentials_submitted(typed, page, fields)
        }
        other => {
            tracing::warn!(id = ?other, "unexpected /setup modal");
            return Ok(Reply::Nothing);
        }
    };
    bot.sessions.put(key, session.clone());
    show(bot, key, session, &step).await
}

/// Only admins set up the shop.
fn admin(actor: &Actor) -> Result<Key, BotError> {
    let guild = actor.in_guild()?;
    if !actor.can_manage {
        return Err(BotError::refused(view::NOT_ALLOWED));
    }
    Ok((guild, actor.user))
}

fn session(bot: &Bot, key: Key) -> Result<Session, BotError> {
    bot.sessions
        .get(key)
        .ok_or_else(|| BotError::refused(view::EXPIRED))
}

/// The reply for the step the session reached.
async fn show<'a>(bot: &'a Bot, key: Key, session: Session, step: &Step) -> Outcome<'a> {
    match step {
        Step::Credentials { page } => {
            let plugin = session
                .provider
                .as_deref()
                .and_then(|p| bot.services.providers.plugin(p))
                .ok_or_else(|| BotError::refused(view::EXPIRED))?;
            let keeps = saved_provider(bot, key.0).await?.as_deref() == Some(plugin.id.as_str());
            Ok(Reply::Modal(view::credentials_modal(plugin, *page, keeps)))
        }
        Step::Save => Ok(save(bot, key, session)),
        _ => Ok(
            view::after_modal(step, &session, bot.services.providers.plugins())
                .map_or(Reply::Nothing, Reply::private),
        ),
    }
}

/// The provider of the guild's saved credentials, if any.
async fn saved_provider(bot: &Bot, guild: GuildId) -> Result<Option<String>, BotError> {
    let saved = bot
        .services
        .db
        .read(move |conn| guilds::get(conn, guild))
        .await?;
    Ok(saved
        .filter(|g| g.credentials.is_some())
        .and_then(|g| g.provider.map(|p| p.to_string())))
}

/// Roles picked: the ones Docobo cannot sell are sent back; else the first page of prices.
async fn roles_picked(bot: &Bot, key: Key, picked: &[RoleId]) -> Outcome<'static> {
    let guild = key.0;
    let snapshot = bot.roles.snapshot(guild).await.map_err(|e| {
        BotError::new(
            format!(
                "Docobo cannot read this server's roles right now ({e}). Try again in a minute."
            ),
            e,
        )
    })?;
    let roles = match session::check_roles(&snapshot, guild, picked) {
        Ok(roles) => roles,
        Err(problems) => return Ok(Reply::Update(view::cannot_sell(&problems))),
    };
    let saved = bot
        .services
        .db
        .read(move |conn| paid_roles::all(conn, guild))
        .await?;
    let session = Session::new(roles, &saved, Instant::now());
    let modal = view::prices_modal(&session, 0);
    bot.sessions.put(key, session);
    Ok(Reply::Modal(modal))
}

async fn log_channel(bot: &Bot, key: Key, channel: Option<ChannelId>) -> Outcome<'static> {
    let (guild, user) = key;
    bot.services
        .db
        .call(move |conn| guilds::set_log_channel(conn, guild, channel))
        .await?;
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        channel = channel.map(ChannelId::get),
        "log channel set"
    );
    Ok(Reply::Update(view::log_channel_set(channel)))
}

/// The last step: acknowledge (the provider is called), then validate, create products and
/// save through the shop service.
fn save(bot: &Bot, key: Key, session: Session) -> Reply<'_> {
    Reply::deferred(Ack::Thinking { ephemeral: true }, async move {
        let (guild, user) = key;
        let draft = session
            .draft()
            .ok_or_else(|| BotError::refused(view::EXPIRED))?;
        match shop::save(&bot.services, guild, &draft).await {
            Ok(saved) => {
                bot.sessions.end(key);
                tracing::info!(guild = guild.get(), user = user.get(), provider = %saved.provider, roles = saved.roles.len(), "setup saved");
                Ok(view::saved(&saved, bot.services.public_url.as_deref()))
            }
            Err(ShopError::Refused(problem)) => {
                tracing::info!(
                    guild = guild.get(),
                    user = user.get(),
                    outcome = "refused",
                    "setup not saved"
                );
                Ok(view::not_saved(&problem))
            }
            Err(e @ ShopError::Store(_)) => {
                Err(BotError::new(format!("{e}\n\nNothing was saved."), e))
            }
        }
    })
}
