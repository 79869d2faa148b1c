//! The TLS every REST backend uses (all but LND's pinned one): a certificate the platform's roots
//! do not vouch for is refused, though the roots are only read at the first handshake.

use axum::Router;
use axum::routing::get;
use plannt_lightning::{LightningError, LnBits, Network, Receiver, Secret};
use plannt_testkit::fakes as fake;

fn wallet_api() -> Router {
    Router::new().route(
        "/api/v1/wallet",
        get(|| async { axum::Json(serde_json::json!({"name": "w", "balance": 0})) }),
    )
}

#[tokio::test]
async fn a_self_signed_server_is_refused_and_plain_http_still_works() {
    let plain = fake::serve(wallet_api()).await;
    let wallet = LnBits::new(plain.url.clone(), Secret::new("key"), Network::Regtest);
    wallet.health().await.expect("plain HTTP needs no roots");

    let tls = fake::serve_tls(wallet_api()).await;
    let mut url = tls.url.clone();
    url.set_scheme("https").unwrap();
    let wallet = LnBits::new(url, Secret::new("key"), Network::Regtest);
    let refused = wallet.health().await;
    assert!(
        matches!(&refused, Err(LightningError::Unreachable(why)) if why.contains("TLS handshake failed")),
        "a certificate no root vouches for must be refused, and say so: {refused:?}"
    );
}
