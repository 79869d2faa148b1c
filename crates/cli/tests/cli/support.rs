//! What the `plannt get` tests share: the test kit's hostile L402 server, run on a runtime of
//! its own so a test can run the binary synchronously, a home for each test (config, data and
//! ledger in a temporary folder), `plannt mcp` spoken to over stdio, and the test kit's keeper
//! (a gateway that keeps paid answers and loses the first on purpose) in front of the server.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use plannt_client::Ledger;
pub use plannt_testkit::fakes::random32;
pub use plannt_testkit::hostile::{Hostile, Scenario, Shared};
pub use plannt_testkit::keeper::{Fault, Keeper};
use serde_json::{Value, json};

use crate::PLANNT;

/// The dev account `plannt` pays from in these tests.
pub const PAYER: &str = "cli";
/// What each dev account starts with, in msat.
pub const START_MSAT: u64 = 1_000_000_000;

/// A hostile server on a runtime of its own.
pub struct Server {
    pub hostile: Hostile,
    /// Runs the server (and its keepers): kept for as long as the server is used.
    runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(scenario: Scenario, price_sats: u64) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let hostile = runtime.block_on(Hostile::start(scenario, price_sats));
        Server { hostile, runtime }
    }

    /// A URL on the server, as text.
    pub fn url(&self, path: &str) -> String {
        self.hostile.url(path).to_string()
    }

    /// The `dev+http://` wallet of [`PAYER`] on the server's dev network.
    pub fn wallet(&self) -> String {
        format!("dev+http://{}?account={PAYER}", self.hostile.addr)
    }

    /// The payer's balance in msat.
    pub fn balance(&self) -> u64 {
        self.hostile.network().balance(PAYER)
    }

    /// What the server's dev network has been paid, in msat.
    pub fn received(&self) -> u64 {
        self.hostile
            .network()
            .balance(plannt_client::lightning::dev::RECEIVER_ACCOUNT)
            - START_MSAT
    }

    /// Invoices the network has settled.
    pub fn paid_count(&self) -> usize {
        self.hostile.network().paid_count()
    }

    pub fn shared(&self) -> &Shared {
        &self.hostile.shared
    }

    /// A gateway in front of this server that keeps paid answers and meets the first paid
    /// request with `fault`, on the server's runtime.
    pub fn keeper(&self, fault: Fault) -> Keeper {
        self.runtime
            .block_on(Keeper::start(self.hostile.addr, fault))
    }
}

/// A user of `plannt`: a home with no config file, a data folder and a ledger of its own.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        Home { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `plannt ARGS` with a clean environment: this home, no proxy, no inherited `PLANNT_*`.
    pub fn plannt(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PLANNT);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("PLANNT_CONFIG_DIR", self.dir.path().join("config"))
            .env("PLANNT_DATA_DIR", self.data_dir())
            .stdin(Stdio::null());
        command
    }

    /// Runs `plannt ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.plannt(args).output().unwrap()
    }

    /// The ledger `plannt` writes.
    pub fn ledger(&self) -> Ledger {
        Ledger::open(&self.data_dir().join("ledger.sqlite")).unwrap()
    }
}

/// The exit code, or a panic naming the signal.
pub fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {}", describe(output)))
}

/// The output, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ({} bytes)\n{}\n--- stderr\n{}",
        output.status,
        output.stdout.len(),
        String::from_utf8_lossy(&output.stdout[..output.stdout.len().min(2000)]),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Waits until `done` holds, for at most a minute (a generous bound on a loaded machine; no
/// time is asserted).
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    plannt_testkit::process::wait_until(what, Duration::from_secs(60), done);
}

/// `plannt mcp` on stdio, spoken to in JSON-RPC lines; what it writes on stderr goes to a file
/// of the home ([`Mcp::stderr`]).
pub struct Mcp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    stderr: PathBuf,
}

impl Mcp {
    /// Starts `plannt mcp` with `env` and initializes a session.
    pub fn start(home: &Home, env: &[(&str, &str)]) -> Mcp {
        let stderr = home.path().join("mcp-stderr.log");
        let mut command = home.plannt(&["mcp"]);
        command
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = command.spawn().unwrap();
        let mut mcp = Mcp {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            next_id: 1,
            stderr,
        };
        let init = mcp.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "attacks", "version": "1"}
            }),
        );
        assert!(init["result"]["serverInfo"].is_object(), "{init}");
        mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        mcp
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn send(&mut self, message: &Value) {
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "plannt mcp closed its output"
            );
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id {
                return message;
            }
        }
    }

    /// A tool's result: `structuredContent`, with `isError`.
    pub fn call(&mut self, tool: &str, arguments: Value) -> (bool, Value) {
        let answer = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        let result = &answer["result"];
        assert!(result.is_object(), "{answer}");
        (
            result["isError"] == true,
            result["structuredContent"].clone(),
        )
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
