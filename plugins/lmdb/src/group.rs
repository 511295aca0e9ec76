//! Groups of subjob records: the value of one entry of table `subjobs`.
//!
//! The subjobs of a job are kept [`GROUP_SIZE`] consecutive indices to an LMDB entry
//! (key: job id ++ group number, see [`crate::keys::group`]), so that LMDB's cost of an
//! entry (node header, key, slot: about 23 bytes) is paid once per group instead of once
//! per subjob. A group's value is a CBOR array with one item per index of the group, in
//! order: the subjob's compact record as a byte string, or null for an index that has no
//! subjob; trailing nulls are left out. Records are only ever split out of a group or
//! spliced into one as bytes; nothing here decodes them, so a record that does not decode
//! stays that subjob's problem alone. `docs/storage-format.md` says why 16.

use ganga_core::SubjobIndex;

/// Consecutive subjob indices per entry of table `subjobs`.
pub(crate) const GROUP_SIZE: u32 = 16;

/// The highest group number: the group of subjob index `u32::MAX`.
pub(crate) const MAX_GROUP: u32 = u32::MAX / GROUP_SIZE;

const MAJOR_BYTES: u8 = 2;
const MAJOR_ARRAY: u8 = 4;
const NULL: u8 = 0xf6;

/// The group a subjob belongs to.
pub(crate) fn group_of(index: SubjobIndex) -> u32 {
    index / GROUP_SIZE
}

/// The first subjob index of a group (at most [`MAX_GROUP`]).
pub(crate) fn first_index(group: u32) -> SubjobIndex {
    group.min(MAX_GROUP) * GROUP_SIZE
}

/// The last subjob index of a group.
pub(crate) fn last_index(group: u32) -> SubjobIndex {
    first_index(group) + (GROUP_SIZE - 1)
}

/// The records of a group by position (index less the group's first index), `None` where
/// the group has no subjob; borrowed from the stored value.
pub(crate) type Slots<'a> = Vec<Option<&'a [u8]>>;

/// Splits a group's value into its records, checking only the framing.
pub(crate) fn parse(value: &[u8]) -> Result<Slots<'_>, String> {
    let mut at = 0;
    let n = match head(value, &mut at)? {
        (MAJOR_ARRAY, n) => n,
        (major, _) => {
            return Err(format!(
                "a group of {} bytes is not an array of records (CBOR major type {major})",
                value.len()
            ));
        }
    };
    if n > u64::from(GROUP_SIZE) {
        return Err(format!(
            "a group of {n} records, more than the {GROUP_SIZE} a group holds"
        ));
    }
    let mut slots = Vec::with_capacity(n as usize);
    for k in 0..n {
        if value.get(at) == Some(&NULL) {
            at += 1;
            slots.push(None);
            continue;
        }
        match head(value, &mut at) {
            Ok((MAJOR_BYTES, len)) => {
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| at.checked_add(len))
                    .filter(|&end| end <= value.len())
                    .ok_or_else(|| {
                        format!(
                            "record {k} of the group is longer ({len} bytes) than what is left \
                             of the group's {} bytes",
                            value.len()
                        )
                    })?;
                slots.push(Some(&value[at..end]));
                at = end;
            }
            Ok((major, _)) => {
                return Err(format!(
                    "item {k} of the group is neither a record (a byte string) nor null (CBOR \
                     major type {major})"
                ));
            }
            Err(e) => return Err(format!("item {k} of the group: {e}")),
        }
    }
    if at != value.len() {
        return Err(format!(
            "{} bytes after the last record of the group",
            value.len() - at
        ));
    }
    Ok(slots)
}

/// The value of a group holding `slots` (trailing `None`s are left out).
pub(crate) fn encode<'a>(slots: impl IntoIterator<Item = Option<&'a [u8]>>) -> Vec<u8> {
    let mut slots: Vec<Option<&[u8]>> = slots.into_iter().collect();
    while slots.last() == Some(&None) {
        slots.pop();
    }
    let bytes: usize = slots.iter().flatten().map(|r| r.len() + 3).sum();
    let mut value = Vec::with_capacity(2 + slots.len() + bytes);
    put_head(&mut value, MAJOR_ARRAY, slots.len() as u64);
    for slot in slots {
        match slot {
            None => value.push(NULL),
            Some(record) => {
                put_head(&mut value, MAJOR_BYTES, record.len() as u64);
                value.extend_from_slice(record);
            }
        }
    }
    value
}

/// A group's value with the records at some positions replaced (or added); the other
/// records are copied as they are. `new` holds positions below [`GROUP_SIZE`].
pub(crate) fn splice<R: AsRef<[u8]>>(slots: &[Option<&[u8]>], new: &[(usize, R)]) -> Vec<u8> {
    let len = new
        .iter()
        .map(|(k, _)| k + 1)
        .max()
        .unwrap_or(0)
        .max(slots.len());
    let mut spliced: Vec<Option<&[u8]>> =
        (0..len).map(|k| slots.get(k).copied().flatten()).collect();
    for (k, record) in new {
        spliced[*k] = Some(record.as_ref());
    }
    encode(spliced)
}

/// Reads a CBOR head (major type and argument) of definite length at `*at`.
fn head(value: &[u8], at: &mut usize) -> Result<(u8, u64), String> {
    let first = *value
        .get(*at)
        .ok_or_else(|| "the group ends early".to_owned())?;
    *at += 1;
    let major = first >> 5;
    let info = first & 0x1f;
    let extra = match info {
        0..=23 => return Ok((major, u64::from(info))),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => {
            return Err(format!("CBOR head 0x{first:02x} is not a definite length"));
        }
    };
    let bytes = value
        .get(*at..*at + extra)
        .ok_or_else(|| "the group ends early".to_owned())?;
    *at += extra;
    Ok((
        major,
        bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)),
    ))
}

/// Writes the shortest CBOR head for `n`.
fn put_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("GANGA_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
        ))]

        /// Any bytes: framing that parses, or an error; never a panic, and the slots
        /// lie inside the value.
        #[test]
        fn groups_of_any_bytes_parse_or_are_refused(value in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(slots) = parse(&value) {
                prop_assert!(slots.len() <= GROUP_SIZE as usize);
                let total: usize = slots.iter().flatten().map(|r| r.len()).sum();
                prop_assert!(total <= value.len());
            }
        }

        /// Spliced groups parse back to what was put in.
        #[test]
        fn spliced_groups_parse_back(records in prop::collection::vec(
            prop::option::of(prop::collection::vec(any::<u8>(), 0..40)), 0..16
        )) {
            let value = encode(records.iter().map(|r| r.as_deref()));
            let slots = parse(&value).map_err(TestCaseError::fail)?;
            let mut expected: Vec<Option<&[u8]>> = records.iter().map(|r| r.as_deref()).collect();
            while expected.last() == Some(&None) {
                expected.pop();
            }
            prop_assert_eq!(slots, expected);
        }
    }

    #[test]
    fn groups_round_trip_and_leave_out_trailing_gaps() {
        let long = vec![7u8; 300];
        let value = encode([Some(&b"\x83\x00\x00\x80"[..]), None, Some(&long[..]), None]);
        // An array of 3, a byte string of 4, null, a byte string of 300.
        assert_eq!(&value[..7], b"\x83\x44\x83\x00\x00\x80\xf6");
        assert_eq!(&value[7..10], b"\x59\x01\x2c");
        let slots = parse(&value).unwrap();
        assert_eq!(slots.len(), 3);
        assert_eq!(slots[0], Some(&b"\x83\x00\x00\x80"[..]));
        assert_eq!(slots[1], None);
        assert_eq!(slots[2], Some(&long[..]));
        assert_eq!(encode([None, None]), b"\x80");
        assert_eq!(parse(b"\x80").unwrap(), Vec::<Option<&[u8]>>::new());
    }

    #[test]
    fn splicing_replaces_and_adds_records_and_copies_the_rest() {
        let value = encode([Some(&b"a"[..]), Some(&b"b"[..])]);
        let slots = parse(&value).unwrap();
        let spliced = splice(&slots, &[(1, b"BB".to_vec()), (4, b"e".to_vec())]);
        assert_eq!(
            parse(&spliced).unwrap(),
            vec![
                Some(&b"a"[..]),
                Some(&b"BB"[..]),
                None,
                None,
                Some(&b"e"[..])
            ]
        );
        assert_eq!(splice(&[], &[(0, b"x")]), encode([Some(&b"x"[..])]));
    }

    #[test]
    fn damaged_groups_are_refused_with_a_reason() {
        for (value, why) in [
            (&b""[..], "ends early"),
            (b"\x01", "not an array"),
            (b"\x9f\xff", "definite"),
            (b"\x82\x41a", "ends early"),
            (b"\x81\x45ab", "longer"),
            (b"\x81\x01", "neither"),
            (b"\x81\x41ab", "after the last"),
        ] {
            let e = parse(value).unwrap_err();
            assert!(e.contains(why), "{value:?}: {e}");
        }
        let too_many = [0x98, GROUP_SIZE as u8 + 1];
        assert!(parse(&too_many).unwrap_err().contains("more than"));
        assert_eq!(first_index(MAX_GROUP), u32::MAX - (GROUP_SIZE - 1));
        assert_eq!(
            parse(b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff")
                .map(|s| s.len())
                .ok(),
            None
        );
        assert_eq!(last_index(MAX_GROUP), u32::MAX);
        assert_eq!(group_of(u32::MAX), MAX_GROUP);
    }
}
