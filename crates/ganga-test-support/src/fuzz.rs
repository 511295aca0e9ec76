//! Inputs for property tests of readers (job files, Ganga's XML and Python literals):
//! random mutations of a valid document, which reach much further into a reader than
//! random bytes do, and grammar pieces to splice in.

use proptest::prelude::*;

/// One change to a document.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace the byte at (position mod length).
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// Copy a slice elsewhere (repeats tags and brackets, opens without closing).
    Duplicate(usize, usize, usize),
    Truncate(usize),
}

/// A mutation that sometimes splices in one of `pieces` (bits of the reader's grammar),
/// and otherwise sets, inserts, deletes, duplicates or truncates bytes.
pub fn mutation(pieces: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let piece = prop::sample::select(pieces).prop_map(|p| p.as_bytes().to_vec());
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        (any::<usize>(), piece).prop_map(|(p, s)| Mutation::Insert(p, s)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, s)| Mutation::Insert(p, s)),
        (any::<usize>(), 1..64usize).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1..256usize, any::<usize>())
            .prop_map(|(from, n, to)| Mutation::Duplicate(from, n, to)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// `bytes` with `mutations` applied in order.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Set(p, b) => {
                if let Some(x) = bytes.get_mut(p % len) {
                    *x = *b;
                }
            }
            Mutation::Insert(p, s) => {
                let at = p % (bytes.len() + 1);
                bytes.splice(at..at, s.iter().copied());
            }
            Mutation::Delete(p, n) => {
                let at = p % len;
                let end = at.saturating_add(*n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Duplicate(from, n, to) => {
                let from = from % len;
                let end = from.saturating_add(*n).min(bytes.len());
                let piece = bytes.get(from..end).unwrap_or_default().to_vec();
                let to = to % (bytes.len() + 1);
                bytes.splice(to..to, piece);
            }
            Mutation::Truncate(p) => bytes.truncate(p % len),
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_within_the_document() {
        let doc = b"<a>text</a>".to_vec();
        let out = mutate(
            doc.clone(),
            &[
                Mutation::Set(usize::MAX, b'x'),
                Mutation::Delete(3, usize::MAX),
                Mutation::Duplicate(0, 300, usize::MAX),
                Mutation::Insert(1, b"<b>".to_vec()),
                Mutation::Truncate(5),
            ],
        );
        assert_eq!(out, b"<<b>a".to_vec());
        assert!(mutate(Vec::new(), &[Mutation::Set(3, 1), Mutation::Delete(0, 9)]).is_empty());
    }
}
