//! Bank transfers: a payment code from a `/join` checkout pays its pass, or is refused and
//! told (no checkout has the code; it expired; the amount is not the price).

use super::{Ctx, Decision, Outcome, PaidRole, Scope, paid_roles, rows};
use crate::alerts::{Alert, AlertKind, Target};
use crate::db::DbError;
use crate::domain::{Billing, ProviderEvent, StatusChange, SubscriptionStatus, UnixMillis};

impl Ctx<'_> {
    /// A bank transfer carrying a payment code from a `/join` checkout.
    pub(super) fn apply_transfer(
        &self,
        event: &ProviderEvent,
        code: &str,
    ) -> Result<Decision, DbError> {
        let Some(sub) = rows::by_payment_code(self.tx, code)? else {
            return Ok(self.unmatched(event, code, "no checkout has payment code {code}"));
        };
        // A guild's transfers pay only the checkouts made with its own credentials; the
        // operator's may pay any (the codes are Docobo's, unique across guilds).
        if matches!(self.scope, Scope::Guild(_)) && sub.scope != self.scope {
            return Ok(self.unmatched(event, code, "payment code belongs to another guild"));
        }
        let Some(role) = paid_roles::by_id(self.tx, sub.paid_role_id)? else {
            return Ok(Decision::new(
                Outcome::Rejected,
                "the paid role no longer exists",
            ));
        };
        if let Some(refused) = self.refuse_transfer(event, code, &sub, &role)? {
            return Ok(refused);
        }
        let transition = match role.billing {
            Billing::Days(_) => sub.state.extend_pass(
                event.occurred_at,
                role.billing.pass_length_ms().unwrap_or(30 * DAY),
            ),
            Billing::Monthly => sub.state.extend_pass(event.occurred_at, 30 * DAY),
            Billing::Yearly => sub.state.extend_pass(event.occurred_at, 365 * DAY),
            Billing::OneTime => sub.state.apply(StatusChange {
                status: SubscriptionStatus::Active,
                period_end: None,
                occurred_at: event.occurred_at,
            }),
        };
        let decision = self.store_transition(&sub, transition)?;
        // An owner's test purchase (or a provider's test mode) paid it: a test subscription,
        // whose role is granted all the same.
        if event.test && decision.changed {
            rows::set_test(self.tx, sub.id)?;
        }
        Ok(decision)
    }

    /// A transfer whose payment code matches no checkout of this scope (`why`, with `{code}`
    /// for the code): recorded as rejected, and the staff are told (the member is unknown).
    fn unmatched(&self, event: &ProviderEvent, code: &str, why: &str) -> Decision {
        let why = why.replace("{code}", code);
        let received = event.amount.as_ref().map_or_else(
            || "no amount".to_owned(),
            |m| format!("{} {}", m.minor_units, m.currency),
        );
        tracing::warn!(provider = %self.provider, event_id = %event.event_id, payment_code = code, reason = %why, "bank transfer matched no checkout");
        let target = self.scope.guild().map_or(Target::Operator, Target::Guild);
        let mut decision = Decision::new(Outcome::Rejected, why);
        decision.alert = Some(
            Alert::new(
                AlertKind::TransferUnmatched,
                target,
                format!(
                    "A bank transfer of {received} ({} transaction {}) carries the payment code \
                     {code}, which no checkout of this server has. Nothing was granted. Likely \
                     cause: the member mistyped the code, or paid with an old code or another \
                     shop's.",
                    self.provider, event.event_id
                ),
                format!(
                    "find transaction {} in {}, ask its sender (the bank shows their name) to run \
                     /join and pay with the code it shows, and refund this transfer.",
                    event.event_id, self.provider
                ),
            )
            .about(code.to_owned()),
        );
        decision
    }

    /// Why a transfer carrying a known code does not pay: a pending checkout whose code
    /// was no longer valid when the bank booked the transfer, or an amount other than the
    /// price (over- and under-payments alike: the amount must be exactly the price, in its
    /// currency). Recorded as rejected with the reason and logged for the owner, who refunds
    /// it or settles it with the member; nothing changes.
    fn refuse_transfer(
        &self,
        event: &ProviderEvent,
        code: &str,
        sub: &rows::Subscription,
        role: &PaidRole,
    ) -> Result<Option<Decision>, DbError> {
        let paid = event.amount.as_ref();
        let received = paid.map_or_else(
            || "no amount".to_owned(),
            |m| format!("{} {}", m.minor_units, m.currency),
        );
        let mut why = None;
        let mut member_text = None;
        let mut kind = AlertKind::TransferWrongAmount;
        if sub.state.status == SubscriptionStatus::Pending
            && let Some(until) = rows::payment_code_valid_until(self.tx, sub.id)?
            && event.occurred_at > until
        {
            why = Some(format!(
                "payment code {code} expired at {} (unix ms {until}); the transfer of {received} \
                 was booked at {}. Nothing was granted: refund it, or have the member run /join \
                 again and settle it with them",
                iso(until),
                iso(event.occurred_at)
            ));
            kind = AlertKind::TransferExpired;
            member_text = Some(format!(
                "Your bank transfer of {received} with the code {code} arrived after the code \
                 expired ({}), so it did not activate your role. The server's staff have been \
                 told and will refund or settle it with you; run /join for a fresh code before \
                 paying again.",
                iso(until)
            ));
        }
        if why.is_none() {
            let price = role.price;
            why = match paid {
                Some(m) if m.currency.eq_ignore_ascii_case(price.currency().as_str()) => {
                    match m.minor_units.cmp(&price.minor_units()) {
                        std::cmp::Ordering::Equal => None,
                        std::cmp::Ordering::Less => Some(format!(
                            "underpayment: received {received}, the price is exactly {price}. \
                             Nothing was granted: refund it or settle the difference with the member"
                        )),
                        std::cmp::Ordering::Greater => Some(format!(
                            "overpayment: received {received}, the price is exactly {price}. \
                             Nothing was granted: refund it, or settle it with the member"
                        )),
                    }
                }
                _ => Some(format!(
                    "wrong currency or no amount: received {received}, the price is exactly {price}"
                )),
            };
        }
        let Some(why) = why else {
            return Ok(None);
        };
        let member_text = member_text.unwrap_or_else(|| {
            format!(
                "Your bank transfer of {received} with the code {code} does not match the price \
                 ({}), so it did not activate your role. The server's staff have been told and \
                 will refund or settle the difference with you; pay exactly the amount /join \
                 shows.",
                role.price
            )
        });
        tracing::warn!(
            provider = %self.provider,
            event_id = %event.event_id,
            guild = sub.guild_id.get(),
            user = sub.user_id.get(),
            payment_code = code,
            reason = %why,
            "bank transfer not applied"
        );
        let mut decision = Decision::new(Outcome::Rejected, why.clone());
        decision.guild = Some(sub.guild_id);
        decision.subscription = Some(sub.id);
        let who = format!("<@{}>", sub.user_id.get());
        decision.alert = Some(
            Alert::new(
                kind,
                Target::Guild(sub.guild_id),
                format!("A bank transfer from {who} was not applied: {why}"),
                format!(
                    "refund the transfer from your bank, or settle it with {who} (they were told \
                     by DM what happened and what to do)."
                ),
            )
            .about(who)
            .tell_member(sub.user_id, member_text),
        );
        Ok(Some(decision))
    }
}

/// `2026-01-01T07:00:00Z`, for the owner (the unix ms when out of range).
fn iso(ms: UnixMillis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

const DAY: i64 = 86_400_000;
