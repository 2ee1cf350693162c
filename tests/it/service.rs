//! The subscription writer (`docobo::subscriptions`, which every path that creates or moves a
//! subscription calls) over a real SQLite file, through the writer's group commit.

use docobo::db::Db;
use docobo::domain::ProviderId;
use docobo::domain::{StatusChange, SubscriptionStatus, UserId};
use docobo::subscriptions::Subscription;
use docobo::subscriptions::{self, CreateSubscription, StatusUpdate, SubscriptionError};

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
            .write(move |conn| Ok(subscriptions::create(conn, &data, 1_000)))
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
                let Some(sub) = crate::helpers::subscription_any_scope(conn, &provider, &id)?
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
        scope: docobo::domain::Scope::Guild(guild(1)),
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
    let stored =
        t.db.call(|conn| crate::helpers::subscription_any_scope(conn, &provider("polar"), "sub_1"))
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

// ---- The checkout and shop services, with the real plugins and no Discord or HTTP ----

mod checkout_and_shop {
    use std::collections::BTreeMap;

    use docobo::accounts::ProviderAccounts;
    use docobo::checkout::{self, CheckoutError, Offer};
    use docobo::clock::Clock;
    use docobo::db::guilds::{self, Guild};
    use docobo::db::paid_roles::{self, NewPaidRole, PaidRole};
    use docobo::db::subscriptions as rows;
    use docobo::domain::{Billing, Currency, Money, SubscriptionStatus, UserId};
    use docobo::metrics::Metrics;
    use docobo::providers::{HostOptions, ProviderHost, built_plugin};
    use docobo::secrets::CredentialBox;
    use docobo::services::{Services, SyncTrigger};
    use docobo::shop::{self, ShopDraft, ShopError};

    use crate::helpers::{TestDb, fresh_db, guild, provider, role};

    const NOW: i64 = 1_767_225_600_000;

    async fn services(t: &TestDb) -> Services {
        let providers = ProviderHost::load(HostOptions {
            builtins: true,
            extra_files: vec![built_plugin("docobo_test_provider")],
            clock: Clock::fixed(NOW),
            ..HostOptions::default()
        })
        .await
        .expect("plugins");
        let metrics = Metrics::new();
        Services {
            db: t.db.clone(),
            providers,
            accounts: ProviderAccounts::new(CredentialBox::from_key(&[7; 32]), BTreeMap::new()),
            sync: SyncTrigger::default(),
            alerts: docobo::alerts::Alerts::new(
                Clock::fixed(NOW),
                std::sync::Arc::clone(&metrics),
                &docobo::alerts::watch::Settings::default(),
            ),
            clock: Clock::fixed(NOW),
            metrics,
            grace_ms: 0,
            public_url: None,
            logins: std::sync::Arc::new(docobo::web::Logins::new(
                Clock::fixed(NOW),
                3_600_000,
                None,
            )),
            deliveries: docobo::ingest::watch::DeliveryWatch::default(),
        }
    }

    fn sepay_config() -> Vec<(String, String)> {
        [
            ("webhook_api_key", "sepay-key-123"),
            ("account_number", "0359123456"),
            ("bank", "MBBank"),
            ("payment_prefix", "DCB"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// A guild selling one 30-day pass through SePay.
    async fn sepay_shop(s: &Services) -> (Guild, PaidRole) {
        let sealed = s.accounts.seal(guild(1), &sepay_config());
        s.db.call(move |conn| {
            let g = Guild {
                id: guild(1),
                name: "Shop".into(),
                owner_id: None,
                provider: Some(provider("sepay")),
                credentials: Some(sealed),
                webhook_key: "key-1".into(),
                log_channel_id: None,
            };
            guilds::insert(conn, &g)?;
            let paid = paid_roles::insert(
                conn,
                &NewPaidRole {
                    guild_id: guild(1),
                    role_id: role(10),
                    name: "Supporter".into(),
                    price: Money::new(50_000, Currency::parse("VND").expect("VND")).expect("price"),
                    billing: Billing::parse("30 days").expect("billing"),
                    product_ref: None,
                },
            )?;
            Ok((g, paid))
        })
        .await
        .expect("seed")
    }

    fn user(n: u64) -> UserId {
        UserId::new(n).expect("user")
    }

    #[tokio::test]
    async fn a_member_who_holds_the_role_is_not_sold_it_again() {
        let t = fresh_db();
        let s = services(&t).await;
        let (g, paid) = sepay_shop(&s).await;
        assert!(matches!(
            checkout::offer(&s, g.id, user(5), role(10))
                .await
                .expect("offer"),
            Offer::Buy { .. }
        ));
        assert_eq!(
            checkout::offer(&s, g.id, user(5), role(11))
                .await
                .expect("offer"),
            Offer::NotForSale
        );
        // A pass paid until tomorrow.
        let started = checkout::start(&s, &g, &paid, user(5), "buyer")
            .await
            .expect("checkout");
        let code = started.checkout.payment_code.expect("a payment code");
        s.db.call(move |conn| {
            let sub = rows::by_payment_code(conn, &code)?.expect("reserved");
            let mut state = sub.state;
            state.status = SubscriptionStatus::Active;
            state.period_end = Some(NOW + 86_400_000);
            rows::set_state(conn, sub.id, state, false, NOW)
        })
        .await
        .expect("paid");
        assert_eq!(
            checkout::offer(&s, g.id, user(5), role(10))
                .await
                .expect("offer"),
            Offer::AlreadyHeld {
                status: SubscriptionStatus::Active,
                period_end: Some(NOW + 86_400_000)
            }
        );
        // The same pass a second later has ended: the clock decides, not a row edit.
        s.clock.set(NOW + 86_400_001);
        assert!(matches!(
            checkout::offer(&s, g.id, user(5), role(10))
                .await
                .expect("offer"),
            Offer::Buy { .. }
        ));
    }

    #[tokio::test]
    async fn a_sepay_code_is_reused_for_its_member_and_skipped_when_another_holds_it() {
        let t = fresh_db();
        let s = services(&t).await;
        let (g, paid) = sepay_shop(&s).await;
        let first = checkout::start(&s, &g, &paid, user(5), "a")
            .await
            .expect("checkout");
        let again = checkout::start(&s, &g, &paid, user(5), "a")
            .await
            .expect("checkout");
        let code = first.checkout.payment_code.expect("code");
        assert_eq!(again.checkout.payment_code.as_deref(), Some(code.as_str()));
        assert!(first.checkout.qr_image_url.is_some());

        // In another database, member 6 already holds the code member 5 would get first.
        let t2 = fresh_db();
        let s2 = services(&t2).await;
        let (g2, paid2) = sepay_shop(&s2).await;
        let taken = code.clone();
        let paid_id = paid2.id;
        s2.db
            .call(move |conn| {
                docobo::db::members::upsert(conn, guild(1), user(6), None)?;
                rows::insert(
                    conn,
                    &rows::NewSubscription {
                        guild_id: guild(1),
                        user_id: user(6),
                        paid_role_id: paid_id,
                        provider: provider("sepay"),
                        scope: docobo::domain::Scope::Guild(guild(1)),
                        external_id: None,
                        state: docobo::domain::SubscriptionState {
                            status: SubscriptionStatus::Pending,
                            period_end: None,
                            last_event_at: None,
                        },
                        payment_code: Some(taken),
                    },
                )
            })
            .await
            .expect("taken");
        let other = checkout::start(&s2, &g2, &paid2, user(5), "a")
            .await
            .expect("checkout");
        let new_code = other.checkout.payment_code.expect("code");
        assert_ne!(new_code, code, "a code another member holds is never shown");
        let owner = s2
            .db
            .read(move |conn| rows::by_payment_code(conn, &new_code))
            .await
            .expect("read")
            .expect("reserved");
        assert_eq!(owner.user_id, user(5));
        assert_eq!(owner.state.status, SubscriptionStatus::Pending);
    }

    #[tokio::test]
    async fn a_guild_without_a_provider_gets_a_clear_refusal() {
        let t = fresh_db();
        let s = services(&t).await;
        let (mut g, paid) = sepay_shop(&s).await;
        g.provider = None;
        let err = checkout::start(&s, &g, &paid, user(5), "a")
            .await
            .expect_err("no provider");
        assert!(matches!(err, CheckoutError::NoProvider), "{err:?}");
        assert_eq!(err.user_message(), "this server has no payment provider");
        // Credentials sealed for another guild do not open: the member is not told why.
        g.provider = Some(provider("sepay"));
        g.id = guild(2);
        let err = checkout::start(&s, &g, &paid, user(5), "a")
            .await
            .expect_err("unreadable credentials");
        assert!(matches!(err, CheckoutError::Credentials(_)), "{err:?}");
        assert!(!err.user_message().contains("sepay-key-123"));
    }

    fn draft(prices: &[&str]) -> ShopDraft {
        ShopDraft {
            provider: "test".into(),
            roles: vec![(role(10), "Gold".into()), (role(11), "Silver".into())],
            prices: prices.iter().map(|p| (*p).to_owned()).collect(),
            credentials: [("secret".to_owned(), "s3cret".to_owned())].into(),
        }
    }

    #[tokio::test]
    async fn the_shop_is_saved_whole_or_not_at_all() {
        let t = fresh_db();
        let s = services(&t).await;
        // A bad price refuses everything, with the fix; nothing is stored.
        let err = shop::save(&s, guild(1), &draft(&["4.99 USD monthly", "four EUR"]))
            .await
            .expect_err("bad price");
        assert!(matches!(err, ShopError::Refused(_)), "{err:?}");
        assert!(err.to_string().contains("four EUR"), "{err}");
        assert!(
            s.db.read(move |conn| guilds::get(conn, guild(1)))
                .await
                .expect("read")
                .is_none()
        );
        let saved = shop::save(
            &s,
            guild(1),
            &draft(&["4.99 USD monthly", "20 EUR one-time"]),
        )
        .await
        .expect("saved");
        assert_eq!(saved.roles.len(), 2);
        assert!(saved.webhook_path.starts_with("/webhooks/test/"));
        let stored =
            s.db.read(move |conn| {
                Ok((
                    guilds::get(conn, guild(1))?,
                    paid_roles::for_sale(conn, guild(1))?,
                ))
            })
            .await
            .expect("read");
        let (g, roles) = stored;
        let g = g.expect("guild");
        assert_eq!(roles.len(), 2);
        // The credentials are sealed, and open to what the owner typed.
        let (p, config) = s.accounts.for_guild(&g).expect("opens").expect("connected");
        assert_eq!(p, provider("test"));
        assert!(config.contains(&("secret".to_owned(), "s3cret".to_owned())));
        assert!(
            !String::from_utf8_lossy(g.credentials.as_deref().unwrap_or_default())
                .contains("s3cret")
        );
        // Saving again with the secret left empty keeps the saved one.
        let mut keep = draft(&["4.99 USD monthly"]);
        keep.roles.truncate(1);
        keep.credentials.clear();
        shop::save(&s, guild(1), &keep).await.expect("saved again");
        let g =
            s.db.read(move |conn| guilds::get(conn, guild(1)))
                .await
                .expect("read")
                .expect("guild");
        let (_, config) = s.accounts.for_guild(&g).expect("opens").expect("connected");
        assert!(config.contains(&("secret".to_owned(), "s3cret".to_owned())));
        let for_sale =
            s.db.read(move |conn| paid_roles::for_sale(conn, guild(1)))
                .await
                .expect("read");
        assert_eq!(for_sale.len(), 1, "the role left out is retired");
    }
}
