//! Redis with Sentinel of the test's own: one primary, one replica and Sentinels on loopback,
//! with failover timeouts set low (down after 500 ms, failover timeout 2 s) so that a test can
//! kill the primary and see the replica promoted within seconds.

use std::time::{Duration, Instant};

use crate::redis::{Redis, Setup};

/// The name the Sentinels know the primary by.
pub const PRIMARY_NAME: &str = "plannt";

/// A primary, its replica and the Sentinels that watch them, killed when dropped.
pub struct RedisSentinel {
    /// The primary it started with.
    pub primary: Redis,
    /// Its replica.
    pub replica: Redis,
    /// The Sentinels.
    pub sentinels: Vec<Redis>,
}

impl RedisSentinel {
    /// Starts a primary, a replica in sync with it, and `sentinels` Sentinels that agree the
    /// primary is down when `quorum` of them see it so; `None` (after [`crate::skip`]) where
    /// `redis-server` is not installed. Returns once every Sentinel knows the replica and the
    /// other Sentinels.
    pub fn start(sentinels: usize, quorum: usize) -> Option<RedisSentinel> {
        // No delay before the first full sync (the default waits 5 s for more replicas).
        let quick_sync = |args: &[&str]| Setup {
            config: None,
            args: ["--repl-diskless-sync-delay", "0"]
                .iter()
                .chain(args)
                .map(|s| s.to_string())
                .collect(),
        };
        let primary = Redis::start_with(|_| quick_sync(&[]))?;
        let primary_port = primary.port.to_string();
        let replica =
            Redis::start_with(|_| quick_sync(&["--replicaof", "127.0.0.1", &primary_port]))?;
        crate::process::wait_until(
            "the replica is in sync with its primary",
            Duration::from_secs(20),
            || info(&replica, "replication").contains("master_link_status:up"),
        );
        // And the primary counts it: `WAIT` only hears from replicas it lists as online.
        crate::process::wait_until(
            "the primary lists its replica online",
            Duration::from_secs(20),
            || info(&primary, "replication").contains("state=online"),
        );
        let config = format!(
            "sentinel monitor {PRIMARY_NAME} 127.0.0.1 {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {PRIMARY_NAME} 500\n\
             sentinel failover-timeout {PRIMARY_NAME} 2000\n"
        );
        let mut started = Vec::with_capacity(sentinels);
        for _ in 0..sentinels {
            started.push(Redis::start_with(|_| Setup {
                config: Some(config.clone()),
                args: vec!["--sentinel".into()],
            })?);
        }
        let set = RedisSentinel {
            primary,
            replica,
            sentinels: started,
        };
        let replica_address = format!("127.0.0.1:{}", set.replica.port);
        for sentinel in &set.sentinels {
            crate::process::wait_until(
                "every Sentinel knows the replica and the other Sentinels",
                Duration::from_secs(30),
                || {
                    let mut conn = sentinel.connection();
                    let replicas: Vec<std::collections::HashMap<String, String>> =
                        redis::cmd("SENTINEL")
                            .arg("REPLICAS")
                            .arg(PRIMARY_NAME)
                            .query(&mut conn)
                            .unwrap_or_default();
                    let others: Vec<std::collections::HashMap<String, String>> =
                        redis::cmd("SENTINEL")
                            .arg("SENTINELS")
                            .arg(PRIMARY_NAME)
                            .query(&mut conn)
                            .unwrap_or_default();
                    let knows_replica = replicas.iter().any(|r| {
                        r.get("name") == Some(&replica_address)
                            && r.get("flags").is_some_and(|f| f == "slave")
                    });
                    knows_replica && others.len() + 1 == set.sentinels.len()
                },
            );
        }
        Some(set)
    }

    /// `redis+sentinel://127.0.0.1:<port>,…/plannt`: every Sentinel.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{PRIMARY_NAME}", sentinels.join(","))
    }

    /// The port of the server the first Sentinel names primary now.
    pub fn primary_port(&self) -> u16 {
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(PRIMARY_NAME)
            .query(&mut self.sentinels[0].connection())
            .expect("the Sentinel names a primary");
        port
    }

    /// Kills the primary with SIGKILL: no goodbye to its replica or its clients.
    pub fn kill_primary(&mut self) {
        self.primary.stop();
    }

    /// Starts the killed primary again on its port, empty (no persistence), as a replica of
    /// the promoted one (what the Sentinels would make it, and what its rewritten
    /// configuration says once they have), and waits until it is in sync. Call it after the
    /// promotion: started as a primary before, it would hand its empty data set to the replica.
    pub fn restart_old_primary(&mut self) {
        let new_primary = self.replica.port.to_string();
        self.primary.restart_with(Setup {
            config: None,
            args: ["--replicaof", "127.0.0.1", &new_primary]
                .map(String::from)
                .to_vec(),
        });
        crate::process::wait_until(
            "the old primary comes back as a replica in sync",
            Duration::from_secs(30),
            || info(&self.primary, "replication").contains("master_link_status:up"),
        );
    }

    /// Waits until the Sentinels name the replica primary and it says it is one; the time it
    /// took.
    pub fn wait_promoted(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        crate::process::wait_until("the Sentinels promote the replica", limit, || {
            self.primary_port() == self.replica.port
                && info(&self.replica, "replication").contains("role:master")
        });
        started.elapsed()
    }
}

/// A section of `INFO` from `server`; empty when it cannot answer.
pub fn info(server: &Redis, section: &str) -> String {
    redis::Client::open(server.url())
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut conn| redis::cmd("INFO").arg(section).query(&mut conn))
        .unwrap_or_default()
}
