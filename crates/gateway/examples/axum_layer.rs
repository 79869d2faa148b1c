//! The L402 paywall as a tower layer in front of an axum app of your own.
//!
//! One route table prices the requests: `GET /hello` costs 10 sats, everything else is free. The
//! receiver is the embedded dev Lightning network (simulated: no real money moves) and spent
//! tokens are kept in memory.
//!
//! Run it:
//!
//! ```text
//! cargo run -p plannt-gateway --example axum_layer
//! ```
//!
//! Then, in another terminal:
//!
//! ```text
//! curl -i http://127.0.0.1:3402/                 # free: 200
//! curl -i http://127.0.0.1:3402/hello            # 402 with WWW-Authenticate: L402 macaroon="…", invoice="…"
//! plannt wallet --wallet dev+http://127.0.0.1:3402 pay lnbcrt100n1…   # prints the preimage
//! curl -i -H 'Authorization: L402 <macaroon>:<preimage>' http://127.0.0.1:3402/hello
//!                                                # 200 "hello, paying customer", x-l402: spent
//! ```
//!
//! The same credential a second time gets a 402 whose reason is `spent`, with a new invoice.
//! `PORT=8080` changes the port.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::routing::get;
use plannt_gateway::l402::{KeyRing, RootKey};
use plannt_gateway::lightning::dev::{DevNetwork, RECEIVER_ACCOUNT};
use plannt_gateway::store::MemoryStore;
use plannt_gateway::{Paywall, PaywallOptions, Route, RouteTable, Target};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The prices. Behind the layer your own router answers: the target is the service itself.
    let routes = RouteTable::new(vec![Route::paid(
        "hello",
        Method::GET,
        "/hello",
        10,
        Target::Service,
    )])?;

    // Tokens are minted and verified with this key; keep it (e.g. in a file) to keep tokens
    // valid across restarts.
    let keys = KeyRing::single(RootKey::generate()?);
    // Invoices come from the dev network's receiving account. A real backend is
    // `plannt_gateway::lightning::open(&uri, &context)` with an `lnbits+http://…` URI.
    let network = DevNetwork::ephemeral(1_000_000);
    let receiver = Arc::new(network.wallet(RECEIVER_ACCOUNT));
    let paywall = Arc::new(Paywall::new(
        keys,
        receiver,
        Arc::new(MemoryStore::new()),
        routes,
        PaywallOptions::default(),
    ));
    // Purges spent tokens once they expire; without it the spent set only grows.
    paywall.spawn_purger();

    let app = Router::new()
        .route("/", get(|| async { "free for everyone\n" }))
        .route("/hello", get(|| async { "hello, paying customer\n" }))
        .layer(paywall.layer())
        // Added after the layer, so it is not behind it: where a `dev+http://` wallet pays.
        .merge(network.router());

    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3402);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!(
        "{}\nlistening on http://{}: try GET /hello",
        plannt_gateway::lightning::dev::WARNING,
        listener.local_addr()?
    );
    // The paywall rate-limits challenges per client address: give it the peer's address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
