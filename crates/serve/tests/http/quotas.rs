//! Free tiers and per-route rate limits: N free requests per client address per window, then
//! the 402; a new window is free again; clients are counted apart (IPv6 by /64); a rate limit
//! answers 429 paid or not; replicas on one Redis share the count; the catalog and the OpenAPI
//! document announce both. Windows are moved with the paywall's clock, never waited for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use plannt_gateway::l402::{KeyRing, RootKey};
use plannt_gateway::lightning::dev::DevNetwork;
use plannt_gateway::store::{MemoryStore, RedisStore, SpentStore};
use plannt_gateway::{Clock, Paywall, PaywallOptions, Quota, Route, RouteTable, Target};
use reqwest::Method;
use tower::{Layer, ServiceExt};

use crate::support::{RedisServer, config, start};

/// The start of a window of an hour (a multiple of 3600).
const T0: u64 = 1_800_000_000;

fn quota(requests: u32, secs: u64) -> Quota {
    Quota {
        requests,
        per: Duration::from_secs(secs),
    }
}

/// A paywall over one paid route `/v1/demo` (10 sats) with the given quotas, its clock at the
/// test's hand, on `store`.
struct Replica {
    paywall: Arc<Paywall>,
    calls: Arc<AtomicU32>,
    network: DevNetwork,
}

fn replica(
    store: Arc<dyn SpentStore>,
    network: &DevNetwork,
    now: &Arc<AtomicU64>,
    free: Option<Quota>,
    rate_limit: Option<Quota>,
) -> Replica {
    let mut route = Route::paid(
        "demo",
        axum::http::Method::GET,
        "/v1/demo",
        10,
        Target::Service,
    );
    route.free = free;
    route.rate_limit = rate_limit;
    let read = now.clone();
    let options = PaywallOptions {
        challenges_per_second: 0.0,
        clock: Clock::from_fn(move || read.load(Ordering::SeqCst)),
        ..PaywallOptions::default()
    };
    Replica {
        paywall: Arc::new(Paywall::new(
            KeyRing::single(RootKey::new([5; 32])),
            Arc::new(network.wallet("gateway")),
            store,
            RouteTable::new(vec![route]).unwrap(),
            options,
        )),
        calls: Arc::new(AtomicU32::new(0)),
        network: network.clone(),
    }
}

impl Replica {
    /// `GET /v1/demo` from `client`, with an `Authorization` value if given.
    async fn get(&self, client: &str, authorization: Option<&str>) -> Response<Body> {
        let counted = self.calls.clone();
        let inner = tower::service_fn(move |_: Request<Body>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Body::from("served"))) }
        });
        let mut request = Request::get("/v1/demo");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let addr: SocketAddr = format!("{client}:40000")
            .parse()
            .or_else(|_| format!("[{client}]:40000").parse())
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        self.paywall
            .layer()
            .layer(inner)
            .oneshot(request)
            .await
            .unwrap()
    }

    /// A paid credential for `/v1/demo`, from a 402 asked by `client`.
    async fn credential(&self, client: &str) -> String {
        let challenge = self.get(client, None).await;
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
        let body = axum::body::to_bytes(challenge.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let payment = self
            .network
            .pay("tester", body["invoice"].as_str().unwrap())
            .unwrap();
        format!(
            "L402 {}:{}",
            body["macaroon"].as_str().unwrap(),
            payment.preimage.to_hex()
        )
    }
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// N free requests, the N+1-th a 402 (which says none is left), free again in the next window.
async fn free_then_paid_then_free_again(replicas: &[Replica], now: &AtomicU64) {
    let calls = || {
        replicas
            .iter()
            .map(|r| r.calls.load(Ordering::SeqCst))
            .sum::<u32>()
    };
    for (i, left) in [2, 1, 0].into_iter().enumerate() {
        // Round robin over the replicas: with a shared store they count together.
        let answer = replicas[i % replicas.len()].get("10.0.0.1", None).await;
        assert_eq!(answer.status(), StatusCode::OK, "free request {}", i + 1);
        assert_eq!(header(&answer, "x-l402"), Some("free"));
        assert_eq!(
            header(&answer, "ratelimit-policy"),
            Some("\"free\";q=3;w=3600")
        );
        let state = format!("\"free\";r={left};t=3590");
        assert_eq!(header(&answer, "ratelimit"), Some(state.as_str()));
    }
    assert_eq!(calls(), 3);
    let fourth = replicas[replicas.len() - 1].get("10.0.0.1", None).await;
    assert_eq!(
        fourth.status(),
        StatusCode::PAYMENT_REQUIRED,
        "the 4th pays"
    );
    assert_eq!(header(&fourth, "ratelimit"), Some("\"free\";r=0;t=3590"));
    assert!(header(&fourth, "www-authenticate").is_some());
    assert_eq!(calls(), 3, "the 402 reached no upstream");

    // A paid request is served as ever.
    let credential = replicas[0].credential("10.0.0.1").await;
    let paid = replicas[0].get("10.0.0.1", Some(&credential)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(header(&paid, "x-l402"), Some("spent"));

    now.store(T0 + 3600, Ordering::SeqCst);
    let next = replicas[0].get("10.0.0.1", None).await;
    assert_eq!(next.status(), StatusCode::OK, "a new window is free again");
    assert_eq!(header(&next, "x-l402"), Some("free"));
    assert_eq!(header(&next, "ratelimit"), Some("\"free\";r=2;t=3600"));
}

#[tokio::test]
async fn the_n_plus_first_free_request_in_a_window_gets_the_402_and_a_new_window_is_free_again() {
    let network = DevNetwork::ephemeral(1_000_000);
    let now = Arc::new(AtomicU64::new(T0 + 10));
    let one = replica(
        Arc::new(MemoryStore::new()),
        &network,
        &now,
        Some(quota(3, 3600)),
        None,
    );
    free_then_paid_then_free_again(std::slice::from_ref(&one), &now).await;
    // /metrics counts the four free answers apart from the paid one.
    let metrics = one.paywall.metrics().render();
    for line in [
        "plannt_free_answers_total{route=\"demo\"} 4",
        "plannt_tokens_accepted_total{route=\"demo\"} 1",
        "plannt_sats_earned_total{route=\"demo\"} 10",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "/metrics lacks {line:?}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn two_clients_are_counted_apart_and_an_ipv6_client_by_its_64() {
    let network = DevNetwork::ephemeral(1_000_000);
    let now = Arc::new(AtomicU64::new(T0));
    let gateway = replica(
        Arc::new(MemoryStore::new()),
        &network,
        &now,
        Some(quota(1, 3600)),
        None,
    );
    for client in ["10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8:0:1::1"] {
        let answer = gateway.get(client, None).await;
        assert_eq!(header(&answer, "x-l402"), Some("free"), "{client}");
    }
    for client in ["10.0.0.1", "10.0.0.2", "2001:db8::2"] {
        let answer = gateway.get(client, None).await;
        assert_eq!(answer.status(), StatusCode::PAYMENT_REQUIRED, "{client}");
    }
}

#[tokio::test]
async fn the_rate_limit_answers_429_paid_or_not_and_spends_nothing() {
    let network = DevNetwork::ephemeral(1_000_000);
    let now = Arc::new(AtomicU64::new(T0));
    let gateway = replica(
        Arc::new(MemoryStore::new()),
        &network,
        &now,
        None,
        Some(quota(3, 10)),
    );
    // Two challenges and one paid request use the window up.
    let credential = gateway.credential("10.0.0.1").await;
    let second = gateway.credential("10.0.0.1").await;
    let paid = gateway.get("10.0.0.1", Some(&credential)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    let unpaid = gateway.get("10.0.0.1", None).await;
    assert_eq!(unpaid.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&unpaid, "retry-after"), Some("10"));
    assert_eq!(
        header(&unpaid, "ratelimit-policy"),
        Some("\"limit\";q=3;w=10")
    );
    assert_eq!(header(&unpaid, "ratelimit"), Some("\"limit\";r=0;t=10"));
    let refused = gateway.get("10.0.0.1", Some(&second)).await;
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "paid or not"
    );
    assert_eq!(gateway.calls.load(Ordering::SeqCst), 1);
    // Another address has its own window.
    let other = gateway.get("10.0.0.2", None).await;
    assert_eq!(other.status(), StatusCode::PAYMENT_REQUIRED);
    // The refused credential was not spent: it buys its answer in the next window.
    now.store(T0 + 10, Ordering::SeqCst);
    let later = gateway.get("10.0.0.1", Some(&second)).await;
    assert_eq!(later.status(), StatusCode::OK);
    assert_eq!(header(&later, "x-l402"), Some("spent"));
}

#[tokio::test]
async fn replicas_on_one_redis_share_the_free_count_and_the_rate_limit() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let network = DevNetwork::ephemeral(1_000_000);
    let now = Arc::new(AtomicU64::new(T0 + 10));
    let store = || async {
        Arc::new(RedisStore::connect(&redis.url()).await.unwrap()) as Arc<dyn SpentStore>
    };
    let replicas = [
        replica(store().await, &network, &now, Some(quota(3, 3600)), None),
        replica(store().await, &network, &now, Some(quota(3, 3600)), None),
    ];
    free_then_paid_then_free_again(&replicas, &now).await;

    let limited = [
        replica(store().await, &network, &now, None, Some(quota(2, 60))),
        replica(store().await, &network, &now, None, Some(quota(2, 60))),
    ];
    now.store(T0 + 7200, Ordering::SeqCst);
    assert_eq!(
        limited[0].get("10.0.0.9", None).await.status(),
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(
        limited[1].get("10.0.0.9", None).await.status(),
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(
        limited[0].get("10.0.0.9", None).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the third request to either replica"
    );
    // The counters live in Redis beside the spent keys, not under their prefix, and expire.
    let mut conn = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("plannt:quota:*")
        .query(&mut conn)
        .unwrap();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("plannt:quota:free:demo:10.0.0.1:")),
        "{keys:?}"
    );
    let ttl: i64 = redis::cmd("TTL").arg(&keys[0]).query(&mut conn).unwrap();
    assert!(ttl > 0, "{ttl}");
    assert_eq!(
        replicas[0].paywall.store().len().await.unwrap(),
        1,
        "the one paid token"
    );
}

#[tokio::test]
async fn the_catalog_and_the_openapi_document_announce_free_tiers_and_limits() {
    let mut config = config("memory");
    let text = "[[routes]]\npath = \"/v1/demo\"\nmethod = \"GET\"\nprice_sats = 21\nhandler = \"demo\"\nfree = { requests = 1000, per = \"1d\" }\nrate_limit = { requests = 5000, per = \"1h\" }\n";
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let loaded = plannt_serve::Config::load(Some(file.path()), |_| None).unwrap();
    config.routes = loaded.routes;
    let gateway = start(config).await;

    let catalog = gateway.get("/.well-known/l402.json", None).await;
    let service = &catalog.json["services"][0];
    assert_eq!(service["name"], "v1-demo");
    assert_eq!(
        service["free"],
        serde_json::json!({"requests": 1000, "per_secs": 86400})
    );
    assert_eq!(
        service["rate_limit"],
        serde_json::json!({"requests": 5000, "per_secs": 3600})
    );
    let openapi = gateway.get("/openapi.json", None).await;
    let operation = &openapi.json["paths"]["/v1/demo"]["get"];
    assert_eq!(
        operation["x-free-tier"],
        serde_json::json!({"requests": 1000, "per_secs": 86400})
    );
    assert_eq!(
        operation["x-rate-limit"],
        serde_json::json!({"requests": 5000, "per_secs": 3600})
    );
    assert!(
        operation["responses"]["429"]["description"]
            .as_str()
            .unwrap()
            .contains("5000 per 3600 s")
    );
    // Served: the first request is free, over real HTTP.
    let answer = gateway.send(Method::GET, "/v1/demo", None, None).await;
    assert_eq!(answer.status, reqwest::StatusCode::OK, "{answer:?}");
    assert_eq!(answer.header("x-l402"), Some("free"));
    assert_eq!(
        answer.header("ratelimit-policy"),
        Some("\"free\";q=1000;w=86400")
    );
}
