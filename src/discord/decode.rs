//! What the bot reads from an interaction, in one pure call, for the fuzz targets
//! (`fuzz/fuzz_targets/interaction.rs`): serenity's deserialisation of the payload, then
//! Docobo's own translation (the actor, the typed custom ids, what was picked or typed, the
//! prices typed in a modal). The handler does the same steps before it calls a command;
//! nothing here talks to Discord or the database.

use serenity::all::Interaction;

use super::custom_id::{CustomId, InputId};
use super::interaction::{Actor, Picked, typed};
use crate::shop::parse_price;

/// A summary of what was decoded, so that the work cannot be optimised away.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// `command`, `component`, `modal` or `other`.
    pub kind: &'static str,
    /// Whether an actor Docobo can store was found.
    pub actor: bool,
    /// The custom id, when it is one of Docobo's.
    pub custom_id: Option<String>,
    /// Modal inputs with Docobo's ids.
    pub inputs: usize,
    /// Prices typed in a modal that parse.
    pub prices: usize,
}

/// Decodes an interaction payload (the JSON Discord sends) as the bot does. `None` when
/// serenity refuses it.
#[must_use]
pub fn interaction(json: &[u8]) -> Option<Decoded> {
    let interaction: Interaction = serde_json::from_slice(json).ok()?;
    let mut out = Decoded::default();
    match &interaction {
        Interaction::Command(command) => {
            out.kind = "command";
            out.actor =
                Actor::of(command.guild_id, &command.user, command.member.as_deref()).is_some();
        }
        Interaction::Component(component) => {
            out.kind = "component";
            out.custom_id = CustomId::parse(&component.data.custom_id).map(|id| id.to_string());
            out.actor = Actor::of(
                component.guild_id,
                &component.user,
                component.member.as_ref(),
            )
            .is_some();
            let _ = Picked::of(&component.data.kind);
        }
        Interaction::Modal(modal) => {
            out.kind = "modal";
            out.custom_id = CustomId::parse(&modal.data.custom_id).map(|id| id.to_string());
            out.actor = Actor::of(modal.guild_id, &modal.user, modal.member.as_ref()).is_some();
            let inputs = typed(modal);
            out.inputs = inputs.len();
            out.prices = inputs
                .iter()
                .filter(|(id, text)| matches!(id, InputId::Price(_)) && parse_price(text).is_ok())
                .count();
        }
        _ => out.kind = "other",
    }
    Some(out)
}

/// Whether a custom id Docobo accepts reads back byte for byte (`Display` of what
/// `parse` gave). Ids Docobo does not accept trivially pass.
#[must_use]
pub fn custom_id_round_trips(text: &str) -> bool {
    let component = CustomId::parse(text).is_none_or(|id| id.to_string() == text);
    let input = InputId::parse(text).is_none_or(|id| id.to_string() == text);
    component && input
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The modal seed of the fuzz corpus (`fuzz/corpus/interaction/modal-prices.json`).
    const MODAL: &str = r#"{"id":"1300000000000000001","application_id":"1300000000000000002","type":5,"guild_id":"112233445566778899","channel_id":"1300000000000000003","member":{"user":{"id":"998877665544332211","username":"buyer","discriminator":"0","global_name":null,"avatar":null,"bot":false,"public_flags":0},"roles":[],"joined_at":"2026-01-01T00:00:00.000000+00:00","deaf":false,"mute":false,"flags":0,"permissions":"32","nick":null,"pending":false},"token":"tok","version":1,"app_permissions":"268435456","locale":"en-US","guild_locale":"en-US","entitlements":[],"data":{"custom_id":"setup:prices:0","components":[{"type":1,"components":[{"type":4,"custom_id":"price:990011223344556677","value":"4.99 USD monthly"}]},{"type":1,"components":[{"type":4,"custom_id":"price:990011223344556678","value":"50000 VND 30 days"}]}]},"attachment_size_limit":10485760}"#;
    /// The `/join` select seed (`fuzz/corpus/interaction/component-join-role.json`).
    const JOIN: &str = r#"{"id":"1300000000000000001","application_id":"1300000000000000002","type":3,"guild_id":"112233445566778899","channel_id":"1300000000000000003","member":{"user":{"id":"998877665544332211","username":"buyer","discriminator":"0","global_name":null,"avatar":null,"bot":false,"public_flags":0},"roles":[],"joined_at":"2026-01-01T00:00:00.000000+00:00","deaf":false,"mute":false,"flags":0,"permissions":"32","nick":null,"pending":false},"token":"tok","version":1,"app_permissions":"268435456","locale":"en-US","guild_locale":"en-US","entitlements":[],"data":{"custom_id":"join:role","component_type":3,"values":["990011223344556677"]},"attachment_size_limit":10485760,"message":{"id":"1300000000000000009","channel_id":"1300000000000000003","author":{"id":"1300000000000000002","username":"docobo","discriminator":"0","global_name":null,"avatar":null,"bot":true,"public_flags":0},"content":"Pick a role","timestamp":"2026-01-01T00:00:00.000000+00:00","edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],"attachments":[],"embeds":[],"pinned":false,"type":20,"flags":64,"components":[]}}"#;

    #[test]
    fn the_corpus_seeds_decode_as_the_bot_reads_them() {
        assert_eq!(
            interaction(MODAL.as_bytes()),
            Some(Decoded {
                kind: "modal",
                actor: true,
                custom_id: Some("setup:prices:0".into()),
                inputs: 2,
                prices: 2,
            })
        );
        assert_eq!(
            interaction(JOIN.as_bytes()),
            Some(Decoded {
                kind: "component",
                actor: true,
                custom_id: Some("join:role".into()),
                inputs: 0,
                prices: 0,
            })
        );
        assert_eq!(interaction(b"{}"), None);
    }

    #[test]
    fn custom_ids_with_leading_zeros_are_not_ours() {
        // Found while writing the `interaction` fuzz target's round-trip property:
        // `setup:prices:01` was read as page 1, which writes back as `setup:prices:1`.
        for text in ["setup:prices:01", "setup:creds:00", "price:0123"] {
            assert!(custom_id_round_trips(text), "{text}");
        }
        assert!(custom_id_round_trips("setup:prices:10"));
    }
}
