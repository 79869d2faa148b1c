//! First-party caveats: `Caveat::parse` on arbitrary bytes, and `check_caveats` on the input split
//! on `\n` into a caveat list, for route `demo` at a fixed time with a conditions checker that
//! knows one condition (`max_tokens`).
//!
//! Checks that neither panics; that an accepted caveat printed with `Display` parses back equal;
//! that an accepted list never grants an expiry already passed; and that caveats only narrow:
//! when a list is accepted, so is every prefix of it that still holds its first `services` caveat.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plannt_l402::{Caveat, Grant, check_caveats};

const ROUTE: &str = "demo";
const NOW: u64 = 1_800_000_000;
/// Prefixes are re-checked only for short lists, to keep each run fast.
const MAX_PREFIX_CHECKS: usize = 16;

fn conditions(name: &str, value: &str) -> Option<bool> {
    match name {
        "max_tokens" => Some(value.parse::<u32>().is_ok_and(|v| v <= 1000)),
        _ => None,
    }
}

fn check(caveats: &[&[u8]]) -> Result<Grant, plannt_l402::CaveatFailure> {
    check_caveats(caveats.iter().copied(), ROUTE, NOW, &conditions)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(caveat) = Caveat::parse(data) {
        let text = caveat.to_string();
        assert_eq!(Caveat::parse(text.as_bytes()), Ok(caveat));
    }

    let caveats: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let Ok(grant) = check(&caveats) else {
        return;
    };
    assert!(grant.valid_until.is_none_or(|t| NOW < t));
    if caveats.len() <= MAX_PREFIX_CHECKS {
        let first_services = caveats
            .iter()
            .position(|c| matches!(Caveat::parse(c), Ok(Caveat::Services(_))))
            .expect("an accepted list names its services");
        for end in first_services + 1..caveats.len() {
            assert!(
                check(&caveats[..end]).is_ok(),
                "dropping caveats {end}.. refused an accepted token"
            );
        }
    }
});
