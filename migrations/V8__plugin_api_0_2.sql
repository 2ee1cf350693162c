-- Plugin API 0.2 (issue 20): two new subscription statuses and a test flag.
--
-- `paused` (not entitled until resumed) and `trialing` (entitled until the trial ends) are
-- statuses providers now report. SQLite cannot change a CHECK constraint, so
-- `subscriptions` is rebuilt; `webhook_events` references it and is rebuilt with it, in the
-- order V6 used (rename both, create both, copy, drop the old ones), which keeps every id and
-- every webhook_events.subscription_id.
--
-- `test` (0 or 1, default 0) marks what a provider's test mode or sandbox, or an owner's test
-- purchase, produced: counts and reports keep those apart from real money. A test purchase
-- still grants its role. Existing rows were all real: 0.

ALTER TABLE subscriptions RENAME TO subscriptions_v7;

CREATE TABLE subscriptions (
    id                    INTEGER PRIMARY KEY,
    guild_id              INTEGER NOT NULL,
    user_id               INTEGER NOT NULL,
    paid_role_id          INTEGER NOT NULL REFERENCES paid_roles (id) ON DELETE RESTRICT,
    provider              TEXT    NOT NULL,
    -- Whose credentials created it: 'operator' or the guild id. Only deliveries verified in
    -- the same scope find it by its provider id.
    scope                 TEXT    NOT NULL,
    external_id           TEXT,
    status                TEXT    NOT NULL CHECK (status IN
                              ('pending', 'active', 'canceled', 'past_due', 'revoked', 'refunded',
                               'expired', 'paused', 'trialing')),
    period_end            INTEGER,
    cancel_at_period_end  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    payment_code          TEXT    UNIQUE,
    last_event_at         INTEGER,
    role_applied          INTEGER NOT NULL DEFAULT 0 CHECK (role_applied IN (0, 1)),
    sync_attempts         INTEGER NOT NULL DEFAULT 0,
    next_sync_at          INTEGER,
    last_sync_error       TEXT,
    created_at            INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    updated_at            INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    announced             TEXT,
    sync_version          INTEGER NOT NULL DEFAULT 0,
    -- A bank-transfer checkout's payment code is valid until this instant (V7).
    payment_code_valid_until INTEGER,
    -- From a provider's test mode or an owner's test purchase: kept apart in counts.
    test                  INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1)),
    FOREIGN KEY (guild_id, user_id) REFERENCES members (guild_id, user_id) ON DELETE CASCADE,
    -- A guild-scoped subscription belongs to that guild.
    CHECK (scope = 'operator' OR scope = CAST(guild_id AS TEXT)),
    UNIQUE (provider, scope, external_id)
) STRICT;

INSERT INTO subscriptions
    (id, guild_id, user_id, paid_role_id, provider, scope, external_id, status, period_end,
     cancel_at_period_end, payment_code, last_event_at, role_applied, sync_attempts,
     next_sync_at, last_sync_error, created_at, updated_at, announced, sync_version,
     payment_code_valid_until, test)
SELECT id, guild_id, user_id, paid_role_id, provider, scope, external_id, status, period_end,
       cancel_at_period_end, payment_code, last_event_at, role_applied, sync_attempts,
       next_sync_at, last_sync_error, created_at, updated_at, announced, sync_version,
       payment_code_valid_until, 0
FROM subscriptions_v7;

ALTER TABLE webhook_events RENAME TO webhook_events_v7;

CREATE TABLE webhook_events (
    id                 INTEGER PRIMARY KEY,
    provider           TEXT    NOT NULL,
    -- Whose credentials verified it: 'operator' or the guild id. Event ids are unique per
    -- (provider, scope): a repeat in the same scope is a duplicate, the same id in another
    -- scope is another event.
    scope              TEXT    NOT NULL,
    external_event_id  TEXT    NOT NULL,
    guild_id           INTEGER REFERENCES guilds (guild_id) ON DELETE SET NULL,
    subscription_id    INTEGER REFERENCES subscriptions (id) ON DELETE SET NULL,
    event_type         TEXT    NOT NULL,
    event              TEXT    NOT NULL,
    received_at        INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER)),
    outcome            TEXT    NOT NULL,
    detail             TEXT,
    -- From a provider's test mode or an owner's test purchase: kept apart in counts.
    test               INTEGER NOT NULL DEFAULT 0 CHECK (test IN (0, 1)),
    UNIQUE (provider, scope, external_event_id)
) STRICT;

INSERT INTO webhook_events
    (id, provider, scope, external_event_id, guild_id, subscription_id, event_type, event,
     received_at, outcome, detail, test)
SELECT id, provider, scope, external_event_id, guild_id, subscription_id, event_type, event,
       received_at, outcome, detail, 0
FROM webhook_events_v7;

DROP TABLE webhook_events_v7;
DROP TABLE subscriptions_v7;

CREATE INDEX subscriptions_member ON subscriptions (guild_id, user_id);
CREATE INDEX subscriptions_paid_role ON subscriptions (paid_role_id);
CREATE INDEX subscriptions_sync_due ON subscriptions (next_sync_at) WHERE next_sync_at IS NOT NULL;
CREATE INDEX subscriptions_period_end ON subscriptions (period_end) WHERE period_end IS NOT NULL;
CREATE INDEX subscriptions_sync_failed ON subscriptions (guild_id) WHERE last_sync_error IS NOT NULL;
CREATE INDEX webhook_events_subscription ON webhook_events (subscription_id);
