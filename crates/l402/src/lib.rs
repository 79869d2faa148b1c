//! Three ways to ask for a Lightning payment in an HTTP 402 and to present it afterwards, with no
//! I/O, no clock and no randomness it does not ask for: L402, MPP's Lightning charge ([`mpp`]) and
//! x402 `exact` on Lightning ([`x402`]). A gateway may offer all three for one invoice; whichever
//! a client answers with, verification yields the same payment hash, the one key of the spent set.
//!
//! **L402.** A server mints a [`Macaroon`] bound to an invoice's payment hash with
//! [`KeyRing::mint`] and sends it in a [`Challenge`]; the client pays, learns the preimage, and
//! sends a [`Credential`]; the server checks it with [`KeyRing::verify`], which needs nothing but
//! the keys and the clock the caller passes in. Each failure carries a [`Reason`] that says
//! whether to answer 402 (pay again) or 401 (refused).
//!
//! **MPP** (`WWW-Authenticate: Payment …`, Aperture's wire form): [`mpp::ChallengeKeys`] mints a
//! challenge whose id is an HMAC over its parameters, the route and price bound in its request,
//! and verifies the `Authorization: Payment` credential that echoes it with the preimage.
//!
//! **x402** (`PAYMENT-REQUIRED`, `PAYMENT-SIGNATURE`, `PAYMENT-RESPONSE`): [`x402::TagKeys`] writes
//! an offer tagged for its route, price and expiry, and checks that a payload names an invoice
//! this server issued; whether that invoice was paid is for the caller to ask its node.
//!
//! Beside them: [`Offers`] reads every challenge of a 402 in one go, [`InvoiceFacts`] and
//! [`PayCheckError`] are the client's checks before paying an MPP or x402 offer, [`jcs`] is RFC
//! 8785 canonical JSON.
//!
//! ```
//! use plannt_l402::{
//!     Challenge, Credential, KeyRing, MintRequest, NoConditions, Preimage, Request, RootKey,
//! };
//!
//! let keys = KeyRing::single(RootKey::new([7; 32]));
//! let preimage = Preimage::new([42; 32]);
//! let payment_hash = preimage.hash();
//! let macaroon = keys
//!     .mint(&MintRequest { payment_hash, route: "demo", valid_until: 2_000_000_000, conditions: &[] })
//!     .unwrap();
//! let challenge = Challenge::new(macaroon.clone(), "lnbcrt210n1...");
//! assert!(challenge.to_header_value().starts_with("L402 macaroon=\"AgE"));
//!
//! let header = Credential::new(macaroon, preimage).to_header_value();
//! let request = Request { route: "demo", now: 1_800_000_000, conditions: &NoConditions };
//! let verified = keys.verify_header(&header, &request).unwrap();
//! assert_eq!(verified.payment_hash, payment_hash);
//! ```

pub mod catalog;
mod caveat;
pub mod dialect;
mod encoding;
mod hash;
mod header;
mod identifier;
pub mod jcs;
mod key;
mod macaroon;
pub mod mpp;
mod time;
mod verify;
pub mod wire;
pub mod x402;

pub use catalog::{CATALOG_PATH, Catalog};
pub use caveat::{
    Caveat, CaveatError, CaveatFailure, Conditions, Grant, NoConditions, Service, check_caveats,
    is_condition_name, is_route_id,
};
pub use dialect::{Dialect, InvoiceFacts, Network, Offer, Offers, PayCheckError};
pub use encoding::{base64_decode, base64_encode, base64url_decode, base64url_encode, hex32};
pub use hash::{HexError, PaymentHash, Preimage};
pub use header::{
    Challenge, ChallengeError, Credential, CredentialError, MAX_HEADER_LEN, MAX_MACAROONS, Scheme,
};
pub use identifier::{IDENTIFIER_LEN, Identifier, IdentifierError};
pub use key::{KeyError, KeyRing, RootKey};
pub use macaroon::{CaveatPacket, MAX_CAVEATS, MAX_MACAROON_BYTES, Macaroon, MacaroonError};
pub use verify::{MintError, MintRequest, Reason, Request, Verified, VerifyError};
pub use wire::TokenState;
