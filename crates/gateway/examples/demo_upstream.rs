//! A tiny upstream for the side-by-side benchmark (`bench/side-by-side.sh`): every `GET` answers
//! `{"result":"verified"}`, the body of the gateway's built-in `demo` handler, whatever the path.
//!
//! It stands behind both `plannt serve` (a route with `upstream = "http://127.0.0.1:PORT"`) and
//! the bare proxy (`examples/bare_proxy.rs`), so the two forward to the same server. It does as
//! little as an axum server can, so that it is not what limits either of them.
//!
//! ```text
//! PORT=9000 cargo run --release -p plannt-gateway --example demo_upstream
//! curl -i http://127.0.0.1:9000/v1/demo
//! ```
//!
//! `PORT` defaults to 0 (a free port). It prints `listening on http://ADDR` to standard error once
//! it accepts connections.

use std::net::Ipv4Addr;

use axum::Router;
use axum::http::header;
use axum::routing::get;

const BODY: &str = r#"{"result":"verified"}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new().fallback(get(|| async {
        ([(header::CONTENT_TYPE, "application/json")], BODY)
    }));
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
