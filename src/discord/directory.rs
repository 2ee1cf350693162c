//! What the bot knows about each guild's roles and its own place in them: enough to decide,
//! before calling Discord, whether a role change can succeed (Discord answers a change the
//! hierarchy forbids with 403/50013, and too many 403s get a bot temporarily banned).
//!
//! Fed by the gateway (`GUILD_CREATE`, role events, the bot's own member updates) and, when
//! missing or suspected stale, refreshed over REST.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::domain::{GuildId, RoleId, UserId};

/// `ADMINISTRATOR`: every permission (the hierarchy still applies).
pub const ADMINISTRATOR: u64 = 1 << 3;
/// `MANAGE_ROLES`.
pub const MANAGE_ROLES: u64 = 1 << 28;
/// `MANAGE_GUILD`: needed to run `/setup`.
pub const MANAGE_GUILD: u64 = 1 << 5;

/// One role as far as role management is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub name: String,
    pub position: u16,
    pub permissions: u64,
    /// Owned by an integration (a bot's own role, a booster role): nobody can assign it.
    pub managed: bool,
}

/// A guild's roles and the bot's roles in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuildSnapshot {
    pub name: String,
    pub owner_id: Option<UserId>,
    pub roles: HashMap<RoleId, RoleInfo>,
    /// `None` until the bot's own member is known.
    pub bot_roles: Option<Vec<RoleId>>,
}

/// Why the bot cannot give or take a role. Each says what the owner must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionProblem {
    #[error(
        "Docobo lacks the Manage Roles permission. Fix: Server Settings → Roles → give Docobo's role (or a role it has) the Manage Roles permission"
    )]
    MissingManageRoles,
    #[error(
        "the role @{role} is not below Docobo's highest role ({bot_top}). Fix: Server Settings → Roles → drag Docobo's role above @{role}"
    )]
    RoleNotBelowBot { role: String, bot_top: String },
    #[error(
        "the role @{role} is managed by an integration (a bot or server boosts); nobody can assign it. Fix: pick another role"
    )]
    Managed { role: String },
    #[error("@everyone cannot be sold: every member has it. Fix: pick another role")]
    Everyone,
}

/// Why a role change cannot even be attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Permission(PermissionProblem),
    /// The role does not exist (deleted).
    UnknownRole,
}

impl GuildSnapshot {
    /// Checks that the bot can add or remove `role` on members.
    ///
    /// # Errors
    /// The refusal, with the cause.
    pub fn can_manage(&self, guild: GuildId, role: RoleId) -> Result<(), Refusal> {
        if role.get() == guild.get() {
            return Err(Refusal::Permission(PermissionProblem::Everyone));
        }
        let Some(target) = self.roles.get(&role) else {
            return Err(Refusal::UnknownRole);
        };
        if target.managed {
            return Err(Refusal::Permission(PermissionProblem::Managed {
                role: target.name.clone(),
            }));
        }
        let bot_roles = self.bot_roles.as_deref().unwrap_or_default();
        let everyone = self
            .roles
            .get(&RoleId::new(guild.get()).unwrap_or(role))
            .map_or(0, |r| r.permissions);
        let permissions = bot_roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .fold(everyone, |acc, r| acc | r.permissions);
        if permissions & (ADMINISTRATOR | MANAGE_ROLES) == 0 {
            return Err(Refusal::Permission(PermissionProblem::MissingManageRoles));
        }
        let top = bot_roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .max_by_key(|r| r.position);
        match top {
            Some(top) if top.position > target.position => Ok(()),
            top => Err(Refusal::Permission(PermissionProblem::RoleNotBelowBot {
                role: target.name.clone(),
                bot_top: top.map_or_else(|| "@everyone".to_owned(), |t| format!("@{}", t.name)),
            })),
        }
    }

    /// The role's name, for messages (`role <id>` if unknown).
    #[must_use]
    pub fn role_name(&self, role: RoleId) -> String {
        self.roles
            .get(&role)
            .map_or_else(|| format!("role {role}"), |r| r.name.clone())
    }
}

/// Every guild's snapshot, shared by the gateway handler and the role-sync worker.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    bot_user: Option<UserId>,
    guilds: HashMap<GuildId, GuildSnapshot>,
}

impl Directory {
    #[must_use]
    pub fn bot_user(&self) -> Option<UserId> {
        self.read(|i| i.bot_user)
    }

    pub fn set_bot_user(&self, user: UserId) {
        self.write(|i| i.bot_user = Some(user));
    }

    #[must_use]
    pub fn guild(&self, guild: GuildId) -> Option<GuildSnapshot> {
        self.read(|i| i.guilds.get(&guild).cloned())
    }

    /// Replaces a guild's snapshot (keeping the bot's roles if the new one does not know them).
    pub fn put_guild(&self, guild: GuildId, mut snapshot: GuildSnapshot) {
        self.write(|i| {
            if snapshot.bot_roles.is_none() {
                snapshot.bot_roles = i.guilds.get(&guild).and_then(|g| g.bot_roles.clone());
            }
            i.guilds.insert(guild, snapshot);
        });
    }

    /// Applies a change to a known guild's snapshot (role events, the bot's member update).
    pub fn update_guild(&self, guild: GuildId, change: impl FnOnce(&mut GuildSnapshot)) {
        self.write(|i| {
            if let Some(snapshot) = i.guilds.get_mut(&guild) {
                change(snapshot);
            }
        });
    }

    pub fn remove_guild(&self, guild: GuildId) {
        self.write(|i| {
            i.guilds.remove(&guild);
        });
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.write().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUILD: u64 = 100;

    fn id<M>(v: u64) -> crate::domain::Id<M> {
        crate::domain::Id::new(v).expect("id")
    }

    fn role(name: &str, position: u16, permissions: u64) -> RoleInfo {
        RoleInfo {
            name: name.into(),
            position,
            permissions,
            managed: false,
        }
    }

    /// @everyone, Supporter (1), Docobo's role (2, Manage Roles), VIP (3).
    fn snapshot() -> GuildSnapshot {
        let mut roles = HashMap::new();
        roles.insert(id(GUILD), role("@everyone", 0, 0));
        roles.insert(id(1), role("Supporter", 1, 0));
        roles.insert(id(2), role("Docobo", 2, MANAGE_ROLES));
        roles.insert(id(3), role("VIP", 3, 0));
        let mut boosts = role("Server Booster", 1, 0);
        boosts.managed = true;
        roles.insert(id(4), boosts);
        GuildSnapshot {
            name: "Shop".into(),
            owner_id: None,
            roles,
            bot_roles: Some(vec![id(2)]),
        }
    }

    #[test]
    fn a_role_below_the_bots_top_role_can_be_managed() {
        assert_eq!(snapshot().can_manage(id(GUILD), id(1)), Ok(()));
    }

    #[test]
    fn each_cause_is_named() {
        let s = snapshot();
        let guild = id(GUILD);
        assert!(matches!(
            s.can_manage(guild, id(3)),
            Err(Refusal::Permission(PermissionProblem::RoleNotBelowBot { ref role, ref bot_top }))
                if role == "VIP" && bot_top == "@Docobo"
        ));
        // Its own top role is not below itself.
        assert!(matches!(
            s.can_manage(guild, id(2)),
            Err(Refusal::Permission(
                PermissionProblem::RoleNotBelowBot { .. }
            ))
        ));
        assert!(matches!(
            s.can_manage(guild, id(4)),
            Err(Refusal::Permission(PermissionProblem::Managed { .. }))
        ));
        assert_eq!(
            s.can_manage(guild, id(GUILD)),
            Err(Refusal::Permission(PermissionProblem::Everyone))
        );
        assert_eq!(s.can_manage(guild, id(99)), Err(Refusal::UnknownRole));

        let mut no_perm = snapshot();
        no_perm.roles.get_mut(&id(2)).expect("bot role").permissions = 0;
        assert_eq!(
            no_perm.can_manage(guild, id(1)),
            Err(Refusal::Permission(PermissionProblem::MissingManageRoles))
        );
        // @everyone's permissions count, and Administrator implies Manage Roles.
        no_perm
            .roles
            .get_mut(&id(GUILD))
            .expect("everyone")
            .permissions = ADMINISTRATOR;
        assert_eq!(no_perm.can_manage(guild, id(1)), Ok(()));
    }

    #[test]
    fn moving_the_bots_role_up_fixes_the_hierarchy() {
        let mut s = snapshot();
        s.roles.get_mut(&id(2)).expect("bot role").position = 5;
        assert_eq!(s.can_manage(id(GUILD), id(3)), Ok(()));
    }
}
