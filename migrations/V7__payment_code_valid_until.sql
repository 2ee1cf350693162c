-- A bank-transfer checkout's payment code is valid until this instant (unix ms), as the
-- provider's checkout said (SePay: 24 h after /join; /join again renews it). A transfer
-- booked later does not activate a pending checkout: it is recorded as rejected with the
-- reason. NULL: no limit (checkouts made before this migration, or a provider that gives
-- none). Numbered 7: V6 is issue 17's isolation migration.
ALTER TABLE subscriptions ADD COLUMN payment_code_valid_until INTEGER;
