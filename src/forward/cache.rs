//! A bounded cache of forwarded answers that honours TTLs (RFC 1035 §3.2.1,
//! negative answers per RFC 2308 §5) and keeps expired entries for
//! serve-stale (RFC 8767) up to `stale_for`.

use std::collections::HashMap;
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
    capacity: usize,
    stale_for: Duration,
    map: Mutex<HashMap<Key, Entry>>,
}

impl Cache {
    pub fn new(capacity: usize, stale_for: Duration) -> Self {
        Self {
            capacity,
            stale_for,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh entry.
    pub fn fresh(&self, key: &Key, now: Instant) -> Option<Entry> {
        let map = self.map.lock().ok()?;
        map.get(key).filter(|e| e.remaining(now).is_some()).cloned()
    }

    /// An entry expired less than `stale_for` ago (RFC 8767 §4).
    pub fn stale(&self, key: &Key, now: Instant) -> Option<Entry> {
        if self.stale_for.is_zero() {
            return None;
        }
        let map = self.map.lock().ok()?;
        map.get(key)
            .filter(|e| e.age(now) < Duration::from_secs(u64::from(e.ttl)) + self.stale_for)
            .cloned()
    }

    pub fn insert(&self, key: Key, m: &Message, ttl: u32, now: Instant) {
        let Ok(mut map) = self.map.lock() else { return };
        if map.len() >= self.capacity && !map.contains_key(&key) {
            // Drop what can no longer be served, even stale; then anything.
            let stale_for = self.stale_for;
            map.retain(|_, e| e.age(now) < Duration::from_secs(u64::from(e.ttl)) + stale_for);
            if map.len() >= self.capacity
                && let Some(victim) = map.keys().next().cloned()
            {
                map.remove(&victim);
            }
        }
        map.insert(
            key,
            Entry {
                rcode: m.metadata.response_code,
                answers: m.answers.clone(),
                authorities: m.authorities.clone(),
                additionals: m.additionals.clone(),
                stored: now,
                ttl,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }
}
