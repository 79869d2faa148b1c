//! A gateway on a loopback port, a client, the dev network to pay with, and small upstreams.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use plannt_gateway::l402::{Identifier, KeyRing, Macaroon, PaymentHash, Preimage, RootKey};
use plannt_gateway::lightning::dev::DevNetwork;
use plannt_serve::config::{MatchKind, RouteConfig};
use plannt_serve::{Config, Gateway};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The root key every test gateway uses, so a test can mint tokens of its own with it.
pub const ROOT_KEY: &str = "5f9c1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678ab";

/// The ring of [`ROOT_KEY`], exactly as the gateway builds it.
pub fn keys() -> KeyRing {
    KeyRing::from_hex(ROOT_KEY).unwrap()
}

/// The id the gateway gives [`ROOT_KEY`]: its fingerprint.
pub fn key_id() -> String {
    RootKey::from_hex(ROOT_KEY)
        .unwrap()
        .fingerprint()
        .to_string()
}

/// A configuration for tests: the given store, the fixed root key, no challenge rate limit, and
/// no kept answers: these tests check what the spent set alone does with a credential presented
/// again (refused as spent). [`keeping_config`] turns keeping on, as it is by default.
pub fn config(store: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: store.parse().unwrap(),
        root_key: Some(ROOT_KEY.to_string()),
        challenges_per_second: 0.0,
        keep_answer_bytes: 0,
        ..Config::default()
    }
}

/// [`config`] with answers kept as `plannt serve` keeps them by default.
pub fn keeping_config(store: &str) -> Config {
    Config {
        keep_answer_bytes: Config::default().keep_answer_bytes,
        ..config(store)
    }
}

/// A priced route forwarded to `upstream`, matching every path under `prefix`.
pub fn upstream_route(id: &str, prefix: &str, price_sats: u64, upstream: &str) -> RouteConfig {
    RouteConfig {
        id: Some(id.to_string()),
        method: None,
        path: prefix.to_string(),
        matching: MatchKind::Prefix,
        price_sats: Some(price_sats),
        price: None,
        description: format!("{id}, forwarded"),
        upstream: Some(upstream.parse().unwrap()),
        handler: None,
        on_upstream_failure: None,
        dialects: None,
        free: None,
        rate_limit: None,
        session: None,
    }
}

/// The HTTP client of the tests: no proxy from the environment, no redirects followed.
pub fn client() -> reqwest::Client {
    client_from(Ipv4Addr::LOCALHOST)
}

/// A client whose connections leave from `local` (any 127.0.0.0/8 address on Linux).
pub fn client_from(local: Ipv4Addr) -> reqwest::Client {
    plannt_gateway::lightning::install_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::V4(local))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A running gateway.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub dev: Option<DevNetwork>,
    /// The paywall, to reach its store (a purge now, say).
    pub paywall: std::sync::Arc<plannt_gateway::Paywall>,
    pub http: reqwest::Client,
    /// Reloads its configuration, as `SIGHUP` does.
    pub reloader: Option<plannt_serve::Reloader>,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
    /// Dropped last: the data directory.
    _dir: Option<tempfile::TempDir>,
}

/// Builds and serves a gateway on a fresh loopback port, its data under a new temporary folder.
pub async fn start(config: Config) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut gateway = start_in(config, &path).await;
    gateway._dir = Some(dir);
    gateway
}

/// Builds and serves a gateway whose data lives in `data_dir` (which the caller keeps).
pub async fn start_in(config: Config, data_dir: &Path) -> TestGateway {
    let gateway = Gateway::build(config, data_dir.to_path_buf())
        .await
        .unwrap_or_else(|e| panic!("the gateway does not start: {e}"));
    serve(gateway).await
}

/// Serves a built gateway on a fresh loopback port.
pub async fn serve(gateway: Gateway) -> TestGateway {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let dev = gateway.dev_network.clone();
    let paywall = gateway.paywall().clone();
    let reloader = Some(gateway.reloader());
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(gateway.serve(listener, async {
        let _ = rx.await;
    }));
    TestGateway {
        addr,
        dev,
        paywall,
        http: client(),
        reloader,
        shutdown: Some(tx),
        served: Some(served),
        _dir: None,
    }
}

/// What a response came to: status, headers and the body, as JSON when it is JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The `reason` of the body.
    pub fn reason(&self) -> Option<&str> {
        self.json["reason"].as_str()
    }
}

/// A 402 challenge, checked for the shape every client relies on.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub macaroon: String,
    pub invoice: String,
    pub payment_hash: PaymentHash,
}

static CHALLENGE_SHAPE: OnceLock<regex::Regex> = OnceLock::new();

impl Challenge {
    /// Reads the challenge of a 402, asserting the header and the body agree and have the
    /// shape of docs/protocol.md (2.1).
    pub fn of(answer: &Answer) -> Challenge {
        assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{answer:?}");
        let values: Vec<&str> = answer
            .headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(!values.is_empty(), "a 402 carries WWW-Authenticate");
        // The regex lnget parses the header with, over the values joined as fetch() joins them.
        let joined = values.join(", ");
        let shape = CHALLENGE_SHAPE.get_or_init(|| {
            regex::Regex::new(r#"(?i)(LSAT|L402)\s+macaroon="[^"]+",\s*invoice="[^"]+""#).unwrap()
        });
        assert!(shape.is_match(&joined), "lnget would not parse {joined:?}");
        let header = values
            .iter()
            .find(|v| v.starts_with("L402 "))
            .expect("one WWW-Authenticate value is the L402 challenge");
        let body = &answer.json;
        let macaroon = body["macaroon"].as_str().unwrap().to_string();
        let invoice = body["invoice"].as_str().unwrap().to_string();
        assert_eq!(
            *header,
            format!("L402 macaroon=\"{macaroon}\", invoice=\"{invoice}\""),
            "the header is exactly `L402 macaroon=\"…\", invoice=\"…\"` and matches the body"
        );
        let decoded = Macaroon::from_base64(&macaroon).unwrap();
        let identifier = Identifier::decode(decoded.identifier()).unwrap();
        let invoice_hash = plannt_gateway::lightning::decode_invoice(&invoice)
            .unwrap()
            .payment_hash;
        assert_eq!(identifier.payment_hash, invoice_hash);
        assert_eq!(
            body["payment_hash"].as_str().unwrap(),
            hex::encode(invoice_hash)
        );
        Challenge {
            macaroon,
            invoice,
            payment_hash: invoice_hash,
        }
    }
}

/// The payment hash a macaroon (base64) is bound to.
pub fn payment_hash(macaroon: &str) -> PaymentHash {
    let macaroon = Macaroon::from_base64(macaroon).unwrap();
    Identifier::decode(macaroon.identifier())
        .unwrap()
        .payment_hash
}

/// `L402 <macaroon>:<preimage hex>`.
pub fn authorization(macaroon: &str, preimage: &Preimage) -> String {
    format!("L402 {macaroon}:{}", preimage.to_hex())
}

impl TestGateway {
    /// Keeps `dir` (the gateway's data) until the gateway is dropped.
    pub fn keep_dir(&mut self, dir: tempfile::TempDir) {
        self._dir = Some(dir);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request and reads the answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Answer::read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, authorization: Option<&str>) -> Answer {
        self.send(Method::GET, path, authorization, None).await
    }

    /// Asks `path` for a challenge.
    pub async fn challenge(&self, path: &str) -> Challenge {
        Challenge::of(&self.get(path, None).await)
    }

    /// Pays an invoice from the `tester` dev account; returns the preimage.
    pub fn pay(&self, invoice: &str) -> Preimage {
        let network = self.dev.as_ref().expect("the gateway runs the dev network");
        network.pay("tester", invoice).unwrap().preimage
    }

    /// Pays a challenge for `path`: `(payment hash, preimage)`, to mint tokens of one's own for.
    pub async fn paid_hash(&self, path: &str) -> (PaymentHash, Preimage) {
        let challenge = self.challenge(path).await;
        (challenge.payment_hash, self.pay(&challenge.invoice))
    }

    /// A paid, unused token for `path` (method GET): `(macaroon, preimage)`.
    pub async fn token(&self, path: &str) -> (String, Preimage) {
        self.token_for(Method::GET, path, None).await
    }

    /// A paid, unused token for a request.
    pub async fn token_for(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (String, Preimage) {
        let answer = self.send(method, path, None, body).await;
        let challenge = Challenge::of(&answer);
        let preimage = self.pay(&challenge.invoice);
        (challenge.macaroon, preimage)
    }

    /// Signals shutdown and waits until the server has finished every request.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(served) = self.served.take() {
            tokio::time::timeout(std::time::Duration::from_secs(30), served)
                .await
                .expect("the gateway stops within 30 s of its shutdown signal")
                .unwrap()
                .unwrap();
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server to return after [`Self::signal_shutdown`].
    pub async fn join(&mut self) {
        self.stop().await;
    }
}

/// Serves `router` on a fresh loopback port; the task ends when the test's runtime does.
pub async fn serve_upstream(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Mints a token with `keys` for `route`, bound to `payment_hash`, in base64.
pub fn mint(keys: &KeyRing, route: &str, payment_hash: PaymentHash, valid_until: u64) -> String {
    keys.mint(&plannt_gateway::l402::MintRequest {
        payment_hash,
        route,
        valid_until,
        conditions: &[],
    })
    .unwrap()
    .to_base64()
}

/// Unix seconds now.
pub fn now() -> u64 {
    plannt_gateway::lightning::invoice::unix_now()
}

pub use plannt_testkit::Redis as RedisServer;
pub use plannt_testkit::dead_port;

/// Sends raw bytes on a fresh connection (an HTTP client would normalise the path first) and
/// reads the whole answer until the server closes: `(status, head and body as text)`.
pub fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (status, text)
}

/// The macaroon (base64) with `caveat` appended, as any holder may.
pub fn attenuate(macaroon: &str, caveat: &str) -> String {
    let mut macaroon = Macaroon::from_base64(macaroon).unwrap();
    macaroon.add_first_party_caveat(caveat.as_bytes());
    macaroon.to_base64()
}
