//! One payment, one answer, whatever caveats the holder appends and however time passes.
//!
//! The attack: a holder of a paid macaroon appends `demo_valid_until=<now+2>` (attenuation is
//! allowed: it narrows), spends that copy, waits until the copy has expired, and presents the
//! original, or a fresh copy. If the spent entry lived only as long as the copy it would lapse
//! (Redis expires it, SQLite and memory purge it) and the same payment would buy a second answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use plannt_gateway::l402::{KeyRing, Preimage, RootKey};
use plannt_gateway::lightning::dev::DevNetwork;
use plannt_gateway::store::{MemoryStore, RedisOptions, RedisStore, SpentStore, SqliteStore};
use plannt_gateway::{Clock, Paywall, PaywallOptions, Route, RouteTable, Target};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use tower::{Layer, ServiceExt};

use crate::support::{RedisServer, attenuate, authorization, config, now, start};

/// Over real HTTP and the real clock: the copy expires, the original stays spent.
async fn an_earlier_expiry_appended_by_the_holder_does_not_free_the_payment(store: &str) {
    let gateway = start(config(store)).await;
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let short = attenuate(&macaroon, &format!("demo_valid_until={}", now() + 2));
    let served = gateway
        .get("/v1/demo", Some(&authorization(&short, &preimage)))
        .await;
    assert_eq!(served.status, StatusCode::OK, "{store}: {served:?}");

    // Past the copy's expiry, with the spent set purged as the purger would (Redis expires
    // keys by itself).
    tokio::time::sleep(Duration::from_secs(3)).await;
    gateway.paywall.store().purge(now()).await.unwrap();
    let later = attenuate(&macaroon, &format!("demo_valid_until={}", now() + 60));
    for (copy, which) in [(&macaroon, "the original"), (&later, "a fresh copy")] {
        let replay = gateway
            .get("/v1/demo", Some(&authorization(copy, &preimage)))
            .await;
        assert_eq!(
            replay.status,
            StatusCode::PAYMENT_REQUIRED,
            "{store}: {which}"
        );
        assert_eq!(
            replay.reason(),
            Some("spent"),
            "{store}: {which}: {replay:?}"
        );
    }
}

#[tokio::test]
async fn an_earlier_expiry_appended_by_the_holder_does_not_free_the_payment_memory() {
    an_earlier_expiry_appended_by_the_holder_does_not_free_the_payment("memory").await;
}

#[tokio::test]
async fn an_earlier_expiry_appended_by_the_holder_does_not_free_the_payment_sqlite() {
    an_earlier_expiry_appended_by_the_holder_does_not_free_the_payment("sqlite").await;
}

#[tokio::test]
async fn an_earlier_expiry_appended_by_the_holder_does_not_free_the_payment_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    an_earlier_expiry_appended_by_the_holder_does_not_free_the_payment(&redis.url()).await;
}

/// What the holder does next.
#[derive(Debug, Clone)]
enum Step {
    /// Time passes.
    Wait(u64),
    /// Appends a caveat to one of its copies, making another copy.
    Attenuate { of: usize, caveat: Appended },
    /// Presents one of its copies, counted from the newest.
    Present(usize),
    /// The gateway purges its spent set.
    Purge,
}

/// A caveat a holder may append.
#[derive(Debug, Clone)]
enum Appended {
    /// `demo_valid_until=<now + offset>`; in the past for a negative offset.
    ExpiresIn(i64),
    /// `services=demo:0` again.
    Services,
    /// `demo_capabilities=read`.
    Capabilities,
    /// `demo_max_tokens=5`: a condition the route does not know.
    Condition,
}

/// Seconds from minting to the minted expiry in the property test.
const LIFETIME: u64 = 120;

fn step() -> impl Strategy<Value = Step> {
    let appended = prop_oneof![
        3 => (1i64..10).prop_map(Appended::ExpiresIn),
        2 => (-5i64..(LIFETIME as i64 + 30)).prop_map(Appended::ExpiresIn),
        1 => Just(Appended::Services),
        1 => Just(Appended::Capabilities),
        1 => Just(Appended::Condition),
    ];
    prop_oneof![
        2 => (0u64..=LIFETIME / 3).prop_map(Step::Wait),
        3 => (0usize..8, appended).prop_map(|(of, caveat)| Step::Attenuate { of, caveat }),
        4 => (0usize..8).prop_map(Step::Present),
        2 => Just(Step::Purge),
    ]
}

/// A paywall over one 21-sat route, on a clock the test moves, answering 200 behind it.
struct Bench {
    paywall: Arc<Paywall>,
    network: DevNetwork,
    clock: Arc<AtomicU64>,
}

impl Bench {
    fn new(store: Arc<dyn SpentStore>) -> Bench {
        let network = DevNetwork::ephemeral(1_000_000);
        let clock = Arc::new(AtomicU64::new(now()));
        let read = clock.clone();
        let options = PaywallOptions {
            invoice_expiry_secs: 60,
            token_lifetime_secs: LIFETIME - 60,
            challenges_per_second: 0.0,
            clock: Clock::from_fn(move || read.load(Ordering::SeqCst)),
            ..PaywallOptions::default()
        };
        let route = Route::paid("demo", Method::GET, "/v1/demo", 21, Target::Service);
        let paywall = Arc::new(Paywall::new(
            KeyRing::single(RootKey::new([9; 32])),
            Arc::new(network.wallet("gateway")),
            store,
            RouteTable::new(vec![route]).unwrap(),
            options,
        ));
        Bench {
            paywall,
            network,
            clock,
        }
    }

    async fn get(&self, credential: Option<&str>) -> Response<Body> {
        let inner = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("served")))
        });
        let mut request = Request::get("/v1/demo");
        if let Some(credential) = credential {
            request = request.header("authorization", credential);
        }
        self.paywall
            .layer()
            .layer(inner)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    /// A paid token: `(macaroon, preimage, minted expiry)`.
    async fn token(&self) -> (String, Preimage, u64) {
        let challenge = self.get(None).await;
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
        let body = axum::body::to_bytes(challenge.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let invoice = body["invoice"].as_str().unwrap();
        let preimage = self.network.pay("tester", invoice).unwrap().preimage;
        let minted = self.clock.load(Ordering::SeqCst) + LIFETIME;
        (
            body["macaroon"].as_str().unwrap().to_string(),
            preimage,
            minted,
        )
    }
}

/// Runs `steps` against one paid token: how many answers of 200 it bought (the kept answer given
/// again to the same credential is the same answer, not another).
async fn answers(bench: &Bench, steps: &[Step], redis: Option<&redis::Client>) -> usize {
    let (macaroon, preimage, minted) = bench.token().await;
    let mut copies = vec![macaroon];
    let mut served = 0;
    for step in steps {
        let now = bench.clock.load(Ordering::SeqCst);
        match step {
            Step::Wait(secs) => {
                bench.clock.fetch_add(*secs, Ordering::SeqCst);
            }
            Step::Attenuate { of, caveat } => {
                let base = &copies[of % copies.len()];
                let text = match caveat {
                    Appended::ExpiresIn(offset) => {
                        format!("demo_valid_until={}", now.saturating_add_signed(*offset))
                    }
                    Appended::Services => "services=demo:0".into(),
                    Appended::Capabilities => "demo_capabilities=read".into(),
                    Appended::Condition => "demo_max_tokens=5".into(),
                };
                copies.push(attenuate(base, &text));
            }
            Step::Present(which) => {
                let copy = &copies[copies.len() - 1 - which % copies.len()];
                let response = bench.get(Some(&authorization(copy, &preimage))).await;
                let answer = response.status();
                let replayed = response
                    .headers()
                    .get("x-l402")
                    .is_some_and(|v| v == "replayed");
                if replayed {
                    // The same credential again for the same request: the kept answer, not a
                    // second one (the upstream is not called).
                    assert_eq!(answer, StatusCode::OK);
                    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                        .await
                        .unwrap();
                    assert_eq!(&body[..], b"served");
                    continue;
                }
                match answer {
                    StatusCode::OK => served += 1,
                    StatusCode::PAYMENT_REQUIRED => {}
                    other => panic!("unexpected {other}"),
                }
                if let (Some(redis), StatusCode::OK) = (redis, answer) {
                    // Redis expires keys by its own clock, which the test cannot move: the
                    // spent key must be set to outlive the minted expiry.
                    let hash = crate::support::payment_hash(copy);
                    let key = format!("{}{}", RedisStore::DEFAULT_PREFIX, hex::encode(hash));
                    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
                    let expires: i64 = redis::cmd("EXPIRETIME")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert!(
                        expires >= minted as i64,
                        "{key} expires at {expires}, minted {minted}"
                    );
                }
            }
            Step::Purge => {
                bench.paywall.store().purge(now).await.unwrap();
            }
        }
    }
    served
}

/// Every sequence of attenuations, presentations, purges and waits buys at most one answer.
/// (Checked to find the attack within these cases when the spent entry lives only as long as
/// the copy presented.)
fn one_payment_at_most_one_answer(
    store: impl Fn(&tokio::runtime::Runtime) -> Arc<dyn SpentStore>,
    redis: Option<&redis::Client>,
    cases: u32,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bench = Bench::new(store(&runtime));
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let steps = proptest::collection::vec(step(), 1..24);
    runner
        .run(&steps, |steps| {
            let served = runtime.block_on(answers(&bench, &steps, redis));
            prop_assert!(served <= 1, "one payment bought {} answers", served);
            Ok(())
        })
        .unwrap();
}

#[test]
fn property_one_payment_at_most_one_answer_memory() {
    one_payment_at_most_one_answer(|_| Arc::new(MemoryStore::new()), None, 256);
}

#[test]
fn property_one_payment_at_most_one_answer_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spent.sqlite");
    one_payment_at_most_one_answer(
        move |_| Arc::new(SqliteStore::open(&path).unwrap()),
        None,
        128,
    );
}

#[test]
fn property_one_payment_at_most_one_answer_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let client = redis::Client::open(url.as_str()).unwrap();
    one_payment_at_most_one_answer(
        |runtime| {
            let options = RedisOptions::default();
            Arc::new(
                runtime
                    .block_on(RedisStore::connect_with(&url, options))
                    .unwrap(),
            )
        },
        Some(&client),
        64,
    );
}
