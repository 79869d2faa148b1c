//! What the client's tests share: the test kit's hostile L402 server, a policy that only the
//! per-request cap binds, and a client with a max time that sends a GET.

use std::sync::Arc;
use std::time::Duration;

use plannt_client::lightning::Payer;
use plannt_client::{
    Client, ClientError, Ledger, Options, Outcome, Policy, Request, Response, Timeouts,
};
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

/// A client on `ledger` under `policy`, with a 10-s connect timeout and `max_time` for a call.
pub fn client(
    wallet: Arc<dyn Payer>,
    ledger: &Ledger,
    policy: Policy,
    max_time: Duration,
) -> Client {
    Client::builder(wallet, ledger.clone(), policy)
        .timeouts(Timeouts {
            connect: Duration::from_secs(10),
            max_time,
        })
        .build()
}

/// A GET of `url`, sent for real (not a dry run).
pub async fn get(client: &Client, url: url::Url) -> Result<Response, ClientError> {
    match client.send(&Request::get(url), &Options::default()).await? {
        Outcome::Response(r) => Ok(r),
        Outcome::DryRun(_) => panic!("not a dry run"),
    }
}
