//! The paying client's tests, in one binary: each module against real components (a hostile
//! L402 server on loopback, the dev network's wallet, a SQLite ledger).
//!
//! - `attacks`: the attacks of the security review, each a named test;
//! - `checks`: every check before a payment, each refusing with its own error, and the dry run
//!   that runs them all, the budgets included;
//! - `dialects`: the dialect a call pays (L402, MPP, x402) by the preference order, and
//!   servers that offer only MPP or only x402, honest and hostile; the probe's replay of the
//!   credential paid;
//! - `ledger_upgrade`: a ledger an older Plannt wrote opens and keeps working;
//! - `offers`: servers that offer only MPP or only x402, honest, lying in one way, or serving a
//!   credential again;
//! - `network`: a wallet that cannot be reached, each cause of a network failure named, the
//!   timeouts, and payments a timeout interrupted, never paid twice;
//! - `recovery`: payments a crash left pending are finished, never paid twice;
//! - `retry`: a paid request whose answer was lost gets the answer the gateway kept with the
//!   same credential (a cut connection, `409` pending, a broken body, the ledger's retry, each
//!   dialect), or a clear error when none was kept; never a second payment;
//! - `sessions`: prepaid sessions in the ledger (deposits, top-ups and refunds in the budgets,
//!   the most a session may hold, idle sessions found to close), and against the test kit's
//!   session server: open, bearer, top-up and close with the refund in the dev wallet, reuse by
//!   a second process, a session the policy refuses paid as a charge, a refund that never
//!   comes and top-ups asked for again and again;
//! - `redirect`: the host that asks for payment is the one checked and paid;
//! - `tokens`: tokens kept between requests, reused or paid again.

mod attacks;
mod checks;
mod dialects;
mod ledger_upgrade;
mod network;
mod offers;
mod recovery;
mod redirect;
mod retry;
mod sessions;
mod support;
mod tokens;
