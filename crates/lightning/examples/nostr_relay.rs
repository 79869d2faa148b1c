//! A Nostr relay for tests: rust-nostr's `nostr-relay-builder`, in memory, on loopback.
//!
//! `cargo run -p plannt-lightning --example nostr_relay [PORT]` prints the relay's URL
//! (`ws://127.0.0.1:PORT`) as its first line on standard output, then serves until it is
//! interrupted or killed. The NWC interop test (`interop/node/nwc.test.mjs`)
//! runs it between `@getalby/sdk`'s wallet service and Plannt. Not part of the product.

use nostr_relay_builder::prelude::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 0,
    };
    let mut builder = RelayBuilder::default()
        .addr([127, 0, 0, 1].into())
        .rate_limit(RateLimit {
            max_reqs: 10_000,
            notes_per_minute: 100_000,
        });
    if port != 0 {
        builder = builder.port(port);
    }
    let relay = LocalRelay::new(builder);
    relay.run().await?;
    println!("{}", relay.url().await);
    // Serve until interrupted (SIGTERM, the test's way to stop it, ends the process outright).
    tokio::signal::ctrl_c().await?;
    relay.shutdown();
    Ok(())
}
