//! What the `plannt serve` tests share: `plannt serve` processes on loopback ports, and an HTTP
//! client that reads the gateway's answers (a `redis-server` of the test's own is the test
//! kit's).

use std::fs::File;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use plannt_testkit::free_port;
use plannt_testkit::process::clean_command;
use serde_json::Value;

use crate::PLANNT;

/// `plannt …` with none of the caller's `PLANNT_*` settings, its files under `data_dir`, and
/// challenges not rate-limited.
pub fn plannt(data_dir: &Path) -> Command {
    let mut command = clean_command(PLANNT);
    command
        .env("PLANNT_DATA_DIR", data_dir)
        .env("XDG_CONFIG_HOME", data_dir.join("config"))
        .env("XDG_DATA_HOME", data_dir.join("data"))
        .env("PLANNT_CHALLENGES_PER_SECOND", "0");
    command
}

/// Runs a short command to its end (at most 60 s, then killed and failed).
pub fn run(command: Command, what: &str) -> Output {
    plannt_testkit::process::run(command, Duration::from_secs(60), what)
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

    /// The process id, to send it a signal.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// The value of the header `name` of a response, if it is there and text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
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
    let status = response.status().as_u16();
    let x_l402 = header(&response, "x-l402");
    let reason_header = header(&response, "x-l402-reason");
    // The L402 challenge among the `WWW-Authenticate` values (MPP's comes first by default).
    let www_authenticate = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("L402 "))
        .map(str::to_string);
    let retry_after = header(&response, "retry-after");
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
