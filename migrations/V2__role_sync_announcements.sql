-- What the log channel was last told about a subscription ("status:period_end"), so that each
-- purchase, renewal, cancellation and expiry is announced once, even across restarts.
ALTER TABLE subscriptions ADD COLUMN announced TEXT;
