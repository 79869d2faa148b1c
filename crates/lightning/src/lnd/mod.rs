//! LND, both sides, through its REST API (the grpc-gateway in front of `lnrpc` and `routerrpc`).
//!
//! Follows lnd v0.21 (`lnrpc/lightning.proto`, `routerrpc/router.proto`, `lnrpc/rpc_utils.go`):
//!
//! - The macaroon goes, hex-encoded, in `Grpc-Metadata-macaroon`. LND answers a bad one with
//!   gRPC `Unknown` (HTTP 500) and a message such as `verification failed: signature mismatch
//!   after caveat verification`, not with 401, so the message is read too.
//! - JSON uses the proto field names, int64 as strings and `bytes` as standard base64; a hash in
//!   a URL path is base64url (`/v2/router/track/{hash}`), except `GET /v1/invoice/{r_hash_str}`,
//!   which takes hex.
//! - Paying is `POST /v2/router/send`: a stream of newline-delimited `{"result": Payment}`
//!   updates, ending at `SUCCEEDED` or `FAILED`. `payment_preimage` is 64 zeros until the
//!   payment succeeds, so only `status` says it did. A fee limit is always sent: LND reads a
//!   missing one as zero (zero-fee routes only). `POST /v1/channels/transactions` is not used:
//!   lnd 0.21 removed it. An invoice without an amount is paid with `amt_msat`, which LND takes
//!   for such an invoice only (`amount must not be specified when paying a non-zero amount
//!   invoice` otherwise); `POST /v1/invoices` with neither `value` nor `value_msat` issues one.
//! - A payment whose stream breaks off is looked up with `GET /v2/router/track/{hash}`, whose
//!   first update is the current state; it is never sent again. LND itself refuses a second
//!   payment of a hash that is in flight or paid (gRPC `AlreadyExists`, HTTP 409).
//! - Errors: `{"code", "message", "details"}`, or inside a stream `{"error": {…}}`.
//! - TLS: LND's `tls.cert` is self-signed for `localhost`, the host name and the node's IP
//!   addresses, and is a CA certificate (`IsCA`, so it can sign itself). webpki refuses a CA
//!   certificate as a server's own (`CaUsedAsEndEntity`), so trusting it as a root does not work
//!   with rustls; the certificate is pinned instead: the server must present exactly the
//!   certificate in the file, whatever the host (name or IP address) and validity dates say.
//!   The handshake signature is still verified against it.

use plannt_l402::{PaymentHash, Preimage};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use url::Url;
use zeroize::Zeroizing;

use crate::backend::{
    PAY_TIMEOUT, REQUEST_TIMEOUT, amountless_to_pay, check_network, invoice_to_pay, issued,
    read_back, read_back_amountless, still_unknown,
};
use crate::http::{builder, client};
use crate::tls::pinned_tls_config;
use crate::uri::MacaroonSource;
use crate::{
    Balance, DecodedInvoice, InvoiceRequest, InvoiceState, IssuedInvoice, LightningError, Network,
    Payer, Payment, PaymentLookup, Receiver, Secret,
};
use wire::{
    AddInvoiceBody, ChannelBalanceBody, InfoBody, InvoiceBody, Lines, PaymentBody, Update, failure,
    failure_reason, json_answer, parse_line,
};

mod wire;

/// The header LND's REST proxy reads the macaroon from.
const MACAROON_HEADER: &str = "Grpc-Metadata-macaroon";
/// How long LND keeps trying routes (`timeout_seconds`); shorter than our own pay timeout, so
/// LND gives up on routing before we give up on the answer.
const ROUTING_TIMEOUT_SECS: u64 = 60;

/// An LND node, through its REST API.
pub struct Lnd {
    base: Url,
    macaroon: Secret,
    network: Network,
    http: reqwest::Client,
    pinned: bool,
    request_timeout: Duration,
    pay_timeout: Duration,
}

impl std::fmt::Debug for Lnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lnd")
            .field("base", &self.base.as_str())
            .field("macaroon", &"<redacted>")
            .field("tls_cert_pinned", &self.pinned)
            .field("network", &self.network)
            .finish()
    }
}

/// The outcome of a payment, as the node reports it.
enum Tracked {
    Succeeded(Payment),
    Failed(LightningError),
    Pending,
    NotFound,
}

impl Lnd {
    /// A node at `base` (e.g. `https://127.0.0.1:8080`) with a hex macaroon, TLS checked against
    /// the system's roots until [`Lnd::pin_tls_cert`].
    pub fn new(base: Url, macaroon_hex: Secret, network: Network) -> Self {
        Lnd {
            base,
            macaroon: macaroon_hex,
            network,
            http: client(),
            pinned: false,
            request_timeout: REQUEST_TIMEOUT,
            pay_timeout: PAY_TIMEOUT,
        }
    }

    /// Opens what an `lnd+…` URI names: reads the macaroon file (binary, as LND writes it, or
    /// hex) and pins the `cert=` file. An `lnd+http://` URI with a certificate is refused: the
    /// certificate would protect nothing.
    pub fn open(
        base: &Url,
        macaroon: &MacaroonSource,
        cert: Option<&Path>,
        network: Network,
    ) -> std::io::Result<Self> {
        let macaroon = match macaroon {
            MacaroonSource::Hex(hex) => hex.clone(),
            MacaroonSource::File(path) => read_macaroon(path)?,
        };
        let lnd = Lnd::new(base.clone(), macaroon, network);
        let Some(cert) = cert else {
            return Ok(lnd);
        };
        if base.scheme() != "https" {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "lnd: cert={} pins TLS, but the URI asks for plain HTTP; use lnd+https://",
                    cert.display()
                ),
            ));
        }
        let pem = std::fs::read(cert).map_err(|e| {
            std::io::Error::new(e.kind(), format!("lnd: tls.cert {}: {e}", cert.display()))
        })?;
        lnd.pin_tls_cert(&pem).map_err(|e| {
            std::io::Error::new(e.kind(), format!("lnd: tls.cert {}: {e}", cert.display()))
        })
    }

    /// Accepts only a server that presents one of the certificates in `pem` (LND's `tls.cert`).
    pub fn pin_tls_cert(mut self, pem: &[u8]) -> std::io::Result<Self> {
        let config = pinned_tls_config(pem)?;
        self.http = builder()
            .tls_backend_preconfigured(config)
            .build()
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("TLS configuration: {e}"),
                )
            })?;
        self.pinned = true;
        Ok(self)
    }

    /// Sets how long a call may take, and how long a payment may before it is looked up.
    pub fn with_timeouts(mut self, request: Duration, pay: Duration) -> Self {
        self.request_timeout = request;
        self.pay_timeout = pay;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.macaroon.expose().is_empty() {
            return request;
        }
        match HeaderValue::from_str(self.macaroon.expose()) {
            Ok(mut value) => {
                value.set_sensitive(true);
                request.header(MACAROON_HEADER, value)
            }
            // Not a header value, so not hex: LND will refuse the call without it.
            Err(_) => request,
        }
    }

    /// A unary call: the HTTP status and the body.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), LightningError> {
        let response = self
            .authed(request.timeout(self.request_timeout))
            .send()
            .await
            .map_err(|e| crate::http::transport_error("lnd", e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| crate::http::transport_error("lnd", e))?;
        Ok((status, bytes.to_vec()))
    }

    /// A unary call: the JSON answer, or the error LND answered.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, LightningError> {
        let (status, bytes) = self.send(request).await?;
        json_answer(status, &bytes)
    }

    /// Reads an invoice this node issued, by payment hash.
    pub async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        let path = format!("/v1/invoice/{}", hex::encode(payment_hash));
        let (status, bytes) = self.send(self.http.get(self.url(&path))).await?;
        // gRPC NotFound: "unable to locate invoice".
        if status == 404 {
            return Ok(InvoiceState::NotFound);
        }
        let value = json_answer(status, &bytes)?;
        let invoice: InvoiceBody = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnd: unreadable invoice: {e}")))?;
        Ok(match invoice.state.as_str() {
            "SETTLED" => {
                let preimage = STANDARD
                    .decode(invoice.r_preimage.as_bytes())
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .map(Preimage::new)
                    .ok_or_else(|| {
                        LightningError::Backend("lnd: r_preimage is not 32 base64 bytes".into())
                    })?;
                if !preimage.pays(payment_hash) {
                    return Err(LightningError::Backend(
                        "lnd returned a preimage that does not hash to the payment hash".into(),
                    ));
                }
                InvoiceState::Settled {
                    preimage,
                    amount_received_msat: invoice.amt_paid_msat,
                }
            }
            "CANCELED" => InvoiceState::Expired,
            "OPEN" | "ACCEPTED" => InvoiceState::Open,
            other => {
                return Err(LightningError::Backend(format!(
                    "lnd: unknown invoice state {other:?}"
                )));
            }
        })
    }

    /// The current state of an outgoing payment: `/v2/router/track/{hash}` sends it first.
    async fn track(&self, payment_hash: &PaymentHash) -> Result<Tracked, LightningError> {
        let path = format!(
            "/v2/router/track/{}?no_inflight_updates=false",
            URL_SAFE.encode(payment_hash)
        );
        let response = self
            .authed(self.http.get(self.url(&path)).timeout(self.request_timeout))
            .send()
            .await
            .map_err(|e| crate::http::transport_error("lnd", e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| crate::http::transport_error("lnd", e))?;
            // gRPC NotFound: "payment isn't initiated".
            if status == 404 {
                return Ok(Tracked::NotFound);
            }
            return Err(failure(status, &bytes));
        }
        let mut lines = Lines::new(response);
        let line = lines.next().await?.ok_or_else(|| {
            LightningError::Backend("lnd: the payment stream ended without a state".into())
        })?;
        match parse_line(&line)? {
            Update::Payment(payment) => self.tracked(payment, payment_hash),
            Update::Error(status, body) => Err(failure(status, body.to_string().as_bytes())),
        }
    }

    fn tracked(
        &self,
        body: PaymentBody,
        payment_hash: &PaymentHash,
    ) -> Result<Tracked, LightningError> {
        if !body
            .payment_hash
            .eq_ignore_ascii_case(&hex::encode(payment_hash))
        {
            return Err(LightningError::Backend(
                "lnd: reported a payment for another payment hash".into(),
            ));
        }
        Ok(match body.status.as_str() {
            "SUCCEEDED" => {
                let preimage = Preimage::from_hex(&body.payment_preimage).map_err(|_| {
                    LightningError::Backend("lnd: payment_preimage is not 64 hex characters".into())
                })?;
                Tracked::Succeeded(Payment::checked(
                    "lnd",
                    *payment_hash,
                    preimage,
                    body.value_msat,
                    body.fee_msat,
                )?)
            }
            "FAILED" => Tracked::Failed(failure_reason(&body.failure_reason)),
            "IN_FLIGHT" | "INITIATED" => Tracked::Pending,
            other => {
                return Err(LightningError::Backend(format!(
                    "lnd: unknown payment status {other:?}"
                )));
            }
        })
    }

    /// `POST /v1/invoices` (`AddInvoice`).
    async fn add_invoice(&self, body: &Value) -> Result<AddInvoiceBody, LightningError> {
        let value = self
            .call(self.http.post(self.url("/v1/invoices")).json(body))
            .await?;
        serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnd: unreadable invoice: {e}")))
    }

    /// After a payment call broke off: what the node knows decides; if it does not know yet,
    /// the outcome stays unknown (`error`, or `Timeout`) and the caller looks it up later.
    async fn after_interruption(
        &self,
        payment_hash: &PaymentHash,
        error: LightningError,
    ) -> Result<Payment, LightningError> {
        let unknown = still_unknown(error);
        match self.track(payment_hash).await {
            Ok(Tracked::Succeeded(payment)) => Ok(payment),
            Ok(Tracked::Failed(why)) => Err(why),
            Ok(Tracked::Pending | Tracked::NotFound) | Err(_) => Err(unknown),
        }
    }
}

/// Reads a macaroon file: binary as LND writes it (hex-encoded here), or already hex.
fn read_macaroon(path: &Path) -> std::io::Result<Secret> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("lnd: macaroon {}: {e}", path.display()))
    })?);
    let text = String::from_utf8_lossy(&bytes);
    let trimmed = text.trim();
    let is_hex = trimmed.len() >= 32
        && trimmed.len().is_multiple_of(2)
        && trimmed.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        return Ok(Secret::new(trimmed));
    }
    if bytes.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("lnd: macaroon {} is empty", path.display()),
        ));
    }
    Ok(Secret::new(hex::encode(&bytes[..])))
}

#[async_trait]
impl Receiver for Lnd {
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError> {
        // LND would issue an invoice without an amount: refuse a zero one here.
        request.amount_msat()?;
        let body = json!({
            "memo": request.memo,
            "value": request.amount_sats.to_string(),
            "expiry": request.expiry_secs.to_string(),
        });
        let added = self.add_invoice(&body).await?;
        let decoded = read_back("lnd", &added.payment_request, Some(&added.r_hash_hex()?))?;
        Ok(issued(&decoded))
    }

    async fn health(&self) -> Result<(), LightningError> {
        let value = match self.call(self.http.get(self.url("/v1/getinfo"))).await {
            Ok(value) => value,
            // The macaroon verified (a bad one fails with "verification failed") but lacks
            // `info:read`, as `invoice.macaroon` does: the credentials work for invoices.
            Err(LightningError::Unauthorized(why)) if why.ends_with("permission denied") => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let info: InfoBody = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnd: unreadable getinfo: {e}")))?;
        for chain in &info.chains {
            check_network("lnd", &chain.network, self.network)?;
        }
        Ok(())
    }

    async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        Lnd::lookup_invoice(self, payment_hash).await
    }

    fn can_lookup_invoices(&self) -> bool {
        true
    }

    /// `POST /v1/invoices` with neither `value` nor `value_msat`: LND issues it without an
    /// amount.
    async fn create_amountless_invoice(
        &self,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        let body = json!({ "memo": memo, "expiry": expiry_secs.to_string() });
        let added = self.add_invoice(&body).await?;
        read_back_amountless("lnd", &added.payment_request, Some(&added.r_hash_hex()?))
    }
}

impl Lnd {
    /// `SendPaymentV2` of a decoded invoice; `amt_msat` only for one without an amount.
    async fn send_payment(
        &self,
        decoded: &DecodedInvoice,
        amt_msat: Option<u64>,
        max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let hash = decoded.payment_hash;
        let mut body = json!({
            "payment_request": decoded.bolt11,
            "fee_limit_msat": max_fee_msat.to_string(),
            "timeout_seconds": ROUTING_TIMEOUT_SECS,
            "no_inflight_updates": false,
        });
        if let Some(msat) = amt_msat {
            body["amt_msat"] = json!(msat.to_string());
        }
        let sent = self
            .authed(
                self.http
                    .post(self.url("/v2/router/send"))
                    .timeout(self.pay_timeout)
                    .json(&body),
            )
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            // Nothing reached LND.
            Err(e) if !crate::http::NetworkCause::of(&e).may_have_been_sent() => {
                return Err(crate::http::transport_error("lnd", e));
            }
            Err(e) => {
                let error = crate::http::transport_error("lnd", e);
                return self.after_interruption(&hash, error).await;
            }
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            // Refused before the payment started (a bad invoice, a second payment, the
            // macaroon), unless the answer itself broke off.
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes,
                Err(e) => {
                    let error = crate::http::transport_error("lnd", e);
                    return self.after_interruption(&hash, error).await;
                }
            };
            return Err(failure(status, &bytes));
        }
        let mut lines = Lines::new(response);
        loop {
            let line = match lines.next().await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    let error = LightningError::Backend(
                        "lnd: the payment stream ended before the payment did".into(),
                    );
                    return self.after_interruption(&hash, error).await;
                }
                Err(error) => return self.after_interruption(&hash, error).await,
            };
            let update = match parse_line(&line) {
                Ok(update) => update,
                Err(error) => return self.after_interruption(&hash, error).await,
            };
            let body = match update {
                Update::Payment(body) => body,
                Update::Error(status, body) => {
                    let error = failure(status, body.to_string().as_bytes());
                    // The stream began: the payment may have started, whatever the error says
                    // of the node now (a node that stops answers `Unreachable` words).
                    if error.outcome_unknown() || matches!(error, LightningError::Unreachable(_)) {
                        return self.after_interruption(&hash, error).await;
                    }
                    return Err(error);
                }
            };
            match self.tracked(body, &hash) {
                Ok(Tracked::Succeeded(payment)) => {
                    if payment.fee_msat > max_fee_msat {
                        tracing::warn!(
                            fee_msat = payment.fee_msat,
                            max_fee_msat,
                            "lnd reports more routing fee than the limit it was given"
                        );
                    }
                    return Ok(payment);
                }
                Ok(Tracked::Failed(error)) => return Err(error),
                Ok(Tracked::Pending | Tracked::NotFound) => continue,
                Err(error) => return self.after_interruption(&hash, error).await,
            }
        }
    }
}

#[async_trait]
impl Payer for Lnd {
    async fn pay(&self, bolt11: &str, max_fee_msat: u64) -> Result<Payment, LightningError> {
        let (decoded, _) = invoice_to_pay(bolt11)?;
        self.send_payment(&decoded, None, max_fee_msat).await
    }

    /// `SendPaymentV2` with `amt_msat`, which LND takes for an invoice without an amount only.
    async fn pay_amount(
        &self,
        bolt11: &str,
        amount_msat: u64,
        max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        let decoded = amountless_to_pay(bolt11, amount_msat, self.network)?;
        self.send_payment(&decoded, Some(amount_msat), max_fee_msat)
            .await
    }

    fn can_pay_amountless(&self) -> bool {
        true
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        let value = self
            .call(self.http.get(self.url("/v1/balance/channels")))
            .await?;
        let balance: ChannelBalanceBody = serde_json::from_value(value)
            .map_err(|e| LightningError::Backend(format!("lnd: unreadable balance: {e}")))?;
        Ok(Balance {
            msat: balance.local_balance.msat,
        })
    }

    async fn lookup_payment(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError> {
        Ok(match self.track(payment_hash).await? {
            Tracked::Succeeded(payment) => PaymentLookup::Succeeded(payment),
            Tracked::Failed(why) => PaymentLookup::Failed(why.to_string()),
            Tracked::Pending => PaymentLookup::Pending,
            Tracked::NotFound => PaymentLookup::NotFound,
        })
    }

    fn network(&self) -> Network {
        self.network
    }

    fn name(&self) -> &'static str {
        "lnd"
    }
}
