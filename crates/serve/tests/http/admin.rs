//! The admin API (`/_plannt/admin/`): off without a token, loopback only, the bearer token, every
//! endpoint, the earnings ledger it reads, revocation, and reloads good and bad, one with a paid
//! request in flight.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use plannt_serve::config::Store;
use plannt_serve::{Config, Gateway};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    Answer, Challenge, RedisServer, TestGateway, authorization, config, serve, serve_upstream,
    start,
};

const TOKEN: &str = "admin-token-0123456789abcdef";

fn admin_config(store: &str) -> Config {
    let mut config = config(store);
    config.admin_token = Some(plannt_serve::config::AdminToken(zeroize::Zeroizing::new(
        TOKEN.to_string(),
    )));
    config
}

async fn admin(gateway: &TestGateway, method: Method, path: &str, token: Option<&str>) -> Answer {
    admin_with(gateway, method, path, token, None).await
}

async fn admin_with(
    gateway: &TestGateway,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = gateway
        .http
        .request(method, gateway.url(&format!("/_plannt/admin{path}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Answer::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn without_a_token_the_admin_api_is_off_and_answers_404() {
    let gateway = start(config("memory")).await;
    for path in ["/", "/stats", "/routes", "/health", "/dashboard.js"] {
        let answer = admin(&gateway, Method::GET, path, Some(TOKEN)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
    }
    let answer = admin(&gateway, Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_401_and_the_right_one_200() {
    let gateway = start(admin_config("memory")).await;
    let near_misses = [
        None,
        Some(""),
        Some("admin-token-0123456789abcde"),
        Some("admin-token-0123456789abcdef0"),
        Some("ADMIN-TOKEN-0123456789ABCDEF"),
        Some("wrong"),
    ];
    for token in near_misses {
        let answer = admin(&gateway, Method::GET, "/stats", token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Bearer realm=\"plannt-admin\"")
        );
        assert!(answer.json.get("total").is_none(), "no data: {answer:?}");
    }
    // Another scheme with the right token is not the bearer token either.
    let answer = gateway
        .http
        .get(gateway.url("/_plannt/admin/stats"))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);

    let answer = admin(&gateway, Method::GET, "/stats", Some(TOKEN)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let csp = answer.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    // No CORS: another origin's page cannot read the admin API.
    let answer = gateway
        .http
        .get(gateway.url("/_plannt/admin/stats"))
        .bearer_auth(TOKEN)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn a_token_shorter_than_16_characters_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin.token");
    std::fs::write(&file, "short\n").unwrap();
    let mut config = config("memory");
    config.admin_token_file = Some(file.clone());
    let refused = Gateway::build(config.clone(), dir.path().to_path_buf())
        .await
        .err()
        .expect("a short token must not start");
    assert!(refused.to_string().contains("16 characters"), "{refused}");

    // From the file, trimmed.
    std::fs::write(&file, format!("  {TOKEN}\n")).unwrap();
    let gateway = start(config).await;
    let answer = admin(&gateway, Method::GET, "/health", Some(TOKEN)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn a_client_that_is_not_on_loopback_is_refused_unless_allowed() {
    // A trusted proxy on loopback names a remote client.
    let mut config = admin_config("memory");
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let gateway = start(config.clone()).await;
    let remote = gateway
        .http
        .get(gateway.url("/_plannt/admin/stats"))
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let remote = Answer::read(remote).await;
    assert_eq!(remote.status, StatusCode::FORBIDDEN, "{remote:?}");
    assert!(remote.text.contains("admin_allow_remote"));
    assert!(remote.json.get("total").is_none());
    // The dashboard's shell too.
    let shell = gateway
        .http
        .get(gateway.url("/_plannt/admin/"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(shell.status(), StatusCode::FORBIDDEN);
    // A loopback client is served.
    let local = admin(&gateway, Method::GET, "/stats", Some(TOKEN)).await;
    assert_eq!(local.status, StatusCode::OK);

    config.admin_allow_remote = true;
    let gateway = start(config).await;
    let remote = gateway
        .http
        .get(gateway.url("/_plannt/admin/stats"))
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status(), StatusCode::OK);
}

/// Pays `n` requests to `/v1/demo` and makes one refusal of each kind: a spent token
/// presented again, a malformed credential. Returns the payment hashes (hex).
async fn traffic(gateway: &TestGateway, n: usize) -> Vec<String> {
    let mut hashes = Vec::new();
    for _ in 0..n {
        let challenge = gateway.challenge("/v1/demo").await;
        let preimage = gateway.pay(&challenge.invoice);
        let auth = authorization(&challenge.macaroon, &preimage);
        assert_eq!(
            gateway.get("/v1/demo", Some(&auth)).await.status,
            StatusCode::OK
        );
        hashes.push(challenge.payment_hash.to_hex());
        if hashes.len() == 1 {
            let again = gateway.get("/v1/demo", Some(&auth)).await;
            assert_eq!(again.reason(), Some("spent"));
        }
    }
    let bad = gateway.get("/v1/demo", Some("L402 nonsense")).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    hashes
}

async fn stats_show_the_traffic(store: &str) {
    let gateway = start(admin_config(store)).await;
    let hashes = traffic(&gateway, 3).await;
    let stats = admin(&gateway, Method::GET, "/stats?since=1h", Some(TOKEN)).await;
    assert_eq!(stats.status, StatusCode::OK, "{stats:?}");
    let s = &stats.json;
    assert_eq!(s["total"]["payments"], 3, "{s}");
    assert_eq!(s["total"]["sats"], 63);
    assert_eq!(s["total"]["refusals"], 2);
    assert_eq!(s["routes"]["demo"]["sats"], 63);
    assert_eq!(s["dialects"]["l402"]["payments"], 3);
    assert_eq!(s["refusals"]["spent"], 1);
    assert_eq!(s["refusals"]["malformed"], 1);
    let recent: Vec<&str> = s["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["payment_hash"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = hashes.iter().rev().map(String::as_str).collect();
    assert_eq!(recent, newest_first);
    assert_eq!(s["store"], store.split(':').next().unwrap());
    // The live minutes saw the challenges (3 paid, 1 after the spent token) and payments.
    let live = s["live"].as_array().unwrap();
    let sum = |key: &str| live.iter().map(|m| m[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("paid"), 3);
    assert_eq!(sum("challenges"), 4);
    assert_eq!(sum("refused"), 2);
    // A span before any of it is empty; a bad span is refused.
    let empty = admin(
        &gateway,
        Method::GET,
        "/stats?since=2001-01-01&until=2001-01-02",
        Some(TOKEN),
    )
    .await;
    assert_eq!(empty.json["total"]["payments"], 0);
    let bad = admin(&gateway, Method::GET, "/stats?since=someday", Some(TOKEN)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("24h"), "{bad:?}");
}

#[tokio::test]
async fn stats_count_payments_and_refusals_in_memory() {
    stats_show_the_traffic("memory").await;
}

#[tokio::test]
async fn stats_count_payments_and_refusals_in_sqlite() {
    stats_show_the_traffic("sqlite").await;
}

#[tokio::test]
async fn stats_count_payments_and_refusals_in_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    stats_show_the_traffic(&redis.url()).await;
}

#[tokio::test]
async fn replicas_on_one_redis_share_the_ledger_and_revocations() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let one = start(admin_config(&redis.url())).await;
    // The second replica pays through the first one's dev network: same keys, same routes.
    let two = start(admin_config(&redis.url())).await;
    traffic(&one, 2).await;
    // Both see the first one's payments once it flushed (a stats call flushes).
    let first = admin(&one, Method::GET, "/stats?since=1h", Some(TOKEN)).await;
    assert_eq!(first.json["total"]["payments"], 2);
    let second = admin(&two, Method::GET, "/stats?since=1h", Some(TOKEN)).await;
    assert_eq!(second.json["total"]["payments"], 2, "{second:?}");

    // A token revoked on one replica is refused on the other.
    let (macaroon, preimage) = one.token("/v1/demo").await;
    let hash = crate::support::payment_hash(&macaroon).to_hex();
    let revoked = admin_with(
        &two,
        Method::POST,
        "/revoke",
        Some(TOKEN),
        Some(json!({ "payment_hash": hash })),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    let refused = one
        .get("/v1/demo", Some(&authorization(&macaroon, &preimage)))
        .await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refused.reason(), Some("spent"));
}

#[tokio::test]
async fn routes_health_and_revoke_answer() {
    let gateway = start(admin_config("memory")).await;
    let routes = admin(&gateway, Method::GET, "/routes", Some(TOKEN)).await;
    assert_eq!(routes.status, StatusCode::OK);
    let demo = routes.json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "demo")
        .cloned()
        .unwrap();
    assert_eq!(demo["price_sats"], 21);
    assert_eq!(demo["path"], "/v1/demo");
    assert!(
        demo["dialects"]
            .as_array()
            .unwrap()
            .contains(&json!("l402"))
    );

    let health = admin(&gateway, Method::GET, "/health", Some(TOKEN)).await;
    assert_eq!(health.status, StatusCode::OK, "{health:?}");
    assert_eq!(health.json["ok"], true);
    assert_eq!(health.json["backend"]["name"], "dev");
    assert_eq!(health.json["store"]["name"], "memory");
    assert_eq!(health.json["store"]["ok"], true);

    // A paid token, revoked before its first use, is refused as spent.
    let (macaroon, preimage) = gateway.token("/v1/demo").await;
    let hash = crate::support::payment_hash(&macaroon).to_hex();
    let bad = admin_with(
        &gateway,
        Method::POST,
        "/revoke",
        Some(TOKEN),
        Some(json!({ "payment_hash": "beef" })),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unauthorized = admin_with(
        &gateway,
        Method::POST,
        "/revoke",
        Some("wrong"),
        Some(json!({ "payment_hash": hash })),
    )
    .await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    let revoked = admin_with(
        &gateway,
        Method::POST,
        "/revoke",
        Some(TOKEN),
        Some(json!({ "payment_hash": hash })),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    assert_eq!(revoked.json["revoked"], hash);
    let refused = gateway
        .get("/v1/demo", Some(&authorization(&macaroon, &preimage)))
        .await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refused.reason(), Some("spent"));
}

#[tokio::test]
async fn the_dashboard_shell_carries_no_data_and_a_strict_policy() {
    let gateway = start(admin_config("memory")).await;
    traffic(&gateway, 1).await;
    // No token needed for the shell: it holds no figures, only the login form and the script.
    let shell = admin(&gateway, Method::GET, "/", None).await;
    assert_eq!(shell.status, StatusCode::OK);
    assert!(
        shell
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(shell.text.contains("dashboard.js"));
    assert!(!shell.text.contains("<script>"), "no inline script");
    assert!(!shell.text.contains("payment_hash"));
    let csp = shell.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(shell.header("x-frame-options"), Some("DENY"));
    let script = admin(&gateway, Method::GET, "/dashboard.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.text.contains("sessionStorage"));
    // /_plannt/admin redirects to the page.
    let bare = gateway
        .http
        .get(gateway.url("/_plannt/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
}

/// A configuration file with one route to `upstream` at `price` sats, and `extra` lines.
fn write_config(path: &std::path::Path, upstream: &str, price: u64, extra: &str) {
    let text = format!(
        "store = \"memory\"\nchallenges_per_second = 0.0\nkeep_answer_bytes = 0\n\
         root_key = \"{}\"\n{extra}\n\
         [[routes]]\nid = \"slow\"\npath = \"/slow\"\nprice_sats = {price}\nupstream = \"{upstream}\"\n",
        crate::support::ROOT_KEY
    );
    std::fs::write(path, text).unwrap();
}

/// A gateway built from the file at `path`, reloading from it.
async fn from_file(path: &std::path::Path) -> TestGateway {
    let env = |k: &str| (k == "PLANNT_ADMIN_TOKEN").then(|| TOKEN.to_string());
    let mut config = Config::load(Some(path), env).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    assert_eq!(config.store, Store::Memory);
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::build(config, dir.path().to_path_buf())
        .await
        .unwrap();
    let file = path.to_path_buf();
    gateway.set_config_source(Arc::new(move || {
        let env = |k: &str| (k == "PLANNT_ADMIN_TOKEN").then(|| TOKEN.to_string());
        Config::load(Some(&file), env).map(|mut c| {
            c.listen = "127.0.0.1:0".parse().unwrap();
            c
        })
    }));
    let mut served = serve(gateway).await;
    served.keep_dir(dir);
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_prices_and_keeps_a_request_in_flight_and_a_bad_one_is_refused() {
    // An upstream that answers once told to: a paid request stays in flight across the reload.
    let (release, released) = tokio::sync::watch::channel(false);
    let upstream = serve_upstream(axum::Router::new().route(
        "/slow",
        get(move || {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|r| *r).await;
                "slow answer"
            }
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plannt.toml");
    let upstream = format!("http://{upstream}");
    write_config(&file, &upstream, 10, "");
    let gateway = from_file(&file).await;
    let challenge = gateway.challenge("/slow").await;
    assert_eq!(challenge_price(&gateway, "/slow").await, 10);
    let preimage = gateway.pay(&challenge.invoice);
    let auth = authorization(&challenge.macaroon, &preimage);
    let in_flight = {
        let http = gateway.http.clone();
        let url = gateway.url("/slow");
        tokio::spawn(async move {
            Answer::read(
                http.get(url)
                    .header("authorization", auth)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the upstream holds the request");

    // A new price, and a setting only a restart applies.
    write_config(&file, &upstream, 25, "invoice_expiry_secs = 900");
    let reloaded = admin(&gateway, Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(reloaded.status, StatusCode::OK, "{reloaded:?}");
    assert_eq!(reloaded.json["routes"], 1);
    assert_eq!(
        reloaded.json["restart_needed"],
        json!(["invoice_expiry_secs"])
    );
    assert_eq!(challenge_price(&gateway, "/slow").await, 25);

    // The request in flight finishes with what it paid for; its token is spent.
    release.send(true).unwrap();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.text, "slow answer");
    assert_eq!(answer.header("x-l402"), Some("spent"));
    let stats = admin(&gateway, Method::GET, "/stats?since=1h", Some(TOKEN)).await;
    assert_eq!(
        stats.json["routes"]["slow"]["sats"], 10,
        "paid at the old price"
    );

    // A file that does not parse, and one whose routes do not build: refused, price kept.
    std::fs::write(&file, "routes = [[[").unwrap();
    let refused = admin(&gateway, Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    assert_eq!(refused.json["reloaded"], false);
    assert!(refused.text.contains("plannt.toml"), "{refused:?}");
    write_config(&file, &upstream, 25, "");
    let text = std::fs::read_to_string(&file).unwrap()
        + "[[routes]]\nid = \"slow\"\npath = \"/slow\"\nprice_sats = 1\nupstream = \"http://127.0.0.1:9\"\n";
    std::fs::write(&file, text).unwrap();
    let refused = admin(&gateway, Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    assert_eq!(challenge_price(&gateway, "/slow").await, 25);
    // The Rust side says the same.
    let error = gateway
        .reloader
        .as_ref()
        .unwrap()
        .reload()
        .await
        .unwrap_err();
    assert!(
        matches!(error, plannt_serve::ReloadError::Routes(_)),
        "{error}"
    );
}

#[tokio::test]
async fn a_gateway_built_in_code_has_nothing_to_reload_from() {
    let gateway = start(admin_config("memory")).await;
    let refused = admin(&gateway, Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert!(refused.text.contains("restart"));
}

async fn challenge_price(gateway: &TestGateway, path: &str) -> u64 {
    let answer = gateway.get(path, None).await;
    let _ = Challenge::of(&answer);
    answer.json["amount_sats"].as_u64().unwrap()
}

#[tokio::test]
async fn a_route_s_rate_limit_and_its_free_tier_reach_the_ledger_as_they_are() {
    let upstream = serve_upstream(axum::Router::new().route("/api", get(|| async { "ok" }))).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plannt.toml");
    let text = format!(
        "store = \"memory\"\nchallenges_per_second = 0.0\nroot_key = \"{}\"\n\
         [[routes]]\nid = \"api\"\npath = \"/api\"\nprice_sats = 3\nupstream = \"http://{upstream}\"\n\
         free = {{ requests = 1, per = \"1h\" }}\nrate_limit = {{ requests = 3, per = \"1h\" }}\n",
        crate::support::ROOT_KEY
    );
    std::fs::write(&file, text).unwrap();
    let gateway = from_file(&file).await;
    // One free request, then a 402 (no refusal: no credential was refused), then 429s.
    assert_eq!(gateway.get("/api", None).await.status, StatusCode::OK);
    assert_eq!(
        gateway.get("/api", None).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(
        gateway.get("/api", None).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    for _ in 0..2 {
        let limited = gateway.get("/api", None).await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{limited:?}");
    }
    let stats = admin(&gateway, Method::GET, "/stats?since=1h", Some(TOKEN)).await;
    assert_eq!(
        stats.json["refusals"],
        json!({ "rate_limited": 2 }),
        "{stats:?}"
    );
    assert_eq!(
        stats.json["total"]["payments"], 0,
        "a free request is no payment"
    );
    let routes = admin(&gateway, Method::GET, "/routes", Some(TOKEN)).await;
    let api = &routes.json["routes"][0];
    assert_eq!(api["free"], json!({ "requests": 1, "per_secs": 3600 }));
    assert_eq!(
        api["rate_limit"],
        json!({ "requests": 3, "per_secs": 3600 })
    );
    assert_eq!(api["metered"], false);
}
