//! Single use, and never charging for nothing: one token buys exactly one answer, whatever the
//! store and however many requests race with it; an upstream that fails gives the token back;
//! a shutdown lets a paid request finish and keeps its token spent across a restart.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::any;
use plannt_testkit::cluster::RedisCluster;
use plannt_testkit::sentinel::RedisSentinel;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;

use crate::support::{
    Answer, Challenge, RedisServer, authorization, config, dead_port, payment_hash, serve,
    serve_upstream, start, start_in, upstream_route,
};

/// 100 requests with one token at once: exactly one is served, 99 are told it is spent.
async fn one_token_many_requests(store: &str) {
    let gateway = Arc::new(start(config(store)).await);
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let credential = authorization(&macaroon, &preimage);
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (gateway, credential, barrier) =
                (gateway.clone(), credential.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                gateway.get("/v1/demo", Some(&credential)).await
            })
        })
        .collect();
    let mut served = 0;
    let mut spent = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::OK => {
                assert_eq!(answer.header("x-l402"), Some("spent"));
                served += 1;
            }
            StatusCode::PAYMENT_REQUIRED => {
                Challenge::of(&answer);
                assert_eq!(answer.reason(), Some("spent"), "{answer:?}");
                assert_eq!(answer.header("x-l402-reason"), Some("spent"));
                spent += 1;
            }
            other => panic!("{store}: unexpected {other}: {answer:?}"),
        }
    }
    assert_eq!(
        (served, spent),
        (1, 99),
        "{store}: one served, the rest spent"
    );
    let replay = gateway.get("/v1/demo", Some(&credential)).await;
    assert_eq!(replay.reason(), Some("spent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_buys_one_answer_of_100_concurrent_memory() {
    one_token_many_requests("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_buys_one_answer_of_100_concurrent_sqlite() {
    one_token_many_requests("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_buys_one_answer_of_100_concurrent_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    one_token_many_requests(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_redis_accept_a_token_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    two_replicas_accept_a_token_once(config(&redis.url())).await;
}

/// Two gateways with the same root key and one spent set (a load balancer's replicas): a token
/// served by one is spent on the other.
async fn two_replicas_accept_a_token_once(shared: plannt_serve::Config) {
    let a = start(shared.clone()).await;
    let b = start(shared).await;
    let (macaroon, preimage) = a.token("/v1/demo").await;
    let credential = authorization(&macaroon, &preimage);
    let served = b.get("/v1/demo", Some(&credential)).await;
    assert_eq!(served.status, StatusCode::OK, "{served:?}");
    let replay = a.get("/v1/demo", Some(&credential)).await;
    assert_eq!(replay.reason(), Some("spent"), "{replay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_buys_one_answer_of_100_concurrent_redis_cluster() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    one_token_many_requests(&cluster.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_through_redis_sentinel_waiting_for_a_replica_accept_a_token_once() {
    let Some(set) = RedisSentinel::start(1, 1) else {
        return;
    };
    let mut acked = config(&set.url());
    acked.redis_wait_replicas = 1;
    // The longest wait allowed: the replica answers on a loaded machine too.
    acked.redis_wait_timeout_ms = 1500;
    two_replicas_accept_a_token_once(acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_claim_no_replica_acknowledges_fails_closed_and_leaves_the_token_unused() {
    // A cluster without replicas: WAIT 1 can never be satisfied.
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let mut acked = config(&cluster.url());
    acked.redis_wait_replicas = 1;
    acked.redis_wait_timeout_ms = 50;
    let gateway = start(acked).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let credential = authorization(&macaroon, &preimage);
    let refused = gateway.get("/v1/demo", Some(&credential)).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    // The claim was given back: the same token buys its answer where no wait is asked.
    let plain = start(config(&cluster.url())).await;
    let served = plain.get("/v1/demo", Some(&credential)).await;
    assert_eq!(served.status, StatusCode::OK, "{served:?}");
}

/// An upstream that echoes what it received: method, path, the headers the gateway set.
fn echo() -> Router {
    Router::new().fallback(any(
        |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| async move {
            let header = |name: &str| {
                headers
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
            };
            axum::Json(json!({
                "method": method.as_str(),
                "path": uri.path(),
                "query": uri.query(),
                "authorization": header("authorization"),
                "payment_hash": header("x-l402-payment-hash"),
                "forwarded_for": header("x-forwarded-for"),
                "transfer_encoding": header("transfer-encoding"),
                "content_length": header("content-length"),
            }))
        },
    ))
}

#[tokio::test]
async fn an_upstream_that_is_down_releases_the_token_and_it_works_once_back() {
    let port = dead_port();
    let mut config = config("sqlite");
    config.routes = vec![upstream_route(
        "api",
        "/api/",
        5,
        &format!("http://127.0.0.1:{port}"),
    )];
    let gateway = start(config).await;
    let answer = gateway.get("/api/thing?x=1", None).await;
    assert_eq!(Challenge::of(&answer).payment_hash.0.len(), 32);
    assert_eq!(answer.json["amount_sats"], 5);
    let (macaroon, preimage) = gateway.token("/api/thing").await;
    let credential = authorization(&macaroon, &preimage);

    let down = gateway.get("/api/thing?x=1", Some(&credential)).await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY, "{down:?}");
    assert_eq!(down.header("x-l402"), Some("released"));
    assert!(down.header("www-authenticate").is_none());

    // The upstream comes up on that port.
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, echo()).await });

    let up = gateway
        .send(
            reqwest::Method::POST,
            "/api/thing?x=1",
            Some(&credential),
            None,
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{up:?}");
    assert_eq!(up.header("x-l402"), Some("spent"));
    assert_eq!(up.json["method"], "POST");
    assert_eq!(up.json["path"], "/api/thing");
    assert_eq!(up.json["query"], "x=1");
    // The upstream learns what was paid for, never the preimage.
    assert_eq!(
        up.json["payment_hash"],
        json!([hex::encode(payment_hash(&macaroon))])
    );
    assert_eq!(up.json["authorization"], json!([]));
    assert!(!up.text.contains(&preimage.to_hex()));
    assert_eq!(up.json["forwarded_for"], json!(["127.0.0.1"]));
    // A request without a body is forwarded without one, not as an empty chunked stream.
    assert_eq!(up.json["transfer_encoding"], json!([]), "{up:?}");

    let replay = gateway.get("/api/thing", Some(&credential)).await;
    assert_eq!(replay.reason(), Some("spent"), "{replay:?}");
}

#[tokio::test]
async fn a_slow_upstream_gets_504_and_the_token_back_but_a_flowing_stream_is_not_cut() {
    use axum::response::IntoResponse;
    // /api/slow answers after 3 s; /api/stream answers at once, then sends a chunk every 400 ms
    // for 2 s: longer than the timeout in all, never silent for as long.
    let upstream = Router::new().fallback(any(|uri: axum::http::Uri| async move {
        if uri.path() == "/api/slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return "too late".into_response();
        }
        let chunks = futures_util::stream::unfold(0u32, |i| async move {
            if i == 5 {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            Some((Ok::<_, std::io::Error>(format!("chunk {i}\n")), i + 1))
        });
        axum::body::Body::from_stream(chunks).into_response()
    }));
    let addr = serve_upstream(upstream).await;
    let mut config = config("memory");
    config.upstream_timeout_secs = 1;
    config.routes = vec![upstream_route("api", "/api/", 5, &format!("http://{addr}"))];
    let gateway = start(config).await;

    let (macaroon, preimage) = gateway.token("/api/slow").await;
    let credential = authorization(&macaroon, &preimage);
    let started = Instant::now();
    let slow = gateway.get("/api/slow", Some(&credential)).await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT, "{slow:?}");
    assert_eq!(slow.header("x-l402"), Some("released"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "it did not wait for the answer"
    );

    let (macaroon, preimage) = gateway.token("/api/stream").await;
    let credential = authorization(&macaroon, &preimage);
    let stream = gateway.get("/api/stream", Some(&credential)).await;
    assert_eq!(stream.status, StatusCode::OK, "{stream:?}");
    assert_eq!(stream.header("x-l402"), Some("spent"));
    assert_eq!(stream.text, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
}

#[tokio::test]
async fn an_upstream_5xx_releases_the_token_and_a_4xx_spends_it() {
    // Answers 500 to its first request, then 404 to /api/missing and 200 to the rest.
    let calls = Arc::new(AtomicU32::new(0));
    let upstream = {
        let calls = calls.clone();
        Router::new().fallback(any(move |uri: axum::http::Uri| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    (AxumStatus::INTERNAL_SERVER_ERROR, "upstream broke").into_response()
                } else if uri.path() == "/api/missing" {
                    (AxumStatus::NOT_FOUND, "no such thing").into_response()
                } else {
                    axum::Json(json!({"ok": true})).into_response()
                }
            }
        }))
    };
    use axum::response::IntoResponse;
    let addr = serve_upstream(upstream).await;
    let mut config = config("memory");
    config.routes = vec![upstream_route("api", "/api/", 5, &format!("http://{addr}"))];
    let gateway = start(config).await;

    let (macaroon, preimage) = gateway.token("/api/x").await;
    let credential = authorization(&macaroon, &preimage);
    let failed = gateway.get("/api/x", Some(&credential)).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !failed.text.contains("upstream broke"),
        "a released answer never carries the upstream's body: {failed:?}"
    );
    assert!(
        failed.json["message"]
            .as_str()
            .unwrap()
            .contains("your token was not used"),
        "{failed:?}"
    );
    assert_eq!(failed.header("x-l402"), Some("released"));
    let retried = gateway.get("/api/x", Some(&credential)).await;
    assert_eq!(retried.status, StatusCode::OK, "{retried:?}");
    assert_eq!(retried.header("x-l402"), Some("spent"));

    // A 4xx is a real answer from the upstream: the token is spent.
    let (macaroon, preimage) = gateway.token("/api/missing").await;
    let credential = authorization(&macaroon, &preimage);
    let missing = gateway.get("/api/missing", Some(&credential)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("x-l402"), Some("spent"));
    let replay = gateway.get("/api/missing", Some(&credential)).await;
    assert_eq!(replay.reason(), Some("spent"), "{replay:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the replay never reached the upstream"
    );

    let metrics = gateway.get("/metrics", None).await;
    for line in [
        "plannt_claims_released_total 1",
        "plannt_tokens_accepted_total{route=\"api\"} 2",
    ] {
        assert!(
            metrics.text.lines().any(|l| l == line),
            "{line}:\n{}",
            metrics.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_paid_request_finish_and_its_token_stays_spent() {
    // A slow upstream: it tells the test it has the request, then takes a second to answer.
    let (received_tx, mut received) = mpsc::channel::<()>(1);
    let upstream = Router::new().fallback(any(move || {
        let received_tx = received_tx.clone();
        async move {
            let _ = received_tx.send(()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            axum::Json(json!({"slow": "but there"}))
        }
    }));
    let addr = serve_upstream(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let make_config = || {
        let mut config = config("sqlite");
        config.routes = vec![upstream_route(
            "slow",
            "/slow/",
            3,
            &format!("http://{addr}"),
        )];
        config
    };
    let mut gateway = start_in(make_config(), dir.path()).await;
    let (macaroon, preimage) = gateway.token("/slow/x").await;
    let credential = authorization(&macaroon, &preimage);

    let request = gateway
        .http
        .get(gateway.url("/slow/x"))
        .header("authorization", &credential)
        .send();
    let in_flight = tokio::spawn(async move { Answer::read(request.await.unwrap()).await });
    tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("the request reaches the upstream")
        .unwrap();
    gateway.signal_shutdown();

    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.json, json!({"slow": "but there"}));
    assert_eq!(answer.header("x-l402"), Some("spent"));
    gateway.join().await;
    drop(gateway);

    // The same data directory, a new gateway: the token is still spent. `serve` returns once
    // every connection has let go of its shutdown signal, a moment before the last one drops its
    // handle on the store, so the SQLite file may still be held briefly: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        match plannt_serve::Gateway::build(make_config(), dir.path().to_path_buf()).await {
            Ok(built) => break serve(built).await,
            Err(e) if e.to_string().contains("in use") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the gateway does not restart: {e}"),
        }
    };
    let replay = restarted.get("/slow/x", Some(&credential)).await;
    assert_eq!(replay.reason(), Some("spent"), "{replay:?}");
}
