//! The dev network over HTTP: the router a gateway mounts on loopback, and the `dev+http://`
//! wallet that uses it from another process.
//!
//! ```text
//! GET  /_plannt/dev/info                       network, node id, the warning
//! POST /_plannt/dev/invoices                   {amount_sats, memo, expiry_secs} -> invoice
//! POST /_plannt/dev/return-invoices            {account, memo, expiry_secs} -> an invoice
//!                                              without an amount, paid to `account`
//! POST /_plannt/dev/pay                        {invoice, account} -> payment with preimage
//! GET  /_plannt/dev/balance?account=NAME       balance
//! GET  /_plannt/dev/payments/HASH?account=NAME a payment looked up by hash
//! GET  /_plannt/dev/invoices/HASH              an issued invoice looked up by hash: status
//!                                              open | settled | expired | not_found
//! ```
//! Every answer carries `x-plannt-dev: no real money moves`. Errors are
//! `{"error": <LightningError code>, "message": …}`.

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plannt_l402::{PaymentHash, Preimage};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{DevNetwork, WARNING};
use crate::backend::PAY_TIMEOUT;
use crate::http::{client, host_and_port, transport_error};
use crate::uri::{DEFAULT_DEV_ACCOUNT, is_account_name};
use crate::{
    Balance, InvoiceRequest, InvoiceState, IssuedInvoice, LightningError, Network, Payer, Payment,
    PaymentLookup, Receiver,
};

/// The path prefix of the dev network's API.
pub const PREFIX: &str = "/_plannt/dev";

#[derive(Serialize, Deserialize)]
struct InfoBody {
    network: String,
    node_id: String,
    warning: String,
}

#[derive(Serialize, Deserialize)]
struct InvoiceBody {
    amount_sats: u64,
    #[serde(default)]
    memo: String,
    #[serde(default = "default_expiry")]
    expiry_secs: u64,
}

fn default_expiry() -> u64 {
    3600
}

#[derive(Serialize, Deserialize)]
struct IssuedBody {
    bolt11: String,
    payment_hash: String,
    expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct ReturnInvoiceBody {
    #[serde(default = "default_account")]
    account: String,
    #[serde(default)]
    memo: String,
    #[serde(default = "default_expiry")]
    expiry_secs: u64,
}

#[derive(Serialize, Deserialize)]
struct PayBody {
    invoice: String,
    #[serde(default = "default_account")]
    account: String,
}

fn default_account() -> String {
    DEFAULT_DEV_ACCOUNT.to_string()
}

#[derive(Serialize, Deserialize)]
struct PaymentBody {
    payment_hash: String,
    preimage: String,
    amount_msat: u64,
    fee_msat: u64,
}

#[derive(Serialize, Deserialize)]
struct AccountQuery {
    #[serde(default = "default_account")]
    account: String,
}

#[derive(Serialize, Deserialize)]
struct BalanceBody {
    account: String,
    balance_msat: u64,
    balance_sats: u64,
    warning: String,
}

#[derive(Serialize, Deserialize)]
struct LookupBody {
    status: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    payment: Option<PaymentBody>,
}

#[derive(Serialize, Deserialize)]
struct InvoiceStateBody {
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preimage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amount_received_msat: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

struct ApiError(LightningError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0 {
            LightningError::InvalidInvoice(_) => StatusCode::BAD_REQUEST,
            LightningError::NoRoute(_) => StatusCode::NOT_FOUND,
            LightningError::AlreadyPaid => StatusCode::CONFLICT,
            LightningError::InvoiceExpired => StatusCode::GONE,
            LightningError::InsufficientBalance(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = ErrorBody {
            error: self.0.code().to_string(),
            message: self.0.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

fn payment_body(p: &Payment) -> PaymentBody {
    PaymentBody {
        payment_hash: p.payment_hash.to_hex(),
        preimage: p.preimage.to_hex(),
        amount_msat: p.amount_msat,
        fee_msat: p.fee_msat,
    }
}

fn check_account(account: &str) -> Result<(), ApiError> {
    if is_account_name(account) {
        Ok(())
    } else {
        Err(ApiError(LightningError::Backend(
            "an account name is 1 to 64 characters of A-Z a-z 0-9 - _ .".into(),
        )))
    }
}

impl DevNetwork {
    /// The HTTP API of this network, under [`PREFIX`]. Serve it on loopback only.
    pub fn router(&self) -> Router {
        Router::new()
            .route(&format!("{PREFIX}/info"), get(info))
            .route(&format!("{PREFIX}/invoices"), post(create_invoice))
            .route(
                &format!("{PREFIX}/return-invoices"),
                post(create_return_invoice),
            )
            .route(&format!("{PREFIX}/pay"), post(pay))
            .route(&format!("{PREFIX}/balance"), get(balance))
            .route(&format!("{PREFIX}/payments/{{hash}}"), get(lookup))
            .route(&format!("{PREFIX}/invoices/{{hash}}"), get(lookup_invoice))
            .layer(axum::middleware::map_response(
                |mut response: Response| async move {
                    response.headers_mut().insert(
                        "x-plannt-dev",
                        HeaderValue::from_static("no real money moves"),
                    );
                    response
                },
            ))
            .with_state(self.clone())
    }
}

async fn info(State(net): State<DevNetwork>) -> Json<InfoBody> {
    Json(InfoBody {
        network: Network::Regtest.to_string(),
        node_id: net.node_id().to_string(),
        warning: WARNING.to_string(),
    })
}

async fn create_invoice(
    State(net): State<DevNetwork>,
    Json(body): Json<InvoiceBody>,
) -> Result<Json<IssuedBody>, ApiError> {
    let issued = net
        .create_invoice(&InvoiceRequest {
            amount_sats: body.amount_sats,
            memo: body.memo,
            expiry_secs: body.expiry_secs,
        })
        .map_err(ApiError)?;
    Ok(Json(IssuedBody {
        bolt11: issued.bolt11,
        payment_hash: hex::encode(issued.payment_hash),
        expires_at: issued.expires_at,
    }))
}

async fn create_return_invoice(
    State(net): State<DevNetwork>,
    Json(body): Json<ReturnInvoiceBody>,
) -> Result<Json<IssuedBody>, ApiError> {
    check_account(&body.account)?;
    let issued = net
        .create_amountless_invoice(&body.account, &body.memo, body.expiry_secs)
        .map_err(ApiError)?;
    Ok(Json(IssuedBody {
        bolt11: issued.bolt11,
        payment_hash: hex::encode(issued.payment_hash),
        expires_at: issued.expires_at,
    }))
}

async fn pay(
    State(net): State<DevNetwork>,
    Json(body): Json<PayBody>,
) -> Result<Json<PaymentBody>, ApiError> {
    check_account(&body.account)?;
    // Signature checks are CPU work: keep them off the async workers.
    let payment = tokio::task::spawn_blocking(move || net.pay(&body.account, &body.invoice))
        .await
        .map_err(|e| ApiError(LightningError::Backend(e.to_string())))?
        .map_err(ApiError)?;
    Ok(Json(payment_body(&payment)))
}

async fn balance(
    State(net): State<DevNetwork>,
    Query(query): Query<AccountQuery>,
) -> Result<Json<BalanceBody>, ApiError> {
    check_account(&query.account)?;
    let msat = net.balance(&query.account);
    Ok(Json(BalanceBody {
        account: query.account,
        balance_msat: msat,
        balance_sats: msat / 1000,
        warning: WARNING.to_string(),
    }))
}

async fn lookup(
    State(net): State<DevNetwork>,
    Path(hash): Path<String>,
    Query(query): Query<AccountQuery>,
) -> Result<Json<LookupBody>, ApiError> {
    check_account(&query.account)?;
    let hash = PaymentHash::from_hex(&hash).map_err(|_| {
        ApiError(LightningError::Backend(
            "a payment hash is 64 hex characters".into(),
        ))
    })?;
    Ok(Json(match net.lookup(&query.account, &hash) {
        PaymentLookup::Succeeded(p) => LookupBody {
            status: "succeeded".into(),
            payment: Some(payment_body(&p)),
        },
        _ => LookupBody {
            status: "not_found".into(),
            payment: None,
        },
    }))
}

async fn lookup_invoice(
    State(net): State<DevNetwork>,
    Path(hash): Path<String>,
) -> Result<Json<InvoiceStateBody>, ApiError> {
    let hash = PaymentHash::from_hex(&hash).map_err(|_| {
        ApiError(LightningError::Backend(
            "a payment hash is 64 hex characters".into(),
        ))
    })?;
    let plain = |status: &str| InvoiceStateBody {
        status: status.into(),
        preimage: None,
        amount_received_msat: None,
    };
    Ok(Json(match net.invoice_state(&hash) {
        InvoiceState::Open => plain("open"),
        InvoiceState::Expired => plain("expired"),
        InvoiceState::NotFound => plain("not_found"),
        InvoiceState::Settled {
            preimage,
            amount_received_msat,
        } => InvoiceStateBody {
            status: "settled".into(),
            preimage: Some(preimage.to_hex()),
            amount_received_msat: Some(amount_received_msat),
        },
    }))
}

/// A wallet on a dev network served by another process (`dev+http://HOST:PORT`).
pub struct DevHttp {
    base: Url,
    account: String,
    http: reqwest::Client,
}

impl DevHttp {
    /// A wallet paying from `account` on the network served at `base`.
    pub fn new(base: Url, account: &str) -> Self {
        DevHttp {
            base,
            account: account.to_string(),
            http: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{PREFIX}{path}", self.base.as_str().trim_end_matches('/'))
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, LightningError> {
        let response = response.map_err(|e| transport_error("dev", e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error("dev", e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| LightningError::Backend(format!("dev: unreadable answer: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(LightningError::from_code(&body.error, body.message)),
            Err(_) if status == StatusCode::NOT_FOUND => Err(LightningError::Unreachable(format!(
                "dev at {}: no dev network at this address (is the gateway running with the dev \
                 backend?); nothing was paid",
                host_and_port(&self.base)
            ))),
            Err(_) => Err(LightningError::Backend(format!("dev: HTTP {status}"))),
        }
    }

    /// Asks the network for an invoice at `path` (`/invoices`, `/return-invoices`).
    async fn issue(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<IssuedInvoice, LightningError> {
        let issued: IssuedBody = self
            .read(self.http.post(self.url(path)).json(body).send().await)
            .await?;
        let payment_hash = PaymentHash::from_hex(&issued.payment_hash)
            .map_err(|_| LightningError::Backend("dev: bad payment hash".into()))?;
        Ok(IssuedInvoice {
            bolt11: issued.bolt11,
            payment_hash,
            expires_at: issued.expires_at,
        })
    }

    fn payment(body: PaymentBody) -> Result<Payment, LightningError> {
        let bad =
            || LightningError::Backend("dev: a hash or preimage is not 64 hex characters".into());
        let hash = PaymentHash::from_hex(&body.payment_hash).map_err(|_| bad())?;
        let preimage = Preimage::from_hex(&body.preimage).map_err(|_| bad())?;
        Payment::checked("dev", hash, preimage, body.amount_msat, body.fee_msat)
    }
}

#[async_trait]
impl Receiver for DevHttp {
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError> {
        let body = InvoiceBody {
            amount_sats: request.amount_sats,
            memo: request.memo.clone(),
            expiry_secs: request.expiry_secs,
        };
        self.issue("/invoices", &body).await
    }

    async fn health(&self) -> Result<(), LightningError> {
        let _: InfoBody = self
            .read(self.http.get(self.url("/info")).send().await)
            .await?;
        Ok(())
    }

    async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        let url = self.url(&format!("/invoices/{}", payment_hash.to_hex()));
        let body: InvoiceStateBody = self.read(self.http.get(url).send().await).await?;
        match body.status.as_str() {
            "open" => Ok(InvoiceState::Open),
            "expired" => Ok(InvoiceState::Expired),
            "not_found" => Ok(InvoiceState::NotFound),
            "settled" => {
                let preimage = body
                    .preimage
                    .as_deref()
                    .and_then(|p| Preimage::from_hex(p).ok())
                    .ok_or_else(|| {
                        LightningError::Backend("dev: a preimage is not 64 hex characters".into())
                    })?;
                crate::types::check_preimage("dev", &preimage, payment_hash)?;
                Ok(InvoiceState::Settled {
                    preimage,
                    amount_received_msat: body.amount_received_msat.unwrap_or(0),
                })
            }
            other => Err(LightningError::Backend(format!(
                "dev: unknown invoice status {other:?}"
            ))),
        }
    }

    fn can_lookup_invoices(&self) -> bool {
        true
    }

    /// An amountless invoice paid to this wallet's account.
    async fn create_amountless_invoice(
        &self,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        let body = ReturnInvoiceBody {
            account: self.account.clone(),
            memo: memo.to_string(),
            expiry_secs,
        };
        self.issue("/return-invoices", &body).await
    }
}

#[async_trait]
impl Payer for DevHttp {
    async fn pay(&self, bolt11: &str, _max_fee_msat: u64) -> Result<Payment, LightningError> {
        let body = PayBody {
            invoice: bolt11.to_string(),
            account: self.account.clone(),
        };
        let request = self
            .http
            .post(self.url("/pay"))
            .timeout(PAY_TIMEOUT)
            .json(&body);
        Self::payment(self.read(request.send().await).await?)
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        let body: BalanceBody = self
            .read(
                self.http
                    .get(self.url("/balance"))
                    .query(&[("account", &self.account)])
                    .send()
                    .await,
            )
            .await?;
        Ok(Balance {
            msat: body.balance_msat,
        })
    }

    async fn lookup_payment(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError> {
        let body: LookupBody = self
            .read(
                self.http
                    .get(self.url(&format!("/payments/{}", hex::encode(payment_hash))))
                    .query(&[("account", &self.account)])
                    .send()
                    .await,
            )
            .await?;
        match (body.status.as_str(), body.payment) {
            ("succeeded", Some(p)) => Ok(PaymentLookup::Succeeded(Self::payment(p)?)),
            ("not_found", _) => Ok(PaymentLookup::NotFound),
            (other, _) => Err(LightningError::Backend(format!(
                "dev: unknown payment status {other:?}"
            ))),
        }
    }

    fn network(&self) -> Network {
        Network::Regtest
    }

    fn name(&self) -> &'static str {
        "dev"
    }
}
