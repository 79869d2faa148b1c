//! Fakes of the Lightning nodes Plannt talks to, each following its node's API field by field:
//! LND's REST API ([`lnd`]), Core Lightning's `clnrest` ([`cln`]) and phoenixd ([`phoenixd`]).
//! plannt-lightning's tests run its backends against them, and the plannt binary's tests its
//! `wallet` commands. What they share:
//!
//! - serving an axum router on loopback, over plain HTTP or over TLS with a certificate built
//!   the way LND builds its `tls.cert` (`cert/selfsigned.go`: ECDSA P-256, self-signed, a CA
//!   certificate, names `localhost`, `unix`, `unixpacket`, `bufconn` and the loopback IPs);
//! - a node key that signs real regtest BOLT11 invoices for a preimage the fake node chooses
//!   (the receiving side of each fake);
//! - the rest of the Lightning network, which the fake nodes pay into: a [`DevNetwork`]. Its
//!   invoices are real and signed, paying one through it returns its real preimage, paying one
//!   twice fails, and an invoice it did not issue has no route.
//!
//! The test key and certificates below are test fixtures, used nowhere else.

pub mod cln;
pub mod lnd;
pub mod phoenixd;

use plannt_l402::PaymentHash;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use plannt_lightning::InvoiceRequest;
use plannt_lightning::dev::DevNetwork;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use url::Url;

/// The private key of [`LND_TLS_CERT`].
pub const LND_TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSqMb604IW9vjWTPL
2rKCGE3Frw+zkxtwmCEmGrU5Q3GhRANCAATOw2At8j18YNyvK5twQ+w9G48f0B2v
WluQ29oCYMol9j2axNh9bV4kQZFeV2tZmjuuFsIkiHH898KWJKOAJugz
-----END PRIVATE KEY-----
";

/// A `tls.cert` as LND makes one: self-signed, `CA:TRUE`, key usage including certificate
/// signing, server auth, DNS `plannt-fake-lnd`, `localhost`, `unix`, `unixpacket`, `bufconn`,
/// IP `127.0.0.1` and `::1`, valid 2025-01-01 to 2049-12-31 (LND's end of ASN.1 time).
pub const LND_TLS_CERT: &str = "-----BEGIN CERTIFICATE-----
MIICDTCCAbKgAwIBAgIUKdno//xoIZR5b6xL1jtAo1HjNyUwCgYIKoZIzj0EAwIw
OzEfMB0GA1UECgwWbG5kIGF1dG9nZW5lcmF0ZWQgY2VydDEYMBYGA1UEAwwPcGxh
bm50LWZha2UtbG5kMB4XDTI1MDEwMTAwMDAwMFoXDTQ5MTIzMTIzNTk1OVowOzEf
MB0GA1UECgwWbG5kIGF1dG9nZW5lcmF0ZWQgY2VydDEYMBYGA1UEAwwPcGxhbm50
LWZha2UtbG5kMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzsNgLfI9fGDcryub
cEPsPRuPH9Adr1pbkNvaAmDKJfY9msTYfW1eJEGRXldrWZo7rhbCJIhx/PfCliSj
gCboM6OBkzCBkDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICpDATBgNV
HSUEDDAKBggrBgEFBQcDATBYBgNVHREEUTBPgg9wbGFubnQtZmFrZS1sbmSCCWxv
Y2FsaG9zdIIEdW5peIIKdW5peHBhY2tldIIHYnVmY29ubocEfwAAAYcQAAAAAAAA
AAAAAAAAAAAAATAKBggqhkjOPQQDAgNJADBGAiEA53do6AiREfNXDDK7BHyxFEnR
V1whWi0sfTJKpqwxEVACIQDz0mxWuot+GlOVtwoBi+1aCyh2qccqwnnN6vuYjFhx
Fw==
-----END CERTIFICATE-----
";

/// Another certificate made the same way, with another key: the node's is not this one.
pub const OTHER_TLS_CERT: &str = "-----BEGIN CERTIFICATE-----
MIICDDCCAbKgAwIBAgIUKuKaRie62np5iysTUdXQtltm67MwCgYIKoZIzj0EAwIw
OzEfMB0GA1UECgwWbG5kIGF1dG9nZW5lcmF0ZWQgY2VydDEYMBYGA1UEAwwPcGxh
bm50LWZha2UtbG5kMB4XDTI1MDEwMTAwMDAwMFoXDTQ5MTIzMTIzNTk1OVowOzEf
MB0GA1UECgwWbG5kIGF1dG9nZW5lcmF0ZWQgY2VydDEYMBYGA1UEAwwPcGxhbm50
LWZha2UtbG5kMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmy8etRixEXnknJCi
+crEshHyUN/IODDDMVF3OwjZHnadSqYEEDRZ78VZR+bofBStybfyXL+GjAjCmssM
5+yQc6OBkzCBkDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICpDATBgNV
HSUEDDAKBggrBgEFBQcDATBYBgNVHREEUTBPgg9wbGFubnQtZmFrZS1sbmSCCWxv
Y2FsaG9zdIIEdW5peIIKdW5peHBhY2tldIIHYnVmY29ubocEfwAAAYcQAAAAAAAA
AAAAAAAAAAAAATAKBggqhkjOPQQDAgNIADBFAiEA7g5VR/PQVsw6osqBQleZkdXI
wkP2K3crPBLSpwLpmEgCIFLiAALi+O8lnIt8YelSnAbiRtbpSWvYw5MTMlmeaEXN
-----END CERTIFICATE-----
";

/// The account the fake nodes pay from in the rest of the network.
pub const NODE_ACCOUNT: &str = "fake-node";
/// What that account starts with.
pub const NODE_FUNDS_SATS: u64 = 1_000_000;

/// A fake serving on loopback; it stops when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub url: Url,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` over plain HTTP on a free loopback port.
pub async fn serve(router: Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    Server {
        url: Url::parse(&format!("http://{addr}")).expect("url"),
        task,
    }
}

/// Serves `router` over TLS with [`LND_TLS_CERT`] on a free loopback port.
pub async fn serve_tls(router: Router) -> Server {
    let cert = CertificateDer::from_pem_slice(LND_TLS_CERT.as_bytes()).expect("cert");
    let key = PrivateKeyDer::from_pem_slice(LND_TLS_KEY.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("local address");
    let (sender, receiver) = mpsc::channel(16);
    // Handshakes run apart from accepting, so one a client abandons blocks nothing.
    let accepting = tokio::spawn(async move {
        while let Ok((stream, peer)) = tcp.accept().await {
            let acceptor = acceptor.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = sender.send((tls, peer)).await;
                }
            });
        }
    });
    let listener = TlsListener {
        receiver,
        addr,
        _accepting: AbortOnDrop(accepting),
    };
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    Server {
        url: Url::parse(&format!("https://{addr}")).expect("url"),
        task,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct TlsListener {
    receiver: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    _accepting: AbortOnDrop,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.receiver.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// 32 random bytes.
pub fn random32() -> [u8; 32] {
    let mut out = [0u8; 32];
    getrandom::fill(&mut out).expect("random");
    out
}

/// `sha256(preimage)`, computed here rather than by the code under test.
pub fn sha(preimage: &[u8; 32]) -> PaymentHash {
    PaymentHash(Sha256::digest(preimage).into())
}

/// Seconds since 1970.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An invoice request for `sats`.
pub fn request(sats: u64, memo: &str) -> InvoiceRequest {
    InvoiceRequest {
        amount_sats: sats,
        memo: memo.into(),
        expiry_secs: 600,
    }
}

/// A Lightning node's key: signs the invoices a fake node issues.
pub struct NodeKey {
    secp: Secp256k1<All>,
    secret: SecretKey,
    /// The node id.
    pub id: PublicKey,
}

impl Default for NodeKey {
    fn default() -> Self {
        let secp = Secp256k1::new();
        let secret = loop {
            if let Ok(key) = SecretKey::from_slice(&random32()) {
                break key;
            }
        };
        let id = PublicKey::from_secret_key(&secp, &secret);
        NodeKey { secp, secret, id }
    }
}

impl NodeKey {
    /// A signed regtest invoice for `sha256(preimage)`, created at `created`.
    pub fn invoice(
        &self,
        preimage: &[u8; 32],
        amount_msat: Option<u64>,
        memo: &str,
        expiry_secs: u64,
        created: SystemTime,
    ) -> String {
        let builder = InvoiceBuilder::new(Currency::Regtest)
            .description(memo.to_string())
            .payment_hash(sha256::Hash::from_byte_array(sha(preimage).0))
            .payment_secret(PaymentSecret(random32()))
            .timestamp(created)
            .min_final_cltv_expiry_delta(144)
            .expiry_time(Duration::from_secs(expiry_secs))
            .payee_pub_key(self.id);
        let builder = match amount_msat {
            Some(msat) => builder.amount_milli_satoshis(msat),
            None => builder,
        };
        builder
            .build_signed(|message| self.secp.sign_ecdsa_recoverable(message, &self.secret))
            .expect("a valid invoice")
            .to_string()
    }
}

/// What a fake node knows of a BOLT11 it is asked to pay.
pub struct Bolt11 {
    /// Its payment hash.
    pub payment_hash: [u8; 32],
    /// Its amount; `None` for an amountless invoice.
    pub amount_msat: Option<u64>,
    /// Whether it has expired.
    pub expired: bool,
    /// Unix seconds when it expires.
    pub expires_at: u64,
    /// Whether it is for regtest, the only network the fakes pay on.
    pub currency_regtest: bool,
    /// The payee's node id, hex.
    pub payee: String,
}

/// Parses an invoice the way a node does: `None` if it is not a valid signed BOLT11.
pub fn parse_bolt11(text: &str) -> Option<Bolt11> {
    let invoice: lightning_invoice::Bolt11Invoice = text.trim().parse().ok()?;
    Some(Bolt11 {
        payment_hash: invoice.payment_hash().to_byte_array(),
        amount_msat: invoice.amount_milli_satoshis(),
        expired: invoice.is_expired(),
        expires_at: invoice.expires_at().map_or(u64::MAX, |d| d.as_secs()),
        currency_regtest: invoice.currency() == Currency::Regtest,
        payee: invoice.get_payee_pub_key().to_string(),
    })
}

/// The rest of the Lightning network, which the fake nodes pay into.
pub fn network() -> DevNetwork {
    DevNetwork::ephemeral(NODE_FUNDS_SATS)
}

/// An invoice the rest of the network issued: payable once.
pub fn payable(network: &DevNetwork, sats: u64) -> String {
    network
        .create_invoice(&request(sats, "paid by a fake node"))
        .expect("invoice")
        .bolt11
}

/// A valid invoice no node on the network issued: no route to it.
pub fn unroutable(sats: u64) -> String {
    payable(&DevNetwork::ephemeral(0), sats)
}

/// A valid invoice that expired an hour ago.
pub fn expired(sats: u64) -> String {
    NodeKey::default().invoice(
        &random32(),
        Some(sats * 1000),
        "expired",
        600,
        SystemTime::now() - Duration::from_secs(3600),
    )
}

/// The password of an HTTP basic `Authorization` header, if well formed.
pub fn basic_password(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (_user, password) = decoded.split_once(':')?;
    Some(password.to_string())
}

/// Form fields of an `application/x-www-form-urlencoded` body; any other body has none (which
/// is what a form reader sees).
pub fn form_fields(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> std::collections::HashMap<String, String> {
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Default::default();
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}
