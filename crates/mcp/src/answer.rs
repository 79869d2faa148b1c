//! Tool results: a response as a model reads it (status, headers, the body as text or base64,
//! cut at a size, the receipt), and every failure as an `isError` result that says what
//! happened, whether anything was paid, and what to do next.

use std::time::{Duration, SystemTime};

use base64::Engine;
use plannt_client::lightning::LightningError;
use plannt_client::{
    ClientError, NetworkCause, NetworkError, OverBudget, Policy, Receipt, Refusal, Step, Window,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

/// A successful result: the JSON as text for the model, and as structured content.
pub fn ok(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// An `isError` result: `message` (what happened and what to do next) as the text, and the
/// details with `error` (a stable code) and `message` as structured content.
pub fn error(code: &str, message: String, details: Value) -> CallToolResult {
    let mut value = match details {
        Value::Object(map) => Value::Object(map),
        _ => json!({}),
    };
    value["error"] = json!(code);
    value["message"] = json!(message);
    let mut result = CallToolResult::structured_error(value);
    result.content = vec![ContentBlock::text(message)];
    result
}

/// A bad argument: the call was not made.
pub fn bad_argument(message: impl Into<String>) -> CallToolResult {
    let message = message.into();
    error(
        "bad_argument",
        format!("{message}. Nothing was sent or paid; fix the argument and call again."),
        json!({}),
    )
}

/// A body as a tool result carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The text, when the bytes shown are UTF-8.
    pub text: Option<String>,
    /// The bytes shown, base64, when they are not.
    pub base64: Option<String>,
    /// How many bytes are shown.
    pub shown: usize,
    /// Whether the server sent more than that.
    pub truncated: bool,
}

/// Renders the first bytes of a body; `truncated` says the server sent more. A cut that splits
/// a UTF-8 character drops its first bytes, so the text stays text.
pub fn body(bytes: &[u8], truncated: bool) -> Body {
    match std::str::from_utf8(bytes) {
        Ok(text) => Body {
            text: Some(text.to_string()),
            base64: None,
            shown: bytes.len(),
            truncated,
        },
        // An incomplete character at the end of a cut body: keep the text before it.
        Err(e) if truncated && e.error_len().is_none() && e.valid_up_to() > 0 => {
            let valid = &bytes[..e.valid_up_to()];
            Body {
                text: Some(String::from_utf8_lossy(valid).into_owned()),
                base64: None,
                shown: valid.len(),
                truncated,
            }
        }
        Err(_) => Body {
            text: None,
            base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            shown: bytes.len(),
            truncated,
        },
    }
}

/// The receipt as tool results show it.
pub fn receipt(r: &Receipt) -> Value {
    json!({
        "dialect": r.dialect.as_str(),
        "amount_sats": r.amount_sats,
        "fee_msat": r.fee_msat,
        "payment_hash": r.payment_hash,
        "preimage": r.preimage,
        "reused_token": r.reused_token,
        "recovered": r.recovered,
        "session": r.session.as_deref(),
    })
}

/// Headers as a JSON object; repeated names are joined with ", ".
pub fn headers(map: &HeaderMap) -> Value {
    let mut out = serde_json::Map::new();
    for name in map.keys() {
        let values: Vec<String> = map
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_string(), json!(values.join(", ")));
    }
    Value::Object(out)
}

/// What a finished request looks like to the model.
pub struct Finished<'a> {
    /// The method sent.
    pub method: &'a str,
    /// The URL requested.
    pub url: &'a str,
    /// The final status.
    pub status: StatusCode,
    /// The final headers.
    pub headers: &'a HeaderMap,
    /// The receipt, if a token was paid for or presented.
    pub receipt: Option<&'a Receipt>,
    /// The body as read.
    pub body: Body,
    /// The most bytes of a body a result carries.
    pub limit: usize,
    /// The server's `payment-need-topup` event, when the stream stopped on it.
    pub need_top_up: Option<&'a plannt_l402::mpp::NeedTopUp>,
}

/// The result of a request that got an answer: a success for 1xx–3xx, an `isError` result
/// for 4xx and 5xx (which says whether the request was paid for, and keeps the receipt).
pub fn finished(f: Finished<'_>) -> CallToolResult {
    let content_type = f
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let paid = f.receipt.is_some_and(|r| !r.reused_token);
    let mut value = json!({
        "url": f.url,
        "method": f.method,
        "status": f.status.as_u16(),
        "status_text": f.status.canonical_reason().unwrap_or(""),
        "content_type": content_type,
        "headers": headers(f.headers),
        "body_encoding": if f.body.text.is_some() { "text" } else { "base64" },
        "body_bytes_shown": f.body.shown,
        "body_truncated": f.body.truncated,
        "paid": paid,
        "receipt": f.receipt.map(receipt),
    });
    if let Some(event) = f.need_top_up {
        value["need_top_up"] = json!(event);
    }
    match (&f.body.text, &f.body.base64) {
        (Some(text), _) => value["body"] = json!(text),
        (None, Some(b64)) => value["body_base64"] = json!(b64),
        (None, None) => {}
    }
    let mut notes = Vec::new();
    match f.receipt {
        Some(r) if r.session.is_some() => {
            let session = r.session.as_deref().expect("matched");
            let paid = match session.action.as_str() {
                "open" => format!(
                    "a prepaid session was opened for this place with a deposit of {} sats (routing fee {} msat)",
                    r.amount_sats, r.fee_msat
                ),
                "topUp" => format!(
                    "the prepaid session for this place was topped up with {} sats (routing fee {} msat)",
                    r.amount_sats, r.fee_msat
                ),
                _ => "nothing was paid now: it was spent from the prepaid session for this place".to_string(),
            };
            notes.push(format!(
                "Paid from a prepaid session (id {}): {paid}. It holds {} sats; later calls to the same place spend from it, and what is left is refunded when it closes (the spending tool lists sessions).",
                session.id, session.balance_sats
            ));
        }
        Some(r) if r.recovered => notes.push(format!(
            "This answer was recovered: the first answer to the payment {} was lost (the connection broke or the server was still working), and the same credential presented again for the same request got it. Nothing more was paid{}.",
            r.payment_hash,
            if r.reused_token {
                String::new()
            } else {
                format!(
                    " (it cost {} sats, routing fee {} msat; preimage {})",
                    r.amount_sats, r.fee_msat, r.preimage
                )
            }
        )),
        Some(r) if r.reused_token => notes.push(format!(
            "Nothing was paid now: a token paid earlier (payment hash {}) was presented.",
            r.payment_hash
        )),
        Some(r) => notes.push(format!(
            "Paid {} sats (routing fee {} msat); payment hash {}, preimage {} (the proof of payment, kept in the ledger).",
            r.amount_sats, r.fee_msat, r.payment_hash, r.preimage
        )),
        None => notes.push("Nothing was paid: the server did not ask for payment.".into()),
    }
    if let Some(event) = f.need_top_up {
        notes.push(format!(
            "The server stopped the stream: the prepaid session {} ran out ({} sats spent, {} more needed for the next unit). The answer may be incomplete; the next call to this place tops the session up within the operator's limits.",
            event.session_id, event.balance_spent, event.balance_required
        ));
    }
    if f.body.truncated {
        let length = f
            .headers
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(|l| format!(" of {l}"))
            .unwrap_or_default();
        notes.push(format!(
            "The body was cut at {} bytes{length}: only its beginning is shown (the limit is the operator's, {} bytes).",
            f.body.shown, f.limit
        ));
    }
    if f.body.base64.is_some() {
        notes.push("The body is not UTF-8 text, so it is given as base64 in body_base64.".into());
    }
    let status = f.status;
    if status.is_client_error() || status.is_server_error() {
        let released = f
            .headers
            .get(plannt_client::l402::wire::X_L402)
            .and_then(|v| plannt_client::l402::TokenState::parse(v.as_bytes()))
            == Some(plannt_client::l402::TokenState::Released);
        let (code, message) = if paid || (released && f.receipt.is_some()) {
            let retry = if released {
                "The server released the token (x-l402: released), so calling again with the same arguments presents it and pays nothing more: retry once the error looks fixed."
            } else {
                "Tokens are single-use, so calling again pays again: retry only if the error looks temporary (a 5xx), and tell the user otherwise."
            };
            (
                "upstream_error_after_payment",
                format!(
                    "The server answered {status} after it was paid. {} {retry}",
                    notes.join(" ")
                ),
            )
        } else {
            (
                "http_error",
                format!(
                    "The server answered {status}. {} Read the body for the reason; check the URL, method, headers and body before trying again.",
                    notes.join(" ")
                ),
            )
        };
        value["note"] = json!(message.clone());
        let mut result = error(code, message, value.clone());
        // The whole response stays in the text too, so a model that reads only text sees it.
        result.content.push(ContentBlock::text(value.to_string()));
        return result;
    }
    value["note"] = json!(notes.join(" "));
    ok(value)
}

/// Seconds as words: "42 s", "17 min", "3 h 5 min".
pub fn duration(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7_199 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3_600, (secs % 3_600) / 60),
    }
}

/// A unix time in RFC 3339, UTC.
pub fn when(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs))
        .to_string()
}

/// Which setting (and variable) sets a window's budget.
fn budget_setting(window: Window) -> &'static str {
    match window {
        Window::Hour => "budget_hourly_sats (PLANNT_BUDGET_HOURLY_SATS)",
        Window::Day => "budget_daily_sats (PLANNT_BUDGET_DAILY_SATS)",
        Window::Total => "budget_total_sats (PLANNT_BUDGET_TOTAL_SATS)",
    }
}

/// The over-budget message: how much is left, and when it renews.
pub fn over_budget(o: &OverBudget, policy: &Policy, now: u64) -> CallToolResult {
    let fees = if policy.max_fee_sats > 0 {
        format!(
            " (each payment reserves its price plus up to {} sats of routing fees until it settles)",
            policy.max_fee_sats
        )
    } else {
        String::new()
    };
    let renew = match o.renews_in_secs {
        Some(secs) if o.window != Window::Total => format!(
            "Sats start to free up in {} (at {}), as older payments leave the rolling {} window.",
            duration(secs),
            when(now + secs),
            o.window
        ),
        _ if o.window == Window::Total => "The total budget never renews.".to_string(),
        _ => format!(
            "The {} window is rolling: sats free up as payments age out of it.",
            o.window
        ),
    };
    let message = format!(
        "Over budget: the {window} budget of {limit} sats has {left} sats left, and paying this request needs {cost} sats{fees}. Nothing was paid. {renew} Next: wait, choose a cheaper request (discover shows prices), or tell the user, who can raise {setting}. No tool argument can raise a budget.",
        cost = o.cost_sats,
        window = o.window,
        limit = o.limit_sats,
        left = o.left_sats,
        setting = budget_setting(o.window),
    );
    error(
        "over_budget",
        message,
        json!({
            "paid": false,
            "window": o.window,
            "limit_sats": o.limit_sats,
            "left_sats": o.left_sats,
            "cost_sats": o.cost_sats,
            "renews_in_secs": o.renews_in_secs,
            "renews_at": o.renews_in_secs.filter(|_| o.window != Window::Total).map(|s| when(now + s)),
        }),
    )
}

/// A check refused the invoice: which one, and what to do.
pub fn refused(r: &Refusal, policy: &Policy, max_sats: Option<u64>) -> CallToolResult {
    let check = r.check();
    let next = match r {
        Refusal::HostNotAllowed(_) => format!(
            "Do not retry: the operator lets the agent reach and pay only {}. Tell the user, who can add the host to allowed_hosts (PLANNT_ALLOWED_HOSTS).",
            if policy.allowed_hosts.is_empty() {
                "no host".to_string()
            } else {
                policy.allowed_hosts.join(", ")
            }
        ),
        Refusal::OverCap { cap_sats, .. } => {
            let operator = policy.budget.per_request_sats;
            match max_sats {
                Some(m) if m < operator && *cap_sats == m => format!(
                    "Your max_sats of {m} set the cap; you may call again with a max_sats up to the operator's cap of {operator} sats if the price is worth it."
                ),
                _ => format!(
                    "The operator's cap is {operator} sats per request and no tool argument can raise it. Tell the user, who can raise max_sats_per_request (PLANNT_MAX_SATS_PER_REQUEST)."
                ),
            }
        }
        Refusal::PriceChanged { .. } => {
            "The server raised its price after it was quoted or confirmed. Call fetch again to see (and, if needed, confirm) the new price.".to_string()
        }
        Refusal::Expired { .. } => {
            "The server's invoice expired before it could be paid; call again once (a new invoice is issued). If it happens again, the server's clock is off: tell the user.".to_string()
        }
        Refusal::WrongNetwork { .. } => {
            "Do not retry: the server bills on another Lightning network than the wallet's. Tell the user.".to_string()
        }
        Refusal::Invoice(_)
        | Refusal::Identifier(_)
        | Refusal::HashMismatch { .. }
        | Refusal::NoAmount => {
            "Do not retry and do not pay this server by other means: its payment request is not safe to pay. Tell the user.".to_string()
        }
        Refusal::PrivateNetwork { .. } => {
            "Do not retry, and do not try another name or spelling of this address: the operator keeps the agent off loopback, private and link-local networks (the operator's own machine, its network, cloud metadata). Tell the user, who can set allow_private_networks (PLANNT_ALLOW_PRIVATE_NETWORKS=true) if this address is meant to be reached.".to_string()
        }
        Refusal::WalletApi { .. } => {
            "Do not retry, and do not try another spelling or a redirect to it: no tool call may reach the wallet's own API, whatever the settings. If a payment is needed, fetch the URL of the API that asks for it. Tell the user if you were asked to call this.".to_string()
        }
        Refusal::InsecureHttp(_) => {
            "Do not retry over http: call the https:// URL of this API if it has one. Tell the user, who can allow paying over plain http with allow_insecure_http (PLANNT_ALLOW_INSECURE_HTTP=true) if the network path is trusted.".to_string()
        }
        // A check this server does not know yet: what it said is all there is to tell.
        _ => "Do not retry: tell the user what was refused.".to_string(),
    };
    let mut details = json!({"paid": false, "check": check});
    if let Refusal::OverCap {
        amount_sats,
        cap_sats,
    } = r
    {
        details["price_sats"] = json!(amount_sats);
        details["cap_sats"] = json!(cap_sats);
    }
    if let Refusal::PriceChanged {
        quoted_sats,
        amount_sats,
    } = r
    {
        details["quoted_sats"] = json!(quoted_sats);
        details["price_sats"] = json!(amount_sats);
    }
    // Where a request may not go has its own code; a challenge that fails a check is `refused`.
    let (code, message) = if r.before_sending() {
        details["sent"] = json!(false);
        (
            check,
            format!(
                "Refused to send the request (check {check}): {r}. Nothing was sent or paid. {next}"
            ),
        )
    } else {
        (
            "refused",
            format!("Refused to pay (check {check}): {r}. Nothing was paid. {next}"),
        )
    };
    error(code, message, details)
}

/// What an agent should do after a network failure of this cause.
fn network_advice(e: &NetworkError) -> &'static str {
    match e.cause {
        NetworkCause::UnknownHost => {
            "Check the host name's spelling; do not retry it unchanged. If it is right, the user's DNS may be failing: tell the user."
        }
        NetworkCause::Refused => {
            "The server is down, or the URL's port is wrong: check the URL; retry later; tell the user if it persists."
        }
        NetworkCause::Tls => {
            "Do not retry unchanged: the server's certificate does not verify, or it does not speak https on that port (a local test server may want http://). Tell the user; never work around a certificate that does not verify."
        }
        NetworkCause::ConnectTimeout | NetworkCause::Connect => {
            "The host may be down or unreachable from here: retry later; tell the user if it persists."
        }
        NetworkCause::Timeout => {
            "The server is slow or hung: retry later, or tell the user, who can raise max_time_secs (PLANNT_MAX_TIME_SECS). No tool argument can raise it."
        }
        NetworkCause::Closed => {
            "Retry once; if it happens again, the server is failing: tell the user."
        }
        _ => "Check the URL; retry later.",
    }
}

/// Any other client failure.
pub fn client_error(
    e: &ClientError,
    policy: &Policy,
    max_sats: Option<u64>,
    now: u64,
) -> CallToolResult {
    match e {
        ClientError::OverBudget(o) => over_budget(o, policy, now),
        ClientError::Refused(r) => refused(r, policy, max_sats),
        ClientError::PaymentFailed(err @ LightningError::Unreachable(_)) => error(
            "wallet_unreachable",
            format!(
                "The operator's Lightning wallet could not be reached: {err}. Nothing was paid, and the budget reservation was released. Do not retry now: tell the user, who must start the wallet or fix its URI (PLANNT_WALLET)."
            ),
            json!({"paid": false}),
        ),
        ClientError::PaymentFailed(err) => error(
            "payment_failed",
            format!(
                "The Lightning payment failed: {err}. Nothing was paid, and its budget reservation was released. Next: check the wallet with the balance tool; retry later; tell the user if the wallet is empty or unreachable."
            ),
            json!({"paid": false}),
        ),
        ClientError::PaymentPending(hash) => error(
            "payment_pending",
            format!(
                "The payment {hash} is still in flight: its outcome is not known yet. Call fetch again with the same arguments in a little while: the payment is looked up and never made twice."
            ),
            json!({"paid": null, "payment_hash": hash}),
        ),
        ClientError::PaymentTimedOut { payment_hash, .. } => error(
            "payment_pending",
            format!(
                "{e}. Its outcome is not known yet. Call fetch again with the same arguments in a little while: the payment is looked up and never made twice."
            ),
            json!({"paid": null, "payment_hash": payment_hash, "timeout": true}),
        ),
        ClientError::Network(err) => {
            let details = |paid: bool| {
                json!({
                    "paid": paid,
                    "cause": err.cause.code(),
                    "origin": err.origin,
                    "sent": err.may_have_been_sent(),
                    "timeout_secs": err.limit.map(|l| l.as_secs_f64()),
                })
            };
            match &err.token_kept {
                Some(hash) => {
                    let mut details = details(true);
                    details["payment_hash"] = json!(hash);
                    error(
                        "network_error_after_payment",
                        format!(
                            "The request was paid, then no answer came: {err}. Call fetch again with the same arguments: it presents the same credential for the same request, and gets the answer the server kept; it will not be paid twice."
                        ),
                        details,
                    )
                }
                None if err.step == Step::Pay => error(
                    "network_error",
                    format!("{err}. {}", network_advice(err)),
                    details(false),
                ),
                None => error(
                    "network_error",
                    format!(
                        "No answer from the server: {err}. Nothing was paid. {}",
                        network_advice(err)
                    ),
                    details(false),
                ),
            }
        }
        ClientError::BadChallenge(detail) => error(
            "bad_challenge",
            format!(
                "The server asked for payment (HTTP 402) without an L402, MPP or x402 challenge Plannt can check: {detail}. Nothing was paid. Do not retry: tell the user this server's payment scheme is not supported."
            ),
            json!({"paid": false}),
        ),
        ClientError::NoDialect { offered, allowed } => error(
            "no_dialect",
            format!(
                "{e}. Do not retry with the same dialects: call fetch again without the dialects argument (the operator's) if it narrowed them, else tell the user the operator does not allow paying this server's dialects."
            ),
            json!({
                "paid": false,
                "offered": offered.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                "allowed": allowed.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            }),
        ),
        ClientError::Ledger(err) => error(
            "ledger_error",
            format!(
                "{err}. Nothing was paid. Tell the user: the operator must fix the data directory (PLANNT_DATA_DIR) before anything can be paid."
            ),
            json!({"paid": false}),
        ),
        ClientError::AnswerLost { payment_hash, .. } => error(
            "answer_lost",
            format!(
                "{e}. Do not call fetch again on your own: it would pay again. Tell the user that the payment {payment_hash} bought no answer, and let them decide."
            ),
            json!({"paid": true, "payment_hash": payment_hash, "answer_kept": false}),
        ),
        ClientError::TooLarge(limit) => error(
            "too_large",
            format!("The body is larger than {limit} bytes."),
            json!({}),
        ),
        // A failure this server does not know yet: what the client said is all there is to tell.
        other => error("client_error", format!("{other}."), json!({})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plannt_client::Budget;

    fn text(result: &CallToolResult) -> String {
        result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn text_is_text_and_binary_is_base64() {
        let b = body("héllo".as_bytes(), false);
        assert_eq!(b.text.as_deref(), Some("héllo"));
        assert_eq!((b.base64, b.shown, b.truncated), (None, 6, false));

        let b = body(&[0xff, 0x00, 0x10], false);
        assert_eq!(b.text, None);
        assert_eq!(b.base64.as_deref(), Some("/wAQ"));
    }

    #[test]
    fn a_cut_inside_a_character_keeps_the_text_before_it() {
        // "hé" is 68 c3 a9; cut after c3.
        let b = body(&[0x68, 0xc3], true);
        assert_eq!(b.text.as_deref(), Some("h"));
        assert_eq!((b.shown, b.truncated), (1, true));
        // The same bytes when the body really ends there are not text.
        assert!(body(&[0x68, 0xc3], false).base64.is_some());
    }

    #[test]
    fn errors_are_flagged_and_say_what_next() {
        let policy = Policy {
            budget: Budget {
                per_request_sats: 500,
                ..Budget::default()
            },
            max_fee_sats: 0,
            allowed_hosts: vec!["api.example.com".into()],
            ..Policy::default()
        };
        let over = OverBudget {
            window: Window::Day,
            limit_sats: 30,
            left_sats: 9,
            renews_in_secs: Some(600),
            cost_sats: 21,
        };
        let r = over_budget(&over, &policy, 0);
        assert_eq!(r.is_error, Some(true));
        let t = text(&r);
        assert!(t.contains("9 sats left"), "{t}");
        assert!(t.contains("10 min (at 1970-01-01T00:10:00Z)"), "{t}");
        assert!(t.contains("Nothing was paid"), "{t}");
        let s = r.structured_content.unwrap();
        assert_eq!(s["error"], "over_budget");
        assert_eq!(s["left_sats"], 9);

        let r = refused(
            &Refusal::HostNotAllowed("evil.example".into()),
            &policy,
            None,
        );
        assert_eq!(
            r.structured_content.as_ref().unwrap()["error"],
            "host_not_allowed"
        );
        assert!(text(&r).contains("api.example.com"), "{}", text(&r));

        let cap = Refusal::OverCap {
            amount_sats: 100,
            cap_sats: 50,
        };
        assert!(
            text(&refused(&cap, &policy, Some(50)))
                .contains("max_sats up to the operator's cap of 500")
        );
        let cap = Refusal::OverCap {
            amount_sats: 600,
            cap_sats: 500,
        };
        assert!(
            text(&refused(&cap, &policy, Some(1000))).contains("no tool argument can raise it")
        );
    }

    #[test]
    fn an_error_after_payment_keeps_the_receipt() {
        let receipt = Receipt {
            dialect: plannt_client::Dialect::L402,
            amount_sats: 21,
            fee_msat: 0,
            payment_hash: "ab".repeat(32),
            preimage: "cd".repeat(32),
            reused_token: false,
            recovered: false,
            session: None,
        };
        let headers = HeaderMap::new();
        let r = finished(Finished {
            method: "GET",
            url: "http://x.example/",
            status: StatusCode::BAD_GATEWAY,
            headers: &headers,
            receipt: Some(&receipt),
            body: body(b"upstream down", false),
            limit: 100,
            need_top_up: None,
        });
        assert_eq!(r.is_error, Some(true));
        let s = r.structured_content.clone().unwrap();
        assert_eq!(s["error"], "upstream_error_after_payment");
        assert_eq!(s["receipt"]["preimage"], "cd".repeat(32));
        assert_eq!(s["body"], "upstream down");
        assert!(text(&r).contains(&"cd".repeat(32)));

        let ok = finished(Finished {
            method: "GET",
            url: "http://x.example/",
            status: StatusCode::OK,
            headers: &headers,
            receipt: None,
            body: body(b"0123456789", true),
            limit: 10,
            need_top_up: None,
        });
        assert_eq!(ok.is_error, Some(false));
        let s = ok.structured_content.unwrap();
        assert_eq!(
            (s["paid"].clone(), s["body_truncated"].clone()),
            (json!(false), json!(true))
        );
        assert!(s["note"].as_str().unwrap().contains("cut at 10 bytes"));
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(600), "10 min");
        assert_eq!(duration(3 * 3600 + 300), "3 h 5 min");
    }
}
