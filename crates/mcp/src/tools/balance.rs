//! `balance`: the wallet's balance, and how much of it the budgets let the agent spend now.

use plannt_lightning::invoice::unix_now;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use serde_json::json;

use crate::answer;
use crate::server::PlanntMcp;

const BALANCE: &str = "The operator's Lightning wallet balance in sats, and how much of it the spending budgets let you spend right now. Free and read-only.";

#[tool_router(router = balance_router, vis = "pub(crate)")]
impl PlanntMcp {
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
}
