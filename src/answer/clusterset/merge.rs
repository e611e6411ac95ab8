//! Assembles the clusterset's answers from the chosen clusters' records:
//! addresses (with the `last-healthy` TTL and round-robin rotation applied)
//! and SRV merged over clusters. Bytes only; the choice was made before.

use crate::index::{ClustersetRecords, Node};
use crate::wire::qtype;

use super::super::Merged;

/// Bytes of one pre-encoded A / AAAA answer record (pointer owner).
const A_RECORD: usize = 16;
const AAAA_RECORD: usize = 28;

/// One cluster's records for the Service being answered.
pub(super) type Entry<'s> = (usize, &'s ClustersetRecords);

fn entry<'s>(entries: &[Entry<'s>], i: usize) -> Option<&'s ClustersetRecords> {
    entries.iter().find(|(j, _)| *j == i).map(|(_, cs)| *cs)
}

/// How the addresses are written.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shape {
    /// Overrides the TTL (`last-healthy` answers), and falls back to
    /// not-ready endpoints where a cluster has no ready one.
    pub last_healthy_ttl: Option<u32>,
    /// Rotates each type's records left by this many (round-robin).
    pub rotate_by: Option<usize>,
}

/// The A/AAAA records `want` asks for, from the `chosen` clusters in order.
pub(super) fn addresses(
    entries: &[Entry<'_>],
    chosen: &[usize],
    want: u16,
    shape: Shape,
) -> Merged {
    let mut out = Merged::default();
    let types: &[u16] = if want == qtype::ANY {
        &[qtype::A, qtype::AAAA]
    } else {
        &[want]
    };
    for &t in types {
        let start = out.answer.len();
        let mut n = 0u16;
        for &i in chosen {
            let Some(cs) = entry(entries, i) else {
                continue;
            };
            let set = match shape.last_healthy_ttl {
                Some(_) => cs.addrs.get(t).or_else(|| cs.fallback.get(t)),
                None => cs.addrs.get(t),
            };
            if let Some(set) = set {
                out.answer.extend_from_slice(set.answer());
                n += set.count;
            }
        }
        out.count += n;
        let size = match t {
            qtype::A => A_RECORD,
            qtype::AAAA => AAAA_RECORD,
            _ => continue,
        };
        let records = &mut out.answer[start..];
        if let Some(ttl) = shape.last_healthy_ttl {
            for rec in records.chunks_exact_mut(size) {
                rec[6..10].copy_from_slice(&ttl.to_be_bytes());
            }
        }
        if let Some(by) = shape.rotate_by
            && n > 1
        {
            records.rotate_left((by % usize::from(n)) * size);
        }
    }
    out
}

/// SRV merged over the `pick`ed clusters, each record once (a ClusterIP
/// Service gives the same record from every cluster), with the targets'
/// addresses for the additional section.
pub(super) fn srv(entries: &[Entry<'_>], pick: &[usize], key: &[u8]) -> Merged {
    let mut out = Merged::default();
    let mut seen: Vec<&[u8]> = Vec::new();
    for &i in pick {
        let Some(set) = entry(entries, i)
            .and_then(|cs| cs.srv.get(key))
            .and_then(|n| n.get(qtype::SRV))
        else {
            continue;
        };
        if seen.contains(&set.answer()) {
            continue;
        }
        seen.push(set.answer());
        out.answer.extend_from_slice(set.answer());
        out.count += set.count;
        out.extra.extend_from_slice(set.extra());
        out.extra_count += set.extra_count;
    }
    out
}

/// A copy of the records at one name that answer `want` (RFC 1034 §3.6.2:
/// a CNAME answers every type), for answers that outlive the snapshot.
pub(super) fn node(node: &Node, want: u16) -> Merged {
    let mut out = Merged::default();
    let sets: Vec<_> = match node.get(qtype::CNAME) {
        Some(cname) => vec![cname],
        None if want == qtype::ANY => node.all().iter().collect(),
        None => node.get(want).into_iter().collect(),
    };
    for s in sets {
        out.answer.extend_from_slice(s.answer());
        out.count += s.count;
        out.extra.extend_from_slice(s.extra());
        out.extra_count += s.extra_count;
    }
    out
}
