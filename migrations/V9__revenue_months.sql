-- Revenue per guild, currency and month, kept as it is earned (issue 19's overview).
--
-- The overview used to add up webhook_events each time it was drawn: a scan of every
-- delivery (json_extract on each), and wrong once retention pruned old deliveries or
-- `forget` unlinked a member's (their payments then merged with other members' in the
-- "is this a new period" test), and it missed partial refunds (recorded as ignored, since
-- they move no access). These totals are anonymous and are what `forget` keeps:
-- guild, currency, month, minor units. The sixth table beside DESIGN.md's five, for that.
--
-- `subscriptions.paid_through` is the latest period end counted as revenue, so a repeat of
-- the same period (Stripe's invoice.paid and customer.subscription.updated) counts once.
--
-- Backfilled from the deliveries kept, by the rule the overview's query used.

ALTER TABLE subscriptions ADD COLUMN paid_through INTEGER;

CREATE TABLE revenue_months (
    guild_id     INTEGER NOT NULL REFERENCES guilds (guild_id) ON DELETE CASCADE,
    currency     TEXT    NOT NULL,
    -- 'YYYY-MM', UTC.
    month        TEXT    NOT NULL,
    minor_units  INTEGER NOT NULL,
    PRIMARY KEY (guild_id, currency, month)
) STRICT, WITHOUT ROWID;

WITH e AS (
    SELECT guild_id, received_at, subscription_id AS sub,
           json_extract(event, '$.kind') AS kind,
           json_extract(event, '$.status') AS status,
           json_extract(event, '$.period_end') AS period_end,
           json_extract(event, '$.amount.minor_units') AS amount,
           upper(json_extract(event, '$.amount.currency')) AS currency,
           json_extract(event, '$.refund.minor_units') AS refunded,
           upper(json_extract(event, '$.refund.currency')) AS refund_currency
    FROM webhook_events
    WHERE guild_id IS NOT NULL AND test = 0
      -- A partial refund was recorded as ignored (access kept), but its money went back.
      AND (outcome = 'applied'
           OR (outcome = 'ignored' AND subscription_id IS NOT NULL
               AND json_extract(event, '$.kind') = 'refund'))
      AND guild_id IN (SELECT guild_id FROM guilds)
), p AS (
    SELECT *, MAX(period_end) OVER (PARTITION BY sub ORDER BY received_at
              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
    FROM e
), counted AS (
    SELECT guild_id,
           CASE kind WHEN 'refund' THEN coalesce(refund_currency, currency) ELSE currency END AS cur,
           strftime('%Y-%m', received_at / 1000, 'unixepoch') AS month,
           CASE kind WHEN 'refund' THEN -coalesce(refunded, amount) ELSE amount END AS minor
    FROM p
    WHERE kind IN ('payment', 'refund')
       OR (kind IN ('subscription', 'plan_change') AND status = 'active'
           AND period_end IS NOT NULL AND sub IS NOT NULL
           AND (before IS NULL OR period_end > before))
)
INSERT INTO revenue_months (guild_id, currency, month, minor_units)
SELECT guild_id, cur, month, SUM(minor) FROM counted
WHERE cur IS NOT NULL AND minor IS NOT NULL
GROUP BY guild_id, cur, month;

UPDATE subscriptions SET paid_through = (
    SELECT MAX(json_extract(w.event, '$.period_end')) FROM webhook_events w
    WHERE w.subscription_id = subscriptions.id AND w.outcome = 'applied'
      AND json_extract(w.event, '$.kind') IN ('subscription', 'plan_change')
      AND json_extract(w.event, '$.status') = 'active');
