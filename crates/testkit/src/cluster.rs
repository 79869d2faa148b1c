//! A Redis Cluster of the test's own: `redis-server` primaries on loopback, the 16384 slots
//! split among them, the nodes met, and `cluster_state:ok` on every node before it is handed
//! over.

use std::time::{Duration, Instant};

use crate::redis::{Redis, Setup};

/// How many slots a cluster has.
pub const SLOTS: u16 = 16384;

/// A running cluster of primaries, killed when dropped.
pub struct RedisCluster {
    /// Its nodes, in slot order: node `i` serves the `i`th equal share of the slots.
    pub nodes: Vec<Redis>,
    /// Their cluster buses' ports.
    buses: Vec<u16>,
    /// Replicas added with [`RedisCluster::add_replica`].
    pub replicas: Vec<Redis>,
}

impl RedisCluster {
    /// Starts `primaries` nodes and joins them into one cluster; `None` (after [`crate::skip`])
    /// where `redis-server` is not installed.
    pub fn start(primaries: usize) -> Option<RedisCluster> {
        assert!(primaries > 0, "a cluster needs a node");
        let mut nodes = Vec::with_capacity(primaries);
        let mut buses = Vec::with_capacity(primaries);
        for _ in 0..primaries {
            let (node, bus) = start_node(&[])?;
            nodes.push(node);
            buses.push(bus);
        }
        let cluster = RedisCluster {
            nodes,
            buses,
            replicas: Vec::new(),
        };
        let share = SLOTS as usize / primaries;
        for (i, node) in cluster.nodes.iter().enumerate() {
            let first = i * share;
            let last = if i + 1 == primaries {
                SLOTS as usize - 1
            } else {
                first + share - 1
            };
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut node.connection())
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        let mut first = cluster.nodes[0].connection();
        for (node, bus) in cluster.nodes.iter().zip(&cluster.buses).skip(1) {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .arg(bus)
                .query(&mut first)
                .expect("CLUSTER MEET");
        }
        cluster.wait_ok(Duration::from_secs(30));
        Some(cluster)
    }

    /// Waits until every node says `cluster_state:ok` and knows every other.
    fn wait_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let known = format!(
            "cluster_known_nodes:{}",
            self.nodes.len() + self.replicas.len()
        );
        for node in self.nodes.iter().chain(&self.replicas) {
            let mut conn = node.connection();
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut conn)
                    .expect("CLUSTER INFO");
                if info.contains("cluster_state:ok") && info.contains(&known) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not come up within {limit:?}: node {}: {info}",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `redis+cluster://127.0.0.1:<port>,…`: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The node that serves `key`'s slot, by asking the cluster (`CLUSTER KEYSLOT`).
    pub fn node_of(&self, key: &str) -> &Redis {
        let slot = self.slot_of(key);
        let share = SLOTS as usize / self.nodes.len();
        &self.nodes[(usize::from(slot) / share).min(self.nodes.len() - 1)]
    }

    /// `key`'s slot, by asking the cluster.
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].connection())
            .expect("CLUSTER KEYSLOT")
    }
}

impl RedisCluster {
    /// Starts one more node as a replica of node `primary`, and waits until it is in sync.
    pub fn add_replica(&mut self, primary: usize) {
        let Some((replica, _)) = start_node(&["--repl-diskless-sync-delay", "0"]) else {
            panic!("redis-server ran a moment ago and does not now");
        };
        let mut conn = replica.connection();
        let _: () = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(self.nodes[primary].port)
            .arg(self.buses[primary])
            .query(&mut conn)
            .expect("CLUSTER MEET");
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[primary].connection())
            .expect("CLUSTER MYID");
        // The replica must know the primary (by gossip) before it can follow it.
        crate::process::wait_until(
            "the new node follows its primary",
            Duration::from_secs(20),
            || {
                redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&id)
                    .query::<()>(&mut conn)
                    .is_ok()
            },
        );
        crate::process::wait_until(
            "the replica is in sync with its primary",
            Duration::from_secs(20),
            || crate::sentinel::info(&replica, "replication").contains("master_link_status:up"),
        );
        // And the primary counts it: `WAIT` only hears from replicas it lists as online.
        let listed = &self.nodes[primary];
        crate::process::wait_until(
            "the primary lists its replica online",
            Duration::from_secs(20),
            || crate::sentinel::info(listed, "replication").contains("state=online"),
        );
        self.replicas.push(replica);
        self.wait_ok(Duration::from_secs(30));
    }
}

/// Starts a cluster node with `more` arguments; the node and its bus's port.
fn start_node(more: &[&str]) -> Option<(Redis, u16)> {
    let bus = std::cell::Cell::new(0);
    let node = Redis::start_with(|_| {
        // The bus on a port of its own: port + 10000 may be taken, or past 65535.
        bus.set(crate::free_port());
        let port = bus.get().to_string();
        Setup {
            config: None,
            args: [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &port,
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]
            .iter()
            .chain(more)
            .map(|s| s.to_string())
            .collect(),
        }
    })?;
    Some((node, bus.get()))
}
