//! Lookups in maps keyed by `(String, String)` (namespace and name, group-version and kind)
//! without building the key: `map.get(pair(namespace, name))` borrows both strings where
//! `map.get(&(namespace.to_string(), name.to_string()))` allocates two.

use std::borrow::Borrow;
use std::cmp::Ordering;

/// Two strings, owned or borrowed, compared as the tuple `(String, String)` compares.
pub(crate) trait StrPair {
    fn pair(&self) -> (&str, &str);
}

impl StrPair for (String, String) {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl StrPair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn StrPair + 'a> for (String, String) {
    fn borrow(&self) -> &(dyn StrPair + 'a) {
        self
    }
}

impl PartialEq for dyn StrPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn StrPair + '_ {}

impl PartialOrd for dyn StrPair + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn StrPair + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.pair().cmp(&other.pair())
    }
}

/// The key `(first, second)` for a lookup, borrowed.
pub(crate) fn pair<'a>(key: &'a (&'a str, &'a str)) -> &'a (dyn StrPair + 'a) {
    key
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::pair;

    #[test]
    fn a_borrowed_pair_finds_what_the_owned_key_finds_in_the_same_order() {
        let keys = [("", "b"), ("a", ""), ("a", "b"), ("a", "ba"), ("ab", ""), ("b", "a")];
        let map: BTreeMap<(String, String), usize> = keys
            .iter()
            .enumerate()
            .map(|(index, (first, second))| ((first.to_string(), second.to_string()), index))
            .collect();
        for (index, key) in keys.iter().enumerate() {
            assert_eq!(map.get(pair(key)), Some(&index));
        }
        assert_eq!(map.get(pair(&("a", "c"))), None);
        let order: Vec<usize> = map.values().copied().collect();
        assert_eq!(order, (0..keys.len()).collect::<Vec<_>>(), "sorted as the tuples sort");
    }
}
