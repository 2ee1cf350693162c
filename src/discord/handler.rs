//! Gateway events: guild registration, the hierarchy snapshot, member joins and leaves, and
//! interactions: translated ([`super::interaction`], [`CustomId`]), dispatched to the
//! commands, and their replies sent ([`reply::send`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serenity::all::{
    Command, Context, EventHandler, Guild, GuildMemberUpdateEvent, Interaction, Member, Ready,
    Role, ShardStageUpdateEvent, UnavailableGuild, User,
};
use serenity::gateway::ConnectionStage;
use serenity::model::id as sid;

use super::custom_id::CustomId;
use super::directory::GuildSnapshot;
use super::interaction::{self, Actor, Picked};
use super::reply::{self, Outcome, Reply, Target};
use super::roles::role_info;
use super::{Bot, GatewayState, admin, doctor, invite, member, setup, ui};
use crate::domain::{GuildId, RoleId, UserId};
use crate::roster;

pub(super) struct Handler {
    bot: Arc<Bot>,
}

impl Handler {
    pub(super) fn new(bot: Arc<Bot>) -> Self {
        Self { bot }
    }

    /// Records a guild the bot is in.
    async fn register_guild(&self, guild: GuildId, name: Option<String>, owner: Option<UserId>) {
        if let Err(e) = roster::guild_seen(&self.bot.services, guild, name, owner).await {
            tracing::error!(guild = guild.get(), error = %e, "cannot record the guild");
        }
    }

    /// After a change that may fix a permission problem: retry what failed, now.
    async fn retry_failed(&self, guild: GuildId) {
        if let Err(e) = roster::retry_failed(&self.bot.services, guild).await {
            tracing::error!(guild = guild.get(), error = %e, "cannot schedule retries");
        }
    }

    /// A member joined or left: their paid roles need (re)applying.
    async fn member_moved(&self, guild: GuildId, user: UserId, present: bool) {
        if let Err(e) = roster::member_moved(&self.bot.services, guild, user, present).await {
            tracing::error!(guild = guild.get(), error = %e, "cannot record a member change");
        }
    }
}

fn ids(guild: sid::GuildId) -> Option<GuildId> {
    GuildId::new(guild.get()).ok()
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        self.bot.gateway.set(GatewayState::Connected);
        if let Ok(bot) = UserId::new(ready.user.id.get()) {
            self.bot.roles.directory().set_bot_user(bot);
        }
        self.bot.http.set_application_id(ready.application.id);
        tracing::info!(
            guilds = ready.guilds.len(),
            bot = ready.user.id.get(),
            "connected to Discord"
        );
        if !self.bot.invite_logged.swap(true, Ordering::Relaxed) {
            tracing::info!(
                url = %invite::url(ready.application.id.get()),
                scopes = invite::SCOPES,
                permissions = %invite::permission_names(),
                "to add the bot to a server, open this link (then drag its role above the roles it sells)"
            );
        }
        for UnavailableGuild { id, .. } in &ready.guilds {
            if let Some(guild) = ids(*id) {
                self.register_guild(guild, None, None).await;
            }
        }
        match Command::set_global_commands(&self.bot.http, ui::commands()).await {
            Ok(commands) => tracing::info!(commands = commands.len(), "slash commands registered"),
            Err(e) => tracing::error!(error = %e, "cannot register the slash commands"),
        }
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        let state = match event.new {
            ConnectionStage::Connected => GatewayState::Connected,
            ConnectionStage::Disconnected
            | ConnectionStage::Resuming
            | ConnectionStage::Connecting
            | ConnectionStage::Handshake
            | ConnectionStage::Identifying => GatewayState::Reconnecting,
            _ => return,
        };
        if self.bot.gateway.get() != GatewayState::Failed {
            self.bot.gateway.set(state);
        }
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let Some(id) = ids(guild.id) else { return };
        let bot = self.bot.roles.directory().bot_user();
        let snapshot = GuildSnapshot {
            name: guild.name.clone(),
            owner_id: UserId::new(guild.owner_id.get()).ok(),
            roles: guild
                .roles
                .values()
                .filter_map(|r| Some((RoleId::new(r.id.get()).ok()?, role_info(r))))
                .collect(),
            bot_roles: bot
                .and_then(|b| guild.members.get(&sid::UserId::new(b.get())))
                .map(|m| {
                    m.roles
                        .iter()
                        .filter_map(|r| RoleId::new(r.get()).ok())
                        .collect()
                }),
        };
        let owner = snapshot.owner_id;
        self.bot.roles.directory().put_guild(id, snapshot);
        self.register_guild(id, Some(guild.name.clone()), owner)
            .await;
        tracing::info!(guild = id.get(), "guild available");
    }

    async fn guild_delete(
        &self,
        _ctx: Context,
        incomplete: UnavailableGuild,
        _full: Option<Guild>,
    ) {
        let Some(id) = ids(incomplete.id) else { return };
        self.bot.roles.directory().remove_guild(id);
        // `unavailable`: an outage at Discord, the bot is still in the guild. Otherwise
        // it left or was removed.
        if !incomplete.unavailable
            && let Err(e) = roster::guild_left(&self.bot.services, id).await
        {
            tracing::error!(guild = id.get(), error = %e, "cannot record that the bot left the guild");
        }
    }

    async fn guild_role_create(&self, _ctx: Context, new: Role) {
        self.guild_role_update(_ctx, None, new).await;
    }

    async fn guild_role_update(&self, _ctx: Context, _old: Option<Role>, new: Role) {
        let (Some(guild), Ok(role)) = (ids(new.guild_id), RoleId::new(new.id.get())) else {
            return;
        };
        let info = role_info(&new);
        self.bot.roles.directory().update_guild(guild, |g| {
            g.roles.insert(role, info);
        });
        self.retry_failed(guild).await;
    }

    async fn guild_role_delete(
        &self,
        _ctx: Context,
        guild_id: sid::GuildId,
        removed: sid::RoleId,
        _data: Option<Role>,
    ) {
        let (Some(guild), Ok(role)) = (ids(guild_id), RoleId::new(removed.get())) else {
            return;
        };
        self.bot.roles.directory().update_guild(guild, |g| {
            g.roles.remove(&role);
        });
    }

    async fn guild_member_update(
        &self,
        _ctx: Context,
        _old: Option<Member>,
        _new: Option<Member>,
        event: GuildMemberUpdateEvent,
    ) {
        let Some(guild) = ids(event.guild_id) else {
            return;
        };
        if self.bot.roles.directory().bot_user().map(UserId::get) == Some(event.user.id.get()) {
            let roles = event
                .roles
                .iter()
                .filter_map(|r| RoleId::new(r.get()).ok())
                .collect();
            self.bot
                .roles
                .directory()
                .update_guild(guild, |g| g.bot_roles = Some(roles));
            self.retry_failed(guild).await;
        }
    }

    async fn guild_member_addition(&self, _ctx: Context, new_member: Member) {
        let (Some(guild), Ok(user)) = (
            ids(new_member.guild_id),
            UserId::new(new_member.user.id.get()),
        ) else {
            return;
        };
        self.member_moved(guild, user, true).await;
    }

    async fn guild_member_removal(
        &self,
        _ctx: Context,
        guild_id: sid::GuildId,
        user: User,
        _member: Option<Member>,
    ) {
        let (Some(guild), Ok(user)) = (ids(guild_id), UserId::new(user.id.get())) else {
            return;
        };
        self.member_moved(guild, user, false).await;
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        dispatch(&self.bot, interaction).await;
    }
}

/// Translates an interaction, lets the command decide, and sends its reply.
async fn dispatch(bot: &Bot, interaction: Interaction) {
    match interaction {
        Interaction::Command(command) => {
            let Some(actor) = Actor::of(command.guild_id, &command.user, command.member.as_deref())
            else {
                return;
            };
            let outcome = if command.data.name == "admin" {
                log(&actor, "command", "admin");
                admin::run(bot, &actor, &command.data).await
            } else {
                run_command(bot, &actor, &command.data.name).await
            };
            let to = Target::new(command.id, &command.token, &actor);
            reply::send(bot, &to, outcome).await;
        }
        Interaction::Component(component) => {
            let raw = component.data.custom_id.as_str();
            let Some(id) = CustomId::parse(raw) else {
                tracing::warn!(custom_id = raw, "unknown component");
                return;
            };
            let member = component.member.as_ref();
            let Some(actor) = Actor::of(component.guild_id, &component.user, member) else {
                return;
            };
            log(&actor, "component", raw);
            let outcome = match (id, Picked::of(&component.data.kind)) {
                (CustomId::Setup(step), picked) => {
                    setup::component(bot, &actor, step, picked).await
                }
                (CustomId::JoinRole, Picked::Strings(values)) => {
                    member::role_picked(bot, &actor, &values).await
                }
                (CustomId::JoinRole, picked) => {
                    tracing::warn!(?picked, "unexpected /join component");
                    Ok(Reply::Nothing)
                }
                (CustomId::DoctorTest, _) => doctor::test_purchase(bot, &actor),
                (CustomId::Reminders { guild, on }, _) => {
                    super::remind::set_wanted(bot, &actor, guild, on).await
                }
            };
            let to = Target::new(component.id, &component.token, &actor);
            reply::send(bot, &to, outcome).await;
        }
        Interaction::Modal(modal) => {
            let raw = modal.data.custom_id.as_str();
            let Some(CustomId::Setup(step)) = CustomId::parse(raw) else {
                tracing::warn!(custom_id = raw, "unknown modal");
                return;
            };
            let Some(actor) = Actor::of(modal.guild_id, &modal.user, modal.member.as_ref()) else {
                return;
            };
            log(&actor, "modal", raw);
            let outcome = setup::modal(bot, &actor, step, &interaction::typed(&modal)).await;
            reply::send(bot, &Target::new(modal.id, &modal.token, &actor), outcome).await;
        }
        _ => {}
    }
}

async fn run_command<'a>(bot: &'a Bot, actor: &Actor, name: &str) -> Outcome<'a> {
    log(actor, "command", name);
    match name {
        "setup" => setup::command(bot, actor).await,
        "join" => member::join(bot, actor).await,
        "status" => member::status(bot, actor).await,
        "help" => Ok(member::help(actor)),
        "dashboard" => super::dashboard::link(bot, actor),
        "doctor" => doctor::command(bot, actor),
        other => {
            tracing::warn!(command = other, "unknown command");
            Ok(Reply::Nothing)
        }
    }
}

fn log(actor: &Actor, kind: &str, name: &str) {
    tracing::info!(
        guild = actor.guild.map(GuildId::get),
        user = actor.user.get(),
        kind,
        name,
        "interaction"
    );
}
