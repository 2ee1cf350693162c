//! What arrives with an interaction, translated from serenity's types once: who acted, and
//! what they picked or typed. The commands see only these.

use serenity::all::{ActionRowComponent, ComponentInteractionDataKind, Member, ModalInteraction};
use serenity::model::id as sid;

use super::custom_id::InputId;
use super::error::BotError;
use super::ui::can_manage_guild;
use crate::domain::{ChannelId, GuildId, RoleId, UserId};

/// The person behind an interaction.
#[derive(Debug, Clone)]
pub(super) struct Actor {
    /// `None` in a DM.
    pub guild: Option<GuildId>,
    pub user: UserId,
    pub username: String,
    /// Manage Server or Administrator, as Discord computed it for the interaction.
    pub can_manage: bool,
}

impl Actor {
    /// `None` for a user id Docobo cannot store (never sent by Discord).
    pub(super) fn of(
        guild: Option<sid::GuildId>,
        user: &serenity::all::User,
        member: Option<&Member>,
    ) -> Option<Self> {
        Some(Self {
            guild: guild.and_then(|g| GuildId::new(g.get()).ok()),
            user: UserId::new(user.id.get()).ok()?,
            username: user.name.clone(),
            can_manage: can_manage_guild(member),
        })
    }

    /// The guild, for what only works inside one.
    pub(super) fn in_guild(&self) -> Result<GuildId, BotError> {
        self.guild
            .ok_or_else(|| BotError::refused("This command works inside a server."))
    }
}

/// What a component interaction carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Picked {
    Button,
    Strings(Vec<String>),
    Roles(Vec<RoleId>),
    Channels(Vec<ChannelId>),
    /// A kind Docobo does not send (user or mentionable selects).
    Other,
}

impl Picked {
    pub(super) fn of(kind: &ComponentInteractionDataKind) -> Self {
        match kind {
            ComponentInteractionDataKind::Button => Self::Button,
            ComponentInteractionDataKind::StringSelect { values } => Self::Strings(values.clone()),
            ComponentInteractionDataKind::RoleSelect { values } => Self::Roles(
                values
                    .iter()
                    .filter_map(|r| RoleId::new(r.get()).ok())
                    .collect(),
            ),
            ComponentInteractionDataKind::ChannelSelect { values } => Self::Channels(
                values
                    .iter()
                    .filter_map(|c| ChannelId::new(c.get()).ok())
                    .collect(),
            ),
            _ => Self::Other,
        }
    }
}

/// The inputs of a submitted modal whose ids are Docobo's, with what was typed.
pub(super) fn typed(modal: &ModalInteraction) -> Vec<(InputId, String)> {
    modal
        .data
        .components
        .iter()
        .flat_map(|row| &row.components)
        .filter_map(|c| match c {
            ActionRowComponent::InputText(input) => Some((
                InputId::parse(&input.custom_id)?,
                input.value.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}
