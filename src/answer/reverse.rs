//! Reverse zones (`in-addr.arpa`, RFC 1035 §3.5; `ip6.arpa`, RFC 3596
//! §2.5): PTR for the ClusterIPs and endpoint addresses of every cluster.

use std::sync::Arc;

use super::Found;
use crate::grammar::ReverseName;
use crate::index::ClusterHandle;

pub(super) fn lookup(clusters: &[Arc<ClusterHandle>], name: ReverseName) -> Found<'static> {
    let ip = match name {
        ReverseName::Apex => return Found::Apex,
        ReverseName::Ns => return Found::NsAddresses,
        // Names above some address exist with no records: NODATA, never
        // NXDOMAIN, so QNAME-minimising resolvers go on (RFC 8020).
        ReverseName::Dns | ReverseName::Partial => return Found::Nodata,
        ReverseName::Nonexistent => return Found::Nxdomain,
        ReverseName::Address(ip) => ip,
    };
    for cluster in clusters {
        let guard = cluster.load();
        if let Some(names) = guard.as_deref().and_then(|s| s.ptr.get(&ip)) {
            return Found::Ptr(Arc::clone(names));
        }
    }
    // A cluster that has not synced may yet hold the address.
    if clusters.iter().all(|c| c.status.synced()) {
        Found::Nxdomain
    } else {
        Found::Servfail
    }
}
