//! `fetch`: send a request and, when the server asks for payment, check the invoice, pay it
//! and send the request again, all in one call.
//!
//! ```text
//! arguments -> a request (or bad_argument)
//!   an answer from the human (protocol 2026-07-28)?  -> ask::answered
//!   no threshold                                     -> pay
//!   dry run: free?                                   -> the answer
//!            price <= confirm_above_sats             -> pay, capped at the price seen
//!            price >  confirm_above_sats             -> ask a human (ask)
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use plannt_client::{Dialect, Options, Outcome, Policy, Request};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResponse;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::answer;
use crate::confirm::{self, Answer};
use crate::server::PlanntMcp;
use crate::tools::arguments::parse_url;

/// The arguments of `fetch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchArgs {
    /// The URL to request, http:// or https://.
    pub url: String,
    /// The HTTP method: GET (the default), POST, PUT, PATCH, DELETE, HEAD or OPTIONS.
    #[serde(default)]
    #[schemars(with = "String")]
    pub method: Option<String>,
    /// Request headers, as an object: {"Accept": "application/json"}.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: Option<BTreeMap<String, String>>,
    /// The request body, as text. A JSON body is sent as application/json unless a Content-Type header says otherwise.
    #[serde(default)]
    #[schemars(with = "String")]
    pub body: Option<String>,
    /// The most this call may pay, in sats. It can only lower the operator's per-request cap, never raise it.
    #[serde(default)]
    #[schemars(with = "u64")]
    pub max_sats: Option<u64>,
    /// The payment dialects this call may pay, in order of preference: any of "l402", "mpp", "x402". It can only narrow the dialects the operator allows, never widen them. Default: the operator's.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub dialects: Option<Vec<String>>,
}

/// The `dialects` argument read, or which name is no dialect.
fn parse_dialects(args: &FetchArgs) -> Result<Option<Vec<Dialect>>, String> {
    let Some(names) = &args.dialects else {
        return Ok(None);
    };
    if names.is_empty() {
        return Err(
            "dialects is empty: name at least one of l402, mpp, x402, or leave it out".into(),
        );
    }
    names
        .iter()
        .map(|n| {
            n.parse()
                .map_err(|e: plannt_client::l402::dialect::UnknownDialect| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

const FETCH: &str = "Send an HTTP request and, when the server asks for payment (HTTP 402 with a Lightning invoice, in any of the L402, MPP or x402 dialects), check the invoice, pay it from the operator's wallet and send the request again, all in this one call. Use it for APIs that charge per request over Lightning, and for any plain URL (a free URL costs nothing).

Returns the status, content type, headers and body (text, or base64 for binary; cut at a size, and the result says so) and, when something was paid, the receipt: the dialect paid in (l402, mpp or x402), sats paid, routing fee, payment hash and preimage (the proof of payment), and whether the answer was recovered (its first answer was lost, and the same credential presented again got it: nothing more was paid).

Cost: what the server asks, in sats, every time: tokens are single-use, so each call pays again. Call discover first when the price is unknown, and do not repeat a paid call without need. The operator's policy bounds every payment and no argument can loosen it: max_sats only lowers the per-request cap for this call, dialects only narrows the dialects the operator allows. A request to a host that is not allowed, to the wallet's own API, or (unless the operator allows them) to a loopback or private address is not sent; over a budget, or when an invoice fails a check, nothing is paid; the result (isError) says what to do next. Above a threshold a human is asked to confirm before anything is paid.";

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "no limit".to_string(), |l| format!("{l} sats"))
}

/// The operator's limits in a sentence, for the fetch description.
fn policy_text(policy: &Policy, confirm_above_sats: Option<u64>, max_time: Duration) -> String {
    let hosts = if policy.allowed_hosts.is_empty() {
        "any host".to_string()
    } else {
        format!("only {}", policy.allowed_hosts.join(", "))
    };
    let confirm = match confirm_above_sats {
        Some(t) => format!("a human confirms any payment above {t} sats"),
        None => "no payment needs a human's confirmation".to_string(),
    };
    let private = if policy.allow_private_networks {
        ""
    } else {
        " (never loopback, private or link-local addresses)"
    };
    format!(
        "\n\nThe operator's limits: at most {} sats per request (plus up to {} sats of routing fees); budgets of {} per hour, {} per day and {} in total; requests and payments to {hosts}{private}; {confirm}; a call gives up after {} s. The spending tool shows what is left.",
        policy.budget.per_request_sats,
        policy.max_fee_sats,
        limit_text(policy.budget.hourly_sats),
        limit_text(policy.budget.daily_sats),
        limit_text(policy.budget.total_sats),
        max_time.as_secs_f64(),
    )
}

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Turns `fetch`'s arguments into a request, or says which argument is wrong.
fn build_request(args: &FetchArgs) -> Result<Request, String> {
    let url = parse_url(&args.url)?;
    let method = args
        .method
        .as_deref()
        .map(|m| m.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "GET".into());
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "method {method:?} is not one of {}",
            METHODS.join(", ")
        ));
    }
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("method {method:?} is not an HTTP method"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in args.headers.iter().flatten() {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("header name {name:?} is not valid"))?;
        if matches!(
            header.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            return Err(format!(
                "header {name:?} is set by the HTTP client and cannot be given"
            ));
        }
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of header {name:?} is not valid in a header"))?;
        headers.append(header, value);
    }
    let body = args.body.clone().unwrap_or_default();
    if args.body.is_some() && !headers.contains_key(CONTENT_TYPE) {
        let json =
            serde_json::from_str::<Value>(&body).is_ok_and(|v| v.is_object() || v.is_array());
        let kind = if json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    Ok(Request {
        method,
        url,
        headers,
        body: body.into_bytes().into(),
    })
}

/// What a confirmation binds to: everything the request would send, the agent's cap and the
/// dialects it allows.
fn fingerprint(request: &Request, max_sats: Option<u64>, dialects: Option<&[Dialect]>) -> [u8; 32] {
    let mut headers: Vec<String> = request
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    headers.sort();
    let max = max_sats.map(|m| m.to_string()).unwrap_or_default();
    let dialects = dialects
        .map(|list| {
            list.iter()
                .map(Dialect::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    confirm::fingerprint(&[
        request.method.as_str(),
        request.url.as_str(),
        &headers.join("\n"),
        &String::from_utf8_lossy(&request.body),
        &max,
        &dialects,
    ])
}

#[tool_router(router = fetch_router, vis = "pub(crate)")]
impl PlanntMcp {
    #[tool(
        description = FETCH,
        annotations(
            title = "Fetch a URL, paying its Lightning price",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn fetch(
        &self,
        Parameters(args): Parameters<FetchArgs>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let request = match build_request(&args) {
            Ok(request) => request,
            Err(message) => return Ok(answer::bad_argument(message).into()),
        };
        let dialects = match parse_dialects(&args) {
            Ok(dialects) => dialects,
            Err(message) => return Ok(answer::bad_argument(message).into()),
        };
        let dialects = dialects.as_deref();
        let print = fingerprint(&request, args.max_sats, dialects);
        // The client calls again with the human's answer (protocol 2026-07-28).
        if let Some(handle) = state {
            let answer = responses
                .as_ref()
                .and_then(|r| r.get("confirm"))
                .map_or(Answer::No, confirm::answer);
            return Ok(self
                .answered(&handle, answer, print, &request, args.max_sats, dialects)
                .await
                .into());
        }
        let Some(threshold) = self.config().confirm_above_sats else {
            return Ok(self
                .pay(&request, args.max_sats, None, dialects)
                .await
                .into());
        };
        // Learn the price first: every check runs, nothing is paid.
        let dry_run = Options {
            dry_run: true,
            max_sats: args.max_sats,
            on_event: None,
            dialects,
            max_session_sats: None,
        };
        let quote = match self.client().send(&request, &dry_run).await {
            Ok(Outcome::DryRun(quote)) => quote,
            // Free: the server answered, and that answer is the result.
            Ok(Outcome::Response(response)) => {
                return Ok(self.finish(&request, response).await.into());
            }
            Err(e) => return Ok(self.failed(&e, args.max_sats).into()),
        };
        let price = quote.amount_sats();
        if !confirm::needs_confirmation(price, Some(threshold)) {
            let cap = confirm::pay_cap(price, args.max_sats);
            return Ok(self
                .pay(&request, Some(cap), Some(price), dialects)
                .await
                .into());
        }
        Ok(self
            .ask(
                &request,
                price,
                threshold,
                print,
                args.max_sats,
                dialects,
                &context,
            )
            .await)
    }
}

impl PlanntMcp {
    /// The router of `fetch`, its description ending with the operator's limits.
    pub(crate) fn fetch_router_for(
        policy: &Policy,
        confirm_above_sats: Option<u64>,
        max_time: Duration,
    ) -> ToolRouter<PlanntMcp> {
        let mut router = Self::fetch_router();
        let limits = policy_text(policy, confirm_above_sats, max_time);
        if let Some(route) = router.map.get_mut("fetch") {
            route.attr.description = Some(format!("{FETCH}{limits}").into());
        }
        router
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(json: Value) -> FetchArgs {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn fetch_arguments_become_a_request() {
        let r = build_request(&args(json!({
            "url": "http://127.0.0.1:8402/v1/demo",
            "method": "post",
            "headers": {"X-Test": "1"},
            "body": "{\"a\":1}"
        })))
        .unwrap();
        assert_eq!(r.method, reqwest::Method::POST);
        assert_eq!(r.headers["x-test"], "1");
        assert_eq!(r.headers[CONTENT_TYPE], "application/json");
        assert_eq!(&r.body[..], b"{\"a\":1}");

        let r = build_request(&args(json!({"url": "https://a.example/x", "body": "hi"}))).unwrap();
        assert_eq!(r.method, reqwest::Method::GET);
        assert_eq!(r.headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[test]
    fn bad_fetch_arguments_say_which() {
        let bad = |v: Value| build_request(&args(v)).unwrap_err();
        assert!(bad(json!({"url": "ftp://a.example/"})).contains("only http://"));
        assert!(bad(json!({"url": "not a url"})).contains("is not a URL"));
        assert!(bad(json!({"url": "http://a.example/", "method": "BREW"})).contains("BREW"));
        assert!(
            bad(json!({"url": "http://a.example/", "headers": {"bad name": "x"}}))
                .contains("bad name")
        );
        assert!(
            bad(json!({"url": "http://a.example/", "headers": {"Host": "x"}})).contains("Host")
        );
        // An unknown argument is refused rather than ignored: a misspelt max_sats must not
        // leave the cap where it was.
        assert!(
            serde_json::from_value::<FetchArgs>(json!({"url": "http://a/", "maxSats": 1})).is_err()
        );
    }

    #[test]
    fn a_confirmation_binds_to_the_whole_call() {
        let base = json!({"url": "http://a.example/x", "body": "1"});
        let print =
            |v: Value, max: Option<u64>| fingerprint(&build_request(&args(v)).unwrap(), max, None);
        let one = print(base.clone(), None);
        assert_eq!(one, print(base.clone(), None));
        assert_ne!(one, print(base.clone(), Some(5)));
        assert_ne!(
            one,
            print(json!({"url": "http://a.example/y", "body": "1"}), None)
        );
        assert_ne!(
            one,
            print(json!({"url": "http://a.example/x", "body": "2"}), None)
        );
        assert_ne!(
            one,
            print(
                json!({"url": "http://a.example/x", "body": "1", "method": "POST"}),
                None
            )
        );
        let request = build_request(&args(base.clone())).unwrap();
        assert_ne!(
            one,
            fingerprint(&request, None, Some(&[Dialect::Mpp])),
            "a confirmation binds to the dialects the agent allowed"
        );
    }

    #[test]
    fn dialects_are_read_and_a_bad_one_is_a_bad_argument() {
        let read = |v: Value| parse_dialects(&args(v));
        assert_eq!(read(json!({"url": "http://a/"})), Ok(None));
        assert_eq!(
            read(json!({"url": "http://a/", "dialects": ["x402", "MPP"]})),
            Ok(Some(vec![Dialect::X402, Dialect::Mpp]))
        );
        let bad = read(json!({"url": "http://a/", "dialects": ["card"]})).unwrap_err();
        assert!(bad.contains("use l402, mpp or x402"), "{bad}");
        assert!(read(json!({"url": "http://a/", "dialects": []})).is_err());
    }
    #[test]
    fn the_fetch_description_states_the_operators_limits() {
        let policy = Policy::default();
        let text = policy_text(&policy, Some(100), Duration::from_secs(120));
        assert!(text.contains("at most 1000 sats per request"), "{text}");
        assert!(text.contains("above 100 sats"), "{text}");
        assert!(text.contains("any host"), "{text}");
        assert!(text.contains("gives up after 120 s"), "{text}");
        assert!(
            text.contains("never loopback, private or link-local addresses"),
            "{text}"
        );
        let text = policy_text(
            &Policy {
                allowed_hosts: vec!["api.example.com".into()],
                ..Policy::default()
            },
            None,
            Duration::from_millis(2_500),
        );
        assert!(text.contains("only api.example.com"), "{text}");
        assert!(text.contains("gives up after 2.5 s"), "{text}");
        assert!(text.contains("no payment needs"), "{text}");
    }
}
