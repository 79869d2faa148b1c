//! Attacks on the paying client, each as a named test against real components: a hostile L402
//! server on loopback with the dev network's HTTP API beside it, a `dev+http://` wallet that pays
//! through that API, and a SQLite ledger. Each asserts what did not happen: no sat moved, no
//! request reached the server (its own counter), and the ledger says why.
//!
//! - budget windows dodged by failing an invoice once and serving it again later;
//! - a request to the wallet's own API (paying from the operator's account), in every spelling,
//!   through another name, and through a redirect;
//! - `allowed_hosts` checked only when a 402 arrives;
//! - loopback, private and cloud-metadata addresses, literal or behind a name;
//! - a challenge injected into plain `http` from a host that is not loopback.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use crate::support::{Hostile, Scenario, open_policy};
use axum::http::{StatusCode, header};
use plannt_client::l402::Challenge;
use plannt_client::lightning::invoice::unix_now;
use plannt_client::lightning::{BackendUri, Context, InvoiceRequest, decode_invoice};
use plannt_client::{
    Client, ClientError, Ledger, Options, Outcome, Policy, Refusal, Request, Reservation, Reserved,
    WalletApi, Window,
};

const PAYER: &str = "payer";
const START_MSAT: u64 = 1_000_000_000;

/// A client paying through the server's dev network API (`dev+http://…?account=payer`), as
/// `plannt get` and `plannt mcp` open it: the wallet's API is known to the client.
struct Payer {
    client: Client,
    ledger: Ledger,
    _dir: tempfile::TempDir,
}

fn payer(
    server: &Hostile,
    policy: Policy,
    configure: impl FnOnce(plannt_client::ClientBuilder) -> plannt_client::ClientBuilder,
) -> Payer {
    let dir = tempfile::tempdir().unwrap();
    let uri: BackendUri = format!("dev+http://{}?account={PAYER}", server.addr)
        .parse()
        .unwrap();
    let wallet = plannt_client::lightning::open(&uri, &Context::new(dir.path().to_path_buf()))
        .unwrap()
        .wallet;
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let builder = Client::builder(wallet, ledger.clone(), policy).wallet_api(WalletApi::of(&uri));
    Payer {
        client: configure(builder).build(),
        ledger,
        _dir: dir,
    }
}

fn refusal(outcome: Result<Outcome, ClientError>) -> Refusal {
    match outcome {
        Err(ClientError::Refused(refusal)) => refusal,
        Err(other) => panic!("expected a refusal, got the error {other}"),
        Ok(Outcome::DryRun(quote)) => panic!("expected a refusal, got a quote of {quote:?}"),
        Ok(Outcome::Response(r)) => panic!("expected a refusal, got HTTP {}", r.status),
    }
}

/// Nothing moved on the dev network and nothing reached the server.
fn assert_untouched(server: &Hostile) {
    assert_eq!(
        server.network().balance(PAYER),
        START_MSAT,
        "the payer paid"
    );
    assert_eq!(server.network().paid_count(), 0, "an invoice was paid");
    assert_eq!(
        server.shared.requests.load(Ordering::SeqCst),
        0,
        "a request reached the server"
    );
}

fn checks(ledger: &Ledger) -> Vec<String> {
    let mut checks: Vec<String> = ledger
        .refusals(100)
        .unwrap()
        .into_iter()
        .map(|r| r.check)
        .collect();
    checks.reverse();
    checks
}

/// A POST to the dev network's `pay`, for a 600-sat invoice of the network: what an agent
/// told to "fetch" it would send.
fn dev_pay(server: &Hostile, url: &str) -> Request {
    let invoice = server
        .network()
        .create_invoice(&InvoiceRequest {
            amount_sats: 600,
            memo: "not for the agent".into(),
            expiry_secs: 600,
        })
        .unwrap();
    let body = serde_json::json!({"invoice": invoice.bolt11, "account": PAYER});
    let mut request = Request::get(url.parse().unwrap());
    request.method = reqwest::Method::POST;
    request
        .headers
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    request.body = body.to_string().into();
    request
}

/// A server on 127.0.0.1 that redirects every request to `target` with a 307 (the method and
/// body follow).
async fn redirector(target: String) -> String {
    let router = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/start")
}

fn loopback() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

#[tokio::test]
async fn a_failed_invoice_served_again_later_is_charged_in_the_window_it_is_paid() {
    // The payee serves one long-lived 300-sat invoice; the hourly budget is 400.
    let server = Hostile::start(Scenario::Fixed, 300).await;
    let mut policy = open_policy(500);
    policy.budget.hourly_sats = Some(400);
    let p = payer(&server, policy.clone(), |b| b);

    // Two hours ago the payer reserved it and the payee failed the payment.
    let raw = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer = raw.get(server.url("/paid")).send().await.unwrap();
    let header = answer.headers()["www-authenticate"].to_str().unwrap();
    let challenge = Challenge::parse([header]).unwrap();
    let invoice = decode_invoice(&challenge.invoice).unwrap();
    let then = unix_now() - 7_200;
    let origin = format!("http://{}", server.addr);
    let macaroon = challenge.macaroon.to_base64();
    let reservation = Reservation {
        dialect: plannt_client::Dialect::L402,
        payment_hash: &invoice.payment_hash,
        origin: &origin,
        path: "/paid",
        bolt11: &challenge.invoice,
        macaroon: &macaroon,
        amount_msat: 300_000,
        max_fee_msat: 0,
    };
    assert_eq!(
        p.ledger
            .reserve(&reservation, &policy.budget, then)
            .unwrap(),
        Ok(Reserved::New)
    );
    p.ledger.mark_failed(&invoice.payment_hash, then).unwrap();

    // Now it is served again and paid: it counts in this hour, not two hours ago.
    let paid = p
        .client
        .send(&Request::get(server.url("/paid")), &Options::default())
        .await;
    let Ok(Outcome::Response(response)) = paid else {
        panic!("the first payment should go through");
    };
    assert_eq!(response.status, 200);
    assert_eq!(response.receipt.as_ref().unwrap().amount_sats, 300);
    let hour = &p.ledger.usage(&policy.budget, unix_now()).unwrap()[0];
    assert_eq!((hour.window, hour.used_sats), (Window::Hour, 300));
    // The receipt still says when the invoice was first tried.
    assert_eq!(p.ledger.recent(1).unwrap()[0].created_at, then);

    // A second 300 sats this hour would make 600 under a budget of 400.
    server.shared.set_scenario(Scenario::Honest);
    let over = p
        .client
        .send(&Request::get(server.url("/paid")), &Options::default())
        .await;
    match over {
        Err(ClientError::OverBudget(o)) => {
            assert_eq!((o.window, o.left_sats), (Window::Hour, 100));
            assert!(o.renews_in_secs.is_some_and(|s| s > 3_000), "{o:?}");
        }
        Err(e) => panic!("expected over budget, got {e}"),
        Ok(_) => panic!("expected over budget, got an answer: the window was dodged"),
    }
    assert_eq!(server.network().balance(PAYER), START_MSAT - 300_000);
}

#[tokio::test]
async fn the_wallets_own_api_is_never_reached_in_any_spelling() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    // The most open policy there is: any host, private networks allowed.
    let p = payer(&server, open_policy(1_000), |b| b);
    let port = server.addr.port();
    let spellings = [
        format!("http://127.0.0.1:{port}/_plannt/dev/pay"),
        format!("http://localhost:{port}/_plannt/dev/pay"),
        format!("http://127.0.0.2:{port}/_plannt/dev/pay"),
        format!("http://[::ffff:127.0.0.1]:{port}/_plannt/dev/pay"),
        format!("http://0.0.0.0:{port}/_plannt/dev/pay"),
        format!("http://2130706433:{port}/_plannt/dev/pay"),
        format!("http://127.0.0.1:{port}/_PLANNT/dev/pay"),
        format!("http://127.0.0.1:{port}//_plannt/dev/pay"),
        format!("http://127.0.0.1:{port}/%5Fplannt/dev/%70ay"),
        format!("http://127.0.0.1:{port}/v1/%2e%2e/_plannt/dev/pay"),
        format!("http://127.0.0.1:{port}/_plannt%2Fdev%2Fpay"),
    ];
    for url in &spellings {
        let refused = refusal(
            p.client
                .send(&dev_pay(&server, url), &Options::default())
                .await,
        );
        assert_eq!(refused.check(), "wallet_api", "{url}: {refused}");
        assert!(refused.to_string().contains("/_plannt/dev/"), "{refused}");
    }
    // A dry run and a plain send are refused the same way.
    let url = &spellings[0];
    let dry = Options {
        dry_run: true,
        ..Options::default()
    };
    assert_eq!(
        refusal(p.client.send(&dev_pay(&server, url), &dry).await).check(),
        "wallet_api"
    );
    match p.client.send_unpaid(&dev_pay(&server, url)).await {
        Err(ClientError::Refused(r)) => assert_eq!(r.check(), "wallet_api"),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(r) => panic!("expected a refusal, got HTTP {}", r.status),
    }
    assert_untouched(&server);
    assert_eq!(checks(&p.ledger), vec!["wallet_api"; spellings.len() + 2]);

    // The gateway on the same host and port is still paid as usual.
    let Ok(Outcome::Response(answer)) = p
        .client
        .send(&Request::get(server.url("/paid")), &Options::default())
        .await
    else {
        panic!("the gateway beside the dev API must stay reachable");
    };
    assert_eq!(answer.status, 200);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 21_000);
}

#[tokio::test]
async fn the_wallets_own_api_is_not_reached_through_another_name_or_a_redirect() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let port = server.addr.port();
    // `wallet.example` resolves to the wallet's address: a name the URL check cannot see through.
    // (Plain http from it is allowed, so the gateway's paths can be paid under that name below.)
    let mut policy = open_policy(1_000);
    policy.allow_insecure_http = true;
    let p = payer(&server, policy, |b| {
        b.follow_redirects(5)
            .resolve("wallet.example", &[loopback()])
    });
    let alias = format!("http://wallet.example:{port}/_plannt/dev/pay");
    let refused = refusal(
        p.client
            .send(&dev_pay(&server, &alias), &Options::default())
            .await,
    );
    assert_eq!(refused.check(), "wallet_api", "{refused}");
    assert!(refused.to_string().contains("127.0.0.1"), "{refused}");

    // A redirect to the wallet's API, by its address or by the other name, is refused at the hop.
    for target in [
        format!("http://127.0.0.1:{port}/_plannt/dev/pay"),
        format!("http://localhost:{port}/_plannt/dev/pay"),
        alias.clone(),
    ] {
        let start = redirector(target.clone()).await;
        let refused = refusal(
            p.client
                .send(&dev_pay(&server, &start), &Options::default())
                .await,
        );
        assert_eq!(refused.check(), "wallet_api", "{target}: {refused}");
    }
    assert_untouched(&server);
    assert_eq!(checks(&p.ledger), vec!["wallet_api"; 4]);

    // The other name still reaches the gateway's own paths.
    let Ok(Outcome::Response(answer)) = p
        .client
        .send(
            &Request::get(
                format!("http://wallet.example:{port}/paid")
                    .parse()
                    .unwrap(),
            ),
            &Options::default(),
        )
        .await
    else {
        panic!("the gateway's paths stay reachable under any name");
    };
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn allowed_hosts_bind_every_request_before_anything_is_sent() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let mut policy = open_policy(1_000);
    policy.allowed_hosts = vec!["api.example.com".into()];
    let p = payer(&server, policy, |b| b.follow_redirects(5));
    let dry = Options {
        dry_run: true,
        ..Options::default()
    };
    let url = server.url("/free");
    for options in [&Options::default(), &dry] {
        let refused = refusal(p.client.send(&Request::get(url.clone()), options).await);
        assert_eq!(refused, Refusal::HostNotAllowed("127.0.0.1".into()));
    }
    assert!(matches!(
        p.client.send_unpaid(&Request::get(url.clone())).await,
        Err(ClientError::Refused(Refusal::HostNotAllowed(_)))
    ));
    // The error says the request was not sent.
    let error = p
        .client
        .send(&Request::get(url), &Options::default())
        .await
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .starts_with("refused to send the request: 127.0.0.1 is not an allowed host"),
        "{error}"
    );
    assert_untouched(&server);
    assert_eq!(checks(&p.ledger), vec!["host_not_allowed"; 4]);
}

#[tokio::test]
async fn a_redirect_to_a_host_not_allowed_is_never_followed() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let mut policy = open_policy(1_000);
    // The redirector is asked for as `localhost`, which is allowed; it sends the client on to
    // 127.0.0.1, which is not.
    policy.allowed_hosts = vec!["localhost".into()];
    let p = payer(&server, policy, |b| b.follow_redirects(5));
    let start = redirector(server.url("/paid").to_string()).await;
    let start = start.replace("127.0.0.1", "localhost");
    let refused = refusal(
        p.client
            .send(&Request::get(start.parse().unwrap()), &Options::default())
            .await,
    );
    assert_eq!(refused, Refusal::HostNotAllowed("127.0.0.1".into()));
    assert_untouched(&server);
    let recorded = &p.ledger.refusals(1).unwrap()[0];
    assert_eq!(
        (recorded.check.as_str(), recorded.origin.as_str()),
        (
            "host_not_allowed",
            format!("http://{}", server.addr).as_str()
        )
    );
}

#[tokio::test]
async fn loopback_private_and_metadata_addresses_are_refused_before_anything_is_sent() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let mut policy = open_policy(1_000);
    policy.allow_private_networks = false;
    // `rebind.example` answers DNS with a loopback address (as a rebinding name would).
    let p = payer(&server, policy, |b| {
        b.follow_redirects(5)
            .resolve("rebind.example", &[loopback()])
            .resolve(
                "both.example",
                &["169.254.169.254".parse().unwrap(), loopback()],
            )
    });
    let port = server.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/paid"),
        format!("http://localhost:{port}/paid"),
        format!("http://[::1]:{port}/paid"),
        format!("http://[::ffff:127.0.0.1]:{port}/paid"),
        format!("http://[::ffff:7f00:1]:{port}/paid"),
        format!("http://0.0.0.0:{port}/paid"),
        format!("http://rebind.example:{port}/paid"),
        format!("http://both.example:{port}/paid"),
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://192.168.1.1/".to_string(),
        "http://100.64.0.1/".to_string(),
    ] {
        let refused = refusal(
            p.client
                .send(&Request::get(url.parse().unwrap()), &Options::default())
                .await,
        );
        assert_eq!(refused.check(), "private_network", "{url}: {refused}");
        assert!(
            refused.to_string().contains("allow_private_networks"),
            "{refused}"
        );
    }
    let refused = refusal(
        p.client
            .send(
                &Request::get(
                    format!("http://rebind.example:{port}/paid")
                        .parse()
                        .unwrap(),
                ),
                &Options::default(),
            )
            .await,
    );
    assert!(
        refused
            .to_string()
            .contains("rebind.example is 127.0.0.1, a loopback address"),
        "{refused}"
    );
    assert_untouched(&server);
    assert_eq!(checks(&p.ledger), vec!["private_network"; 14]);
}

#[tokio::test]
async fn a_challenge_over_plain_http_from_a_remote_host_is_not_paid() {
    let server = Hostile::start(Scenario::Honest, 21).await;
    let port = server.addr.port();
    // `api.example` is not a loopback name, whatever address it has.
    let remote: url::Url = format!("http://api.example:{port}/paid").parse().unwrap();
    let p = payer(&server, open_policy(1_000), |b| {
        b.resolve("api.example", &[loopback()])
    });
    for options in [
        Options::default(),
        Options {
            dry_run: true,
            ..Options::default()
        },
    ] {
        let refused = refusal(p.client.send(&Request::get(remote.clone()), &options).await);
        assert_eq!(refused, Refusal::InsecureHttp("api.example".into()));
        assert!(
            refused.to_string().contains("allow_insecure_http"),
            "{refused}"
        );
    }
    assert_eq!(
        server.network().balance(PAYER),
        START_MSAT,
        "the payer paid"
    );
    assert_eq!(server.network().paid_count(), 0);
    assert_eq!(server.shared.paid_requests.load(Ordering::SeqCst), 0);
    assert!(
        p.ledger.recent(10).unwrap().is_empty(),
        "a payment was reserved"
    );
    assert_eq!(checks(&p.ledger), ["insecure_http", "insecure_http"]);

    // The same challenge from a loopback host is paid, and so is this one once the operator
    // allows plain http.
    let Ok(Outcome::Response(answer)) = p
        .client
        .send(&Request::get(server.url("/paid")), &Options::default())
        .await
    else {
        panic!("a loopback server over http is paid");
    };
    assert_eq!(answer.status, 200);
    let mut policy = open_policy(1_000);
    policy.allow_insecure_http = true;
    let allowed = payer(&server, policy, |b| b.resolve("api.example", &[loopback()]));
    let Ok(Outcome::Response(answer)) = allowed
        .client
        .send(&Request::get(remote), &Options::default())
        .await
    else {
        panic!("allow_insecure_http lets it be paid");
    };
    assert_eq!(answer.status, 200);
    assert_eq!(server.network().balance(PAYER), START_MSAT - 42_000);
}
