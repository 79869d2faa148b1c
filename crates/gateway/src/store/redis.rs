//! The Redis spent set: one set shared by several gateway replicas.
//!
//! Redis is reached one of three ways, by the URL's scheme:
//! - `redis://[user:password@]host:port[/db]`: one Redis (or a proxy in front of several).
//! - `redis+cluster://[user:password@]host:port,host:port,…`: a Redis Cluster, through any of its
//!   nodes (the seeds); the client learns the rest and follows slot moves and failovers.
//! - `redis+sentinel://[user:password@]host:port,host:port,…/<primary name>[/db]`: the primary
//!   that the Sentinels at those addresses name, found again after a failover. The user and
//!   password are the primary's; the Sentinels are asked without one.
//!
//! Each payment hash is one key, `<prefix><hex hash>` (prefix `plannt:spent:` by default); on a
//! cluster the hash is a hash tag, `<prefix>{<hex hash>}`, so that every key of one payment hash
//! (a suffix such as `:kept` keeps the tag) lives in one slot, on one shard, where a script or
//! `MULTI` over them works. One Redis and Sentinel keep the untagged layout, so the spent tokens
//! of a gateway upgraded in place are still found. [`RedisStore::key`] builds every key; a
//! payment hash's kept answer is its key with `:kept` ([`RedisStore::kept_key`]).
//! - **claim** is `SET key <ticket hex> NX EX 300`: exactly one replica's `SET` creates the key.
//!   The pending claim expires after [`PENDING_TTL`], so a claim whose replica died mid-request
//!   lapses by itself and the token works again.
//! - **commit** is `SET key committed EXAT <until + 300>`, unconditionally ([`CLOCK_MARGIN`]):
//!   the response is on its way to the client, so the token must end up spent whatever the key
//!   holds by then. It may be missing (our pending claim lapsed because the upstream took longer
//!   than [`PENDING_TTL`], or Redis lost it) or hold another request's claim (made after ours
//!   lapsed). A commit that checked for its own ticket would leave the key to that other
//!   request, whose release would then free a token that has already been served. With a kept
//!   answer, `SET kept-key <sealed> EXAT <keep-until>` goes before it in the same pipeline, which
//!   Redis runs in order (on a cluster the two are one `MULTI`/`EXEC`): a commit is never
//!   without its kept answer.
//! - **release** is a Lua script that deletes the key only if it still holds our ticket, never a
//!   committed key or another request's claim.
//! - **lookup** is `GET key` and `GET kept-key` in one pipeline: a ticket is a claim in flight,
//!   `committed` a spent token, with its kept answer if that key is still there.
//! - **purge** does nothing: Redis drops committed keys itself at their `until`, kept answers at
//!   their keep-until.
//!
//! The earnings ledger ([`crate::ledger`]) lives beside the spent keys, under its own prefix
//! ([`RedisStore::ledger_prefix`]: `plannt:ledger:` for the default prefix), which every
//! replica shares: a hash per day, `<ledger prefix>day:<YYYYMMDD>`, whose fields
//! `<hour>|<event>|<detail>|<route>` count (`HINCRBY`) and, with `:sats`, add up sats, expiring
//! its retention after the day ends; and a list of the latest [`REDIS_PAYMENTS`] payments,
//! `<ledger prefix>payments`, newest first, pruned by time. A batch is one pipeline. On a
//! cluster every ledger key carries the hash tag `{ledger}`, so a batch goes to one shard.
//!
//! Claims and commits (and the session writes of redis_sessions.rs) of concurrent requests go
//! to one Redis, or through Sentinel, together: one pipeline a batch, not a round trip each
//! (redis_batch.rs). On a cluster each goes alone to its shard.
//!
//! Every command is bounded by a timeout (2 s by default): a Redis that is down or stalled makes
//! the store answer [`StoreError`] quickly, and the gateway fails closed with 503 instead of
//! hanging. The connection reconnects by itself once Redis is back (through Sentinel: to
//! whichever primary the Sentinels name by then).
//!
//! Durability is Redis's: a claim is acknowledged once the primary holds it in memory. For spent
//! tokens to survive a restart of Redis itself, run it with persistence (`appendonly yes`, and
//! `appendfsync always` to lose nothing on a power cut). Replication is asynchronous: a failover
//! may promote a replica that never got the last writes, and the tokens they spent work again.
//! [`RedisOptions::wait`] closes that window: claim and commit then answer only once `WAIT`
//! says that many replicas hold the write, and fail (the gateway fails closed) otherwise.
//!
//! TLS (`rediss://`) is not built in; reach a remote Redis over a private network or a tunnel.

use plannt_l402::PaymentHash;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError, RedisFuture,
    RedisResult, Script, ServerErrorKind, Value,
};

use super::redis_batch::{self, Batcher};
use super::{Claim, Keep, Lookup, PENDING_TTL, SpentStore, StoreError, Ticket};
use crate::ledger::{
    DAY, Event, LedgerBatch, LedgerRead, Payment, REDIS_PAYMENTS, Tally, hour_in, merge_tallies,
};

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

/// Counts one request in a quota window: `KEYS` the counter; `ARGV` its lifetime in seconds,
/// set when the window's first request creates it. Returns the count.
const COUNT_REQUEST: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
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
    /// Replicas that must hold a claim or commit before it answers; `None` answers once the
    /// primary holds it.
    pub wait: Option<WaitReplicas>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: RedisStore::DEFAULT_PREFIX.to_owned(),
            timeout: RedisStore::DEFAULT_TIMEOUT,
            wait: None,
        }
    }
}

/// `WAIT replicas timeout` after every claim and commit, on the connection (and so the shard)
/// that wrote it: fewer acknowledgements in time make the claim or commit fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitReplicas {
    /// How many replicas must acknowledge the write (at least 1).
    pub replicas: u32,
    /// How long Redis waits for them; must be shorter than [`RedisOptions::timeout`].
    pub timeout: Duration,
}

/// How a Redis URL reaches Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    /// `redis://`: one Redis.
    Single,
    /// `redis+cluster://`: a Redis Cluster.
    Cluster,
    /// `redis+sentinel://`: the primary that Sentinels name.
    Sentinel,
}

/// A Redis URL taken apart.
#[derive(Clone)]
enum Target {
    Single(String),
    Cluster {
        nodes: Vec<String>,
        user: Option<String>,
        password: Option<String>,
    },
    Sentinel {
        sentinels: Vec<(String, u16)>,
        primary: String,
        user: Option<String>,
        password: Option<String>,
        db: Option<i64>,
    },
}

impl Target {
    fn topology(&self) -> RedisTopology {
        match self {
            Target::Single(_) => RedisTopology::Single,
            Target::Cluster { .. } => RedisTopology::Cluster,
            Target::Sentinel { .. } => RedisTopology::Sentinel,
        }
    }

    fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected redis://, redis+cluster:// or redis+sentinel://")?;
        let expected = match scheme {
            "redis" => return Ok(Target::Single(url.to_owned())),
            "rediss" | "rediss+cluster" | "rediss+sentinel" => {
                return Err(
                    "TLS is not built in: use redis:// over a private network or a tunnel".into(),
                );
            }
            "redis+cluster" => "redis+cluster://[user:password@]host:port,host:port,…",
            "redis+sentinel" => {
                "redis+sentinel://[user:password@]host:port,host:port,…/<primary name>[/db]"
            }
            _ => {
                return Err(format!(
                    "unknown scheme {scheme:?}: expected redis://, redis+cluster:// or redis+sentinel://"
                ));
            }
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                // Percent-decoding (a `+` stays a `+`).
                let decode = |s: &str| {
                    let s = s.replace('+', "%2B");
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                let user = (!user.is_empty()).then(|| decode(user));
                (user, password.map(decode))
            }
        };
        let mut addresses = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            let (name, port) = host
                .rsplit_once(':')
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| format!("{host:?} is not host:port (expected {expected})"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{host:?} has no valid port (expected {expected})"))?;
            // An IPv6 address comes in brackets: `[::1]:26379`.
            let name = name.trim_start_matches('[').trim_end_matches(']');
            addresses.push((name.to_owned(), port));
        }
        if scheme == "redis+cluster" {
            if !path.is_empty() {
                return Err(format!(
                    "a cluster has only database 0: drop /{path} (expected {expected})"
                ));
            }
            let nodes = addresses
                .iter()
                .map(|(host, port)| match host.contains(':') {
                    true => format!("redis://[{host}]:{port}"),
                    false => format!("redis://{host}:{port}"),
                })
                .collect();
            return Ok(Target::Cluster {
                nodes,
                user,
                password,
            });
        }
        let mut parts = path.split('/');
        let primary = parts.next().unwrap_or("").to_owned();
        if primary.is_empty() {
            return Err(format!("no primary name (expected {expected})"));
        }
        let db =
            match parts.next() {
                None | Some("") => None,
                Some(db) => Some(db.parse().map_err(|_| {
                    format!("database {db:?} is not a number (expected {expected})")
                })?),
            };
        if parts.next().is_some() {
            return Err(format!("too many path parts (expected {expected})"));
        }
        Ok(Target::Sentinel {
            sentinels: addresses,
            primary,
            user,
            password,
            db,
        })
    }
}

/// A connection of any of the three kinds, which the commands below use alike.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Follower),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
            Connection::Sentinel(follower) => Box::pin(async move {
                let (mut conn, generation) = follower.connection().await?;
                let reply = conn.req_packed_command(cmd).await;
                follower.check(&reply, generation);
                reply
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel(follower) => Box::pin(async move {
                let (mut conn, generation) = follower.connection().await?;
                let reply = conn.req_packed_commands(pipeline, offset, count).await;
                follower.check(&reply, generation);
                reply
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
            Connection::Sentinel(follower) => follower.0.db,
        }
    }
}

/// A connection to whichever server the Sentinels name primary: found when first needed, and
/// found again after an error that says the primary is gone (the connection broke or was
/// refused, or the server has become a read-only replica).
#[derive(Clone)]
pub(super) struct Follower(Arc<Followed>);

struct Followed {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The primary's connection, with a number that changes each time it is replaced.
    current: Mutex<(Option<MultiplexedConnection>, u64)>,
    config: AsyncConnectionConfig,
    db: i64,
}

impl Follower {
    fn current(&self) -> Option<(MultiplexedConnection, u64)> {
        let current = self.0.current.lock().unwrap_or_else(|e| e.into_inner());
        current.0.clone().map(|conn| (conn, current.1))
    }

    /// The primary's connection, asking the Sentinels for the primary if there is none.
    async fn connection(&self) -> RedisResult<(MultiplexedConnection, u64)> {
        if let Some(found) = self.current() {
            return Ok(found);
        }
        let mut sentinel = self.0.sentinel.lock().await;
        // Another request may have found it while this one waited.
        if let Some(found) = self.current() {
            return Ok(found);
        }
        // The Sentinels name the primary, which is asked (ROLE) whether it is one.
        let client = sentinel.async_get_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.0.config)
            .await?;
        let mut current = self.0.current.lock().unwrap_or_else(|e| e.into_inner());
        current.0 = Some(conn.clone());
        current.1 += 1;
        Ok((conn, current.1))
    }

    /// Forgets the connection numbered `generation` if `reply` says its server is no primary
    /// any more, or gone.
    fn check<T>(&self, reply: &RedisResult<T>, generation: u64) {
        let Err(e) = reply else { return };
        let gone = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly);
        if gone {
            let mut current = self.0.current.lock().unwrap_or_else(|e| e.into_inner());
            if current.1 == generation {
                current.0 = None;
            }
        }
    }
}

/// A spent set in Redis. See the [module docs](self). Clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    pub(super) conn: Connection,
    prefix: String,
    /// Whether the payment hash in a key is a hash tag (on a cluster).
    pub(super) tagged: bool,
    timeout: Duration,
    wait: Option<WaitReplicas>,
    /// The writes of concurrent requests, sent together; `None` on a cluster.
    batcher: Option<Batcher>,
    /// The URL without its password, for error messages.
    pub(super) shown: String,
    release: Script,
    count_request: Script,
}

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &str = "plannt:spent:";
    /// The default bound on every command.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to `url` (see the [module docs](self) for the three kinds) with the default
    /// options.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisOptions::default()).await
    }

    /// How `url` reaches Redis, or why it cannot be used: checks the URL without connecting.
    pub fn topology(url: &str) -> Result<RedisTopology, StoreError> {
        Target::parse(url)
            .map(|target| target.topology())
            .map_err(|why| StoreError::BadUrl {
                url: redact(url),
                why,
            })
    }

    /// Connects to `url` with `options`. Fails if Redis does not answer within the timeout.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let shown = redact(url);
        let bad = |why: String| StoreError::BadUrl {
            url: shown.clone(),
            why,
        };
        let target = Target::parse(url).map_err(bad)?;
        if let Some(wait) = &options.wait
            && (wait.replicas == 0 || wait.timeout.is_zero() || wait.timeout >= options.timeout)
        {
            return Err(StoreError::Setting(format!(
                "waiting for replicas needs at least 1 replica and a wait of at least 1 ms, \
                 shorter than the command timeout ({:?}); got {} replicas, {:?}",
                options.timeout, wait.replicas, wait.timeout
            )));
        }
        let tagged = matches!(target, Target::Cluster { .. });
        if tagged && options.prefix.contains(['{', '}']) {
            return Err(StoreError::Setting(format!(
                "the key prefix {:?} holds {{ or }}: on a cluster the payment hash is the key's \
                 hash tag, so the prefix must hold neither",
                options.prefix
            )));
        }
        let unreachable = |why: String| StoreError::Unreachable {
            url: shown.clone(),
            why,
        };
        let connecting = async |target: Target| -> Result<Connection, StoreError> {
            match target {
                Target::Single(url) => {
                    let client = redis::Client::open(url.as_str())
                        .map_err(|e| bad(format!("{e} (expected redis://host:port[/db])")))?;
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(options.timeout))
                        .set_response_timeout(Some(options.timeout))
                        // Reconnect soon after Redis comes back; a request never waits on these
                        // retries longer than its own timeout.
                        .set_number_of_retries(3)
                        .set_min_delay(Duration::from_millis(50))
                        .set_max_delay(Duration::from_millis(500));
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map(Connection::Single)
                        .map_err(|e| unreachable(e.to_string()))
                }
                Target::Cluster {
                    nodes,
                    user,
                    password,
                } => {
                    let mut builder = redis::cluster::ClusterClient::builder(nodes)
                        .connection_timeout(options.timeout)
                        .response_timeout(options.timeout)
                        .retries(3)
                        .min_retry_wait(50)
                        .max_retry_wait(500);
                    if let Some(user) = user {
                        builder = builder.username(user);
                    }
                    if let Some(password) = password {
                        builder = builder.password(password);
                    }
                    let client = builder.build().map_err(|e| bad(e.to_string()))?;
                    client
                        .get_async_connection()
                        .await
                        .map(Connection::Cluster)
                        .map_err(|e| unreachable(e.to_string()))
                }
                Target::Sentinel {
                    sentinels,
                    primary,
                    user,
                    password,
                    db,
                } => {
                    let addresses = sentinels
                        .into_iter()
                        .map(|(host, port)| ConnectionAddr::Tcp(host, port));
                    let mut builder =
                        SentinelClientBuilder::new(addresses, &primary, SentinelServerType::Master)
                            .map_err(|e| bad(e.to_string()))?;
                    if let Some(user) = user {
                        builder = builder.set_client_to_redis_username(user);
                    }
                    if let Some(password) = password {
                        builder = builder.set_client_to_redis_password(password);
                    }
                    if let Some(db) = db {
                        builder = builder.set_client_to_redis_db(db);
                    }
                    let sentinel = builder.build().map_err(|e| bad(e.to_string()))?;
                    let follower = Follower(Arc::new(Followed {
                        sentinel: tokio::sync::Mutex::new(sentinel),
                        current: Mutex::new((None, 0)),
                        config: AsyncConnectionConfig::new()
                            .set_connection_timeout(Some(options.timeout))
                            .set_response_timeout(Some(options.timeout)),
                        db: db.unwrap_or(0),
                    }));
                    follower
                        .connection()
                        .await
                        .map_err(|e| unreachable(e.to_string()))?;
                    Ok(Connection::Sentinel(follower))
                }
            }
        };
        let connect =
            async |target: Target| match tokio::time::timeout(options.timeout, connecting(target))
                .await
            {
                Ok(conn) => conn,
                Err(_) => Err(unreachable(format!(
                    "no answer within {:?}",
                    options.timeout
                ))),
            };
        let conn = connect(target.clone()).await?;
        // The batched writes get a connection of their own: a batch's `WAIT` blocks the
        // connection it is sent on until replicas acknowledge, and the lookups, ledger writes
        // and scripts on the other need not wait for it.
        let batcher = if tagged {
            None
        } else {
            Some(Batcher::spawn(connect(target).await?, options.wait))
        };
        let store = RedisStore {
            conn,
            prefix: options.prefix,
            tagged,
            timeout: options.timeout,
            wait: options.wait,
            batcher,
            shown,
            release: Script::new(RELEASE),
            count_request: Script::new(COUNT_REQUEST),
        };
        store.health().await?;
        Ok(store)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of a payment hash: `<prefix><hex>`, or `<prefix>{<hex>}` on a cluster. Every
    /// other key of the same payment hash is this one with a suffix, so that on a cluster it
    /// carries the same hash tag and lives on the same shard.
    pub fn key(&self, payment_hash: &PaymentHash) -> String {
        let hash = payment_hash.to_hex();
        if self.tagged {
            format!("{}{{{hash}}}", self.prefix)
        } else {
            format!("{}{hash}", self.prefix)
        }
    }

    /// Where the ledger's keys start: the spent prefix with a trailing `spent:` turned into
    /// `ledger:` (`plannt:ledger:` by default), else the spent prefix and `ledger:`; on a
    /// cluster followed by the hash tag `{ledger}`.
    pub fn ledger_prefix(&self) -> String {
        let base = match self.prefix.strip_suffix("spent:") {
            Some(stem) => format!("{stem}ledger:"),
            None => format!("{}ledger:", self.prefix),
        };
        if self.tagged {
            format!("{base}{{ledger}}:")
        } else {
            base
        }
    }

    fn day_key(&self, day: u64) -> String {
        let date = crate::ledger::day_of(day * DAY).replace('-', "");
        format!("{}day:{date}", self.ledger_prefix())
    }

    fn payments_key(&self) -> String {
        format!("{}payments", self.ledger_prefix())
    }

    /// The key of a payment hash's kept answer: its spent key and a suffix, so both can be
    /// placed together (a Redis Cluster hash tag around the hex hash puts them on one shard).
    /// The key of a quota counter: beside the spent keys, never under their prefix (which
    /// [`SpentStore::len`] counts): `plannt:quota:…` for the default `plannt:spent:`.
    pub fn quota_key(&self, key: &str) -> String {
        match self.prefix.strip_suffix("spent:") {
            Some(base) => format!("{base}quota:{key}"),
            None => format!("quota:{}{key}", self.prefix),
        }
    }

    /// The key of a payment hash's kept answer, from the payment hash's [`key`](Self::key).
    fn kept_key(key: &str) -> String {
        format!("{key}{KEPT_SUFFIX}")
    }

    /// Runs one Redis call under the timeout, naming `what` in the error.
    pub(super) async fn bounded<T>(
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

    /// Runs a write, `cmds`, followed by `WAIT` when replicas must acknowledge it, and answers
    /// the replies of `cmds`, one a command. On one Redis or through Sentinel the write goes
    /// with those of other requests in one pipeline (redis_batch.rs); on a cluster it goes alone
    /// to the shard of its keys, and `WAIT` (which has none) goes with it.
    pub(super) async fn acknowledged(
        &self,
        what: &'static str,
        cmds: Vec<Cmd>,
    ) -> Result<Vec<Value>, StoreError> {
        let sent = async {
            let replies = match &self.batcher {
                Some(batcher) => batcher.send(cmds).await?,
                None => redis_batch::send(&mut self.conn.clone(), self.wait, cmds).await?,
            };
            match server_error(&replies.values) {
                Some(e) => Err(e),
                None => Ok(replies),
            }
        };
        let replies = self.bounded(what, sent).await?;
        if let Some(wait) = &self.wait {
            let acked = match replies.acked {
                Some(Value::Int(n)) => n,
                other => {
                    return Err(StoreError::Unexpected(format!(
                        "Redis at {} answered WAIT after {what} with {other:?}",
                        self.shown
                    )));
                }
            };
            if acked < i64::from(wait.replicas) {
                return Err(StoreError::NotReplicated {
                    url: self.shown.clone(),
                    what,
                    acked: acked.max(0) as u64,
                    wanted: wait.replicas,
                    timeout: wait.timeout,
                });
            }
        }
        Ok(replies.values)
    }

    /// The primaries of a cluster, as `(host, port)`; empty on one Redis or Sentinel.
    async fn primaries(&self) -> Result<Vec<(String, u16)>, StoreError> {
        let Connection::Cluster(conn) = &self.conn else {
            return Ok(Vec::new());
        };
        let mut conn = conn.clone();
        let nodes: String = self
            .bounded(
                "a look at the cluster (CLUSTER NODES)",
                redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn),
            )
            .await?;
        Ok(cluster_primaries(&nodes))
    }

    /// Counts this store's keys with `SCAN`, on `node` of a cluster or on the one server.
    async fn count(
        &self,
        conn: &mut Connection,
        node: Option<RoutingInfo>,
    ) -> Result<u64, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor = 0u64;
        let mut count = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let reply = match (&mut *conn, &node) {
                (Connection::Cluster(cluster), Some(node)) => {
                    let call = cluster.route_command(cmd, node.clone());
                    self.bounded("a count (SCAN)", call).await?
                }
                (conn, _) => {
                    self.bounded("a count (SCAN)", cmd.query_async(conn))
                        .await?
                }
            };
            let (next, keys): (u64, Vec<Value>) = redis::from_redis_value(reply).map_err(|e| {
                StoreError::Unexpected(format!(
                    "Redis at {} answered a count (SCAN) with something else: {e}",
                    self.shown
                ))
            })?;
            // Kept answers go with their spent keys: counted once, as those. The ledger's keys
            // are not spent entries (they share the prefix only when it does not end in
            // `spent:`).
            let ledger = self.ledger_prefix();
            count += keys
                .iter()
                .filter(|k| {
                    !matches!(k, Value::BulkString(k)
                        if k.ends_with(KEPT_SUFFIX.as_bytes()) || k.starts_with(ledger.as_bytes()))
                })
                .count() as u64;
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
    }
}

/// The primaries that serve slots, from `CLUSTER NODES`' answer: lines of
/// `<id> <ip:port@bus[,hostname]> <flags> <primary> <ping> <pong> <epoch> <link> <slot>…`.
fn cluster_primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serves = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| matches!(f, "fail" | "noaddr"))
                && fields.len() > 8;
            if !serves {
                return None;
            }
            let address = fields[1].split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

#[async_trait]
impl SpentStore for RedisStore {
    async fn claim(&self, payment_hash: &PaymentHash, _until: u64) -> Result<Claim, StoreError> {
        let ticket = Ticket::new();
        let mut set = redis::cmd("SET");
        set.arg(self.key(payment_hash))
            .arg(ticket.to_hex())
            .arg("NX")
            .arg("EX")
            .arg(PENDING_TTL.as_secs());
        let replies = match self.acknowledged("a claim (SET NX)", vec![set]).await {
            Ok(replies) => replies,
            Err(e @ StoreError::NotReplicated { .. }) => {
                // Not won: give the claim back (if it was ours) rather than strand the token
                // until it lapses. Failing that, it lapses.
                let _ = self.release(payment_hash, &ticket).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        match replies.as_slice() {
            [Value::Okay] => Ok(Claim::Won(ticket)),
            [Value::Nil] => Ok(Claim::Spent),
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
        let key = self.key(payment_hash);
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(COMMITTED).arg("EXAT").arg(
            until
                .saturating_add(CLOCK_MARGIN.as_secs())
                .clamp(1, MAX_EXAT),
        );
        let Some(keep) = keep else {
            self.acknowledged("a commit (SET EXAT)", vec![set]).await?;
            return Ok(());
        };
        // The kept answer first, then the commit: no state of Redis (a replica's, or one
        // restored from its log, included) may hold the commit without its kept answer. A kept
        // answer without its commit is never read (the key is still a claim) and expires by
        // itself. On one Redis or through Sentinel the two go in order in one pipeline on one
        // connection, which Redis runs and replicates in order. On a cluster they are one
        // MULTI/EXEC: while a slot moves to another shard, a pipeline's commands may be
        // redirected one by one there, where a transaction is refused whole. WAIT, when it
        // follows, waits for both.
        let mut keep_set = redis::cmd("SET");
        keep_set
            .arg(Self::kept_key(&key))
            .arg(keep.sealed)
            .arg("EXAT")
            .arg(keep.until.clamp(1, MAX_EXAT));
        let replies = if matches!(self.conn, Connection::Cluster(_)) {
            let cmds = vec![redis::cmd("MULTI"), keep_set, set, redis::cmd("EXEC")];
            let mut replies = self
                .acknowledged("a commit with its kept answer (MULTI)", cmds)
                .await?;
            match replies.pop() {
                Some(Value::Array(done)) => done,
                other => vec![other.unwrap_or(Value::Nil)],
            }
        } else {
            let cmds = vec![keep_set, set];
            self.acknowledged("a commit with its kept answer (SET, SET)", cmds)
                .await?
        };
        if !matches!(replies.as_slice(), [Value::Okay, Value::Okay]) {
            return Err(StoreError::Unexpected(format!(
                "Redis at {} answered a commit with its kept answer with {replies:?}",
                self.shown
            )));
        }
        Ok(())
    }

    async fn lookup(&self, payment_hash: &PaymentHash, _now: u64) -> Result<Lookup, StoreError> {
        let key = self.key(payment_hash);
        let mut both = redis::pipe();
        both.cmd("GET")
            .arg(&key)
            .cmd("GET")
            .arg(Self::kept_key(&key));
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
        invocation.key(self.key(payment_hash)).arg(ticket.to_hex());
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
        let primaries = self.primaries().await?;
        if primaries.is_empty() {
            let mut conn = self.conn.clone();
            return self.count(&mut conn, None).await;
        }
        // A cluster: each primary holds its own slots' keys.
        let mut total = 0;
        for (host, port) in primaries {
            let mut conn = self.conn.clone();
            total += self
                .count(
                    &mut conn,
                    Some(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host,
                        port,
                    })),
                )
                .await?;
        }
        Ok(total)
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

    async fn count_request(&self, key: &str, window_secs: u64) -> Result<Option<u64>, StoreError> {
        let mut invocation = self.count_request.prepare_invoke();
        invocation.key(self.quota_key(key)).arg(window_secs.max(1));
        let mut conn = self.conn.clone();
        let count: u64 = self
            .bounded(
                "a request count (script)",
                invocation.invoke_async(&mut conn),
            )
            .await?;
        Ok(Some(count))
    }

    async fn record(&self, batch: &LedgerBatch) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        let mut days = Vec::new();
        for t in &batch.tallies {
            let day = t.hour / DAY;
            let key = self.day_key(day);
            let field = format!("{}|{}|{}|{}", t.hour, t.event.as_str(), t.detail, t.route);
            pipe.cmd("HINCRBY")
                .arg(&key)
                .arg(&field)
                .arg(t.count)
                .ignore();
            if t.sats > 0 {
                pipe.cmd("HINCRBY")
                    .arg(&key)
                    .arg(format!("{field}:sats"))
                    .arg(t.sats)
                    .ignore();
            }
            if !days.contains(&day) {
                days.push(day);
            }
        }
        for day in days {
            let expire = ((day + 1) * DAY)
                .saturating_add(batch.retention.as_secs())
                .clamp(1, MAX_EXAT);
            pipe.cmd("EXPIREAT")
                .arg(self.day_key(day))
                .arg(expire)
                .ignore();
        }
        if !batch.payments.is_empty() {
            let key = self.payments_key();
            // One `LPUSH` for the batch: its values go in at the head one after another, the
            // last one first, as separate pushes would leave them.
            let push = pipe.cmd("LPUSH").arg(&key);
            for p in &batch.payments {
                let json = serde_json::to_string(p).map_err(|e| {
                    StoreError::Unexpected(format!("cannot write a payment as JSON: {e}"))
                })?;
                push.arg(json);
            }
            push.ignore();
            pipe.cmd("LTRIM")
                .arg(&key)
                .arg(0)
                .arg(REDIS_PAYMENTS - 1)
                .ignore();
        }
        let mut conn = self.conn.clone();
        self.bounded(
            "a ledger write (HINCRBY, LPUSH)",
            pipe.query_async::<()>(&mut conn),
        )
        .await
    }

    async fn ledger(
        &self,
        since: u64,
        until: u64,
        recent: usize,
    ) -> Result<LedgerRead, StoreError> {
        let first = since / DAY;
        let last = until.saturating_sub(1) / DAY;
        // At most a year and a day of hashes: the retention is 90 days by default.
        let first = first.max(last.saturating_sub(366));
        let mut pipe = redis::pipe();
        for day in first..=last {
            pipe.cmd("HGETALL").arg(self.day_key(day));
        }
        pipe.cmd("LRANGE")
            .arg(self.payments_key())
            .arg(0)
            .arg(REDIS_PAYMENTS - 1);
        let mut conn = self.conn.clone();
        let mut replies: Vec<Value> = self
            .bounded(
                "a ledger read (HGETALL, LRANGE)",
                pipe.query_async(&mut conn),
            )
            .await?;
        let unexpected = |e: redis::ParsingError| {
            StoreError::Unexpected(format!(
                "Redis at {} answered a ledger read with something else: {e}",
                self.shown
            ))
        };
        let listed = replies.pop().unwrap_or(Value::Nil);
        let mut sums: std::collections::HashMap<String, (u64, u64)> = Default::default();
        for reply in replies {
            let fields: std::collections::HashMap<String, u64> =
                redis::from_redis_value(reply).map_err(unexpected)?;
            for (field, n) in fields {
                match field.strip_suffix(":sats") {
                    Some(base) => sums.entry(base.to_owned()).or_default().1 += n,
                    None => sums.entry(field).or_default().0 += n,
                }
            }
        }
        let tallies = sums.into_iter().filter_map(|(field, (count, sats))| {
            let mut parts = field.splitn(4, '|');
            let hour: u64 = parts.next()?.parse().ok()?;
            let event = Event::parse(parts.next()?)?;
            let detail = parts.next()?.to_owned();
            let route = parts.next()?.to_owned();
            hour_in(hour, since, until).then_some(Tally {
                hour,
                route,
                event,
                detail,
                count,
                sats,
            })
        });
        let listed: Vec<String> = redis::from_redis_value(listed).map_err(unexpected)?;
        let payments = listed
            .iter()
            .filter_map(|json| serde_json::from_str::<Payment>(json).ok())
            .filter(|p| p.at >= since && p.at < until)
            .take(recent)
            .collect();
        Ok(LedgerRead {
            tallies: merge_tallies(tallies),
            payments,
        })
    }

    async fn prune_ledger(&self, before: u64) -> Result<u64, StoreError> {
        // Day hashes expire by themselves; the list drops its payments from before `before`,
        // which are at its end (newest first).
        let key = self.payments_key();
        let mut conn = self.conn.clone();
        let listed: Vec<String> = self
            .bounded(
                "a ledger prune (LRANGE)",
                redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(REDIS_PAYMENTS - 1)
                    .query_async(&mut conn),
            )
            .await?;
        let keep = listed
            .iter()
            .take_while(|json| {
                serde_json::from_str::<Payment>(json).map_or(true, |p| p.at >= before)
            })
            .count();
        let gone = listed.len() - keep;
        if gone > 0 {
            // From the tail, counted from the end: payments pushed meanwhile (at the head) stay.
            let mut conn = self.conn.clone();
            let trim = redis::cmd("LTRIM")
                .arg(&key)
                .arg(0)
                .arg(-(gone as i64) - 1)
                .to_owned();
            self.bounded("a ledger prune (LTRIM)", trim.query_async::<()>(&mut conn))
                .await?;
        }
        // A day's hash goes by itself, its retention after the day ends.
        Ok(gone as u64)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// The first error Redis answered among `values`, or inside one of them (an array's items).
fn server_error(values: &[Value]) -> Option<RedisError> {
    values.iter().find_map(|value| match value {
        Value::ServerError(e) => Some(RedisError::from(e.clone())),
        Value::Array(items) => server_error(items),
        _ => None,
    })
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

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn cluster_and_sentinel_urls_are_taken_apart() {
        let Ok(Target::Cluster {
            nodes,
            user,
            password,
        }) = Target::parse("redis+cluster://app:p%40ss+1@10.0.0.1:7000,[::1]:7001")
        else {
            panic!("a cluster URL");
        };
        assert_eq!(nodes, ["redis://10.0.0.1:7000", "redis://[::1]:7001"]);
        assert_eq!(
            (user.as_deref(), password.as_deref()),
            (Some("app"), Some("p@ss+1"))
        );
        let Ok(Target::Sentinel {
            sentinels,
            primary,
            user,
            password,
            db,
        }) = Target::parse("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/3")
        else {
            panic!("a Sentinel URL");
        };
        assert_eq!(
            sentinels,
            [("s1".to_owned(), 26379), ("s2".to_owned(), 26380)]
        );
        assert_eq!(
            (primary.as_str(), user, password.as_deref(), db),
            ("mymaster", None, Some("pw"), Some(3))
        );
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/2"),
            Ok(Target::Single(_))
        ));
    }
}
