//! `plannt wallet`: the balance, paying one invoice, issuing one, and looking a payment up,
//! through any backend URI.

use clap::Subcommand;
use plannt_lightning::{InvoiceRequest, PaymentLookup, decode_invoice};
use serde_json::json;

use crate::error::Error;
use crate::out::{errln, outln, sats};
use crate::setup;

#[derive(clap::Args)]
pub struct Args {
    /// The wallet, as a backend URI: dev+http://HOST:PORT, lnbits+http://HOST:PORT?key=…, …
    /// [default: the config file, PLANNT_WALLET, or dev+http://127.0.0.1:8402]
    #[arg(long, global = true)]
    wallet: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the wallet's spendable balance.
    Balance,
    /// Pay a BOLT11 invoice and print the preimage.
    Pay {
        /// The invoice.
        invoice: String,
        /// The most to pay in routing fees, in sats.
        #[arg(long, default_value_t = 10)]
        max_fee_sats: u64,
    },
    /// Issue an invoice to this wallet.
    Invoice {
        /// The amount in sats.
        sats: u64,
        /// The description the payer sees.
        #[arg(long, default_value = "plannt")]
        memo: String,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 3600)]
        expiry: u64,
    },
    /// Look up a payment this wallet made, by payment hash: paid (with the preimage), pending,
    /// failed or not found. Use it before paying again an invoice whose payment broke off.
    Lookup {
        /// The payment hash, 64 hex digits.
        payment_hash: String,
    },
}

pub async fn run(args: &Args) -> Result<(), Error> {
    let settings = setup::settings()?;
    let wallet = setup::open_wallet(&setup::wallet_uri(args.wallet.as_deref(), &settings)?)?;
    let dev = wallet.name() == "dev";
    let say_dev = || {
        if dev {
            errln!("note: {}", plannt_lightning::dev::WARNING);
        }
    };
    match &args.command {
        Command::Balance => {
            let balance = wallet.balance().await.map_err(Error::other)?;
            if args.json {
                outln!(
                    "{}",
                    json!({"backend": wallet.name(), "network": wallet.network().as_str(),
                           "balance_msat": balance.msat, "balance_sats": balance.msat / 1000})
                )?;
            } else {
                say_dev();
                outln!("{}", sats(balance.msat / 1000))?;
            }
        }
        Command::Pay {
            invoice,
            max_fee_sats,
        } => {
            let decoded = decode_invoice(invoice).map_err(|e| Error::Refused(e.to_string()))?;
            if decoded.network != wallet.network() {
                return Err(Error::Refused(format!(
                    "a {} invoice, and this wallet pays {} invoices",
                    decoded.network,
                    wallet.network()
                )));
            }
            let payment = wallet
                .pay(invoice, max_fee_sats.saturating_mul(1000))
                .await
                .map_err(|e| Error::PaymentFailed(e.into()))?;
            if args.json {
                outln!(
                    "{}",
                    json!({"payment_hash": hex::encode(payment.payment_hash),
                           "preimage": payment.preimage.to_hex(),
                           "amount_msat": payment.amount_msat, "fee_msat": payment.fee_msat})
                )?;
            } else {
                say_dev();
                errln!(
                    "paid {} (fee {} msat)",
                    sats(payment.amount_msat.div_ceil(1000)),
                    payment.fee_msat
                );
                outln!("{}", payment.preimage.to_hex())?;
            }
        }
        Command::Invoice { sats, memo, expiry } => {
            let issued = wallet
                .create_invoice(&InvoiceRequest {
                    amount_sats: *sats,
                    memo: memo.clone(),
                    expiry_secs: *expiry,
                })
                .await
                .map_err(|e| Error::failed("cannot issue an invoice", e))?;
            if args.json {
                outln!(
                    "{}",
                    json!({"bolt11": issued.bolt11, "payment_hash": hex::encode(issued.payment_hash),
                           "expires_at": issued.expires_at})
                )?;
            } else {
                say_dev();
                outln!("{}", issued.bolt11)?;
            }
        }
        Command::Lookup { payment_hash } => {
            let hash = plannt_l402::PaymentHash::from_hex(payment_hash.trim())
                .map_err(|_| Error::Usage("the payment hash must be 64 hex digits".into()))?;
            let found = wallet
                .lookup_payment(&hash)
                .await
                .map_err(|e| Error::failed("cannot look the payment up", e))?;
            let (state, json) = match &found {
                PaymentLookup::Succeeded(payment) => (
                    "paid",
                    json!({"state": "paid", "payment_hash": hex::encode(payment.payment_hash),
                           "preimage": payment.preimage.to_hex(),
                           "amount_msat": payment.amount_msat, "fee_msat": payment.fee_msat}),
                ),
                PaymentLookup::Pending => ("pending", json!({"state": "pending"})),
                PaymentLookup::Failed(why) => ("failed", json!({"state": "failed", "reason": why})),
                PaymentLookup::NotFound => ("not_found", json!({"state": "not_found"})),
            };
            if args.json {
                outln!("{json}")?;
            } else {
                say_dev();
                match &found {
                    PaymentLookup::Succeeded(payment) => {
                        errln!(
                            "paid {} (fee {} msat)",
                            sats(payment.amount_msat.div_ceil(1000)),
                            payment.fee_msat
                        );
                        outln!("{}", payment.preimage.to_hex())?;
                    }
                    PaymentLookup::Failed(why) => outln!("failed: {why}")?,
                    _ => outln!("{}", state.replace('_', " "))?,
                }
            }
        }
    }
    Ok(())
}
