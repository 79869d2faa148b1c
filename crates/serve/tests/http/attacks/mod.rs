//! Attacks on the gateway's promises, each a named test that tries to break one, for every store
//! where it applies. docs/security.md lists each attack with what Plannt guarantees and these
//! tests.
//!
//! - `attenuation`: one payment, many answers, by appending an earlier expiry (or any other
//!   caveat) to a paid macaroon so its spent entry lapses; with a property test over any
//!   sequence of attenuations and any passage of time up to the minted expiry.
//! - `release`: a request the upstream served given back by a hang-up, a timeout or a 5xx;
//!   a released answer that carries the upstream's data.
//! - `paths`: a variant of a path priced as a cheaper route; a method override.
//! - `slowloris`: half-open and idle connections that crowd out paying clients.
//! - `headers`: `x-l402-*` headers sent to an upstream that trusts them; `/status` floods.

mod attenuation;
mod headers;
mod paths;
mod release;
mod slowloris;
