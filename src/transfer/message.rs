//! The messages of one transfer response (RFC 5936 §2.2): records written
//! one by one into messages of at most `MESSAGE_LIMIT` bytes, owners
//! compressed against names earlier in the same message (RFC 1035 §4.1.4),
//! the question only in the first message, each message signed when the
//! request was (RFC 8945 §5.3.1) and framed for TCP (RFC 1035 §4.2.2).
//! Finished messages go to a sink, so a transfer of any size holds one
//! message at a time.

use std::hash::BuildHasher;

use hashbrown::HashMap;

use crate::dnsname::WireName;
use crate::index::Rrset;
use crate::tsig::primary::{self as tsig, Signing};
use crate::wire::{HEADER_LEN, qtype};

/// Bytes a message may hold before its OPT and TSIG records. Compression
/// pointers reach 16 KiB (RFC 1035 §4.1.4: 14 bits), so messages of that
/// size compress every owner against its neighbours; bigger ones would not.
pub const MESSAGE_LIMIT: usize = 16 * 1024 - 1;

/// Bytes kept free for the OPT (11) and TSIG records (key and algorithm
/// names of up to 255 octets each, a 64-byte MAC, fixed fields).
const TRAILER_ROOM: usize = 11 + 255 + 255 + 64 + 32;

/// The header of the response: what is copied from the request.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub id: u16,
    /// The request's RD bit (RFC 5936 §2.2.1: copied).
    pub rd: bool,
    /// The request had an OPT record: every message gets one (RFC 6891 §7).
    pub edns: bool,
}

/// Where finished messages (framed with their length) go; `false` when the
/// peer is gone, and the transfer stops producing.
pub trait Sink {
    fn send(&mut self, framed: Vec<u8>) -> bool;
}

impl<F: FnMut(Vec<u8>) -> bool> Sink for F {
    fn send(&mut self, framed: Vec<u8>) -> bool {
        self(framed)
    }
}

/// Counts of what a response sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub messages: u64,
    pub records: u64,
    /// Message bytes, without the 2-byte TCP length prefixes.
    pub bytes: u64,
}

/// Builds the messages of one response.
pub struct Messages<'q, S: Sink> {
    header: Header,
    /// The question to echo in the first message (as the request sent it).
    question: Option<&'q [u8]>,
    signing: Option<Signing>,
    sink: S,
    buf: Vec<u8>,
    count: u16,
    /// Owner compression: the hash of a wire suffix → its offset in `buf`
    /// (checked against the bytes there before it is used, so a hash
    /// collision costs a longer name, never a wrong one).
    names: HashMap<u64, u16, Hasher>,
    sent: Sent,
    /// The sink refused a message: the rest is dropped.
    closed: bool,
    now: u64,
}

impl<S: Sink> std::fmt::Debug for Messages<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messages")
            .field("sent", &self.sent)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<'q, S: Sink> Messages<'q, S> {
    /// `question` is the request's question section; `now` the unix time
    /// its signatures carry.
    pub fn new(
        header: Header,
        question: &'q [u8],
        signing: Option<Signing>,
        sink: S,
        now: u64,
    ) -> Self {
        let mut m = Self {
            header,
            question: Some(question),
            signing,
            sink,
            buf: Vec::with_capacity(MESSAGE_LIMIT + TRAILER_ROOM),
            count: 0,
            names: HashMap::with_hasher(Hasher::default()),
            sent: Sent::default(),
            closed: false,
            now,
        };
        m.start();
        m
    }

    fn start(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&self.header.id.to_be_bytes());
        // QR, opcode QUERY, AA, RD as asked; RCODE NOERROR.
        let rd = u8::from(self.header.rd);
        self.buf.extend_from_slice(&[0x84 | rd, 0]);
        let qd = u16::from(self.question.is_some());
        self.buf.extend_from_slice(&qd.to_be_bytes());
        self.buf.extend_from_slice(&[0; 6]);
        if let Some(q) = self.question.take() {
            self.buf.extend_from_slice(q);
        }
        self.count = 0;
        self.names.clear();
    }

    /// Whether the peer went away (nothing more is sent).
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Every answer record of `set`, owned by `owner` (additional-section
    /// glue is not zone data: the addresses it repeats are records of
    /// their own names).
    pub fn rrset(&mut self, owner: &WireName, set: &Rrset) {
        for_each_record(set.answer(), |tail| self.record(owner, tail));
    }

    /// One record: `owner`, then `tail` (TYPE, CLASS, TTL, RDLENGTH, RDATA).
    pub fn record(&mut self, owner: &WireName, tail: &[u8]) {
        if self.closed {
            return;
        }
        let most = owner.as_bytes().len() + 1 + tail.len();
        if self.count > 0 && self.buf.len() + most > MESSAGE_LIMIT - TRAILER_ROOM {
            self.flush();
        }
        self.owner(owner.as_bytes());
        self.buf.extend_from_slice(tail);
        self.count += 1;
        self.sent.records += 1;
        if self.count == u16::MAX {
            self.flush();
        }
    }

    /// Writes `name` (wire labels, no root), pointing at the longest of
    /// its suffixes already in this message.
    fn owner(&mut self, name: &[u8]) {
        let hash = |suffix: &[u8]| Hasher::default().hash_one(suffix);
        let mut hit = None;
        let mut at = 0;
        while at < name.len() {
            if let Some(&pointer) = self.names.get(&hash(&name[at..]))
                && same_name(&self.buf, usize::from(pointer), &name[at..])
            {
                hit = Some(pointer);
                break;
            }
            at += 1 + usize::from(name[at]);
        }
        // The suffixes written in full are the ones later names can point
        // at (hashed again: cheaper than keeping them, for the one or two
        // labels a name usually adds).
        let base = self.buf.len();
        let mut start = 0;
        while start < at && base + start <= 0x3FFF {
            self.names
                .insert(hash(&name[start..]), (base + start) as u16);
            start += 1 + usize::from(name[start]);
        }
        let written = at.min(name.len());
        self.buf.extend_from_slice(&name[..written]);
        match hit {
            Some(pointer) => self
                .buf
                .extend_from_slice(&(0xC000 | pointer).to_be_bytes()),
            None => self.buf.push(0),
        }
    }

    /// Finishes the current message (if it holds anything) and sends it.
    fn flush(&mut self) {
        if self.closed {
            return;
        }
        let mut msg = std::mem::take(&mut self.buf);
        msg[6..8].copy_from_slice(&self.count.to_be_bytes());
        seal(&mut msg, self.header.edns, self.signing.as_mut(), self.now);
        self.sent.messages += 1;
        self.sent.bytes += msg.len() as u64;
        if !self.sink.send(frame(&msg)) {
            self.closed = true;
        }
        self.buf = msg;
        self.start();
    }

    /// Sends the last message; returns what the response sent.
    pub fn finish(mut self) -> Sent {
        if self.count > 0 || self.sent.messages == 0 {
            self.flush();
        }
        self.sent
    }
}

/// Hashes wire suffixes for owner compression: the same seed in every
/// message, so a suffix hashes alike wherever it was written.
type Hasher = foldhash::fast::FixedState;

/// Whether the name written at `at` in `msg` (labels, then the root or a
/// pointer to an earlier name) is `suffix` followed by the root.
fn same_name(msg: &[u8], mut at: usize, mut suffix: &[u8]) -> bool {
    loop {
        let Some(&len) = msg.get(at) else {
            return false;
        };
        if len & 0xC0 == 0xC0 {
            let Some(&low) = msg.get(at + 1) else {
                return false;
            };
            let to = usize::from(len & 0x3F) << 8 | usize::from(low);
            // Pointers written here always point back.
            if to >= at {
                return false;
            }
            at = to;
            continue;
        }
        if len == 0 {
            return suffix.is_empty();
        }
        let label = 1 + usize::from(len);
        match (msg.get(at..at + label), suffix.get(..label)) {
            (Some(written), Some(wanted)) if written == wanted => {}
            _ => return false,
        }
        suffix = &suffix[label..];
        at += label;
    }
}

/// Calls `f` with each record of pre-encoded answer bytes (owners are the
/// 2-byte question pointer), from TYPE on.
pub fn for_each_record(bytes: &[u8], mut f: impl FnMut(&[u8])) {
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let rdlen = usize::from(u16::from_be_bytes([bytes[at + 10], bytes[at + 11]]));
        let end = at + 12 + rdlen;
        let Some(tail) = bytes.get(at + 2..end) else {
            return;
        };
        f(tail);
        at = end;
    }
}

/// Appends the OPT record (when asked) and the TSIG (when signing).
fn seal(msg: &mut Vec<u8>, edns: bool, signing: Option<&mut Signing>, now: u64) {
    if edns {
        let ar = u16::from_be_bytes([msg[10], msg[11]]) + 1;
        msg[10..12].copy_from_slice(&ar.to_be_bytes());
        msg.push(0);
        msg.extend_from_slice(&qtype::OPT.to_be_bytes());
        msg.extend_from_slice(&crate::wire::EDNS_UDP.to_be_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    if let Some(s) = signing
        && let Some(record) = s.sign(msg, now)
    {
        tsig::append(msg, &record);
    }
}

/// The message with its 2-byte length prefix.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    framed
}

/// A response with no records: `rcode` (and the TSIG error record, when
/// there is one) to a request with header `header` and `question`.
pub fn error(
    header: Header,
    question: &[u8],
    rcode: u8,
    signing: Option<&mut Signing>,
    tsig_error: Option<&tsig::Failure>,
    now: u64,
) -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER_LEN + question.len() + 160);
    msg.extend_from_slice(&header.id.to_be_bytes());
    msg.extend_from_slice(&[0x80 | u8::from(header.rd), rcode & 0x0F]);
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(question);
    seal(&mut msg, header.edns, signing, now);
    if let Some(failure) = tsig_error
        && let Some(record) = failure.record(&msg, now)
    {
        tsig::append(&mut msg, &record);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::RrsetBuilder;
    use hickory_proto::op::Message;
    use hickory_proto::rr::RData;

    fn a_set(ip: [u8; 4], n: u8) -> Rrset {
        let mut b = RrsetBuilder::new(1, 5);
        for i in 0..n {
            b.push(&RData::A(
                std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3].wrapping_add(i)).into(),
            ));
        }
        b.finish().expect("records")
    }

    fn collect(records: usize) -> (Vec<Vec<u8>>, Sent) {
        let mut out = Vec::new();
        let question = b"\x07cluster\x01a\x00\x00\xfc\x00\x01".to_vec();
        let header = Header {
            id: 42,
            rd: false,
            edns: true,
        };
        let mut m = Messages::new(
            header,
            &question,
            None,
            |f: Vec<u8>| {
                out.push(f);
                true
            },
            0,
        );
        for i in 0..records {
            let owner = WireName::parse(&format!("web-{i}.web.shop.svc.cluster.a")).expect("name");
            m.rrset(&owner, &a_set([10, 0, (i / 250) as u8, (i % 250) as u8], 1));
        }
        let sent = m.finish();
        (out, sent)
    }

    #[test]
    fn a_large_answer_is_split_into_messages_hickory_reads_with_every_record() {
        let (framed, sent) = collect(5000);
        assert!(sent.messages > 3, "{sent:?}");
        let mut names = Vec::new();
        for (i, f) in framed.iter().enumerate() {
            let len = usize::from(u16::from_be_bytes([f[0], f[1]]));
            assert_eq!(len, f.len() - 2);
            assert!(len <= MESSAGE_LIMIT, "message {i} is {len} bytes");
            let m = Message::from_vec(&f[2..]).expect("hickory parses the message");
            assert_eq!(m.queries.len(), usize::from(i == 0));
            assert!(m.metadata.authoritative && m.metadata.id == 42);
            assert!(m.edns.is_some());
            names.extend(m.answers.iter().map(|r| r.name.to_string()));
        }
        assert_eq!(names.len(), 5000);
        assert_eq!(names[4999], "web-4999.web.shop.svc.cluster.a.");
        // Compressed: about 8 bytes of owner per record, not 37.
        assert!(sent.bytes < 5000 * 32, "{sent:?}");
    }

    #[test]
    fn a_written_name_is_read_back_through_its_pointers() {
        // "shop.svc" at 12, then "web" + a pointer to it at 22.
        let mut msg = vec![0u8; HEADER_LEN];
        msg.extend_from_slice(b"\x04shop\x03svc\x00\x03web\xc0\x0c");
        assert!(same_name(&msg, 12, b"\x04shop\x03svc"));
        assert!(same_name(&msg, 22, b"\x03web\x04shop\x03svc"));
        assert!(same_name(&msg, 17, b"\x03svc"));
        assert!(!same_name(&msg, 22, b"\x03web\x04shop"));
        assert!(!same_name(&msg, 22, b"\x03web\x04shop\x03svc\x01x"));
        assert!(!same_name(&msg, 12, b"\x04shoq\x03svc"));
        // A pointer forward (never written here) and bytes past the end.
        let mut bad = vec![0u8; HEADER_LEN];
        bad.extend_from_slice(b"\xc0\x0e\x00");
        assert!(!same_name(&bad, 12, b""));
        assert!(!same_name(&msg, msg.len(), b""));
    }

    #[test]
    fn owners_compress_against_every_suffix_written_before() {
        let mut out = Vec::new();
        let question = b"\x01a\x00\x00\xfc\x00\x01";
        let header = Header {
            id: 1,
            rd: false,
            edns: false,
        };
        let mut m = Messages::new(
            header,
            question,
            None,
            |f: Vec<u8>| {
                out.push(f);
                true
            },
            0,
        );
        let set = a_set([10, 0, 0, 1], 1);
        for name in ["web.shop.svc.a", "db.shop.svc.a", "web.shop.svc.a", "b"] {
            m.rrset(&WireName::parse(name).expect("name"), &set);
        }
        m.finish();
        let msg = &out[0][2..];
        let parsed = Message::from_vec(msg).expect("hickory parses it");
        let names: Vec<String> = parsed.answers.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(
            names,
            ["web.shop.svc.a.", "db.shop.svc.a.", "web.shop.svc.a.", "b."]
        );
        // Owners: 16 bytes in full, then "db" + pointer (5), a pointer (2),
        // "b" in full (3); each record's tail is 14 bytes.
        assert_eq!(
            msg.len(),
            HEADER_LEN + question.len() + 16 + 5 + 2 + 3 + 4 * 14
        );
    }

    #[test]
    fn an_empty_response_is_still_one_message() {
        let (framed, sent) = collect(0);
        assert_eq!((framed.len(), sent.messages), (1, 1));
    }
}
