//! A `redis-server` of the test's own: a free loopback port, no persistence, killed when dropped,
//! and stopped and started again on the same port when a test needs Redis to go away.

use std::net::{Ipv4Addr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct Redis {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one on a free port; `None` (after [`crate::skip`]) where `redis-server` is not
    /// installed, which fails the test under `CI=true`.
    pub fn start() -> Option<Redis> {
        for _ in 0..5 {
            let mut redis = Redis {
                child: None,
                port: crate::free_port(),
                dir: tempfile::tempdir().expect("a temporary folder"),
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
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
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
