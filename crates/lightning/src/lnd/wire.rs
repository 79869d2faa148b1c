//! LND's REST wire format, as lnd v0.21's grpc-gateway writes it: the protojson bodies we read
//! (int64 as strings), its error answers mapped to [`LightningError`]s, and the newline-delimited
//! stream of payment updates that `/v2/router/send` and `/v2/router/track` answer.

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::LightningError;

/// The longest line of a payment stream we read (a payment with many HTLC attempts is long).
const MAX_LINE_BYTES: usize = 4 << 20;

/// `lnrpc.Payment`, as `/v2/router/send` and `/v2/router/track` stream it.
#[derive(Deserialize)]
pub(super) struct PaymentBody {
    pub(super) payment_hash: String,
    #[serde(default)]
    pub(super) payment_preimage: String,
    pub(super) status: String,
    #[serde(default, deserialize_with = "int64")]
    pub(super) value_msat: u64,
    #[serde(default, deserialize_with = "int64")]
    pub(super) fee_msat: u64,
    #[serde(default)]
    pub(super) failure_reason: String,
}

/// One line of a grpc-gateway stream.
#[derive(Deserialize)]
struct StreamLine {
    #[serde(default)]
    result: Option<PaymentBody>,
    #[serde(default)]
    error: Option<Value>,
}

/// `lnrpc.AddInvoiceResponse`.
#[derive(Deserialize)]
pub(super) struct AddInvoiceBody {
    pub(super) r_hash: String,
    pub(super) payment_request: String,
}

impl AddInvoiceBody {
    /// `r_hash` (standard base64) as hex, to compare with the invoice's payment hash.
    pub(super) fn r_hash_hex(&self) -> Result<String, LightningError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(self.r_hash.as_bytes())
            .map(hex::encode)
            .map_err(|_| LightningError::Backend("lnd: r_hash is not base64".into()))
    }
}

/// The fields of `lnrpc.Invoice` we read.
#[derive(Deserialize)]
pub(super) struct InvoiceBody {
    pub(super) state: String,
    #[serde(default)]
    pub(super) r_preimage: String,
    #[serde(default, deserialize_with = "int64")]
    pub(super) amt_paid_msat: u64,
}

/// `lnrpc.Amount`.
#[derive(Deserialize)]
pub(super) struct AmountBody {
    #[serde(deserialize_with = "int64")]
    pub(super) msat: u64,
}

/// `lnrpc.ChannelBalanceResponse`.
#[derive(Deserialize)]
pub(super) struct ChannelBalanceBody {
    pub(super) local_balance: AmountBody,
}

#[derive(Deserialize)]
pub(super) struct ChainBody {
    #[serde(default)]
    pub(super) network: String,
}

/// The fields of `lnrpc.GetInfoResponse` we read.
#[derive(Deserialize)]
pub(super) struct InfoBody {
    #[serde(default)]
    pub(super) chains: Vec<ChainBody>,
}

/// An int64/uint64 the way protojson writes it (a string), or a plain number.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => text.parse().map_err(serde::de::Error::custom),
        Value::Number(number) => number
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("not a non-negative integer")),
        other => Err(serde::de::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// A JSON answer, or the error LND answered instead.
pub(super) fn json_answer(status: u16, bytes: &[u8]) -> Result<Value, LightningError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(bytes)
            .map_err(|_| LightningError::Backend("lnd: the answer is not JSON".into()));
    }
    Err(failure(status, bytes))
}

/// Maps an LND error answer (`{"code","message"}`, or `{"error":{…}}` from a stream).
pub(super) fn failure(status: u16, body: &[u8]) -> LightningError {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let inner = value
        .get("error")
        .filter(|e| e.is_object())
        .unwrap_or(&value);
    let code = inner.get("code").and_then(Value::as_i64);
    let message = inner
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                text
            }
        });
    map_error(status, code, &message)
}

/// LND's errors by gRPC code and message: most are gRPC `Unknown` (HTTP 500) with a message.
fn map_error(status: u16, code: Option<i64>, message: &str) -> LightningError {
    let lower = message.to_ascii_lowercase();
    let unauthorized = matches!(status, 401 | 403)
        || matches!(code, Some(7 | 16))
        || lower.contains("macaroon")
        || lower.contains("verification failed")
        || lower.contains("permission denied")
        || lower.contains("root key with id");
    if unauthorized {
        return LightningError::Unauthorized(format!("lnd: {message}"));
    }
    if lower.contains("wallet locked") || lower.contains("in the process of starting") {
        return LightningError::Unreachable(format!("lnd: {message}"));
    }
    // AlreadyExists: "invoice is already paid", "payment is in transition", "payment already
    // exists" (initiated, not yet in flight).
    if lower.contains("already paid") {
        return LightningError::AlreadyPaid;
    }
    if code == Some(6) || status == 409 {
        return LightningError::Backend(format!(
            "lnd: {message}: a payment of this invoice is in flight; look it up, do not pay again"
        ));
    }
    if lower.contains("invoice expired") {
        return LightningError::InvoiceExpired;
    }
    if lower.contains("invalid bech32")
        || lower.contains("checksum")
        || lower.contains("not for current active network")
        || lower.contains("amount must be specified")
        || lower.contains("zero-amount")
        || lower.contains("amount must not be specified")
    {
        return LightningError::InvalidInvoice(format!("lnd: {message}"));
    }
    if status == 404 {
        return LightningError::Backend(format!(
            "lnd: {message} (HTTP 404: is this LND's REST port?)"
        ));
    }
    LightningError::Backend(format!("lnd: {message} (HTTP {status})"))
}

/// `lnrpc.PaymentFailureReason`: a failed payment paid nothing.
pub(super) fn failure_reason(reason: &str) -> LightningError {
    match reason {
        "FAILURE_REASON_NO_ROUTE" => {
            LightningError::NoRoute("lnd: no route to the payee within the fee limit".into())
        }
        "FAILURE_REASON_INSUFFICIENT_BALANCE" => {
            LightningError::InsufficientBalance("lnd: not enough outbound liquidity".into())
        }
        "FAILURE_REASON_TIMEOUT" => {
            LightningError::PaymentFailed("lnd: no route found before the payment timeout".into())
        }
        "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS" => LightningError::PaymentFailed(
            "lnd: the payee refused the payment (unknown payment hash or wrong amount)".into(),
        ),
        "FAILURE_REASON_CANCELED" => {
            LightningError::PaymentFailed("lnd: the payment was canceled".into())
        }
        other => LightningError::PaymentFailed(format!("lnd: {other}")),
    }
}

pub(super) enum Update {
    Payment(PaymentBody),
    Error(u16, Value),
}

pub(super) fn parse_line(line: &[u8]) -> Result<Update, LightningError> {
    let unreadable = || LightningError::Backend("lnd: unreadable payment update".into());
    let parsed: StreamLine = serde_json::from_slice(line).map_err(|_| unreadable())?;
    match (parsed.result, parsed.error) {
        (_, Some(error)) => {
            // The stream's HTTP status is already 200: take it from the gRPC code.
            let status = match error.get("code").and_then(Value::as_i64) {
                Some(5) => 404,
                Some(6) => 409,
                Some(7) => 403,
                Some(16) => 401,
                _ => 500,
            };
            Ok(Update::Error(status, json!({ "error": error })))
        }
        (Some(payment), None) => Ok(Update::Payment(payment)),
        (None, None) => Err(unreadable()),
    }
}

/// The lines of a newline-delimited JSON stream.
pub(super) struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
    done: bool,
}

impl Lines {
    pub(super) fn new(response: reqwest::Response) -> Self {
        Lines {
            response,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// The next non-empty line, `None` at the end of the stream.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<u8>>, LightningError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            if self.done {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buffer)));
            }
            match self
                .response
                .chunk()
                .await
                .map_err(|e| crate::http::transport_error("lnd", e))?
            {
                Some(chunk) => {
                    self.buffer.extend_from_slice(&chunk);
                    if self.buffer.len() > MAX_LINE_BYTES {
                        return Err(LightningError::Backend(
                            "lnd: a payment update longer than we read".into(),
                        ));
                    }
                }
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers lnd gives, as grpc-gateway writes them.
    #[test]
    fn maps_the_errors_lnd_answers() {
        let cases: [(u16, &str, &str); 9] = [
            (
                500,
                r#"{"code":2,"message":"verification failed: signature mismatch after caveat verification","details":[]}"#,
                "unauthorized",
            ),
            (
                500,
                r#"{"code":2,"message":"expected 1 macaroon, got 0","details":[]}"#,
                "unauthorized",
            ),
            (
                409,
                r#"{"error":{"code":6,"message":"invoice is already paid","details":[]}}"#,
                "already_paid",
            ),
            (
                409,
                r#"{"error":{"code":6,"message":"payment is in transition","details":[]}}"#,
                "backend",
            ),
            (
                500,
                r#"{"error":{"code":2,"message":"invoice expired. Valid until 2026-01-01 00:00:00 +0000 UTC","details":[]}}"#,
                "invoice_expired",
            ),
            (
                500,
                r#"{"code":2,"message":"invoice not for current active network 'regtest'","details":[]}"#,
                "invalid_invoice",
            ),
            (
                503,
                r#"{"code":2,"message":"wallet locked, unlock it to enable full RPC access","details":[]}"#,
                "unreachable",
            ),
            (
                404,
                r#"{"code":5,"message":"Not Found","details":[]}"#,
                "backend",
            ),
            (502, "<html>Bad Gateway</html>", "backend"),
        ];
        for (status, body, code) in cases {
            assert_eq!(failure(status, body.as_bytes()).code(), code, "{body}");
        }
        // A payment in flight must be looked up, not paid again.
        assert!(
            failure(409, br#"{"code":6,"message":"payment is in transition"}"#).outcome_unknown()
        );
    }

    #[test]
    fn reads_int64_as_strings_and_numbers() {
        let body: AmountBody = serde_json::from_str(r#"{"msat":"1234"}"#).unwrap();
        assert_eq!(body.msat, 1234);
        let body: AmountBody = serde_json::from_str(r#"{"msat":99}"#).unwrap();
        assert_eq!(body.msat, 99);
        assert!(serde_json::from_str::<AmountBody>(r#"{"msat":"-5"}"#).is_err());
    }
}
