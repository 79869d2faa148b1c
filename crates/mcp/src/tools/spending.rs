//! `spending`: each budget window's limit, use and what is left; the operator's limits; the
//! prepaid sessions open now and what they hold; the latest payments with their receipts, and
//! the latest refusals.

use plannt_lightning::invoice::unix_now;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer;
use crate::server::PlanntMcp;

/// The arguments of `spending`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendingArgs {
    /// How many of the latest payments to list (default 10, at most 100).
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

const SPENDING: &str = "What the spending budgets allow and have used: for each window (the last hour, the last 24 hours, all time) its limit and the sats used and left; the operator's per-request cap, routing-fee limit, allowed hosts, confirmation threshold and the most a prepaid session with each host may hold; the prepaid sessions open now and what each holds (a deposit counts in the budgets when paid; what is left comes back when the session closes); the latest payments with their receipts (amount, fee, payment hash, preimage, status); and the latest refused payments with the reason. Free and read-only. Use it to plan before paying, and after an over-budget refusal.";

#[tool_router(router = spending_router, vis = "pub(crate)")]
impl PlanntMcp {
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
        let (usage, recent, refusals, sessions) = match (
            ledger.usage(&policy.budget, now),
            ledger.recent(limit),
            ledger.refusals(5),
            ledger.sessions(false),
        ) {
            (Ok(u), Ok(r), Ok(f), Ok(s)) => (u, r, f, s),
            (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
                return Ok(self.failed_ledger(e));
            }
        };
        let open_sessions: Vec<Value> = sessions
            .iter()
            .map(|s| {
                json!({
                    "url": format!("{}{}", s.origin, s.path),
                    "id": s.session_id,
                    "state": s.state,
                    "deposit_sats": s.deposit_sats,
                    "spent_sats": s.spent_sats,
                    "balance_sats": s.balance_sats,
                    "estimated_debits": s.estimated_debits,
                    "last_used": answer::when(s.last_used_at),
                    "idle_timeout_secs": s.idle_timeout_secs,
                })
            })
            .collect();
        let held: u64 = sessions.iter().map(|s| s.balance_sats).sum();
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
            "confirm_above_sats": self.config().confirm_above_sats,
            "session_deposit_sats": policy.session_deposits.iter().map(|(host, sats)| json!({"host": host, "max_sats": sats})).collect::<Vec<_>>(),
            "open_sessions": open_sessions,
            "held_in_sessions_sats": held,
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
