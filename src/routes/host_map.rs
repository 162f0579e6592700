//! The map from host to routes that every request probes.
//!
//! A lookup is memory latency, not arithmetic: a `perf` profile of the
//! route bench put most of the time of the sharded std `HashMap` used
//! before on three dependent loads (the shard's `Arc`, the table's control
//! bytes, the bucket). Here a probe is one hash and, in the common case, one
//! load: the shard list is small enough to stay in cache, and a shard is one
//! `Arc`ed slice of slots holding the full hash, the host (inline up to 23
//! bytes) and the value side by side.
//!
//! Copy on write stays per shard: a new generation that replaces a few hosts
//! copies their shards (about 160 hosts each at 20,000 Ingresses) and shares
//! the rest with the table in service, which is never changed. (A
//! persistent hash map was measured at over twice the lookup time.)

use std::sync::Arc;

use crate::kube::objects::SmolStr;

/// Enough shards that copying one on write stays small, few enough that
/// cloning the map (one `Arc` per shard) is cheap and the list stays cached.
const SHARDS: usize = 256;

/// The fewest slots a shard grows to, so small tables do not regrow at every insert.
const MIN_SLOTS: usize = 8;

#[derive(Debug, Clone)]
struct Entry<V> {
    hash: u64,
    host: SmolStr,
    value: V,
}

/// One open-addressing table with linear probing, at most half full, so a
/// probe for an absent host usually stops at the first or second slot.
#[derive(Debug, Clone)]
struct Shard<V> {
    /// A power of two long (or empty).
    slots: Arc<[Option<Entry<V>>]>,
    len: usize,
}

/// Hosts (already normalised) to values, split into [`SHARDS`] shards by the
/// top bits of the host's hash; the low bits pick the slot within a shard.
#[derive(Debug, Clone)]
pub(crate) struct HostMap<V> {
    shards: Vec<Shard<V>>,
}

impl<V: Clone> Default for HostMap<V> {
    fn default() -> HostMap<V> {
        let empty = Shard { slots: Arc::from(Vec::new()), len: 0 };
        HostMap { shards: vec![empty; SHARDS] }
    }
}

/// The keys are hosts from Ingress objects, not from clients, so flooding
/// protection buys nothing here; a client's Host only probes.
fn hash_host(host: &str) -> u64 {
    crate::fast_hash::hash_bytes(host.as_bytes())
}

fn shard_of(hash: u64) -> usize {
    (hash >> 56) as usize % SHARDS
}

/// The slots a probe for `hash` visits, in order: linear from its home slot.
fn probe_sequence(slots: usize, hash: u64) -> impl Iterator<Item = usize> {
    (0..slots).map(move |step| (hash as usize).wrapping_add(step) & (slots - 1))
}

/// The slot holding `host`, or else the empty slot where it belongs; `None`
/// only for a shard without slots.
fn slot_of<V>(slots: &[Option<Entry<V>>], hash: u64, host: &str) -> Option<usize> {
    probe_sequence(slots.len(), hash).find(|&i| slots[i].as_ref().is_none_or(|e| e.hash == hash && e.host == host))
}

impl<V: Clone> Shard<V> {
    /// The slots to change: this shard's own, copied first if a published
    /// table shares them.
    fn slots_mut(&mut self) -> &mut [Option<Entry<V>>] {
        if Arc::get_mut(&mut self.slots).is_none() {
            self.slots = self.slots.iter().cloned().collect();
        }
        Arc::get_mut(&mut self.slots).expect("a fresh copy has no other owner")
    }

    /// Makes room for one more host, keeping the shard at most half full.
    fn reserve_one(&mut self) {
        let wanted = (self.len + 1) * 2;
        if wanted <= self.slots.len() {
            return;
        }
        let mut slots: Vec<Option<Entry<V>>> = vec![None; wanted.next_power_of_two().max(MIN_SLOTS)];
        for entry in self.slots.iter().flatten() {
            let i = slot_of(&slots, entry.hash, &entry.host).expect("a grown shard is at most half full");
            slots[i] = Some(entry.clone());
        }
        self.slots = slots.into();
    }
}

impl<V: Clone> HostMap<V> {
    pub(crate) fn get(&self, host: &str) -> Option<&V> {
        let hash = hash_host(host);
        let slots = &self.shards[shard_of(hash)].slots;
        let entry = slots[slot_of(slots, hash, host)?].as_ref()?;
        Some(&entry.value)
    }

    pub(crate) fn insert(&mut self, host: SmolStr, value: V) {
        let hash = hash_host(&host);
        let shard = &mut self.shards[shard_of(hash)];
        shard.reserve_one();
        let i = slot_of(&shard.slots, hash, &host).expect("a shard is at most half full");
        if shard.slots[i].is_none() {
            shard.len += 1;
        }
        shard.slots_mut()[i] = Some(Entry { hash, host, value });
    }

    pub(crate) fn remove(&mut self, host: &str) {
        let hash = hash_host(host);
        let shard = &mut self.shards[shard_of(hash)];
        let Some(mut hole) = slot_of(&shard.slots, hash, host).filter(|&i| shard.slots[i].is_some()) else { return };
        shard.len -= 1;
        let slots = shard.slots_mut();
        slots[hole] = None;
        // Backward-shift deletion: move up every later entry of the run whose
        // probe passes the hole, so no probe stops early at it.
        let mask = slots.len() - 1;
        let mut next = (hole + 1) & mask;
        while let Some(entry) = &slots[next] {
            let home = entry.hash as usize & mask;
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                slots.swap(hole, next);
                hole = next;
            }
            next = (next + 1) & mask;
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.slots.iter().flatten()).map(|entry| &entry.value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Random inserts, replacements and removals agree with std's `HashMap`,
    /// and a clone taken along the way (a published table) never changes.
    #[test]
    fn behaves_as_a_map_and_clones_never_change() {
        let mut map: HostMap<u32> = HostMap::default();
        let mut model: HashMap<String, u32> = HashMap::new();
        let mut published: Vec<(HostMap<u32>, HashMap<String, u32>)> = Vec::new();
        // A fixed seed: reproducible.
        let mut rng = crate::kube::backoff::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next_u64();
        for step in 0..20_000u32 {
            let host = format!("h{}.example.com", next() % 3000);
            if next() % 3 == 0 {
                map.remove(&host);
                model.remove(&host);
            } else {
                map.insert(SmolStr::new(&host), step);
                model.insert(host, step);
            }
            if step % 2000 == 0 {
                published.push((map.clone(), model.clone()));
            }
        }
        published.push((map, model));
        for (map, model) in &published {
            assert_eq!(map.values().count(), model.len());
            for i in 0..3000 {
                let host = format!("h{i}.example.com");
                assert_eq!(map.get(&host), model.get(&host), "{host}");
            }
        }
    }

    #[test]
    fn an_empty_map_finds_nothing_and_removes_quietly() {
        let mut map: HostMap<u32> = HostMap::default();
        assert_eq!(map.get(""), None);
        map.remove("a.com");
        map.insert("a.com".into(), 1);
        assert_eq!(map.get("a.com"), Some(&1));
        assert_eq!(map.get("A.com"), None, "the caller lower-cases");
        map.insert("a.com".into(), 2);
        assert_eq!((map.get("a.com"), map.values().count()), (Some(&2), 1));
    }
}
