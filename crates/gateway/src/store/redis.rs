//! The Redis spent set: one set shared by several gateway replicas.
//!
//! Each payment hash is one key, `<prefix><hex hash>` (prefix `plannt:spent:` by default), and
//! its kept answer another, `<prefix><hex hash>:kept`; both are made by one function each
//! ([`RedisStore::key`], [`RedisStore::kept_key`]):
//! - **claim** is `SET key <ticket hex> NX EX 300`: exactly one replica's `SET` creates the key.
//!   The pending claim expires after [`PENDING_TTL`], so a claim whose replica died mid-request
//!   lapses by itself and the token works again.
//! - **commit** is `SET key committed EXAT <until + 300>`, unconditionally ([`CLOCK_MARGIN`]),
//!   and with a kept answer, in the same `MULTI`/`EXEC` (one round trip, applied whole or not at
//!   all), `SET kept-key <sealed> EXAT <keep-until>`: the response is on its way
//!   to the client, so the token must end up spent whatever the key holds by then. It may be
//!   missing (our pending claim lapsed because the upstream took longer than [`PENDING_TTL`], or
//!   Redis lost it) or hold another request's claim (made after ours lapsed). A commit that
//!   checked for its own ticket would leave the key to that other request, whose release would
//!   then free a token that has already been served.
//! - **release** is a Lua script that deletes the key only if it still holds our ticket, never a
//!   committed key or another request's claim.
//! - **lookup** is `GET key` and `GET kept-key` in one pipeline: a ticket is a claim in flight,
//!   `committed` a spent token, with its kept answer if that key is still there.
//! - **purge** does nothing: Redis drops committed keys itself at their `until`, kept answers at
//!   their keep-until.
//!
//! Every command is bounded by a timeout (2 s by default): a Redis that is down or stalled makes
//! the store answer [`StoreError`] quickly, and the gateway fails closed with 503 instead of
//! hanging. The [`ConnectionManager`] reconnects by itself once Redis is back.
//!
//! Durability is Redis's: a claim is acknowledged once Redis holds it in memory. For spent tokens
//! to survive a restart of Redis itself, run it with persistence (`appendonly yes`, and
//! `appendfsync always` to lose nothing on a power cut).
//!
//! TLS (`rediss://`) is not built in; reach a remote Redis over a private network or a tunnel.

use plannt_l402::PaymentHash;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value};

use super::{Claim, Keep, Lookup, PENDING_TTL, SpentStore, StoreError, Ticket};

/// How long a committed key outlives its `until`: Redis expires keys by its own clock, and
/// replicas verify tokens by theirs, so clocks that differ by less than this never let a key go
/// while a replica would still accept its token.
pub const CLOCK_MARGIN: Duration = Duration::from_secs(300);

/// The value of a committed key.
const COMMITTED: &str = "committed";

/// What follows the spent key's name in its kept answer's key.
const KEPT_SUFFIX: &str = ":kept";

/// Deletes the key only while it holds this request's ticket.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// The latest expiry Redis accepts without overflow, with room to spare (year 9999).
const MAX_EXAT: u64 = 253_402_300_799;

/// How a [`RedisStore`] connects.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Put before each hex payment hash to make the key, so several gateways (or other programs)
    /// can share one Redis database.
    pub prefix: String,
    /// The most any one command (or a connection attempt) may take before it fails.
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: RedisStore::DEFAULT_PREFIX.to_owned(),
            timeout: RedisStore::DEFAULT_TIMEOUT,
        }
    }
}

/// A spent set in Redis. See the [module docs](self).
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    /// The URL without its password, for error messages.
    shown: String,
    release: Script,
}

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &str = "plannt:spent:";
    /// The default bound on every command.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to `redis://[user:password@]host:port[/db]` with the default options.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisOptions::default()).await
    }

    /// Connects to `url` with `options`. Fails if Redis does not answer within the timeout.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|e| {
            let hint = if url.starts_with("rediss:") {
                " (TLS is not built in: use redis:// over a private network or a tunnel)"
            } else {
                " (expected redis://host:port[/db])"
            };
            StoreError::BadUrl {
                url: shown.clone(),
                why: format!("{e}{hint}"),
            }
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            // Reconnect soon after Redis comes back; a request never waits on these retries
            // longer than its own timeout.
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = match tokio::time::timeout(
            options.timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(StoreError::Unreachable {
                    url: shown,
                    why: e.to_string(),
                });
            }
            Err(_) => {
                return Err(StoreError::Unreachable {
                    url: shown,
                    why: format!("no answer within {:?}", options.timeout),
                });
            }
        };
        let store = RedisStore {
            conn,
            prefix: options.prefix,
            timeout: options.timeout,
            shown,
            release: Script::new(RELEASE),
        };
        store.health().await?;
        Ok(store)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of a payment hash's claim or commit. Every key of the store is made here or in
    /// [`kept_key`](Self::kept_key).
    fn key(&self, payment_hash: &PaymentHash) -> String {
        format!("{}{}", self.prefix, hex::encode(payment_hash))
    }

    /// The key of a payment hash's kept answer: its spent key and a suffix, so both can be
    /// placed together (a Redis Cluster hash tag around the hex hash puts them on one shard).
    fn kept_key(&self, payment_hash: &PaymentHash) -> String {
        format!("{}{KEPT_SUFFIX}", self.key(payment_hash))
    }

    /// Runs one Redis call under the timeout, naming `what` in the error.
    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let timed_out = || StoreError::Timeout {
            url: self.shown.clone(),
            what,
            timeout: self.timeout,
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            // The client's own response timeout, the same bound as ours.
            Ok(Err(e)) if e.is_timeout() => Err(timed_out()),
            Ok(Err(e)) => Err(StoreError::Redis {
                url: self.shown.clone(),
                what,
                source: std::sync::Arc::new(e),
            }),
            Err(_) => Err(timed_out()),
        }
    }
}

#[async_trait]
impl SpentStore for RedisStore {
    async fn claim(&self, payment_hash: &PaymentHash, _until: u64) -> Result<Claim, StoreError> {
        let ticket = Ticket::new();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(payment_hash))
            .arg(hex::encode(ticket.0))
            .arg("NX")
            .arg("EX")
            .arg(PENDING_TTL.as_secs());
        let mut conn = self.conn.clone();
        let reply: Value = self
            .bounded("a claim (SET NX)", cmd.query_async(&mut conn))
            .await?;
        match reply {
            Value::Okay => Ok(Claim::Won(ticket)),
            Value::Nil => Ok(Claim::Spent),
            other => Err(StoreError::Unexpected(format!(
                "Redis at {} answered a claim (SET NX) with {other:?}",
                self.shown
            ))),
        }
    }

    async fn commit(
        &self,
        payment_hash: &PaymentHash,
        _ticket: &Ticket,
        until: u64,
        keep: Option<Keep>,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(payment_hash))
            .arg(COMMITTED)
            .arg("EXAT")
            .arg(
                until
                    .saturating_add(CLOCK_MARGIN.as_secs())
                    .clamp(1, MAX_EXAT),
            );
        let mut conn = self.conn.clone();
        let Some(keep) = keep else {
            return self
                .bounded("a commit (SET EXAT)", cmd.exec_async(&mut conn))
                .await;
        };
        let mut kept = redis::cmd("SET");
        kept.arg(self.kept_key(payment_hash))
            .arg(keep.sealed)
            .arg("EXAT")
            .arg(keep.until.clamp(1, MAX_EXAT));
        let mut both = redis::pipe();
        both.atomic()
            .add_command(cmd)
            .ignore()
            .add_command(kept)
            .ignore();
        self.bounded(
            "a commit with its kept answer (MULTI SET SET EXEC)",
            both.exec_async(&mut conn),
        )
        .await
    }

    async fn lookup(&self, payment_hash: &PaymentHash, _now: u64) -> Result<Lookup, StoreError> {
        let mut both = redis::pipe();
        both.cmd("GET")
            .arg(self.key(payment_hash))
            .cmd("GET")
            .arg(self.kept_key(payment_hash));
        let mut conn = self.conn.clone();
        let (state, kept): (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .bounded("a lookup (GET GET)", both.query_async(&mut conn))
            .await?;
        // The kept key expires at its keep-until by Redis's clock; the gateway checks the
        // keep-until sealed inside it by its own.
        Ok(match state {
            None => Lookup::Unknown,
            Some(value) if value == COMMITTED.as_bytes() => match kept {
                Some(sealed) => Lookup::Kept(sealed),
                None => Lookup::Committed,
            },
            Some(_) => Lookup::Pending,
        })
    }

    async fn release(&self, payment_hash: &PaymentHash, ticket: &Ticket) -> Result<(), StoreError> {
        let mut invocation = self.release.prepare_invoke();
        invocation
            .key(self.key(payment_hash))
            .arg(hex::encode(ticket.0));
        let mut conn = self.conn.clone();
        let _deleted: i64 = self
            .bounded("a release (script)", invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn purge(&self, _now: u64) -> Result<u64, StoreError> {
        // Redis expires committed keys at `until` and pending ones after PENDING_TTL.
        Ok(0)
    }

    async fn len(&self) -> Result<u64, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut conn = self.conn.clone();
        let mut cursor = 0u64;
        let mut count = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .bounded("a count (SCAN)", cmd.query_async(&mut conn))
                .await?;
            // Kept answers go with their spent keys: counted once, as those.
            count += keys
                .iter()
                .filter(|k| !k.ends_with(KEPT_SUFFIX.as_bytes()))
                .count() as u64;
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
    }

    async fn health(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pong: String = self
            .bounded(
                "a health check (PING)",
                redis::cmd("PING").query_async(&mut conn),
            )
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unexpected(format!(
                "Redis at {} answered PING with {pong:?}",
                self.shown
            )))
        }
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// The URL with its password replaced by `***`.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Escapes Redis glob characters, so a prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
