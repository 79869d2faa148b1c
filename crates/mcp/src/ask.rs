//! Asking a human before paying: the confirmation flow of `fetch` above the operator's
//! threshold. On protocol 2026-07-28 the question travels as an `InputRequiredResult` and the
//! answer comes back in a second call (`answered`); before it, as an elicitation request to the
//! client. A payment the budgets cannot take is refused before anyone is asked; a client that
//! cannot ask is refused, and each refusal is recorded in the ledger.

use std::time::Instant;

use plannt_client::{Dialect, OverBudget, Request, WindowUse};
use plannt_lightning::invoice::unix_now;
use rmcp::RoleServer;
use rmcp::model::{
    CallToolResponse, CallToolResult, ElicitRequest, ElicitRequestParams, ElicitationSchema,
    InputRequest, InputRequests, InputRequiredResult, ProtocolVersion,
};
use rmcp::service::{ElicitationMode, RequestContext};
use serde_json::json;

use crate::answer;
use crate::confirm::{self, Answer, Stale};
use crate::server::PlanntMcp;

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
            cost_sats: cost,
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

impl PlanntMcp {
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
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn ask(
        &self,
        request: &Request,
        price_sats: u64,
        threshold: u64,
        print: [u8; 32],
        max_sats: Option<u64>,
        dialects: Option<&[Dialect]>,
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
            let handle = self.pending().issue(print, price_sats, Instant::now());
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
                        self.pay(request, Some(cap), Some(price_sats), dialects)
                            .await
                            .into()
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
    pub(crate) async fn answered(
        &self,
        handle: &str,
        answer: Answer,
        print: [u8; 32],
        request: &Request,
        max_sats: Option<u64>,
        dialects: Option<&[Dialect]>,
    ) -> CallToolResult {
        let price_sats = match self.pending().take(handle, print, Instant::now()) {
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
                self.pay(request, Some(cap), Some(price_sats), dialects)
                    .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use plannt_client::Window;

    #[test]
    fn a_payment_the_budget_cannot_take_is_found_before_asking() {
        let window = |window, limit: Option<u64>, used: u64| WindowUse {
            window,
            limit_sats: limit,
            used_sats: used,
            left_sats: limit.map(|l| l.saturating_sub(used)),
        };
        let usage = [
            window(Window::Hour, Some(500), 400),
            window(Window::Day, Some(2000), 400),
            window(Window::Total, None, 400),
        ];
        assert_eq!(exceeded(&usage, 90, 10), None);
        let over = exceeded(&usage, 91, 10).unwrap();
        assert_eq!(
            (over.window, over.limit_sats, over.left_sats),
            (Window::Hour, 500, 100)
        );
        assert_eq!(exceeded(&usage[2..], u64::MAX, 10), None);
    }
}
