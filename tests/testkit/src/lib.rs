//! Test support for Docobo, shared by the integration tests (`tests/it`) and the benches.
//!
//! Only `app` (the `app` feature, which the main crate's tests turn on) depends on the `docobo`
//! crate: everything else talks to the bot over the network, as Discord or a provider would.
//!
//! # Layout
//!
//! - `app` (feature `app`): `TestApp`, the real app on `127.0.0.1:0` with its data in a
//!   temporary folder it owns, connected to a fake Discord; restartable on the same data.
//! - [`discord`]: a loopback fake Discord (REST under `/api/v10` and a `ws://` gateway) that
//!   real serenity 0.12.5 connects to, with an in-memory model of guilds, roles and members, a
//!   request log, fault injection, request bodies checked against Discord's `OpenAPI` spec and
//!   sent payloads checked against serenity's model types.
//! - [`fixtures`]: where the repository's `tests/fixtures/` are (signature vectors, provider
//!   payloads, Discord's `OpenAPI` spec).
//! - [`load`]: a load of distinct signed deliveries by concurrent workers, recording which
//!   ones were acknowledged (for durability tests).
//! - [`webhooks`]: provider deliveries to post: the Polar (Standard Webhooks) signer and SePay
//!   transfers, checked against the official vectors.
//!
//! ```no_run
//! # async fn demo() -> Result<(), docobo_testkit::discord::FakeError> {
//! use docobo_testkit::discord::{FakeDiscord, GuildSpec, MANAGE_ROLES, RoleSpec};
//!
//! let discord = FakeDiscord::builder()
//!     .guild(
//!         GuildSpec::new(2000, "Shop")
//!             .role(RoleSpec::new(3000, "Supporter", 1, 0))
//!             .role(RoleSpec::new(3001, "Docobo", 2, MANAGE_ROLES).managed())
//!             .bot_roles(&[3001]),
//!     )
//!     .start()
//!     .await?;
//! // Point the bot at discord.rest_url() (serenity's proxy) with discord.token().
//! # Ok(()) }
//! ```

// GUILD_CREATE's payload is one large `json!` literal.
#![recursion_limit = "256"]

#[cfg(feature = "app")]
pub mod app;
pub mod discord;
pub mod fixtures;
pub mod load;
pub mod webhooks;

pub use discord::FakeDiscord;
