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
