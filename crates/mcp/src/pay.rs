//! Paying and answering: one call of the paying client, its response read up to the operator's
//! limit and rendered as a tool result, or its failure explained.

use plannt_client::{ClientError, Dialect, Options, Outcome, Refusal, Request, Response};
use rmcp::model::CallToolResult;
use serde_json::json;

use crate::answer::{self, Finished};
use crate::server::PlanntMcp;

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

impl PlanntMcp {
    /// Pays (if asked) and answers. `quoted` is the price a dry run saw, when there was one:
    /// `max_sats` was set to it, so an over-cap refusal means the price rose. `dialects`
    /// narrows the dialects the operator allows, as the agent asked.
    pub(crate) async fn pay(
        &self,
        request: &Request,
        max_sats: Option<u64>,
        quoted: Option<u64>,
        dialects: Option<&[Dialect]>,
    ) -> CallToolResult {
        // A session's deposit is paid without asking anyone: never more than a payment a human
        // would not be asked to confirm.
        let options = Options {
            max_sats,
            dry_run: false,
            on_event: None,
            dialects,
            max_session_sats: self.config().confirm_above_sats,
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
            Err(e) => self.failed(&e, max_sats),
        }
    }

    /// Reads the answer's body (up to the limit) and renders the result.
    pub(crate) async fn finish(&self, request: &Request, mut response: Response) -> CallToolResult {
        let limit = self.config().max_body_bytes;
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
            need_top_up: response.need_top_up.as_deref(),
        })
    }
}
