//! A hostile L402 server, on a loopback port, for the tests of the paying client and of the
//! `plannt` binary.
//!
//! It answers 402 with a challenge it crafts with `plannt-l402`: an honest one (a dev-network
//! invoice and a macaroon bound to its payment hash), or one wrong in the way a check of the
//! client must catch. Invoices the dev network cannot issue (amountless, mainnet, expired) are
//! built by hand with `lightning-invoice` and signed by a throwaway key. A credential is
//! verified for real (signature, caveats, `sha256(preimage)`), so a 200 means the client paid.
//! The dev network is served beside it (`/_plannt/dev/*`) for `dev+http://` wallets, and every
//! request that reaches the server is counted.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use plannt_l402::{
    Challenge, KeyRing, MintRequest, NoConditions, PaymentHash, Request as L402Request, RootKey,
};
use plannt_lightning::InvoiceRequest;
use plannt_lightning::dev::DevNetwork;
use serde_json::json;

use crate::fakes::{now, random32};

/// The route id minted into every token.
pub const ROUTE: &str = "hostile";

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A dev-network invoice of the price and a macaroon bound to it; tokens are single-use
    /// (`x-l402: spent`), a spent one gets a fresh 402 with reason `spent`.
    Honest,
    /// A payable dev-network invoice, and a macaroon bound to another payment hash.
    HashMismatch,
    /// A regtest invoice that names no amount.
    Amountless,
    /// A mainnet (`lnbc`) invoice.
    Mainnet,
    /// A regtest invoice that expired an hour ago.
    Expired,
    /// Honest, but each challenge after the first asks `step` sats more.
    PriceRises {
        /// Sats added per challenge.
        step: u64,
    },
    /// Honest, but a token is accepted `uses` times and never marked spent (like Aperture);
    /// after that it gets a 402 with a fresh challenge.
    Reusable {
        /// How many requests a token buys.
        uses: u32,
    },
    /// Honest on the first request; a request with a credential never gets an answer.
    HangOnRetry,
    /// The same challenge every time (one invoice, one macaroon), single-use tokens.
    Fixed,
    /// Every credential is refused with 401 and an `x-l402-reason` (as after a key rotation).
    RefuseCredentials,
}

/// What the server shares with the test.
pub struct Shared {
    /// The dev network its invoices come from.
    pub network: DevNetwork,
    keys: KeyRing,
    scenario: Mutex<Scenario>,
    price: AtomicU64,
    /// Challenges sent so far.
    pub challenges: AtomicU64,
    /// Requests that carried no credential.
    pub bare_requests: AtomicU64,
    /// Requests that carried a credential that verified.
    pub paid_requests: AtomicU64,
    /// Every request that reached the server, its dev network's API included.
    pub requests: AtomicU64,
    uses: Mutex<HashMap<PaymentHash, u32>>,
    spent: Mutex<HashSet<PaymentHash>>,
    fixed: Mutex<Option<(String, String)>>,
    body: Mutex<Vec<u8>>,
}

impl Shared {
    /// Changes how the server answers from now on.
    pub fn set_scenario(&self, scenario: Scenario) {
        *self.scenario.lock().unwrap() = scenario;
    }

    /// Sets the price of the next challenges.
    pub fn set_price(&self, sats: u64) {
        self.price.store(sats, Ordering::SeqCst);
    }

    /// Sets the body of a paid answer.
    pub fn set_body(&self, body: Vec<u8>) {
        *self.body.lock().unwrap() = body;
    }

    /// The invoice of the fixed challenge (scenario `Fixed`), once one was sent.
    pub fn fixed_invoice(&self) -> Option<String> {
        self.fixed.lock().unwrap().as_ref().map(|(b, _)| b.clone())
    }
}

/// A running hostile server.
pub struct Hostile {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub shared: Arc<Shared>,
}

impl Hostile {
    /// Starts a server on a fresh dev network whose accounts start with 1,000,000 sats.
    pub async fn start(scenario: Scenario, price_sats: u64) -> Hostile {
        Self::start_on(DevNetwork::ephemeral(1_000_000), scenario, price_sats).await
    }

    /// Starts a server issuing invoices from `network`.
    pub async fn start_on(network: DevNetwork, scenario: Scenario, price_sats: u64) -> Hostile {
        let shared = Arc::new(Shared {
            network: network.clone(),
            keys: KeyRing::single(RootKey::new(random32())),
            scenario: Mutex::new(scenario),
            price: AtomicU64::new(price_sats),
            challenges: AtomicU64::new(0),
            bare_requests: AtomicU64::new(0),
            paid_requests: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            uses: Mutex::new(HashMap::new()),
            spent: Mutex::new(HashSet::new()),
            fixed: Mutex::new(None),
            body: Mutex::new(b"{\"result\":\"paid\"}".to_vec()),
        });
        let router = Router::new()
            .fallback(handle)
            .with_state(shared.clone())
            .merge(network.router())
            .layer(axum::middleware::from_fn_with_state(shared.clone(), count));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Hostile { addr, shared }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> url::Url {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    /// The dev network.
    pub fn network(&self) -> &DevNetwork {
        &self.shared.network
    }
}

/// A BOLT11 invoice signed by a throwaway key: any network, with or without an amount, created
/// at `created_at` and valid for `expiry_secs`.
pub fn forged_invoice(
    currency: Currency,
    amount_msat: Option<u64>,
    payment_hash: PaymentHash,
    created_at: u64,
    expiry_secs: u64,
) -> String {
    let secp = Secp256k1::new();
    let key = loop {
        if let Ok(key) = SecretKey::from_slice(&random32()) {
            break key;
        }
    };
    let builder = InvoiceBuilder::new(currency)
        .description("hostile".into())
        .payment_hash(sha256::Hash::from_byte_array(payment_hash.0))
        .payment_secret(PaymentSecret(random32()))
        .timestamp(UNIX_EPOCH + Duration::from_secs(created_at))
        .expiry_time(Duration::from_secs(expiry_secs))
        .min_final_cltv_expiry_delta(144);
    let builder = match amount_msat {
        Some(amount) => builder.amount_milli_satoshis(amount),
        None => builder,
    };
    builder
        .build_signed(|m| secp.sign_ecdsa_recoverable(m, &key))
        .unwrap()
        .to_string()
}

fn dev_invoice(network: &DevNetwork, sats: u64) -> (String, PaymentHash) {
    let issued = network
        .create_invoice(&InvoiceRequest {
            amount_sats: sats,
            memo: "hostile".into(),
            expiry_secs: 600,
        })
        .unwrap();
    (issued.bolt11, issued.payment_hash)
}

/// A 402 with a challenge crafted for the current scenario.
fn challenge(s: &Shared, reason: Option<&str>) -> Response {
    let n = s.challenges.fetch_add(1, Ordering::SeqCst);
    let price = s.price.load(Ordering::SeqCst);
    let scenario = *s.scenario.lock().unwrap();
    let now = now();
    let mint = |hash: PaymentHash| {
        s.keys
            .mint(&MintRequest {
                payment_hash: hash,
                route: ROUTE,
                valid_until: now + 3_600,
                conditions: &[],
            })
            .unwrap()
            .to_base64()
    };
    let (invoice, macaroon) = match scenario {
        Scenario::Honest
        | Scenario::Reusable { .. }
        | Scenario::HangOnRetry
        | Scenario::RefuseCredentials => {
            let (bolt11, hash) = dev_invoice(&s.network, price);
            (bolt11, mint(hash))
        }
        Scenario::PriceRises { step } => {
            let (bolt11, hash) = dev_invoice(&s.network, price + n * step);
            (bolt11, mint(hash))
        }
        Scenario::HashMismatch => {
            let (bolt11, _) = dev_invoice(&s.network, price);
            (bolt11, mint(PaymentHash(random32())))
        }
        Scenario::Amountless => {
            let hash = PaymentHash(random32());
            let bolt11 = forged_invoice(Currency::Regtest, None, hash, now, 600);
            (bolt11, mint(hash))
        }
        Scenario::Mainnet => {
            let hash = PaymentHash(random32());
            let bolt11 = forged_invoice(Currency::Bitcoin, Some(price * 1000), hash, now, 600);
            (bolt11, mint(hash))
        }
        Scenario::Expired => {
            let hash = PaymentHash(random32());
            let bolt11 = forged_invoice(
                Currency::Regtest,
                Some(price * 1000),
                hash,
                now - 7_200,
                3_600,
            );
            (bolt11, mint(hash))
        }
        Scenario::Fixed => {
            let mut fixed = s.fixed.lock().unwrap();
            fixed
                .get_or_insert_with(|| {
                    let (bolt11, hash) = dev_invoice(&s.network, price);
                    (bolt11, mint(hash))
                })
                .clone()
        }
    };
    let header = format!("L402 macaroon=\"{macaroon}\", invoice=\"{invoice}\"");
    // The challenge must be one our own parser reads, or the test proves nothing.
    Challenge::parse([header.as_str()]).unwrap();
    let mut body = json!({
        "error": "Payment Required",
        "invoice": invoice,
        "macaroon": macaroon,
    });
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    let mut response = (StatusCode::PAYMENT_REQUIRED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, header.parse().unwrap());
    if let Some(reason) = reason {
        response
            .headers_mut()
            .insert("x-l402-reason", reason.parse().unwrap());
    }
    response
}

fn paid(s: &Shared, spent: bool, method: &Method, path: &str, request_body: Bytes) -> Response {
    s.paid_requests.fetch_add(1, Ordering::SeqCst);
    let body = if path == "/echo" {
        request_body.to_vec()
    } else {
        s.body.lock().unwrap().clone()
    };
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("x-hostile-method", method.as_str());
    if spent {
        builder = builder.header("x-l402", "spent");
    }
    builder.body(Body::from(body)).unwrap()
}

async fn count(
    State(s): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/redirect" {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/paid")
            .body(Body::empty())
            .unwrap();
    }
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        s.bare_requests.fetch_add(1, Ordering::SeqCst);
        return challenge(&s, None);
    };
    // (`Request` holds a `&dyn Conditions`, which is not `Send`: keep it out of the future.)
    let verified = s.keys.verify_header(
        auth,
        &L402Request {
            route: ROUTE,
            now: now(),
            conditions: &NoConditions,
        },
    );
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "Unauthorized", "reason": e.reason().code()})),
            )
                .into_response();
        }
    };
    let scenario = *s.scenario.lock().unwrap();
    match scenario {
        Scenario::HangOnRetry => std::future::pending().await,
        Scenario::RefuseCredentials => (
            StatusCode::UNAUTHORIZED,
            [("x-l402-reason", "bad_signature")],
            axum::Json(json!({"error": "Unauthorized", "reason": "bad_signature"})),
        )
            .into_response(),
        Scenario::Reusable { uses } => {
            let used = {
                let mut all = s.uses.lock().unwrap();
                let n = all.entry(verified.payment_hash).or_insert(0);
                *n += 1;
                *n
            };
            if used > uses {
                challenge(&s, Some("expired"))
            } else {
                paid(&s, false, &method, uri.path(), body)
            }
        }
        _ => {
            if s.spent.lock().unwrap().insert(verified.payment_hash) {
                paid(&s, true, &method, uri.path(), body)
            } else {
                challenge(&s, Some("spent"))
            }
        }
    }
}
