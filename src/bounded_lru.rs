//! A map with a fixed number of entries that forgets the least recently
//! used one when full. Rate-limit state and the external-auth cache keep
//! per-client entries in it, so a flood from many addresses or many
//! credentials costs a bounded amount of memory, at the price of forgetting
//! the quietest entries.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub struct BoundedLru<K, V> {
    capacity: usize,
    /// Each entry with the tick of its last use.
    entries: HashMap<K, (V, u64)>,
    /// Keys by the tick of their last use, oldest first.
    by_use: BTreeMap<u64, K>,
    tick: u64,
    evictions: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedLru<K, V> {
    /// A table of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> BoundedLru<K, V> {
        BoundedLru { capacity: capacity.max(1), entries: HashMap::new(), by_use: BTreeMap::new(), tick: 0, evictions: 0 }
    }

    /// The entry for `key`, marked as just used; `make` builds a missing one,
    /// which first evicts the least recently used entry when the table is full.
    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, used)) = self.entries.get_mut(key) {
            self.by_use.remove(used);
            *used = tick;
        } else {
            if self.entries.len() >= self.capacity {
                if let Some((_, oldest)) = self.by_use.pop_first() {
                    self.entries.remove(&oldest);
                    self.evictions += 1;
                }
            }
            self.entries.insert(key.clone(), (make(), tick));
        }
        self.by_use.insert(tick, key.clone());
        &mut self.entries.get_mut(key).expect("the entry was just placed").0
    }

    /// The entry for `key` without marking it used.
    pub fn peek_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (value, used) = self.entries.remove(key)?;
        self.by_use.remove(&used);
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries forgotten to make room since the table was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_forgets_the_least_recently_used_entry() {
        let mut table = BoundedLru::new(2);
        *table.get_or_insert_with(&"a", || 0) += 1;
        *table.get_or_insert_with(&"b", || 0) += 1;
        *table.get_or_insert_with(&"a", || 0) += 1; // a is now the most recent
        *table.get_or_insert_with(&"c", || 0) += 1; // evicts b
        assert_eq!(table.len(), 2);
        assert_eq!(table.evictions(), 1);
        assert_eq!(table.peek_mut(&"a").copied(), Some(2));
        assert_eq!(table.peek_mut(&"b"), None);
        assert_eq!(table.peek_mut(&"c").copied(), Some(1));
        assert_eq!(table.remove(&"a"), Some(2));
        *table.get_or_insert_with(&"d", || 7) += 0;
        assert_eq!(table.evictions(), 1, "a free slot evicts nothing");
    }

    #[test]
    fn a_flood_of_new_keys_stays_within_capacity() {
        let mut table = BoundedLru::new(100);
        for key in 0..10_000u32 {
            table.get_or_insert_with(&key, || key);
        }
        assert_eq!(table.len(), 100);
        assert_eq!(table.by_use.len(), 100);
        assert_eq!(table.evictions(), 9_900);
        assert_eq!(table.peek_mut(&9_999).copied(), Some(9_999));
        assert_eq!(table.peek_mut(&9_899), None);
    }
}
