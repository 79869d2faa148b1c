//! What every backend that talks to a node does alike: how long it waits, the network a node
//! reports, the invoice it agrees to pay (one that names an amount), the preimages it reads, the
//! fee it can only report after the fact, and what it does after a payment call broke off.

use std::time::Duration;

#[cfg(any(feature = "cln", feature = "phoenixd", feature = "nwc"))]
use plannt_l402::{PaymentHash, Preimage};

#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "nwc"
))]
use crate::Network;
#[cfg(any(feature = "cln", feature = "phoenixd", feature = "nwc"))]
use crate::types::check_preimage;
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "lnbits",
    feature = "nwc"
))]
use crate::{DecodedInvoice, IssuedInvoice, LightningError, decode_invoice};
#[cfg(any(feature = "cln", feature = "phoenixd", feature = "nwc"))]
use crate::{Payer, Payment, PaymentLookup};

/// How long to wait for a connection (TCP, or a relay's WebSocket).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take; payments get longer through their own timeout.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a payment call may take before its outcome must be looked up.
pub(crate) const PAY_TIMEOUT: Duration = Duration::from_secs(90);

/// The network a node reports by name (LND `chains[].network`, CLN `network`, phoenixd `chain`).
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "nwc"
))]
pub(crate) fn network_named(name: &str) -> Option<Network> {
    match name.to_ascii_lowercase().as_str() {
        "bitcoin" | "mainnet" => Some(Network::Bitcoin),
        "testnet" | "testnet3" | "testnet4" => Some(Network::Testnet),
        "signet" => Some(Network::Signet),
        "regtest" => Some(Network::Regtest),
        "simnet" => Some(Network::Simnet),
        _ => None,
    }
}

/// An error for a node on another network than the URI names.
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "nwc"
))]
pub(crate) fn check_network(
    backend: &str,
    reported: &str,
    ours: Network,
) -> Result<(), LightningError> {
    match network_named(reported) {
        Some(theirs) if theirs != ours => Err(LightningError::Backend(format!(
            "{backend}: the node is on {theirs}, but the URI names {ours} (add ?network={theirs})"
        ))),
        _ => Ok(()),
    }
}

/// Reads back an invoice a node issued, before it is handed out: it must decode with a valid
/// signature, and carry the payment hash the node reported beside it (hex), if it reported one.
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "lnbits",
    feature = "nwc"
))]
pub(crate) fn read_back(
    backend: &str,
    bolt11: &str,
    reported_hash: Option<&str>,
) -> Result<DecodedInvoice, LightningError> {
    let decoded = decode_invoice(bolt11).map_err(|e| {
        LightningError::Backend(format!("{backend}: issued an invalid invoice: {e}"))
    })?;
    if let Some(reported) = reported_hash
        && !reported.eq_ignore_ascii_case(&hex::encode(decoded.payment_hash))
    {
        return Err(LightningError::Backend(format!(
            "{backend}: the invoice's payment hash differs from the one reported"
        )));
    }
    Ok(decoded)
}

/// What a backend hands out for an invoice it read back.
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "lnbits",
    feature = "nwc"
))]
pub(crate) fn issued(decoded: &DecodedInvoice) -> IssuedInvoice {
    IssuedInvoice {
        bolt11: decoded.bolt11.clone(),
        payment_hash: decoded.payment_hash,
        expires_at: decoded.expires_at(),
    }
}

/// Decodes an invoice to pay. Plannt pays only invoices that name an amount: an amountless one
/// would let the payer choose what to send. Answers the invoice and its amount in millisatoshis.
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "nwc"
))]
pub(crate) fn invoice_to_pay(bolt11: &str) -> Result<(DecodedInvoice, u64), LightningError> {
    let decoded =
        decode_invoice(bolt11).map_err(|e| LightningError::InvalidInvoice(e.to_string()))?;
    let Some(amount_msat) = decoded.amount_msat else {
        return Err(LightningError::InvalidInvoice(
            "the invoice has no amount; Plannt pays only invoices that name one".into(),
        ));
    };
    Ok((decoded, amount_msat))
}

/// Decodes an invoice to pay `amount_msat` to, for [`crate::Payer::pay_amount`]: a refund to the
/// return invoice a client gave. Before anything is sent it must name no amount (one that names
/// its own is paid with [`crate::Payer::pay`], never another amount), be for `network` (the payer's),
/// not have expired, and `amount_msat` must pay something.
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "nwc"
))]
pub(crate) fn amountless_to_pay(
    bolt11: &str,
    amount_msat: u64,
    network: Network,
) -> Result<DecodedInvoice, LightningError> {
    let decoded =
        decode_invoice(bolt11).map_err(|e| LightningError::InvalidInvoice(e.to_string()))?;
    if let Some(named) = decoded.amount_msat {
        return Err(LightningError::InvalidInvoice(format!(
            "the invoice names its own amount ({named} msat); only an invoice without an amount \
             is paid an amount of the payer's choosing"
        )));
    }
    if decoded.network != network {
        return Err(LightningError::InvalidInvoice(format!(
            "a {} invoice; this wallet pays {network} invoices",
            decoded.network
        )));
    }
    if amount_msat == 0 {
        return Err(LightningError::InvalidInvoice(
            "a payment of 0 msat pays nothing".into(),
        ));
    }
    if decoded.is_expired_at(crate::invoice::unix_now()) {
        return Err(LightningError::InvoiceExpired);
    }
    Ok(decoded)
}

/// Reads back an amountless invoice a node issued: it must decode, carry the payment hash the
/// node reported (hex), if it reported one, and name no amount.
#[cfg(any(feature = "lnd", feature = "cln", feature = "phoenixd"))]
pub(crate) fn read_back_amountless(
    backend: &str,
    bolt11: &str,
    reported_hash: Option<&str>,
) -> Result<IssuedInvoice, LightningError> {
    let decoded = read_back(backend, bolt11, reported_hash)?;
    if decoded.amount_msat.is_some() {
        return Err(LightningError::Backend(format!(
            "{backend}: asked for an invoice without an amount, issued one that names an amount"
        )));
    }
    Ok(issued(&decoded))
}

/// A preimage a backend sent as hex (not yet checked against its hash).
#[cfg(any(feature = "cln", feature = "phoenixd", feature = "nwc"))]
pub(crate) fn hex_preimage(backend: &str, text: Option<&str>) -> Result<Preimage, LightningError> {
    text.and_then(|t| Preimage::from_hex(t).ok())
        .ok_or_else(|| {
            LightningError::Backend(format!("{backend}: the preimage is not 64 hex characters"))
        })
}

/// A preimage a backend sent as hex, checked against the payment hash: for what an invoice or
/// payment lookup reports. (A [`Payment`] is checked by [`Payment::checked`].)
#[cfg(any(feature = "cln", feature = "phoenixd", feature = "nwc"))]
pub(crate) fn checked_preimage(
    backend: &str,
    text: Option<&str>,
    payment_hash: &PaymentHash,
) -> Result<Preimage, LightningError> {
    let preimage = hex_preimage(backend, text)?;
    check_preimage(backend, &preimage, payment_hash)?;
    Ok(preimage)
}

/// For a backend that takes no fee limit (LNbits, phoenixd, NWC): a fee above the limit can
/// only be reported, after the payment.
#[cfg(any(feature = "lnbits", feature = "phoenixd", feature = "nwc"))]
pub(crate) fn report_fee_over_limit(backend: &str, fee_msat: u64, max_fee_msat: u64) {
    if fee_msat > max_fee_msat {
        tracing::warn!(
            backend,
            fee_msat,
            max_fee_msat,
            "the backend charged more routing fee than allowed: it takes no fee limit"
        );
    }
}

/// What a payment call that broke off reports while its outcome is unknown: `error` when it says
/// so, else `Timeout`, so the caller looks the payment up before paying again.
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "nwc"
))]
pub(crate) fn still_unknown(error: LightningError) -> LightningError {
    if error.outcome_unknown() {
        error
    } else {
        LightningError::Timeout
    }
}

/// After a payment call broke off, or answered something unreadable: what the backend's own
/// record says decides. If it has no final word yet, the outcome stays unknown (`error`, or
/// `Timeout`), so the caller looks the payment up later instead of paying again.
#[cfg(any(feature = "cln", feature = "phoenixd", feature = "nwc"))]
pub(crate) async fn after_interruption<P: Payer + ?Sized>(
    payer: &P,
    payment_hash: &PaymentHash,
    error: LightningError,
) -> Result<Payment, LightningError> {
    let unknown = still_unknown(error);
    match payer.lookup_payment(payment_hash).await {
        Ok(PaymentLookup::Succeeded(payment)) => Ok(payment),
        Ok(PaymentLookup::Failed(why)) => Err(LightningError::PaymentFailed(why)),
        Ok(PaymentLookup::Pending | PaymentLookup::NotFound) | Err(_) => Err(unknown),
    }
}

#[cfg(test)]
#[cfg(any(
    feature = "lnd",
    feature = "cln",
    feature = "phoenixd",
    feature = "nwc"
))]
mod tests {
    use super::*;

    #[test]
    fn names_networks_as_the_nodes_do() {
        assert_eq!(network_named("mainnet"), Some(Network::Bitcoin));
        assert_eq!(network_named("testnet4"), Some(Network::Testnet));
        assert_eq!(network_named("regtest"), Some(Network::Regtest));
        assert_eq!(network_named("liquid"), None);
        assert!(check_network("lnd", "regtest", Network::Bitcoin).is_err());
        assert!(check_network("lnd", "mainnet", Network::Bitcoin).is_ok());
    }

    #[test]
    fn pays_only_invoices_that_name_an_amount() {
        assert_eq!(
            invoice_to_pay("lnbcrt1garbage").unwrap_err().code(),
            "invalid_invoice"
        );
    }
}
