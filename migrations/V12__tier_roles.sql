-- Tiers of several roles (issue 21, items 1, 2, 4 and 6). A paid role is a tier: its own
-- role (`paid_roles.role_id`) plus the roles in `tier_roles`, all given together.
--
-- `tier_roles`: the roles a tier gives besides its own, set with `/admin tier`. A role may
-- be in several tiers; role sync gives a member the union of their entitled tiers' roles
-- and never removes a role another entitled tier gives (a plan change keeps what both tiers
-- share on the member throughout).
CREATE TABLE tier_roles (
    paid_role_id INTEGER NOT NULL REFERENCES paid_roles (id) ON DELETE CASCADE,
    role_id      INTEGER NOT NULL,
    PRIMARY KEY (paid_role_id, role_id)
) STRICT, WITHOUT ROWID;

-- `trial_role_id`: a role given only while a subscription of the tier is trialing, on top
-- of the tier's roles (taken away when the trial converts or ends).
-- `on_end`: what happens when a member's access to the tier ends and no other tier keeps
-- them: `remove` the roles (the default, as before) or `kick` the member (after removing).
ALTER TABLE paid_roles ADD COLUMN trial_role_id INTEGER;
ALTER TABLE paid_roles ADD COLUMN on_end TEXT NOT NULL DEFAULT 'remove'
    CHECK (on_end IN ('remove', 'kick'));

-- Which roles a holding's last sync left on the member, as comma-separated role ids. NULL
-- (every row from before this migration) means the tier's own role when `role_applied` is
-- 1, which is exactly what was given before tiers had several roles: no holding changes.
ALTER TABLE subscriptions ADD COLUMN applied_roles TEXT;
