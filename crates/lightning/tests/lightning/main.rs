//! plannt-lightning's tests, in one binary: one conformance suite that every backend runs
//! ([`conformance`]), then what is each backend's own, against the node or the stand-in it
//! talks to. A backend whose cargo feature is off is left out.

mod conformance;
mod dev;
mod open;
mod support;

#[cfg(feature = "cln")]
mod cln;
#[cfg(feature = "lnbits")]
mod lnbits;
#[cfg(feature = "lnd")]
mod lnd;
#[cfg(feature = "nwc")]
mod nwc;
#[cfg(feature = "phoenixd")]
mod phoenixd;
#[cfg(feature = "lnbits")]
mod tls;
