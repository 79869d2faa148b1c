//! The gateway's load harness: several roles of traffic at once against one `plannt serve`,
//! each from a loopback source address of its own (the gateway limits challenges per address).
//!
//! - **paid**: buys tokens (a 402 from the mint gateway, then `POST /_plannt/dev/pay`), before or
//!   during the run, and presents each once: expects 200.
//! - **replay**: presents tokens the paid role has spent: expects 402 `spent` (or 429 once its
//!   address has used up its challenges: a 402 for a spent token is a challenge too).
//! - **flood**: asks for challenges without a credential: 402 until the burst is gone, then 429.
//! - **garbage**: malformed or forged `Authorization` values: expects 401.
//!
//! A sampler reads the gateway's RSS (`/proc/PID/status`) and its `plannt_spent_tokens` gauge
//! (`/metrics`) every few seconds. Only tokio and serde_json: the HTTP/1.1 client is the few lines
//! of `http.rs` (keep-alive, `Content-Length` or chunked bodies); the `plannt` binary's tests use
//! this library as a dev-dependency.

use std::time::Duration;

mod http;
mod run;
mod sample;
mod tokens;

pub use http::{Answer, Client};
pub use run::{Kind, Outcome, Plan, Progress, Role, Stats, Supply, garbage_credentials, run};
pub use sample::{Sample, memory_of, metric, run_sampled, sample, spent_gauge};
pub use tokens::{buy, buy_many};

/// The longest one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response head or body read.
const MAX_RESPONSE: usize = 1 << 20;
/// The highest rate one connection of a fixed-rate role is given, requests per second.
pub const MAX_CONNECTION_RATE: f64 = 250.0;
/// How many spent tokens the replay role picks from.
const SPENT_POOL: usize = 10_000;

/// Microseconds as text: `850 µs`, `1.25 ms`.
pub fn micros(us: u32) -> String {
    if us >= 1000 {
        format!("{:.2} ms", f64::from(us) / 1000.0)
    } else {
        format!("{us} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::dechunk;

    #[test]
    fn dechunks_a_body() {
        let (body, used) = dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\nNEXT")
            .unwrap()
            .unwrap();
        assert_eq!(body, b"abcde");
        assert_eq!(used, 24);
        assert!(dechunk(b"3\r\nab").unwrap().is_none());
        assert!(dechunk(b"zz\r\n").is_err());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let stats = Stats {
            latencies_us: (1..=100).rev().collect(),
            ..Stats::default()
        };
        assert_eq!(stats.quantile_us(0.5), 50);
        assert_eq!(stats.quantile_us(0.99), 99);
        assert_eq!(stats.quantile_us(1.0), 100);
        assert_eq!(Stats::default().quantile_us(0.99), 0);
    }

    #[test]
    fn reads_a_metric() {
        let text =
            "# TYPE plannt_spent_tokens gauge\nplannt_spent_tokens 42\nplannt_spent_tokens_x 1\n";
        assert_eq!(metric(text, "plannt_spent_tokens"), Some(42));
        assert_eq!(metric(text, "plannt_other"), None);
    }

    #[test]
    fn counts_by_status_prefix() {
        let mut stats = Stats::default();
        stats.counts.insert("402 spent".into(), 3);
        stats.counts.insert("402".into(), 2);
        stats.counts.insert("4020".into(), 7);
        stats.counts.insert("429".into(), 1);
        assert_eq!(stats.count("402"), 5);
        assert_eq!(stats.count("402 spent"), 3);
        assert_eq!(stats.answered(), 13);
    }
}
