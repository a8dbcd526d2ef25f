//! Fuzzing helpers for the tests of repic's parsers (records, databases, query lists, result files, configs,
//! checkpoint files): a property test draws byte edits and applies them to a valid document, so that the inputs
//! stay close to what a parser really sees (a deleted bracket, a changed digit, a stray quote) rather than noise,
//! from a fixed seed so that CI sees the same cases every run.

use proptest::prelude::*;

/// One edit at a relative position (`at` is taken modulo the length): delete up to `len` bytes, insert `byte`,
/// or replace the byte there by `byte`.
#[derive(Clone, Copy, Debug)]
pub enum Edit {
    /// Remove `len` bytes from `at`.
    Delete { at: usize, len: usize },
    /// Insert `byte` before `at`.
    Insert { at: usize, byte: u8 },
    /// Replace the byte at `at`.
    Replace { at: usize, byte: u8 },
}

/// `src` with `edits` applied in order, as bytes (the result need not be UTF-8; it is read lossily).
pub fn apply_edits(src: &str, edits: &[Edit]) -> String {
    let mut b = src.as_bytes().to_vec();
    for e in edits {
        let n = b.len().max(1);
        match *e {
            Edit::Delete { at, len } => {
                let at = at % n;
                let end = (at + len).min(b.len());
                if at < end {
                    b.drain(at..end);
                }
            }
            Edit::Insert { at, byte } => b.insert((at % (b.len() + 1)).min(b.len()), byte),
            Edit::Replace { at, byte } => {
                if !b.is_empty() {
                    b[at % n] = byte;
                }
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// One to five edits, their bytes drawn from anything or from `alphabet` (the syntax of the format under test).
pub fn edits(alphabet: &'static [u8]) -> impl Strategy<Value = Vec<Edit>> {
    let byte = prop_oneof![any::<u8>(), proptest::sample::select(alphabet.to_vec())];
    let edit = prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), byte.clone()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        (any::<usize>(), byte).prop_map(|(at, byte)| Edit::Replace { at, byte }),
    ];
    proptest::collection::vec(edit, 1..6)
}

/// `cases` cases from a fixed seed, so that CI sees the same inputs every run (set PROPTEST_RNG_SEED to explore).
pub fn fixed(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x5EED_F422);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_by_hand() {
        let e =
            [Edit::Delete { at: 1, len: 2 }, Edit::Insert { at: 0, byte: b'>' }, Edit::Replace { at: 7, byte: b'!' }];
        assert_eq!(apply_edits("abcdef", &e), ">a!ef");
        assert_eq!(apply_edits("abcdef", &[Edit::Replace { at: 9, byte: b'Z' }]), "abcZef");
        assert_eq!(apply_edits("", &[Edit::Delete { at: 3, len: 9 }, Edit::Replace { at: 1, byte: 1 }]), "");
        assert_eq!(apply_edits("a", &[Edit::Replace { at: 0, byte: 0xff }]), "\u{fffd}");
    }
}
