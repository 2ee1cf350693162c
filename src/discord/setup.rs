//! `/setup`: an admin picks roles, prices and a payment provider, and enters the provider's
//! credentials. Discord shapes the flow (docs/discord.md §4.2): a role select → price modals
//! (at most five inputs each) → a provider select → credential modals → validation with the
//! provider after a deferral → one transaction → the webhook URL to paste at the provider.
//!
//! The conversation is kept in memory per (guild, admin) for 15 minutes; nothing is stored
//! until the last step succeeds. Running `/setup` again starts from the saved configuration:
//! the current roles are pre-selected, prices pre-filled, and secret fields left empty keep
//! their saved value (secrets are never shown back).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serenity::all::ActionRowComponent;
use serenity::all::{
    ButtonStyle, ChannelType, CommandInteraction, ComponentInteraction,
    ComponentInteractionDataKind, CreateActionRow, CreateButton, CreateInputText,
    CreateInteractionResponse, CreateInteractionResponseMessage, CreateModal, CreateSelectMenu,
    CreateSelectMenuKind, CreateSelectMenuOption, EditInteractionResponse, InputTextStyle,
    InteractionId, ModalInteraction,
};
use serenity::builder::Builder as _;
use serenity::model::id as sid;

use super::Bot;
use super::directory::Refusal;
use super::notify::truncate;
use super::ui::{
    self, actor, can_manage_guild, parse_price, price_input, price_text, private, respond, tell,
};
use crate::db::{guilds, paid_roles};
use crate::domain::{ChannelId, GuildId, ProviderId, RoleId, UserId};
use crate::providers::PluginInfo;
use crate::shop::{self, SavedShop, ShopDraft};

/// Inputs per modal (Discord's limit).
const PAGE: usize = 5;
/// How long an unfinished `/setup` is remembered (an interaction token's life).
const SESSION_TTL: Duration = Duration::from_mins(15);

/// An unfinished `/setup`.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The roles picked, with their names.
    roles: Vec<(RoleId, String)>,
    /// What the admin typed for each role's price (pre-filled with the saved price).
    price_inputs: Vec<String>,
    provider: Option<String>,
    /// Credential fields typed so far (empty: keep the saved value).
    cred_inputs: BTreeMap<String, String>,
    started: Instant,
}

impl Bot {
    fn session(&self, key: (GuildId, UserId)) -> Option<Session> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.retain(|_, s| s.started.elapsed() < SESSION_TTL);
        sessions.get(&key).cloned()
    }

    fn put_session(&self, key: (GuildId, UserId), session: Session) {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, session);
    }

    fn end_session(&self, key: (GuildId, UserId)) {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
    }
}

const EXPIRED: &str = "This /setup has expired (15 minutes). Run /setup again.";
const NOT_ALLOWED: &str = "Only members with the Manage Server permission can set up paid roles.";

/// `/setup`.
pub(super) async fn command(bot: &Bot, command: &CommandInteraction) {
    let Some((guild, user)) = actor(command.guild_id, &command.user) else {
        return ui::guild_only(bot, command).await;
    };
    if !can_manage_guild(command.member.as_deref()) {
        tracing::info!(
            guild = guild.get(),
            user = user.get(),
            command = "setup",
            outcome = "refused",
            "interaction"
        );
        tell(bot, command.id, &command.token, NOT_ALLOWED).await;
        return;
    }
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        command = "setup",
        "interaction"
    );
    let current = ui::offer(bot, guild).await;
    let (saved, roles) = match current {
        Ok(current) => current,
        Err(e) => return report_internal_error(bot, command.id, &command.token, &e).await,
    };
    let mut content = String::new();
    if let Some(provider) = saved.as_ref().and_then(|g| g.provider.as_ref())
        && !roles.is_empty()
    {
        let _ = writeln!(content, "**Current setup** (provider: {provider}):");
        for role in &roles {
            let _ = writeln!(
                content,
                "- <@&{}>: {}",
                role.role_id,
                price_text(role.price, role.billing)
            );
        }
        content.push_str("\nPick the roles to sell; the roles picked now replace this list.");
    } else {
        content.push_str(
            "**Set up paid roles.** Pick the roles members can buy. Docobo's own role must be above them, with the Manage Roles permission.",
        );
    }
    let message = private(content).components(vec![role_select()]);
    respond(
        bot,
        command.id,
        &command.token,
        CreateInteractionResponse::Message(message),
    )
    .await;
}

/// The role picker. Not pre-filled: serenity 0.12.5 sends `default_values` ids as JSON
/// numbers where Discord's schema wants snowflake strings.
fn role_select() -> CreateActionRow {
    CreateActionRow::SelectMenu(
        CreateSelectMenu::new(
            "setup:roles",
            CreateSelectMenuKind::Role {
                default_roles: None,
            },
        )
        .placeholder("Roles to sell")
        .min_values(1)
        .max_values(25),
    )
}

/// Buttons and selects of the `/setup` messages.
#[allow(
    clippy::too_many_lines,
    reason = "one arm per /setup component; each is short"
)]
pub(super) async fn component(bot: &Bot, component: &ComponentInteraction) {
    let Some((guild, user)) = actor(component.guild_id, &component.user) else {
        return;
    };
    let (id, token) = (component.id, component.token.as_str());
    if !can_manage_guild(component.member.as_ref()) {
        tell(bot, id, token, NOT_ALLOWED).await;
        return;
    }
    let custom_id = component.data.custom_id.as_str();
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        custom_id,
        "interaction"
    );
    let key = (guild, user);
    match (custom_id, &component.data.kind) {
        ("setup:roles", ComponentInteractionDataKind::RoleSelect { values }) => {
            roles_picked(bot, guild, user, id, token, values).await;
        }
        ("setup:provider", ComponentInteractionDataKind::StringSelect { values }) => {
            let Some(mut session) = bot.session(key) else {
                tell(bot, id, token, EXPIRED).await;
                return;
            };
            let Some(plugin) = values
                .first()
                .and_then(|p| bot.services.providers.plugin(p))
            else {
                tell(
                    bot,
                    id,
                    token,
                    "That provider is not loaded any more. Run /setup again.",
                )
                .await;
                return;
            };
            session.provider = Some(plugin.id.to_string());
            session.cred_inputs.clear();
            bot.put_session(key, session);
            if plugin.config_fields.is_empty() {
                return finish(bot, guild, user, id, token).await;
            }
            let keeps = saved_provider(bot, guild).await.as_deref() == Some(plugin.id.as_str());
            respond(
                bot,
                id,
                token,
                CreateInteractionResponse::Modal(credentials_modal(plugin, 0, keeps)),
            )
            .await;
        }
        ("setup:log", ComponentInteractionDataKind::ChannelSelect { values }) => {
            let channel = values.first().and_then(|c| ChannelId::new(c.get()).ok());
            let saved = bot
                .services
                .db
                .call(move |conn| guilds::set_log_channel(conn, guild, channel))
                .await;
            let text = match (saved, channel) {
                (Ok(()), Some(c)) => format!(
                    "Docobo will post purchases, renewals, cancellations, expiries and problems in <#{c}>. Make sure it can send messages there."
                ),
                (Ok(()), None) => {
                    "No log channel: problems will be sent to the server owner by DM.".to_owned()
                }
                (Err(e), _) => return report_internal_error(bot, id, token, &e).await,
            };
            tracing::info!(
                guild = guild.get(),
                user = user.get(),
                channel = channel.map(ChannelId::get),
                "log channel set"
            );
            let update = CreateInteractionResponseMessage::new()
                .content(text)
                .components(vec![]);
            respond(
                bot,
                id,
                token,
                CreateInteractionResponse::UpdateMessage(update),
            )
            .await;
        }
        (other, ComponentInteractionDataKind::Button) => {
            let Some(session) = bot.session(key) else {
                tell(bot, id, token, EXPIRED).await;
                return;
            };
            let page = |prefix: &str| {
                other
                    .strip_prefix(prefix)
                    .and_then(|p| p.parse::<usize>().ok())
            };
            if let Some(page) = page("setup:prices:") {
                respond(
                    bot,
                    id,
                    token,
                    CreateInteractionResponse::Modal(prices_modal(&session, page)),
                )
                .await;
            } else if let Some(page) = page("setup:creds:") {
                let Some(plugin) = session
                    .provider
                    .as_deref()
                    .and_then(|p| bot.services.providers.plugin(p))
                else {
                    tell(bot, id, token, EXPIRED).await;
                    return;
                };
                let keeps = saved_provider(bot, guild).await.as_deref() == Some(plugin.id.as_str());
                respond(
                    bot,
                    id,
                    token,
                    CreateInteractionResponse::Modal(credentials_modal(plugin, page, keeps)),
                )
                .await;
            }
        }
        (other, _) => tracing::warn!(custom_id = other, "unexpected /setup component"),
    }
}

async fn saved_provider(bot: &Bot, guild: GuildId) -> Option<String> {
    bot.services
        .db
        .read(move |conn| guilds::get(conn, guild))
        .await
        .ok()
        .flatten()
        .filter(|g| g.credentials.is_some())
        .and_then(|g| g.provider.map(|p| p.to_string()))
}

async fn roles_picked(
    bot: &Bot,
    guild: GuildId,
    user: UserId,
    id: InteractionId,
    token: &str,
    values: &[sid::RoleId],
) {
    let snapshot = match bot.roles.snapshot(guild).await {
        Ok(s) => s,
        Err(e) => {
            let text = format!(
                "Docobo cannot read this server's roles right now ({e}). Try again in a minute."
            );
            tell(bot, id, token, text).await;
            return;
        }
    };
    let mut picked = Vec::new();
    let mut problems = Vec::new();
    for value in values {
        let Ok(role) = RoleId::new(value.get()) else {
            continue;
        };
        match snapshot.can_manage(guild, role) {
            Ok(()) => picked.push((role, snapshot.role_name(role))),
            Err(Refusal::UnknownRole) => {
                problems.push(format!("- <@&{role}>: this role no longer exists."));
            }
            Err(Refusal::Permission(p)) => problems.push(format!("- <@&{role}>: {p}.")),
        }
    }
    if !problems.is_empty() || picked.is_empty() {
        let text = format!(
            "Docobo cannot sell these roles:\n{}\n\nFix that and pick again:",
            problems.join("\n")
        );
        let update = CreateInteractionResponseMessage::new()
            .content(truncate(&text, 2000))
            .components(vec![role_select()]);
        respond(
            bot,
            id,
            token,
            CreateInteractionResponse::UpdateMessage(update),
        )
        .await;
        return;
    }
    let saved = bot
        .services
        .db
        .read(move |conn| paid_roles::all(conn, guild))
        .await
        .unwrap_or_default();
    let price_inputs = picked
        .iter()
        .map(|(role, _)| {
            saved
                .iter()
                .find(|p| p.role_id == *role)
                .map(|p| price_input(p.price, p.billing))
                .unwrap_or_default()
        })
        .collect();
    let session = Session {
        roles: picked,
        price_inputs,
        provider: None,
        cred_inputs: BTreeMap::new(),
        started: Instant::now(),
    };
    let modal = prices_modal(&session, 0);
    bot.put_session((guild, user), session);
    respond(bot, id, token, CreateInteractionResponse::Modal(modal)).await;
}

fn pages(n: usize) -> usize {
    n.div_ceil(PAGE).max(1)
}

fn prices_modal(session: &Session, page: usize) -> CreateModal {
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
                format!("price:{role}"),
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
    CreateModal::new(format!("setup:prices:{page}"), title).components(inputs)
}

fn credentials_modal(plugin: &PluginInfo, page: usize, keeps_saved: bool) -> CreateModal {
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
                    format!("cred:{}", field.key),
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
    CreateModal::new(format!("setup:creds:{page}"), title).components(inputs)
}

/// The inputs of a submitted modal, by custom id.
fn modal_values(modal: &ModalInteraction) -> Vec<(String, String)> {
    modal
        .data
        .components
        .iter()
        .flat_map(|row| &row.components)
        .filter_map(|c| match c {
            ActionRowComponent::InputText(input) => Some((
                input.custom_id.clone(),
                input.value.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

fn button(custom_id: String, label: &str) -> CreateActionRow {
    CreateActionRow::Buttons(vec![
        CreateButton::new(custom_id)
            .label(label)
            .style(ButtonStyle::Primary),
    ])
}

/// Submitted `/setup` modals.
pub(super) async fn modal(bot: &Bot, modal: &ModalInteraction) {
    let Some((guild, user)) = actor(modal.guild_id, &modal.user) else {
        return;
    };
    let (id, token) = (modal.id, modal.token.as_str());
    let key = (guild, user);
    let custom_id = modal.data.custom_id.as_str();
    tracing::info!(
        guild = guild.get(),
        user = user.get(),
        custom_id,
        "interaction"
    );
    let Some(mut session) = bot.session(key) else {
        tell(bot, id, token, EXPIRED).await;
        return;
    };
    let values = modal_values(modal);
    if let Some(page) = custom_id
        .strip_prefix("setup:prices:")
        .and_then(|p| p.parse::<usize>().ok())
    {
        let message = prices_submitted(bot, key, session, &values, page);
        respond(bot, id, token, CreateInteractionResponse::Message(message)).await;
    } else if let Some(page) = custom_id
        .strip_prefix("setup:creds:")
        .and_then(|p| p.parse::<usize>().ok())
    {
        for (input_id, typed) in values {
            if let Some(field) = input_id.strip_prefix("cred:") {
                session
                    .cred_inputs
                    .insert(field.to_owned(), typed.trim().to_owned());
            }
        }
        let fields = session
            .provider
            .as_deref()
            .and_then(|p| bot.services.providers.plugin(p))
            .map_or(0, |p| p.config_fields.len());
        bot.put_session(key, session);
        let total = pages(fields);
        if page + 1 < total {
            let message =
                private(format!("Credentials {}/{total} noted.", page + 1)).components(vec![
                    button(format!("setup:creds:{}", page + 1), "Next fields"),
                ]);
            respond(bot, id, token, CreateInteractionResponse::Message(message)).await;
        } else {
            finish(bot, guild, user, id, token).await;
        }
    }
}

/// A page of prices submitted: what to show next (errors, the next page, or the providers).
fn prices_submitted(
    bot: &Bot,
    key: (GuildId, UserId),
    mut session: Session,
    values: &[(String, String)],
    page: usize,
) -> CreateInteractionResponseMessage {
    let mut errors = Vec::new();
    for (input_id, typed) in values {
        let Some(index) = session
            .roles
            .iter()
            .position(|(r, _)| format!("price:{r}") == *input_id)
        else {
            continue;
        };
        typed.trim().clone_into(&mut session.price_inputs[index]);
        if let Err(e) = parse_price(typed) {
            errors.push(format!("- <@&{}>: {e}", session.roles[index].0));
        }
    }
    let total = pages(session.roles.len());
    let message = if !errors.is_empty() {
        private(format!("Some prices need fixing:\n{}", errors.join("\n"))).components(vec![
            button(format!("setup:prices:{page}"), "Fix the prices"),
        ])
    } else if page + 1 < total {
        private(format!("Prices {}/{total} saved.", page + 1)).components(vec![button(
            format!("setup:prices:{}", page + 1),
            "Next prices",
        )])
    } else {
        provider_message(bot, &session)
    };
    bot.put_session(key, session);
    message
}

fn provider_message(bot: &Bot, session: &Session) -> CreateInteractionResponseMessage {
    let options: Vec<CreateSelectMenuOption> = bot
        .services
        .providers
        .plugins()
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
    private(format!(
        "{}\n\nNow pick the payment provider:",
        summary.join("\n")
    ))
    .components(vec![CreateActionRow::SelectMenu(
        CreateSelectMenu::new("setup:provider", CreateSelectMenuKind::String { options })
            .placeholder("Payment provider"),
    )])
}

/// The last step: defer (the provider is called), validate, create products, save.
async fn finish(bot: &Bot, guild: GuildId, user: UserId, id: InteractionId, token: &str) {
    let defer =
        CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true));
    if !respond(bot, id, token, defer).await {
        return;
    }
    let (text, components) = match bot.session((guild, user)) {
        None => (EXPIRED.to_owned(), vec![]),
        Some(session) => match save(bot, guild, &session).await {
            Ok(saved) => {
                bot.end_session((guild, user));
                tracing::info!(guild = guild.get(), user = user.get(), provider = %saved.provider, roles = session.roles.len(), "setup saved");
                (saved.message, vec![log_channel_select()])
            }
            Err(problem) => {
                tracing::info!(
                    guild = guild.get(),
                    user = user.get(),
                    outcome = "refused",
                    "setup not saved"
                );
                (
                    format!("{problem}\n\nNothing was saved."),
                    vec![button(
                        "setup:creds:0".to_owned(),
                        "Enter the credentials again",
                    )],
                )
            }
        },
    };
    let edit = EditInteractionResponse::new()
        .content(truncate(&text, 2000))
        .components(components);
    if let Err(e) = edit.execute(&bot.http, token).await {
        tracing::warn!(interaction = id.get(), error = %e, "cannot edit the /setup reply");
    }
}

fn log_channel_select() -> CreateActionRow {
    CreateActionRow::SelectMenu(
        CreateSelectMenu::new(
            "setup:log",
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

struct Saved {
    provider: ProviderId,
    message: String,
}

/// Saves the shop through the shop service; the reply text.
async fn save(bot: &Bot, guild: GuildId, session: &Session) -> Result<Saved, String> {
    let provider = session.provider.clone().ok_or_else(|| EXPIRED.to_owned())?;
    let draft = ShopDraft {
        provider,
        roles: session.roles.clone(),
        prices: session.price_inputs.clone(),
        credentials: session.cred_inputs.clone(),
    };
    let saved = shop::save(&bot.services, guild, &draft)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Saved {
        message: saved_message(&saved, bot.services.public_url.as_deref()),
        provider: saved.provider,
    })
}

/// The reply once the shop is saved: what it sells and the webhook URL.
fn saved_message(saved: &SavedShop, public_url: Option<&str>) -> String {
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

pub(super) async fn report_internal_error(
    bot: &Bot,
    id: InteractionId,
    token: &str,
    error: &(dyn std::fmt::Display + Sync),
) {
    tracing::error!(interaction = id.get(), error = %error, "interaction failed");
    let text = "Something went wrong on Docobo's side; the operator can see the details in its log. Try again in a minute.";
    tell(bot, id, token, text).await;
}
