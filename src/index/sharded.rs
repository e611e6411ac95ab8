//! A hash map split into shards behind `Arc`s: cloning it (publishing a
//! snapshot) copies only the shard pointers, and a write copies only the one
//! shard it touches. This is what makes "one change costs one small publish"
//! true for clusters with 100,000 endpoints, while reads stay plain hash lookups.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashMap;

pub type Hasher = foldhash::fast::RandomState;

const SHARD_BITS: u32 = 7;
const SHARDS: usize = 1 << SHARD_BITS;

#[derive(Debug, Clone)]
pub struct ShardedMap<K, V> {
    hasher: Hasher,
    shards: Box<[Arc<HashMap<K, V, Hasher>>]>,
    len: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for ShardedMap<K, V> {
    fn default() -> Self {
        let hasher = Hasher::default();
        let shards = (0..SHARDS)
            .map(|_| Arc::new(HashMap::with_hasher(hasher.clone())))
            .collect();
        Self {
            hasher,
            shards,
            len: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.hasher.hash_one(key) >> (64 - SHARD_BITS)) as usize
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    pub fn insert(&mut self, key: K, value: V) {
        let i = self.shard_of(&key);
        if Arc::make_mut(&mut self.shards[i])
            .insert(key, value)
            .is_none()
        {
            self.len += 1;
        }
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.shard_of(key);
        // Avoid copying a shared shard when there is nothing to remove.
        if !self.shards[i].contains_key(key) {
            return None;
        }
        let removed = Arc::make_mut(&mut self.shards[i]).remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// The entries that differ from `self` to `new` (key, value in `self`,
    /// value in `new`), by `same`. Shards `new` shares with `self` are
    /// skipped, so after one write this scans one shard. Both maps must come
    /// from one map by clones: they then share the hasher, so a key sits in
    /// the same shard in both.
    pub fn diff<'a>(
        &'a self,
        new: &'a Self,
        same: fn(&V, &V) -> bool,
    ) -> impl Iterator<Item = (&'a K, Option<&'a V>, Option<&'a V>)> + 'a {
        self.shards
            .iter()
            .zip(new.shards.iter())
            .filter(|(a, b)| !Arc::ptr_eq(a, b))
            .flat_map(move |(a, b)| {
                let gone_or_changed = a.iter().filter_map(move |(k, v)| match b.get(k) {
                    Some(w) if same(v, w) => None,
                    w => Some((k, Some(v), w)),
                });
                let added = b
                    .iter()
                    .filter(move |(k, _)| !a.contains_key(*k))
                    .map(|(k, w)| (k, None, Some(w)));
                gone_or_changed.chain(added)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_after_clone_leaves_the_clone_untouched() {
        let mut a: ShardedMap<u32, u32> = ShardedMap::default();
        for i in 0..1000 {
            a.insert(i, i);
        }
        let published = a.clone();
        a.insert(5, 50);
        a.remove(&6);
        assert_eq!(published.get(&5), Some(&5));
        assert_eq!(published.get(&6), Some(&6));
        assert_eq!(a.get(&5), Some(&50));
        assert_eq!(a.get(&6), None);
        assert_eq!((a.len(), published.len()), (999, 1000));
        let shared = a
            .shards
            .iter()
            .zip(published.shards.iter())
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert!(
            shared >= SHARDS - 2,
            "only the touched shards are copied, {shared} shared"
        );
    }

    #[test]
    fn diff_lists_changed_added_and_removed_keys_only() {
        let mut a: ShardedMap<u32, u32> = ShardedMap::default();
        for i in 0..1000 {
            a.insert(i, i);
        }
        let old = a.clone();
        a.insert(5, 50);
        a.remove(&6);
        a.insert(2000, 1);
        a.insert(7, 7); // same value: not a change
        let mut d: Vec<_> = old
            .diff(&a, |x, y| x == y)
            .map(|(k, o, n)| (*k, o.copied(), n.copied()))
            .collect();
        d.sort();
        assert_eq!(
            d,
            [
                (5, Some(5), Some(50)),
                (6, Some(6), None),
                (2000, None, Some(1))
            ]
        );
    }
}
