//! A `redis-server` of the test's own: a free loopback port, no persistence, killed when dropped,
//! and stopped and started again on the same port when a test needs Redis to go away. Started
//! with settings of its own, it is a cluster node, a replica or a Sentinel ([`crate::cluster`],
//! [`crate::sentinel`]).

use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct Redis {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    setup: Setup,
}

/// What a `redis-server` starts with besides its port, folder and no persistence.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// A configuration file's text, written into its folder and named first (a Sentinel needs
    /// one it can rewrite).
    pub config: Option<String>,
    /// More arguments: `--cluster-enabled yes`, `--replicaof 127.0.0.1 6379`, `--sentinel`…
    pub args: Vec<String>,
}

impl Redis {
    /// Starts one on a free port; `None` (after [`crate::skip`]) where `redis-server` is not
    /// installed, which fails the test under `CI=true`.
    pub fn start() -> Option<Redis> {
        Redis::start_with(|_| Setup::default())
    }

    /// Starts one on a free port with what `setup` makes for that port (the setup may name
    /// more free ports: a cluster bus's, say). `None` as for [`Redis::start`].
    pub fn start_with(setup: impl Fn(u16) -> Setup) -> Option<Redis> {
        for _ in 0..5 {
            let port = crate::free_port();
            let mut redis = Redis {
                child: None,
                port,
                dir: tempfile::tempdir().expect("a temporary folder"),
                setup: setup(port),
            };
            match redis.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    crate::skip(
                        "redis-server is not installed (Debian: apt-get install redis-server; \
                         scripts/test installs it)",
                    );
                    return None;
                }
                Err(e) => panic!("cannot start redis-server: {e}"),
                Ok(()) => {}
            }
            if redis.wait_listening() {
                return Some(redis);
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.setup.config {
            let path = self.dir.path().join("redis.conf");
            std::fs::write(&path, config)?;
            command.arg(path);
        }
        let child = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.setup.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether it listens within 10 s (false if it exited: the port was taken meanwhile).
    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Some(child) = self.child.as_mut() else {
                return false;
            };
            if !matches!(child.try_wait(), Ok(None)) {
                return false;
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Its process id, while it runs (to stop it with a signal, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A plain (blocking) connection to it, for a test's own commands.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .unwrap_or_else(|e| panic!("cannot connect to redis-server on {}: {e}", self.port))
    }

    /// Its folder: its configuration file, cluster state and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits for it to go.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with an empty data set (no persistence), and `setup`
    /// from now on.
    pub fn restart_with(&mut self, setup: Setup) {
        self.setup = setup;
        self.restart();
    }

    /// Starts it again on the same port, with an empty data set (no persistence).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().expect("redis-server starts again");
        assert!(
            self.wait_listening(),
            "redis-server did not start again on port {}",
            self.port
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
