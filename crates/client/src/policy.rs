//! The spending policy: caps, budgets and the payment dialects allowed, set by the operator,
//! never by the request.

use plannt_l402::Dialect;

/// Budgets in sats. `None` means no limit for that window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// The most one request may cost (invoice amount).
    pub per_request_sats: u64,
    /// Spent in the last hour.
    pub hourly_sats: Option<u64>,
    /// Spent in the last 24 hours.
    pub daily_sats: Option<u64>,
    /// Spent ever (by this ledger).
    pub total_sats: Option<u64>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            per_request_sats: 1_000,
            hourly_sats: Some(5_000),
            daily_sats: Some(20_000),
            total_sats: None,
        }
    }
}

/// A budget window: the last hour, the last 24 hours, or all time. It reads (and serializes) as
/// `hour`, `day` or `total`, the words of the ledger, `plannt ledger` and the MCP tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last hour, rolling.
    Hour,
    /// The last 24 hours, rolling.
    Day,
    /// All time: it never renews.
    Total,
}

impl Window {
    /// Every window, in the order budgets are checked.
    pub const ALL: [Window; 3] = [Window::Hour, Window::Day, Window::Total];

    /// `hour`, `day` or `total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Total => "total",
        }
    }

    /// Its length in seconds; `None` for `total`, which is not rolling.
    pub fn secs(self) -> Option<u64> {
        match self {
            Window::Hour => Some(3_600),
            Window::Day => Some(86_400),
            Window::Total => None,
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl serde::Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Budget {
    /// Its limit in `window`, if any.
    pub fn limit(&self, window: Window) -> Option<u64> {
        match window {
            Window::Hour => self.hourly_sats,
            Window::Day => self.daily_sats,
            Window::Total => self.total_sats,
        }
    }

    /// Each window: the window, its limit and the unix second it starts at (`None`: all time).
    pub fn windows(&self, now: u64) -> [(Window, Option<u64>, Option<u64>); 3] {
        Window::ALL.map(|w| {
            (
                w,
                self.limit(w),
                w.secs().map(|secs| now.saturating_sub(secs)),
            )
        })
    }

    /// The length of a window in seconds (0 for `total`).
    pub fn window_secs(&self, window: Window) -> u64 {
        window.secs().unwrap_or(0)
    }
}

/// What the client may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The budgets.
    pub budget: Budget,
    /// The most to pay in routing fees per payment, in sats.
    pub max_fee_sats: u64,
    /// Hosts the client may send requests to and pay (exact names, or `*.example.com`); empty
    /// means any.
    pub allowed_hosts: Vec<String>,
    /// Whether requests may go to loopback, private, link-local and other non-public addresses.
    pub allow_private_networks: bool,
    /// Whether a challenge that came over plain `http` from a host that is not loopback may be
    /// paid.
    pub allow_insecure_http: bool,
    /// The dialects the client may pay (`l402`, `mpp`, `x402`), in the order it prefers them
    /// when a 402 offers several; a dialect left out is never paid.
    pub dialects: Vec<Dialect>,
    /// The most a prepaid session may hold, per host: `(pattern, sats)`, patterns as in
    /// `allowed_hosts` (`*` alone matches every host). A host no pattern matches, or one whose
    /// limit is 0, never has a session opened: its requests are paid one by one. Set by the
    /// operator only; nothing a call says raises it.
    pub session_deposits: Vec<(String, u64)>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            budget: Budget::default(),
            max_fee_sats: 10,
            allowed_hosts: Vec::new(),
            allow_private_networks: false,
            allow_insecure_http: false,
            dialects: Dialect::ALL.to_vec(),
            session_deposits: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether `host` may be sent requests and paid.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.is_empty()
            || self.allowed_hosts.iter().any(|pattern| {
                let pattern = pattern.to_ascii_lowercase();
                match pattern.strip_prefix("*.") {
                    Some(suffix) => host.ends_with(&format!(".{suffix}")),
                    None => host == pattern,
                }
            })
    }

    /// The most a prepaid session with `host` may hold (its deposit plus every top-up), in
    /// sats; 0: never open one. An exact name wins over `*.suffix`, the longest suffix over a
    /// shorter one, and either over `*`.
    pub fn session_deposit_sats(&self, host: &str) -> u64 {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut best: Option<(usize, u64)> = None;
        for (pattern, sats) in &self.session_deposits {
            let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
            let rank = if pattern == "*" {
                Some(0)
            } else if let Some(suffix) = pattern.strip_prefix("*.") {
                host.ends_with(&format!(".{suffix}"))
                    .then_some(1 + suffix.len())
            } else {
                (host == pattern).then_some(usize::MAX)
            };
            if let Some(rank) = rank
                && best.is_none_or(|(r, _)| rank > r)
            {
                best = Some((rank, *sats));
            }
        }
        best.map_or(0, |(_, sats)| sats)
    }

    /// The dialects one call may pay, in the order it prefers them: the policy's, or, when the
    /// call names some (`narrowed`), those of them the policy allows, in the call's order. A
    /// call narrows the policy, never widens it.
    pub fn dialects_for(&self, narrowed: Option<&[Dialect]>) -> Vec<Dialect> {
        let Some(narrowed) = narrowed else {
            return self.dialects.clone();
        };
        let mut out = Vec::new();
        for dialect in narrowed {
            if self.dialects.contains(dialect) && !out.contains(dialect) {
                out.push(*dialect);
            }
        }
        out
    }

    /// A copy whose per-request cap is at most `max_sats`: a caller may lower it, never raise it.
    pub fn capped(&self, max_sats: Option<u64>) -> Policy {
        let mut policy = self.clone();
        if let Some(max) = max_sats {
            policy.budget.per_request_sats = policy.budget.per_request_sats.min(max);
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_subdomain() {
        let policy = Policy {
            allowed_hosts: vec!["api.example.com".into(), "*.plannt.com".into()],
            ..Policy::default()
        };
        assert!(policy.host_allowed("api.example.com"));
        assert!(policy.host_allowed("API.example.com."));
        assert!(policy.host_allowed("x.plannt.com"));
        assert!(!policy.host_allowed("plannt.com"));
        assert!(!policy.host_allowed("evilplannt.com"));
        assert!(!policy.host_allowed("example.com"));
        assert!(Policy::default().host_allowed("anything"));
    }

    #[test]
    fn windows_read_as_the_ledgers_words() {
        let budget = Budget::default();
        let windows = budget.windows(100_000);
        assert_eq!(
            windows.map(|(w, _, _)| w.to_string()),
            ["hour", "day", "total"]
        );
        assert_eq!(windows[0].2, Some(100_000 - 3_600));
        assert_eq!(windows[2].2, None);
        assert_eq!(budget.window_secs(Window::Day), 86_400);
        assert_eq!(budget.window_secs(Window::Total), 0);
        assert_eq!(
            serde_json::to_value(Window::Hour).unwrap(),
            serde_json::json!("hour")
        );
        assert_eq!(format!("{:<6}|", Window::Day), "day   |");
    }

    #[test]
    fn a_call_narrows_the_dialects_never_widens_them() {
        let policy = Policy::default();
        assert_eq!(policy.dialects_for(None), Dialect::ALL);
        assert_eq!(
            policy.dialects_for(Some(&[Dialect::X402, Dialect::L402, Dialect::X402])),
            [Dialect::X402, Dialect::L402]
        );
        let mpp_only = Policy {
            dialects: vec![Dialect::Mpp],
            ..Policy::default()
        };
        assert_eq!(mpp_only.dialects_for(Some(&Dialect::ALL)), [Dialect::Mpp]);
        assert!(mpp_only.dialects_for(Some(&[Dialect::L402])).is_empty());
    }

    #[test]
    fn session_deposits_are_per_host_and_off_by_default() {
        assert_eq!(Policy::default().session_deposit_sats("api.example.com"), 0);
        let policy = Policy {
            session_deposits: vec![
                ("*".into(), 100),
                ("*.example.com".into(), 200),
                ("*.api.example.com".into(), 300),
                ("pay.api.example.com".into(), 0),
            ],
            ..Policy::default()
        };
        assert_eq!(policy.session_deposit_sats("other.org"), 100);
        assert_eq!(policy.session_deposit_sats("Api.Example.com."), 200);
        assert_eq!(policy.session_deposit_sats("x.api.example.com"), 300);
        assert_eq!(policy.session_deposit_sats("pay.api.example.com"), 0);
        let only_one = Policy {
            session_deposits: vec![("api.example.com".into(), 500)],
            ..Policy::default()
        };
        assert_eq!(only_one.session_deposit_sats("api.example.com"), 500);
        assert_eq!(only_one.session_deposit_sats("example.com"), 0);
    }

    #[test]
    fn a_cap_only_lowers() {
        let policy = Policy::default();
        assert_eq!(policy.capped(Some(10)).budget.per_request_sats, 10);
        assert_eq!(
            policy.capped(Some(1_000_000)).budget.per_request_sats,
            1_000
        );
        assert_eq!(policy.capped(None).budget.per_request_sats, 1_000);
    }
}
