//! The fake's in-memory Discord: guilds, roles (positions and permissions), members, the bot's
//! own member, registered commands, DM channels and sent messages, plus Discord's rules for role
//! changes (Manage Roles, the role hierarchy, unknown member/role).
//!
//! Scripted with [`GuildSpec`], [`RoleSpec`] and [`MemberSpec`]; mutated only by the REST
//! handlers and the test-facing methods of [`FakeDiscord`](super::FakeDiscord).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::payloads::ApiError;

/// `ADMINISTRATOR`: every permission (but not a bypass of the role hierarchy).
pub const ADMINISTRATOR: u64 = 1 << 3;
/// `MANAGE_ROLES`: needed to add or remove roles.
pub const MANAGE_ROLES: u64 = 1 << 28;
pub const KICK_MEMBERS: u64 = 1 << 1;
/// `VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | USE_APPLICATION_COMMANDS`: what
/// `@everyone` gets by default in the fake.
pub const DEFAULT_EVERYONE: u64 = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31);
/// All permission bits Discord currently defines (used for guild owners).
pub const ALL_PERMISSIONS: u64 = (1 << 54) - 1;

/// Gateway intent `GUILDS`.
pub const INTENT_GUILDS: u64 = 1;
/// Gateway intent `GUILD_MEMBERS` (privileged).
pub const INTENT_GUILD_MEMBERS: u64 = 1 << 1;
/// Gateway intent `GUILD_PRESENCES` (privileged).
pub const INTENT_GUILD_PRESENCES: u64 = 1 << 8;
/// Gateway intent `MESSAGE_CONTENT` (privileged).
pub const INTENT_MESSAGE_CONTENT: u64 = 1 << 15;
/// The privileged intents, toggled in the Developer Portal.
pub const PRIVILEGED_INTENTS: u64 =
    INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT;

/// A role in a scripted guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    pub id: u64,
    pub name: String,
    /// Higher is more powerful; `@everyone` is 0.
    pub position: u16,
    /// Permission bits.
    pub permissions: u64,
    /// Managed by an integration (a bot's own role): it cannot be granted.
    pub managed: bool,
}

impl RoleSpec {
    #[must_use]
    pub fn new(id: u64, name: &str, position: u16, permissions: u64) -> Self {
        Self {
            id,
            name: name.to_owned(),
            position,
            permissions,
            managed: false,
        }
    }

    /// Marks the role as managed by an integration.
    #[must_use]
    pub fn managed(mut self) -> Self {
        self.managed = true;
        self
    }
}

/// A (non-bot) member of a scripted guild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub user_id: u64,
    pub username: String,
    /// Role ids, without `@everyone`.
    pub roles: Vec<u64>,
}

impl MemberSpec {
    #[must_use]
    pub fn new(user_id: u64, username: &str) -> Self {
        Self {
            user_id,
            username: username.to_owned(),
            roles: Vec::new(),
        }
    }

    #[must_use]
    pub fn roles(mut self, roles: &[u64]) -> Self {
        self.roles = roles.to_vec();
        self
    }
}

/// A scripted guild. The bot is always a member, holding [`GuildSpec::bot_roles`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuildSpec {
    pub id: u64,
    pub name: String,
    pub owner_id: u64,
    /// The one text channel interactions come from (`id + 1` unless set).
    pub channel_id: u64,
    /// Roles besides `@everyone` (whose id is the guild id).
    pub roles: Vec<RoleSpec>,
    /// Permissions of `@everyone`.
    pub everyone_permissions: u64,
    pub members: Vec<MemberSpec>,
    /// The bot member's roles.
    pub bot_roles: Vec<u64>,
    /// The text channel's permission overwrites.
    pub overwrites: Vec<ChannelOverwrite>,
}

/// A permission overwrite on a guild's text channel (`GET /channels/{id}`, `GUILD_CREATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelOverwrite {
    /// A role id (the guild id for `@everyone`) or a user id.
    pub id: u64,
    /// Whether `id` is a member (type 1) rather than a role (type 0).
    pub member: bool,
    pub allow: u64,
    pub deny: u64,
}

impl ChannelOverwrite {
    /// An overwrite for a role (`@everyone`'s id is the guild's).
    #[must_use]
    pub fn role(id: u64, allow: u64, deny: u64) -> Self {
        Self {
            id,
            member: false,
            allow,
            deny,
        }
    }

    /// An overwrite for a member.
    #[must_use]
    pub fn member(id: u64, allow: u64, deny: u64) -> Self {
        Self {
            id,
            member: true,
            allow,
            deny,
        }
    }
}

impl GuildSpec {
    /// A guild with only `@everyone`, owned by a user who is not scripted as a member.
    #[must_use]
    pub fn new(id: u64, name: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            owner_id: 1,
            channel_id: id + 1,
            roles: Vec::new(),
            everyone_permissions: DEFAULT_EVERYONE,
            members: Vec::new(),
            bot_roles: Vec::new(),
            overwrites: Vec::new(),
        }
    }

    #[must_use]
    pub fn role(mut self, role: RoleSpec) -> Self {
        self.roles.push(role);
        self
    }

    #[must_use]
    pub fn member(mut self, member: MemberSpec) -> Self {
        self.members.push(member);
        self
    }

    #[must_use]
    pub fn bot_roles(mut self, roles: &[u64]) -> Self {
        self.bot_roles = roles.to_vec();
        self
    }

    #[must_use]
    pub fn owner(mut self, user_id: u64) -> Self {
        self.owner_id = user_id;
        self
    }

    #[must_use]
    pub fn channel(mut self, channel_id: u64) -> Self {
        self.channel_id = channel_id;
        self
    }

    /// Adds a permission overwrite to the text channel.
    #[must_use]
    pub fn overwrite(mut self, overwrite: ChannelOverwrite) -> Self {
        self.overwrites.push(overwrite);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub id: u64,
    pub username: String,
    pub bot: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Role {
    pub id: u64,
    pub name: String,
    pub position: u16,
    pub permissions: u64,
    pub managed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub user: User,
    /// Without `@everyone`.
    pub roles: Vec<u64>,
    pub joined_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Guild {
    pub id: u64,
    pub name: String,
    pub owner_id: u64,
    pub channel_id: u64,
    pub overwrites: Vec<ChannelOverwrite>,
    pub roles: BTreeMap<u64, Role>,
    pub members: BTreeMap<u64, Member>,
}

impl Guild {
    /// Effective guild-level permissions of a member: owner gets everything, Administrator
    /// implies all.
    pub fn permissions(&self, user_id: u64) -> u64 {
        if user_id == self.owner_id {
            return ALL_PERMISSIONS;
        }
        let mut bits = self.roles.get(&self.id).map_or(0, |r| r.permissions);
        if let Some(member) = self.members.get(&user_id) {
            for role in &member.roles {
                bits |= self.roles.get(role).map_or(0, |r| r.permissions);
            }
        }
        if bits & ADMINISTRATOR != 0 {
            ALL_PERMISSIONS
        } else {
            bits
        }
    }

    /// The position of the member's highest role (0 if only `@everyone`).
    pub fn top_position(&self, user_id: u64) -> u16 {
        self.members
            .get(&user_id)
            .into_iter()
            .flat_map(|m| &m.roles)
            .filter_map(|r| self.roles.get(r))
            .map(|r| r.position)
            .max()
            .unwrap_or(0)
    }
}

/// A message the bot sent to a channel through `POST /channels/{id}/messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub channel_id: u64,
    /// Set when the channel is a DM the bot opened with `POST /users/@me/channels`.
    pub recipient_id: Option<u64>,
    /// The message as the fake returned it (serenity's `Message` shape).
    pub message: Value,
}

/// The whole in-memory Discord.
#[derive(Debug)]
pub(crate) struct Model {
    pub bot: User,
    pub application_id: u64,
    pub guilds: BTreeMap<u64, Guild>,
    /// Registered commands (the fake's responses), global under `None`.
    pub commands: HashMap<Option<u64>, Vec<Value>>,
    /// DM channel per recipient.
    pub dm_channels: HashMap<u64, u64>,
    pub messages: Vec<SentMessage>,
    /// Users whose DMs are closed to the bot (messages to them fail with 50007).
    pub dms_closed: HashSet<u64>,
    /// Incoming webhooks ([`super::FakeDiscord::incoming_webhook`]) by (id, token), with
    /// the bodies executed on each.
    pub incoming_webhooks: BTreeMap<(u64, String), Vec<Value>>,
    /// Files uploaded by users or sent by the bot, by attachment id.
    pub uploads: BTreeMap<u64, super::files::Upload>,
    next_id: u64,
}

/// What a successful role change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleChange {
    Changed,
    Unchanged,
}

impl Model {
    pub fn new(bot_id: u64, bot_name: &str, application_id: u64) -> Self {
        Self {
            bot: User {
                id: bot_id,
                username: bot_name.to_owned(),
                bot: true,
            },
            application_id,
            guilds: BTreeMap::new(),
            commands: HashMap::new(),
            dm_channels: HashMap::new(),
            messages: Vec::new(),
            dms_closed: HashSet::new(),
            incoming_webhooks: BTreeMap::new(),
            uploads: BTreeMap::new(),
            next_id: 900_000_000_000_000_000,
        }
    }

    /// A fresh snowflake-looking id (monotonic, far from scripted ids).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn add_guild(&mut self, spec: &GuildSpec, joined_at: &str) {
        let mut roles = BTreeMap::new();
        roles.insert(
            spec.id,
            Role {
                id: spec.id,
                name: "@everyone".to_owned(),
                position: 0,
                permissions: spec.everyone_permissions,
                managed: false,
            },
        );
        for r in &spec.roles {
            roles.insert(
                r.id,
                Role {
                    id: r.id,
                    name: r.name.clone(),
                    position: r.position,
                    permissions: r.permissions,
                    managed: r.managed,
                },
            );
        }
        let mut members = BTreeMap::new();
        for m in &spec.members {
            members.insert(
                m.user_id,
                Member {
                    user: User {
                        id: m.user_id,
                        username: m.username.clone(),
                        bot: false,
                    },
                    roles: m.roles.clone(),
                    joined_at: joined_at.to_owned(),
                },
            );
        }
        members.insert(
            self.bot.id,
            Member {
                user: self.bot.clone(),
                roles: spec.bot_roles.clone(),
                joined_at: joined_at.to_owned(),
            },
        );
        self.guilds.insert(
            spec.id,
            Guild {
                id: spec.id,
                name: spec.name.clone(),
                owner_id: spec.owner_id,
                channel_id: spec.channel_id,
                overwrites: spec.overwrites.clone(),
                roles,
                members,
            },
        );
    }

    pub fn guild(&self, guild_id: u64) -> Result<&Guild, ApiError> {
        self.guilds
            .get(&guild_id)
            .ok_or_else(ApiError::unknown_guild)
    }

    /// `PUT`/`DELETE /guilds/{g}/members/{u}/roles/{r}` with Discord's checks, in this order:
    /// unknown guild (10004), unknown member (10007), unknown role (10011), then Missing
    /// Permissions (50013) when the bot lacks Manage Roles, the role is managed or `@everyone`,
    /// or the role is not below the bot's highest role (the owner bypasses the hierarchy;
    /// Administrator does not).
    pub fn change_member_role(
        &mut self,
        guild_id: u64,
        user_id: u64,
        role_id: u64,
        add: bool,
    ) -> Result<RoleChange, ApiError> {
        let bot_id = self.bot.id;
        let guild = self
            .guilds
            .get_mut(&guild_id)
            .ok_or_else(ApiError::unknown_guild)?;
        if !guild.members.contains_key(&user_id) {
            return Err(ApiError::unknown_member());
        }
        let Some(role) = guild.roles.get(&role_id) else {
            return Err(ApiError::unknown_role());
        };
        let is_owner = guild.owner_id == bot_id;
        if guild.permissions(bot_id) & MANAGE_ROLES == 0
            || role.managed
            || role.id == guild.id
            || (!is_owner && role.position >= guild.top_position(bot_id))
        {
            return Err(ApiError::missing_permissions());
        }
        let Some(member) = guild.members.get_mut(&user_id) else {
            return Err(ApiError::unknown_member());
        };
        let has = member.roles.contains(&role_id);
        Ok(match (add, has) {
            (true, false) => {
                member.roles.push(role_id);
                RoleChange::Changed
            }
            (false, true) => {
                member.roles.retain(|r| *r != role_id);
                RoleChange::Changed
            }
            _ => RoleChange::Unchanged,
        })
    }

    /// `DELETE /guilds/{g}/members/{u}` (kick) with Discord's checks: unknown guild (10004),
    /// unknown member (10007), then Missing Permissions (50013) when the bot lacks Kick
    /// Members, the target owns the guild, or the target's highest role is not below the
    /// bot's. Returns the member removed.
    pub fn kick_member(&mut self, guild_id: u64, user_id: u64) -> Result<Member, ApiError> {
        let bot_id = self.bot.id;
        let guild = self
            .guilds
            .get_mut(&guild_id)
            .ok_or_else(ApiError::unknown_guild)?;
        if !guild.members.contains_key(&user_id) {
            return Err(ApiError::unknown_member());
        }
        if guild.permissions(bot_id) & KICK_MEMBERS == 0
            || user_id == guild.owner_id
            || (guild.owner_id != bot_id
                && guild.top_position(user_id) >= guild.top_position(bot_id))
        {
            return Err(ApiError::missing_permissions());
        }
        guild
            .members
            .remove(&user_id)
            .ok_or_else(ApiError::unknown_member)
    }

    /// The DM channel with a user, opened on first use.
    pub fn dm_channel(&mut self, user_id: u64) -> u64 {
        if let Some(id) = self.dm_channels.get(&user_id) {
            return *id;
        }
        let id = self.next_id();
        self.dm_channels.insert(user_id, id);
        id
    }

    /// A user the fake knows (a member of any guild, or the bot).
    pub fn user(&self, user_id: u64) -> Option<&User> {
        if user_id == self.bot.id {
            return Some(&self.bot);
        }
        self.guilds
            .values()
            .find_map(|g| g.members.get(&user_id))
            .map(|m| &m.user)
    }

    /// Which guild owns a text channel.
    pub fn guild_of_channel(&self, channel_id: u64) -> Option<u64> {
        self.guilds
            .values()
            .find(|g| g.channel_id == channel_id)
            .map(|g| g.id)
    }
}
