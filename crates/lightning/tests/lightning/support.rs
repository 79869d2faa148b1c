//! What the tests of every backend use: invoice requests, hashes computed here rather than by the
//! code under test, invoices without an amount, and opening a backend from its URI.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use plannt_l402::PaymentHash;
use plannt_lightning::{BackendUri, Context, InvoiceRequest, OpenError, Wallet};
use sha2::{Digest, Sha256};

/// An invoice request for `sats`, valid ten minutes.
pub fn request(sats: u64, memo: &str) -> InvoiceRequest {
    InvoiceRequest {
        amount_sats: sats,
        memo: memo.into(),
        expiry_secs: 600,
    }
}

/// `sha256(bytes)`, computed here rather than by the code under test.
pub fn sha256(bytes: &[u8]) -> PaymentHash {
    PaymentHash(Sha256::digest(bytes).into())
}

/// 32 random bytes.
pub fn random32() -> [u8; 32] {
    plannt_testkit::fakes::random32()
}

/// Opens the backend a URI names, as Plannt does, and answers its wallet.
pub fn open_wallet(uri: &BackendUri, context: &Context) -> Result<Arc<dyn Wallet>, OpenError> {
    plannt_lightning::open(uri, context).map(|opened| opened.wallet)
}

/// Parses `text` as a backend URI and opens it; panics if either fails.
pub fn open_uri(text: &str, context: &Context) -> Arc<dyn Wallet> {
    let uri: BackendUri = text.parse().expect("a valid backend URI");
    open_wallet(&uri, context).expect("the backend opens")
}

/// A signed invoice without an amount, on `currency`, whose payee is the node of `node_key` (a
/// fresh key when `None`).
pub fn amountless_invoice(currency: Currency, node_key: Option<SecretKey>) -> String {
    let secp = Secp256k1::new();
    let key = node_key.unwrap_or_else(|| {
        loop {
            if let Ok(key) = SecretKey::from_slice(&random32()) {
                break key;
            }
        }
    });
    InvoiceBuilder::new(currency)
        .description("no amount".into())
        .payment_hash(sha256::Hash::from_byte_array(random32()))
        .payment_secret(PaymentSecret(random32()))
        .timestamp(SystemTime::now())
        .min_final_cltv_expiry_delta(144)
        .expiry_time(Duration::from_secs(600))
        .build_signed(|message| secp.sign_ecdsa_recoverable(message, &key))
        .expect("a valid invoice")
        .to_string()
}
