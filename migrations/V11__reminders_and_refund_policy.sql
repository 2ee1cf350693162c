-- Reminders before access ends, and the partial-refund policy (issue 21, items 5 and 6).
--
-- `members.reminders`: 0 once the member pressed "Stop reminders" in a reminder (per guild);
-- "Turn reminders back on" sets it to 1 again. Existing members get reminders (1).
--
-- `subscriptions.reminder_key` says which reminder was last taken on for the subscription
-- (`end:<period_end>` for an access about to end, `past_due:<period_end>` for a failed card
-- payment), and `reminder_sent_at` when it was sent. The key is written before the direct
-- message goes out and the time after, so a restart between the two sends it again (with the
-- same Discord nonce) instead of never, and a reminder already sent is never sent twice.
-- A renewal moves `period_end`, so the next end gets its own reminder.
ALTER TABLE members ADD COLUMN reminders INTEGER NOT NULL DEFAULT 1 CHECK (reminders IN (0, 1));
ALTER TABLE subscriptions ADD COLUMN reminder_key TEXT;
ALTER TABLE subscriptions ADD COLUMN reminder_sent_at INTEGER;

-- Failed card payments, found without reading every subscription (ends are found through
-- `subscriptions_period_end`).
CREATE INDEX subscriptions_past_due ON subscriptions (period_end) WHERE status = 'past_due';

-- Per-tier policy for a partial refund (issue 21, item 6): `keep` (the default, as before)
-- keeps access; `revoke` ends it as a full refund does. Set with `/admin policy`.
ALTER TABLE paid_roles ADD COLUMN partial_refund TEXT NOT NULL DEFAULT 'keep'
    CHECK (partial_refund IN ('keep', 'revoke'));
