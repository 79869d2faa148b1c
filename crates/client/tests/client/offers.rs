//! Servers that offer only MPP or only x402, written in the tests from the drafts with the core's
//! server-side functions (`ChallengeKeys::mint_charge` and `verify_header`,
//! `TagKeys::requirements` and `verify_header`), issuing invoices on a dev network that the
//! client's wallet pays. Each can be honest, or wrong in one way a check of the client must
//! catch, and counts what it saw.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use plannt_client::l402::mpp::{ChallengeKey, ChallengeKeys, ChargeExpect, ChargeOffer, Receipt};
use plannt_client::l402::x402::{
    ExactExpect, ExactOffer, PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE,
    PaymentRequired, ResourceInfo, SettlementResponse, TagKey, TagKeys,
};
use plannt_client::l402::{Network, PaymentHash};
use plannt_client::lightning::dev::DevNetwork;
use plannt_client::lightning::invoice::unix_now;
use plannt_client::lightning::{InvoiceRequest, InvoiceState};
use plannt_testkit::fakes::random32;

/// The route id the offers are for.
pub const ROUTE: &str = "dialects";

/// Which dialect the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `WWW-Authenticate: Payment …` only.
    Mpp,
    /// `PAYMENT-REQUIRED` only.
    X402,
    /// Both, for one invoice: MPP's challenge, then `PAYMENT-REQUIRED`.
    Both,
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// An honest offer, a credential verified for real, a payment hash spent once.
    None,
    /// The offer names another payment hash than its invoice's.
    Hash,
    /// The offer names another amount than its invoice's.
    Amount,
    /// The offer names mainnet; its invoice and the wallet are on regtest.
    Network,
    /// The MPP challenge's `expires` is past.
    ExpiredChallenge,
    /// The MPP challenge's `expires` is no RFC 3339 time.
    UnreadableExpiry,
    /// The invoice expires a second after it is issued, and the 402 comes two seconds later.
    ExpiredInvoice,
    /// The x402 `payTo` is a node other than the invoice's payee.
    PayTo,
    /// The paid retry gets a 402 with a fresh offer, every time.
    RefusePaid,
    /// x402: the first `n` presentations of a paid payload get 402 with `Retry-After: 1`.
    NotSettledYet(u64),
    /// A credential that verifies is served every time it comes, never spent.
    Reusable,
}

/// What the server shares with the test.
pub struct Shared {
    /// The dev network its invoices come from.
    pub network: DevNetwork,
    kind: Kind,
    lie: Mutex<Lie>,
    price_sats: AtomicU64,
    mpp: ChallengeKeys,
    mpp_key: ChallengeKey,
    tags: TagKeys,
    spent: Mutex<HashSet<PaymentHash>>,
    /// Offers sent.
    pub offers: AtomicU64,
    /// Requests with a credential that verified and bought an answer.
    pub paid: AtomicU64,
    /// Requests that carried a credential (verified or not).
    pub presented: AtomicU64,
    /// Each credential presented, as it came (`Authorization` or `PAYMENT-SIGNATURE`).
    pub credentials: Mutex<Vec<String>>,
}

/// A running server.
pub struct OfferServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub shared: Arc<Shared>,
}

impl OfferServer {
    /// Starts a server of `kind` that answers as `lie` says, at `price_sats`, on a fresh dev
    /// network.
    pub async fn start(kind: Kind, lie: Lie, price_sats: u64) -> OfferServer {
        Self::start_on(DevNetwork::ephemeral(1_000_000), kind, lie, price_sats).await
    }

    /// Starts a server issuing invoices from `network`.
    pub async fn start_on(
        network: DevNetwork,
        kind: Kind,
        lie: Lie,
        price_sats: u64,
    ) -> OfferServer {
        let mpp_key = ChallengeKey::from_secret(&random32());
        let shared = Arc::new(Shared {
            network,
            kind,
            lie: Mutex::new(lie),
            price_sats: AtomicU64::new(price_sats),
            mpp: ChallengeKeys::new(vec![mpp_key.clone()]),
            mpp_key,
            tags: TagKeys::new(vec![TagKey::new(random32())]),
            spent: Mutex::new(HashSet::new()),
            offers: AtomicU64::new(0),
            paid: AtomicU64::new(0),
            presented: AtomicU64::new(0),
            credentials: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        OfferServer { addr, shared }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> url::Url {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    /// Changes how it answers from now on.
    pub fn set_lie(&self, lie: Lie) {
        *self.shared.lie.lock().unwrap() = lie;
    }

    /// The dev network.
    pub fn network(&self) -> &DevNetwork {
        &self.shared.network
    }
}

fn lie(s: &Shared) -> Lie {
    *s.lie.lock().unwrap()
}

/// A 402 with a fresh offer, crafted as the lie says.
fn offer(s: &Shared) -> Response {
    s.offers.fetch_add(1, Ordering::SeqCst);
    let price = s.price_sats.load(Ordering::SeqCst);
    let issued = s
        .network
        .create_invoice(&InvoiceRequest {
            amount_sats: price,
            memo: "dialects".into(),
            expiry_secs: if lie(s) == Lie::ExpiredInvoice {
                1
            } else {
                600
            },
        })
        .unwrap();
    let now = unix_now();
    let lie = lie(s);
    let other_hash = PaymentHash(random32()).to_hex();
    let mut response = StatusCode::PAYMENT_REQUIRED.into_response();
    if s.kind != Kind::X402 {
        let mut challenge = s
            .mpp
            .mint_charge(&ChargeOffer {
                realm: "dialects.test",
                route: ROUTE,
                amount_sats: price,
                invoice: &issued.bolt11,
                payment_hash: issued.payment_hash,
                network: Network::Regtest,
                expires_at: if lie == Lie::ExpiredChallenge {
                    now - 60
                } else {
                    now + 600
                },
                description: None,
            })
            .unwrap();
        let mut request = challenge.charge_request().unwrap();
        match lie {
            Lie::Hash => request.method_details.payment_hash = Some(other_hash.clone()),
            Lie::Amount => request.amount = (price + 1).to_string(),
            Lie::Network => request.method_details.network = Some("mainnet".into()),
            _ => {}
        }
        challenge.request = request.encode();
        if lie == Lie::UnreadableExpiry {
            challenge.expires = Some("tomorrow".into());
        }
        // The id covers the request and expires: mint it again over what is sent.
        challenge.id = s.mpp_key.challenge_id(&challenge);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            challenge.to_header_value().parse().unwrap(),
        );
    }
    if s.kind != Kind::Mpp {
        let mut requirements = s
            .tags
            .requirements(&ExactOffer {
                route: ROUTE,
                amount_msat: price * 1000,
                invoice: &issued.bolt11,
                payment_hash: issued.payment_hash,
                network: Network::Regtest,
                max_timeout_seconds: 600,
                valid_until: now + 600,
            })
            .unwrap();
        match lie {
            Lie::Hash => {
                requirements.extra["paymentHash"] = other_hash.into();
            }
            Lie::Amount => requirements.amount = (price * 1000 + 1).to_string(),
            Lie::Network => requirements.network = Network::Mainnet.caip2().into(),
            Lie::PayTo => requirements.pay_to = Some(format!("02{}", "ab".repeat(32))),
            _ => {}
        }
        let required = PaymentRequired::new(
            ResourceInfo {
                url: format!("/{ROUTE}"),
                description: None,
                mime_type: None,
            },
            vec![requirements],
        );
        response
            .headers_mut()
            .insert(PAYMENT_REQUIRED, required.encode().parse().unwrap());
    }
    response
}

/// Whether a verified credential buys an answer: the first time its payment hash comes (every
/// time, for a server whose tokens are reusable).
fn spend(s: &Shared, hash: PaymentHash) -> bool {
    s.spent.lock().unwrap().insert(hash) || lie(s) == Lie::Reusable
}

fn record(s: &Shared, credential: &str) -> u64 {
    s.credentials.lock().unwrap().push(credential.to_string());
    s.presented.fetch_add(1, Ordering::SeqCst) + 1
}

async fn handle(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let now = unix_now();
    let price = s.price_sats.load(Ordering::SeqCst);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let signature = headers.get(PAYMENT_SIGNATURE).and_then(|v| v.to_str().ok());
    match (auth, signature) {
        (Some(auth), _) if s.kind != Kind::X402 => {
            record(&s, auth);
            let verified = match s.mpp.verify_header(
                auth,
                &ChargeExpect {
                    route: ROUTE,
                    price_sats: price,
                    now,
                },
            ) {
                Ok(v) => v,
                Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
            };
            if lie(&s) == Lie::RefusePaid || !spend(&s, verified.payment_hash) {
                return offer(&s);
            }
            s.paid.fetch_add(1, Ordering::SeqCst);
            let receipt = Receipt::charge(&verified.payment_hash, &verified.challenge_id, now);
            (
                StatusCode::OK,
                [(
                    plannt_client::l402::mpp::PAYMENT_RECEIPT,
                    receipt.to_header_value(),
                )],
                "paid over mpp",
            )
                .into_response()
        }
        (_, Some(payload)) if s.kind != Kind::Mpp => {
            let presented = record(&s, payload);
            let verified = match s.tags.verify_header(
                payload,
                &ExactExpect {
                    route: ROUTE,
                    price_msat: price * 1000,
                    network: Network::Regtest,
                    now,
                },
            ) {
                Ok(v) => v,
                Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
            };
            if let Lie::NotSettledYet(n) = lie(&s)
                && presented <= n
            {
                return (StatusCode::PAYMENT_REQUIRED, [(header::RETRY_AFTER, "1")])
                    .into_response();
            }
            let settled = matches!(
                s.network.invoice_state(&verified.payment_hash),
                InvoiceState::Settled { .. }
            );
            if !settled {
                return (StatusCode::PAYMENT_REQUIRED, [(header::RETRY_AFTER, "1")])
                    .into_response();
            }
            if lie(&s) == Lie::RefusePaid || !spend(&s, verified.payment_hash) {
                return offer(&s);
            }
            s.paid.fetch_add(1, Ordering::SeqCst);
            let settlement = SettlementResponse::lightning(&verified, now);
            (
                StatusCode::OK,
                [(PAYMENT_RESPONSE, settlement.encode())],
                "paid over x402",
            )
                .into_response()
        }
        _ if lie(&s) == Lie::ExpiredInvoice => {
            let response = offer(&s);
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            response
        }
        _ => offer(&s),
    }
}
