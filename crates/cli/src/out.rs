//! Standard output and standard error, as every command writes them.
//!
//! A closed standard output (`plannt ledger | head -1`: the reader is gone) is not an error of
//! the command: the write returns [`Error::Closed`], and `main` ends the command quietly with
//! exit status 0, as ripgrep and most command-line tools do. A closed standard error is ignored:
//! there is no one left to tell. `println!` and `eprintln!` would panic in both cases.
//!
//! ```text
//! outln!(…)?   a line on standard output      Error::Closed when the reader is gone
//! out!(…)?     text on standard output        likewise
//! errln!(…)    a line on standard error       never fails
//! ```
//!
//! And the words of counts: [`sats`] (`1 sat`, `21 sats`) and [`plural`].

use std::io::{ErrorKind, Write};

use crate::error::Error;

/// Writes to standard output and flushes: [`Error::Closed`] when its reader is gone.
pub fn print(args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.flush())
        .map_err(|e| write_failed("cannot write to standard output", e))
}

/// Writes bytes to standard output and flushes: [`Error::Closed`] when its reader is gone.
pub fn print_bytes(bytes: &[u8]) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| write_failed("cannot write to standard output", e))
}

/// Writes to standard error, ignoring a closed or failing one.
pub fn eprint(args: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.flush());
}

/// A failed write of `context`: [`Error::Closed`] if the reader of the pipe is gone.
pub fn write_failed(context: &str, e: std::io::Error) -> Error {
    if e.kind() == ErrorKind::BrokenPipe {
        Error::Closed
    } else {
        Error::failed(context, e)
    }
}

/// A line on standard output, as `println!`: `Result<(), Error>`, [`Error::Closed`] when the
/// reader is gone.
macro_rules! outln {
    () => {
        $crate::out::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Text on standard output, as `print!`: `Result<(), Error>`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::print(format_args!($($arg)*))
    };
}

/// A line on standard error, as `eprintln!`, but a closed standard error is ignored.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::out::eprint(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// `1 sat`, `21 sats`.
pub fn sats(n: u64) -> String {
    format!("{n} {}", plural(n, "sat", "sats"))
}

/// `one` for 1, `many` for any other count.
pub fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_plural_they_need() {
        assert_eq!(sats(0), "0 sats");
        assert_eq!(sats(1), "1 sat");
        assert_eq!(sats(21), "21 sats");
        assert_eq!(plural(1, "payment", "payments"), "payment");
        assert_eq!(plural(2, "payment", "payments"), "payments");
    }

    #[test]
    fn only_a_broken_pipe_is_a_closed_output() {
        let closed = write_failed("x", std::io::Error::from(ErrorKind::BrokenPipe));
        assert!(matches!(closed, Error::Closed), "{closed:?}");
        let full = write_failed("cannot write out.bin", std::io::Error::other("disk full"));
        assert_eq!(full.to_string(), "cannot write out.bin: disk full");
    }
}
