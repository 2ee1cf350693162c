//! The subscription writer (`docobo::subscriptions`, which every path that creates or moves a
//! subscription calls) over a real SQLite file, through the writer's group commit.

use docobo::domain::{StatusChange, SubscriptionStatus, UserId};
use docobo::db::Db;
use docobo::domain::ProviderId;
use docobo::subscriptions::{self, CreateSubscription, StatusUpdate, SubscriptionError};
use docobo::subscriptions::Subscription;

use crate::helpers::{fresh_db, guild, provider, role, seed_guild_with_role};

const DAY: i64 = 86_400_000;

async fn service_with_role() -> (crate::helpers::TestDb, SubscriptionService) {
    let t = fresh_db();
    t.db.call(|conn| {
        seed_guild_with_role(conn, guild(1), role(10));
        Ok(())
    })
    .await
    .expect("seed");
    let service = SubscriptionService { db: t.db.clone() };
    (t, service)
}

/// The writer's functions, each in its own write transaction, as the services call them.
struct SubscriptionService {
    db: Db,
}

impl SubscriptionService {
    async fn create_subscription(
        &self,
        data: CreateSubscription,
    ) -> Result<Subscription, SubscriptionError> {
        self.db
            .write(move |conn| Ok(subscriptions::create(conn, &data)))
            .await
            .expect("database")
    }

    /// `None` when no subscription has this provider id.
    async fn update_subscription_status(
        &self,
        external: &ExternalRef,
        change: StatusChange,
    ) -> Option<StatusUpdate> {
        let (provider, id) = (external.provider.clone(), external.external_id.clone());
        self.db
            .write(move |conn| {
                let Some(sub) =
                    docobo::db::subscriptions::by_external_id(conn, &provider, &id)?
                else {
                    return Ok(None);
                };
                subscriptions::change_status(conn, &sub, change, 10_000).map(Some)
            })
            .await
            .expect("database")
    }
}

struct ExternalRef {
    provider: ProviderId,
    external_id: String,
}

fn create(external: &str) -> CreateSubscription {
    CreateSubscription {
        guild_id: guild(1),
        user_id: UserId::new(42).expect("user"),
        role_id: role(10),
        provider: provider("polar"),
        external_id: Some(external.into()),
        payment_code: None,
        status: SubscriptionStatus::Active,
        period_end: Some(30 * DAY),
        occurred_at: Some(1_000),
        username: None,
    }
}

fn ext(id: &str) -> ExternalRef {
    ExternalRef {
        provider: provider("polar"),
        external_id: id.into(),
    }
}

#[tokio::test]
async fn create_subscription_records_the_member_and_the_state() {
    let (_t, service) = service_with_role().await;
    let sub = service
        .create_subscription(create("sub_1"))
        .await
        .expect("created");
    assert_eq!(sub.state.status, SubscriptionStatus::Active);
    assert_eq!(sub.state.period_end, Some(30 * DAY));
    assert_eq!(sub.user_id.get(), 42);
    assert!(
        !sub.role_applied,
        "the role is not on the member until role sync runs"
    );
}

#[tokio::test]
async fn create_subscription_fails_with_duplicate_error_for_a_known_external_id() {
    let (_t, service) = service_with_role().await;
    service
        .create_subscription(create("sub_1"))
        .await
        .expect("first");
    let err = service
        .create_subscription(create("sub_1"))
        .await
        .expect_err("second");
    assert!(matches!(err, SubscriptionError::Duplicate(_)), "{err:?}");
}

#[tokio::test]
async fn create_subscription_fails_with_validation_error_for_bad_input() {
    let (_t, service) = service_with_role().await;
    let not_for_sale = CreateSubscription {
        role_id: role(11),
        ..create("sub_x")
    };
    let err = service
        .create_subscription(not_for_sale)
        .await
        .expect_err("role not for sale");
    assert!(
        matches!(&err, SubscriptionError::Validation(v) if v.message.contains("/setup")),
        "{err:?}"
    );
    for bad in [
        CreateSubscription {
            external_id: Some(String::new()),
            ..create("")
        },
        CreateSubscription {
            external_id: None,
            payment_code: None,
            ..create("x")
        },
        CreateSubscription {
            payment_code: Some("no spaces!".into()),
            ..create("y")
        },
        CreateSubscription {
            status: SubscriptionStatus::Expired,
            ..create("z")
        },
    ] {
        let err = service
            .create_subscription(bad.clone())
            .await
            .expect_err("invalid");
        assert!(
            matches!(err, SubscriptionError::Validation(_)),
            "{bad:?} -> {err:?}"
        );
    }
}

#[tokio::test]
async fn update_subscription_status_applies_the_state_machine_durably() {
    let (t, service) = service_with_role().await;
    service
        .create_subscription(create("sub_1"))
        .await
        .expect("created");

    let cancel = StatusChange {
        status: SubscriptionStatus::Canceled,
        period_end: None,
        occurred_at: 2_000,
    };
    assert_eq!(
        service
            .update_subscription_status(&ext("sub_1"), cancel)
            .await
            .expect("cancel"),
        StatusUpdate::Applied {
            from: SubscriptionStatus::Active,
            to: SubscriptionStatus::Canceled
        }
    );

    // A delayed `active` from before the cancellation moves nothing.
    let late = StatusChange {
        status: SubscriptionStatus::Active,
        period_end: Some(60 * DAY),
        occurred_at: 1_500,
    };
    assert_eq!(
        service
            .update_subscription_status(&ext("sub_1"), late)
            .await
            .expect("late"),
        StatusUpdate::Stale {
            last_event_at: 2_000
        }
    );

    let revoke = StatusChange {
        status: SubscriptionStatus::Revoked,
        period_end: None,
        occurred_at: 3_000,
    };
    service
        .update_subscription_status(&ext("sub_1"), revoke)
        .await
        .expect("revoke");
    let revive = StatusChange {
        status: SubscriptionStatus::Active,
        period_end: None,
        occurred_at: 4_000,
    };
    assert_eq!(
        service
            .update_subscription_status(&ext("sub_1"), revive)
            .await
            .expect("revive"),
        StatusUpdate::Refused {
            from: SubscriptionStatus::Revoked,
            to: SubscriptionStatus::Active
        }
    );

    // What is stored: revoked, the original period end, the newest applied timestamp.
    let stored = t
        .db
        .call(|conn| docobo::db::subscriptions::by_external_id(conn, &provider("polar"), "sub_1"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.state.status, SubscriptionStatus::Revoked);
    assert_eq!(stored.state.period_end, Some(30 * DAY));
    assert_eq!(stored.state.last_event_at, Some(3_000));

    let missing = service
        .update_subscription_status(&ext("nope"), revoke)
        .await;
    assert!(missing.is_none(), "{missing:?}");
}
