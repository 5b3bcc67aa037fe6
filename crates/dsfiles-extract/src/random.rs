//! Deterministic random strings for the property tests: a xorshift generator and strings
//! joined from a test's dangerous pieces, so that a failure replays exactly.

/// A xorshift64 generator from `seed` (not zero).
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// A string of up to `max - 1` pieces of `pieces`, drawn with `next`.
pub(crate) fn joined(pieces: &[&str], max: u64, next: &mut impl FnMut() -> u64) -> String {
    let len = next() % max;
    (0..len)
        .map(|_| pieces[(next() % pieces.len() as u64) as usize])
        .collect()
}
