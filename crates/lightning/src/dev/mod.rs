//! `dev`: a simulated Lightning network in the process. No real money moves.
//!
//! Its invoices are real BOLT11 on regtest (`lnbcrt…`), signed by a node key kept under the data
//! directory, so every real decoder accepts them. Accounts hold test sats; paying moves them from
//! the payer's account to the receiving account and returns the preimage.
//!
//! Preimages are derived, not stored: `preimage = HMAC-SHA256(k, payment_secret)` with `k`
//! derived from the node key. An invoice carries its payment secret, so the network can pay any
//! invoice its node signed, even one issued before a restart or by another process sharing the
//! node key, without remembering it. The per-invoice state is the set of paid payment hashes
//! (paying twice must fail) and the payment hashes this process issued with their expiry (so
//! [`Receiver::lookup_invoice`] can tell an open invoice from an unknown one); an entry is
//! dropped once its invoice has expired, when paying it fails anyway: the state is bounded by
//! (payment or issue) rate × invoice lifetime. An invoice issued by another process sharing the
//! node key reads as unknown until it is paid.

#[cfg(feature = "dev-http")]
pub mod http;

use plannt_l402::{PaymentHash, Preimage};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use hmac::{Hmac, Mac};
use lightning_invoice::{Bolt11Invoice, Currency, InvoiceBuilder, PaymentSecret};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::invoice::unix_now;
use crate::{
    Balance, InvoiceRequest, InvoiceState, IssuedInvoice, LightningError, Network, Payer, Payment,
    PaymentLookup, Receiver,
};

/// Said wherever the dev network shows itself.
pub const WARNING: &str = "dev network: simulated Lightning, no real money moves";
/// The account that receives what the network's invoices are paid.
pub const RECEIVER_ACCOUNT: &str = "gateway";
/// The file under the data directory that holds the node key.
pub const NODE_KEY_FILE: &str = "dev-node.key";
/// Test sats each new account starts with, unless configured otherwise.
pub const DEFAULT_STARTING_BALANCE_SATS: u64 = 1_000_000;
/// The longest description BOLT11 carries.
const MAX_MEMO_BYTES: usize = 639;

/// The simulated network. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct DevNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    secp: Secp256k1<All>,
    node_secret: SecretKey,
    node_id: PublicKey,
    preimage_key: Zeroizing<[u8; 32]>,
    starting_balance_msat: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, u64>,
    paid: HashMap<PaymentHash, Paid>,
    inserts_since_purge: usize,
    /// Payment hashes issued here, with when their invoice expires.
    issued: HashMap<PaymentHash, u64>,
    /// The account an amountless invoice pays, by its payment hash (others pay the receiver).
    payees: HashMap<PaymentHash, String>,
    issued_since_purge: usize,
}

struct Paid {
    payer: String,
    preimage: Preimage,
    amount_msat: u64,
    expires_at: u64,
}

impl DevNetwork {
    /// Opens the network whose node key lives in `data_dir` (created, mode 0600, if missing).
    pub fn open(data_dir: &Path, starting_balance_sats: u64) -> std::io::Result<Self> {
        let secret = load_or_create_key(&data_dir.join(NODE_KEY_FILE))?;
        Ok(Self::with_key(secret, starting_balance_sats))
    }

    /// A network with a fresh node key that lives only as long as the process.
    pub fn ephemeral(starting_balance_sats: u64) -> Self {
        Self::with_key(fresh_secret_key(), starting_balance_sats)
    }

    fn with_key(node_secret: SecretKey, starting_balance_sats: u64) -> Self {
        let secp = Secp256k1::new();
        let node_id = PublicKey::from_secret_key(&secp, &node_secret);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"plannt dev preimage").expect("any key");
        mac.update(&node_secret.secret_bytes());
        let preimage_key = Zeroizing::new(mac.finalize().into_bytes().into());
        DevNetwork {
            inner: Arc::new(Inner {
                secp,
                node_secret,
                node_id,
                preimage_key,
                starting_balance_msat: starting_balance_sats.saturating_mul(1000),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The node's public key: the payee of every invoice.
    pub fn node_id(&self) -> PublicKey {
        self.inner.node_id
    }

    /// A wallet that pays from `account` and issues invoices to the receiving account.
    pub fn wallet(&self, account: &str) -> DevWallet {
        DevWallet {
            network: self.clone(),
            account: account.to_string(),
        }
    }

    fn preimage(&self, payment_secret: &[u8; 32]) -> Preimage {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.inner.preimage_key[..]).expect("any key");
        mac.update(payment_secret);
        Preimage::new(mac.finalize().into_bytes().into())
    }

    /// Issues a regtest invoice signed by the node key.
    pub fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError> {
        let amount_msat = request.amount_msat()?;
        if amount_msat > 21_000_000 * 100_000_000 * 1000 {
            return Err(LightningError::InvalidInvoice(
                "the amount is more bitcoin than exists".into(),
            ));
        }
        self.issue(Some(amount_msat), &request.memo, request.expiry_secs, None)
    }

    /// Issues a regtest invoice without an amount whose payments go to `payee` (not the
    /// receiving account): a client's return invoice, paid whatever the payer chooses.
    pub fn create_amountless_invoice(
        &self,
        payee: &str,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        self.issue(None, memo, expiry_secs, Some(payee))
    }

    fn issue(
        &self,
        amount_msat: Option<u64>,
        memo: &str,
        expiry_secs: u64,
        payee: Option<&str>,
    ) -> Result<IssuedInvoice, LightningError> {
        if memo.len() > MAX_MEMO_BYTES {
            return Err(LightningError::InvalidInvoice(format!(
                "the memo is {} bytes; BOLT11 carries at most {MAX_MEMO_BYTES}",
                memo.len()
            )));
        }
        let payment_secret = random32();
        let preimage = self.preimage(&payment_secret);
        let payment_hash = preimage.hash();
        let inner = &self.inner;
        let builder = InvoiceBuilder::new(Currency::Regtest)
            .description(memo.to_string())
            .payment_hash(sha256::Hash::from_byte_array(payment_hash.0))
            .payment_secret(PaymentSecret(payment_secret))
            .timestamp(SystemTime::now())
            .min_final_cltv_expiry_delta(144)
            .expiry_time(Duration::from_secs(expiry_secs))
            .payee_pub_key(inner.node_id);
        let builder = match amount_msat {
            Some(msat) => builder.amount_milli_satoshis(msat),
            None => builder,
        };
        let invoice = builder
            .build_signed(|message| {
                inner
                    .secp
                    .sign_ecdsa_recoverable(message, &inner.node_secret)
            })
            .map_err(|e| LightningError::InvalidInvoice(e.to_string()))?;
        // The node key is ours and fixed, so the signature needs no check here: the tests parse
        // what this issues, signature included, and checking each one would halve the rate of
        // challenges a dev gateway can answer.
        let expires_at = invoice.expires_at().map_or(u64::MAX, |d| d.as_secs());
        let bolt11 = invoice.to_string();
        {
            let mut state = self.inner.state.lock().expect("dev state lock");
            state.issued.insert(payment_hash, expires_at);
            if let Some(payee) = payee {
                state.payees.insert(payment_hash, payee.to_string());
            }
            state.issued_since_purge += 1;
            if state.issued_since_purge >= 4096 {
                let now = unix_now();
                state.issued.retain(|_, expires_at| *expires_at > now);
                let issued = std::mem::take(&mut state.issued);
                state.payees.retain(|hash, _| issued.contains_key(hash));
                state.issued = issued;
                state.issued_since_purge = 0;
            }
        }
        Ok(IssuedInvoice {
            bolt11,
            payment_hash,
            expires_at,
        })
    }

    /// Pays an invoice of this network from `account`. The dev network charges no fee.
    pub fn pay(&self, account: &str, bolt11: &str) -> Result<Payment, LightningError> {
        self.pay_inner(account, bolt11, None)
    }

    /// Pays `amount_msat` from `account` to an invoice of this network that names no amount.
    /// An invoice that names one is refused: pay it with [`DevNetwork::pay`].
    pub fn pay_amount(
        &self,
        account: &str,
        bolt11: &str,
        amount_msat: u64,
    ) -> Result<Payment, LightningError> {
        if amount_msat == 0 {
            return Err(LightningError::InvalidInvoice(
                "a payment of 0 msat pays nothing".into(),
            ));
        }
        self.pay_inner(account, bolt11, Some(amount_msat))
    }

    fn pay_inner(
        &self,
        account: &str,
        bolt11: &str,
        chosen_msat: Option<u64>,
    ) -> Result<Payment, LightningError> {
        let invoice: Bolt11Invoice = bolt11
            .trim()
            .parse()
            .map_err(|e| LightningError::InvalidInvoice(format!("{e}")))?;
        let network = Network::from(invoice.currency());
        if network != Network::Regtest {
            return Err(LightningError::InvalidInvoice(format!(
                "a {network} invoice; the dev network pays regtest invoices only"
            )));
        }
        if invoice.get_payee_pub_key() != self.inner.node_id {
            return Err(LightningError::NoRoute(
                "the invoice was not issued by this dev network's node".into(),
            ));
        }
        if invoice.is_expired() {
            return Err(LightningError::InvoiceExpired);
        }
        let amount_msat = match (invoice.amount_milli_satoshis(), chosen_msat) {
            (Some(msat), None) | (None, Some(msat)) => msat,
            (None, None) => {
                return Err(LightningError::InvalidInvoice(
                    "the invoice has no amount; pay it with an amount of your choosing".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(LightningError::InvalidInvoice(
                    "the invoice names its amount; it cannot be paid another".into(),
                ));
            }
        };
        let payment_hash = PaymentHash(invoice.payment_hash().to_byte_array());
        let preimage = self.preimage(&invoice.payment_secret().0);
        let payment = Payment::checked("dev", payment_hash, preimage, amount_msat, 0)?;
        let expires_at = invoice.expires_at().map_or(u64::MAX, |d| d.as_secs());

        let mut state = self.inner.state.lock().expect("dev state lock");
        if state.paid.contains_key(&payment_hash) {
            return Err(LightningError::AlreadyPaid);
        }
        let starting = self.inner.starting_balance_msat;
        let balance = *state
            .accounts
            .entry(account.to_string())
            .or_insert(starting);
        if balance < amount_msat {
            return Err(LightningError::InsufficientBalance(format!(
                "dev account {account:?} holds {} sats; the invoice asks {}",
                balance / 1000,
                amount_msat.div_ceil(1000)
            )));
        }
        state
            .accounts
            .insert(account.to_string(), balance - amount_msat);
        let payee = state
            .payees
            .get(&payment_hash)
            .cloned()
            .unwrap_or_else(|| RECEIVER_ACCOUNT.to_string());
        *state.accounts.entry(payee).or_insert(starting) += amount_msat;
        state.paid.insert(
            payment_hash,
            Paid {
                payer: account.to_string(),
                preimage,
                amount_msat,
                expires_at,
            },
        );
        state.inserts_since_purge += 1;
        if state.inserts_since_purge >= 4096 {
            let now = unix_now();
            state.paid.retain(|_, p| p.expires_at > now);
            state.inserts_since_purge = 0;
        }
        Ok(payment)
    }

    /// The balance of `account` in millisatoshis (a new account holds the starting balance).
    pub fn balance(&self, account: &str) -> u64 {
        let state = self.inner.state.lock().expect("dev state lock");
        state
            .accounts
            .get(account)
            .copied()
            .unwrap_or(self.inner.starting_balance_msat)
    }

    /// What `account` paid for `payment_hash`, if anything.
    pub fn lookup(&self, account: &str, payment_hash: &PaymentHash) -> PaymentLookup {
        let state = self.inner.state.lock().expect("dev state lock");
        match state.paid.get(payment_hash) {
            Some(p) if p.payer == account => PaymentLookup::Succeeded(Payment {
                payment_hash: *payment_hash,
                preimage: p.preimage,
                amount_msat: p.amount_msat,
                fee_msat: 0,
            }),
            _ => PaymentLookup::NotFound,
        }
    }

    /// What the receiving side knows of an invoice by its payment hash: settled once paid (with
    /// its preimage), open while issued here and unexpired, expired after, else unknown.
    pub fn invoice_state(&self, payment_hash: &PaymentHash) -> InvoiceState {
        let state = self.inner.state.lock().expect("dev state lock");
        if let Some(paid) = state.paid.get(payment_hash) {
            return InvoiceState::Settled {
                preimage: paid.preimage,
                amount_received_msat: paid.amount_msat,
            };
        }
        match state.issued.get(payment_hash) {
            Some(expires_at) if *expires_at > unix_now() => InvoiceState::Open,
            Some(_) => InvoiceState::Expired,
            None => InvoiceState::NotFound,
        }
    }

    /// How many paid invoices the network remembers (until they expire).
    pub fn paid_count(&self) -> usize {
        self.inner.state.lock().expect("dev state lock").paid.len()
    }
}

/// One account of a [`DevNetwork`], as a wallet: pays from the account, issues to the receiver.
#[derive(Clone)]
pub struct DevWallet {
    network: DevNetwork,
    account: String,
}

#[async_trait]
impl Receiver for DevWallet {
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<IssuedInvoice, LightningError> {
        self.network.create_invoice(request)
    }

    async fn health(&self) -> Result<(), LightningError> {
        Ok(())
    }

    async fn lookup_invoice(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<InvoiceState, LightningError> {
        Ok(self.network.invoice_state(payment_hash))
    }

    fn can_lookup_invoices(&self) -> bool {
        true
    }

    /// An amountless invoice paid to this wallet's own account.
    async fn create_amountless_invoice(
        &self,
        memo: &str,
        expiry_secs: u64,
    ) -> Result<IssuedInvoice, LightningError> {
        self.network
            .create_amountless_invoice(&self.account, memo, expiry_secs)
    }
}

#[async_trait]
impl Payer for DevWallet {
    async fn pay(&self, bolt11: &str, _max_fee_msat: u64) -> Result<Payment, LightningError> {
        self.network.pay(&self.account, bolt11)
    }

    async fn balance(&self) -> Result<Balance, LightningError> {
        Ok(Balance {
            msat: self.network.balance(&self.account),
        })
    }

    async fn lookup_payment(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<PaymentLookup, LightningError> {
        Ok(self.network.lookup(&self.account, payment_hash))
    }

    async fn pay_amount(
        &self,
        bolt11: &str,
        amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<Payment, LightningError> {
        self.network.pay_amount(&self.account, bolt11, amount_msat)
    }

    fn can_pay_amountless(&self) -> bool {
        true
    }

    fn network(&self) -> Network {
        Network::Regtest
    }

    fn name(&self) -> &'static str {
        "dev"
    }
}

fn random32() -> [u8; 32] {
    let mut out = [0u8; 32];
    getrandom::fill(&mut out).expect("the operating system's random source works");
    out
}

fn fresh_secret_key() -> SecretKey {
    loop {
        if let Ok(key) = SecretKey::from_slice(&random32()) {
            return key;
        }
    }
}

/// Reads the node key, or creates it with mode 0600. Two processes racing both end up with the
/// one that was written first.
fn load_or_create_key(path: &Path) -> std::io::Result<SecretKey> {
    let invalid = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: {why}; delete it to make a new dev node key",
                path.display()
            ),
        )
    };
    let read = |path: &Path| -> std::io::Result<SecretKey> {
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut bytes[..])
            .map_err(|_| invalid("not 64 hex characters"))?;
        SecretKey::from_slice(&bytes[..]).map_err(|_| invalid("not a valid secp256k1 key"))
    };
    match read(path) {
        Ok(key) => return Ok(key),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write a private temporary file, then link it into place: a racing process either links
    // first (and we read its key) or finds ours complete.
    let key = fresh_secret_key();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    {
        let mut file = options.open(&tmp)?;
        let text = Zeroizing::new(hex::encode(key.secret_bytes()));
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
