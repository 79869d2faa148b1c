//! Free tiers and per-route rate limits: requests counted per client address in fixed windows.
//!
//! A route's `free` quota lets a client address make that many requests per window without
//! paying (counted before any invoice); its `rate_limit` caps every request to it, paid or not
//! (429 beyond). Clients are keyed as the challenge limiter keys them (IPv6 by /64, a trusted
//! proxy's `X-Forwarded-For`). A store that counts for every replica ([`SpentStore::count_request`]:
//! Redis, INCR and EXPIRE in one script) keeps the count; memory and SQLite stores count in this
//! process, in a table bounded like the limiter's: when it is full, windows that ended go first,
//! and a new client is then counted as over its quota (no free request, 429) rather than the
//! table grown. A store that fails to count falls back to this process's count.
//!
//! [`SpentStore::count_request`]: crate::store::SpentStore::count

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::limiter::client_key;

/// The most (route, client) windows counted in this process at once.
const MAX_COUNTERS: usize = 100_000;

/// So many requests per window, per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed in one window (at least 1).
    pub requests: u32,
    /// The window's length (whole seconds, at least one).
    pub per: Duration,
}

impl Quota {
    /// The window in whole seconds, at least one.
    pub fn per_secs(&self) -> u64 {
        self.per.as_secs().max(1)
    }
}

/// Which count a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// The free tier.
    Free,
    /// The rate limit.
    Limit,
}

impl Kind {
    /// The policy's name in `RateLimit` headers and store keys.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Free => "free",
            Kind::Limit => "limit",
        }
    }
}

/// One request counted: how many the client made in this window, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    /// The requests of this window so far.
    pub(crate) count: u64,
    /// The quota.
    pub(crate) quota: Quota,
    /// Seconds until the window ends.
    pub(crate) reset_secs: u64,
}

impl Hit {
    /// Whether this request is beyond the quota.
    pub(crate) fn over(&self) -> bool {
        self.count > u64::from(self.quota.requests)
    }

    /// Requests left in this window after this one.
    pub(crate) fn remaining(&self) -> u64 {
        u64::from(self.quota.requests).saturating_sub(self.count)
    }
}

/// Where a request falls: its window's number and the seconds until it ends.
pub(crate) fn window(quota: &Quota, now: u64) -> (u64, u64) {
    let per = quota.per_secs();
    let index = now / per;
    (index, (index + 1) * per - now)
}

/// The key of a client's count for a route in a window, the same in every replica.
pub(crate) fn key(kind: Kind, route: &str, client: IpAddr, window: u64) -> String {
    format!("{}:{route}:{}:{window}", kind.name(), client_key(client))
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    window: u64,
    count: u64,
    /// Unix seconds when its window ends.
    ends: u64,
}

/// Counts in this process.
#[derive(Default)]
pub(crate) struct Counters {
    table: Mutex<HashMap<(Kind, String, IpAddr), Counter>>,
}

impl Counters {
    /// Counts one request of `client` for `route` at `now`.
    pub(crate) fn hit(
        &self,
        kind: Kind,
        route: &str,
        quota: &Quota,
        client: IpAddr,
        now: u64,
    ) -> Hit {
        let (index, reset_secs) = window(quota, now);
        let key = (kind, route.to_owned(), client_key(client));
        let mut table = self.table.lock().expect("quota lock");
        if table.len() >= MAX_COUNTERS && !table.contains_key(&key) {
            table.retain(|_, c| c.ends > now);
            if table.len() >= MAX_COUNTERS {
                return Hit {
                    count: u64::from(quota.requests) + 1,
                    quota: *quota,
                    reset_secs,
                };
            }
        }
        let counter = table.entry(key).or_insert(Counter {
            window: index,
            count: 0,
            ends: now + reset_secs,
        });
        if counter.window != index {
            *counter = Counter {
                window: index,
                count: 0,
                ends: now + reset_secs,
            };
        }
        counter.count = counter.count.saturating_add(1);
        Hit {
            count: counter.count,
            quota: *quota,
            reset_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(requests: u32, secs: u64) -> Quota {
        Quota {
            requests,
            per: Duration::from_secs(secs),
        }
    }

    #[test]
    fn counts_each_client_and_window_apart() {
        let counters = Counters::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let q = quota(2, 60);
        let at = 6_000;
        assert!(!counters.hit(Kind::Free, "r", &q, a, at).over());
        let second = counters.hit(Kind::Free, "r", &q, a, at + 1);
        assert_eq!(
            (second.count, second.remaining(), second.over()),
            (2, 0, false)
        );
        assert!(
            counters.hit(Kind::Free, "r", &q, a, at + 2).over(),
            "the third"
        );
        assert!(
            !counters.hit(Kind::Free, "r", &q, b, at + 2).over(),
            "another client"
        );
        assert!(
            !counters.hit(Kind::Free, "other", &q, a, at + 2).over(),
            "another route"
        );
        assert!(
            !counters.hit(Kind::Limit, "r", &q, a, at + 2).over(),
            "another count"
        );
        let next = counters.hit(Kind::Free, "r", &q, a, at + 60);
        assert_eq!((next.count, next.over()), (1, false), "a new window");
        assert_eq!(next.reset_secs, 60);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let counters = Counters::default();
        let q = quota(1, 60);
        assert!(
            !counters
                .hit(Kind::Free, "r", &q, "2001:db8::1".parse().unwrap(), 0)
                .over()
        );
        assert!(
            counters
                .hit(Kind::Free, "r", &q, "2001:db8::2".parse().unwrap(), 1)
                .over()
        );
        assert!(
            !counters
                .hit(Kind::Free, "r", &q, "2001:db8:0:1::1".parse().unwrap(), 1)
                .over()
        );
    }

    #[test]
    fn the_table_is_bounded_and_a_new_client_is_counted_over_rather_than_it_grown() {
        let counters = Counters::default();
        let q = quota(5, 60);
        for i in 0..MAX_COUNTERS as u32 {
            let client = IpAddr::from(i.to_be_bytes());
            assert!(!counters.hit(Kind::Free, "r", &q, client, 0).over());
        }
        let newcomer: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(
            counters.hit(Kind::Free, "r", &q, newcomer, 1).over(),
            "full"
        );
        let known = IpAddr::from(7u32.to_be_bytes());
        assert!(
            !counters.hit(Kind::Free, "r", &q, known, 1).over(),
            "still counted"
        );
        // Once the windows end, their counters go first and the newcomer is counted.
        assert!(!counters.hit(Kind::Free, "r", &q, newcomer, 60).over());
        assert_eq!(counters.table.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_window_ends_on_a_multiple_of_its_length() {
        assert_eq!(window(&quota(1, 3600), 7_200), (2, 3600));
        assert_eq!(window(&quota(1, 3600), 7_201), (2, 3599));
        assert_eq!(window(&quota(1, 0), 5), (5, 1), "at least a second");
    }
}
