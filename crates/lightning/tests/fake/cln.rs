//! Re-exports `plannt_testkit::fakes::cln` for the tests that still include it by path.

pub use plannt_testkit::fakes::cln::*;
