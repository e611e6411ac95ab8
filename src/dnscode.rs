//! DNS code points crossdns knows by name: query types and response codes,
//! each with its mnemonic from the IANA "Domain Name System (DNS) Parameters"
//! registry, in one table that the wire code and the `/metrics` labels share.
//! Plain constants; knows nothing of messages, sockets or metrics.

/// Response codes (RFC 1035 §4.1.1, RFC 6891 §6.1.3).
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// RFC 8945 §5.2 (TSIG): not authorized; the TSIG record says why.
    pub const NOTAUTH: u8 = 9;
    /// Extended RCODE 16 (RFC 6891 §6.1.3): upper bits 1, header bits 0.
    pub const BADVERS: u8 = 16;
}

/// Resource record types crossdns answers, refuses or parses.
pub mod qtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Every query type above with its mnemonic. A type not listed has no name
/// here (metrics count it as `other`, so a label set stays bounded).
pub const QTYPES: [(u16, &str); 12] = [
    (qtype::A, "A"),
    (qtype::NS, "NS"),
    (qtype::CNAME, "CNAME"),
    (qtype::SOA, "SOA"),
    (qtype::PTR, "PTR"),
    (qtype::TXT, "TXT"),
    (qtype::AAAA, "AAAA"),
    (qtype::SRV, "SRV"),
    (qtype::OPT, "OPT"),
    (qtype::IXFR, "IXFR"),
    (qtype::AXFR, "AXFR"),
    (qtype::ANY, "ANY"),
];

/// Every response code above with its mnemonic.
pub const RCODES: [(u8, &str); 8] = [
    (rcode::NOERROR, "NOERROR"),
    (rcode::FORMERR, "FORMERR"),
    (rcode::SERVFAIL, "SERVFAIL"),
    (rcode::NXDOMAIN, "NXDOMAIN"),
    (rcode::NOTIMP, "NOTIMP"),
    (rcode::REFUSED, "REFUSED"),
    (rcode::NOTAUTH, "NOTAUTH"),
    (rcode::BADVERS, "BADVERS"),
];

/// Position of `t` in `QTYPES`, if it is there.
pub fn qtype_index(t: u16) -> Option<usize> {
    QTYPES.iter().position(|(q, _)| *q == t)
}

/// Position of `r` in `RCODES`, if it is there.
pub fn rcode_index(r: u8) -> Option<usize> {
    RCODES.iter().position(|(c, _)| *c == r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_distinct_mnemonic() {
        for (i, (code, name)) in QTYPES.iter().enumerate() {
            assert_eq!(qtype_index(*code), Some(i), "{name} listed twice");
            assert!(QTYPES[i + 1..].iter().all(|(_, n)| n != name));
        }
        for (i, (code, name)) in RCODES.iter().enumerate() {
            assert_eq!(rcode_index(*code), Some(i), "{name} listed twice");
            assert!(RCODES[i + 1..].iter().all(|(_, n)| n != name));
        }
        assert_eq!(qtype_index(99), None);
        assert_eq!(rcode_index(7), None);
    }
}
