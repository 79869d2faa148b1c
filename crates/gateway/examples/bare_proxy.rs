//! A bare axum reverse proxy: the limit the gateway's paid proxy route is measured against in
//! `bench/side-by-side.sh`.
//!
//! Every request is forwarded to `UPSTREAM` (the request path and query appended to it) with
//! the same HTTP client the gateway's proxy uses (reqwest, a pool of up to 64 idle connections),
//! and the answer is streamed back. No paywall, no route table, no `X-Forwarded-*`, no timeouts:
//! only what any reverse proxy must do (drop `Host` and the hop-by-hop headers it would otherwise
//! pass on, map an unreachable upstream to 502).
//!
//! ```text
//! cargo run --release -p plannt-gateway --example demo_upstream     # prints its address
//! UPSTREAM=http://127.0.0.1:9000 PORT=9001 \
//!     cargo run --release -p plannt-gateway --example bare_proxy
//! curl -i http://127.0.0.1:9001/v1/demo
//! ```
//!
//! `PORT` defaults to 0 (a free port). It prints `listening on http://ADDR` to standard error once
//! it accepts connections.

use std::net::Ipv4Addr;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    base: String,
}

fn drop_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::HOST,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let url = match parts.uri.path_and_query() {
        Some(pq) => format!("{}{}", upstream.base, pq.as_str()),
        None => upstream.base.clone(),
    };
    let mut headers = parts.headers;
    drop_hop_by_hop(&mut headers);
    let sent = upstream
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(_) => return (StatusCode::BAD_GATEWAY, "upstream unreachable\n").into_response(),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    drop_hop_by_hop(&mut headers);
    let mut response = Response::new(Body::from_stream(
        answer.bytes_stream().map_err(std::io::Error::other),
    ));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("UPSTREAM")
        .map_err(|_| "set UPSTREAM to the upstream's base URL, e.g. http://127.0.0.1:9000")?;
    // The same client setup as the gateway's proxy (reqwest over rustls, no redirects followed).
    plannt_gateway::lightning::install_tls_provider();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(plannt_gateway::lightning::tls_config())
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()?;
    let upstream = Upstream {
        client,
        base: base.trim_end_matches('/').to_string(),
    };
    let app = Router::new().fallback(forward).with_state(upstream);
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
