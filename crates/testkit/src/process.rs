//! Processes for tests: a command with none of the caller's `PLANNT_*` settings, and waiting for
//! a process, or for a condition, with a deadline that fails the test instead of hanging it.

use std::ffi::OsStr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// `program` with none of the caller's `PLANNT_*` variables (a developer's own settings must
/// not leak into a test) and no standard input.
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PLANNT_") {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Waits for `child`, killing it and failing the test after `limit`.
pub fn wait(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a short command to its end, its output captured: killed and failed after `limit`. The
/// output must fit the pipes (some tens of KiB) while it runs.
pub fn run(mut command: Command, limit: Duration, what: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    wait(&mut child, limit, what);
    child.wait_with_output().expect("the child's output")
}

/// Waits until `done` holds, polling every 20 ms; fails the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
