//! The Lightning fakes live in the test kit (`plannt_testkit::fakes`); this file and its
//! neighbours only re-export them for the tests that still include them by path.

pub use plannt_testkit::fakes::*;
