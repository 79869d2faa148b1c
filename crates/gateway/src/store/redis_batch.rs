//! The Redis writes of concurrent requests (claims, commits, session debits), sent together.
//!
//! Each write is a few commands whose replies belong to one request. Sent one by one, every write
//! is a system call and a wake-up on both sides of the connection, and on a loaded gateway those
//! cost more than the commands: `redis-server` spent about 8 µs a paid request on its socket
//! alone. A [`Batcher`] is one task that takes every write waiting when it is free, sends them as
//! one pipeline (followed by one `WAIT` when replicas must acknowledge them) on a connection of
//! its own (a `WAIT` blocks its connection, and the store's lookups go on the other), and hands
//! each request its replies: the group commit of the SQLite store, on a Redis connection. One batch is
//! in flight at a time; what arrives meanwhile makes the next one. The price is latency when few
//! requests are in flight: a write that arrives while a batch is out waits for its answer, about
//! one round trip more (docs/benchmarks.md, run I: up to four batches in flight batched less and
//! served fewer paid requests).
//!
//! A cluster gets no batcher: the writes of one pipeline must share a slot there, and those of
//! different payment hashes do not. [`send`] sends one write the same way, alone.

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use super::redis::{Connection, WaitReplicas};

/// The most writes one batch carries.
const MOST: usize = 256;

/// A write's replies, one a command, and what `WAIT` answered after it (when replicas must
/// acknowledge it).
pub(super) struct Replies {
    pub(super) values: Vec<Value>,
    pub(super) acked: Option<Value>,
}

struct Write {
    cmds: Vec<Cmd>,
    done: oneshot::Sender<RedisResult<Replies>>,
}

/// The task that batches writes, reached through this handle; it stops once every clone of the
/// handle is dropped. Its queue has no bound of its own: every write in it is a request waiting
/// for it, and the gateway bounds its requests.
#[derive(Clone)]
pub(super) struct Batcher {
    writes: mpsc::UnboundedSender<Write>,
}

impl Batcher {
    /// Starts the task, on the current tokio runtime.
    pub(super) fn spawn(conn: Connection, wait: Option<WaitReplicas>) -> Batcher {
        let (writes, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, wait, waiting));
        Batcher { writes }
    }

    /// Sends `cmds` with the next batch and answers their replies.
    pub(super) async fn send(&self, cmds: Vec<Cmd>) -> RedisResult<Replies> {
        let (done, reply) = oneshot::channel();
        let gone = || RedisError::from((ErrorKind::Io, "the Redis store's writer has stopped"));
        self.writes.send(Write { cmds, done }).map_err(|_| gone())?;
        reply.await.map_err(|_| gone())?
    }
}

/// Sends `cmds` alone, as one pipeline (with its `WAIT`).
pub(super) async fn send(
    conn: &mut Connection,
    wait: Option<WaitReplicas>,
    cmds: Vec<Cmd>,
) -> RedisResult<Replies> {
    let count = cmds.len();
    let mut pipe = redis::pipe();
    for cmd in cmds {
        pipe.add_command(cmd);
    }
    query(conn, wait, &mut pipe, count).await
}

async fn run(
    mut conn: Connection,
    wait: Option<WaitReplicas>,
    mut waiting: mpsc::UnboundedReceiver<Write>,
) {
    let mut batch = Vec::with_capacity(MOST);
    while waiting.recv_many(&mut batch, MOST).await > 0 {
        let mut pipe = redis::pipe();
        let mut writes = Vec::with_capacity(batch.len());
        for Write { cmds, done } in batch.drain(..) {
            // A request that stopped waiting (its timeout) has answered already: nothing of it
            // is sent, so a claim it gave up on is not made behind its back.
            if done.is_closed() {
                continue;
            }
            writes.push((cmds.len(), done));
            for cmd in cmds {
                pipe.add_command(cmd);
            }
        }
        if writes.is_empty() {
            continue;
        }
        let expected: usize = writes.iter().map(|(count, _)| count).sum();
        match query(&mut conn, wait, &mut pipe, expected).await {
            Ok(Replies { values, acked }) => {
                let mut values = values.into_iter();
                for (count, done) in writes {
                    let values = values.by_ref().take(count).collect();
                    let _ = done.send(Ok(Replies {
                        values,
                        acked: acked.clone(),
                    }));
                }
            }
            Err(e) => {
                for (_, done) in writes {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs `pipe` of `count` commands, followed by `WAIT` when replicas must acknowledge it: the
/// replies of every command, server errors among them, and `WAIT`'s apart.
async fn query(
    conn: &mut Connection,
    wait: Option<WaitReplicas>,
    pipe: &mut Pipeline,
    count: usize,
) -> RedisResult<Replies> {
    if let Some(wait) = wait {
        pipe.cmd("WAIT")
            .arg(wait.replicas)
            .arg(wait.timeout.as_millis() as u64);
    }
    let mut values = conn.req_packed_commands(pipe, 0, pipe.len()).await?;
    let acked = wait.and_then(|_| values.pop());
    if values.len() != count {
        return Err(miscounted(count, values.len()));
    }
    Ok(Replies { values, acked })
}

fn miscounted(expected: usize, got: usize) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "Redis answered a pipeline with the wrong number of replies",
        format!("expected {expected}, got {got}"),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use redis::aio::ConnectionManager;
    use redis::{Value, cmd};

    use super::{Batcher, Connection};
    use plannt_testkit::Redis as RedisServer;

    async fn batcher(server: &RedisServer) -> (Batcher, ConnectionManager) {
        let client = redis::Client::open(server.url()).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        (Batcher::spawn(Connection::Single(conn.clone()), None), conn)
    }

    fn int(value: &Value) -> i64 {
        match value {
            Value::Int(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_each_get_their_own_replies() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let (batcher, _) = batcher(&server).await;
        let batcher = Arc::new(batcher);
        let writes: Vec<_> = (1..=500i64)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    let mut add = cmd("INCRBY");
                    add.arg(format!("n:{n}")).arg(n);
                    let mut again = cmd("INCRBY");
                    again.arg(format!("n:{n}")).arg(n);
                    let replies = batcher.send(vec![add, again]).await.unwrap();
                    (n, replies.values)
                })
            })
            .collect();
        for write in writes {
            let (n, values) = write.await.unwrap();
            assert_eq!(values.len(), 2, "write {n}: {values:?}");
            assert_eq!((int(&values[0]), int(&values[1])), (n, 2 * n));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_answers_its_own_write_only() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let (batcher, mut conn) = batcher(&server).await;
        let _: () = cmd("SET")
            .arg("word")
            .arg("not a number")
            .query_async(&mut conn)
            .await
            .unwrap();
        let batcher = Arc::new(batcher);
        let writes: Vec<_> = (0..100)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    let mut incr = cmd("INCR");
                    incr.arg(if n % 10 == 0 {
                        "word".to_owned()
                    } else {
                        format!("k:{n}")
                    });
                    (n, batcher.send(vec![incr]).await.unwrap().values)
                })
            })
            .collect();
        for write in writes {
            let (n, values) = write.await.unwrap();
            match (n % 10 == 0, values.as_slice()) {
                (true, [Value::ServerError(_)]) | (false, [Value::Int(1)]) => {}
                (_, other) => panic!("write {n}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_write_its_request_gave_up_on_is_never_sent() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let (batcher, mut conn) = batcher(&server).await;
        // A batch that takes Redis a while (a blocking pop that times out), and behind it a
        // write whose request stops waiting meanwhile.
        let mut blocking = cmd("BLPOP");
        blocking.arg("nothing").arg(0.3);
        let slow = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.send(vec![blocking]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut set = cmd("SET");
        set.arg("abandoned").arg(1);
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), batcher.send(vec![set])).await;
        assert!(
            gave_up.is_err(),
            "the write was answered behind a blocked batch"
        );
        let values = slow.await.unwrap().unwrap().values;
        assert_eq!(values, vec![Value::Nil], "BLPOP timed out");
        // A later write goes through, and the abandoned one never reached Redis.
        let mut exists = cmd("EXISTS");
        exists.arg("abandoned");
        let values = batcher.send(vec![exists]).await.unwrap().values;
        assert_eq!(values, vec![Value::Int(0)]);
        let n: i64 = cmd("EXISTS")
            .arg("abandoned")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
