//! Lower-case wire-format names: the one representation the index keys on and
//! the answer engine compares against. Owns label validation; knows nothing of
//! Kubernetes or sockets.
//!
//! A "wire name" here is the RFC 1035 §3.1 label sequence (length byte, then
//! bytes) *without* the terminating root label, lower-cased, so a zone suffix
//! of a name is a plain byte suffix of it.

use std::fmt;
use std::net::IpAddr;

/// RFC 1035 §2.3.4: a name is at most 255 octets on the wire.
pub const MAX_NAME_WIRE: usize = 255;
/// RFC 1035 §2.3.4: a label is at most 63 octets.
pub const MAX_LABEL: usize = 63;

/// Why a dotted name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("has an empty label")]
    EmptyLabel,
    #[error("has a label longer than 63 characters")]
    LabelTooLong,
    #[error("is longer than 253 characters")]
    TooLong,
    #[error("has the character {0:?}, which is not allowed in a DNS name")]
    BadChar(char),
}

/// An owned, lower-cased wire name (no root label).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WireName(Box<[u8]>);

impl WireName {
    /// Parses a dotted name (`cluster.region1`, trailing dot allowed). Labels
    /// may hold letters, digits, `-` and `_` (SRV labels); everything is
    /// lower-cased (RFC 4343: names compare case-insensitively).
    pub fn parse(dotted: &str) -> Result<Self, NameError> {
        let dotted = dotted.strip_suffix('.').unwrap_or(dotted);
        if dotted.is_empty() {
            return Err(NameError::Empty);
        }
        if dotted.len() > 253 {
            return Err(NameError::TooLong);
        }
        let mut out = Vec::with_capacity(dotted.len() + 1);
        for label in dotted.split('.') {
            push_label(&mut out, label)?;
        }
        Ok(Self(out.into_boxed_slice()))
    }

    /// Builds a name from labels that are already valid (e.g. Kubernetes
    /// object names, which the apiserver restricts to RFC 1123 labels).
    /// Invalid labels are refused rather than trusted.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Result<Self, NameError> {
        let mut out = Vec::new();
        for label in labels {
            push_label(&mut out, label)?;
        }
        if out.is_empty() {
            return Err(NameError::Empty);
        }
        if out.len() + 1 > MAX_NAME_WIRE {
            return Err(NameError::TooLong);
        }
        Ok(Self(out.into_boxed_slice()))
    }

    /// `self` followed by `suffix` (`host` + `svc.ns.svc.zone`).
    pub fn join(&self, suffix: &WireName) -> Result<Self, NameError> {
        if self.0.len() + suffix.0.len() + 1 > MAX_NAME_WIRE {
            return Err(NameError::TooLong);
        }
        let mut out = Vec::with_capacity(self.0.len() + suffix.0.len());
        out.extend_from_slice(&self.0);
        out.extend_from_slice(&suffix.0);
        Ok(Self(out.into_boxed_slice()))
    }

    /// The labels of `prefix_wire` (checked as `from_labels` checks them)
    /// followed by `suffix`, built in one allocation.
    pub fn prefixed(prefix_wire: &[u8], suffix: &WireName) -> Result<Self, NameError> {
        let mut out = Vec::with_capacity(prefix_wire.len() + suffix.0.len());
        for label in Labels::new(prefix_wire) {
            push_label(&mut out, std::str::from_utf8(label).unwrap_or(""))?;
        }
        if out.is_empty() {
            return Err(NameError::Empty);
        }
        if out.len() + suffix.0.len() + 1 > MAX_NAME_WIRE {
            return Err(NameError::TooLong);
        }
        out.extend_from_slice(&suffix.0);
        Ok(Self(out.into_boxed_slice()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as it goes into a message: labels plus the root label.
    pub fn to_wire_fqdn(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend_from_slice(&self.0);
        v.push(0);
        v
    }

    /// The name as a hickory `Name` (for building records with hickory-proto).
    pub fn to_hickory(&self) -> hickory_proto::rr::Name {
        let labels = Labels::new(&self.0).collect::<Vec<_>>();
        // Every label was validated on construction, so this cannot fail;
        // fall back to the root name rather than panic on the query path.
        let mut name = hickory_proto::rr::Name::from_labels(labels).unwrap_or_default();
        name.set_fqdn(true);
        name
    }
}

impl fmt::Display for WireName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in Labels::new(&self.0).enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&String::from_utf8_lossy(label))?;
        }
        Ok(())
    }
}

impl fmt::Debug for WireName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireName({self})")
    }
}

fn push_label(out: &mut Vec<u8>, label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label.len() > MAX_LABEL {
        return Err(NameError::LabelTooLong);
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(NameError::BadChar(c));
    }
    out.push(label.len() as u8);
    out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    Ok(())
}

/// Iterates the labels of a wire name (no root label), without allocating.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Labels<'a> {
    pub fn new(wire: &'a [u8]) -> Self {
        Self { rest: wire }
    }
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        let len = usize::from(len);
        if tail.len() < len {
            self.rest = &[];
            return None;
        }
        let (label, rest) = tail.split_at(len);
        self.rest = rest;
        Some(label)
    }
}

/// A name as a query carries it: lower-cased wire labels (no root label)
/// in a fixed buffer, with each label's offset, so the grammar can look at
/// any label without allocating. The question name of every query is one.
#[derive(Clone)]
pub struct QName {
    buf: [u8; MAX_NAME_WIRE],
    len: u8,
    /// Offset in `buf` of each label's length byte.
    starts: [u8; 128],
    count: u8,
}

impl Default for QName {
    fn default() -> Self {
        Self::new()
    }
}

impl QName {
    /// The root name (no labels).
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_NAME_WIRE],
            len: 0,
            starts: [0; 128],
            count: 0,
        }
    }

    /// Appends one label, lower-cased. False (and nothing appended) when the
    /// label is empty or longer than 63 octets, or the name would exceed 255
    /// octets with its root label (RFC 1035 §2.3.4).
    pub fn push_label(&mut self, label: &[u8]) -> bool {
        let out = usize::from(self.len);
        if label.is_empty() || label.len() > MAX_LABEL || out + 1 + label.len() + 1 > MAX_NAME_WIRE
        {
            return false;
        }
        self.starts[usize::from(self.count)] = out as u8;
        self.count += 1;
        self.buf[out] = label.len() as u8;
        for (dst, src) in self.buf[out + 1..out + 1 + label.len()]
            .iter_mut()
            .zip(label)
        {
            *dst = src.to_ascii_lowercase();
        }
        self.len = (out + 1 + label.len()) as u8;
        true
    }

    /// Reads an uncompressed name in wire form, ending at its root label
    /// (as in the RDATA crossdns writes); `None` if it is not one.
    pub fn from_wire_fqdn(wire: &[u8]) -> Option<Self> {
        let mut name = Self::new();
        let mut at = 0;
        loop {
            let len = usize::from(*wire.get(at)?);
            if len == 0 {
                return Some(name);
            }
            if len > MAX_LABEL || !name.push_label(wire.get(at + 1..at + 1 + len)?) {
                return None;
            }
            at += 1 + len;
        }
    }

    pub fn from_name(name: &WireName) -> Self {
        let mut q = Self::new();
        for label in Labels::new(name.as_bytes()) {
            q.push_label(label);
        }
        q
    }

    pub fn wire(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    pub fn label_count(&self) -> usize {
        usize::from(self.count)
    }

    /// Byte offset of label `i` (0 = leftmost); `label_count()` and beyond
    /// give the end.
    pub fn offset(&self, i: usize) -> usize {
        if i >= self.label_count() {
            usize::from(self.len)
        } else {
            usize::from(self.starts[i])
        }
    }

    /// Label `i` without its length byte; empty past the last label.
    pub fn label(&self, i: usize) -> &[u8] {
        if i >= self.label_count() {
            return &[];
        }
        let at = self.offset(i);
        let len = usize::from(self.buf[at]);
        &self.buf[at + 1..at + 1 + len]
    }

    /// Labels `i..j` in wire form.
    pub fn span(&self, i: usize, j: usize) -> &[u8] {
        let (a, b) = (self.offset(i), self.offset(j));
        &self.buf[a.min(b)..b]
    }

    /// The wire form from label `i` to the end (a suffix of the name).
    pub fn suffix(&self, i: usize) -> &[u8] {
        &self.buf[self.offset(i)..usize::from(self.len)]
    }
}

impl fmt::Debug for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QName(")?;
        for i in 0..self.label_count() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&String::from_utf8_lossy(self.label(i)))?;
        }
        f.write_str(")")
    }
}

/// True when `label` is a valid RFC 1123 label, the form Kubernetes requires
/// of namespace names and cluster names in crossdns's config.
pub fn is_rfc1123_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The label Kubernetes DNS uses for an IP address without a hostname:
/// dots (IPv4) or colons (IPv6) replaced by dashes, as CoreDNS does. A host
/// name may not begin or end with `-` (RFC 952, RFC 1123 §2.1), and glibc
/// refuses a first label that begins with one, so an IPv6 address that
/// starts or ends with `::` gets a `0` there (`2001:db8::` → `2001-db8--0`,
/// `::1` → `0--1`), as CoreDNS does; the label still parses back.
pub fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let mut s = v6.to_string().replace(':', "-");
            if s.ends_with('-') {
                s.push('0');
            }
            if s.starts_with('-') {
                s.insert(0, '0');
            }
            s
        }
    }
}

/// Parses a dashed-IP label (`10-0-0-1`, `fd00--1`) back into an address,
/// without allocating (pod names are on the query path).
pub fn parse_dashed_ip(label: &[u8]) -> Option<IpAddr> {
    if label.len() > MAX_LABEL {
        return None;
    }
    let mut buf = [0u8; MAX_LABEL];
    let text = &mut buf[..label.len()];
    for sep in [b'.', b':'] {
        for (dst, src) in text.iter_mut().zip(label) {
            *dst = if *src == b'-' { sep } else { *src };
        }
        let Ok(s) = std::str::from_utf8(text) else {
            return None;
        };
        let ip = match sep {
            b'.' => s.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
            _ => s.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        };
        if ip.is_some() {
            return ip;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lowercases_and_strips_the_root_dot() {
        let n = WireName::parse("Cluster.Region1.").expect("valid");
        assert_eq!(n.as_bytes(), b"\x07cluster\x07region1");
        assert_eq!(n.to_string(), "cluster.region1");
    }

    #[test]
    fn parse_refuses_bad_names_with_a_reason() {
        assert_eq!(WireName::parse(""), Err(NameError::Empty));
        assert_eq!(WireName::parse("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(WireName::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(
            WireName::parse(&"a".repeat(64)),
            Err(NameError::LabelTooLong)
        );
    }

    #[test]
    fn prefixed_checks_the_prefix_as_parse_does_and_joins_in_one_name() {
        let svc = WireName::parse("web.shop.svc.cluster.a").expect("name");
        let host = WireName::prefixed(b"\x05Web-0", &svc).expect("host");
        assert_eq!(
            host,
            WireName::parse("web-0.web.shop.svc.cluster.a").expect("name")
        );
        let srv = WireName::prefixed(b"\x05_http\x04_tcp", &svc).expect("srv");
        assert_eq!(srv.to_string(), "_http._tcp.web.shop.svc.cluster.a");
        assert_eq!(WireName::prefixed(b"", &svc), Err(NameError::Empty));
        assert_eq!(
            WireName::prefixed(b"\x00", &svc),
            Err(NameError::EmptyLabel)
        );
        assert_eq!(
            WireName::prefixed(b"\x03a.b", &svc),
            Err(NameError::BadChar('.'))
        );
        // 250 octets with the root: parses; six more do not fit.
        let labels = [
            "x".repeat(63),
            "x".repeat(63),
            "x".repeat(63),
            "x".repeat(57),
        ];
        let long = WireName::parse(&labels.join(".")).expect("name");
        assert_eq!(
            WireName::prefixed(b"\x05web-0", &long),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn dashed_ipv6_labels_never_begin_or_end_with_a_hyphen() {
        for (ip, label) in [
            ("2001:db8::", "2001-db8--0"),
            ("::1", "0--1"),
            ("::", "0--0"),
            ("fd00::1", "fd00--1"),
            ("10.1.2.3", "10-1-2-3"),
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(dashed_ip(ip), label);
            assert!(WireName::from_labels([label]).is_ok());
            assert_eq!(parse_dashed_ip(label.as_bytes()), Some(ip));
        }
    }

    #[test]
    fn qname_reads_a_wire_name_and_refuses_overlong_ones() {
        let q = QName::from_wire_fqdn(b"\x03Web\x04shop\x00").expect("name");
        assert_eq!(q.wire(), b"\x03web\x04shop");
        assert_eq!(
            (q.label_count(), q.label(1), q.label(2)),
            (2, &b"shop"[..], &b""[..])
        );
        assert!(QName::from_wire_fqdn(b"\x03web").is_none(), "no root label");
        let mut long = Vec::new();
        for _ in 0..4 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert!(QName::from_wire_fqdn(&long).is_none(), "256 octets");
    }

    #[test]
    fn dashed_ip_round_trips_for_both_families() {
        for ip in ["10.1.2.3", "fd00::1", "2001:db8::a:1", "::1", "2001:db8::"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(parse_dashed_ip(dashed_ip(ip).as_bytes()), Some(ip));
        }
        assert_eq!(parse_dashed_ip(b"web-0"), None);
    }

    #[test]
    fn rfc1123_labels_are_lowercase_ldh() {
        assert!(is_rfc1123_label("region-1"));
        assert!(!is_rfc1123_label("Region1"));
        assert!(!is_rfc1123_label("-a"));
        assert!(!is_rfc1123_label(""));
    }
}
