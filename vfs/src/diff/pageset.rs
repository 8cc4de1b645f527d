//! A set of page numbers as a bitmap: the diff keeps several sets over all
//! pages of a database (a tree's pages, the changed pages), where a hash set
//! cost more than the rest of a single-row diff.

#[derive(Debug, Clone, Default)]
pub struct PageSet {
    bits: Vec<u64>,
    len: usize,
}

impl PageSet {
    pub fn new() -> PageSet {
        PageSet::default()
    }

    /// Adds `p`; false when it was already there.
    pub fn insert(&mut self, p: u32) -> bool {
        let (w, b) = ((p / 64) as usize, p % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        let was = self.bits[w] & (1 << b) != 0;
        self.bits[w] |= 1 << b;
        self.len += !was as usize;
        !was
    }

    pub fn contains(&self, p: &u32) -> bool {
        self.bits.get((*p / 64) as usize).is_some_and(|w| w & (1 << (*p % 64)) != 0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits
            .iter()
            .enumerate()
            .flat_map(|(w, &bits)| (0..64u32).filter(move |b| bits & (1 << b) != 0).map(move |b| w as u32 * 64 + b))
    }
}

impl Extend<u32> for PageSet {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, it: I) {
        for p in it {
            self.insert(p);
        }
    }
}

impl<'a> Extend<&'a u32> for PageSet {
    fn extend<I: IntoIterator<Item = &'a u32>>(&mut self, it: I) {
        for p in it {
            self.insert(*p);
        }
    }
}

impl FromIterator<u32> for PageSet {
    fn from_iter<I: IntoIterator<Item = u32>>(it: I) -> PageSet {
        let mut s = PageSet::new();
        s.extend(it);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_are_counted_once_and_iterated_in_order() {
        let mut s = PageSet::new();
        assert!(s.insert(70) && s.insert(1) && !s.insert(70));
        assert_eq!(s.len(), 2);
        assert!(s.contains(&1) && !s.contains(&2) && !s.contains(&100_000));
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 70]);
    }
}
