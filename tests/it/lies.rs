//! Input that lies (issue 17, item 4), end to end: a bank transfer whose payment code is
//! past its validity, or whose amount is not the price, activates nothing and says why, to
//! the guild's staff and to the member.
//! The real app on loopback, the real SePay component, a fixed clock; the checkout is made by
//! the checkout service exactly as `/join` makes it.

use docobo::checkout;
use docobo::clock::Clock;
use docobo::db::{guilds, paid_roles, subscriptions};
use docobo::domain::{GuildId, RoleId, SubscriptionStatus, UserId};
use docobo_testkit::webhooks::{SepayTransfer, sepay_request};

use docobo_testkit::discord::FakeDiscord;

use crate::app::{TestApp, test_app};
use crate::bot;

const GUILD: u64 = 445_566_778_899_001_122;
const USER: u64 = 778_899_001_122_334_455;
const ROLE: u64 = 990_011_223_344_556_677;
const KEY: &str = "sepay-lies-key";
const HOUR: i64 = 3_600_000;
/// 2026-11-20T00:00:00Z (07:00 in Vietnam).
const T0: i64 = 1_795_132_800_000;

fn guild() -> GuildId {
    GuildId::new(GUILD).expect("guild")
}

/// SePay's `transactionDate` for `ms`: Vietnam local time (UTC+7).
fn vietnam_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms + 7 * HOUR)
        .expect("in range")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A guild selling a 30-day pass for 50 000 VND through SePay, and a member's `/join`
/// checkout made at the app's clock. Returns the app, the webhook path and the code.
async fn shop() -> (TestApp, String, String) {
    let app = test_app().clock(Clock::fixed(T0)).start().await;
    let (path, _) = app
        .add_sepay_pass(guild(), RoleId::new(ROLE).expect("role"), KEY)
        .await;
    let code = join(&app).await;
    (app, path, code)
}

/// What `/join` does: the checkout service, at the app's clock.
async fn join(app: &TestApp) -> String {
    let (saved, paid) = app
        .db
        .read(|conn| {
            let g = guilds::get(conn, guild())?.expect("guild");
            let p = paid_roles::get(conn, guild(), RoleId::new(ROLE).expect("role"))?
                .expect("paid role");
            Ok((g, p))
        })
        .await
        .expect("read the shop");
    let started = checkout::start(
        &app.services,
        &saved,
        &paid,
        UserId::new(USER).expect("user"),
        "buyer",
    )
    .await
    .expect("checkout");
    assert_eq!(
        started.checkout.expires_at,
        Some(app.services.now() + 24 * HOUR),
        "SePay's checkout is valid for 24 h"
    );
    started.checkout.payment_code.expect("a payment code")
}

async fn transfer(app: &TestApp, path: &str, id: i64, code: &str, amount: i64, at: i64) {
    let body = SepayTransfer::fixture()
        .id(id)
        .code(code)
        .amount(amount)
        .date(&vietnam_time(at))
        .body();
    let response = sepay_request(&app.client, &app.url(path), KEY, body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "SePay is always acknowledged");
}

async fn status(app: &TestApp, code: &str) -> SubscriptionStatus {
    let code = code.to_owned();
    app.db
        .read(move |conn| subscriptions::by_payment_code(conn, &code))
        .await
        .expect("read")
        .expect("the reserved checkout")
        .state
        .status
}

async fn detail(app: &TestApp, event: &'static str) -> (String, String) {
    app.db
        .read(move |conn| {
            Ok(conn.query_row(
                "SELECT outcome, coalesce(detail, '') FROM webhook_events WHERE external_event_id = ?1",
                [event],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .expect("the delivery is recorded")
}

#[tokio::test]
async fn a_transfer_booked_after_the_payment_code_expired_activates_nothing() {
    let (app, path, code) = shop().await;
    // Booked 25 h after /join: the code was valid for 24 h.
    transfer(&app, &path, 501, &code, 50_000, T0 + 25 * HOUR).await;
    assert_eq!(status(&app, &code).await, SubscriptionStatus::Pending);
    let (outcome, why) = detail(&app, "501").await;
    assert_eq!(outcome, "rejected");
    assert!(
        why.contains(&format!("payment code {code} expired")),
        "{why}"
    );
    assert!(
        why.contains("refund"),
        "the owner is told what to do: {why}"
    );

    // /join again renews the same code; a transfer within the new window pays.
    app.advance(26 * HOUR);
    assert_eq!(join(&app).await, code, "the member keeps their code");
    transfer(&app, &path, 502, &code, 50_000, T0 + 27 * HOUR).await;
    assert_eq!(status(&app, &code).await, SubscriptionStatus::Active);
    assert_eq!(detail(&app, "502").await.0, "applied");
}

#[tokio::test]
async fn a_transfer_within_the_validity_pays_even_when_delivered_late() {
    let (app, path, code) = shop().await;
    // Booked after 23 h, delivered (retried by SePay) two days later.
    app.advance(48 * HOUR);
    transfer(&app, &path, 601, &code, 50_000, T0 + 23 * HOUR).await;
    assert_eq!(status(&app, &code).await, SubscriptionStatus::Active);
}

#[tokio::test]
async fn only_the_exact_price_pays_a_transfer() {
    let (app, path, code) = shop().await;
    transfer(&app, &path, 701, &code, 60_000, T0 + HOUR).await;
    assert_eq!(status(&app, &code).await, SubscriptionStatus::Pending);
    let (outcome, why) = detail(&app, "701").await;
    assert_eq!(outcome, "rejected");
    assert!(why.starts_with("overpayment: received 60000 VND"), "{why}");
    assert!(why.contains("exactly 50000 VND"), "{why}");

    transfer(&app, &path, 702, &code, 49_999, T0 + HOUR).await;
    assert_eq!(status(&app, &code).await, SubscriptionStatus::Pending);
    let (outcome, why) = detail(&app, "702").await;
    assert_eq!(outcome, "rejected");
    assert!(why.starts_with("underpayment: received 49999 VND"), "{why}");

    transfer(&app, &path, 703, &code, 50_000, T0 + HOUR).await;
    assert_eq!(status(&app, &code).await, SubscriptionStatus::Active);
    // A renewal of the running pass is held to the same rule.
    transfer(&app, &path, 704, &code, 100_000, T0 + 2 * HOUR).await;
    assert!(detail(&app, "704").await.1.starts_with("overpayment"));
}

/// A DM to `user` containing `needle`, waiting for it.
async fn wait_for_dm_containing(discord: &FakeDiscord, user: u64, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + bot::WAIT;
    loop {
        let dms: Vec<String> = discord
            .sent_messages()
            .iter()
            .filter(|m| m.recipient_id == Some(user))
            .filter_map(|m| m.message["content"].as_str().map(str::to_owned))
            .collect();
        if let Some(dm) = dms.iter().find(|m| m.contains(needle)) {
            return dm.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no DM to {user} containing {needle:?}: {dms:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_transfer_is_told_to_the_staff_and_to_the_member() {
    let discord = bot::fake_discord().await;
    let app = bot::start_app_at(&discord, &[], Clock::fixed(T0)).await;
    let shop = GuildId::new(bot::GUILD).expect("guild");
    let role = RoleId::new(bot::SUPPORTER).expect("role");
    let (path, _) = app.add_sepay_pass(shop, role, KEY).await;
    app.db
        .call(move |conn| {
            conn.execute(
                "UPDATE guilds SET log_channel_id = ?1, owner_id = ?2",
                [bot::LOG_CHANNEL.cast_signed(), bot::OWNER.cast_signed()],
            )?;
            Ok(())
        })
        .await
        .expect("log channel");
    let (saved, paid) = app
        .db
        .read(move |conn| {
            Ok((
                guilds::get(conn, shop)?.expect("guild"),
                paid_roles::get(conn, shop, role)?.expect("paid role"),
            ))
        })
        .await
        .expect("read the shop");
    let buyer = UserId::new(bot::BUYER).expect("user");
    let code = checkout::start(&app.services, &saved, &paid, buyer, "buyer")
        .await
        .expect("checkout")
        .checkout
        .payment_code
        .expect("a payment code");

    // Underpaid within the validity: the staff hear why, the member what to do.
    transfer(&app, &path, 801, &code, 40_000, T0 + HOUR).await;
    let staff = bot::wait_for_message(&discord, bot::LOG_CHANNEL, "was not applied").await;
    assert!(
        staff.contains("underpayment: received 40000 VND"),
        "{staff}"
    );
    assert!(staff.contains(&format!("<@{}>", bot::BUYER)), "{staff}");
    let dm = wait_for_dm_containing(&discord, bot::BUYER, "does not match the price").await;
    assert!(dm.contains(&code) && dm.contains("40000 VND"), "{dm}");

    // Booked after the code expired: the same, with the expiry.
    transfer(&app, &path, 802, &code, 50_000, T0 + 25 * HOUR).await;
    let staff = bot::wait_for_message(&discord, bot::LOG_CHANNEL, "expired").await;
    assert!(
        staff.contains(&format!("payment code {code} expired")),
        "{staff}"
    );
    let dm = wait_for_dm_containing(&discord, bot::BUYER, "arrived after the code expired").await;
    assert!(dm.contains("run /join for a fresh code"), "{dm}");
    assert_eq!(status(&app, &code).await, SubscriptionStatus::Pending);

    // SePay's retry of the same delivery tells nobody twice.
    let before = discord.sent_messages().len();
    transfer(&app, &path, 802, &code, 50_000, T0 + 25 * HOUR).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        discord.sent_messages().len(),
        before,
        "a replay is not announced again"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_whose_code_matches_no_checkout_is_told_to_the_staff_only() {
    let discord = bot::fake_discord().await;
    let app = bot::start_app_at(&discord, &[], Clock::fixed(T0)).await;
    let shop = GuildId::new(bot::GUILD).expect("guild");
    let (path, _) = app
        .add_sepay_pass(shop, RoleId::new(bot::SUPPORTER).expect("role"), KEY)
        .await;
    app.db
        .call(move |conn| {
            conn.execute(
                "UPDATE guilds SET log_channel_id = ?1, owner_id = ?2",
                [bot::LOG_CHANNEL.cast_signed(), bot::OWNER.cast_signed()],
            )?;
            Ok(())
        })
        .await
        .expect("log channel");
    // A code in Docobo's format that no /join ever gave (mistyped, say).
    transfer(&app, &path, 901, "DCB99999999", 50_000, T0 + HOUR).await;
    let staff = bot::wait_for_message(&discord, bot::LOG_CHANNEL, "matched no checkout").await;
    assert!(
        staff.contains("50000 VND") && staff.contains("transaction 901"),
        "{staff}"
    );
    assert!(
        staff.contains("DCB99999999") && staff.contains("refund"),
        "{staff}"
    );
    assert!(!staff.contains(KEY), "{staff}");
    assert_eq!(detail(&app, "901").await.0, "rejected");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let dms: Vec<_> = discord
        .sent_messages()
        .into_iter()
        .filter(|m| m.recipient_id.is_some())
        .collect();
    assert!(dms.is_empty(), "nobody to tell but the staff: {dms:?}");
    app.stop().await;
}
