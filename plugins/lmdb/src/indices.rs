//! Which subjob indices a job has records for, kept with its dictionary (format 3): a
//! read of a range of subjobs knows which records it must find, so that a group of
//! records hidden by damage (its key changed, a page of the table lost entries) is
//! reported instead of read as "no such subjobs".

use std::ops::Range;

use ganga_core::SubjobIndex;

/// Inclusive ranges of indices, sorted, neither overlapping nor touching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Indices(Vec<(SubjobIndex, SubjobIndex)>);

impl Indices {
    /// From ranges as [`ganga_records::Dictionary::decode_with_indices`] checked
    /// them.
    pub(crate) fn from_ranges(ranges: Vec<(SubjobIndex, SubjobIndex)>) -> Indices {
        Indices(ranges)
    }

    pub(crate) fn ranges(&self) -> &[(SubjobIndex, SubjobIndex)] {
        &self.0
    }

    pub(crate) fn contains(&self, index: SubjobIndex) -> bool {
        let k = self.0.partition_point(|&(first, _)| first <= index);
        k > 0 && self.0[k - 1].1 >= index
    }

    /// Adds `index`; whether it was new.
    pub(crate) fn insert(&mut self, index: SubjobIndex) -> bool {
        if self.contains(index) {
            return false;
        }
        let k = self.0.partition_point(|&(first, _)| first <= index);
        let joins_prev = k > 0 && self.0[k - 1].1.checked_add(1) == Some(index);
        let joins_next = k < self.0.len() && index.checked_add(1) == Some(self.0[k].0);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.0[k - 1].1 = self.0[k].1;
                self.0.remove(k);
            }
            (true, false) => self.0[k - 1].1 = index,
            (false, true) => self.0[k].0 = index,
            (false, false) => self.0.insert(k, (index, index)),
        }
        true
    }

    /// The indices in `range`, in order.
    pub(crate) fn within(
        &self,
        range: Range<SubjobIndex>,
    ) -> impl Iterator<Item = SubjobIndex> + '_ {
        self.0.iter().flat_map(move |&(first, last)| {
            let from = first.max(range.start);
            let to = u64::from(last).min(u64::from(range.end).saturating_sub(1));
            (u64::from(from)..=to).map(|i| i as SubjobIndex)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_merge_into_ranges() {
        let mut ix = Indices::default();
        for i in [0, 1, 2, 5, 4, 9, 3] {
            assert!(ix.insert(i));
        }
        assert!(!ix.insert(4));
        assert_eq!(ix.ranges(), &[(0, 5), (9, 9)]);
        assert_eq!(ix.within(3..10).collect::<Vec<_>>(), vec![3, 4, 5, 9]);
        assert_eq!(ix.within(6..9).count(), 0);
        assert!(ix.contains(9) && !ix.contains(8) && !ix.contains(10));
        assert!(ix.insert(u32::MAX));
        assert_eq!(ix.within(0..u32::MAX).count(), 7);
    }
}
