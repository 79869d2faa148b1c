//! `plannt decode`: what a macaroon, credential or challenge holds, for a human or, with
//! `--json`, for a program.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plannt_l402::{
    Caveat, Challenge, Credential, Identifier, Macaroon, MacaroonError, base64_decode,
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
            "nothing to decode: give a macaroon, a credential or a challenge".into(),
        ));
    }
    let mut header = None;
    if let Some((name, rest)) = text.split_once(':') {
        let name = name.trim();
        if name.eq_ignore_ascii_case("www-authenticate")
            || name.eq_ignore_ascii_case("authorization")
        {
            header = Some(name.to_ascii_lowercase());
            text = rest.trim();
        }
    }
    let lower = text.to_ascii_lowercase();
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
    let macaroon = parse_macaroon(text).map_err(|e| Error::failed("cannot decode", e))?;
    Ok(macaroon_json(&macaroon))
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
                    None => "none (amountless: Plannt never pays these)".to_string(),
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
        _ => out += &render_macaroon(value, ""),
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
