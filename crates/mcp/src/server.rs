//! The MCP server: four tools over the paying client, one file each under `tools/`.
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
//! so the model reads what happened and what to do next. Asking a human before a payment is
//! `ask`'s; paying and rendering the answer, `pay`'s.

use std::sync::Arc;

use plannt_client::{Client, ClientError, LedgerError, Policy, Request};
use plannt_lightning::invoice::unix_now;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};

use crate::answer;
use crate::confirm::Pending;

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

const INSTRUCTIONS: &str = "Plannt pays for HTTP APIs over Lightning (L402, MPP or x402) from the operator's wallet, within the operator's budgets. Use discover to learn prices (free), fetch to call a URL and pay if it asks (one call does both), and balance or spending to see what is left. Payments are final and each paid call pays again; a human confirms the larger ones.";

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

impl PlanntMcp {
    /// A server paying with `client` (its wallet, ledger and policy) under `config`.
    pub fn new(client: Client, config: Config) -> Self {
        let max_time = client.timeouts().max_time;
        let tool_router =
            Self::fetch_router_for(client.policy(), config.confirm_above_sats, max_time)
                + Self::discover_router()
                + Self::balance_router()
                + Self::spending_router();
        PlanntMcp {
            inner: Arc::new(Inner {
                client,
                config,
                pending: Pending::default(),
            }),
            tool_router,
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn policy(&self) -> &Policy {
        self.inner.client.policy()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The confirmations waiting for a human's answer.
    pub(crate) fn pending(&self) -> &Pending {
        &self.inner.pending
    }

    pub(crate) fn failed(&self, e: &ClientError, max_sats: Option<u64>) -> CallToolResult {
        answer::client_error(e, self.policy(), max_sats, unix_now())
    }

    pub(crate) fn failed_ledger(&self, e: LedgerError) -> CallToolResult {
        answer::client_error(&ClientError::Ledger(e), self.policy(), None, unix_now())
    }

    /// Records in the ledger that a payment was not made for want of a human's yes.
    pub(crate) fn record_refusal(&self, request: &Request, check: &str, detail: &str) {
        let _ = self.client().ledger().record_refusal(
            &request.url.origin().ascii_serialization(),
            request.url.path(),
            check,
            detail,
            unix_now(),
        );
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
