//! The fake LND's payments: `SendPaymentV2` (`POST /v2/router/send`) and `TrackPaymentV2`
//! (`GET /v2/router/track/{payment_hash}`), the stream of `Payment` updates they answer, and a
//! payment routed through the rest of the network.

use super::*;

/// Routes a payment through the rest of the network: it succeeds or fails, once.
pub(super) fn complete(state: &mut Node, hash: &[u8; 32]) {
    let fee = state.route_fee_msat;
    let network = state.network.clone();
    let payment = state.payments.get_mut(hash).expect("a payment we track");
    if payment.fee_limit_msat < fee {
        payment.status = "FAILED";
        payment.failure_reason = "FAILURE_REASON_NO_ROUTE";
        return;
    }
    let paid = if payment.amountless {
        network.pay_amount(NODE_ACCOUNT, &payment.bolt11, payment.value_msat)
    } else {
        network.pay(NODE_ACCOUNT, &payment.bolt11)
    };
    match paid {
        Ok(paid) => {
            payment.status = "SUCCEEDED";
            payment.preimage = Some(*paid.preimage.as_bytes());
            payment.value_msat = paid.amount_msat;
            payment.fee_msat = fee;
            state.spent_msat += paid.amount_msat + fee;
        }
        Err(error) => {
            payment.status = "FAILED";
            payment.failure_reason = match error {
                LightningError::NoRoute(_) => "FAILURE_REASON_NO_ROUTE",
                LightningError::InsufficientBalance(_) => "FAILURE_REASON_INSUFFICIENT_BALANCE",
                LightningError::AlreadyPaid => "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
                _ => "FAILURE_REASON_ERROR",
            };
        }
    }
}

/// `lnrpc.Payment` as protojson writes it; `as_started` shows it as it was when it had just
/// started: in flight, no fee yet, the preimage all zeros.
fn payment_json(hash: &[u8; 32], payment: &Outgoing, as_started: bool) -> Value {
    let status = if as_started {
        "IN_FLIGHT"
    } else {
        payment.status
    };
    let preimage = payment
        .preimage
        .filter(|_| status == "SUCCEEDED")
        .map_or_else(|| "0".repeat(64), hex::encode);
    let fee_msat = if as_started { 0 } else { payment.fee_msat };
    let failure_reason = if as_started {
        "FAILURE_REASON_NONE"
    } else {
        payment.failure_reason
    };
    let sat = |msat: u64| (msat / 1000).to_string();
    json!({
        "payment_hash": hex::encode(hash),
        "value": sat(payment.value_msat),
        "creation_date": (payment.creation_time_ns / 1_000_000_000).to_string(),
        "fee": sat(fee_msat),
        "payment_preimage": preimage,
        "value_sat": sat(payment.value_msat),
        "value_msat": payment.value_msat.to_string(),
        "payment_request": payment.bolt11,
        "status": status,
        "fee_sat": sat(fee_msat),
        "fee_msat": fee_msat.to_string(),
        "creation_time_ns": payment.creation_time_ns.to_string(),
        "htlcs": [],
        "payment_index": payment.payment_index.to_string(),
        "failure_reason": failure_reason,
        "first_hop_custom_records": {},
    })
}

/// The stream of a payment's updates: its current state (an in-flight one unless
/// `no_inflight`), then each change, until it succeeds or fails. A payment just sent
/// (`just_sent`) is first reported as it started: in flight.
fn payment_stream(fake: Lnd, hash: [u8; 32], no_inflight: bool, just_sent: bool) -> Body {
    let changes = fake.inner.changed.subscribe();
    // The phase: 0 nothing sent yet, 1 an in-flight update sent, 2 the outcome sent.
    let stream = futures_util::stream::unfold(
        (fake, changes, 0u8),
        move |(fake, mut changes, phase)| async move {
            if phase == 2 {
                return None;
            }
            loop {
                changes.borrow_and_update();
                let as_started = phase == 0 && just_sent && !no_inflight;
                let (line, terminal) = {
                    let state = fake.state();
                    let payment = state.payments.get(&hash)?;
                    let terminal = !as_started && matches!(payment.status, "SUCCEEDED" | "FAILED");
                    let line = json!({ "result": payment_json(&hash, payment, as_started) });
                    (format!("{line}\n"), terminal)
                };
                if terminal {
                    let next = (fake, changes, 2);
                    return Some((Ok::<_, std::convert::Infallible>(line), next));
                }
                if phase == 0 && !no_inflight {
                    return Some((Ok(line), (fake, changes, 1)));
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        },
    );
    Body::from_stream(stream)
}

pub(super) async fn send_payment(
    State(fake): State<Lnd>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin]) {
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            3,
            "invalid character looking for beginning of value",
        );
    };
    fake.state().posted.push(("/v2/router/send", body.clone()));
    let bolt11 = body
        .get("payment_request")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(invoice) = fake::parse_bolt11(&bolt11) else {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "invalid bech32 string length 0",
        );
    };
    if !invoice.currency_regtest {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "invoice not for current active network 'regtest'",
        );
    }
    // lnrpc.UnmarshallAmt, then routerrpc's extractIntentFromSendRequest.
    let (amt, amt_msat) = match (int64(&body, "amt"), int64(&body, "amt_msat")) {
        (Ok(s), Ok(m)) => (s, m),
        _ => return error(StatusCode::BAD_REQUEST, 3, "bad amount"),
    };
    if amt != 0 && amt_msat != 0 {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "sat and msat arguments are mutually exclusive",
        );
    }
    let chosen_msat = if amt != 0 { amt * 1000 } else { amt_msat };
    let value_msat = match (invoice.amount_msat, chosen_msat) {
        (None, 0) => {
            return stream_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                2,
                "amount must be specified when paying a zero amount invoice",
            );
        }
        (None, chosen) => chosen,
        (Some(_), 0) => invoice.amount_msat.unwrap_or(0),
        (Some(_), _) => {
            return stream_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                2,
                "amount must not be specified when paying a non-zero  amount invoice",
            );
        }
    };
    if invoice.expired {
        let message = format!("invoice expired. Valid until {} (unix)", invoice.expires_at);
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, 2, &message);
    }
    let (fee_sat, fee_msat) = match (
        int64(&body, "fee_limit_sat"),
        int64(&body, "fee_limit_msat"),
    ) {
        (Ok(s), Ok(m)) => (s, m),
        _ => return error(StatusCode::BAD_REQUEST, 3, "bad fee limit"),
    };
    if fee_sat != 0 && fee_msat != 0 {
        return stream_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "sat and msat arguments are mutually exclusive",
        );
    }
    // No fee limit is a limit of zero.
    let fee_limit_msat = if fee_sat != 0 {
        fee_sat * 1000
    } else {
        fee_msat
    };
    let no_inflight = body
        .get("no_inflight_updates")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let hash = invoice.payment_hash;
    let broken = broken(&fake, "/v2/router/send");
    {
        let mut state = fake.state();
        match state.payments.get(&hash).map(|p| p.status) {
            Some("SUCCEEDED") => {
                return stream_error(StatusCode::CONFLICT, 6, "invoice is already paid");
            }
            Some("IN_FLIGHT") => {
                return stream_error(StatusCode::CONFLICT, 6, "payment is in transition");
            }
            _ => {}
        }
        state.payment_index += 1;
        let payment_index = state.payment_index;
        state.payments.insert(
            hash,
            Outgoing {
                bolt11,
                amountless: invoice.amount_msat.is_none(),
                value_msat,
                fee_limit_msat,
                fee_msat: 0,
                status: "IN_FLIGHT",
                preimage: None,
                failure_reason: "FAILURE_REASON_NONE",
                creation_time_ns: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .expect("clock")
                    .as_nanos(),
                payment_index,
            },
        );
        state.payments_started += 1;
        if !state.hold || broken {
            complete(&mut state, &hash);
        }
    }
    fake.bump();
    if broken {
        return not_json();
    }
    let mut response = Response::new(payment_stream(fake, hash, no_inflight, true));
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(serde::Deserialize)]
pub struct TrackQuery {
    #[serde(default)]
    no_inflight_updates: bool,
}

pub(super) async fn track_payment(
    State(fake): State<Lnd>,
    headers: HeaderMap,
    Path(payment_hash): Path<String>,
    Query(query): Query<TrackQuery>,
) -> Response {
    if let Err((code, message)) = authorize(&fake, &headers, &[Macaroon::Admin]) {
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, code, message);
    }
    // grpc-gateway's runtime.Bytes: standard base64, else URL-safe, both padded.
    let Ok(bytes) = STANDARD
        .decode(&payment_hash)
        .or_else(|_| URL_SAFE.decode(&payment_hash))
    else {
        let message = format!(
            "type mismatch, parameter: payment_hash, error: illegal base64 data in {payment_hash:?}"
        );
        return error(StatusCode::BAD_REQUEST, 3, &message);
    };
    let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        let message = format!("invalid hash length of {}, want 32", bytes.len());
        return stream_error(StatusCode::INTERNAL_SERVER_ERROR, 2, &message);
    };
    fake.state().tracked.push(hash);
    if !fake.state().payments.contains_key(&hash) {
        return stream_error(StatusCode::NOT_FOUND, 5, "payment isn't initiated");
    }
    let mut response = Response::new(payment_stream(fake, hash, query.no_inflight_updates, false));
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}
