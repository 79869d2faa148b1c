//! The MCP server: four tools over the paying client.
//!
//! ```text
//! fetch     dry run (when a threshold is set) -> confirm above it (elicitation) -> pay -> answer
//! discover  /.well-known/l402.json as a price list, else a dry run of the URL
//! balance   the wallet, and what the budgets let the agent spend now
//! spending  each budget window's use, the latest receipts and refusals
//! ```
//!
//! Every limit comes from the operator's [`Settings`](plannt_client::Settings), through the
//! client's [`Policy`]; the only limit a tool argument touches is `max_sats`, which can only
//! lower the per-request cap. Failures are tool results with `isError`, never protocol errors,
//! so the model reads what happened and what to do next.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use plannt_client::{
    Client, ClientError, Options, Outcome, OverBudget, Policy, Refusal, Request, Response,
    WindowUse,
};
use plannt_lightning::invoice::unix_now;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResponse, CallToolResult, ElicitRequest, ElicitRequestParams, ElicitationSchema,
    Implementation, InputRequest, InputRequests, InputRequiredResult, ProtocolVersion,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{ElicitationMode, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::answer::{self, Finished};
use crate::confirm::{self, Answer, Pending, Stale};
use crate::discover;

/// How the server runs, beyond the client's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Above this many sats a human confirms a payment (the settings' `confirm_above_sats`).
    pub confirm_above_sats: Option<u64>,
    /// Response bodies are cut at this many bytes in tool results.
    pub max_body_bytes: usize,
}

/// The default cut for response bodies.
pub const DEFAULT_MAX_BODY_BYTES: usize = 100_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            confirm_above_sats: plannt_client::Settings::default().confirm_above_sats,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

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
}

/// The arguments of `discover`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverArgs {
    /// Any URL on the server: its catalog is looked up at /.well-known/l402.json, and without one, this URL's price is asked for without paying.
    pub url: String,
}

/// The arguments of `spending`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendingArgs {
    /// How many of the latest payments to list (default 10, at most 100).
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

const FETCH: &str = "Send an HTTP request and, when the server asks for payment (HTTP 402 with an L402 Lightning invoice), check the invoice, pay it from the operator's wallet and send the request again, all in this one call. Use it for APIs that charge per request over Lightning (L402), and for any plain URL (a free URL costs nothing).

Returns the status, content type, headers and body (text, or base64 for binary; cut at a size, and the result says so) and, when something was paid, the receipt: sats paid, routing fee, payment hash and preimage (the proof of payment).

Cost: what the server asks, in sats, every time: tokens are single-use, so each call pays again. Call discover first when the price is unknown, and do not repeat a paid call without need. The operator's policy bounds every payment and no argument can loosen it: max_sats only lowers the per-request cap for this call. A request to a host that is not allowed, to the wallet's own API, or (unless the operator allows them) to a loopback or private address is not sent; over a budget, or when an invoice fails a check, nothing is paid; the result (isError) says what to do next. Above a threshold a human is asked to confirm before anything is paid.";

const DISCOVER: &str = "Find out what an L402 server sells and at what price, without paying anything. Give any URL on the server: returns its catalog (/.well-known/l402.json) as a price list, each endpoint's method, full URL and price in sats, and which entry serves the URL you gave. A server without a catalog is asked for the URL itself without paying (a dry run), and the result gives that URL's price or says it is free. Free; use it before fetch whenever the price is unknown.";

const BALANCE: &str = "The operator's Lightning wallet balance in sats, and how much of it the spending budgets let you spend right now. Free and read-only.";

const SPENDING: &str = "What the spending budgets allow and have used: for each window (the last hour, the last 24 hours, all time) its limit and the sats used and left; the operator's per-request cap, routing-fee limit, allowed hosts and confirmation threshold; the latest payments with their receipts (amount, fee, payment hash, preimage, status); and the latest refused payments with the reason. Free and read-only. Use it to plan before paying, and after an over-budget refusal.";

const INSTRUCTIONS: &str = "Plannt pays for HTTP APIs over Lightning (L402) from the operator's wallet, within the operator's budgets. Use discover to learn prices (free), fetch to call a URL and pay if it asks (one call does both), and balance or spending to see what is left. Payments are final and each paid call pays again; a human confirms the larger ones.";

/// The MCP server. Cheap to clone: every clone shares the client, the ledger and the
/// confirmations waiting for an answer.
#[derive(Clone)]
pub struct PlanntMcp {
    inner: Arc<Inner>,
    tool_router: ToolRouter<PlanntMcp>,
}

struct Inner {
    client: Client,
    config: Config,
    pending: Pending,
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "no limit".to_string(), |l| format!("{l} sats"))
}

/// The operator's limits in a sentence, for the fetch description.
fn policy_text(policy: &Policy, confirm_above_sats: Option<u64>) -> String {
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
        "\n\nThe operator's limits: at most {} sats per request (plus up to {} sats of routing fees); budgets of {} per hour, {} per day and {} in total; requests and payments to {hosts}{private}; {confirm}. The spending tool shows what is left.",
        policy.budget.per_request_sats,
        policy.max_fee_sats,
        limit_text(policy.budget.hourly_sats),
        limit_text(policy.budget.daily_sats),
        limit_text(policy.budget.total_sats),
    )
}

/// Parses and checks a URL argument.
fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("url {text:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "url {text:?}: only http:// and https:// URLs can be fetched"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {text:?} names no host"));
    }
    Ok(url)
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

/// What a confirmation binds to: everything the request would send, and the agent's cap.
fn fingerprint(request: &Request, max_sats: Option<u64>) -> [u8; 32] {
    let mut headers: Vec<String> = request
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    headers.sort();
    let max = max_sats.map(|m| m.to_string()).unwrap_or_default();
    confirm::fingerprint(&[
        request.method.as_str(),
        request.url.as_str(),
        &headers.join("\n"),
        &String::from_utf8_lossy(&request.body),
        &max,
    ])
}

/// Whether this call runs on protocol 2026-07-28 or later, where a server may not send
/// requests to the client and asks through an `InputRequiredResult` instead.
fn modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// The yes/no form.
fn form(message: String, price_sats: u64) -> ElicitRequestParams {
    let requested_schema: ElicitationSchema = serde_json::from_value(json!({
        "type": "object",
        "title": format!("Pay {price_sats} sats?"),
        "properties": {
            "confirm": {
                "type": "boolean",
                "title": format!("Pay {price_sats} sats"),
                "description": "Yes to pay; no (or decline) to refuse. Nothing is paid without a yes.",
                "default": false
            }
        },
        "required": ["confirm"]
    }))
    .expect("the confirmation form is a valid elicitation schema");
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema,
    }
}

/// The first budget window that cannot take a payment of `price_sats` plus its fee reserve.
fn exceeded(usage: &[WindowUse], price_sats: u64, max_fee_sats: u64) -> Option<OverBudget> {
    let cost = price_sats.saturating_add(max_fee_sats);
    usage.iter().find_map(|w| {
        let (limit_sats, left_sats) = (w.limit_sats?, w.left_sats?);
        (cost > left_sats).then_some(OverBudget {
            window: w.window,
            limit_sats,
            left_sats,
            renews_in_secs: None,
        })
    })
}

/// The text of a result, for the ledger.
fn answer_text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

async fn read_capped(
    response: &mut Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), ClientError> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

#[tool_router]
impl PlanntMcp {
    /// A server paying with `client` (its wallet, ledger and policy) under `config`.
    pub fn new(client: Client, config: Config) -> Self {
        let mut tool_router = Self::tool_router();
        let limits = policy_text(client.policy(), config.confirm_above_sats);
        if let Some(route) = tool_router.map.get_mut("fetch") {
            route.attr.description = Some(format!("{FETCH}{limits}").into());
        }
        PlanntMcp {
            inner: Arc::new(Inner {
                client,
                config,
                pending: Pending::default(),
            }),
            tool_router,
        }
    }

    fn client(&self) -> &Client {
        &self.inner.client
    }

    fn policy(&self) -> &Policy {
        self.inner.client.policy()
    }

    #[tool(
        description = FETCH,
        annotations(
            title = "Fetch a URL, paying its L402 price",
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
        let print = fingerprint(&request, args.max_sats);
        // The client calls again with the human's answer (protocol 2026-07-28).
        if let Some(handle) = state {
            let answer = responses
                .as_ref()
                .and_then(|r| r.get("confirm"))
                .map_or(Answer::No, confirm::answer);
            return Ok(self
                .answered(&handle, answer, print, &request, args.max_sats)
                .await
                .into());
        }
        let Some(threshold) = self.inner.config.confirm_above_sats else {
            return Ok(self.pay(&request, args.max_sats, None).await.into());
        };
        // Learn the price first: every check runs, nothing is paid.
        let dry_run = Options {
            dry_run: true,
            max_sats: args.max_sats,
            on_event: None,
        };
        let quote = match self.client().send(&request, &dry_run).await {
            Ok(Outcome::DryRun(quote)) => quote,
            // Free: the server answered, and that answer is the result.
            Ok(Outcome::Response(response)) => {
                return Ok(self.finish(&request, response).await.into());
            }
            Err(e) => return Ok(self.failed(&request, &e, args.max_sats).into()),
        };
        let price = quote.amount_sats();
        if !confirm::needs_confirmation(price, Some(threshold)) {
            let cap = confirm::pay_cap(price, args.max_sats);
            return Ok(self.pay(&request, Some(cap), Some(price)).await.into());
        }
        Ok(self
            .ask(&request, price, threshold, print, args.max_sats, &context)
            .await)
    }

    #[tool(
        description = DISCOVER,
        annotations(
            title = "Discover an L402 server's prices",
            read_only_hint = true,
            open_world_hint = true
        )
    )]
    async fn discover(
        &self,
        Parameters(args): Parameters<DiscoverArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let url = match parse_url(&args.url) {
            Ok(url) => url,
            Err(message) => return Ok(answer::bad_argument(message)),
        };
        let policy = self.policy();
        let host = url.host_str().unwrap_or_default();
        let policy_json = json!({
            "max_sats_per_request": policy.budget.per_request_sats,
            "confirm_above_sats": self.inner.config.confirm_above_sats,
            "host_allowed": policy.host_allowed(host),
        });
        let catalog_url = discover::catalog_url(&url);
        // Through the paying client (which never pays here), so where it may go is checked.
        let catalog = match discover::fetch_catalog(self.client(), &catalog_url).await {
            Ok(catalog) => catalog,
            Err(e) => return Ok(self.failed(&Request::get(catalog_url), &e, None)),
        };
        if let Some(catalog) = catalog {
            let list = discover::price_list(&catalog, &url);
            let matched = discover::matching(&list, &url).cloned();
            let note = match &matched {
                Some(m) => format!(
                    "{} is served by {} ({}). Prices are per request; fetch pays them. Nothing was paid.",
                    url,
                    m.service,
                    m.price_sats
                        .map_or("price not given".into(), |p| format!("{p} sats")),
                ),
                None => format!(
                    "The catalog lists {} endpoints; prices are per request, and fetch pays them. Nothing was paid.",
                    list.len()
                ),
            };
            return Ok(answer::ok(json!({
                "url": url.as_str(),
                "source": "catalog",
                "catalog_url": catalog_url.as_str(),
                "provider": catalog.provider,
                "network": catalog.payment.and_then(|p| p.network),
                "services": list,
                "match": matched,
                "policy": policy_json,
                "note": note,
            })));
        }
        // No catalog: ask the URL itself, without paying.
        let dry_run = Options {
            dry_run: true,
            ..Options::default()
        };
        let request = Request::get(url.clone());
        match self.client().send(&request, &dry_run).await {
            Ok(Outcome::DryRun(quote)) => {
                let price = quote.amount_sats();
                let confirm =
                    confirm::needs_confirmation(price, self.inner.config.confirm_above_sats);
                Ok(answer::ok(json!({
                    "url": url.as_str(),
                    "source": "dry_run",
                    "price_sats": price,
                    "network": quote.invoice.network.as_str(),
                    "payment_hash": hex::encode(quote.invoice.payment_hash),
                    "invoice_expires_at": answer::when(quote.invoice.expires_at()),
                    "needs_confirmation": confirm,
                    "checks_passed": plannt_client::CHECKS,
                    "policy": policy_json,
                    "note": format!(
                        "No catalog at {catalog_url}. GET {url} asks {price} sats; every check passed and nothing was paid.{}",
                        if confirm { " Paying it needs a human's confirmation, which fetch asks for." } else { "" }
                    ),
                })))
            }
            Ok(Outcome::Response(response)) => {
                let status = response.status;
                let note = if status.is_success() || status.is_redirection() {
                    format!(
                        "No catalog at {catalog_url}. GET {url} answered {status} without asking for payment: it is free."
                    )
                } else {
                    format!(
                        "No catalog at {catalog_url}. GET {url} answered {status} without asking for payment: check the URL."
                    )
                };
                Ok(answer::ok(json!({
                    "url": url.as_str(),
                    "source": "dry_run",
                    "status": status.as_u16(),
                    "price_sats": 0,
                    "free": true,
                    "policy": policy_json,
                    "note": note,
                })))
            }
            Err(e) => Ok(self.failed(&request, &e, None)),
        }
    }

    #[tool(
        description = BALANCE,
        annotations(title = "Wallet balance", read_only_hint = true, open_world_hint = false)
    )]
    async fn balance(&self) -> Result<CallToolResult, ErrorData> {
        let wallet = self.client().wallet();
        let balance = match wallet.balance().await {
            Ok(b) => b,
            Err(e) => {
                return Ok(answer::error(
                    "wallet_unreachable",
                    format!(
                        "The wallet ({}) could not tell its balance: {e}. Nothing was paid. Tell the user: the operator's wallet (PLANNT_WALLET) may be down or misconfigured.",
                        wallet.name()
                    ),
                    json!({}),
                ));
            }
        };
        let usage = match self
            .client()
            .ledger()
            .usage(&self.policy().budget, unix_now())
        {
            Ok(u) => u,
            Err(e) => return Ok(self.failed_ledger(e)),
        };
        let budget_left = usage.iter().filter_map(|w| w.left_sats).min();
        let sats = balance.msat / 1000;
        let spendable = budget_left.map_or(sats, |left| left.min(sats));
        Ok(answer::ok(json!({
            "backend": wallet.name(),
            "network": wallet.network().as_str(),
            "balance_sats": sats,
            "balance_msat": balance.msat,
            "budget_left_sats": budget_left,
            "spendable_now_sats": spendable,
            "max_sats_per_request": self.policy().budget.per_request_sats,
            "note": format!(
                "The wallet holds {sats} sats; the budgets let you spend {spendable} sats now, at most {} per request.",
                self.policy().budget.per_request_sats
            ),
        })))
    }

    #[tool(
        description = SPENDING,
        annotations(title = "Budgets and receipts", read_only_hint = true, open_world_hint = false)
    )]
    async fn spending(
        &self,
        Parameters(args): Parameters<SpendingArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let limit = args.limit.unwrap_or(10).min(100) as usize;
        let policy = self.policy();
        let ledger = self.client().ledger();
        let now = unix_now();
        let (usage, recent, refusals) = match (
            ledger.usage(&policy.budget, now),
            ledger.recent(limit),
            ledger.refusals(5),
        ) {
            (Ok(u), Ok(r), Ok(f)) => (u, r, f),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(self.failed_ledger(e)),
        };
        let windows: Vec<Value> = usage
            .iter()
            .map(|w| {
                json!({
                    "window": w.window,
                    "window_secs": match policy.budget.window_secs(w.window) { 0 => None, s => Some(s) },
                    "limit_sats": w.limit_sats,
                    "used_sats": w.used_sats,
                    "left_sats": w.left_sats,
                })
            })
            .collect();
        let receipts: Vec<Value> = recent
            .iter()
            .map(|r| {
                json!({
                    "url": format!("{}{}", r.origin, r.path),
                    "amount_sats": r.amount_sats,
                    "fee_msat": r.fee_msat,
                    "status": r.status,
                    "payment_hash": r.payment_hash,
                    "preimage": r.preimage,
                    "at": answer::when(r.created_at),
                })
            })
            .collect();
        let refused: Vec<Value> = refusals
            .iter()
            .map(|r| {
                json!({
                    "url": format!("{}{}", r.origin, r.path),
                    "check": r.check,
                    "detail": r.detail,
                    "at": answer::when(r.at),
                })
            })
            .collect();
        let left: Vec<String> = usage
            .iter()
            .filter_map(|w| {
                w.left_sats
                    .map(|l| format!("{l} sats left this {}", w.window))
            })
            .collect();
        Ok(answer::ok(json!({
            "windows": windows,
            "max_sats_per_request": policy.budget.per_request_sats,
            "max_fee_sats": policy.max_fee_sats,
            "allowed_hosts": if policy.allowed_hosts.is_empty() { json!("any") } else { json!(policy.allowed_hosts) },
            "allow_private_networks": policy.allow_private_networks,
            "allow_insecure_http": policy.allow_insecure_http,
            "confirm_above_sats": self.inner.config.confirm_above_sats,
            "recent_payments": receipts,
            "recent_refusals": refused,
            "note": if left.is_empty() {
                "No budget window is limited.".to_string()
            } else {
                format!("{}. Windows are rolling: sats free up as payments age out.", left.join(", "))
            },
        })))
    }
}

impl PlanntMcp {
    /// Pays (if asked) and answers. `quoted` is the price a dry run saw, when there was one:
    /// `max_sats` was set to it, so an over-cap refusal means the price rose.
    async fn pay(
        &self,
        request: &Request,
        max_sats: Option<u64>,
        quoted: Option<u64>,
    ) -> CallToolResult {
        let options = Options {
            max_sats,
            dry_run: false,
            on_event: None,
        };
        match self.client().send(request, &options).await {
            Ok(Outcome::Response(response)) => self.finish(request, response).await,
            Ok(Outcome::DryRun(_)) => answer::error(
                "internal",
                "The client made a dry run where a payment was asked for. Nothing was paid.".into(),
                json!({}),
            ),
            Err(ClientError::Refused(Refusal::OverCap {
                amount_sats,
                cap_sats,
            })) if quoted == Some(cap_sats) && amount_sats > cap_sats => {
                let changed = Refusal::PriceChanged {
                    quoted_sats: cap_sats,
                    amount_sats,
                };
                answer::refused(&changed, self.policy(), max_sats)
            }
            Err(e) => self.failed(request, &e, max_sats),
        }
    }

    /// Reads the answer's body (up to the limit) and renders the result.
    async fn finish(&self, request: &Request, mut response: Response) -> CallToolResult {
        let limit = self.inner.config.max_body_bytes;
        let read = read_capped(&mut response, limit).await;
        let (bytes, truncated) = match read {
            Ok(read) => read,
            Err(e) => {
                let paid = response.receipt.as_ref().filter(|r| !r.reused_token);
                let message = match paid {
                    Some(r) => format!(
                        "The server answered {} after it was paid {} sats, then its body broke off: {e}. The receipt is kept (payment hash {}, preimage {}). Calling again pays again.",
                        response.status, r.amount_sats, r.payment_hash, r.preimage
                    ),
                    None => format!(
                        "The server answered {}, then its body broke off: {e}. Nothing was paid. Retry later.",
                        response.status
                    ),
                };
                return answer::error(
                    "body_broke_off",
                    message,
                    json!({
                        "status": response.status.as_u16(),
                        "paid": paid.is_some(),
                        "receipt": response.receipt.as_ref().map(answer::receipt),
                    }),
                );
            }
        };
        answer::finished(Finished {
            method: request.method.as_str(),
            url: request.url.as_str(),
            status: response.status,
            headers: &response.headers,
            receipt: response.receipt.as_ref(),
            body: answer::body(&bytes, truncated),
            limit,
        })
    }

    fn failed(&self, request: &Request, e: &ClientError, max_sats: Option<u64>) -> CallToolResult {
        let token_kept = match e {
            ClientError::Network(_) => self
                .client()
                .ledger()
                .token_for(
                    &request.url.origin().ascii_serialization(),
                    request.url.path(),
                )
                .ok()
                .flatten()
                .filter(|t| !t.used)
                .map(|t| hex::encode(t.payment_hash)),
            _ => None,
        };
        answer::client_error(e, self.policy(), max_sats, token_kept, unix_now())
    }

    fn failed_ledger(&self, e: plannt_client::LedgerError) -> CallToolResult {
        answer::client_error(
            &ClientError::Ledger(e),
            self.policy(),
            None,
            None,
            unix_now(),
        )
    }

    /// Records in the ledger that a payment was not made for want of a human's yes.
    fn record_refusal(&self, request: &Request, check: &str, detail: &str) {
        let _ = self.client().ledger().record_refusal(
            &request.url.origin().ascii_serialization(),
            request.url.path(),
            check,
            detail,
            unix_now(),
        );
    }

    /// The question put to the human: the URL, the price and what the budgets have left.
    fn question(&self, request: &Request, price_sats: u64, threshold: u64) -> String {
        let left = self
            .client()
            .ledger()
            .usage(&self.policy().budget, unix_now())
            .map(|usage| {
                usage
                    .iter()
                    .filter_map(|w| {
                        let limit = w.limit_sats?;
                        let left = w.left_sats?;
                        Some(format!("{left} of {limit} sats left this {}", w.window))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let budget = if left.is_empty() {
            "No budget limits this payment.".to_string()
        } else {
            format!("Budget before this payment: {}.", left.join(", "))
        };
        format!(
            "Pay {price_sats} sats for {} {}?\n{budget}\nPlannt asks because the price is above the {threshold} sats an agent may pay without a human's yes. Lightning payments are final.",
            request.method, request.url
        )
    }

    /// A price above the threshold: ask the human, in the way the protocol allows.
    async fn ask(
        &self,
        request: &Request,
        price_sats: u64,
        threshold: u64,
        print: [u8; 32],
        max_sats: Option<u64>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResponse {
        // A payment the budgets cannot take is refused now: no point asking a human about it.
        let usage = self
            .client()
            .ledger()
            .usage(&self.policy().budget, unix_now())
            .unwrap_or_default();
        if let Some(over) = exceeded(&usage, price_sats, self.policy().max_fee_sats) {
            let result = answer::over_budget(&over, self.policy(), unix_now());
            self.record_refusal(request, "over_budget", &answer_text(&result));
            return result.into();
        }
        let message = self.question(request, price_sats, threshold);
        if modern(context) {
            let can_ask = context
                .client_capabilities()
                .and_then(|c| c.elicitation)
                .is_some_and(|e| e.form.is_some() || e.url.is_none());
            if !can_ask {
                return self
                    .cannot_ask(
                        request,
                        price_sats,
                        threshold,
                        "it did not declare form elicitation",
                    )
                    .into();
            }
            let handle = self.inner.pending.issue(print, price_sats, Instant::now());
            let mut requests = InputRequests::new();
            requests.insert(
                "confirm".into(),
                InputRequest::Elicitation(ElicitRequest::new(form(message, price_sats))),
            );
            return InputRequiredResult::new(Some(requests), Some(handle)).into();
        }
        if !context
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form)
        {
            return self
                .cannot_ask(
                    request,
                    price_sats,
                    threshold,
                    "it did not declare form elicitation",
                )
                .into();
        }
        let asked = context
            .peer
            .create_elicitation_with_timeout(
                form(message, price_sats),
                Some(confirm::CONFIRMATION_TTL),
            )
            .await;
        match asked {
            Ok(result) => {
                let value = serde_json::to_value(&result).unwrap_or_default();
                match confirm::answer(&value) {
                    Answer::Yes => {
                        let cap = confirm::pay_cap(price_sats, max_sats);
                        self.pay(request, Some(cap), Some(price_sats)).await.into()
                    }
                    answer => self.declined(request, price_sats, answer).into(),
                }
            }
            Err(e) => self
                .cannot_ask(
                    request,
                    price_sats,
                    threshold,
                    &format!("asking failed: {e}"),
                )
                .into(),
        }
    }

    /// The client came back with the human's answer to the question `handle` names.
    async fn answered(
        &self,
        handle: &str,
        answer: Answer,
        print: [u8; 32],
        request: &Request,
        max_sats: Option<u64>,
    ) -> CallToolResult {
        let price_sats = match self.inner.pending.take(handle, print, Instant::now()) {
            Ok(price) => price,
            Err(Stale::OtherCall) => {
                return answer::error(
                    "confirmation_mismatch",
                    "This confirmation was given for a call with other arguments, so it confirms nothing here. Nothing was paid. Call fetch again: the price is asked for and confirmed anew.".into(),
                    json!({"paid": false}),
                );
            }
            Err(Stale::Unknown) => {
                return answer::error(
                    "confirmation_expired",
                    format!(
                        "This confirmation is unknown, was used already, or came later than {} after the question. Nothing was paid. Call fetch again: the price is asked for and confirmed anew.",
                        answer::duration(confirm::CONFIRMATION_TTL.as_secs())
                    ),
                    json!({"paid": false}),
                );
            }
        };
        match answer {
            Answer::Yes => {
                let cap = confirm::pay_cap(price_sats, max_sats);
                self.pay(request, Some(cap), Some(price_sats)).await
            }
            answer => self.declined(request, price_sats, answer),
        }
    }

    fn declined(&self, request: &Request, price_sats: u64, answer: Answer) -> CallToolResult {
        let (check, what) = match answer {
            Answer::Cancelled => ("not_confirmed", "dismissed the question about paying"),
            _ => ("declined", "declined to pay"),
        };
        let detail = format!("the user {what} {price_sats} sats");
        self.record_refusal(request, check, &detail);
        answer::error(
            "declined",
            format!(
                "The user {what} {price_sats} sats for {} {}. Nothing was paid. Do not ask again for this URL unless the user says so; look for a cheaper way or ask the user what to do.",
                request.method, request.url
            ),
            json!({"paid": false, "price_sats": price_sats, "answer": match answer { Answer::Cancelled => "cancel", _ => "decline" }}),
        )
    }

    fn cannot_ask(
        &self,
        request: &Request,
        price_sats: u64,
        threshold: u64,
        why: &str,
    ) -> CallToolResult {
        self.record_refusal(
            request,
            "confirmation_unavailable",
            &format!(
                "{price_sats} sats needs a human's confirmation and the client cannot ask ({why})"
            ),
        );
        answer::error(
            "confirmation_unavailable",
            format!(
                "Paying {price_sats} sats for {} {} needs a human's confirmation (the operator's threshold is {threshold} sats), and this MCP client cannot ask for one ({why}). Nothing was paid. Tell the user: they can confirm through an MCP client that supports elicitation, pay it themselves with `plannt get`, or raise confirm_above_sats (PLANNT_CONFIRM_ABOVE_SATS).",
                request.method, request.url
            ),
            json!({"paid": false, "price_sats": price_sats, "confirm_above_sats": threshold}),
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PlanntMcp {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("plannt", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(INSTRUCTIONS.to_string());
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            |v: Value, max: Option<u64>| fingerprint(&build_request(&args(v)).unwrap(), max);
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
    }

    #[test]
    fn a_payment_the_budget_cannot_take_is_found_before_asking() {
        let window = |window, limit: Option<u64>, used: u64| WindowUse {
            window,
            limit_sats: limit,
            used_sats: used,
            left_sats: limit.map(|l| l.saturating_sub(used)),
        };
        let usage = [
            window("hour", Some(500), 400),
            window("day", Some(2000), 400),
            window("total", None, 400),
        ];
        assert_eq!(exceeded(&usage, 90, 10), None);
        let over = exceeded(&usage, 91, 10).unwrap();
        assert_eq!(
            (over.window, over.limit_sats, over.left_sats),
            ("hour", 500, 100)
        );
        assert_eq!(exceeded(&usage[2..], u64::MAX, 10), None);
    }

    #[test]
    fn argument_schemas_are_plain_json_schema() {
        use rmcp::handler::server::tool::schema_for_input;
        let fetch = schema_for_input::<FetchArgs>().unwrap();
        assert_eq!(fetch["required"], json!(["url"]));
        assert_eq!(fetch["additionalProperties"], json!(false));
        assert_eq!(fetch["properties"]["max_sats"]["type"], "integer");
        for schema in [
            fetch,
            schema_for_input::<DiscoverArgs>().unwrap(),
            schema_for_input::<SpendingArgs>().unwrap(),
        ] {
            let text = serde_json::to_string(&*schema).unwrap();
            // Optional, not nullable: a `["integer", "null"]` type is lost on some model APIs.
            assert!(!text.contains("\"null\""), "{text}");
        }
    }

    #[test]
    fn the_fetch_description_states_the_operators_limits() {
        let policy = Policy::default();
        let text = policy_text(&policy, Some(100));
        assert!(text.contains("at most 1000 sats per request"), "{text}");
        assert!(text.contains("above 100 sats"), "{text}");
        assert!(text.contains("any host"), "{text}");
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
        );
        assert!(text.contains("only api.example.com"), "{text}");
        assert!(text.contains("no payment needs"), "{text}");
    }
}
