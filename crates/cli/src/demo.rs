//! `plannt demo`: the five steps of the product page, for real, in one process.
//!
//! A gateway with the dev network starts on a free loopback port; a client with a dev wallet
//! asks for `/v1/demo`, gets a 402 with an invoice and a macaroon, pays, retries and gets 200
//! with `x-l402: spent`. Then the same credential is presented for another request and refused
//! with a fresh 402, reason `spent` (the same request would get its kept answer again); then the
//! ledger shows the payment and the budget.

use std::sync::{Arc, Mutex};

use plannt_client::{Client, Event, Ledger, Options, Outcome, Request};
use plannt_l402::{Credential, Macaroon};
use plannt_serve::{Config, Gateway};

use crate::error::Error;
use crate::out::{outln, sats};

/// Runs the demo. A failure of the client is an error of the demo (exit status 1), not of a
/// paying request.
pub async fn run() -> Result<(), Error> {
    let dir =
        tempfile::tempdir().map_err(|e| Error::failed("cannot make a temporary directory", e))?;
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        store: plannt_serve::config::Store::Memory,
        ..Config::default()
    };
    let gateway = Gateway::build(config, dir.path().to_path_buf())
        .await
        .map_err(Error::other)?;
    let network = gateway
        .dev_network
        .clone()
        .expect("the demo runs on the dev network");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::failed("cannot listen on loopback", e))?;
    let addr = listener.local_addr().map_err(Error::other)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));

    outln!("Plannt demo: a gateway on http://{addr} with the dev Lightning network")?;
    outln!("({})\n", plannt_lightning::dev::WARNING)?;
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite"))?;
    let settings = crate::setup::settings()?;
    // The demo's gateway is on loopback, in this process: whatever allow_private_networks says.
    let client = Client::new(
        Arc::new(network.wallet("demo")),
        ledger.clone(),
        plannt_client::Policy {
            allow_private_networks: true,
            ..settings.policy.clone()
        },
    );
    let url: url::Url = format!("http://{addr}/v1/demo")
        .parse()
        .expect("a valid URL");

    let step = Mutex::new(0);
    let macaroon = Mutex::new(String::new());
    // A closed standard output is ignored here; the next write after the request ends the demo.
    let on_event = |event: &Event<'_>| {
        let mut n = step.lock().expect("demo lock");
        match event {
            Event::Request {
                method,
                url,
                credential: false,
            } => {
                *n += 1;
                let _ = outln!(
                    "{}. {method} {}\n   Authorization: (none)\n",
                    *n,
                    url.path()
                );
            }
            Event::Challenge {
                invoice,
                macaroon: m,
                amount_sats,
                ..
            } => {
                *n += 1;
                *macaroon.lock().expect("demo lock") = m.to_string();
                let _ = outln!(
                    "{}. 402 Payment Required: {}\n   invoice:  {invoice}\n   macaroon: {m}\n",
                    *n,
                    sats(*amount_sats)
                );
            }
            Event::Paid { preimage, .. } => {
                *n += 1;
                let _ = outln!("{}. lightning.pay()\n   <- preimage: {preimage}\n", *n);
            }
            Event::Request {
                method,
                url,
                credential: true,
            } => {
                *n += 1;
                let _ = outln!(
                    "{}. {method} {}\n   Authorization: L402 <macaroon>:<preimage>\n",
                    *n,
                    url.path()
                );
            }
            Event::Response { status, l402 } if status.is_success() => {
                *n += 1;
                let _ = outln!("{}. {status}\n   x-l402: {}", *n, l402.unwrap_or("(none)"));
            }
            _ => {}
        }
    };
    let options = Options {
        on_event: Some(&on_event),
        ..Options::default()
    };
    let outcome = client
        .send(&Request::get(url.clone()), &options)
        .await
        .map_err(Error::other)?;
    let Outcome::Response(mut response) = outcome else {
        return Err(Error::other("the demo expected a response"));
    };
    let body = response.bytes(1 << 20).await.map_err(Error::other)?;
    outln!("   {}\n", String::from_utf8_lossy(&body))?;
    let receipt = response
        .receipt
        .clone()
        .ok_or_else(|| Error::other("the demo expected a receipt"))?;

    // Replay the spent credential by hand: a single-use token buys nothing twice.
    let macaroon =
        Macaroon::from_base64(&macaroon.lock().expect("demo lock")).map_err(Error::other)?;
    let preimage = plannt_l402::hex32(&receipt.preimage)
        .ok_or_else(|| Error::other("bad preimage in the receipt"))?;
    let credential = Credential::new(macaroon, preimage).to_header_value();
    let mut other = url.clone();
    other.set_query(Some("page=2"));
    let replay = reqwest::Client::new()
        .get(other.as_str())
        .header("Authorization", &credential)
        .send()
        .await
        .map_err(Error::other)?;
    let status = replay.status();
    let reason = replay
        .headers()
        .get(plannt_l402::wire::X_L402_REASON)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    let fresh: serde_json::Value = replay.json().await.unwrap_or_default();
    outln!("The same credential for another request (?page=2):")?;
    outln!("   {status}, reason: {reason}")?;
    outln!(
        "   a fresh invoice for a new payment: {}…\n",
        fresh["invoice"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect::<String>()
    )?;

    outln!(
        "The ledger of this demo ({} paid, payment hash {}):",
        sats(receipt.amount_sats),
        receipt.payment_hash
    )?;
    crate::ledger::print(&ledger, &settings.policy.budget, 5, false)?;

    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
