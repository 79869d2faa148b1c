//! `discover`: what a server sells and at what price, without paying: its catalog at
//! `/.well-known/l402.json` as a price list, else a dry run of the URL itself.

use plannt_client::{ClientError, Options, Outcome, Request};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::answer;
use crate::catalog;
use crate::confirm;
use crate::server::PlanntMcp;
use crate::tools::arguments::parse_url;

/// The arguments of `discover`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverArgs {
    /// Any URL on the server: its catalog is looked up at /.well-known/l402.json, and without one, this URL's price is asked for without paying.
    pub url: String,
}

const DISCOVER: &str = "Find out what an L402 server sells and at what price, without paying anything. Give any URL on the server: returns its catalog (/.well-known/l402.json) as a price list, each endpoint's method, full URL and price in sats (or, for one priced by its tokens, its price_rule: sats per 1k input and output tokens per model, the max_tokens ceiling, the minimum), its free tier, rate limit and prepaid session deposit if any, and which entry serves the URL you gave. A server without a catalog is asked for the URL itself without paying (a dry run), and the result gives that URL's price or says it is free. Free; use it before fetch whenever the price is unknown.";

#[tool_router(router = discover_router, vis = "pub(crate)")]
impl PlanntMcp {
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
            "confirm_above_sats": self.config().confirm_above_sats,
            "host_allowed": policy.host_allowed(host),
        });
        let catalog_url = catalog::catalog_url(&url);
        // Through the paying client (which never pays here), so where it may go is checked.
        let catalog = match catalog::fetch_catalog(self.client(), &catalog_url).await {
            Ok(catalog) => catalog,
            Err(e) => return Ok(self.failed(&e, None)),
        };
        if let Some(catalog) = catalog {
            let list = catalog::price_list(&catalog, &url);
            let matched = catalog::matching(&list, &url).cloned();
            let metered = list.iter().any(|e| e.price_rule.is_some());
            let note = match &matched {
                Some(m) => format!(
                    "{} is served by {}: {}. fetch pays the price its 402 asks. Nothing was paid.",
                    url,
                    m.service,
                    m.price_words(),
                ),
                None if metered => format!(
                    "The catalog lists {} endpoints; each is priced per request, or by its tokens where it gives a price_rule (the exact price is then each request's 402), and fetch pays it. Nothing was paid.",
                    list.len()
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
                let confirm = confirm::needs_confirmation(price, self.config().confirm_above_sats);
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
                    "budget_ok": true,
                    "note": format!(
                        "No catalog at {catalog_url}. GET {url} asks {price} sats; every check passed, the budgets included, and nothing was paid.{}",
                        if confirm { " Paying it needs a human's confirmation, which fetch asks for." } else { "" }
                    ),
                })))
            }
            // Every other check passed: the price is known, and the budgets cannot take it now.
            Err(ClientError::OverBudget(over)) => {
                let price = over.cost_sats.saturating_sub(policy.max_fee_sats);
                Ok(answer::ok(json!({
                    "url": url.as_str(),
                    "source": "dry_run",
                    "price_sats": price,
                    "budget_ok": false,
                    "window": over.window,
                    "left_sats": over.left_sats,
                    "policy": policy_json,
                    "note": format!(
                        "No catalog at {catalog_url}. GET {url} asks {price} sats, and its invoice passed every check; but the {} budget has {} sats left, less than the {} sats a payment reserves (its price plus the fee reserve), so fetch would refuse it now. Nothing was paid.",
                        over.window, over.left_sats, over.cost_sats
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
            Err(e) => Ok(self.failed(&e, None)),
        }
    }
}
