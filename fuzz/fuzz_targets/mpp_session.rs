//! MPP's session intent from a server: `SessionRequest::decode` (a 402's `request` parameter) on
//! the input as lossy UTF-8 and base64url-encoded (so the fuzzer reaches the JSON directly), and
//! `NeedTopUp::parse_data` (a stream's `payment-need-topup` event), `SessionDebit::parse_line`
//! (a stream's `: plannt-session-debit` comment) on the input, and `SessionReceipt::parse` (a
//! session answer's `Payment-Receipt`, with its debit, hold and balance) on the input as is and
//! base64url-encoded.
//!
//! Checks that none panics, and that what is accepted writes out and reads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plannt_l402::base64url_encode;
use plannt_l402::mpp::{NeedTopUp, SessionDebit, SessionReceipt, SessionRequest};

fn check_request(value: &str) {
    if let Ok(request) = SessionRequest::decode(value) {
        let _ = (
            request.amount_sats(),
            request.deposit_sats(),
            request.idle_secs(),
            request.payment_hash(),
        );
        let again = SessionRequest::decode(&request.encode()).expect("our own request reads");
        assert_eq!(again, request);
    }
}

fn check_receipt(value: &str) {
    if let Ok(receipt) = SessionReceipt::parse(value) {
        let _ = receipt.session_id();
        let again =
            SessionReceipt::parse(&receipt.to_header_value()).expect("our own receipt reads");
        assert_eq!(again, receipt);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_request(&text);
    check_request(&base64url_encode(data));
    if let Ok(event) = NeedTopUp::parse_data(&text) {
        let json = serde_json::to_string(&event).expect("the event writes");
        assert_eq!(NeedTopUp::parse_data(&json).expect("our own event reads"), event);
    }
    for line in text.lines() {
        if let Some(Ok(debit)) = SessionDebit::parse_line(line) {
            let sse = debit.to_sse();
            let again = SessionDebit::parse_line(sse.lines().next().expect("one line"));
            assert_eq!(again.expect("ours").expect("our own debit reads"), debit);
        }
    }
    check_receipt(&text);
    check_receipt(&base64url_encode(data));
});
