//! Tiers of several roles (issue 21, items 1 and 6) end to end: `/admin tier` at the fake
//! Discord, the real role-sync worker and sweep, the real Polar plugin, a real SQLite file,
//! and a database as the previous release (V11) left it.

use std::sync::Arc;

use docobo::db::{Db, open_connection};
use docobo::domain::{Billing, RoleId};
use docobo_testkit::FakeDiscord;
use docobo_testkit::discord::{
    KICK_MEMBERS, MemberSpec, Reply, RoleSpec, SentMessage, SlashCommand,
};
use serde_json::{Value, json};

use crate::admin::connect_polar;
use crate::app::TestApp;
use crate::bot::{
    BOT_ENV, BOT_ROLE, BUYER, GUILD, LOG_CHANNEL, MEMBER, OWNER, PRODUCT, SUPPORTER, VIP, WAIT,
    deliver_polar, now_ms, polar_api, polar_event, start_app, start_app_with,
};
use crate::fake_api::FakeApi;

/// Roles a tier gives besides its own.
const CHAT: u64 = 3100;
const EVENTS: u64 = 3101;
/// A role the bot can kick with (below nobody it kicks: buyers hold roles at position 1).
const KICKER: u64 = 3102;

const APPLIED: &str = "SELECT count(*) FROM subscriptions WHERE role_applied = 1";

fn role(id: u64) -> RoleId {
    RoleId::new(id).expect("role")
}

async fn discord_with(guild: docobo_testkit::discord::GuildSpec) -> Arc<FakeDiscord> {
    Arc::new(
        FakeDiscord::builder()
            .guild(guild)
            .start()
            .await
            .expect("fake Discord"),
    )
}

fn guild_spec() -> docobo_testkit::discord::GuildSpec {
    crate::bot::shop()
        .role(RoleSpec::new(CHAT, "Chat", 1, 0))
        .role(RoleSpec::new(EVENTS, "Events", 1, 0))
}

/// `/admin tier` as the owner, with `options`.
pub(crate) async fn tier(discord: &FakeDiscord, options: &[(&str, Value)]) -> Reply {
    let mut command = SlashCommand::new(GUILD, OWNER, "admin").subcommand("tier");
    for (name, value) in options {
        command = command.option(name, value.clone());
    }
    let reply = discord
        .run_slash_command(&command, WAIT)
        .await
        .expect("/admin tier answers");
    assert!(reply.is_ephemeral(), "{reply:?}");
    reply
}

fn text(reply: &Reply) -> String {
    reply.content().unwrap_or_default().to_owned()
}

/// Waits until `user` holds every role of `want` and none of `lack` at the fake Discord.
pub(crate) async fn wait_for_roles(discord: &FakeDiscord, user: u64, want: &[u64], lack: &[u64]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let roles = discord.member_roles(GUILD, user).unwrap_or_default();
        if want.iter().all(|r| roles.contains(r)) && lack.iter().all(|r| !roles.contains(r)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "roles {roles:?}, want {want:?}, lack {lack:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An app on `discord` whose guild sells [`SUPPORTER`] through Polar (the fake API `_api`
/// must live as long as the app). Returns the webhook path.
async fn supporter_shop(discord: &Arc<FakeDiscord>) -> (TestApp, String, FakeApi) {
    let api = polar_api().await;
    let app = start_app(discord, &[]).await;
    let path = connect_polar(&app, &api).await;
    app.add_paid_role(
        docobo::domain::GuildId::new(GUILD).expect("guild"),
        role(SUPPORTER),
        (500, "USD"),
        Billing::Monthly,
        Some(PRODUCT),
    )
    .await;
    (app, path, api)
}

fn removals_of(discord: &FakeDiscord, role: u64) -> usize {
    discord.count_requests("DELETE", &format!("/guilds/*/members/*/roles/{role}"))
}

/// A tier gives all its roles at once, a role added later reaches the members who hold it,
/// a role taken out is taken from them, and the end of access takes every one away.
#[allow(clippy::too_many_lines, reason = "one end-to-end story, step by step")]
#[tokio::test]
async fn a_tier_of_several_roles_is_given_edited_and_ended_as_one() {
    let discord = discord_with(guild_spec()).await;
    let (app, path, _api) = supporter_shop(&discord).await;
    let shown = tier(&discord, &[("tier", json!(SUPPORTER.to_string()))]).await;
    assert!(
        text(&shown).contains(&format!("gives <@&{SUPPORTER}>;")),
        "{shown:?}"
    );
    // A role the guild does not sell is not a tier, and says how to fix it.
    let refused = tier(
        &discord,
        &[
            ("tier", json!(CHAT.to_string())),
            ("add_role", json!(EVENTS.to_string())),
        ],
    )
    .await;
    assert!(text(&refused).contains("not a paid role"), "{refused:?}");
    // A role above the bot's would fail at every sync: refused now, with the fix.
    let above = tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("add_role", json!(VIP.to_string())),
        ],
    )
    .await;
    assert!(
        text(&above).contains("drag Docobo's role above"),
        "{above:?}"
    );
    let added = tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("add_role", json!(CHAT.to_string())),
        ],
    )
    .await;
    assert!(text(&added).contains(&format!("<@&{CHAT}>")), "{added:?}");
    // `/join` says what the tier gives.
    let join = discord
        .run_slash_command(&SlashCommand::new(GUILD, BUYER, "join"), WAIT)
        .await
        .expect("/join answers");
    assert!(
        text(&join).contains(&format!(
            "<@&{SUPPORTER}> gives <@&{SUPPORTER}>, <@&{CHAT}>."
        )),
        "{join:?}"
    );
    let t0 = now_ms();
    let body = polar_event("subscription.active", "active", false, t0);
    assert_eq!(
        deliver_polar(&app, &path, "m_tier_buy", &body)
            .await
            .status(),
        202
    );
    wait_for_roles(&discord, BUYER, &[SUPPORTER, CHAT], &[]).await;

    // Edited while held: the new role reaches the buyer, the removed one leaves.
    tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("add_role", json!(EVENTS.to_string())),
        ],
    )
    .await;
    wait_for_roles(&discord, BUYER, &[SUPPORTER, CHAT, EVENTS], &[]).await;
    tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("remove_role", json!(CHAT.to_string())),
        ],
    )
    .await;
    wait_for_roles(&discord, BUYER, &[SUPPORTER, EVENTS], &[CHAT]).await;
    // The tier's own role cannot be taken out.
    let own = tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("remove_role", json!(SUPPORTER.to_string())),
        ],
    )
    .await;
    assert!(text(&own).contains("own role"), "{own:?}");
    // Every change is in the audit trail, with the roles it left.
    assert_eq!(
        app.count("SELECT count(*) FROM webhook_events WHERE event_type = 'admin.tier'")
            .await,
        3
    );

    // The end: every role of the tier goes.
    let end = polar_event("subscription.revoked", "revoked", false, t0 + 1000);
    assert_eq!(
        deliver_polar(&app, &path, "m_tier_end", &end)
            .await
            .status(),
        202
    );
    wait_for_roles(&discord, BUYER, &[], &[SUPPORTER, EVENTS, CHAT]).await;
    // The sync records the end after any kick it makes.
    crate::helpers::wait_for_count(&app, APPLIED, 0).await;
    assert!(
        discord.member_roles(GUILD, BUYER).is_some(),
        "removing roles is the default end: the buyer is still a member"
    );
}

/// Item 6: a tier whose owner chose `on_end:kick` kicks the member when access ends (after
/// the roles), and one the bot may not kick tells the owner how to fix it.
#[tokio::test]
async fn a_tier_that_kicks_on_end_kicks_and_a_refused_kick_tells_the_owner() {
    let spec = guild_spec()
        .role(RoleSpec::new(KICKER, "Kicker", 2, KICK_MEMBERS))
        .bot_roles(&[BOT_ROLE, KICKER]);
    let discord = discord_with(spec).await;
    let (app, path, _api) = supporter_shop(&discord).await;
    let set = tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("on_end", json!("kick")),
        ],
    )
    .await;
    assert!(text(&set).contains("kick the member"), "{set:?}");
    let t0 = now_ms();
    let buy = polar_event("subscription.active", "active", false, t0);
    deliver_polar(&app, &path, "m_kick_buy", &buy).await;
    wait_for_roles(&discord, BUYER, &[SUPPORTER], &[]).await;
    let end = polar_event("subscription.revoked", "revoked", false, t0 + 1000);
    deliver_polar(&app, &path, "m_kick_end", &end).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while discord.member_roles(GUILD, BUYER).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "not kicked");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log: Vec<(String, String)> = discord
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .starts_with(&format!("/guilds/{GUILD}/members/{BUYER}"))
        })
        .map(|r| (r.method, r.path))
        .collect();
    let kick = (
        "DELETE".to_owned(),
        format!("/guilds/{GUILD}/members/{BUYER}"),
    );
    let removed = (
        "DELETE".to_owned(),
        format!("/guilds/{GUILD}/members/{BUYER}/roles/{SUPPORTER}"),
    );
    let at = |r: &(String, String)| log.iter().position(|l| l == r);
    assert!(at(&removed) < at(&kick) && at(&kick).is_some(), "{log:?}");
    assert_eq!(log.iter().filter(|l| **l == kick).count(), 1, "{log:?}");
}

/// The bot without Kick Members: the roles still go, and the owner is told what to do.
#[tokio::test]
async fn a_kick_the_bot_may_not_make_leaves_the_roles_removed_and_tells_the_owner() {
    let discord = discord_with(guild_spec()).await;
    let (app, path, _api) = supporter_shop(&discord).await;
    tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("on_end", json!("kick")),
        ],
    )
    .await;
    let t0 = now_ms();
    let buy = polar_event("subscription.active", "active", false, t0);
    deliver_polar(&app, &path, "m_nokick_buy", &buy).await;
    wait_for_roles(&discord, BUYER, &[SUPPORTER], &[]).await;
    let end = polar_event("subscription.revoked", "revoked", false, t0 + 1000);
    deliver_polar(&app, &path, "m_nokick_end", &end).await;
    wait_for_roles(&discord, BUYER, &[], &[SUPPORTER]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let told = loop {
        let found = discord.sent_messages().into_iter().find(|m: &SentMessage| {
            m.channel_id == LOG_CHANNEL && m.message.to_string().contains("could not kick")
        });
        if let Some(found) = found {
            break found.message.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "owner not told");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(told.contains("Kick Members"), "{told}");
    assert!(
        discord.member_roles(GUILD, BUYER).is_some(),
        "still a member"
    );
}

/// Done when: the migration keeps every holding, on a database the previous release (V11)
/// built. Members who held their role keep it through the upgrade (no role is removed at
/// Discord, nothing is re-given), and the old holdings take part in tiers afterwards.
#[tokio::test]
async fn the_tiers_migration_keeps_every_holding_of_a_v11_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v11.db");
    {
        let mut conn = open_connection(&path, std::time::Duration::from_secs(5)).expect("open");
        docobo::db::migrate_to(&mut conn, 11).expect("V11");
        let far = now_ms() + 20 * crate::bot::DAY_MS;
        conn.execute_batch(&format!(
            "INSERT INTO guilds (guild_id, webhook_key) VALUES ({GUILD}, 'k1');
             INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing, product_ref)
                 VALUES (1, {GUILD}, {SUPPORTER}, 500, 'USD', 'monthly', '{PRODUCT}');
             INSERT INTO members (guild_id, user_id) VALUES ({GUILD}, {BUYER}), ({GUILD}, {MEMBER});
             INSERT INTO subscriptions (id, guild_id, user_id, paid_role_id, provider, scope,
                     external_id, status, period_end, role_applied, next_sync_at) VALUES
                 (1, {GUILD}, {BUYER}, 1, 'polar', '{GUILD}', 'sub_old', 'active', {far}, 1, NULL),
                 (2, {GUILD}, {MEMBER}, 1, 'admin', '{GUILD}', 'comp-1', 'active', NULL, 1, NULL);"
        ))
        .expect("V11 rows");
    }
    let spec = guild_spec()
        .member(MemberSpec::new(BUYER, "buyer").roles(&[SUPPORTER]))
        .member(MemberSpec::new(MEMBER, "member").roles(&[SUPPORTER]));
    let discord = discord_with(spec).await;
    let db_path = path.display().to_string();
    let mut env = BOT_ENV.to_vec();
    env.push(("DOCOBO_DATABASE__PATH", db_path.as_str()));
    let app = start_app_with(&discord, &env, docobo::clock::Clock::System).await;
    assert_eq!(app.count(APPLIED).await, 2);
    // Several sweeps (every second) and a full role-sync pass over both holdings.
    app.db
        .call(|conn| Ok(conn.execute("UPDATE subscriptions SET next_sync_at = 0", [])?))
        .await
        .expect("due");
    app.services.sync.wake();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        removals_of(&discord, SUPPORTER),
        0,
        "{:?}",
        discord.requests()
    );
    assert_eq!(
        discord.count_requests("PUT", "/guilds/*/members/*/roles/*"),
        0,
        "nothing needed giving again"
    );
    for user in [BUYER, MEMBER] {
        assert!(
            discord
                .member_roles(GUILD, user)
                .is_some_and(|r| r.contains(&SUPPORTER))
        );
    }
    assert_eq!(app.count(APPLIED).await, 2);
    // The old holdings are tiers now: a role added reaches both members.
    tier(
        &discord,
        &[
            ("tier", json!(SUPPORTER.to_string())),
            ("add_role", json!(CHAT.to_string())),
        ],
    )
    .await;
    wait_for_roles(&discord, BUYER, &[SUPPORTER, CHAT], &[]).await;
    wait_for_roles(&discord, MEMBER, &[SUPPORTER, CHAT], &[]).await;
    assert_eq!(removals_of(&discord, SUPPORTER), 0);
    drop(app);
    // The file is at V12 and opens again without migrating.
    let (_db, report) = Db::open(&path, std::time::Duration::from_secs(5)).expect("reopen");
    assert!(report.applied.is_empty(), "{:?}", report.applied);
}

/// Item 2 at Polar: Polar reports a plan change only as `subscription.updated` naming the new
/// product. The subscription moves to that product's tier; the role both tiers give stays on
/// throughout (the role log shows no removal of it), the old tier's own role goes.
#[tokio::test]
async fn a_polar_product_change_moves_the_member_to_the_other_tier_without_flapping() {
    const GOLD: u64 = 3103;
    let discord = discord_with(guild_spec().role(RoleSpec::new(GOLD, "Gold", 1, 0))).await;
    let (app, path, _api) = supporter_shop(&discord).await;
    app.add_paid_role(
        docobo::domain::GuildId::new(GUILD).expect("guild"),
        role(GOLD),
        (1500, "USD"),
        Billing::Monthly,
        Some("prod_gold"),
    )
    .await;
    for paid in [SUPPORTER, GOLD] {
        tier(
            &discord,
            &[
                ("tier", json!(paid.to_string())),
                ("add_role", json!(CHAT.to_string())),
            ],
        )
        .await;
    }
    let t0 = now_ms();
    let buy = polar_event("subscription.active", "active", false, t0);
    deliver_polar(&app, &path, "m_up_buy", &buy).await;
    wait_for_roles(&discord, BUYER, &[SUPPORTER, CHAT], &[GOLD]).await;

    let mut upgrade: Value = serde_json::from_slice(&polar_event(
        "subscription.updated",
        "active",
        false,
        t0 + 1000,
    ))
    .expect("json");
    upgrade["data"]["product_id"] = json!("prod_gold");
    let upgrade = serde_json::to_vec(&upgrade).expect("json");
    assert_eq!(
        deliver_polar(&app, &path, "m_up_change", &upgrade)
            .await
            .status(),
        202
    );
    wait_for_roles(&discord, BUYER, &[GOLD, CHAT], &[SUPPORTER]).await;
    // Both holdings synced: only the new one has roles on the member.
    crate::helpers::wait_for_count(&app, APPLIED, 1).await;
    assert_eq!(removals_of(&discord, CHAT), 0, "{:?}", discord.requests());
    assert_eq!(removals_of(&discord, SUPPORTER), 1);
    // One current subscription, on the Gold tier, under the same Polar id.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM subscriptions s JOIN paid_roles p ON p.id = s.paid_role_id
             WHERE s.status = 'active' AND p.role_id = 3103"
        )
        .await,
        1
    );
    // A late copy of an older event naming the old product changes nothing.
    let late = polar_event("subscription.updated", "active", false, t0 + 500);
    deliver_polar(&app, &path, "m_up_late", &late).await;
    app.services.sync.wake();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    wait_for_roles(&discord, BUYER, &[GOLD, CHAT], &[SUPPORTER]).await;
    assert_eq!(removals_of(&discord, GOLD), 0);
}
