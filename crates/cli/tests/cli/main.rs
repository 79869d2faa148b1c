//! The `plannt` binary's tests, in one binary: each module runs the binary as a user would.
//!
//! - `curl`, `refusals`, `attacks`, `concurrency`, `crash`: `plannt get` (and `plannt mcp` over
//!   stdio) against the test kit's hostile L402 server, paying through its dev network;
//! - `lost`: a paid answer lost after the credential left (the process killed, a connection
//!   cut, a gateway that kept nothing): `plannt ledger`, `plannt ledger retry`, the same
//!   `plannt get` again and `plannt mcp`'s `fetch` recover it, paying once, from the test kit's
//!   keeper and from a real `plannt serve` in front of a slow upstream;
//! - `dialects`: `plannt get` against a `plannt serve` that offers only MPP or only x402, and
//!   `--dialect`;
//! - `failures`: `plannt get` and `plannt mcp` when the wallet or the server does not answer
//!   (unreachable, each network cause, timeouts), and `plannt mcp` started by hand;
//! - `serve`, `rotation`, `replicas`, `crash_load`, `load`: `plannt serve` processes, killed,
//!   restarted, sharing a Redis, under load;
//! - `stats`: `plannt stats` from a gateway's admin API and from its store, and `SIGHUP`
//!   reloading a running `plannt serve` with a paid request in flight;
//! - `sessions`: `plannt session list` and `close`, and `plannt ledger`, on a session opened
//!   with the test kit's session server; `plannt get` opening a session that another
//!   `plannt get` spends from;
//! - `wallets`: `plannt wallet` against fakes of the Lightning nodes' APIs;
//! - `check`: `plannt check` against `plannt serve`, the hostile server and a crafted one whose
//!   402s and catalog lie;
//! - `exits`, `pipes`, `texts`: the exit statuses, a closed standard output, and what a new
//!   user reads (help, completions, the manual page, `-v`, plurals).
//!
//! `support` holds what the `plannt get` tests share, `cluster` what the `plannt serve` tests do.

mod attacks;
mod check;
mod cluster;
mod concurrency;
mod crash;
mod crash_load;
mod curl;
mod dialects;
mod exits;
mod failures;
mod load;
mod lost;
mod pipes;
mod refusals;
mod replicas;
mod rotation;
mod serve;
mod sessions;
mod stats;
mod support;
mod texts;
mod wallets;

/// The `plannt` binary cargo built for these tests.
pub const PLANNT: &str = env!("CARGO_BIN_EXE_plannt");
