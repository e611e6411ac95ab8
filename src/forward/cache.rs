//! A bounded cache of forwarded answers that honours TTLs (RFC 1035 §3.2.1,
//! negative answers per RFC 2308 §5) and keeps expired entries for
//! serve-stale (RFC 8767) up to `stale_for`. Least recently used entries go
//! first when it is full, so a burst of one-off names does not push out the
//! names clients keep asking for.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

/// (lower-case qname, qtype, qclass, DO bit).
pub type Key = (String, u16, u16, bool);

#[derive(Debug, Clone)]
pub struct Entry {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    stored: Instant,
    ttl: u32,
}

impl Entry {
    fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored)
    }

    /// Seconds of freshness left, if any.
    pub fn remaining(&self, now: Instant) -> Option<u32> {
        let age = self.age(now).as_secs();
        (age < u64::from(self.ttl)).then(|| self.ttl - age as u32)
    }

    /// Seconds that have passed since the entry was stored.
    pub fn age_secs(&self, now: Instant) -> u32 {
        self.age(now).as_secs().min(u64::from(u32::MAX)) as u32
    }
}

/// How long a response may be cached: the smallest TTL in it; for a
/// negative answer, min(SOA TTL, SOA MINIMUM) (RFC 2308 §5). Answers that
/// are neither NOERROR nor NXDOMAIN are not cached.
pub fn cache_ttl(m: &Message) -> Option<u32> {
    let rcode = m.metadata.response_code;
    if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return None;
    }
    let negative = rcode == ResponseCode::NXDomain || m.answers.is_empty();
    if negative {
        return m.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) if r.record_type() == RecordType::SOA => Some(r.ttl.min(soa.minimum)),
            _ => None,
        });
    }
    m.answers.iter().chain(&m.authorities).map(|r| r.ttl).min()
}

#[derive(Debug)]
pub struct Cache {
    stale_for: Duration,
    /// Entries behind `Arc`: a hit clones a pointer, not the records.
    map: Mutex<lru::LruCache<Key, Arc<Entry>>>,
}

impl Cache {
    pub fn new(capacity: usize, stale_for: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            stale_for,
            map: Mutex::new(lru::LruCache::new(capacity)),
        }
    }

    /// A fresh entry (and marks it recently used).
    pub fn fresh(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let mut map = self.map.lock().ok()?;
        map.get(key).filter(|e| e.remaining(now).is_some()).cloned()
    }

    /// An entry expired less than `stale_for` ago (RFC 8767 §4).
    pub fn stale(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        if self.stale_for.is_zero() {
            return None;
        }
        let mut map = self.map.lock().ok()?;
        map.get(key)
            .filter(|e| e.age(now) < Duration::from_secs(u64::from(e.ttl)) + self.stale_for)
            .cloned()
    }

    /// Stores an answer; when full, the least recently used entry goes.
    pub fn insert(&self, key: Key, m: &Message, ttl: u32, now: Instant) {
        let Ok(mut map) = self.map.lock() else { return };
        map.put(
            key,
            Arc::new(Entry {
                rcode: m.metadata.response_code,
                answers: m.answers.clone(),
                authorities: m.authorities.clone(),
                additionals: m.additionals.clone(),
                stored: now,
                ttl,
            }),
        );
    }

    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};

    fn key(n: u32) -> Key {
        (format!("n{n}.example."), 1, 1, false)
    }

    #[test]
    fn a_full_cache_drops_the_least_recently_used_entry() {
        let cache = Cache::new(3, Duration::from_secs(60));
        let m = Message::new(1, MessageType::Response, OpCode::Query);
        let now = Instant::now();
        for n in 0..3 {
            cache.insert(key(n), &m, 30, now);
        }
        assert!(cache.fresh(&key(0), now).is_some(), "touch n0");
        cache.insert(key(3), &m, 30, now);
        assert_eq!(cache.len(), 3);
        assert!(
            cache.fresh(&key(0), now).is_some(),
            "recently used survives"
        );
        assert!(
            cache.fresh(&key(1), now).is_none(),
            "least recently used is gone"
        );
    }

    #[test]
    fn expired_entries_are_stale_for_stale_for_and_then_gone() {
        let cache = Cache::new(10, Duration::from_secs(60));
        let m = Message::new(1, MessageType::Response, OpCode::Query);
        let then = Instant::now();
        cache.insert(key(1), &m, 5, then);
        let later = then + Duration::from_secs(10);
        assert!(cache.fresh(&key(1), later).is_none());
        assert!(cache.stale(&key(1), later).is_some());
        assert!(
            cache
                .stale(&key(1), then + Duration::from_secs(70))
                .is_none()
        );
        assert!(
            Cache::new(10, Duration::ZERO)
                .stale(&key(1), later)
                .is_none()
        );
    }
}
