//! Prepaid session balances in Redis: one set of balances shared by every gateway replica, so
//! that a session opened on one replica is spent, topped up and closed on any other.
//!
//! Redis is reached as the spent set reaches it ([`RedisStore`]: one Redis, a Cluster or the
//! primary Sentinels name), on a connection of its own, with the same timeout and the same
//! replica wait ([`super::RedisOptions::wait`]).
//!
//! **Keys.** Beside the spent keys, never under their prefix: for the default `plannt:spent:`,
//! - `plannt:session:<id hex>`: a hash, the session (`route`, `deposited`, `balance`, `held`,
//!   `spent`, `return_invoice`, `idle_secs`, `last_used`, `state`, `refund`, `refund_status`,
//!   `held_at`, `refund_attempts`, `refund_at`: the fields of [`Session`]);
//! - `plannt:session:<id hex>:credited`: a set, the top-ups this session was credited with;
//! - `plannt:deposit:<hash hex>`: what a deposit paid for, `open` or `top-up:<session hex>`;
//! - `plannt:session:index:idle` (a sorted set of session ids by when each may next be idle) and
//!   `plannt:session:index:closing` (a set of ids a close was begun on): the index.
//!
//! On a cluster the hex id (or hash) is a hash tag, `plannt:session:{<id hex>}`, so a session's
//! keys live in one slot and one script may change them together; the index keys carry the tag
//! `{index}` and live in a slot of their own.
//!
//! **Every method is one Lua script**, atomic on the shard that holds the session: open (the
//! deposit's marker and the new balance together), hold, settle, begin and finish a close. The
//! steps are those of the other stores ([`super::sessions`]), written in Lua.
//!
//! **Every deposit counts once ever.** A session's id is the payment hash of the deposit that
//! opened it, so the open's marker `plannt:deposit:{<id>}` shares the session's slot and is set
//! in the open's script. A top-up's deposit is another payment hash, in another slot: the top-up
//! challenge is the session challenge of any 402 and names no session, so the same paid top-up
//! invoice could be offered to two sessions at once, on two shards. A top-up therefore takes two
//! atomic steps: it first **binds** the deposit to one session in the deposit's own slot
//! (`SET` if absent, or already bound to this same session: a retry), and only then **credits**
//! the session in the session's slot, in a script that adds the deposit to the session's
//! `credited` set with the credit. The binding makes the deposit worth one session, whatever
//! shard is asked; the `credited` set makes it worth one credit in that session. A top-up whose
//! session turns out closed unbinds its deposit again (it was credited nowhere), so it can still
//! top up another session. A crash between the two steps leaves the deposit bound and not yet
//! credited: the client's retry of the same top-up credits it.
//!
//! **The index is a hint.** Redis cannot list hashes by a field, so `idle` and `closing` read
//! candidates from the index and re-check each by reading its session. An id enters the idle
//! index before its open (and again after), the closing index before a close is begun; it leaves
//! them only once its session is read closed, so no crash between the index and the session
//! hides one. A candidate that is not idle yet is scored again with its last use (while it holds
//! sats, no earlier than the next look). Stale holds ([`SessionStore::release_stale`]) are looked for
//! among the idle index's candidates too, so a hold a crash left behind is given back once it is
//! older than the bound and its session's idle time has come: at the latest the larger of the
//! bound and the idle timeout after that last request.
//!
//! **Durability** is Redis's, as for the spent set: each script answers once the primary holds
//! its writes in memory (run Redis with `appendonly yes` to survive its restart). Replication is
//! asynchronous, so a failover can promote a replica that missed the last writes: an open
//! (the session is unknown after the failover: its deposit was paid and not credited), a top-up
//! (the credit is gone, and its deposit can be offered again), a hold or a settle (a request's
//! debit is lost, in the client's favour), or a `closing` mark (the session is open again after
//! its refund was paid: it could be refunded twice). With `wait_replicas` every session write
//! answers only once that many replicas hold it, and fails (the gateway answers 503, or the
//! close pays nothing) otherwise: then a failover to a replica that acknowledged loses none of
//! these.

use std::collections::HashMap;

use async_trait::async_trait;
use plannt_l402::PaymentHash;
use plannt_l402::mpp::RefundStatus;
use redis::Value;

use super::redis::RedisStore;
use super::sessions::{
    BeginClose, Hold, NewSession, Open, REFUND_CLAIM_SECS, Session, SessionState, SessionStore,
    TopUp, step,
};
use super::{RedisOptions, StoreError};

/// The Lua helpers every script starts with: `fmt` writes a number as an integer (Lua would
/// write a large one with an exponent), `later` keeps the later of a stored time and `now`.
const PRELUDE: &str = r"
local function fmt(n) return string.format('%d', n) end
local function later(key, now, field)
    field = field or 'last_used'
    local last = tonumber(redis.call('HGET', key, field) or '0')
    if tonumber(now) > last then redis.call('HSET', key, field, now) end
end
";

/// Opens a session: `KEYS` the session and the deposit's marker; `ARGV` route, deposit,
/// return invoice, idle seconds, now.
const OPEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
    return {'exists', redis.call('HGETALL', KEYS[1])}
end
if not redis.call('SET', KEYS[2], 'open', 'NX') then
    return {'spent', {}}
end
redis.call('HSET', KEYS[1], 'route', ARGV[1], 'deposited', ARGV[2], 'balance', ARGV[2],
    'held', '0', 'spent', '0', 'return_invoice', ARGV[3], 'idle_secs', ARGV[4],
    'last_used', ARGV[5], 'state', 'open', 'refund', '0', 'refund_status', '',
    'held_at', '0', 'refund_attempts', '0', 'refund_at', '0')
return {'opened', redis.call('HGETALL', KEYS[1])}
";

/// Holds: `KEYS` the session; `ARGV` sats, now. `{outcome, balance, spent}`.
const HOLD: &str = r"
local s = redis.call('HMGET', KEYS[1], 'state', 'balance', 'spent')
if not s[1] then return {'unknown', '0', '0'} end
if s[1] ~= 'open' then return {'not-open', '0', '0'} end
local sats = tonumber(ARGV[1])
local balance = tonumber(s[2])
if balance < sats then return {'short', s[2], s[3]} end
redis.call('HSET', KEYS[1], 'balance', fmt(balance - sats))
redis.call('HINCRBY', KEYS[1], 'held', ARGV[1])
later(KEYS[1], ARGV[2])
later(KEYS[1], ARGV[2], 'held_at')
return {'held', fmt(balance - sats), s[3]}
";

/// Settles: `KEYS` the session; `ARGV` held, used, now. Spent from what is held; what a hold
/// given back meanwhile used comes from the balance, never below zero (`step::settle`).
const SETTLE: &str = r"
local s = redis.call('HMGET', KEYS[1], 'held', 'balance')
if not s[1] then return -1 end
local held = tonumber(ARGV[1])
local used = math.min(tonumber(ARGV[2]), held)
local from_hold = math.min(held, tonumber(s[1]))
local used_from_hold = math.min(used, from_hold)
local beyond = math.min(used - used_from_hold, tonumber(s[2]))
redis.call('HINCRBY', KEYS[1], 'held', fmt(-from_hold))
redis.call('HINCRBY', KEYS[1], 'spent', fmt(used_from_hold + beyond))
local balance = redis.call('HINCRBY', KEYS[1], 'balance', fmt(from_hold - used_from_hold - beyond))
later(KEYS[1], ARGV[3])
return balance
";

/// Binds a top-up's deposit to one session: `KEYS` the deposit's marker; `ARGV` the binding.
/// 1 if it is bound to this session now (or was, by a retry), 0 if it paid for something else.
const BIND: &str = r"
local bound = redis.call('GET', KEYS[1])
if not bound then
    redis.call('SET', KEYS[1], ARGV[1])
    return 1
end
if bound == ARGV[1] then return 1 end
return 0
";

/// Unbinds a deposit only while it is bound to this session: `KEYS` the marker; `ARGV` the
/// binding.
const UNBIND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Credits a bound top-up: `KEYS` the session and its credited set; `ARGV` the deposit's hex,
/// sats, now. `{outcome, balance}`.
const CREDIT: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown', '0'} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {'spent', '0'} end
if state ~= 'open' then return {'not-open', '0'} end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'deposited', ARGV[2])
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[2])
later(KEYS[1], ARGV[3])
return {'credited', fmt(balance)}
";

/// Begins a close: `KEYS` the session; `ARGV` until when the close owns its refund.
const BEGIN_CLOSE: &str = r"
local s = redis.call('HMGET', KEYS[1], 'state', 'held', 'balance')
if not s[1] then return {'unknown', {}} end
if s[1] == 'closing' then return {'already', redis.call('HGETALL', KEYS[1])} end
if s[1] == 'closed' then return {'closed', redis.call('HGETALL', KEYS[1])} end
if tonumber(s[2]) > 0 then return {'busy', {}} end
redis.call('HSET', KEYS[1], 'state', 'closing', 'refund', s[3], 'balance', '0',
    'refund_attempts', '1', 'refund_at', ARGV[1])
return {'closing', redis.call('HGETALL', KEYS[1])}
";

/// Finishes a close: `KEYS` the session; `ARGV` the refund's status.
const FINISH_CLOSE: &str = r"
if redis.call('HGET', KEYS[1], 'state') == 'closing' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'refund_status', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
";

/// Claims a refund's try: `KEYS` the session; `ARGV` now, until. The session, or nothing.
const CLAIM_REFUND: &str = r"
local s = redis.call('HMGET', KEYS[1], 'state', 'refund_at')
if s[1] ~= 'closing' or tonumber(s[2] or '0') > tonumber(ARGV[1]) then return {} end
redis.call('HINCRBY', KEYS[1], 'refund_attempts', 1)
redis.call('HSET', KEYS[1], 'refund_at', ARGV[2])
return redis.call('HGETALL', KEYS[1])
";

/// Gives back a session's stale holds: `KEYS` the session; `ARGV` the latest time a stale hold
/// was taken. What was given back.
const RELEASE_STALE: &str = r"
local s = redis.call('HMGET', KEYS[1], 'state', 'held', 'held_at')
if s[1] ~= 'open' or tonumber(s[2] or '0') == 0 then return 0 end
if tonumber(s[3] or '0') > tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'balance', s[2])
redis.call('HSET', KEYS[1], 'held', '0')
return tonumber(s[2])
";

/// The most idle candidates read from the index at a time.
const IDLE_BATCH: usize = 1000;

/// Session balances in Redis. See the [module docs](self). Cheap to clone.
#[derive(Clone)]
pub struct RedisSessions {
    redis: RedisStore,
    /// Before a session's hex id.
    sessions: String,
    /// Before a deposit's hex hash.
    deposits: String,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("url", &self.redis.shown)
            .field("sessions", &self.sessions)
            .finish()
    }
}

impl RedisSessions {
    /// Connects to `url` (any of the spent set's three kinds) with `options`: its prefix names
    /// the spent set's keys, and the sessions' keys are put beside them (see the
    /// [module docs](self)); its timeout and replica wait apply to every session command.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let redis = RedisStore::connect_with(url, options).await?;
        let (sessions, deposits) = match redis.prefix().strip_suffix("spent:") {
            Some(base) => (format!("{base}session:"), format!("{base}deposit:")),
            None => (
                format!("session:{}", redis.prefix()),
                format!("deposit:{}", redis.prefix()),
            ),
        };
        Ok(RedisSessions {
            redis,
            sessions,
            deposits,
        })
    }

    fn tagged(&self, prefix: &str, hex: &str) -> String {
        if self.redis.tagged {
            format!("{prefix}{{{hex}}}")
        } else {
            format!("{prefix}{hex}")
        }
    }

    /// A session's hash.
    pub fn session_key(&self, id: &PaymentHash) -> String {
        self.tagged(&self.sessions, &id.to_hex())
    }

    /// The top-ups a session was credited with.
    fn credited_key(&self, id: &PaymentHash) -> String {
        format!("{}:credited", self.session_key(id))
    }

    /// What a deposit paid for.
    pub fn deposit_key(&self, hash: &PaymentHash) -> String {
        self.tagged(&self.deposits, &hash.to_hex())
    }

    fn index_key(&self, which: &str) -> String {
        format!("{}:{which}", self.tagged(&self.sessions, "index"))
    }

    /// Runs `script` (after the prelude) on `keys` with `args`, followed by `WAIT` when
    /// replicas must acknowledge it.
    async fn run(
        &self,
        what: &'static str,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, StoreError> {
        let mut call = redis::cmd("EVAL");
        call.arg(format!("{PRELUDE}{script}")).arg(keys.len());
        for key in keys {
            call.arg(key);
        }
        for arg in args {
            call.arg(arg);
        }
        let mut replies = self.redis.acknowledged(what, vec![call]).await?;
        replies
            .pop()
            .ok_or_else(|| self.unexpected(what, "no reply"))
    }

    /// A command on the index (a hint: not waited for).
    async fn index(&self, what: &'static str, cmd: redis::Cmd) -> Result<Value, StoreError> {
        let mut conn = self.redis.conn.clone();
        self.redis.bounded(what, cmd.query_async(&mut conn)).await
    }

    fn unexpected(&self, what: &str, got: impl std::fmt::Debug) -> StoreError {
        StoreError::Unexpected(format!(
            "Redis at {} answered {what} with {got:?}",
            self.redis.shown
        ))
    }

    /// A script's `{outcome, …}` answer: the outcome and the rest.
    fn outcome(
        &self,
        what: &'static str,
        reply: Value,
    ) -> Result<(String, Vec<Value>), StoreError> {
        let mut parts: Vec<Value> =
            redis::from_redis_value(reply.clone()).map_err(|_| self.unexpected(what, &reply))?;
        if parts.is_empty() {
            return Err(self.unexpected(what, &reply));
        }
        let first = parts.remove(0);
        let outcome: String =
            redis::from_redis_value(first).map_err(|_| self.unexpected(what, &reply))?;
        Ok((outcome, parts))
    }

    fn number(&self, what: &'static str, value: Option<&Value>) -> Result<u64, StoreError> {
        let value = value.ok_or_else(|| self.unexpected(what, "too few fields"))?;
        let text: String =
            redis::from_redis_value(value.clone()).map_err(|_| self.unexpected(what, value))?;
        text.parse().map_err(|_| self.unexpected(what, value))
    }

    /// A session from its hash's fields (`HGETALL`), or `None` for none.
    fn session(
        &self,
        what: &'static str,
        id: &PaymentHash,
        fields: Value,
    ) -> Result<Option<Session>, StoreError> {
        let fields: HashMap<String, String> =
            redis::from_redis_value(fields.clone()).map_err(|_| self.unexpected(what, &fields))?;
        if fields.is_empty() {
            return Ok(None);
        }
        let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let number = |name: &str| text(name).parse::<u64>().unwrap_or(0);
        Ok(Some(Session {
            id: *id,
            route: text("route"),
            deposited: number("deposited"),
            balance: number("balance"),
            held: number("held"),
            spent: number("spent"),
            return_invoice: text("return_invoice"),
            idle_secs: number("idle_secs"),
            last_used: number("last_used"),
            state: SessionState::from_name(&text("state")).unwrap_or(SessionState::Closed),
            refund: number("refund"),
            refund_status: match text("refund_status").as_str() {
                "succeeded" => Some(RefundStatus::Succeeded),
                "failed" => Some(RefundStatus::Failed),
                "skipped" => Some(RefundStatus::Skipped),
                _ => None,
            },
            held_at: number("held_at"),
            refund_attempts: number("refund_attempts"),
            refund_at: number("refund_at"),
        }))
    }

    /// Scores `id` in the idle index: it may be idle from `at`.
    async fn index_idle(&self, id: &PaymentHash, at: u64) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.index_key("idle")).arg(at).arg(id.to_hex());
        self.index("an index write (ZADD)", cmd).await.map(drop)
    }

    fn parse_id(&self, what: &'static str, value: &Value) -> Result<PaymentHash, StoreError> {
        let hex: String =
            redis::from_redis_value(value.clone()).map_err(|_| self.unexpected(what, value))?;
        PaymentHash::from_hex(&hex).map_err(|_| self.unexpected(what, value))
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn open(&self, new: &NewSession) -> Result<Open, StoreError> {
        const WHAT: &str = "an open (script)";
        // Indexed first: a crash after the open still leaves it listed.
        let idle_at = new.now.saturating_add(new.idle_secs);
        self.index_idle(&new.id, idle_at).await?;
        let reply = self
            .run(
                WHAT,
                OPEN,
                &[self.session_key(&new.id), self.deposit_key(&new.id)],
                &[
                    new.route.clone(),
                    new.deposit.to_string(),
                    new.return_invoice.clone(),
                    new.idle_secs.to_string(),
                    new.now.to_string(),
                ],
            )
            .await?;
        let (outcome, mut rest) = self.outcome(WHAT, reply)?;
        let fields = rest.pop().unwrap_or(Value::Nil);
        match outcome.as_str() {
            "spent" => Ok(Open::DepositSpent),
            "exists" | "opened" => {
                let session = self
                    .session(WHAT, &new.id, fields)?
                    .ok_or_else(|| self.unexpected(WHAT, "no session"))?;
                if outcome == "exists" {
                    return Ok(Open::Exists(session));
                }
                // Again, in case the idle look removed it between the first write and the open.
                self.index_idle(&new.id, idle_at).await?;
                Ok(Open::Opened(session))
            }
            other => Err(self.unexpected(WHAT, other)),
        }
    }

    async fn hold(&self, id: &PaymentHash, sats: u64, now: u64) -> Result<Hold, StoreError> {
        const WHAT: &str = "a hold (script)";
        let reply = self
            .run(
                WHAT,
                HOLD,
                &[self.session_key(id)],
                &[sats.to_string(), now.to_string()],
            )
            .await?;
        let (outcome, rest) = self.outcome(WHAT, reply)?;
        Ok(match outcome.as_str() {
            "held" => Hold::Held {
                balance: self.number(WHAT, rest.first())?,
            },
            "short" => Hold::Short {
                balance: self.number(WHAT, rest.first())?,
                spent: self.number(WHAT, rest.get(1))?,
            },
            "not-open" => Hold::NotOpen,
            "unknown" => Hold::Unknown,
            other => return Err(self.unexpected(WHAT, other)),
        })
    }

    async fn settle(
        &self,
        id: &PaymentHash,
        held: u64,
        used: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        const WHAT: &str = "a settle (script)";
        let reply = self
            .run(
                WHAT,
                SETTLE,
                &[self.session_key(id)],
                &[held.to_string(), used.to_string(), now.to_string()],
            )
            .await?;
        let balance: i64 =
            redis::from_redis_value(reply.clone()).map_err(|_| self.unexpected(WHAT, &reply))?;
        Ok(u64::try_from(balance).ok())
    }

    async fn top_up(
        &self,
        id: &PaymentHash,
        deposit: &PaymentHash,
        sats: u64,
        now: u64,
    ) -> Result<TopUp, StoreError> {
        const WHAT: &str = "a top-up (script)";
        // A deposit is bound only to a session that is open: a mistaken id or a closed
        // session leaves it free.
        match self.get(id).await? {
            None => return Ok(TopUp::Unknown),
            Some(session) if session.state != SessionState::Open => return Ok(TopUp::NotOpen),
            Some(_) => {}
        }
        let binding = format!("top-up:{}", id.to_hex());
        let bound = self
            .run(
                "a deposit's binding (script)",
                BIND,
                &[self.deposit_key(deposit)],
                std::slice::from_ref(&binding),
            )
            .await?;
        if bound != Value::Int(1) {
            return Ok(TopUp::DepositSpent);
        }
        let reply = self
            .run(
                WHAT,
                CREDIT,
                &[self.session_key(id), self.credited_key(id)],
                &[deposit.to_hex(), sats.to_string(), now.to_string()],
            )
            .await?;
        let (outcome, rest) = self.outcome(WHAT, reply)?;
        match outcome.as_str() {
            "credited" => Ok(TopUp::Credited {
                balance: self.number(WHAT, rest.first())?,
            }),
            "spent" => Ok(TopUp::DepositSpent),
            "not-open" | "unknown" => {
                // Closed since the look above, and credited nowhere: free the deposit again.
                self.run(
                    "a deposit's unbinding (script)",
                    UNBIND,
                    &[self.deposit_key(deposit)],
                    &[binding],
                )
                .await?;
                Ok(if outcome == "unknown" {
                    TopUp::Unknown
                } else {
                    TopUp::NotOpen
                })
            }
            other => Err(self.unexpected(WHAT, other)),
        }
    }

    async fn begin_close(&self, id: &PaymentHash, now: u64) -> Result<BeginClose, StoreError> {
        const WHAT: &str = "a close (script)";
        // Indexed first: a crash after the mark still leaves it listed.
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.index_key("closing")).arg(id.to_hex());
        self.index("an index write (SADD)", cmd).await?;
        let reply = self
            .run(
                WHAT,
                BEGIN_CLOSE,
                &[self.session_key(id)],
                &[now.saturating_add(REFUND_CLAIM_SECS).to_string()],
            )
            .await?;
        let (outcome, mut rest) = self.outcome(WHAT, reply)?;
        let fields = rest.pop().unwrap_or(Value::Nil);
        let session = || -> Result<Session, StoreError> {
            self.session(WHAT, id, fields.clone())?
                .ok_or_else(|| self.unexpected(WHAT, "no session"))
        };
        Ok(match outcome.as_str() {
            "unknown" => BeginClose::Unknown,
            "busy" => BeginClose::Busy,
            "already" => BeginClose::AlreadyClosing(session()?),
            "closed" => BeginClose::Closed(session()?),
            "closing" => BeginClose::Closing(session()?),
            other => return Err(self.unexpected(WHAT, other)),
        })
    }

    async fn finish_close(
        &self,
        id: &PaymentHash,
        status: RefundStatus,
    ) -> Result<Option<Session>, StoreError> {
        const WHAT: &str = "a close's end (script)";
        let reply = self
            .run(
                WHAT,
                FINISH_CLOSE,
                &[self.session_key(id)],
                &[status.as_str().to_owned()],
            )
            .await?;
        let session = self.session(WHAT, id, reply)?;
        if session
            .as_ref()
            .is_some_and(|s| s.state == SessionState::Closed)
        {
            self.forget(id).await?;
        }
        Ok(session)
    }

    async fn claim_refund(
        &self,
        id: &PaymentHash,
        now: u64,
        until: u64,
    ) -> Result<Option<Session>, StoreError> {
        const WHAT: &str = "a refund's claim (script)";
        let reply = self
            .run(
                WHAT,
                CLAIM_REFUND,
                &[self.session_key(id)],
                &[now.to_string(), until.to_string()],
            )
            .await?;
        self.session(WHAT, id, reply)
    }

    async fn release_stale(
        &self,
        now: u64,
        older_than: u64,
    ) -> Result<Vec<(PaymentHash, u64)>, StoreError> {
        const WHAT: &str = "a stale hold's release (script)";
        let taken_by = now.saturating_sub(older_than);
        let mut released = Vec::new();
        for id in self.candidates(now).await? {
            match self.get(&id).await? {
                Some(session) if step::is_stale(&session, taken_by) => {}
                _ => continue,
            }
            let reply = self
                .run(
                    WHAT,
                    RELEASE_STALE,
                    &[self.session_key(&id)],
                    &[taken_by.to_string()],
                )
                .await?;
            let sats: u64 = redis::from_redis_value(reply.clone())
                .map_err(|_| self.unexpected(WHAT, &reply))?;
            if sats > 0 {
                released.push((id, sats));
            }
        }
        Ok(released)
    }

    async fn get(&self, id: &PaymentHash) -> Result<Option<Session>, StoreError> {
        const WHAT: &str = "a session read (HGETALL)";
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.session_key(id));
        let mut conn = self.redis.conn.clone();
        let fields: Value = self.redis.bounded(WHAT, cmd.query_async(&mut conn)).await?;
        self.session(WHAT, id, fields)
    }

    async fn idle(&self, now: u64) -> Result<Vec<PaymentHash>, StoreError> {
        let mut idle = Vec::new();
        for id in self.candidates(now).await? {
            match self.get(&id).await? {
                Some(session) if step::is_idle(&session, now) => idle.push(id),
                Some(session) if session.state == SessionState::Open => {
                    // Used since it was scored (or busy now): scored again, looked at later.
                    let at = session
                        .last_used
                        .saturating_add(session.idle_secs)
                        .max(now + 1);
                    self.index_idle(&id, at).await?;
                }
                // Closing ones are the closing index's; closed or unknown ones leave.
                _ => {
                    let mut cmd = redis::cmd("ZREM");
                    cmd.arg(self.index_key("idle")).arg(id.to_hex());
                    self.index("an index write (ZREM)", cmd).await?;
                }
            }
        }
        Ok(idle)
    }

    async fn closing(&self) -> Result<Vec<Session>, StoreError> {
        const WHAT: &str = "an index read (SMEMBERS)";
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.index_key("closing"));
        let reply = self.index(WHAT, cmd).await?;
        let candidates: Vec<Value> =
            redis::from_redis_value(reply.clone()).map_err(|_| self.unexpected(WHAT, &reply))?;
        let mut closing = Vec::new();
        for candidate in &candidates {
            let id = self.parse_id(WHAT, candidate)?;
            match self.get(&id).await? {
                Some(session) if session.state == SessionState::Closing => closing.push(session),
                // A close that found requests in flight: it stays a candidate until closed.
                Some(session) if session.state == SessionState::Open => {}
                _ => self.forget(&id).await?,
            }
        }
        Ok(closing)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

impl RedisSessions {
    /// The idle index's candidates at `now`: the sessions that may be idle (or hold stale
    /// sats) by then.
    async fn candidates(&self, now: u64) -> Result<Vec<PaymentHash>, StoreError> {
        const WHAT: &str = "an index read (ZRANGE)";
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.index_key("idle"))
            .arg("-inf")
            .arg(now)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(IDLE_BATCH);
        let reply = self.index(WHAT, cmd).await?;
        let candidates: Vec<Value> =
            redis::from_redis_value(reply.clone()).map_err(|_| self.unexpected(WHAT, &reply))?;
        candidates
            .iter()
            .map(|candidate| self.parse_id(WHAT, candidate))
            .collect()
    }

    /// Takes a closed (or unknown) session out of the index.
    async fn forget(&self, id: &PaymentHash) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM")
            .arg(self.index_key("idle"))
            .arg(id.to_hex())
            .ignore()
            .cmd("SREM")
            .arg(self.index_key("closing"))
            .arg(id.to_hex())
            .ignore();
        let mut conn = self.redis.conn.clone();
        self.redis
            .bounded(
                "an index write (ZREM, SREM)",
                pipe.query_async::<()>(&mut conn),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use plannt_testkit::Redis as RedisServer;
    use plannt_testkit::cluster::RedisCluster;

    use super::*;
    use crate::store::sessions::tests::{lifecycle, parallel_holds, stale_holds_and_refund_claims};

    /// A store of its own on the same Redis: its keys under another prefix.
    async fn apart(url: &str) -> RedisSessions {
        let options = RedisOptions {
            prefix: "plannt:apart:spent:".into(),
            ..RedisOptions::default()
        };
        RedisSessions::connect_with(url, options).await.unwrap()
    }

    fn new(id: u8, deposit: u64) -> NewSession {
        NewSession {
            id: PaymentHash([id; 32]),
            route: "chat".into(),
            deposit,
            return_invoice: "lnbcrt1preturn".into(),
            idle_secs: 60,
            now: 1,
        }
    }

    /// Holds from many tasks on many threads, each on its own clone of the store: never more
    /// held than the balance, and what was not held is still there.
    async fn holds_from_many_tasks(store: RedisSessions) {
        let id = PaymentHash([40; 32]);
        store.open(&new(40, 1000)).await.unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.hold(&id, 9, 2).await.unwrap() })
            })
            .collect();
        let mut held = 0;
        for task in tasks {
            if let Hold::Held { .. } = task.await.unwrap() {
                held += 1;
            }
        }
        assert_eq!(held, 111, "1000 sats hold 111 of 9");
        let s = store.get(&id).await.unwrap().unwrap();
        assert_eq!((s.balance, s.held), (1, 999));
    }

    /// One paid top-up offered to two sessions at once (and again): credited to one of them,
    /// once.
    async fn a_top_up_credits_one_session_once(store: RedisSessions) {
        let (a, b) = (PaymentHash([50; 32]), PaymentHash([51; 32]));
        store.open(&new(50, 10)).await.unwrap();
        store.open(&new(51, 10)).await.unwrap();
        let deposit = PaymentHash([52; 32]);
        let tries: Vec<_> = (0..20)
            .map(|n| {
                let store = store.clone();
                let id = if n % 2 == 0 { a } else { b };
                tokio::spawn(async move { store.top_up(&id, &deposit, 100, 3).await.unwrap() })
            })
            .collect();
        let mut credited = 0;
        for task in tries {
            match task.await.unwrap() {
                TopUp::Credited { .. } => credited += 1,
                TopUp::DepositSpent => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(credited, 1);
        let (sa, sb) = (
            store.get(&a).await.unwrap().unwrap(),
            store.get(&b).await.unwrap().unwrap(),
        );
        assert_eq!(sa.balance + sb.balance, 120, "one credit of 100 in all");
        assert_eq!(sa.deposited + sb.deposited, 120);

        // A top-up offered to a closed session stays free for an open one.
        store.begin_close(&a, 4).await.unwrap();
        let other = PaymentHash([53; 32]);
        assert_eq!(
            store.top_up(&a, &other, 7, 4).await.unwrap(),
            TopUp::NotOpen
        );
        assert!(matches!(
            store.top_up(&b, &other, 7, 4).await.unwrap(),
            TopUp::Credited { .. }
        ));
    }

    /// The index lists a session opened, then closing, and forgets it once closed.
    async fn the_index_is_checked_against_the_sessions(store: RedisSessions) {
        let id = PaymentHash([60; 32]);
        store.open(&new(60, 10)).await.unwrap();
        // Other tests' sessions share the store: only this one is looked at.
        let listed = |ids: Vec<PaymentHash>| ids.contains(&id);
        assert!(!listed(store.idle(60).await.unwrap()));
        store.hold(&id, 1, 30).await.unwrap();
        // Scored at 61, but used at 30: not idle until 90, scored again.
        assert!(!listed(store.idle(61).await.unwrap()));
        assert!(!listed(store.idle(95).await.unwrap()), "a hold in flight");
        store.settle(&id, 1, 1, 30).await.unwrap();
        assert!(listed(store.idle(96).await.unwrap()));
        store.begin_close(&id, 96).await.unwrap();
        assert!(!listed(store.idle(200).await.unwrap()));
        let closing = |list: Vec<Session>| list.iter().any(|s| s.id == id);
        assert!(closing(store.closing().await.unwrap()));
        store
            .finish_close(&id, RefundStatus::Succeeded)
            .await
            .unwrap();
        assert!(!closing(store.closing().await.unwrap()));
        let mut conn = store.redis.conn.clone();
        let indexed: bool = redis::cmd("SISMEMBER")
            .arg(store.index_key("closing"))
            .arg(id.to_hex())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!indexed, "a closed session leaves the index");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_redis_keeps_a_session_s_books() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let url = server.url();
        let connect = || RedisSessions::connect_with(&url, RedisOptions::default());
        let store = connect().await.unwrap();
        lifecycle(&store).await;
        parallel_holds(Arc::new(store.clone())).await;
        holds_from_many_tasks(store.clone()).await;
        a_top_up_credits_one_session_once(store.clone()).await;
        the_index_is_checked_against_the_sessions(store.clone()).await;
        stale_holds_and_refund_claims(&apart(&url).await).await;
        // A second replica, its own connection: the same books.
        let replica = connect().await.unwrap();
        let s = replica.get(&PaymentHash([40; 32])).await.unwrap().unwrap();
        assert_eq!((s.balance, s.held), (1, 999));
        // Beside the spent keys, never under their prefix.
        assert_eq!(
            store.session_key(&PaymentHash([1; 32])),
            format!("plannt:session:{}", PaymentHash([1; 32]).to_hex())
        );
        let spent = RedisStore::connect(&server.url()).await.unwrap();
        assert_eq!(crate::store::SpentStore::len(&spent).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_three_primary_cluster_keeps_a_session_s_books() {
        let Some(cluster) = RedisCluster::start(3) else {
            return;
        };
        let store = RedisSessions::connect_with(&cluster.url(), RedisOptions::default())
            .await
            .unwrap();
        lifecycle(&store).await;
        parallel_holds(Arc::new(store.clone())).await;
        holds_from_many_tasks(store.clone()).await;
        a_top_up_credits_one_session_once(store.clone()).await;
        the_index_is_checked_against_the_sessions(store.clone()).await;
        stale_holds_and_refund_claims(&apart(&cluster.url()).await).await;
        // A session's keys share its slot; the deposits of the top-up test live elsewhere.
        let id = PaymentHash([50; 32]);
        let slot = cluster.slot_of(&store.session_key(&id));
        assert_eq!(cluster.slot_of(&store.credited_key(&id)), slot);
        assert_eq!(cluster.slot_of(&store.deposit_key(&id)), slot);
        let slots: std::collections::BTreeSet<u16> = [50u8, 51, 52]
            .iter()
            .map(|n| cluster.slot_of(&store.deposit_key(&PaymentHash([*n; 32]))))
            .collect();
        assert_eq!(
            slots.len(),
            3,
            "the top-up's deposit is in a slot of its own"
        );
    }
}
