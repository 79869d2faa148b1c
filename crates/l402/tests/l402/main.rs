//! `plannt-l402` through its public API: the round trips of every encoding (property tests),
//! every reason a credential fails for, and hostile input to every parser.

mod hostile;
mod reasons;
mod roundtrip;
