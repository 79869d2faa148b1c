//! The dev network in the conformance suite: embedded, and served over HTTP to `dev+http://`
//! wallets. (Its own tests, every typed error included, are in `src/dev/tests.rs`.)

use std::path::Path;
use std::sync::Arc;

use bitcoin::secp256k1::SecretKey;
use lightning_invoice::Currency;
use plannt_lightning::Network;
use plannt_lightning::dev::{DevNetwork, NODE_KEY_FILE, RECEIVER_ACCOUNT};

use crate::conformance::{Payee, Subject};
use crate::support::amountless_invoice;

/// Test sats each dev account starts with.
const STARTING_SATS: u64 = 1_000_000;

/// The node key a dev network keeps under its data directory: an invoice it signs reaches the
/// network's checks of the invoice itself.
fn node_key(data_dir: &Path) -> SecretKey {
    let text = std::fs::read_to_string(data_dir.join(NODE_KEY_FILE)).expect("the node key");
    let bytes = hex::decode(text.trim()).expect("the node key is hex");
    SecretKey::from_slice(&bytes).expect("a valid key")
}

/// The embedded dev network: the payer pays what the receiver issues.
pub async fn subject() -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let network = DevNetwork::open(dir.path(), STARTING_SATS).unwrap();
    Some(Subject {
        name: "dev",
        network: Network::Regtest,
        receiver: Arc::new(network.wallet(RECEIVER_ACCOUNT)),
        payer: Arc::new(network.wallet("payer")),
        stranger: Arc::new(network.wallet("stranger")),
        payee: Payee::Receiver,
        amountless: amountless_invoice(Currency::Regtest, Some(node_key(dir.path()))),
        issues_amountless: true,
        pays_amountless: true,
        balance_moves: true,
        settle: None,
        _alive: vec![Box::new(dir)],
    })
}

/// A dev network served over HTTP, as a gateway serves it, and `dev+http://` wallets of it.
#[cfg(feature = "dev-http")]
pub async fn http_subject() -> Option<Subject> {
    use plannt_lightning::Context;

    use crate::support::open_uri;

    let dir = tempfile::tempdir().unwrap();
    let network = DevNetwork::open(dir.path(), STARTING_SATS).unwrap();
    let server = plannt_testkit::fakes::serve(network.router()).await;
    let base = format!("dev+http://127.0.0.1:{}", server.url.port().unwrap());
    let context = Context::new(dir.path().to_path_buf());
    let account = |name: &str| open_uri(&format!("{base}?account={name}"), &context);
    Some(Subject {
        name: "dev",
        network: Network::Regtest,
        receiver: account(RECEIVER_ACCOUNT),
        payer: account("payer"),
        stranger: account("stranger"),
        payee: Payee::Receiver,
        amountless: amountless_invoice(Currency::Regtest, Some(node_key(dir.path()))),
        issues_amountless: true,
        pays_amountless: false,
        balance_moves: true,
        settle: None,
        _alive: vec![Box::new(server), Box::new(dir)],
    })
}

/// A `dev+http://` wallet at `127.0.0.1:port` (where nothing answers, or the answer breaks
/// off), and what stands in for a secret it has none of: its account, which no message shows.
#[cfg(feature = "dev-http")]
pub fn http_unreachable(port: u16) -> (std::sync::Arc<dyn plannt_lightning::Wallet>, String) {
    let account = "conformance-account";
    let uri = format!("dev+http://127.0.0.1:{port}?account={account}");
    let context = plannt_lightning::Context::new(std::env::temp_dir());
    (
        crate::support::open_uri(&uri, &context),
        account.to_string(),
    )
}
