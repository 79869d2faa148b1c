//! The operator's limits as a tool call sees them: the cap an agent may lower but never raise,
//! the threshold above which a human confirms, and the confirmations waiting for an answer.
//!
//! ```text
//! fetch -> dry run: the price, every check passed, nothing paid
//!       -> price <= confirm_above_sats: pay, with max_sats = the price
//!       -> price >  confirm_above_sats: ask a human (elicitation), then pay with
//!          max_sats = the confirmed price, so a price that rose in between is refused
//! ```
//!
//! On protocol 2026-07-28 the question travels as an `InputRequiredResult`, and the client
//! calls `fetch` again with the answer and the opaque `requestState` we gave it. That state is a
//! random handle into [`Pending`]: single-use, short-lived, and bound to the exact arguments of
//! the call it was issued for, so it can confirm nothing else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use plannt_client::Policy;
use sha2::{Digest, Sha256};

/// How long a human's answer may take before the question lapses.
pub const CONFIRMATION_TTL: Duration = Duration::from_secs(15 * 60);

/// At most this many questions wait at once; the oldest lapse first.
const MAX_PENDING: usize = 1_000;

/// The per-request cap for one call: the operator's, lowered by the agent's `max_sats`.
pub fn cap_sats(policy: &Policy, max_sats: Option<u64>) -> u64 {
    policy.capped(max_sats).budget.per_request_sats
}

/// Whether paying `price_sats` needs a human: strictly above the threshold; never without one.
pub fn needs_confirmation(price_sats: u64, confirm_above_sats: Option<u64>) -> bool {
    confirm_above_sats.is_some_and(|threshold| price_sats > threshold)
}

/// The `max_sats` to pay with once a dry run showed `price_sats`: the price itself (or the
/// agent's lower limit), so a server that raises its price between the two is refused.
pub fn pay_cap(price_sats: u64, max_sats: Option<u64>) -> u64 {
    max_sats.map_or(price_sats, |max| max.min(price_sats))
}

/// What the human's answer to the yes/no form says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Accepted with `confirm: true`.
    Yes,
    /// Accepted with `confirm: false`, or declined.
    No,
    /// Dismissed without a choice.
    Cancelled,
}

/// Reads an elicitation result (`{"action": "accept", "content": {"confirm": true}}`).
/// Anything but an explicit `true` is not a yes.
pub fn answer(result: &serde_json::Value) -> Answer {
    match result["action"].as_str() {
        Some("accept") if result["content"]["confirm"] == serde_json::Value::Bool(true) => {
            Answer::Yes
        }
        Some("cancel") => Answer::Cancelled,
        _ => Answer::No,
    }
}

/// A digest of everything a call would send, so a confirmation binds to exactly that call.
pub fn fingerprint(parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

/// Why a returned confirmation cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stale {
    /// Unknown, already used, or lapsed.
    Unknown,
    /// Issued for a call with other arguments.
    OtherCall,
}

struct Entry {
    fingerprint: [u8; 32],
    price_sats: u64,
    issued: Instant,
}

/// Questions put to a human and not yet answered, by handle.
#[derive(Default)]
pub struct Pending {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Pending {
    /// Records a question about paying `price_sats` for the call with `fingerprint`; returns
    /// the handle to give the client as `requestState`.
    pub fn issue(&self, fingerprint: [u8; 32], price_sats: u64, now: Instant) -> String {
        let mut handle = [0u8; 16];
        getrandom::fill(&mut handle).expect("the operating system's random source works");
        let handle = hex::encode(handle);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| now.saturating_duration_since(e.issued) < CONFIRMATION_TTL);
        while entries.len() >= MAX_PENDING {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.issued)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
        entries.insert(
            handle.clone(),
            Entry {
                fingerprint,
                price_sats,
                issued: now,
            },
        );
        handle
    }

    /// Takes the question `handle` names (once): the price it asked about, if it was asked
    /// about this very call and has not lapsed.
    pub fn take(&self, handle: &str, fingerprint: [u8; 32], now: Instant) -> Result<u64, Stale> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.remove(handle).ok_or(Stale::Unknown)?;
        if now.saturating_duration_since(entry.issued) >= CONFIRMATION_TTL {
            return Err(Stale::Unknown);
        }
        if entry.fingerprint != fingerprint {
            return Err(Stale::OtherCall);
        }
        Ok(entry.price_sats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plannt_client::Budget;
    use serde_json::json;

    fn policy(per_request_sats: u64) -> Policy {
        Policy {
            budget: Budget {
                per_request_sats,
                ..Budget::default()
            },
            ..Policy::default()
        }
    }

    #[test]
    fn max_sats_only_lowers_the_cap() {
        let p = policy(500);
        assert_eq!(cap_sats(&p, None), 500);
        assert_eq!(cap_sats(&p, Some(21)), 21);
        assert_eq!(cap_sats(&p, Some(0)), 0);
        assert_eq!(cap_sats(&p, Some(501)), 500);
        assert_eq!(cap_sats(&p, Some(u64::MAX)), 500);
    }

    #[test]
    fn the_payment_after_a_dry_run_is_capped_at_the_price_seen() {
        assert_eq!(pay_cap(21, None), 21);
        assert_eq!(pay_cap(21, Some(100)), 21);
        assert_eq!(pay_cap(21, Some(10)), 10);
    }

    #[test]
    fn a_human_confirms_only_strictly_above_the_threshold() {
        assert!(!needs_confirmation(100, Some(100)));
        assert!(needs_confirmation(101, Some(100)));
        assert!(!needs_confirmation(0, Some(0)));
        assert!(needs_confirmation(1, Some(0)));
        assert!(!needs_confirmation(u64::MAX, None));
    }

    #[test]
    fn only_an_explicit_yes_confirms() {
        let yes = json!({"action": "accept", "content": {"confirm": true}});
        assert_eq!(answer(&yes), Answer::Yes);
        for no in [
            json!({"action": "accept", "content": {"confirm": false}}),
            json!({"action": "accept", "content": {"confirm": "true"}}),
            json!({"action": "accept"}),
            json!({"action": "decline"}),
            json!({"content": {"confirm": true}}),
            json!(null),
        ] {
            assert_eq!(answer(&no), Answer::No, "{no}");
        }
        assert_eq!(answer(&json!({"action": "cancel"})), Answer::Cancelled);
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
    }

    #[test]
    fn a_confirmation_is_used_once_for_its_own_call() {
        let pending = Pending::default();
        let now = Instant::now();
        let call = fingerprint(&["GET", "http://a.example/x"]);
        let other = fingerprint(&["GET", "http://a.example/y"]);

        let handle = pending.issue(call, 100, now);
        assert_eq!(handle.len(), 32);
        assert_eq!(pending.take(&handle, call, now), Ok(100));
        assert_eq!(pending.take(&handle, call, now), Err(Stale::Unknown));

        let handle = pending.issue(call, 100, now);
        assert_eq!(pending.take(&handle, other, now), Err(Stale::OtherCall));
        assert_eq!(pending.take(&handle, call, now), Err(Stale::Unknown));

        assert_eq!(pending.take("forged", call, now), Err(Stale::Unknown));
        assert_ne!(pending.issue(call, 1, now), pending.issue(call, 1, now));
    }

    #[test]
    fn a_confirmation_lapses() {
        let pending = Pending::default();
        let issued = Instant::now();
        let call = fingerprint(&["GET", "http://a.example/x"]);
        let handle = pending.issue(call, 100, issued);
        let late = issued + CONFIRMATION_TTL;
        assert_eq!(pending.take(&handle, call, late), Err(Stale::Unknown));
    }

    #[test]
    fn the_waiting_room_is_bounded() {
        let pending = Pending::default();
        let now = Instant::now();
        let call = fingerprint(&["x"]);
        let first = pending.issue(call, 1, now);
        for _ in 0..MAX_PENDING {
            pending.issue(call, 1, now + Duration::from_millis(1));
        }
        assert_eq!(pending.entries.lock().unwrap().len(), MAX_PENDING);
        assert_eq!(pending.take(&first, call, now), Err(Stale::Unknown));
    }
}
