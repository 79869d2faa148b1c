//! Attacks through `plannt mcp`'s tools, each a named test: a real `PlanntMcp` driven by rmcp's
//! client over an in-memory transport, paying with a `dev+http://` wallet through the dev
//! network's HTTP API, beside a small L402 API on the same loopback address, with a SQLite
//! ledger. Each asserts that nothing moved on the dev network, that no request reached the
//! server (its own counter), that the tool result says what was refused and why, and that
//! `spending` shows the refusal. And prepaid sessions, against the test kit's session server:
//! `fetch` spends from one, `spending` shows what it holds, and the agent cannot open one
//! beyond the policy or above what a human would be asked to confirm.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plannt_client::{Client, ClientBuilder, Ledger, Policy, WalletApi};
use plannt_l402::{KeyRing, MintRequest, NoConditions, Request as L402Request, RootKey};
use plannt_lightning::dev::DevNetwork;
use plannt_lightning::{BackendUri, Context, InvoiceRequest};
use plannt_mcp::{Config, PlanntMcp};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

const PAYER: &str = "agent";
const START_MSAT: u64 = 1_000_000_000;

/// An L402 API (`/paid`, 21 sats; `/free`) with the dev network's API beside it, on loopback.
struct Api {
    network: DevNetwork,
    keys: KeyRing,
    requests: AtomicU64,
    port: u16,
}

impl Api {
    async fn start() -> Arc<Api> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let api = Arc::new(Api {
            network: DevNetwork::ephemeral(1_000_000),
            keys: KeyRing::single(RootKey::new(secret)),
            requests: AtomicU64::new(0),
            port: listener.local_addr().unwrap().port(),
        });
        let router = Router::new()
            .route("/paid", axum::routing::any(paid))
            .route("/free", axum::routing::get(|| async { "free" }))
            .with_state(api.clone())
            .merge(api.network.router())
            .layer(axum::middleware::from_fn_with_state(api.clone(), count));
        tokio::spawn(async move { axum::serve(listener, router).await });
        api
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Nothing moved on the dev network and nothing reached the server.
    fn assert_untouched(&self) {
        assert_eq!(self.network.balance(PAYER), START_MSAT, "the agent paid");
        assert_eq!(self.network.paid_count(), 0, "an invoice was paid");
        assert_eq!(self.requests(), 0, "a request reached the server");
    }
}

async fn count(
    State(api): State<Arc<Api>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    api.requests.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn paid(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let verified = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|auth| {
            api.keys.verify_header(
                auth,
                &L402Request {
                    route: "paid",
                    now: now(),
                    conditions: &NoConditions,
                },
            )
        });
    if let Some(Ok(_)) = verified {
        return (StatusCode::OK, "{\"result\":\"paid\"}").into_response();
    }
    let invoice = api
        .network
        .create_invoice(&InvoiceRequest {
            amount_sats: 21,
            memo: "paid".into(),
            expiry_secs: 600,
        })
        .unwrap();
    let macaroon = api
        .keys
        .mint(&MintRequest {
            payment_hash: invoice.payment_hash,
            route: "paid",
            valid_until: now() + 600,
            conditions: &[],
        })
        .unwrap()
        .to_base64();
    let challenge = format!(
        "L402 macaroon=\"{macaroon}\", invoice=\"{}\"",
        invoice.bolt11
    );
    (
        StatusCode::PAYMENT_REQUIRED,
        [(header::WWW_AUTHENTICATE, challenge)],
    )
        .into_response()
}

/// `plannt mcp` as the CLI opens it: the wallet from its URI, the wallet's API known to the
/// client, the operator's policy; and an MCP client connected to it.
struct Session {
    client: RunningService<RoleClient, ()>,
    _dir: tempfile::TempDir,
}

async fn session(
    api: &Api,
    policy: Policy,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> Session {
    let dir = tempfile::tempdir().unwrap();
    let uri: BackendUri = format!("dev+http://127.0.0.1:{}?account={PAYER}", api.port)
        .parse()
        .unwrap();
    let wallet = plannt_lightning::open(&uri, &Context::new(dir.path().to_path_buf()))
        .unwrap()
        .wallet;
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let builder = Client::builder(wallet, ledger, policy).wallet_api(WalletApi::of(&uri));
    let server = PlanntMcp::new(
        configure(builder).build(),
        Config {
            confirm_above_sats: None,
            ..Config::default()
        },
    );
    let (server_side, client_side) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_side).await {
            let _ = running.waiting().await;
        }
    });
    Session {
        client: ().serve(client_side).await.unwrap(),
        _dir: dir,
    }
}

impl Session {
    async fn call(&self, tool: &str, arguments: Value) -> CallToolResult {
        let arguments = arguments.as_object().unwrap().clone();
        self.client
            .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
            .await
            .unwrap()
    }

    /// The checks of the latest refusals `spending` shows, oldest first.
    async fn refusals(&self) -> Vec<String> {
        let spending = self.call("spending", json!({})).await;
        let mut checks: Vec<String> = data(&spending)["recent_refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["check"].as_str().unwrap().to_string())
            .collect();
        checks.reverse();
        checks
    }
}

fn data(result: &CallToolResult) -> Value {
    result.structured_content.clone().unwrap_or_default()
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The result is an error with `code`, and says nothing was sent or paid.
fn assert_refused(result: &CallToolResult, code: &str) {
    assert_eq!(result.is_error, Some(true), "{}", text(result));
    let got = data(result);
    assert_eq!(got["error"], code, "{got}");
    assert_eq!(got["paid"], false, "{got}");
}

/// The arguments of a fetch that pays `invoice` through the dev network's own API.
fn dev_pay(url: &str, api: &Api) -> Value {
    let invoice = api
        .network
        .create_invoice(&InvoiceRequest {
            amount_sats: 600,
            memo: "the operator's".into(),
            expiry_secs: 600,
        })
        .unwrap();
    json!({
        "url": url,
        "method": "POST",
        "body": json!({"invoice": invoice.bolt11, "account": PAYER}).to_string(),
    })
}

fn policy() -> Policy {
    let mut policy = Policy::default();
    policy.budget.per_request_sats = 100;
    policy.budget.daily_sats = Some(500);
    policy.max_fee_sats = 0;
    policy
}

fn loopback() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

#[tokio::test]
async fn fetch_cannot_pay_from_the_wallets_own_api() {
    let api = Api::start().await;
    // The reported attack: allowed_hosts names another API, a 10-sat cap, a 50-sat daily
    // budget, and fetch asked to POST a 600-sat invoice to the dev wallet's own `pay`.
    let mut reported = Policy {
        allowed_hosts: vec!["api.example.com".into()],
        ..policy()
    };
    reported.budget.per_request_sats = 10;
    reported.budget.daily_sats = Some(50);
    let s = session(&api, reported, |b| b).await;
    let result = s
        .call("fetch", dev_pay(&api.url("/_plannt/dev/pay"), &api))
        .await;
    assert_refused(&result, "wallet_api");
    assert!(
        text(&result).contains("Nothing was sent or paid"),
        "{}",
        text(&result)
    );
    assert!(
        text(&result).contains("wallet's own API"),
        "{}",
        text(&result)
    );

    // Nor with the most open settings, in any spelling.
    let open = Policy {
        allow_private_networks: true,
        ..policy()
    };
    let s = session(&api, open, |b| b.resolve("alias.example", &[loopback()])).await;
    let port = api.port;
    for url in [
        format!("http://127.0.0.1:{port}/_plannt/dev/pay"),
        format!("http://localhost:{port}/_plannt/dev/pay"),
        format!("http://[::ffff:127.0.0.1]:{port}/_plannt/dev/pay"),
        format!("http://127.0.0.1:{port}/%5Fplannt/DEV/pay"),
        format!("http://127.0.0.1:{port}//_plannt/dev/./pay"),
        format!("http://alias.example:{port}/_plannt/dev/pay"),
    ] {
        let result = s.call("fetch", dev_pay(&url, &api)).await;
        assert_refused(&result, "wallet_api");
    }
    api.assert_untouched();
    // discover reads the server's catalog (not the wallet's), then refuses the dry run.
    let discover = s
        .call("discover", json!({"url": api.url("/_plannt/dev/balance")}))
        .await;
    assert_refused(&discover, "wallet_api");
    assert_eq!(api.requests(), 1, "only the catalog was asked for");
    assert_eq!(s.refusals().await, vec!["wallet_api"; 5]);

    // The API beside it is still paid as usual.
    let result = s.call("fetch", json!({"url": api.url("/paid")})).await;
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert_eq!(data(&result)["receipt"]["amount_sats"], 21);
}

#[tokio::test]
async fn fetch_and_discover_refuse_loopback_private_and_metadata_addresses_by_default() {
    let api = Api::start().await;
    let s = session(&api, policy(), |b| {
        b.resolve("rebind.example", &[loopback()])
    })
    .await;
    for url in [
        api.url("/paid"),
        api.url("/free"),
        format!("http://localhost:{}/free", api.port),
        format!("http://rebind.example:{}/free", api.port),
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".into(),
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/".into(),
        "http://10.0.0.1/".into(),
    ] {
        let result = s.call("fetch", json!({"url": url})).await;
        assert_refused(&result, "private_network");
        assert!(
            text(&result).contains("PLANNT_ALLOW_PRIVATE_NETWORKS"),
            "{}",
            text(&result)
        );
    }
    let discover = s.call("discover", json!({"url": api.url("/paid")})).await;
    assert_refused(&discover, "private_network");
    api.assert_untouched();
    assert_eq!(s.refusals().await, vec!["private_network"; 5]);

    // The operator's opt-in lets the same calls through.
    let open = Policy {
        allow_private_networks: true,
        ..policy()
    };
    let s = session(&api, open, |b| b).await;
    let discover = s.call("discover", json!({"url": api.url("/paid")})).await;
    assert_eq!(discover.is_error, Some(false), "{}", text(&discover));
    assert_eq!(data(&discover)["price_sats"], 21);
    let free = s.call("fetch", json!({"url": api.url("/free")})).await;
    assert_eq!(data(&free)["body"], "free");
}

#[tokio::test]
async fn allowed_hosts_bind_free_requests_and_discovery_too() {
    let api = Api::start().await;
    let s = session(
        &api,
        Policy {
            allowed_hosts: vec!["api.example.com".into()],
            allow_private_networks: true,
            ..policy()
        },
        |b| b,
    )
    .await;
    let fetch = s.call("fetch", json!({"url": api.url("/free")})).await;
    assert_refused(&fetch, "host_not_allowed");
    assert!(text(&fetch).contains("api.example.com"), "{}", text(&fetch));
    let discover = s.call("discover", json!({"url": api.url("/paid")})).await;
    assert_refused(&discover, "host_not_allowed");
    api.assert_untouched();
    assert_eq!(s.refusals().await, ["host_not_allowed", "host_not_allowed"]);
}

#[tokio::test]
async fn fetch_does_not_pay_a_challenge_over_plain_http_from_a_remote_host() {
    let api = Api::start().await;
    // `api.example` is not a loopback name, whatever address it has.
    let url = format!("http://api.example:{}/paid", api.port);
    let open = Policy {
        allow_private_networks: true,
        ..policy()
    };
    let s = session(&api, open.clone(), |b| {
        b.resolve("api.example", &[loopback()])
    })
    .await;
    let result = s.call("fetch", json!({"url": url})).await;
    assert_refused(&result, "refused");
    assert_eq!(data(&result)["check"], "insecure_http");
    assert!(
        text(&result).contains("PLANNT_ALLOW_INSECURE_HTTP"),
        "{}",
        text(&result)
    );
    assert_eq!(api.network.balance(PAYER), START_MSAT, "the agent paid");
    assert_eq!(api.network.paid_count(), 0);
    assert_eq!(s.refusals().await, ["insecure_http"]);

    // With the operator's opt-in it is paid.
    let allowed = Policy {
        allow_insecure_http: true,
        ..open
    };
    let s = session(&api, allowed, |b| b.resolve("api.example", &[loopback()])).await;
    let result = s.call("fetch", json!({"url": url})).await;
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert_eq!(api.network.balance(PAYER), START_MSAT - 21_000);
}

// Prepaid sessions, against the test kit's session server (draft-lightning-session-00, a
// charge beside each session), the agent's wallet on its dev network in the process.

/// A `PlanntMcp` whose client may open sessions of up to `deposit` sats with the loopback
/// host, paying from `network` (which issues the return invoices too).
async fn session_mcp(
    network: &DevNetwork,
    deposit: u64,
    confirm_above_sats: Option<u64>,
) -> Session {
    let dir = tempfile::tempdir().unwrap();
    let wallet = Arc::new(network.wallet(PAYER));
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let mut policy = Policy {
        allow_private_networks: true,
        ..policy()
    };
    policy.session_deposits = vec![("127.0.0.1".into(), deposit)];
    let client = Client::builder(wallet.clone(), ledger, policy)
        .return_invoices(wallet)
        .build();
    let server = PlanntMcp::new(
        client,
        Config {
            confirm_above_sats,
            ..Config::default()
        },
    );
    let (server_side, client_side) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_side).await {
            let _ = running.waiting().await;
        }
    });
    Session {
        client: ().serve(client_side).await.unwrap(),
        _dir: dir,
    }
}

#[tokio::test]
async fn fetch_spends_from_a_session_and_spending_shows_what_it_holds() {
    use plannt_testkit::sessions::{SessionScenario, SessionServer};
    let network = DevNetwork::ephemeral(1_000_000);
    let server = SessionServer::start(network.clone(), SessionScenario::Honest, 2, 100).await;
    let mcp = session_mcp(&network, 100, None).await;
    let url = server.url("/v1/thing").to_string();
    let first = mcp.call("fetch", json!({ "url": url })).await;
    assert_eq!(first.is_error, Some(false), "{}", text(&first));
    assert_eq!(data(&first)["receipt"]["session"]["action"], "open");
    assert_eq!(data(&first)["receipt"]["preimage"], "");
    let second = mcp.call("fetch", json!({ "url": url })).await;
    assert_eq!(data(&second)["receipt"]["session"]["action"], "bearer");
    assert_eq!(data(&second)["paid"], false);
    assert!(
        text(&second).contains("prepaid session"),
        "{}",
        text(&second)
    );
    let spending = data(&mcp.call("spending", json!({})).await);
    assert_eq!(spending["held_in_sessions_sats"], 96);
    assert_eq!(spending["open_sessions"][0]["balance_sats"], 96);
    assert_eq!(spending["open_sessions"][0]["deposit_sats"], 100);
    // Spent and balance as the server reported them with each answer, none estimated.
    assert_eq!(spending["open_sessions"][0]["spent_sats"], 4);
    assert_eq!(spending["open_sessions"][0]["estimated_debits"], 0);
    assert_eq!(network.balance(PAYER), START_MSAT - 100_000);
}

#[tokio::test]
async fn the_agent_cannot_open_a_session_beyond_the_policy() {
    use plannt_testkit::sessions::{SessionScenario, SessionServer};
    let network = DevNetwork::ephemeral(1_000_000);
    let server = SessionServer::start(network.clone(), SessionScenario::Honest, 2, 100).await;
    let url = server.url("/v1/thing").to_string();
    // The policy allows 50 sats a session with this host: whatever the agent asks, the 100-sat
    // deposit is not paid, and a charge is.
    let small = session_mcp(&network, 50, None).await;
    let r = small
        .call("fetch", json!({ "url": url, "max_sats": 100 }))
        .await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(data(&r)["receipt"]["session"], Value::Null);
    assert_eq!(data(&r)["receipt"]["amount_sats"], 2);
    // A deposit above what a human would be asked to confirm is never paid without one: a
    // charge is paid instead.
    let confirming = session_mcp(&network, 500, Some(50)).await;
    let r = confirming.call("fetch", json!({ "url": url })).await;
    assert_eq!(r.is_error, Some(false), "{}", text(&r));
    assert_eq!(data(&r)["receipt"]["session"], Value::Null);
    let spending = data(&confirming.call("spending", json!({})).await);
    assert_eq!(spending["open_sessions"].as_array().unwrap().len(), 0);
    assert_eq!(network.balance(PAYER), START_MSAT - 4_000);
    assert_eq!(
        server
            .shared
            .opened
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}
