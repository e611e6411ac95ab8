//! The records at a zone's apex that crossdns synthesizes, in one place for
//! answers and transfers: SOA (RFC 1035 §3.3.13, RFC 2308 §5) and NS, whose
//! target is `ns.dns.<zone>` (design.md §1).

use hickory_proto::rr::rdata::{NS, SOA};

use crate::dnsname::WireName;
use crate::grammar;

/// RFC 1912 §2.2-style timers, for secondaries that poll (crossdns also
/// sends NOTIFY on every change).
pub const REFRESH: i32 = 7200;
pub const RETRY: i32 = 1800;
pub const EXPIRE: i32 = 86400;

/// The zone's SOA. Negative answers are cached for min(SOA TTL, MINIMUM)
/// (RFC 2308 §5); both are the configured TTL, so NXDOMAINs expire like
/// answers do.
pub fn soa(apex: &WireName, serial: u32, ttl: u32) -> SOA {
    let mname = grammar::ns_name(apex).unwrap_or_else(|_| apex.clone());
    let rname = grammar::hostmaster_name(apex).unwrap_or_else(|_| apex.clone());
    SOA::new(
        mname.to_hickory(),
        rname.to_hickory(),
        serial,
        REFRESH,
        RETRY,
        EXPIRE,
        ttl,
    )
}

/// The zone's NS: `ns.dns.<zone>`.
pub fn ns(apex: &WireName) -> NS {
    NS(grammar::ns_name(apex)
        .unwrap_or_else(|_| apex.clone())
        .to_hickory())
}
