//! The bot follows its guilds: one it is removed from stops being served (poll, sweep, role
//! syncs, notices) and keeps its data; adding the bot again resumes it.

use std::time::Duration;

use docobo::db::guilds;
use docobo::domain::GuildId;
use docobo_testkit::app::TestApp;
use docobo_testkit::discord::FakeDiscord;
use serde_json::json;

use crate::bot::{
    BUYER, DAY_MS, GUILD, SUPPORTER, WAIT, buy, deliver_polar, fake_discord, now_ms, polar_event,
    seed_polar, shop, start_app,
};

async fn left_at(app: &TestApp) -> Option<i64> {
    let guild = GuildId::new(GUILD).expect("guild");
    app.db
        .read(move |conn| guilds::left_at(conn, guild))
        .await
        .expect("read")
}

async fn wait_for_left(app: &TestApp, left: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while left_at(app).await.is_some() != left {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the guild was never marked {}",
            if left { "left" } else { "back" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests Docobo made about the guild (role changes, member look-ups, notices go to its
/// channel or owner and count separately).
fn guild_requests(discord: &FakeDiscord) -> usize {
    let prefix = format!("/guilds/{GUILD}/");
    discord
        .requests()
        .iter()
        .filter(|r| r.path.starts_with(&prefix))
        .count()
}

fn messages(discord: &FakeDiscord) -> usize {
    discord.sent_messages().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guild_the_bot_is_removed_from_stops_being_served_until_it_is_added_again() {
    let discord = fake_discord().await;
    // The sweep runs every second.
    let app = start_app(&discord, &[]).await;
    let path = seed_polar(&app, SUPPORTER).await;
    buy(&app, &path, "msg_left_1").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted");

    // An outage at Discord (`unavailable`) is not a removal.
    discord
        .dispatch(
            "GUILD_DELETE",
            json!({"id": GUILD.to_string(), "unavailable": true}),
        )
        .expect("dispatch");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(left_at(&app).await, None);

    // The bot is kicked.
    discord
        .dispatch("GUILD_DELETE", json!({"id": GUILD.to_string()}))
        .expect("dispatch");
    wait_for_left(&app, true).await;
    let poll = app.db.read(guilds::with_provider).await.expect("read");
    assert!(
        poll.is_empty(),
        "the poll still asks for the guild: {poll:?}"
    );

    // A revocation arrives meanwhile: recorded, but nothing is asked of Discord, and the
    // sweep (every second) looks at no member of the guild.
    let (requests, sent) = (guild_requests(&discord), messages(&discord));
    let revoked = polar_event("subscription.revoked", "revoked", false, now_ms() + DAY_MS);
    let response = deliver_polar(&app, &path, "msg_left_2", &revoked).await;
    assert_eq!(response.status(), 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        guild_requests(&discord),
        requests,
        "Docobo still calls Discord about a guild it was removed from: {:#?}",
        discord.requests().iter().rev().take(5).collect::<Vec<_>>()
    );
    assert_eq!(messages(&discord), sent, "notices went on");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM subscriptions WHERE status = 'revoked' AND next_sync_at IS NULL"
        )
        .await,
        1,
        "the data is kept, its sync parked"
    );

    // Added again: served again, and what happened while away is caught up with.
    discord.join_guild(&shop()).expect("GUILD_CREATE");
    wait_for_left(&app, false).await;
    discord
        .wait_for_request(
            "DELETE",
            &format!("/guilds/{GUILD}/members/{BUYER}/roles/{SUPPORTER}"),
            WAIT,
        )
        .await
        .expect("the revocation is applied once the bot is back");
}

/// A guild on shard 0 of 2 (`(id >> 22) % 2 == 0`); [`shop`]'s is on shard 1.
const SHARD0_GUILD: u64 = 223_344_556_682_084_204;

/// Past 2 500 guilds Discord requires sharding: Docobo opens every shard `GET /gateway/bot`
/// recommends, each identifying with `[i, n]`, and serves the guilds of all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_opens_the_shards_discord_recommends_and_serves_the_guilds_of_each() {
    let discord = std::sync::Arc::new(
        FakeDiscord::builder()
            .shards(2)
            .guild(shop())
            .guild(
                docobo_testkit::discord::GuildSpec::new(SHARD0_GUILD, "On shard zero")
                    .owner(crate::bot::OWNER),
            )
            .start()
            .await
            .expect("fake Discord"),
    );
    let app = start_app(&discord, &[]).await;
    // serenity starts one shard at a time, five seconds apart.
    let stats = discord
        .wait_for_gateway("both shards live", WAIT, |s| s.live_shards == [0, 1])
        .await
        .expect("both shards identified");
    let mut shards = stats.identified_shards.clone();
    shards.sort_unstable();
    assert_eq!(shards, [[0, 2], [1, 2]], "{stats:?}");
    // Each guild arrived on its own shard's GUILD_CREATE.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let named = app
            .count("SELECT count(*) FROM guilds WHERE name IN ('Shop', 'On shard zero')")
            .await;
        if named == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "guilds seen: {named}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the bot works in the guild of shard 1.
    let path = seed_polar(&app, SUPPORTER).await;
    buy(&app, &path, "msg_sharded").await;
    discord
        .wait_for_member_role(GUILD, BUYER, SUPPORTER, true, WAIT)
        .await
        .expect("granted");
}

/// The data of a guild the bot left is kept until the operator runs `docobo forget-guild`,
/// which refuses a guild the bot is still in.
#[test]
fn forget_guild_deletes_what_a_left_guild_left_behind_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("DOCOBO_DISCORD__TOKEN", "t"),
        ("DOCOBO_DATABASE__PATH", "docobo.db"),
    ];
    let migrate = crate::cli::docobo(dir.path(), &env)
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(migrate.status.success());
    let conn = rusqlite::Connection::open(dir.path().join("docobo.db")).expect("open");
    conn.execute_batch(
        "INSERT INTO guilds (guild_id, webhook_key, provider, left_at) VALUES
             (1, 'k1', 'polar', 123), (2, 'k2', 'polar', NULL);
         INSERT INTO paid_roles (id, guild_id, role_id, price_minor, currency, billing) VALUES
             (1, 1, 10, 499, 'USD', 'monthly'), (2, 2, 20, 499, 'USD', 'monthly');
         INSERT INTO members (guild_id, user_id) VALUES (1, 100), (2, 100);
         INSERT INTO subscriptions (id, guild_id, user_id, paid_role_id, provider, scope, external_id, status) VALUES
             (1, 1, 100, 1, 'polar', '1', 'sub-1', 'active'),
             (2, 2, 100, 2, 'polar', '2', 'sub-1', 'active');
         INSERT INTO webhook_events (provider, scope, external_event_id, guild_id, subscription_id, event_type, event, outcome) VALUES
             ('polar', '1', 'm1', 1, 1, 't', '{}', 'applied'),
             ('polar', '1', 'm2', NULL, NULL, 't', '{}', 'ignored'),
             ('polar', '2', 'm1', 2, 2, 't', '{}', 'applied');",
    )
    .expect("rows");
    drop(conn);
    let still_in = crate::cli::docobo(dir.path(), &env)
        .args(["forget-guild", "2"])
        .output()
        .expect("forget 2");
    assert!(!still_in.status.success());
    assert!(
        String::from_utf8_lossy(&still_in.stderr).contains("remove the bot from the server first")
    );
    let forgotten = crate::cli::docobo(dir.path(), &env)
        .args(["forget-guild", "1"])
        .output()
        .expect("forget 1");
    assert!(
        forgotten.status.success(),
        "{}",
        String::from_utf8_lossy(&forgotten.stderr)
    );
    assert!(
        String::from_utf8_lossy(&forgotten.stdout)
            .contains("1 subscription(s) and 2 delivery record(s) deleted")
    );
    let conn = rusqlite::Connection::open(dir.path().join("docobo.db")).expect("open");
    for (table, left) in [
        ("guilds", 1),
        ("paid_roles", 1),
        ("members", 1),
        ("subscriptions", 1),
        ("webhook_events", 1),
    ] {
        let n: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE guild_id = 2"),
                [],
                |r| r.get(0),
            )
            .expect("count");
        let all: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count");
        assert_eq!((n, all), (left, left), "{table}");
    }
}
