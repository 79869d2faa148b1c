//! What Plannt's tests share, written once: the `CI` switch that turns a skipped test into a
//! failure, free and dead loopback ports, a `redis-server` of the test's own ([`Redis`]), a
//! Redis Cluster ([`cluster`]) and Redis with Sentinel ([`sentinel`]) of its own, a hostile L402
//! server ([`hostile`]), an MPP session server with a charge beside it ([`sessions`]), HTTP servers that never answer or hang up ([`broken`]), a gateway that
//! keeps paid answers and loses the first on purpose ([`keeper`]),
//! an OpenAI-compatible upstream ([`openai`]: chat completions, streamed or not, with honest
//! usage), helpers to run processes with a deadline ([`process`]), and fakes of the Lightning nodes
//! Plannt talks to ([`fakes`]: LND, Core Lightning, phoenixd).
//!
//! A test that needs something this machine may lack (redis-server, a service) calls
//! [`skip`]: outside CI it prints a loud notice and the test returns early; under `CI=true` it
//! fails, so nothing is skipped where it matters.

pub mod broken;
pub mod cluster;
pub mod fakes;
pub mod hostile;
pub mod keeper;
pub mod openai;
pub mod process;
mod redis;
pub mod sentinel;
pub mod sessions;

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};

pub use redis::{Redis, Setup};

/// Whether the tests run under CI (`CI=true` or `CI=1`), where nothing may be skipped.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// Skips the calling test because `why`: a notice outside CI, a failure under it.
pub fn skip(why: &str) {
    assert!(!in_ci(), "{why}: CI=true, so this test cannot be skipped");
    // Straight to stderr: the test harness captures `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr(), "\n!!! SKIPPED: {why}\n");
}

/// A loopback port that was free a moment ago (another process may take it before it is bound).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("a free loopback port")
        .local_addr()
        .expect("a bound address")
        .port()
}

/// A loopback port nothing listens on: connections to it are refused.
pub fn dead_port() -> u16 {
    free_port()
}
