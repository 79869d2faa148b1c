//! What the `plannt get` tests share: the test kit's hostile L402 server, run on a runtime of
//! its own so a test can run the binary synchronously, and a home for each test (config, data
//! and ledger in a temporary folder).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use plannt_client::Ledger;
pub use plannt_testkit::fakes::random32;
pub use plannt_testkit::hostile::{Hostile, Scenario, Shared};

use crate::PLANNT;

/// The dev account `plannt` pays from in these tests.
pub const PAYER: &str = "cli";
/// What each dev account starts with, in msat.
pub const START_MSAT: u64 = 1_000_000_000;

/// A hostile server on a runtime of its own.
pub struct Server {
    pub hostile: Hostile,
    /// Runs the server: kept for as long as the server is used.
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(scenario: Scenario, price_sats: u64) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let hostile = runtime.block_on(Hostile::start(scenario, price_sats));
        Server {
            hostile,
            _runtime: runtime,
        }
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
