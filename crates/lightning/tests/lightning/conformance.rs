//! One suite that every backend runs, each against what stands in for its node: the dev network
//! (embedded, and over HTTP), a real LNbits, the fakes of LND, Core Lightning and phoenixd, and
//! an NWC wallet service on an in-process relay. Each backend is opened from its URI, as Plannt
//! opens it, and must behave alike: it answers health, issues invoices that read back as asked,
//! refuses to issue one for nothing, pays an invoice once with a preimage that hashes to its
//! payment hash, finds that payment again by its hash, refuses to pay it twice, refuses an
//! invoice without an amount and one that is not an invoice, knows no payment of an unknown
//! hash, looks up the invoices it issued (open, then settled once paid; an unknown hash is not
//! found), issues a return invoice without an amount and pays one the amount chosen (or says,
//! typed, that it cannot), says it is unreachable when nothing answers (a payment that then paid nothing, named by
//! backend, host and port, never by its secret), and, where it speaks HTTP, says a payment's
//! outcome is unknown when the connection breaks off after the request went out.
//!
//! What each backend does its own way (wire formats, credentials, quirks) is tested in its own
//! module.

use std::any::Any;
use std::sync::Arc;

use plannt_l402::PaymentHash;
use plannt_lightning::dev::DevNetwork;
use plannt_lightning::{
    InvoiceState, IssuedInvoice, LightningError, Network, PaymentLookup, Wallet, decode_invoice,
};

use lightning_invoice::Currency;

use crate::support::{amountless_invoice, random32, request, sha256};

/// What the invoices the suite pays are for.
const SATS: u64 = 21;
/// The fee limit of every payment: above what any of the stand-ins charges.
const MAX_FEE_MSAT: u64 = 10_000;

/// A backend under test, and what stands in for its node.
pub struct Subject {
    /// The name it answers (`Payer::name`).
    pub name: &'static str,
    /// The network its URI names.
    pub network: Network,
    /// Issues invoices, opened from the URI a gateway would be given (the least it needs).
    pub receiver: Arc<dyn Wallet>,
    /// Pays, opened from the URI a client would be given.
    pub payer: Arc<dyn Wallet>,
    /// The same backend with credentials that are not the payer's: it must not see the payer's
    /// payments as its own.
    pub stranger: Arc<dyn Wallet>,
    /// Who issues the invoices the payer pays.
    pub payee: Payee,
    /// An invoice without an amount, that the payer would otherwise reach.
    pub amountless: String,
    /// Whether the receiver issues an invoice without an amount (a client's return invoice).
    pub issues_amountless: bool,
    /// Whether the payer pays an invoice without an amount an amount it chooses (a refund).
    pub pays_amountless: bool,
    /// Whether the balance shows what a payment spent (a fake whose balance is fixed does not).
    pub balance_moves: bool,
    /// How an invoice the receiver issued gets paid: `None`, the payer pays it; else what
    /// stands in for the rest of the network pays it.
    pub settle: Option<Settle>,
    /// What must live as long as the subject: servers, relays, folders.
    pub _alive: Vec<Box<dyn Any>>,
}

/// Pays an invoice the receiver issued, as the rest of the network would.
pub type Settle = Box<dyn Fn(&IssuedInvoice) + Send + Sync>;

/// Who issues the invoices the payer pays.
pub enum Payee {
    /// The receiver: one network holds both (the dev network, LNbits' wallets).
    Receiver,
    /// The rest of the network, which the node pays into.
    #[cfg_attr(
        not(any(
            feature = "lnd",
            feature = "cln",
            feature = "phoenixd",
            feature = "nwc"
        )),
        allow(dead_code)
    )]
    Network(DevNetwork),
}

impl Subject {
    /// An invoice of `sats` that the payer can pay, and whether the receiver issued it.
    async fn payable(&self, sats: u64) -> IssuedInvoice {
        match &self.payee {
            Payee::Receiver => self
                .receiver
                .create_invoice(&request(sats, "plannt conformance: paid"))
                .await
                .expect("the receiver issues an invoice to pay"),
            Payee::Network(network) => network
                .create_invoice(&request(sats, "plannt conformance: paid"))
                .expect("the rest of the network issues an invoice"),
        }
    }
}

/// Both wallets answer health, under the backend's name and network.
pub async fn answers_health(subject: Subject) {
    for wallet in [&subject.receiver, &subject.payer] {
        wallet.health().await.expect("healthy");
        assert_eq!(wallet.name(), subject.name);
        assert_eq!(wallet.network(), subject.network);
    }
}

/// An issued invoice decodes, signature checked, into what was asked; each has its own hash.
pub async fn issues_invoices_that_read_back(subject: Subject) {
    let memo = "plannt conformance: issued";
    let issued = subject
        .receiver
        .create_invoice(&request(SATS, memo))
        .await
        .expect("an invoice");
    let decoded = decode_invoice(&issued.bolt11).expect("it decodes and its signature verifies");
    assert_eq!(decoded.payment_hash, issued.payment_hash);
    assert_eq!(decoded.network, subject.network);
    assert_eq!(decoded.amount_msat, Some(SATS * 1000));
    assert_eq!(decoded.description.as_deref(), Some(memo));
    assert_eq!(decoded.expiry_secs, 600);
    assert_eq!(decoded.expires_at(), issued.expires_at);
    let again = subject
        .receiver
        .create_invoice(&request(SATS, memo))
        .await
        .expect("another invoice");
    assert_ne!(again.payment_hash, issued.payment_hash);
}

/// An invoice for nothing would let the payer choose the amount: refused.
pub async fn refuses_to_issue_an_invoice_for_nothing(subject: Subject) {
    let error = subject
        .receiver
        .create_invoice(&request(0, "plannt conformance: free"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
}

/// Pays once: the preimage hashes to the invoice's payment hash, the payment is found again by
/// that hash, only by the payer, and a second payment is refused with nothing spent.
pub async fn pays_once_and_finds_the_payment_again(subject: Subject) {
    let invoice = subject.payable(SATS).await;
    let hash = invoice.payment_hash;
    let payer = &subject.payer;
    assert_eq!(
        payer.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::NotFound,
        "not paid yet"
    );
    let payer_before = payer.balance().await.unwrap().msat;
    let receiver_before = match subject.payee {
        Payee::Receiver => Some(subject.receiver.balance().await.unwrap().msat),
        Payee::Network(_) => None,
    };

    let payment = payer
        .pay(&invoice.bolt11, MAX_FEE_MSAT)
        .await
        .expect("it pays");
    assert_eq!(payment.payment_hash, hash);
    assert_eq!(sha256(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, SATS * 1000);
    assert!(payment.fee_msat <= MAX_FEE_MSAT, "{payment:?}");

    assert_eq!(
        payer.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::Succeeded(payment.clone())
    );
    let spent = payment.amount_msat + payment.fee_msat;
    let payer_after = payer.balance().await.unwrap().msat;
    if subject.balance_moves {
        assert_eq!(
            payer_after,
            payer_before - spent,
            "the payer pays amount and fee"
        );
    }
    match subject.stranger.lookup_payment(&hash).await {
        Ok(PaymentLookup::NotFound) | Err(LightningError::Unauthorized(_)) => {}
        other => panic!("another wallet must not see the payment as its own: {other:?}"),
    }
    if let Some(before) = receiver_before {
        let receiver_after = subject.receiver.balance().await.unwrap().msat;
        assert_eq!(
            receiver_after,
            before + payment.amount_msat,
            "the receiver is paid"
        );
        assert_eq!(
            subject.receiver.lookup_payment(&hash).await.unwrap(),
            PaymentLookup::NotFound,
            "the receiver was paid; it made no payment"
        );
    }

    let again = payer.pay(&invoice.bolt11, MAX_FEE_MSAT).await.unwrap_err();
    assert_eq!(again, LightningError::AlreadyPaid);
    assert_eq!(payer.balance().await.unwrap().msat, payer_after);
}

/// An invoice without an amount is refused, and nothing is paid.
pub async fn refuses_an_invoice_without_an_amount(subject: Subject) {
    let error = subject
        .payer
        .pay(&subject.amountless, MAX_FEE_MSAT)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
    assert!(!error.outcome_unknown(), "{error}");
    let hash = decode_invoice(&subject.amountless).unwrap().payment_hash;
    assert_eq!(
        subject.payer.lookup_payment(&hash).await.unwrap(),
        PaymentLookup::NotFound
    );
}

/// A return invoice: where the backend can, it issues an invoice without an amount that reads
/// back as asked and is open; where it cannot, it says so, typed, and issues nothing.
pub async fn issues_an_amountless_invoice_or_says_it_cannot(subject: Subject) {
    let memo = "plannt conformance: return";
    let issued = subject.receiver.create_amountless_invoice(memo, 600).await;
    if !subject.issues_amountless {
        let error = issued.unwrap_err();
        assert_eq!(error.code(), "backend", "{error}");
        assert!(error.to_string().contains("without an amount"), "{error}");
        return;
    }
    let issued = issued.expect("an invoice without an amount");
    let decoded = decode_invoice(&issued.bolt11).expect("it decodes and its signature verifies");
    assert_eq!(decoded.amount_msat, None);
    assert_eq!(decoded.payment_hash, issued.payment_hash);
    assert_eq!(decoded.network, subject.network);
    assert_eq!(decoded.description.as_deref(), Some(memo));
    assert_eq!(decoded.expiry_secs, 600);
    if subject.receiver.can_lookup_invoices() {
        assert_eq!(
            subject
                .receiver
                .lookup_invoice(&issued.payment_hash)
                .await
                .unwrap(),
            InvoiceState::Open
        );
    }
}

/// A refund: where the backend can, it pays an invoice without an amount exactly the amount it
/// chose (the payee receives that, the preimage hashes to the hash, the payment is found again);
/// before anything is sent it refuses an invoice that names its own amount, one of another
/// network and an amount of nothing. Where it cannot, it says so, typed, and pays nothing.
pub async fn pays_an_amountless_invoice_the_amount_chosen(subject: Subject) {
    const CHOSEN_MSAT: u64 = 7_000;
    let payer = &subject.payer;
    assert_eq!(
        payer.can_pay_amountless(),
        subject.pays_amountless,
        "{}",
        subject.name
    );
    if !subject.pays_amountless {
        let error = payer
            .pay_amount(&subject.amountless, CHOSEN_MSAT, MAX_FEE_MSAT)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "backend", "{error}");
        assert!(error.to_string().contains("without an amount"), "{error}");
        let hash = decode_invoice(&subject.amountless).unwrap().payment_hash;
        assert_eq!(
            payer.lookup_payment(&hash).await.unwrap(),
            PaymentLookup::NotFound
        );
        return;
    }

    // Refused before anything is sent: an invoice that names its amount, …
    let named = subject.payable(SATS).await;
    let error = payer
        .pay_amount(&named.bolt11, CHOSEN_MSAT, MAX_FEE_MSAT)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
    assert!(!error.outcome_unknown(), "{error}");
    assert_eq!(
        payer.lookup_payment(&named.payment_hash).await.unwrap(),
        PaymentLookup::NotFound
    );
    // … one of another network, and nothing.
    let other = if subject.network == Network::Bitcoin {
        Currency::Regtest
    } else {
        Currency::Bitcoin
    };
    let foreign = amountless_invoice(other, None);
    let error = payer
        .pay_amount(&foreign, CHOSEN_MSAT, MAX_FEE_MSAT)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
    assert!(!error.outcome_unknown(), "{error}");

    // Paid the amount chosen, and the payee receives exactly that.
    let (returned, received): (IssuedInvoice, Box<dyn Fn() -> u64>) = match &subject.payee {
        Payee::Receiver => {
            let returned = subject
                .receiver
                .create_amountless_invoice("plannt conformance: refund", 600)
                .await
                .expect("the receiver issues a return invoice");
            (returned, Box::new(|| 0))
        }
        Payee::Network(network) => {
            const PAYEE: &str = "plannt-conformance-refunded";
            let returned = network
                .create_amountless_invoice(PAYEE, "plannt conformance: refund", 600)
                .expect("the rest of the network issues a return invoice");
            let before = network.balance(PAYEE);
            let network = network.clone();
            (returned, Box::new(move || network.balance(PAYEE) - before))
        }
    };
    let error = payer
        .pay_amount(&returned.bolt11, 0, MAX_FEE_MSAT)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
    let hash = returned.payment_hash;
    let payment = payer
        .pay_amount(&returned.bolt11, CHOSEN_MSAT, MAX_FEE_MSAT)
        .await
        .expect("the refund is paid");
    assert_eq!(payment.payment_hash, hash);
    assert_eq!(sha256(payment.preimage.as_bytes()), hash);
    assert_eq!(payment.amount_msat, CHOSEN_MSAT);
    assert!(payment.fee_msat <= MAX_FEE_MSAT);
    match &subject.payee {
        Payee::Receiver => match subject.receiver.lookup_invoice(&hash).await.unwrap() {
            InvoiceState::Settled {
                amount_received_msat,
                ..
            } => assert_eq!(amount_received_msat, CHOSEN_MSAT),
            other => panic!("a paid return invoice reads as settled, not {other:?}"),
        },
        Payee::Network(_) => assert_eq!(received(), CHOSEN_MSAT),
    }
    match payer.lookup_payment(&hash).await.unwrap() {
        PaymentLookup::Succeeded(found) => assert_eq!(found.preimage, payment.preimage),
        other => panic!("the refund is found again, not {other:?}"),
    }
}

/// What is not an invoice is an invalid invoice.
pub async fn refuses_what_is_not_an_invoice(subject: Subject) {
    let error = subject
        .payer
        .pay("lnbc1notaninvoice", MAX_FEE_MSAT)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_invoice", "{error}");
}

/// A hash nothing paid has no payment.
pub async fn knows_no_payment_of_an_unknown_hash(subject: Subject) {
    assert_eq!(
        subject
            .payer
            .lookup_payment(&PaymentHash(random32()))
            .await
            .unwrap(),
        PaymentLookup::NotFound
    );
}

/// The receiver looks up the invoices it issued: open once issued, settled (with a preimage
/// that hashes to the payment hash, and the amount) once paid; a hash it never issued is not
/// found.
pub async fn looks_up_the_invoices_it_issued(subject: Subject) {
    let receiver = &subject.receiver;
    assert!(receiver.can_lookup_invoices(), "{}", subject.name);
    let issued = receiver
        .create_invoice(&request(SATS, "plannt conformance: looked up"))
        .await
        .expect("an invoice");
    let hash = issued.payment_hash;
    assert_eq!(
        receiver.lookup_invoice(&hash).await.unwrap(),
        InvoiceState::Open
    );
    match &subject.settle {
        Some(settle) => settle(&issued),
        None => {
            subject
                .payer
                .pay(&issued.bolt11, MAX_FEE_MSAT)
                .await
                .expect("the payer pays the receiver's invoice");
        }
    }
    match receiver.lookup_invoice(&hash).await.unwrap() {
        InvoiceState::Settled {
            preimage,
            amount_received_msat,
        } => {
            assert_eq!(sha256(preimage.as_bytes()), hash);
            assert_eq!(amount_received_msat, SATS * 1000);
        }
        other => panic!("a paid invoice reads as settled, not {other:?}"),
    }
    assert_eq!(
        receiver
            .lookup_invoice(&PaymentHash(random32()))
            .await
            .unwrap(),
        InvoiceState::NotFound
    );
}

/// A backend opened from a URI that names `127.0.0.1:port`: the wallet, and the secret the URI
/// carries.
pub type OpenAt = fn(u16) -> (Arc<dyn Wallet>, String);

/// Where nothing answers, every call says the backend is unreachable, naming the backend and
/// where it was looked for, never the secret; a payment that fails so was never sent, so its
/// outcome is known: nothing was paid.
pub async fn says_when_it_is_unreachable(open: OpenAt) {
    let port = plannt_testkit::dead_port();
    let (wallet, secret) = open(port);
    let invoice = DevNetwork::ephemeral(0)
        .create_invoice(&request(1, "plannt conformance: unreachable"))
        .unwrap();
    let paying = wallet.pay(&invoice.bolt11, MAX_FEE_MSAT).await.unwrap_err();
    assert!(!paying.outcome_unknown(), "{paying}");
    let errors = [
        wallet.health().await.unwrap_err(),
        paying,
        wallet.balance().await.unwrap_err(),
        wallet
            .lookup_payment(&invoice.payment_hash)
            .await
            .unwrap_err(),
        wallet
            .lookup_invoice(&invoice.payment_hash)
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert_eq!(error.code(), "unreachable", "{error}");
        let text = error.to_string();
        assert!(text.contains(wallet.name()), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("nothing was sent"), "{text}");
        assert!(!text.contains(&secret), "the secret shows in {text}");
    }
}

/// Where the request went out and the connection then closed without an answer, a payment's
/// outcome is unknown: it may have been made, so it must be looked up, never paid again.
pub async fn says_the_outcome_is_unknown_when_the_answer_breaks_off(open: OpenAt) {
    let server = plannt_testkit::broken::Broken::hang_up().await;
    let (wallet, secret) = open(server.addr.port());
    let invoice = DevNetwork::ephemeral(0)
        .create_invoice(&request(1, "plannt conformance: broken off"))
        .unwrap();
    let error = wallet.pay(&invoice.bolt11, MAX_FEE_MSAT).await.unwrap_err();
    assert!(error.outcome_unknown(), "{error}");
    assert_eq!(error.code(), "interrupted", "{error}");
    assert!(!error.to_string().contains(&secret), "{error}");
}

/// The suite for one backend. `$subject` is an async fn answering `Option<Subject>` (`None`
/// when what stands in for the node is missing: a loud notice outside CI, a failure under it);
/// `$unreachable`, where there is a node to be unreachable, an [`OpenAt`]; with `breaks_off`,
/// that backend also meets a server that hangs up on its requests.
macro_rules! suite {
    ($backend:ident, $subject:path, unreachable = $unreachable:path, breaks_off) => {
        suite!(@suite $backend, $subject, unreachable = $unreachable, {
            #[tokio::test]
            async fn says_the_outcome_is_unknown_when_the_answer_breaks_off() {
                super::says_the_outcome_is_unknown_when_the_answer_breaks_off($unreachable)
                    .await;
            }
        });
    };
    ($backend:ident, $subject:path $(, unreachable = $unreachable:path)?) => {
        suite!(@suite $backend, $subject $(, unreachable = $unreachable)?, {});
    };
    (@suite $backend:ident, $subject:path $(, unreachable = $unreachable:path)?, { $($more:tt)* }) => {
        mod $backend {
            suite!(@test $subject, answers_health);
            suite!(@test $subject, issues_invoices_that_read_back);
            suite!(@test $subject, refuses_to_issue_an_invoice_for_nothing);
            suite!(@test $subject, pays_once_and_finds_the_payment_again);
            suite!(@test $subject, refuses_an_invoice_without_an_amount);
            suite!(@test $subject, refuses_what_is_not_an_invoice);
            suite!(@test $subject, knows_no_payment_of_an_unknown_hash);
            suite!(@test $subject, looks_up_the_invoices_it_issued);
            suite!(@test $subject, issues_an_amountless_invoice_or_says_it_cannot);
            suite!(@test $subject, pays_an_amountless_invoice_the_amount_chosen);
            $(
                #[tokio::test]
                async fn says_when_it_is_unreachable() {
                    super::says_when_it_is_unreachable($unreachable).await;
                }
            )?
            $($more)*
        }
    };
    (@test $subject:path, $check:ident) => {
        #[tokio::test]
        async fn $check() {
            if let Some(subject) = $subject().await {
                super::$check(subject).await;
            }
        }
    };
}

suite!(dev, crate::dev::subject);
#[cfg(feature = "dev-http")]
suite!(
    dev_http,
    crate::dev::http_subject,
    unreachable = crate::dev::http_unreachable,
    breaks_off
);
#[cfg(feature = "lnbits")]
suite!(
    lnbits,
    crate::lnbits::subject,
    unreachable = crate::lnbits::unreachable,
    breaks_off
);
#[cfg(feature = "lnd")]
suite!(
    lnd,
    crate::lnd::subject,
    unreachable = crate::lnd::unreachable,
    breaks_off
);
#[cfg(feature = "cln")]
suite!(
    cln,
    crate::cln::subject,
    unreachable = crate::cln::unreachable,
    breaks_off
);
#[cfg(feature = "phoenixd")]
suite!(
    phoenixd,
    crate::phoenixd::subject,
    unreachable = crate::phoenixd::unreachable,
    breaks_off
);
#[cfg(feature = "nwc")]
suite!(
    nwc,
    crate::nwc::subject,
    unreachable = crate::nwc::unreachable
);
