//! What the client's tests share: the test kit's hostile L402 server, and a policy that only
//! the per-request cap binds.

use plannt_client::Policy;
pub use plannt_testkit::hostile::{Hostile, Scenario};

/// A policy with no budget windows and no routing fee: only the per-request cap binds. The
/// servers of these tests are on loopback, so it allows private networks.
pub fn open_policy(per_request_sats: u64) -> Policy {
    let mut policy = Policy {
        allow_private_networks: true,
        ..Policy::default()
    };
    policy.budget.per_request_sats = per_request_sats;
    policy.budget.hourly_sats = None;
    policy.budget.daily_sats = None;
    policy.budget.total_sats = None;
    policy.max_fee_sats = 0;
    policy
}
