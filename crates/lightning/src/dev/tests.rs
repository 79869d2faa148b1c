//! Tests of the dev network: every typed error, concurrency, persistence and the HTTP API.

use std::sync::Arc;
use std::time::SystemTime;

use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use sha2::{Digest, Sha256};

use super::http::DevHttp;
use super::*;
use crate::decode_invoice;

fn request(sats: u64) -> InvoiceRequest {
    InvoiceRequest {
        amount_sats: sats,
        memo: "plannt test".into(),
        expiry_secs: 600,
    }
}

/// An invoice signed by some other key, on any network, with or without an amount.
fn foreign_invoice(currency: Currency, amount_msat: Option<u64>) -> String {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let builder = InvoiceBuilder::new(currency)
        .description("foreign".into())
        .payment_hash(sha256::Hash::from_byte_array([1; 32]))
        .payment_secret(PaymentSecret([2; 32]))
        .timestamp(SystemTime::now())
        .min_final_cltv_expiry_delta(144);
    let builder = match amount_msat {
        Some(a) => builder.amount_milli_satoshis(a),
        None => builder,
    };
    builder
        .build_signed(|m| secp.sign_ecdsa_recoverable(m, &key))
        .unwrap()
        .to_string()
}

#[test]
fn issues_real_signed_regtest_invoices() {
    let net = DevNetwork::ephemeral(1000);
    let issued = net.create_invoice(&request(21)).unwrap();
    assert!(
        issued.bolt11.starts_with("lnbcrt210n1"),
        "{}",
        issued.bolt11
    );
    let decoded = decode_invoice(&issued.bolt11).unwrap();
    assert_eq!(decoded.network, Network::Regtest);
    assert_eq!(decoded.amount_msat, Some(21_000));
    assert_eq!(decoded.payment_hash, issued.payment_hash);
    assert_eq!(decoded.payee, net.node_id().serialize());
    assert_eq!(decoded.description.as_deref(), Some("plannt test"));
    assert_eq!(decoded.expires_at(), issued.expires_at);
}

#[test]
fn paying_moves_sats_and_returns_the_preimage() {
    let net = DevNetwork::ephemeral(1000);
    let issued = net.create_invoice(&request(21)).unwrap();
    assert_eq!(
        net.lookup("alice", &issued.payment_hash),
        PaymentLookup::NotFound
    );
    let payment = net.pay("alice", &issued.bolt11).unwrap();
    let hashed = PaymentHash(Sha256::digest(payment.preimage.as_bytes()).into());
    assert_eq!(hashed, issued.payment_hash);
    assert_eq!(payment.amount_msat, 21_000);
    assert_eq!(net.balance("alice"), 979_000);
    assert_eq!(net.balance(RECEIVER_ACCOUNT), 1_021_000);
    assert_eq!(
        net.lookup("alice", &issued.payment_hash),
        PaymentLookup::Succeeded(payment)
    );
    // Another account did not pay it.
    assert_eq!(
        net.lookup("bob", &issued.payment_hash),
        PaymentLookup::NotFound
    );
}

#[test]
fn every_typed_error() {
    let net = DevNetwork::ephemeral(100);
    let issued = net.create_invoice(&request(21)).unwrap();
    net.pay("alice", &issued.bolt11).unwrap();
    assert_eq!(
        net.pay("alice", &issued.bolt11),
        Err(LightningError::AlreadyPaid)
    );
    assert_eq!(
        net.pay("bob", &issued.bolt11),
        Err(LightningError::AlreadyPaid)
    );

    let expired = net
        .create_invoice(&InvoiceRequest {
            expiry_secs: 0,
            ..request(1)
        })
        .unwrap();
    assert_eq!(
        net.pay("alice", &expired.bolt11),
        Err(LightningError::InvoiceExpired)
    );

    let big = net.create_invoice(&request(101)).unwrap();
    assert!(matches!(
        net.pay("carol", &big.bolt11),
        Err(LightningError::InsufficientBalance(_))
    ));
    assert_eq!(
        net.balance("carol"),
        100_000,
        "a refused payment moves nothing"
    );

    let other = DevNetwork::ephemeral(100)
        .create_invoice(&request(1))
        .unwrap();
    assert!(matches!(
        net.pay("alice", &other.bolt11),
        Err(LightningError::NoRoute(_))
    ));

    let mainnet = foreign_invoice(Currency::Bitcoin, Some(1000));
    assert!(matches!(
        net.pay("alice", &mainnet),
        Err(LightningError::InvalidInvoice(_))
    ));
    let amountless = foreign_invoice(Currency::Regtest, None);
    assert!(matches!(
        net.pay("alice", &amountless),
        Err(LightningError::NoRoute(_))
    ));

    // Tampering with any character breaks the checksum or the signature.
    let fresh = net.create_invoice(&request(5)).unwrap();
    let mut tampered = fresh.bolt11.clone().into_bytes();
    let i = tampered.len() - 20;
    tampered[i] = if tampered[i] == b'q' { b'p' } else { b'q' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        net.pay("alice", &tampered),
        Err(LightningError::InvalidInvoice(_))
    ));
    assert!(matches!(
        net.pay("alice", "lnbcrt1garbage"),
        Err(LightningError::InvalidInvoice(_))
    ));

    assert!(matches!(
        net.create_invoice(&request(0)),
        Err(LightningError::InvalidInvoice(_))
    ));
    let long_memo = InvoiceRequest {
        memo: "x".repeat(640),
        ..request(1)
    };
    assert!(matches!(
        net.create_invoice(&long_memo),
        Err(LightningError::InvalidInvoice(_))
    ));
}

#[test]
fn amountless_invoices_are_refused_without_an_amount() {
    // An amountless invoice signed by the node itself: `pay` has no amount to pay it.
    let net = DevNetwork::ephemeral(100);
    let inner = &net.inner;
    let invoice = InvoiceBuilder::new(Currency::Regtest)
        .description("no amount".into())
        .payment_hash(sha256::Hash::from_byte_array([1; 32]))
        .payment_secret(PaymentSecret([2; 32]))
        .timestamp(SystemTime::now())
        .min_final_cltv_expiry_delta(144)
        .payee_pub_key(inner.node_id)
        .build_signed(|m| inner.secp.sign_ecdsa_recoverable(m, &inner.node_secret))
        .unwrap()
        .to_string();
    assert!(matches!(
        net.pay("alice", &invoice),
        Err(LightningError::InvalidInvoice(_))
    ));
}

#[test]
fn concurrent_payments_of_one_invoice_pay_once() {
    let net = DevNetwork::ephemeral(1000);
    let issued = net.create_invoice(&request(10)).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let net = net.clone();
                let bolt11 = issued.bolt11.clone();
                s.spawn(move || net.pay(&format!("payer{}", i % 4), &bolt11))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| r == &Err(LightningError::AlreadyPaid))
    );
    assert_eq!(net.balance(RECEIVER_ACCOUNT), 1_010_000);
}

#[test]
fn concurrent_payments_never_overdraw() {
    let net = DevNetwork::ephemeral(100);
    let invoices: Vec<_> = (0..20)
        .map(|_| net.create_invoice(&request(10)).unwrap())
        .collect();
    let paid = std::thread::scope(|s| {
        let handles: Vec<_> = invoices
            .iter()
            .map(|inv| {
                let net = net.clone();
                s.spawn(move || net.pay("alice", &inv.bolt11).is_ok())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count()
    });
    assert_eq!(paid, 10);
    assert_eq!(net.balance("alice"), 0);
}

#[test]
fn the_node_key_persists_and_preimages_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("plannt-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = DevNetwork::open(&dir, 100).unwrap();
    let issued = first.create_invoice(&request(3)).unwrap();
    drop(first);
    let second = DevNetwork::open(&dir, 100).unwrap();
    let payment = second.pay("alice", &issued.bolt11).unwrap();
    let hashed = PaymentHash(Sha256::digest(payment.preimage.as_bytes()).into());
    assert_eq!(hashed, issued.payment_hash);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(NODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(dir.join(NODE_KEY_FILE), "not a key").unwrap();
    assert!(DevNetwork::open(&dir, 100).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_http_api_carries_every_call_and_error() {
    let net = DevNetwork::ephemeral(50);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base: url::Url = format!("http://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let router = net.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let remote = DevHttp::new(base.clone(), "alice");
    remote.health().await.unwrap();
    let issued = remote.create_invoice(&request(21)).await.unwrap();
    assert_eq!(
        decode_invoice(&issued.bolt11).unwrap().payee,
        net.node_id().serialize()
    );
    assert_eq!(
        remote.lookup_payment(&issued.payment_hash).await.unwrap(),
        PaymentLookup::NotFound
    );
    let payment = remote.pay(&issued.bolt11, 0).await.unwrap();
    assert_eq!(remote.balance().await.unwrap().msat, 29_000);
    assert_eq!(
        remote.lookup_payment(&issued.payment_hash).await.unwrap(),
        PaymentLookup::Succeeded(payment)
    );
    assert_eq!(
        remote.pay(&issued.bolt11, 0).await,
        Err(LightningError::AlreadyPaid)
    );
    // An amountless return invoice over HTTP pays its wallet's account what the payer chooses.
    let bob = DevHttp::new(base.clone(), "bob");
    let returned = bob.create_amountless_invoice("refund", 600).await.unwrap();
    assert_eq!(decode_invoice(&returned.bolt11).unwrap().amount_msat, None);
    net.pay_amount("gateway", &returned.bolt11, 4_000).unwrap();
    assert_eq!(bob.balance().await.unwrap().msat, 54_000);
    let big = net.create_invoice(&request(30)).unwrap();
    assert!(matches!(
        remote.pay(&big.bolt11, 0).await,
        Err(LightningError::InsufficientBalance(_))
    ));
    let expired = net
        .create_invoice(&InvoiceRequest {
            expiry_secs: 0,
            ..request(1)
        })
        .unwrap();
    assert_eq!(
        remote.pay(&expired.bolt11, 0).await,
        Err(LightningError::InvoiceExpired)
    );
    assert!(matches!(
        remote.pay("lnbc1nope", 0).await,
        Err(LightningError::InvalidInvoice(_))
    ));

    let response = reqwest::get(format!("{base}_plannt/dev/info"))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-plannt-dev"], "no real money moves");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("no real money moves")
    );

    // Nobody listening: unreachable, not a panic.
    let gone = DevHttp::new("http://127.0.0.1:9".parse().unwrap(), "alice");
    assert!(matches!(
        gone.balance().await,
        Err(LightningError::Unreachable(_))
    ));
    let arc: Arc<dyn crate::Wallet> = Arc::new(remote);
    assert_eq!(arc.network(), Network::Regtest);
}

#[test]
fn an_amountless_invoice_pays_its_issuer_the_amount_chosen_once() {
    let net = DevNetwork::ephemeral(1000);
    let issued = net
        .create_amountless_invoice("alice", "refund", 600)
        .unwrap();
    let decoded = crate::invoice::decode_invoice(&issued.bolt11).unwrap();
    assert_eq!(decoded.amount_msat, None);
    // Without an amount, or for an invoice that names one, nothing moves.
    assert!(net.pay("gateway", &issued.bolt11).is_err());
    let fixed = net.create_invoice(&request(5)).unwrap();
    assert!(net.pay_amount("gateway", &fixed.bolt11, 5_000).is_err());
    assert_eq!(net.balance("alice"), 1_000_000);
    let payment = net.pay_amount("gateway", &issued.bolt11, 140_000).unwrap();
    assert_eq!(payment.amount_msat, 140_000);
    assert!(payment.preimage.pays(&issued.payment_hash));
    assert_eq!(
        net.balance("alice"),
        1_140_000,
        "the issuer is paid, not the receiver"
    );
    assert_eq!(net.balance("gateway"), 860_000);
    assert!(matches!(
        net.pay_amount("gateway", &issued.bolt11, 1_000),
        Err(LightningError::AlreadyPaid)
    ));
}
