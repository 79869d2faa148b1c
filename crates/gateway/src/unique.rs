//! Values that must never repeat, made without a system call: a random prefix drawn once per
//! process from the operating system, and a counter. Claim tickets and the nonces of sealed
//! answers are made here, once per paid request each.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 16 bytes no other call of this process makes, and another process makes only if it draws
/// the same 64-bit prefix and reaches the same count.
pub(crate) fn unique16() -> [u8; 16] {
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        bytes
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(prefix);
    out[8..].copy_from_slice(&count.to_be_bytes());
    out
}

/// 12 bytes for a nonce: the last 4 bytes of the prefix and the count.
pub(crate) fn unique12() -> [u8; 12] {
    let mut out = [0u8; 12];
    out.copy_from_slice(&unique16()[4..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn never_repeats_within_a_process_even_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| unique16()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            for value in thread.join().unwrap() {
                assert!(seen.insert(value), "a value came twice");
            }
        }
        let nonces: HashSet<_> = (0..10_000).map(|_| unique12()).collect();
        assert_eq!(nonces.len(), 10_000);
    }
}
