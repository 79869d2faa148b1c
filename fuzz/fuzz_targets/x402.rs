//! The x402 headers: `PaymentRequired::decode`, `PaymentPayload::decode` and
//! `SettlementResponse::decode` on the input as lossy UTF-8, and on the input base64-encoded (so
//! the fuzzer reaches the JSON directly).
//!
//! Checks that none panics; that what decodes encodes and decodes again to the same core fields;
//! that `TagKeys::verify_exact` of a payload (route `demo`, 21 000 msat, regtest, a fixed time)
//! and the client's `check_before_paying` of every offer return without panicking; and that a
//! payload re-tagged under our key as an offer for its own terms verifies only if those terms are
//! what the request expects.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use plannt_l402::x402::{
    ExactExpect, ExactOffer, PaymentPayload, PaymentRequired, PaymentRequirements,
    SettlementResponse, TagKey, TagKeys,
};
use plannt_l402::{InvoiceFacts, Network, PaymentHash, base64_encode};

static KEYS: LazyLock<TagKeys> = LazyLock::new(|| TagKeys::new(vec![TagKey::new([7; 32])]));

const EXPECT: ExactExpect<'static> = ExactExpect {
    route: "demo",
    price_msat: 21_000,
    network: Network::Regtest,
    now: 1_800_000_000,
};

fn core(
    r: &PaymentRequirements,
) -> (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<u64>,
    Option<String>,
) {
    (
        r.scheme.clone(),
        r.network.clone(),
        r.amount.clone(),
        r.asset.clone(),
        r.pay_to.clone(),
        r.max_timeout_seconds,
        r.invoice().map(str::to_string),
    )
}

fn check(value: &str) {
    if let Ok(required) = PaymentRequired::decode(value) {
        let again = PaymentRequired::decode(&required.encode()).expect("our own header decodes");
        assert_eq!(
            again.accepts.iter().map(core).collect::<Vec<_>>(),
            required.accepts.iter().map(core).collect::<Vec<_>>()
        );
        let facts = InvoiceFacts {
            payment_hash: PaymentHash([0; 32]),
            amount_msat: Some(21_000),
            network: Network::Regtest,
            expires_at: EXPECT.now + 600,
            payee: "02".repeat(33),
        };
        for offer in &required.accepts {
            let _ = offer.check_before_paying(&facts, Network::Regtest, EXPECT.now);
        }
    }
    if let Ok(payload) = PaymentPayload::decode(value) {
        let again = PaymentPayload::decode(&payload.encode()).expect("our own header decodes");
        assert_eq!(core(&again.accepted), core(&payload.accepted));
        assert_eq!(again.payload, payload.payload);
        let _ = KEYS.verify_exact(&payload, &EXPECT);
        retagged(&payload);
    }
    if let Ok(response) = SettlementResponse::decode(value) {
        let again = SettlementResponse::decode(&response.encode()).expect("our own header decodes");
        assert_eq!(again.transaction, response.transaction);
        assert_eq!(again.success, response.success);
    }
}

/// The payload's terms tagged by our key: it verifies exactly when they are the request's.
fn retagged(payload: &PaymentPayload) {
    let accepted = &payload.accepted;
    let (Some(amount_msat), Some(invoice), Some(network)) = (
        accepted.amount_msat(),
        accepted.invoice(),
        accepted.network(),
    ) else {
        return;
    };
    let Ok(requirements) = KEYS.requirements(&ExactOffer {
        route: "demo",
        amount_msat,
        invoice,
        payment_hash: accepted.payment_hash().unwrap_or(PaymentHash([1; 32])),
        network,
        max_timeout_seconds: 600,
        valid_until: EXPECT.now + 1,
    }) else {
        return;
    };
    let ours = PaymentPayload::exact(None, &requirements);
    let result = KEYS.verify_exact(&ours, &EXPECT);
    let should = network == EXPECT.network && amount_msat >= EXPECT.price_msat;
    assert_eq!(result.is_ok(), should, "{result:?}");
}

fuzz_target!(|data: &[u8]| {
    check(&String::from_utf8_lossy(data));
    check(&base64_encode(data));
});
