//! The payment page: a browser's navigation gets the 402 as HTML (an agent's `Accept` still gets
//! today's JSON), the page's poll endpoint hands the credential to the holder of the 402's
//! macaroon alone once the invoice is paid, in a cookie the paywall spends like any credential.
//! docs/security.md ("The payment page and its cookie") cites these tests.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap as AxumHeaders;
use axum::routing::any;
use plannt_gateway::l402::{KeyRing, PaymentHash, RootKey};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{
    Answer, Challenge, TestGateway, client_from, config, keeping_config, mint, now, serve_upstream,
    start, upstream_route,
};

/// What Chromium sends when it navigates to a page.
pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

/// The facts a page carries in its `data-*` attributes.
#[derive(Debug)]
struct Page {
    macaroon: String,
    invoice: String,
    payment_hash: String,
    html: String,
}

impl Page {
    fn of(answer: &Answer) -> Page {
        assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{answer:?}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let attribute = |name: &str| {
            let pattern = format!(r#"{name}="([^"]*)""#);
            regex::Regex::new(&pattern)
                .unwrap()
                .captures(&answer.text)
                .unwrap_or_else(|| panic!("no {name} in the page"))[1]
                .to_string()
        };
        Page {
            macaroon: attribute("data-macaroon"),
            invoice: attribute("data-invoice"),
            payment_hash: attribute("data-payment-hash"),
            html: answer.text.clone(),
        }
    }
}

async fn get_with(
    gateway: &TestGateway,
    path: &str,
    accept: Option<&str>,
    cookie: Option<&str>,
) -> Answer {
    let mut request = gateway.http.get(gateway.url(path));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    Answer::read(request.send().await.unwrap()).await
}

async fn browse(gateway: &TestGateway, path: &str, cookie: Option<&str>) -> Answer {
    get_with(gateway, path, Some(BROWSER_ACCEPT), cookie).await
}

/// Asks the poll endpoint about `hash`, presenting `macaroon` if given.
async fn poll(
    http: &reqwest::Client,
    gateway: &TestGateway,
    hash: &str,
    macaroon: Option<&str>,
) -> Answer {
    let mut request = http.get(gateway.url(&format!("/_plannt/pay/{hash}")));
    if let Some(macaroon) = macaroon {
        request = request.header("plannt-macaroon", macaroon);
    }
    Answer::read(request.send().await.unwrap()).await
}

/// The `name=value` of a `Set-Cookie` answer, with its attributes.
fn set_cookie(answer: &Answer) -> (String, Vec<String>) {
    let value = answer.header("set-cookie").expect("a Set-Cookie");
    let mut parts = value.split(';').map(|p| p.trim().to_string());
    let pair = parts.next().unwrap();
    (pair, parts.collect())
}

/// Opens the page for `path`, pays its invoice and polls: the cookie pair and the page.
async fn paid_cookie(gateway: &TestGateway, path: &str) -> (String, Page) {
    let page = Page::of(&browse(gateway, path, None).await);
    gateway.pay(&page.invoice);
    let answer = poll(
        &gateway.http,
        gateway,
        &page.payment_hash,
        Some(&page.macaroon),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    (set_cookie(&answer).0, page)
}

#[tokio::test]
async fn an_agent_gets_todays_402_and_a_browser_the_page_with_the_same_challenges() {
    let gateway = start(config("memory")).await;
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("application/json, text/html"),
    ] {
        let answer = get_with(&gateway, "/v1/demo", accept, None).await;
        let challenge = Challenge::of(&answer);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(answer.header("content-security-policy").is_none());
        assert_eq!(answer.json["macaroon"], challenge.macaroon.as_str());
        assert_eq!(answer.json["amount_sats"], 21);
    }

    let agent = get_with(&gateway, "/v1/demo", Some("*/*"), None).await;
    let browser = browse(&gateway, "/v1/demo", None).await;
    let page = Page::of(&browser);
    // The same headers an agent gets, and the same shape of challenge in each dialect.
    for name in ["cache-control", "payment-required", "www-authenticate"] {
        assert_eq!(
            browser.headers.get_all(name).iter().count(),
            agent.headers.get_all(name).iter().count(),
            "{name}"
        );
    }
    assert_eq!(browser.header("cache-control"), Some("no-store"));
    let l402 = browser
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("L402 "))
        .unwrap()
        .to_string();
    assert_eq!(
        l402,
        format!(
            "L402 macaroon=\"{}\", invoice=\"{}\"",
            page.macaroon, page.invoice
        ),
        "the page shows the invoice and macaroon of its own challenge"
    );
    let csp = browser.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert_eq!(browser.header("x-content-type-options"), Some("nosniff"));
    // What the page shows: the price, the description, the QR code, the link.
    assert!(page.html.contains(">21 sats</p>"));
    assert!(page.html.contains("Issues a 402 with an invoice"));
    assert!(page.html.contains("<svg class=\"qr\""));
    assert!(
        page.html
            .contains(&format!("href=\"lightning:{}\"", page.invoice))
    );
    let hash = plannt_gateway::lightning::decode_invoice(&page.invoice)
        .unwrap()
        .payment_hash;
    assert_eq!(page.payment_hash, hex::encode(hash));

    // A POST is never a navigation to a page; an upstream's own 402 is never turned into one.
    let post = gateway
        .http
        .post(gateway.url("/v1/demo"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_ne!(
        post.headers().get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
}

#[tokio::test]
async fn an_upstreams_own_402_reaches_a_browser_as_the_upstream_wrote_it() {
    let upstream = serve_upstream(Router::new().fallback(any(|| async {
        (StatusCode::PAYMENT_REQUIRED, "the upstream's own 402")
    })))
    .await;
    let mut config = config("memory");
    config.routes = vec![upstream_route(
        "api",
        "/api/",
        5,
        &format!("http://{upstream}"),
    )];
    let gateway = start(config).await;
    let (cookie, _) = paid_cookie(&gateway, "/api/x").await;
    let answer = browse(&gateway, "/api/x", Some(&cookie)).await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(answer.text, "the upstream's own 402");
    assert!(answer.header("content-security-policy").is_none());
}

#[tokio::test]
async fn paying_the_page_sets_a_cookie_that_buys_one_answer_and_its_kept_replay() {
    let gateway = start(keeping_config("memory")).await;
    let page = Page::of(&browse(&gateway, "/v1/demo", None).await);

    let open = poll(
        &gateway.http,
        &gateway,
        &page.payment_hash,
        Some(&page.macaroon),
    )
    .await;
    assert_eq!(open.status, StatusCode::ACCEPTED, "{open:?}");
    assert_eq!(open.json, json!({ "paid": false }));
    assert!(open.header("set-cookie").is_none());

    let preimage = gateway.pay(&page.invoice);
    let paid = poll(
        &gateway.http,
        &gateway,
        &page.payment_hash,
        Some(&page.macaroon),
    )
    .await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    assert_eq!(
        paid.json,
        json!({ "paid": true }),
        "no credential in the body"
    );
    assert_eq!(paid.header("cache-control"), Some("no-store"));
    let (pair, attributes) = set_cookie(&paid);
    assert_eq!(
        pair,
        format!("plannt-demo={}:{}", page.macaroon, preimage.to_hex())
    );
    for attribute in ["Path=/", "HttpOnly", "SameSite=Strict"] {
        assert!(attributes.iter().any(|a| a == attribute), "{attributes:?}");
    }
    assert!(
        !attributes.iter().any(|a| a == "Secure"),
        "plain HTTP: no Secure"
    );
    let max_age: u64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age > 3600 && max_age <= 4200,
        "until the token's expiry: {max_age}"
    );

    // The page loads again with the cookie: the resource, the token spent.
    let cookie = format!("theme=dark; {pair}");
    let answer = browse(&gateway, "/v1/demo", Some(&cookie)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.json, json!({ "result": "verified" }));
    assert_eq!(answer.header("x-l402"), Some("spent"));
    // A reload of the same request gets the kept answer, nothing more.
    let reload = browse(&gateway, "/v1/demo", Some(&cookie)).await;
    assert_eq!(reload.status, StatusCode::OK, "{reload:?}");
    assert_eq!(reload.header("x-l402"), Some("replayed"));
    assert_eq!(reload.json, answer.json);
    // Any other request with the spent cookie gets a new page, saying why.
    let other = browse(&gateway, "/v1/demo?again=1", Some(&cookie)).await;
    let again = Page::of(&other);
    assert_eq!(other.header("x-l402-reason"), Some("spent"));
    assert!(again.html.contains("already used"));
    assert_ne!(again.invoice, page.invoice);
    // An agent presenting the same cookie is refused as spent, in JSON.
    let agent = get_with(&gateway, "/v1/demo?again=1", None, Some(&cookie)).await;
    assert_eq!(agent.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(agent.reason(), Some("spent"));
}

#[tokio::test]
async fn the_cookie_is_single_use_without_kept_answers_too() {
    let gateway = start(config("memory")).await;
    let (cookie, _) = paid_cookie(&gateway, "/v1/demo").await;
    let first = get_with(&gateway, "/v1/demo", None, Some(&cookie)).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    for _ in 0..3 {
        let again = get_with(&gateway, "/v1/demo", None, Some(&cookie)).await;
        assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED, "{again:?}");
        assert_eq!(again.reason(), Some("spent"));
    }
}

#[tokio::test]
async fn only_the_holder_of_the_macaroon_gets_the_credential() {
    let gateway = start(config("memory")).await;
    let page = Page::of(&browse(&gateway, "/v1/demo", None).await);
    let other = Page::of(&browse(&gateway, "/v1/demo", None).await);
    // Paid: whoever knows the invoice and its payment hash (both public) tries to collect it.
    gateway.pay(&page.invoice);
    let hash = PaymentHash::from_hex(&page.payment_hash).unwrap();
    let foreign = mint(
        &KeyRing::single(RootKey::new([9; 32])),
        "demo",
        hash,
        now() + 600,
    );
    let expired = mint(&crate::support::keys(), "demo", hash, now() - 1);
    let http = &gateway.http;
    for (macaroon, status, reason) in [
        (None, StatusCode::UNAUTHORIZED, "macaroon_missing"),
        (Some("garbage"), StatusCode::UNAUTHORIZED, "bad_macaroon"),
        (
            Some(other.macaroon.as_str()),
            StatusCode::FORBIDDEN,
            "wrong_payment_hash",
        ),
        (
            Some(foreign.as_str()),
            StatusCode::UNAUTHORIZED,
            "bad_macaroon",
        ),
        (Some(expired.as_str()), StatusCode::GONE, "expired"),
    ] {
        let answer = poll(http, &gateway, &page.payment_hash, macaroon).await;
        assert_eq!(answer.status, status, "{macaroon:?}: {answer:?}");
        assert_eq!(answer.reason(), Some(reason), "{answer:?}");
        assert!(answer.header("set-cookie").is_none(), "{answer:?}");
        assert!(!answer.text.contains("plannt-demo="), "{answer:?}");
    }
    // Not a payment hash; not a GET.
    let answer = poll(http, &gateway, "not-a-hash", Some(&page.macaroon)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let post = http
        .post(gateway.url(&format!("/_plannt/pay/{}", page.payment_hash)))
        .header("plannt-macaroon", &page.macaroon)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(post.headers().get("set-cookie").is_none());
    // The holder of the macaroon gets it.
    let answer = poll(http, &gateway, &page.payment_hash, Some(&page.macaroon)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[tokio::test]
async fn polls_are_rate_limited_per_client_address() {
    let gateway = start(config("memory")).await;
    let page = Page::of(&browse(&gateway, "/v1/demo", None).await);
    let poller = client_from(Ipv4Addr::LOCALHOST);
    let neighbour = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let mut limited = None;
    for i in 0..40 {
        let answer = poll(&poller, &gateway, &page.payment_hash, Some(&page.macaroon)).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, answer));
            break;
        }
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    }
    let (i, answer) = limited.expect("polls are limited");
    assert!(i >= 10, "a burst of 10 first, got {i}");
    assert!(answer.header("retry-after").is_some());
    // Without a macaroon the limit still counts: nobody floods the endpoint for free.
    let bare = poll(&poller, &gateway, &page.payment_hash, None).await;
    assert_eq!(bare.status, StatusCode::TOO_MANY_REQUESTS);
    let other = poll(
        &neighbour,
        &gateway,
        &page.payment_hash,
        Some(&page.macaroon),
    )
    .await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{other:?}");
}

#[tokio::test]
async fn a_cookie_for_one_route_does_not_open_another() {
    let gateway = start(config("memory")).await;
    let (cookie, _) = paid_cookie(&gateway, "/v1/demo").await;
    // Under its own name, another route does not read it: a plain challenge.
    let data = get_with(&gateway, "/v1/data", None, Some(&cookie)).await;
    assert_eq!(data.status, StatusCode::PAYMENT_REQUIRED, "{data:?}");
    assert_eq!(data.reason(), None);
    // Renamed for the other route, its macaroon says which route it buys.
    let value = cookie.strip_prefix("plannt-demo=").unwrap();
    let renamed = format!("plannt-data={value}");
    let data = get_with(&gateway, "/v1/data", None, Some(&renamed)).await;
    assert_eq!(data.status, StatusCode::PAYMENT_REQUIRED, "{data:?}");
    assert_eq!(data.reason(), Some("wrong_route"));
    // And it still buys its own route, once.
    let demo = get_with(&gateway, "/v1/demo", None, Some(&cookie)).await;
    assert_eq!(demo.status, StatusCode::OK, "{demo:?}");
}

#[tokio::test]
async fn an_upstream_never_sees_a_credential_cookie() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let upstream = serve_upstream(Router::new().fallback(any(move |headers: AxumHeaders| {
        let record = record.clone();
        async move {
            let cookies: Vec<String> = headers
                .get_all("cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            record.lock().unwrap().push(cookies.join(" | "));
            "ok"
        }
    })))
    .await;
    let mut config = config("memory");
    let mut public = upstream_route("open", "/open/", 1, &format!("http://{upstream}"));
    public.price_sats = None;
    config.routes = vec![
        upstream_route("api", "/api/", 5, &format!("http://{upstream}")),
        public,
    ];
    let gateway = start(config).await;
    let (cookie, _) = paid_cookie(&gateway, "/api/x").await;
    let sent = format!("session=1; {cookie}; theme=dark");
    let paid = browse(&gateway, "/api/x", Some(&sent)).await;
    assert_eq!(paid.status, StatusCode::OK, "{paid:?}");
    let open = browse(&gateway, "/open/y", Some(&sent)).await;
    assert_eq!(open.status, StatusCode::OK, "{open:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, ["session=1; theme=dark", "session=1; theme=dark"]);
}

#[tokio::test(flavor = "current_thread")]
async fn no_credential_of_the_page_is_ever_logged() {
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // This thread runs the gateway and the client (a current-thread runtime): every event of
    // both reaches the log.
    let _guard = tracing::subscriber::set_default(subscriber);
    let gateway = start(keeping_config("memory")).await;
    tracing::info!("the log is captured");
    let page = Page::of(&browse(&gateway, "/v1/demo", None).await);
    let _ = poll(&gateway.http, &gateway, &page.payment_hash, None).await;
    let preimage = gateway.pay(&page.invoice);
    let paid = poll(
        &gateway.http,
        &gateway,
        &page.payment_hash,
        Some(&page.macaroon),
    )
    .await;
    let (cookie, _) = set_cookie(&paid);
    for _ in 0..2 {
        let answer = browse(&gateway, "/v1/demo", Some(&cookie)).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    let spent = browse(&gateway, "/v1/demo?other", Some(&cookie)).await;
    assert_eq!(spent.status, StatusCode::PAYMENT_REQUIRED);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("the log is captured"), "{text}");
    assert!(!text.contains(&preimage.to_hex()), "the preimage is logged");
    assert!(!text.contains(&page.macaroon), "the macaroon is logged");
}

#[tokio::test]
async fn the_cookie_is_secure_when_a_trusted_proxy_says_the_request_came_over_tls() {
    let mut config = config("memory");
    config.trusted_proxies = vec!["127.0.0.1".into()];
    let gateway = start(config).await;
    let page = Page::of(&browse(&gateway, "/v1/demo", None).await);
    gateway.pay(&page.invoice);
    let ask = |proxy: &'static str, proto: &'static str| {
        let http = client_from(proxy.parse().unwrap());
        let url = gateway.url(&format!("/_plannt/pay/{}", page.payment_hash));
        let macaroon = page.macaroon.clone();
        async move {
            let response = http
                .get(url)
                .header("plannt-macaroon", macaroon)
                .header("x-forwarded-proto", proto)
                .send()
                .await
                .unwrap();
            Answer::read(response).await
        }
    };
    let behind_tls = ask("127.0.0.1", "https").await;
    assert!(set_cookie(&behind_tls).1.iter().any(|a| a == "Secure"));
    // Anyone else saying so is not believed.
    let claimed = ask("127.0.0.2", "https").await;
    assert!(!set_cookie(&claimed).1.iter().any(|a| a == "Secure"));
}
