//! `plannt decode`: what a macaroon, credential, challenge, invoice or receipt holds, for a
//! human or, with `--json`, for a program. It reads the three dialects: L402 (macaroons,
//! `WWW-Authenticate: L402 …`, `Authorization: L402 …`), MPP (`WWW-Authenticate: Payment …`,
//! `Authorization: Payment …`, `Payment-Receipt`, a session's receipt and the
//! `: plannt-session-debit {…}` comment that ends a session's stream) and x402
//! (`PAYMENT-REQUIRED`, `PAYMENT-SIGNATURE`, `PAYMENT-RESPONSE`), each with or without its header
//! name.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plannt_l402::mpp::{self, PaymentChallenge, PaymentCredential, SessionDebit, SessionReceipt};
use plannt_l402::x402::{self, PaymentPayload, PaymentRequired, SettlementResponse};
use plannt_l402::{
    Caveat, Challenge, Credential, Identifier, Macaroon, MacaroonError, base64_decode,
    base64url_decode,
};
use plannt_lightning::decode_invoice;
use serde_json::{Value, json};

use crate::error::Error;
use crate::out::{out, outln};

#[derive(clap::Args)]
pub struct Args {
    /// The string to decode; `-` reads it from standard input.
    input: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let input = if args.input == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
            .map_err(|e| Error::failed("cannot read standard input", e))?;
        text
    } else {
        args.input.clone()
    };
    let value = decode(&input)?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).expect("JSON values serialize")
        )?;
    } else {
        out!("{}", render(&value))?;
    }
    Ok(())
}

/// Decodes any of the forms into one JSON value; the text output is rendered from it.
pub fn decode(input: &str) -> Result<Value, Error> {
    let mut text = input.trim();
    if text.is_empty() {
        return Err(Error::Usage(
            "nothing to decode: give a macaroon, a credential, a challenge, an invoice or a receipt".into(),
        ));
    }
    if let Some(debit) = session_debit(text) {
        return debit;
    }
    let mut header = None;
    if let Some((name, rest)) = text.split_once(':') {
        let name = name.trim().to_ascii_lowercase();
        if HEADERS.contains(&name.as_str()) {
            header = Some(name);
            text = rest.trim();
        }
    }
    if text.is_empty() {
        return Err(Error::Usage(format!(
            "nothing to decode after the header name {}",
            header.unwrap_or_default()
        )));
    }
    let cannot = |what: &str, e: &dyn std::fmt::Display| {
        Error::Usage(format!("cannot decode this as {what}: {e}"))
    };
    match header.as_deref() {
        Some(mpp::PAYMENT_RECEIPT) => {
            if let Some(receipt) = session_receipt(text) {
                return Ok(session_receipt_json(&receipt));
            }
            let receipt = mpp::Receipt::parse(text).map_err(|e| cannot("a Payment-Receipt", &e))?;
            return Ok(mpp_receipt_json(&receipt));
        }
        Some(x402::PAYMENT_REQUIRED) => {
            let required =
                PaymentRequired::decode(text).map_err(|e| cannot("a PAYMENT-REQUIRED", &e))?;
            return Ok(payment_required_json(&required));
        }
        Some(x402::PAYMENT_SIGNATURE) => {
            let payload =
                PaymentPayload::decode(text).map_err(|e| cannot("a PAYMENT-SIGNATURE", &e))?;
            return Ok(payment_signature_json(&payload));
        }
        Some(x402::PAYMENT_RESPONSE) => {
            let response =
                SettlementResponse::decode(text).map_err(|e| cannot("a PAYMENT-RESPONSE", &e))?;
            return Ok(payment_response_json(&response));
        }
        _ => {}
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("payment ") || lower.starts_with("payment\t") {
        let is_challenge = header.as_deref() == Some("www-authenticate")
            || lower.contains("request=")
            || lower.contains("id=\"");
        if is_challenge {
            let challenges =
                PaymentChallenge::parse_list(text).map_err(|e| cannot("an MPP challenge", &e))?;
            let all: Vec<Value> = challenges.iter().map(mpp_challenge_json).collect();
            return Ok(match <[Value; 1]>::try_from(all) {
                Ok([one]) => one,
                Err(all) => json!({"kind": "mpp_challenges", "challenges": all}),
            });
        }
        let credential =
            PaymentCredential::parse(text).map_err(|e| cannot("an MPP credential", &e))?;
        return Ok(mpp_credential_json(&credential));
    }
    let bare = lower.strip_prefix("lightning:").unwrap_or(&lower);
    if header.is_none() && bare.starts_with("ln") && !bare.contains(' ') {
        return invoice_json(text);
    }
    let is_challenge = header.as_deref() == Some("www-authenticate")
        || lower.contains("macaroon=")
        || lower.contains("token=")
        || lower.contains("invoice=");
    let has_scheme = lower.starts_with("l402 ") || lower.starts_with("lsat ");
    if is_challenge {
        let challenge = Challenge::parse([text]).map_err(|e| Error::failed("cannot decode", e))?;
        return Ok(json!({
            "kind": "challenge",
            "scheme": challenge.scheme.as_str(),
            "version": challenge.version,
            "macaroon": macaroon_json(&challenge.macaroon),
            "invoice": challenge.invoice,
        }));
    }
    if has_scheme || header.as_deref() == Some("authorization") {
        let credential = Credential::parse(text).map_err(|e| Error::failed("cannot decode", e))?;
        let paid_hash = credential.preimage.hash();
        let macaroons: Vec<Value> = credential.macaroons.iter().map(macaroon_json).collect();
        let matches = credential.macaroons.iter().any(|m| {
            Identifier::decode(m.identifier()).is_ok_and(|id| id.payment_hash == paid_hash)
        });
        return Ok(json!({
            "kind": "credential",
            "scheme": credential.scheme.as_str(),
            "macaroons": macaroons,
            "preimage": credential.preimage.to_hex(),
            "preimage_hash": hex::encode(paid_hash),
            "preimage_matches": matches,
        }));
    }
    let macaroon = match parse_macaroon(text) {
        Ok(macaroon) => macaroon,
        // Not a macaroon: perhaps a header value given without its name.
        Err(e) => return bare_json_value(text).ok_or_else(|| Error::failed("cannot decode", e)),
    };
    Ok(macaroon_json(&macaroon))
}

/// The header names `plannt decode` takes before a value, lowercase.
const HEADERS: [&str; 6] = [
    "www-authenticate",
    "authorization",
    mpp::PAYMENT_RECEIPT,
    x402::PAYMENT_REQUIRED,
    x402::PAYMENT_SIGNATURE,
    x402::PAYMENT_RESPONSE,
];

/// A header value of the dialects' JSON given without its name: `PAYMENT-REQUIRED`,
/// `PAYMENT-SIGNATURE`, `PAYMENT-RESPONSE` (base64) or `Payment-Receipt` (base64url), told
/// apart by their fields.
fn bare_json_value(text: &str) -> Option<Value> {
    let bytes = base64_decode(text).or_else(|| base64url_decode(text))?;
    let json: Value = serde_json::from_slice(&bytes).ok()?;
    if json.get("accepts").is_some() {
        PaymentRequired::decode(text)
            .ok()
            .map(|r| payment_required_json(&r))
    } else if json.get("accepted").is_some() {
        PaymentPayload::decode(text)
            .ok()
            .map(|p| payment_signature_json(&p))
    } else if json.get("transaction").is_some() {
        SettlementResponse::decode(text)
            .ok()
            .map(|r| payment_response_json(&r))
    } else if json.get("reference").is_some() {
        session_receipt(text)
            .map(|r| session_receipt_json(&r))
            .or_else(|| mpp::Receipt::parse(text).ok().map(|r| mpp_receipt_json(&r)))
    } else {
        None
    }
}

/// The fields only a session's `Payment-Receipt` has: a receipt without any of them is read as
/// a charge's.
const SESSION_RECEIPT_FIELDS: [&str; 5] = [
    "debitSats",
    "heldSats",
    "balanceSats",
    "refundSats",
    "refundStatus",
];

/// A `Payment-Receipt` value that is a session's (it has a debit, a hold, a balance or a refund).
fn session_receipt(text: &str) -> Option<SessionReceipt> {
    let json: Value = serde_json::from_slice(&base64url_decode(text)?).ok()?;
    if !SESSION_RECEIPT_FIELDS
        .iter()
        .any(|field| json.get(field).is_some())
    {
        return None;
    }
    SessionReceipt::parse(text).ok()
}

/// The `: plannt-session-debit {…}` comment of a session's stream, given alone or among the
/// stream's other lines (with or without its leading `:`): `None` when there is none.
fn session_debit(text: &str) -> Option<Result<Value, Error>> {
    if !text.contains(mpp::DEBIT_COMMENT) {
        return None;
    }
    text.lines().find_map(|line| {
        let line = line.trim();
        let parsed = if line.starts_with(mpp::DEBIT_COMMENT) {
            SessionDebit::parse_line(&format!(": {line}"))
        } else {
            SessionDebit::parse_line(line)
        }?;
        Some(parsed.map(|debit| session_debit_json(&debit)).map_err(|e| {
            Error::Usage(format!(
                "cannot decode this as a {} comment: {e}",
                mpp::DEBIT_COMMENT
            ))
        }))
    })
}

fn session_receipt_json(receipt: &SessionReceipt) -> Value {
    json!({
        "kind": "mpp_session_receipt",
        "status": receipt.status,
        "method": receipt.method,
        "timestamp": receipt.timestamp,
        "session_id": receipt.reference,
        "debit_sats": receipt.debit_sats,
        "held_sats": receipt.held_sats,
        "balance_sats": receipt.balance_sats,
        "refund_sats": receipt.refund_status.map(|_| receipt.refund_sats),
        "refund_status": receipt.refund_status.map(|s| s.as_str()),
    })
}

fn session_debit_json(debit: &SessionDebit) -> Value {
    json!({
        "kind": "mpp_session_debit",
        "session_id": debit.session_id,
        "debit_sats": debit.debit_sats,
        "balance_sats": debit.balance_sats,
    })
}

/// An invoice's facts, or why it does not decode.
fn invoice_or_error(bolt11: &str) -> Value {
    invoice_json(bolt11).unwrap_or_else(|e| json!({"kind": "invoice", "error": e.to_string()}))
}

fn mpp_challenge_json(challenge: &PaymentChallenge) -> Value {
    let request = challenge.charge_request();
    let (request_json, invoice, matches) = match &request {
        Ok(r) => {
            let invoice = invoice_or_error(&r.method_details.invoice);
            let matches = r
                .method_details
                .payment_hash
                .as_deref()
                .map(|h| invoice["payment_hash"].as_str() == Some(h));
            (
                serde_json::to_value(r).unwrap_or_default(),
                invoice,
                matches,
            )
        }
        Err(e) => (json!({"error": e.to_string()}), Value::Null, None),
    };
    json!({
        "kind": "mpp_challenge",
        "scheme": mpp::SCHEME,
        "id": challenge.id,
        "realm": challenge.realm,
        "method": challenge.method,
        "intent": challenge.intent,
        "expires": challenge.expires,
        "description": challenge.description,
        "request": request_json,
        "invoice": invoice,
        "payment_hash_matches_invoice": matches,
    })
}

fn mpp_credential_json(credential: &PaymentCredential) -> Value {
    let preimage = credential.preimage();
    let request = credential.challenge.charge_request().ok();
    let named = request.as_ref().and_then(|r| r.payment_hash());
    json!({
        "kind": "mpp_credential",
        "scheme": mpp::SCHEME,
        "challenge": {
            "id": credential.challenge.id,
            "realm": credential.challenge.realm,
            "method": credential.challenge.method,
            "intent": credential.challenge.intent,
            "expires": credential.challenge.expires,
        },
        "request": request.as_ref().map(|r| serde_json::to_value(r).unwrap_or_default()),
        "preimage": preimage.map(|p| p.to_hex()),
        "preimage_hash": preimage.map(|p| hex::encode(p.hash())),
        "preimage_matches": preimage.zip(named).map(|(p, h)| p.hash() == h),
    })
}

fn mpp_receipt_json(receipt: &mpp::Receipt) -> Value {
    json!({
        "kind": "mpp_receipt",
        "status": receipt.status,
        "method": receipt.method,
        "timestamp": receipt.timestamp,
        "payment_hash": receipt.reference,
        "challenge_id": receipt.challenge_id,
    })
}

fn payment_required_json(required: &PaymentRequired) -> Value {
    let offers: Vec<Value> = required
        .accepts
        .iter()
        .map(|r| {
            json!({
                "scheme": r.scheme,
                "network": r.network,
                "network_name": r.network().map(|n| n.name()),
                "amount_msat": r.amount,
                "asset": r.asset,
                "pay_to": r.pay_to,
                "max_timeout_seconds": r.max_timeout_seconds,
                "lightning": r.is_exact_lightning(),
                "invoice": r.invoice().map(invoice_or_error),
                "extra": r.extra,
            })
        })
        .collect();
    json!({
        "kind": "x402_payment_required",
        "x402_version": required.x402_version,
        "error": required.error,
        "resource": required.resource,
        "accepts": offers,
    })
}

fn payment_signature_json(payload: &PaymentPayload) -> Value {
    json!({
        "kind": "x402_payment_signature",
        "x402_version": payload.x402_version,
        "resource": payload.resource,
        "accepted": payload.accepted,
        "invoice_paid": payload.payload.invoice,
        "invoice_is_the_offered_one": payload.accepted.invoice() == Some(payload.payload.invoice.as_str()),
    })
}

fn payment_response_json(response: &SettlementResponse) -> Value {
    json!({
        "kind": "x402_payment_response",
        "success": response.success,
        "error_reason": response.error_reason,
        "payment_hash": response.transaction,
        "network": response.network,
        "payer": response.payer,
        "extra": response.extra,
    })
}

fn invoice_json(text: &str) -> Result<Value, Error> {
    let invoice = decode_invoice(text).map_err(|e| Error::failed("cannot decode", e))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(json!({
        "kind": "invoice",
        "network": invoice.network.as_str(),
        "amount_msat": invoice.amount_msat,
        "amount_sats": invoice.amount_sats(),
        "payment_hash": hex::encode(invoice.payment_hash),
        "payee": hex::encode(invoice.payee),
        "description": invoice.description,
        "created_at": rfc3339(invoice.created_at),
        "expiry_secs": invoice.expiry_secs,
        "expires_at": rfc3339(invoice.expires_at()),
        "expired": invoice.is_expired_at(now),
        "signature_valid": true,
    }))
}

fn parse_macaroon(text: &str) -> Result<Macaroon, MacaroonError> {
    // gRPC metadata carries macaroons as hex; an even run of hex digits starting 02 is that.
    let hex_digits = text.bytes().all(|b| b.is_ascii_hexdigit());
    if text.starts_with("02")
        && hex_digits
        && let Ok(bytes) = hex::decode(text)
    {
        return Macaroon::from_binary(&bytes);
    }
    if base64_decode(text).is_none() {
        return Err(MacaroonError::NotBase64);
    }
    Macaroon::from_base64(text)
}

fn macaroon_json(macaroon: &Macaroon) -> Value {
    let identifier = match Identifier::decode(macaroon.identifier()) {
        Ok(id) => json!({
            "version": Identifier::VERSION,
            "payment_hash": hex::encode(id.payment_hash),
            "token_id": hex::encode(id.token_id),
        }),
        Err(e) => json!({ "raw": hex::encode(macaroon.identifier()), "error": e.to_string() }),
    };
    let mut valid_until: Option<u64> = None;
    let caveats: Vec<Value> = macaroon
        .caveats()
        .iter()
        .map(|packet| {
            if !packet.is_first_party() {
                return json!({ "kind": "third_party", "id": hex::encode(&packet.id) });
            }
            let text = String::from_utf8_lossy(&packet.id).into_owned();
            match Caveat::parse(&packet.id) {
                Ok(Caveat::Services(list)) => json!({
                    "text": text, "kind": "services",
                    "services": list.iter().map(|s| json!({"name": s.name, "tier": s.tier})).collect::<Vec<_>>(),
                }),
                Ok(Caveat::ValidUntil { service, unix }) => {
                    valid_until = Some(valid_until.map_or(unix, |t| t.min(unix)));
                    json!({ "text": text, "kind": "valid_until", "service": service,
                            "unix": unix, "time": rfc3339(unix) })
                }
                Ok(Caveat::Capabilities { service, capabilities }) => json!({
                    "text": text, "kind": "capabilities", "service": service, "capabilities": capabilities,
                }),
                Ok(Caveat::Condition { service, name, value }) => json!({
                    "text": text, "kind": "condition", "service": service, "name": name, "value": value,
                }),
                Err(e) => json!({ "text": text, "kind": "unknown", "error": e.to_string() }),
            }
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "kind": "macaroon",
        "format": "libmacaroons V2",
        "bytes": macaroon.to_binary().len(),
        "location": macaroon.location().map(|l| String::from_utf8_lossy(l).into_owned()),
        "identifier": identifier,
        "caveats": caveats,
        "valid_until": valid_until,
        "expires": valid_until.map(rfc3339),
        "expired": valid_until.map(|t| now >= t),
        "signature": hex::encode(macaroon.signature()),
        "base64": macaroon.to_base64(),
    })
}

fn rfc3339(unix: u64) -> String {
    // Unix seconds beyond what SystemTime holds are shown as numbers only.
    UNIX_EPOCH
        .checked_add(Duration::from_secs(unix))
        .filter(|t| *t < UNIX_EPOCH + Duration::from_secs(253_402_300_799))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| format!("unix {unix}"))
}

fn render(value: &Value) -> String {
    let mut out = String::new();
    match value["kind"].as_str() {
        Some("challenge") => {
            out += &format!("challenge ({})\n", value["scheme"].as_str().unwrap_or(""));
            out += &format!(
                "  invoice       {}\n",
                value["invoice"].as_str().unwrap_or("")
            );
            out += &render_macaroon(&value["macaroon"], "  ");
        }
        Some("credential") => {
            out += &format!("credential ({})\n", value["scheme"].as_str().unwrap_or(""));
            out += &format!(
                "  preimage      {}\n",
                value["preimage"].as_str().unwrap_or("")
            );
            out += &format!(
                "  sha256        {}\n",
                value["preimage_hash"].as_str().unwrap_or("")
            );
            let matches = value["preimage_matches"].as_bool() == Some(true);
            out += &format!(
                "  pays          {}\n",
                if matches {
                    "yes: the preimage hashes to a macaroon's payment hash"
                } else {
                    "NO: the preimage does not pay any macaroon here"
                }
            );
            for m in value["macaroons"].as_array().into_iter().flatten() {
                out += &render_macaroon(m, "  ");
            }
        }
        Some("invoice") => {
            let field = |name: &str, v: String| format!("  {name:<13} {v}\n");
            out += "invoice (BOLT11)\n";
            out += &field(
                "network",
                value["network"].as_str().unwrap_or("").to_string(),
            );
            out += &field(
                "amount",
                match value["amount_msat"].as_u64() {
                    Some(msat) => format!(
                        "{} ({msat} msat)",
                        crate::out::sats(value["amount_sats"].as_u64().unwrap_or_default())
                    ),
                    None => {
                        "none (amountless: plannt get and plannt mcp never pay these)".to_string()
                    }
                },
            );
            out += &field(
                "payment hash",
                value["payment_hash"].as_str().unwrap_or("").to_string(),
            );
            out += &field("payee", value["payee"].as_str().unwrap_or("").to_string());
            out += &field(
                "description",
                value["description"]
                    .as_str()
                    .unwrap_or("(hash only)")
                    .to_string(),
            );
            out += &field(
                "created",
                value["created_at"].as_str().unwrap_or("").to_string(),
            );
            let expired = if value["expired"].as_bool() == Some(true) {
                " (expired)"
            } else {
                ""
            };
            out += &field(
                "expires",
                format!("{}{expired}", value["expires_at"].as_str().unwrap_or("")),
            );
            out += &field("signature", "valid".to_string());
        }
        Some("mpp_session_receipt" | "mpp_session_debit") => {
            let field = |name: &str, v: &str| format!("  {name:<13} {v}\n");
            let sats = |name: &str| value[name].as_u64().map(crate::out::sats);
            let receipt = value["kind"] == "mpp_session_receipt";
            out += if receipt {
                "session receipt (MPP)\n"
            } else {
                "session debit (the end of a stream)\n"
            };
            out += &field("session id", value["session_id"].as_str().unwrap_or(""));
            if receipt {
                out += &field("status", value["status"].as_str().unwrap_or(""));
                out += &field("time", value["timestamp"].as_str().unwrap_or(""));
            }
            if let Some(debit) = sats("debit_sats") {
                out += &field("debited", &debit);
            }
            if let Some(held) = sats("held_sats") {
                out += &field(
                    "held",
                    &format!("{held} while the stream runs (its debit ends the stream)"),
                );
            }
            if let Some(refund) = sats("refund_sats") {
                let status = value["refund_status"].as_str().unwrap_or("");
                out += &field("refunded", &format!("{refund} ({status})"));
            }
            match sats("balance_sats") {
                Some(balance) => out += &field("balance", &format!("{balance} left")),
                None if !receipt || value["debit_sats"].is_u64() => {
                    out += &field("balance", "(the gateway could not read it)")
                }
                None => {}
            }
        }
        Some("macaroon") | None => out += &render_macaroon(value, ""),
        Some(kind) => {
            // The dialects' JSON: a title, then the fields as they are.
            out += &format!("{}\n", kind.replace('_', " "));
            if let Some(fields) = value.as_object() {
                for (name, field) in fields.iter().filter(|(n, _)| *n != "kind") {
                    let text = match field {
                        Value::String(s) => s.clone(),
                        Value::Null => "(none)".into(),
                        other => serde_json::to_string_pretty(other)
                            .unwrap_or_default()
                            .replace('\n', "\n                "),
                    };
                    out += &format!("  {:<13} {text}\n", name.replace('_', " "));
                }
            }
        }
    }
    out
}

fn render_macaroon(m: &Value, indent: &str) -> String {
    let mut out = format!(
        "{indent}macaroon ({}, {} bytes)\n",
        m["format"].as_str().unwrap_or(""),
        m["bytes"]
    );
    let field = |name: &str, v: &str| format!("{indent}  {name:<13} {v}\n");
    out += &field("location", m["location"].as_str().unwrap_or("(none)"));
    let id = &m["identifier"];
    if let Some(hash) = id["payment_hash"].as_str() {
        out += &field("version", &id["version"].to_string());
        out += &field("payment hash", hash);
        out += &field("token id", id["token_id"].as_str().unwrap_or(""));
    } else {
        out += &field(
            "identifier",
            &format!(
                "{} ({})",
                id["raw"].as_str().unwrap_or(""),
                id["error"].as_str().unwrap_or("")
            ),
        );
    }
    let caveats = m["caveats"].as_array().cloned().unwrap_or_default();
    if caveats.is_empty() {
        out += &field("caveats", "(none)");
    }
    for (i, c) in caveats.iter().enumerate() {
        let text = c["text"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| "(third-party caveat)".into());
        let note = match c["kind"].as_str() {
            Some("unknown") => format!("   <- unreadable: {}", c["error"].as_str().unwrap_or("")),
            Some("valid_until") => format!("   ({})", c["time"].as_str().unwrap_or("")),
            _ => String::new(),
        };
        out += &field(
            if i == 0 { "caveats" } else { "" },
            &format!("{}. {text}{note}", i + 1),
        );
    }
    let expires = match (m["expires"].as_str(), m["expired"].as_bool()) {
        (Some(t), Some(true)) => format!("{t} (expired)"),
        (Some(t), _) => t.to_string(),
        (None, _) => "no expiry caveat".to_string(),
    };
    out += &field("expires", &expires);
    out += &field("signature", m["signature"].as_str().unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::decode;
    use plannt_l402::mpp::{
        ChallengeKey, ChallengeKeys, ChargeOffer, PaymentCredential, Receipt, RefundStatus,
        SessionDebit, SessionReceipt,
    };
    use plannt_l402::x402::{
        ExactOffer, PaymentPayload, PaymentRequired, ResourceInfo, SettlementResponse, TagKey,
        TagKeys,
    };
    use plannt_l402::{Network, PaymentHash, Preimage};

    const INVOICE: &str = "lnbcrt210n1plannttest";

    fn preimage() -> Preimage {
        Preimage::new([7; 32])
    }

    fn challenge() -> plannt_l402::mpp::PaymentChallenge {
        ChallengeKeys::new(vec![ChallengeKey::from_secret(b"k")])
            .mint_charge(&ChargeOffer {
                realm: "api.example",
                route: "demo",
                amount_sats: 21,
                invoice: INVOICE,
                payment_hash: preimage().hash(),
                network: Network::Regtest,
                expires_at: 1_900_000_000,
                description: None,
            })
            .unwrap()
    }

    fn requirements() -> plannt_l402::x402::PaymentRequirements {
        TagKeys::new(vec![TagKey::new([1; 32])])
            .requirements(&ExactOffer {
                route: "demo",
                amount_msat: 21_000,
                invoice: INVOICE,
                payment_hash: preimage().hash(),
                network: Network::Regtest,
                max_timeout_seconds: 600,
                valid_until: 1_900_000_000,
            })
            .unwrap()
    }

    #[test]
    fn mpp_challenges_credentials_and_receipts_decode_with_or_without_the_header_name() {
        let header = challenge().to_header_value();
        for input in [header.clone(), format!("WWW-Authenticate: {header}")] {
            let value = decode(&input).unwrap();
            assert_eq!(value["kind"], "mpp_challenge", "{value}");
            assert_eq!(value["request"]["amount"], "21");
            assert_eq!(value["request"]["methodDetails"]["network"], "regtest");
            assert_eq!(value["expires"], "2030-03-17T17:46:40Z");
        }
        let credential = PaymentCredential::charge(&challenge(), &preimage()).to_header_value();
        for input in [credential.clone(), format!("authorization: {credential}")] {
            let value = decode(&input).unwrap();
            assert_eq!(value["kind"], "mpp_credential", "{value}");
            assert_eq!(value["preimage"], preimage().to_hex());
            assert_eq!(value["preimage_matches"], true);
        }
        let receipt = Receipt::charge(&preimage().hash(), "id", 1_800_000_000).to_header_value();
        for input in [receipt.clone(), format!("Payment-Receipt: {receipt}")] {
            let value = decode(&input).unwrap();
            assert_eq!(value["kind"], "mpp_receipt", "{value}");
            assert_eq!(value["payment_hash"], preimage().hash().to_hex());
        }
        let text = super::render(&decode(&receipt).unwrap());
        assert!(text.starts_with("mpp receipt\n"), "{text}");
        assert!(text.contains("payment hash"), "{text}");
    }

    #[test]
    fn session_receipts_decode_with_their_debit_hold_balance_and_refund() {
        let id = preimage().hash();
        let debited = SessionReceipt::debited(&id, 17, Some(1983), 1_800_000_000).to_header_value();
        for input in [debited.clone(), format!("Payment-Receipt: {debited}")] {
            let value = decode(&input).unwrap();
            assert_eq!(value["kind"], "mpp_session_receipt", "{value}");
            assert_eq!(value["session_id"], id.to_hex());
            assert_eq!(value["debit_sats"], 17);
            assert_eq!(value["balance_sats"], 1983);
            assert_eq!(value["held_sats"], serde_json::Value::Null);
            assert_eq!(value["refund_status"], serde_json::Value::Null);
        }
        let text = super::render(&decode(&debited).unwrap());
        assert!(text.starts_with("session receipt (MPP)\n"), "{text}");
        assert!(text.contains("debited       17 sats\n"), "{text}");
        assert!(text.contains("balance       1983 sats left\n"), "{text}");

        let holding = SessionReceipt::holding(&id, 40, 60, 1_800_000_000).to_header_value();
        let value = decode(&holding).unwrap();
        assert_eq!(
            (value["held_sats"].as_u64(), value["balance_sats"].as_u64()),
            (Some(40), Some(60))
        );
        let text = super::render(&value);
        assert!(
            text.contains("held          40 sats while the stream runs"),
            "{text}"
        );

        let closed = SessionReceipt::closed(&id, 98, RefundStatus::Succeeded, 1_800_000_000)
            .to_header_value();
        let value = decode(&format!("payment-receipt: {closed}")).unwrap();
        assert_eq!(value["refund_sats"], 98, "{value}");
        assert_eq!(value["refund_status"], "succeeded");
        let text = super::render(&value);
        assert!(
            text.contains("refunded      98 sats (succeeded)\n"),
            "{text}"
        );
        let skipped =
            SessionReceipt::closed(&id, 0, RefundStatus::Skipped, 1_800_000_000).to_header_value();
        let value = decode(&skipped).unwrap();
        assert_eq!(
            (
                value["refund_sats"].as_u64(),
                value["refund_status"].as_str()
            ),
            (Some(0), Some("skipped"))
        );

        // A charge's receipt stays a charge's.
        let charge = Receipt::charge(&id, "id", 1_800_000_000).to_header_value();
        assert_eq!(decode(&charge).unwrap()["kind"], "mpp_receipt");
    }

    #[test]
    fn the_session_debit_comment_decodes_alone_or_in_a_pasted_stream() {
        let debit = SessionDebit {
            session_id: preimage().hash().to_hex(),
            debit_sats: 17,
            balance_sats: Some(1983),
        }
        .to_sse();
        let stream = format!("data: {{\"choices\":[]}}\n\n{debit}data: [DONE]\n\n");
        let bare = debit.trim().trim_start_matches(':').trim().to_string();
        for input in [debit.clone(), stream, bare] {
            let value = decode(&input).unwrap();
            assert_eq!(value["kind"], "mpp_session_debit", "{input}: {value}");
            assert_eq!(value["session_id"], preimage().hash().to_hex());
            assert_eq!(value["debit_sats"], 17);
            assert_eq!(value["balance_sats"], 1983);
        }
        let text = super::render(&decode(&debit).unwrap());
        assert!(text.starts_with("session debit"), "{text}");
        assert!(text.contains("debited       17 sats\n"), "{text}");
        let unread = SessionDebit {
            session_id: preimage().hash().to_hex(),
            debit_sats: 1,
            balance_sats: None,
        }
        .to_sse();
        let text = super::render(&decode(&unread).unwrap());
        assert!(text.contains("debited       1 sat\n"), "{text}");
        assert!(text.contains("could not read it"), "{text}");
        let error = decode(": plannt-session-debit {\"debitSats\":\"x\"}")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cannot decode this as a plannt-session-debit comment"),
            "{error}"
        );
    }

    #[test]
    fn x402_headers_decode_with_or_without_the_header_name() {
        let resource = ResourceInfo {
            url: "https://api.example/demo".into(),
            description: None,
            mime_type: None,
        };
        let required = PaymentRequired::new(resource.clone(), vec![requirements()]).encode();
        let payload = PaymentPayload::exact(Some(resource), &requirements()).encode();
        let settled = SettlementResponse {
            success: true,
            error_reason: None,
            transaction: PaymentHash([2; 32]).to_hex(),
            network: Network::Regtest.caip2().into(),
            payer: Some("anonymous".into()),
            extra: None,
        }
        .encode();
        for (name, value, kind) in [
            ("PAYMENT-REQUIRED", &required, "x402_payment_required"),
            ("payment-signature", &payload, "x402_payment_signature"),
            ("Payment-Response", &settled, "x402_payment_response"),
        ] {
            for input in [value.clone(), format!("{name}: {value}")] {
                let decoded = decode(&input).unwrap();
                assert_eq!(decoded["kind"], kind, "{input}: {decoded}");
            }
        }
        let value = decode(&required).unwrap();
        assert_eq!(value["accepts"][0]["amount_msat"], "21000");
        assert_eq!(value["accepts"][0]["network_name"], "regtest");
        assert_eq!(value["accepts"][0]["lightning"], true);
        let value = decode(&payload).unwrap();
        assert_eq!(value["invoice_is_the_offered_one"], true);
        assert_eq!(value["invoice_paid"], INVOICE);
    }

    #[test]
    fn bad_dialect_values_are_clear_errors() {
        for (input, says) in [
            (
                "PAYMENT-REQUIRED: !!!",
                "cannot decode this as a PAYMENT-REQUIRED",
            ),
            (
                "payment-signature: e30=",
                "cannot decode this as a PAYMENT-SIGNATURE",
            ),
            (
                "Payment-Receipt: %%%",
                "cannot decode this as a Payment-Receipt",
            ),
            (
                "Authorization: Payment !!!",
                "cannot decode this as an MPP credential",
            ),
            (
                "WWW-Authenticate: Payment realm=\"x\"",
                "cannot decode this as an MPP challenge",
            ),
            (
                "PAYMENT-RESPONSE:",
                "nothing to decode after the header name",
            ),
        ] {
            let error = decode(input).unwrap_err().to_string();
            assert!(error.contains(says), "{input}: {error}");
        }
    }
}
