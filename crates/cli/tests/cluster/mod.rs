//! What the multi-process gateway tests share: `plannt serve` processes on loopback ports, a
//! `redis-server` of the test's own, and an HTTP client that reads the gateway's answers.

#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PLANNT: &str = env!("CARGO_BIN_EXE_plannt");

/// A free loopback port (free when asked; a process may take it before we bind it).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `plannt …` with none of the caller's `PLANNT_*` settings, its files under `data_dir`.
pub fn plannt(data_dir: &Path) -> Command {
    let mut command = Command::new(PLANNT);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PLANNT_") {
            command.env_remove(name);
        }
    }
    command
        .env("PLANNT_DATA_DIR", data_dir)
        .env("XDG_CONFIG_HOME", data_dir.join("config"))
        .env("XDG_DATA_HOME", data_dir.join("data"))
        .env("PLANNT_CHALLENGES_PER_SECOND", "0")
        .stdin(Stdio::null());
    command
}

/// Runs a short command to its end (at most 60 s, then killed and failed).
pub fn run(mut command: Command, what: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `plannt decode --json TOKEN`.
pub fn decode(data_dir: &Path, token: &str) -> Value {
    let mut command = plannt(data_dir);
    command.args(["decode", "--json", token]);
    let output = run(command, "plannt decode");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A `plannt serve` process on a loopback port, its log in its data directory; killed when
/// dropped.
pub struct Serve {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Serve {
    /// Starts `plannt serve ARGS` with `PLANNT_LISTEN` on a free port and the extra environment
    /// `env`, and waits until `/status` answers 200.
    pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        Serve::start_at(data_dir, free_port(), args, env)
    }

    /// Like [`Serve::start`], on `port`: to start a gateway again where its clients look for
    /// it, after [`Serve::stop`].
    pub fn start_at(data_dir: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> Serve {
        std::fs::create_dir_all(data_dir).unwrap();
        let mut n = 0;
        let log = loop {
            let candidate = data_dir.join(format!("serve.{n}.log"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let mut command = plannt(data_dir);
        command
            .arg("serve")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().unwrap();
        let mut serve = Serve { child, port, log };
        serve.wait_ready();
        serve
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("plannt serve exited ({status}):\n{}", self.log());
            }
            if status_of(self.port) == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "plannt serve did not answer /status with 200 within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The status of `GET /status` on `port`, over plain blocking TCP (no runtime: the tests may be
/// inside one); `None` if the connection or the read fails.
fn status_of(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// An HTTP client for loopback: no proxy, every request bounded.
pub fn client() -> reqwest::Client {
    plannt_lightning::install_tls_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One answer: status, the `x-l402`, `x-l402-reason` and `retry-after` headers, and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub x_l402: Option<String>,
    pub reason_header: Option<String>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Answer {
    pub fn reason(&self) -> Option<&str> {
        self.body["reason"].as_str()
    }

    /// The challenge's macaroon and invoice, from the body (checked against the header).
    pub fn challenge(&self) -> (String, String) {
        assert_eq!(self.status, 402, "{self:?}");
        let macaroon = self.body["macaroon"]
            .as_str()
            .expect("a macaroon")
            .to_string();
        let invoice = self.body["invoice"]
            .as_str()
            .expect("an invoice")
            .to_string();
        let header = self.www_authenticate.as_deref().unwrap_or_default();
        assert_eq!(
            header,
            format!("L402 macaroon=\"{macaroon}\", invoice=\"{invoice}\""),
            "{self:?}"
        );
        (macaroon, invoice)
    }
}

/// A GET with an optional `Authorization` value; panics if the gateway does not answer.
pub async fn get(client: &reqwest::Client, url: &str, authorization: Option<&str>) -> Answer {
    let mut request = client.get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = response.status().as_u16();
    let x_l402 = header("x-l402");
    let reason_header = header("x-l402-reason");
    let www_authenticate = header("www-authenticate");
    let retry_after = header("retry-after");
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        x_l402,
        reason_header,
        www_authenticate,
        retry_after,
        body,
    }
}

/// Pays `invoice` on the dev network of the gateway at `serve` (the one that issued it), through
/// `POST /_plannt/dev/pay`; returns the preimage.
pub async fn pay(client: &reqwest::Client, serve: &Serve, invoice: &str) -> String {
    let response = client
        .post(serve.url("/_plannt/dev/pay"))
        .json(&serde_json::json!({"invoice": invoice, "account": "t"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "dev pay: {body}");
    let preimage = body["preimage"].as_str().expect("a preimage").to_string();
    assert_eq!(preimage.len(), 64, "{body}");
    assert!(preimage.bytes().all(|b| b.is_ascii_hexdigit()), "{body}");
    preimage
}

/// A fresh paid token from `serve` on `path`: the `Authorization` value.
pub async fn token(client: &reqwest::Client, serve: &Serve, path: &str) -> String {
    let challenge = get(client, &serve.url(path), None).await;
    let (macaroon, invoice) = challenge.challenge();
    let preimage = pay(client, serve, &invoice).await;
    format!("L402 {macaroon}:{preimage}")
}

/// A `redis-server` of the test's own on a loopback port, without persistence; killed when
/// dropped. It can be stopped and started again on the same port.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one on a free port, or returns `None` after a loud notice where `redis-server` is
    /// not installed. Under `CI=true` a missing `redis-server` fails the test.
    pub fn start() -> Option<Redis> {
        for _ in 0..5 {
            let mut redis = Redis {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().unwrap(),
            };
            match redis.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let message = "redis-server is not installed (Debian: apt-get install \
                                   redis-server; scripts/test installs it)";
                    assert!(
                        !in_ci(),
                        "{message}: CI=true, so the Redis tests cannot be skipped"
                    );
                    eprintln!("\n!!! SKIPPED a Redis test: {message}\n");
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

    /// Whether it listens within 10 s (false if it exited: the port was taken).
    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let child = self.child.as_mut().unwrap();
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits until the port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with an empty data set (no persistence).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap();
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
