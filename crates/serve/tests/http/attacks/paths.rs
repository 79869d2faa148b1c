//! The price of a request is the price of what the upstream will serve: no spelling of a dear
//! route's path is priced as a cheaper route, and no header turns a cheap GET into a dear POST.
//!
//! The routes are the example of docs/gateway.md: `GET /v1/search` at 10 sats inside the prefix
//! `/v1/` at 2, and `POST /v2/reports` at 500 beside `GET /v2/reports` at 5. Requests go out raw:
//! an HTTP client would tidy the path first.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use serde_json::{Value, json};

use plannt_serve::config::MatchKind;

use crate::support::{TestGateway, config, raw, serve_upstream, start, upstream_route};

/// The example's gateway, in front of an upstream that records the method and path it got
/// and, as many frameworks do, honours `X-HTTP-Method-Override`.
async fn example() -> (TestGateway, Arc<Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let upstream =
        Router::new().fallback(any(move |method: Method, uri: Uri, headers: HeaderMap| {
            let record = record.clone();
            async move {
                let effective = headers
                    .get("x-http-method-override")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(method.as_str())
                    .to_string();
                record
                    .lock()
                    .unwrap()
                    .push((effective, uri.path().to_string()));
                axum::Json(json!({ "served": uri.path() }))
            }
        }));
    let upstream = format!("http://{}", serve_upstream(upstream).await);
    let route = |id: &str, method: Option<&str>, path: &str, prefix: bool, price: u64| {
        let mut route = upstream_route(id, path, price, &upstream);
        route.method = method.map(|m| m.parse().unwrap());
        route.matching = if prefix {
            MatchKind::Prefix
        } else {
            MatchKind::Exact
        };
        route
    };
    let mut config = config("memory");
    config.routes = vec![
        route("search", Some("GET"), "/v1/search", false, 10),
        route("v1", None, "/v1/", true, 2),
        route("reports-create", Some("POST"), "/v2/reports", false, 500),
        route("reports-list", Some("GET"), "/v2/reports", false, 5),
    ];
    (start(config).await, seen)
}

/// Sends `method path` raw with `headers`: `(status, JSON body)`.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    let (status, text) = tokio::task::spawn_blocking(move || raw(addr, request.as_bytes()))
        .await
        .unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_variant_of_a_dear_path_is_priced_as_that_path_or_refused() {
    let (gateway, seen) = example().await;
    for variant in [
        "/v1/search",
        "/v1/searc%68",
        "/v1/%73earch",
        "/v1/%73%65%61%72%63%68",
        "/v1/search/",
        "/v1//search",
        "//v1/search",
        "/v1/SEARCH",
        "/V1/Search",
        "/v1/search.json",
        "/v1/search?q=x",
    ] {
        let (status, body) = send(gateway.addr, "GET", variant, &[]).await;
        assert_eq!(status, 402, "{variant}: {body}");
        assert_eq!(body["amount_sats"], 10, "{variant} is priced as /v1/search");
    }
    for refused in [
        "/v1/search;x",
        "/v1/search;jsessionid=1",
        "/v1/searc%2568",
        "/v1/./search",
        "/v1/x/../search",
        "/v1/x/%2e%2e/search",
        "/v1/x%2f..%2fsearch",
        "/v1/search%00",
    ] {
        let (status, body) = send(gateway.addr, "GET", refused, &[]).await;
        assert_eq!(status, 400, "{refused}: {body}");
    }
    let (status, body) = send(gateway.addr, "GET", "/v1/other", &[]).await;
    assert_eq!((status, body["amount_sats"].clone()), (402, json!(2)));
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing unpaid reached the upstream"
    );
}

#[tokio::test]
async fn a_paid_variant_reaches_the_upstream_as_it_was_priced() {
    let (gateway, seen) = example().await;
    let (status, challenge) = send(gateway.addr, "GET", "/v1/searc%68?q=1", &[]).await;
    assert_eq!((status, challenge["amount_sats"].clone()), (402, json!(10)));
    let preimage = gateway.pay(challenge["invoice"].as_str().unwrap());
    let credential = format!(
        "L402 {}:{}",
        challenge["macaroon"].as_str().unwrap(),
        preimage.to_hex()
    );
    let (status, body) = send(
        gateway.addr,
        "GET",
        "/v1//searc%68?q=1",
        &[("Authorization", &credential)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [("GET".to_string(), "/v1/search".to_string())],
        "the upstream gets the path in the one form that was priced"
    );
}

#[tokio::test]
async fn a_method_override_cannot_turn_a_cheap_get_into_a_dear_post() {
    let (gateway, seen) = example().await;
    let overrides = [
        ("X-HTTP-Method-Override", "POST"),
        ("X-HTTP-Method", "POST"),
        ("X-Method-Override", "POST"),
    ];
    let (status, challenge) = send(gateway.addr, "GET", "/v2/reports", &overrides).await;
    assert_eq!((status, challenge["amount_sats"].clone()), (402, json!(5)));
    let preimage = gateway.pay(challenge["invoice"].as_str().unwrap());
    let credential = format!(
        "L402 {}:{}",
        challenge["macaroon"].as_str().unwrap(),
        preimage.to_hex()
    );
    let mut headers = overrides.to_vec();
    headers.push(("Authorization", &credential));
    let (status, body) = send(gateway.addr, "GET", "/v2/reports", &headers).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [("GET".to_string(), "/v2/reports".to_string())],
        "the upstream served the GET that was paid for, not the 500-sat POST"
    );
}
