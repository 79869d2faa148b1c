//! `plannt-l402` through its public API: the round trips of every encoding (property tests),
//! every reason a credential fails for, and hostile input to every parser; for L402, MPP and
//! x402 alike, and the three side by side.

mod dialects;
mod hostile;
mod mpp;
mod reasons;
mod roundtrip;
mod x402;
