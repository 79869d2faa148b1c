//! Counters, one histogram and one gauge, rendered as Prometheus text at `/metrics`.
//!
//! The label sets (routes, reason codes) are fixed when the gateway starts (a reload that adds
//! routes swaps in a table with their counters, keeping the others), so every metric is an
//! atomic in a table built beforehand: nothing locks or allocates on the request path. The gauge, the
//! size of the spent set, is counted off the request path (at a scrape or after a purge), at most
//! once every [`SPENT_COUNT_EVERY`], since counting a Redis set is not free.

use std::fmt::Write;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use plannt_l402::Reason;
use tokio::time::Instant;

use crate::store::StoreError;

/// The spent set is counted at most this often; scrapes in between read the last count.
pub const SPENT_COUNT_EVERY: Duration = Duration::from_secs(2);

/// Upper bounds of the upstream latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Per-route counters.
struct RouteMetrics {
    id: String,
    challenges: AtomicU64,
    accepted: AtomicU64,
    sats_earned: AtomicU64,
    free_answers: AtomicU64,
}

impl RouteMetrics {
    fn new(id: &str) -> Arc<Self> {
        Arc::new(RouteMetrics {
            id: id.to_string(),
            challenges: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            sats_earned: AtomicU64::new(0),
            free_answers: AtomicU64::new(0),
        })
    }
}

/// The gateway's metrics.
pub struct Metrics {
    /// Swapped whole when routes are added (a reload); read without a lock.
    routes: arc_swap::ArcSwap<Vec<Arc<RouteMetrics>>>,
    rejections: [AtomicU64; Reason::ALL.len()],
    rate_limited: AtomicU64,
    invoice_failures: AtomicU64,
    store_failures: AtomicU64,
    released: AtomicU64,
    replayed: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    spent_tokens: AtomicU64,
    spent_known: AtomicBool,
    spent_counted_at: tokio::sync::Mutex<Option<Instant>>,
}

impl Metrics {
    /// Metrics for these route ids.
    pub fn new<'a>(route_ids: impl IntoIterator<Item = &'a str>) -> Self {
        Metrics {
            routes: arc_swap::ArcSwap::from_pointee(
                route_ids.into_iter().map(RouteMetrics::new).collect(),
            ),
            rejections: Default::default(),
            rate_limited: AtomicU64::new(0),
            invoice_failures: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
            released: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            latency_buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_micros: AtomicU64::new(0),
            spent_tokens: AtomicU64::new(0),
            spent_known: AtomicBool::new(false),
            spent_counted_at: tokio::sync::Mutex::new(None),
        }
    }

    /// Adds counters for the route ids not counted yet (after a reload); those of routes that
    /// went stay, so counters never go back.
    pub fn add_routes<'a>(&self, route_ids: impl IntoIterator<Item = &'a str>) {
        let mut routes: Vec<Arc<RouteMetrics>> = self.routes.load().iter().cloned().collect();
        for id in route_ids {
            if !routes.iter().any(|r| r.id == id) {
                routes.push(RouteMetrics::new(id));
            }
        }
        self.routes.store(Arc::new(routes));
    }

    /// A challenge was issued for `route`.
    pub fn challenge(&self, route: &str) {
        if let Some(r) = self.routes.load().iter().find(|r| r.id == route) {
            r.challenges.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A token was accepted (claimed and forwarded) for `route`, which earned `sats`. A session
    /// request is accepted with 0 sats: its debit is known when its hold settles, and counted
    /// then by [`Metrics::earned`].
    pub fn accepted(&self, route: &str, sats: u64) {
        if let Some(r) = self.routes.load().iter().find(|r| r.id == route) {
            r.accepted.fetch_add(1, Ordering::Relaxed);
            r.sats_earned.fetch_add(sats, Ordering::Relaxed);
        }
    }

    /// `route` earned `sats` outside an accepted token: a session request's debit, when its
    /// hold settled.
    pub fn earned(&self, route: &str, sats: u64) {
        if let Some(r) = self.routes.load().iter().find(|r| r.id == route) {
            r.sats_earned.fetch_add(sats, Ordering::Relaxed);
        }
    }

    /// A request to `route` was answered free, within its free tier (`x-l402: free`).
    pub fn free_answer(&self, route: &str) {
        if let Some(r) = self.routes.load().iter().find(|r| r.id == route) {
            r.free_answers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A credential was refused.
    pub fn rejected(&self, reason: Reason) {
        let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.rejections[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A request was refused with 429: over the challenge rate, a route's rate limit, or the
    /// payment page's poll rate.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// The Lightning backend could not issue an invoice.
    pub fn invoice_failure(&self) {
        self.invoice_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The spent store could not answer.
    pub fn store_failure(&self) {
        self.store_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A claim was released after an upstream failure.
    pub fn released(&self) {
        self.released.fetch_add(1, Ordering::Relaxed);
    }

    /// A spent credential was answered with the answer kept for it.
    pub fn replayed(&self) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
    }

    /// How long the upstream took to answer a paid request.
    pub fn upstream_latency(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Sets the `plannt_spent_tokens` gauge: how many entries the spent set holds.
    pub fn set_spent_tokens(&self, entries: u64) {
        self.spent_tokens.store(entries, Ordering::Relaxed);
        self.spent_known.store(true, Ordering::Relaxed);
    }

    /// Refreshes the `plannt_spent_tokens` gauge with `count` (the store's `len`), unless it was
    /// counted less than [`SPENT_COUNT_EVERY`] ago and `force` is false. Concurrent callers wait
    /// for one count rather than each running their own. A count that fails leaves the last value.
    pub async fn refresh_spent_tokens<F, Fut>(&self, force: bool, count: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64, StoreError>>,
    {
        let mut counted_at = self.spent_counted_at.lock().await;
        if !force && counted_at.is_some_and(|at| at.elapsed() < SPENT_COUNT_EVERY) {
            return;
        }
        match count().await {
            Ok(entries) => {
                self.set_spent_tokens(entries);
                *counted_at = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "could not count the spent set"),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut text = String::new();
        let mut push = |name: &str, help: &str, kind: &str, lines: Vec<String>| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
        };
        // One line a route: `NAME{route="ID"} VALUE`.
        let routes = self.routes.load();
        let by_route = |name: &str, counter: fn(&RouteMetrics) -> &AtomicU64| {
            routes
                .iter()
                .map(|r| format!("{name}{{route=\"{}\"}} {}", r.id, load(counter(r))))
                .collect::<Vec<_>>()
        };
        push(
            "plannt_challenges_total",
            "402 challenges issued, by route.",
            "counter",
            by_route("plannt_challenges_total", |r| &r.challenges),
        );
        push(
            "plannt_tokens_accepted_total",
            "Paid requests whose token was accepted, by route.",
            "counter",
            by_route("plannt_tokens_accepted_total", |r| &r.accepted),
        );
        push(
            "plannt_sats_earned_total",
            "Sats earned by accepted tokens and session debits, by route.",
            "counter",
            by_route("plannt_sats_earned_total", |r| &r.sats_earned),
        );
        push(
            "plannt_free_answers_total",
            "Requests answered free within a route's free tier, by route.",
            "counter",
            by_route("plannt_free_answers_total", |r| &r.free_answers),
        );
        push(
            "plannt_rejections_total",
            "Credentials refused, by reason.",
            "counter",
            Reason::ALL
                .iter()
                .zip(&self.rejections)
                .map(|(reason, n)| {
                    format!(
                        "plannt_rejections_total{{reason=\"{}\"}} {}",
                        reason.code(),
                        load(n)
                    )
                })
                .collect(),
        );
        for (name, help, value) in [
            (
                "plannt_rate_limited_total",
                "Requests refused with 429: the challenge rate, a route's rate_limit, the payment page's polls.",
                &self.rate_limited,
            ),
            (
                "plannt_invoice_failures_total",
                "Invoices the Lightning backend could not issue (503).",
                &self.invoice_failures,
            ),
            (
                "plannt_store_failures_total",
                "Paid requests refused because the spent store did not answer (503).",
                &self.store_failures,
            ),
            (
                "plannt_claims_released_total",
                "Claims released after an upstream failure.",
                &self.released,
            ),
            (
                "plannt_answers_replayed_total",
                "Kept answers given again to the same credential and request (no upstream call).",
                &self.replayed,
            ),
        ] {
            push(
                name,
                help,
                "counter",
                vec![format!("{name} {}", load(value))],
            );
        }
        let mut lines: Vec<String> = BUCKETS
            .iter()
            .zip(&self.latency_buckets)
            .map(|(b, n)| format!("plannt_upstream_seconds_bucket{{le=\"{b}\"}} {}", load(n)))
            .collect();
        let count = load(&self.latency_count);
        lines.push(format!(
            "plannt_upstream_seconds_bucket{{le=\"+Inf\"}} {count}"
        ));
        lines.push(format!(
            "plannt_upstream_seconds_sum {}",
            load(&self.latency_sum_micros) as f64 / 1e6
        ));
        lines.push(format!("plannt_upstream_seconds_count {count}"));
        push(
            "plannt_upstream_seconds",
            "Time the upstream took to answer paid requests.",
            "histogram",
            lines,
        );
        if self.spent_known.load(Ordering::Relaxed) {
            push(
                "plannt_spent_tokens",
                "Entries in the spent set (spent tokens not yet purged, and claims in flight).",
                "gauge",
                vec![format!("plannt_spent_tokens {}", load(&self.spent_tokens))],
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn gauge(metrics: &Metrics) -> Option<u64> {
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("plannt_spent_tokens "))?;
        assert!(
            text.contains("# TYPE plannt_spent_tokens gauge"),
            "no TYPE line:\n{text}"
        );
        Some(line.rsplit(' ').next()?.parse().expect("a number"))
    }

    #[tokio::test(start_paused = true)]
    async fn spent_gauge_is_counted_at_most_every_interval_unless_forced() {
        let metrics = Metrics::new(["demo"]);
        assert_eq!(gauge(&metrics), None, "not rendered before the first count");
        let counts = AtomicUsize::new(0);
        let count = |n: u64| {
            let counts = &counts;
            move || async move {
                counts.fetch_add(1, Ordering::SeqCst);
                Ok(n)
            }
        };
        metrics.refresh_spent_tokens(false, count(7)).await;
        assert_eq!(gauge(&metrics), Some(7));
        // A scrape right after reads the cached value without counting again.
        metrics.refresh_spent_tokens(false, count(9)).await;
        assert_eq!(gauge(&metrics), Some(7));
        assert_eq!(counts.load(Ordering::SeqCst), 1);
        // A purge counts anyway.
        metrics.refresh_spent_tokens(true, count(3)).await;
        assert_eq!(gauge(&metrics), Some(3));
        // After the interval, a scrape counts again: the gauge falls as the set is purged.
        tokio::time::advance(SPENT_COUNT_EVERY).await;
        metrics.refresh_spent_tokens(false, count(0)).await;
        assert_eq!(gauge(&metrics), Some(0));
        assert_eq!(counts.load(Ordering::SeqCst), 3);
    }

    fn line<'a>(text: &'a str, metric: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(metric))
    }

    #[test]
    fn session_debits_add_sats_and_free_answers_are_counted_by_route() {
        let metrics = Metrics::new(["demo", "chat"]);
        metrics.accepted("chat", 0);
        metrics.earned("chat", 17);
        metrics.earned("chat", 4);
        metrics.free_answer("demo");
        metrics.free_answer("demo");
        metrics.free_answer("gone");
        let text = metrics.render();
        assert!(
            text.contains("# TYPE plannt_free_answers_total counter"),
            "{text}"
        );
        for (metric, want) in [
            ("plannt_tokens_accepted_total{route=\"chat\"}", "1"),
            ("plannt_sats_earned_total{route=\"chat\"}", "21"),
            ("plannt_sats_earned_total{route=\"demo\"}", "0"),
            ("plannt_free_answers_total{route=\"demo\"}", "2"),
            ("plannt_free_answers_total{route=\"chat\"}", "0"),
        ] {
            let found = line(&text, metric).unwrap_or_else(|| panic!("no {metric}:\n{text}"));
            assert_eq!(found.rsplit(' ').next(), Some(want), "{found}");
        }
        assert!(!text.contains("route=\"gone\""), "{text}");
    }

    #[tokio::test]
    async fn a_failed_count_keeps_the_last_value() {
        let metrics = Metrics::new(["demo"]);
        metrics.set_spent_tokens(5);
        metrics
            .refresh_spent_tokens(true, || async {
                Err(StoreError::Unexpected("down".into()))
            })
            .await;
        assert_eq!(gauge(&metrics), Some(5));
    }
}
