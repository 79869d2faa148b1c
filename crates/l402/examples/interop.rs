//! A command-line face of `plannt_l402` for the interop suite in `interop/`, where pymacaroons
//! and npm `macaroon` check the macaroons we mint and we check the ones they mint.
//!
//! ```text
//! interop mint   <root key hex> <route> <payment hash hex> <valid_until unix>
//! interop verify <root key hex> <base64 macaroon> <preimage hex> <route>
//! ```
//!
//! `mint` prints the macaroon exactly as [`KeyRing::mint`] makes it: standard padded base64 of
//! the V2 binary form, with the key id (the key's fingerprint) in the location.
//!
//! `verify` checks a macaroon minted by anyone who holds the root key. Other tools do not put
//! our key id in the location, so the ring holds the one key under the id the macaroon names.
//! It prints `ok payment_hash=<hex> caveats=[…]` and exits 0, or prints the reason code
//! (`bad_signature`, `wrong_route`, …) on stdout, the detail on stderr, and exits 1.
//! Usage errors exit 2.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use plannt_l402::{
    Credential, KeyRing, Macaroon, MintRequest, NoConditions, PaymentHash, Preimage, Reason,
    Request, RootKey,
};

const USAGE: &str = "usage:
  interop mint   <root key hex> <route> <payment hash hex> <valid_until unix>
  interop verify <root key hex> <base64 macaroon> <preimage hex> <route>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["mint", key, route, hash, until] => mint(key, route, hash, until),
        ["verify", key, macaroon, preimage, route] => verify(key, macaroon, preimage, route),
        _ => usage("expected `mint` or `verify` and four arguments"),
    }
}

fn mint(key: &str, route: &str, payment_hash: &str, valid_until: &str) -> ExitCode {
    let keys = match KeyRing::from_hex(key) {
        Ok(keys) => keys,
        Err(e) => return usage(&e.to_string()),
    };
    let Ok(payment_hash) = PaymentHash::from_hex(payment_hash) else {
        return usage("the payment hash must be 64 hex characters");
    };
    let Ok(valid_until) = valid_until.parse::<u64>() else {
        return usage("valid_until must be unix seconds");
    };
    let request = MintRequest {
        payment_hash,
        route,
        valid_until,
        conditions: &[],
    };
    match keys.mint(&request) {
        Ok(macaroon) => {
            println!("{}", macaroon.to_base64());
            ExitCode::SUCCESS
        }
        Err(e) => usage(&e.to_string()),
    }
}

fn verify(key: &str, macaroon: &str, preimage: &str, route: &str) -> ExitCode {
    let key = match RootKey::from_hex(key) {
        Ok(key) => key,
        Err(e) => return usage(&e.to_string()),
    };
    let Ok(preimage) = Preimage::from_hex(preimage) else {
        return usage("the preimage must be 64 hex characters");
    };
    let macaroon = match Macaroon::from_base64(macaroon) {
        Ok(m) => m,
        Err(e) => return refused(Reason::Malformed, &e.to_string()),
    };
    // The ring's only key answers to whatever id the macaroon names in its location.
    let location = macaroon.location().map(String::from_utf8_lossy);
    let location = location.as_deref().unwrap_or("");
    let mut keys = KeyRing::new();
    if let Err(e) = keys.add(location, key) {
        return refused(Reason::UnknownKey, &format!("location is no key id: {e}"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let request = Request {
        route,
        now,
        conditions: &NoConditions,
    };
    let caveats: Vec<String> = macaroon
        .caveats()
        .iter()
        .map(|c| String::from_utf8_lossy(&c.id).into_owned())
        .collect();
    match keys.verify(&Credential::new(macaroon, preimage), &request) {
        Ok(verified) => {
            println!(
                "ok payment_hash={} caveats={caveats:?}",
                hex::encode(verified.payment_hash)
            );
            ExitCode::SUCCESS
        }
        Err(e) => refused(e.reason(), &e.to_string()),
    }
}

fn refused(reason: Reason, detail: &str) -> ExitCode {
    println!("{}", reason.code());
    eprintln!("refused: {detail}");
    ExitCode::from(1)
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("error: {problem}\n{USAGE}");
    ExitCode::from(2)
}
