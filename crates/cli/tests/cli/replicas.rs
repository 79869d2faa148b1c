//! Three `plannt serve` processes sharing one `redis-server` and one root key: a token is
//! accepted once across all of them, even under concurrent use, and a Redis that goes away makes
//! paid requests fail closed (503) while challenges keep being issued.
//!
//! Each replica runs its own embedded dev network, so each invoice is paid at the replica that
//! issued it.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cluster::{Serve, client, get, token};
use plannt_testkit::Redis;

/// The root key every replica shares.
const ROOT_KEY: &str = "5a5f2f0b9e8c7d6a5b4c3d2e1f00112233445566778899aabbccddeeff001122";

/// Three replicas on `redis`, each with a data directory of its own under `dir`.
fn replicas(dir: &Path, redis: &Redis) -> [Serve; 3] {
    let store = redis.url();
    ["a", "b", "c"].map(|name| {
        Serve::start(
            &dir.join(name),
            &["--store", &store],
            &[("PLANNT_ROOT_KEY", ROOT_KEY)],
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_spent_at_one_replica_is_spent_at_the_others() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = replicas(dir.path(), &redis);
    let http = client();

    let credential = token(&http, &a, "/v1/demo").await;
    let served = get(&http, &a.url("/v1/demo"), Some(&credential)).await;
    assert_eq!(served.status, 200, "{served:?}\n{}", a.log());
    assert_eq!(served.body, serde_json::json!({"result": "verified"}));
    assert_eq!(served.x_l402.as_deref(), Some("spent"), "{served:?}");

    for (name, replica) in [("b", &b), ("c", &c), ("a", &a)] {
        // The same request gets the answer kept in the shared store, from any replica.
        let kept = get(&http, &replica.url("/v1/demo"), Some(&credential)).await;
        assert_eq!(
            kept.x_l402.as_deref(),
            Some("replayed"),
            "at {name}: {kept:?}"
        );
        assert_eq!(kept.body, served.body, "at {name}");
        // Another request is refused as spent.
        let refused = get(&http, &replica.url("/v1/demo?again=1"), Some(&credential)).await;
        assert_eq!(refused.status, 402, "at {name}: {refused:?}");
        assert_eq!(refused.reason(), Some("spent"), "at {name}: {refused:?}");
        assert_eq!(refused.reason_header.as_deref(), Some("spent"), "at {name}");
        // The refusal carries a fresh challenge of that replica.
        let (_, invoice) = refused.challenge();
        assert!(invoice.starts_with("lnbcrt"), "at {name}: {invoice}");
    }

    // A token from B works at C: the replicas share the root key, not only the spent set.
    let credential = token(&http, &b, "/v1/demo").await;
    let served = get(&http, &c.url("/v1/demo"), Some(&credential)).await;
    assert_eq!(served.status, 200, "{served:?}\n{}", c.log());
    let refused = get(&http, &b.url("/v1/demo?again=1"), Some(&credential)).await;
    assert_eq!(refused.reason(), Some("spent"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_uses_over_three_replicas_buy_one_answer() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let replicas = replicas(dir.path(), &redis);
    let http = client();
    let credential = token(&http, &replicas[1], "/v1/demo").await;

    // All 50 start together: each waits at the barrier, then sends.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (http, credential, barrier) = (http.clone(), credential.clone(), barrier.clone());
            let url = replicas[i % 3].url("/v1/demo");
            tokio::spawn(async move {
                barrier.wait().await;
                get(&http, &url, Some(&credential)).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let served: Vec<_> = answers
        .iter()
        .filter(|a| a.status == 200 && a.x_l402.as_deref() == Some("spent"))
        .collect();
    assert_eq!(served.len(), 1, "exactly one answer: {answers:#?}");
    // Every other use is refused: in flight (409), or, once the answer is kept, given that
    // same answer again (no upstream call), or refused as spent.
    let others = answers
        .iter()
        .filter(|a| {
            (a.status == 409 && a.x_l402.as_deref() == Some("pending"))
                || (a.status == 200
                    && a.x_l402.as_deref() == Some("replayed")
                    && a.body == served[0].body)
                || (a.status == 402 && a.reason() == Some("spent"))
        })
        .count();
    assert_eq!(others, 49, "every other use: {answers:#?}");

    // Afterwards every replica still refuses it for any other request.
    for replica in &replicas {
        let refused = get(&http, &replica.url("/v1/demo?again=1"), Some(&credential)).await;
        assert_eq!(refused.reason(), Some("spent"), "{refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_paid_requests_fail_closed_and_challenges_go_on() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = replicas(dir.path(), &redis);
    let http = client();

    // Redis works: a first token is served once.
    let before = token(&http, &a, "/v1/demo").await;
    assert_eq!(
        get(&http, &b.url("/v1/demo"), Some(&before)).await.status,
        200
    );

    redis.stop();

    // Challenges need no store: every replica still answers 402 with an invoice, and the
    // invoice can be paid.
    for (name, replica) in [("a", &a), ("b", &b), ("c", &c)] {
        let challenge = get(&http, &replica.url("/v1/demo"), None).await;
        assert_eq!(challenge.status, 402, "at {name}: {challenge:?}");
        let (_, invoice) = challenge.challenge();
        assert!(invoice.starts_with("lnbcrt210n"), "at {name}: {invoice}");
    }
    let fresh = token(&http, &c, "/v1/demo").await;

    // A fresh, paid, genuine token is not accepted without the store: 503, never a 200 and
    // never a 402 (the client must not pay again).
    for (name, replica) in [("a", &a), ("b", &b), ("c", &c), ("a", &a)] {
        let refused = get(&http, &replica.url("/v1/demo"), Some(&fresh)).await;
        assert_eq!(refused.status, 503, "at {name}: {refused:?}");
        assert_eq!(
            refused.reason(),
            Some("store_unavailable"),
            "at {name}: {refused:?}"
        );
        assert_eq!(refused.retry_after.as_deref(), Some("5"), "at {name}");
        assert!(
            refused.www_authenticate.is_none() && refused.body.get("invoice").is_none(),
            "no invoice with a 503, at {name}: {refused:?}"
        );
        assert_ne!(refused.x_l402.as_deref(), Some("spent"), "at {name}");
    }

    redis.restart();

    // The replicas reconnect by themselves; until then the token keeps getting 503 (and is not
    // used). Then it is served exactly once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        let answer = get(&http, &b.url("/v1/demo"), Some(&fresh)).await;
        if answer.status != 503 {
            break answer;
        }
        assert_eq!(answer.reason(), Some("store_unavailable"), "{answer:?}");
        assert!(
            Instant::now() < deadline,
            "replica b did not reconnect to Redis within 20 s: {answer:?}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(served.status, 200, "{served:?}\n{}", b.log());
    assert_eq!(served.x_l402.as_deref(), Some("spent"), "{served:?}");

    // The others may still be reconnecting: wait out their 503s, but never accept the token
    // twice.
    for (name, replica) in [("a", &a), ("c", &c), ("b", &b)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let refused = loop {
            // Another request than the served one: refused as spent (the same one would get
            // its kept answer).
            let answer = get(&http, &replica.url("/v1/demo?again=1"), Some(&fresh)).await;
            if answer.status != 503 {
                break answer;
            }
            assert!(
                Instant::now() < deadline,
                "replica {name} did not reconnect to Redis within 20 s: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(refused.status, 402, "at {name}: {refused:?}");
        assert_eq!(refused.reason(), Some("spent"), "at {name}: {refused:?}");
    }
}
