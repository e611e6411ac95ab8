//! TSIG (RFC 8945) on the primary side: verifying a signed request (a
//! transfer, or the SOA query a secondary sends before one), and signing
//! every message of the response: the first over the request's MAC and the
//! TSIG variables (§4.3.1), each later one over the previous MAC, the
//! message and the timers (§5.3.1). The HMACs, the TSIG record and the
//! request digest are hickory-proto's; this file only decides which error
//! a request gets (§5.2) and chains the MACs.

use std::fmt;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm as WireAlgorithm, TsigError, make_tsig_record, signed_bitmessage_to_buf,
};
use hickory_proto::rr::{Name, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::{FUDGE, signer};
use crate::config::TsigKey;
use crate::wire::skip_name;

/// The TSIG RR type (RFC 8945 §4.1).
const TYPE_TSIG: u16 = 250;

/// The keys requests may be signed with.
#[derive(Clone)]
pub struct Keys {
    signers: Vec<TSigner>,
    /// An unsigned request is refused (`transfer.key` is set).
    required: bool,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .signers
            .iter()
            .map(|s| s.signer_name().to_string())
            .collect();
        f.debug_struct("Keys")
            .field("names", &names)
            .field("required", &self.required)
            .finish()
    }
}

/// What a request's TSIG says.
#[derive(Debug)]
pub enum Check {
    /// No TSIG record.
    Unsigned,
    /// A valid signature: sign the response with this.
    Valid(Signing),
    /// RFC 8945 §5.2: answer NOTAUTH with this TSIG error.
    Invalid(Failure),
    /// The message does not parse.
    Malformed,
}

impl Keys {
    /// With `required` (`transfer.key`), only that key; otherwise every
    /// configured key is accepted, and unsigned requests too.
    pub fn new(required: Option<&TsigKey>, all: &[TsigKey]) -> Self {
        let keys: Vec<&TsigKey> = match required {
            Some(k) => vec![k],
            None => all.iter().collect(),
        };
        Self {
            signers: keys.into_iter().filter_map(|k| signer(k).ok()).collect(),
            required: required.is_some(),
        }
    }

    pub fn required(&self) -> bool {
        self.required
    }

    /// Checks the TSIG of `request` at unix time `now` (RFC 8945 §5.2: key,
    /// then MAC, then time).
    pub fn check(&self, request: &[u8], now: u64) -> Check {
        if !has_tsig(request) {
            return Check::Unsigned;
        }
        let Ok((tbv, record)) = signed_bitmessage_to_buf(request, None, true) else {
            return Check::Malformed;
        };
        let tsig = &record.data;
        let failure = |error, signer: Option<&TSigner>| {
            Check::Invalid(Failure {
                error,
                key: record.name.clone(),
                algorithm: tsig.algorithm.clone(),
                oid: tsig.oid,
                time: tsig.time,
                mac: tsig.mac.clone(),
                signer: signer.cloned(),
            })
        };
        let Some(signer) = self
            .signers
            .iter()
            .find(|s| *s.signer_name() == record.name && *s.algorithm() == tsig.algorithm)
        else {
            return failure(TsigError::BadKey, None);
        };
        if signer.verify(&tbv, &tsig.mac).is_err() {
            return failure(TsigError::BadSig, None);
        }
        // Checked here, not by hickory's `verify_message_byte`, whose range
        // `time - fudge` underflows for a request signed near time 0.
        if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
            return failure(TsigError::BadTime, Some(signer));
        }
        Check::Valid(Signing {
            signer: signer.clone(),
            oid: tsig.oid,
            prev: tsig.mac.clone(),
            first: true,
        })
    }
}

/// Whether the last record of the message is a TSIG (RFC 8945 §5.1: it
/// must be last). Walks the sections without decoding them.
fn has_tsig(msg: &[u8]) -> bool {
    let count = |at: usize| {
        msg.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let (Some(qd), Some(an), Some(ns), Some(ar)) = (count(4), count(6), count(8), count(10)) else {
        return false;
    };
    if ar == 0 {
        return false;
    }
    let mut at = 12;
    for _ in 0..qd {
        let Some(end) = skip_name(msg, at) else {
            return false;
        };
        at = end + 4;
    }
    let records = usize::from(an) + usize::from(ns) + usize::from(ar);
    let mut last_type = 0;
    for _ in 0..records {
        let Some(end) = skip_name(msg, at) else {
            return false;
        };
        let (Some(rtype), Some(rdlen)) = (count(end), count(end + 8)) else {
            return false;
        };
        last_type = rtype;
        at = end + 10 + usize::from(rdlen);
    }
    last_type == TYPE_TSIG && at <= msg.len()
}

/// A signer whose `Debug` names the key and nothing else.
#[derive(Clone)]
pub struct Signer(pub TSigner);

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.0.signer_name())
    }
}

/// A request whose TSIG failed (RFC 8945 §5.2).
pub struct Failure {
    error: TsigError,
    key: Name,
    algorithm: WireAlgorithm,
    oid: u16,
    /// The request's Time Signed and MAC (for BADTIME, which is signed).
    time: u64,
    mac: Vec<u8>,
    signer: Option<TSigner>,
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("error", &self.error)
            .field("key", &self.key.to_string())
            .finish_non_exhaustive()
    }
}

impl Failure {
    pub fn error(&self) -> TsigError {
        self.error
    }

    /// The TSIG record for the NOTAUTH response `response` (without it):
    /// unsigned for BADKEY and BADSIG (§5.2.1, §5.2.2); for BADTIME signed,
    /// with the request's Time Signed and the server's time as Other Data
    /// (§5.2.3), so the client can verify it and see the skew.
    pub fn record(&self, response: &[u8], now: u64) -> Option<Vec<u8>> {
        let mut tsig = TSIG::new(
            self.algorithm.clone(),
            now,
            FUDGE,
            Vec::new(),
            self.oid,
            Some(self.error),
            Vec::new(),
        );
        if let (TsigError::BadTime, Some(signer)) = (self.error, &self.signer) {
            tsig = TSIG::new(
                self.algorithm.clone(),
                self.time,
                FUDGE,
                Vec::new(),
                self.oid,
                Some(TsigError::BadTime),
                now.to_be_bytes()[2..].to_vec(),
            );
            let tbs = signer
                .encode_response_tbs(&self.mac, response, &tsig)
                .ok()?;
            tsig = tsig.set_mac(signer.sign(&tbs).ok()?);
        }
        encode(make_tsig_record(self.key.clone(), tsig))
    }
}

/// Signs the messages of one response, in order.
pub struct Signing {
    signer: TSigner,
    oid: u16,
    /// The request's MAC, then each signed message's.
    prev: Vec<u8>,
    first: bool,
}

impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signing")
            .field("key", &self.signer.signer_name().to_string())
            .field("first", &self.first)
            .finish()
    }
}

impl Signing {
    /// The TSIG record for `message` (complete but for it; its ARCOUNT
    /// does not count it yet), signed at unix time `now`.
    pub fn sign(&mut self, message: &[u8], now: u64) -> Option<Vec<u8>> {
        let tsig = TSIG::new(
            self.signer.algorithm().clone(),
            now,
            self.signer.fudge(),
            Vec::new(),
            self.oid,
            None,
            Vec::new(),
        );
        let tbs = if self.first {
            // §4.3.1: request MAC, the message, all TSIG variables.
            self.signer
                .encode_response_tbs(&self.prev, message, &tsig)
                .ok()?
        } else {
            // §5.3.1: previous MAC, the message, the timers only.
            let mut tbs = Vec::with_capacity(self.prev.len() + message.len() + 10);
            let mut enc = BinEncoder::new(&mut tbs);
            enc.emit_u16(self.prev.len() as u16).ok()?;
            enc.emit_vec(&self.prev).ok()?;
            enc.emit_vec(message).ok()?;
            enc.emit_u16((now >> 32) as u16).ok()?;
            enc.emit_u32(now as u32).ok()?;
            enc.emit_u16(self.signer.fudge()).ok()?;
            tbs
        };
        let mac = self.signer.sign(&tbs).ok()?;
        self.prev.clone_from(&mac);
        self.first = false;
        encode(make_tsig_record(
            self.signer.signer_name().clone(),
            tsig.set_mac(mac),
        ))
    }
}

fn encode(record: hickory_proto::rr::Record<TSIG>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    record.emit(&mut BinEncoder::new(&mut out)).ok()?;
    Some(out)
}

/// Appends a TSIG record to a finished message and counts it in ARCOUNT.
pub fn append(message: &mut Vec<u8>, record: &[u8]) {
    if message.len() < 12 {
        return;
    }
    let ar = u16::from_be_bytes([message[10], message[11]]).saturating_add(1);
    message[10..12].copy_from_slice(&ar.to_be_bytes());
    message.extend_from_slice(record);
}

/// Signs an outgoing request (a NOTIFY) with `signer`; returns the bytes
/// and the verifier for its response.
pub fn sign_request(
    msg: &mut Message,
    signer: &TSigner,
    now: u64,
) -> Option<hickory_proto::rr::TSigVerifier> {
    msg.finalize(signer, now).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TsigAlgorithm;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;

    fn key(name: &str, secret: &[u8]) -> TsigKey {
        TsigKey {
            name: name.to_owned(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: secret.to_vec(),
            secret_file: "/dev/null".into(),
        }
    }

    fn signed_axfr(key: &TsigKey, time: u64) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("cluster.a.").expect("name"),
            RecordType::AXFR,
        ));
        m.finalize(&signer(key).expect("signer"), time)
            .expect("sign");
        m.to_vec().expect("encode")
    }

    #[test]
    fn requests_get_badkey_badsig_badtime_or_a_signer_in_that_order() {
        let good = key("sites", b"0123456789abcdef0123");
        let keys = Keys::new(Some(&good), &[]);
        let now = 1_700_000_000;
        assert!(matches!(
            keys.check(&signed_axfr(&good, now), now),
            Check::Valid(_)
        ));
        let stranger = key("other", b"0123456789abcdef0123");
        let wrong_secret = key("sites", b"not-the-secret-at-all");
        for (req, want) in [
            (signed_axfr(&stranger, now), TsigError::BadKey),
            (signed_axfr(&wrong_secret, now), TsigError::BadSig),
            (signed_axfr(&good, now - 301), TsigError::BadTime),
            (signed_axfr(&good, 3), TsigError::BadTime),
        ] {
            match keys.check(&req, now) {
                Check::Invalid(f) => assert_eq!(f.error(), want),
                other => panic!("{want:?} expected, got {other:?}"),
            }
        }
        let mut unsigned = Message::new(7, MessageType::Query, OpCode::Query);
        unsigned.add_query(Query::query(Name::root(), RecordType::AXFR));
        let unsigned = unsigned.to_vec().expect("encode");
        assert!(matches!(keys.check(&unsigned, now), Check::Unsigned));
        assert!(keys.required());
    }

    #[test]
    fn every_message_of_a_response_verifies_with_hickorys_chained_verifier() {
        let k = key("sites", b"0123456789abcdef0123");
        let s = signer(&k).expect("signer");
        let now = 1_700_000_000;
        let mut req = Message::new(9, MessageType::Query, OpCode::Query);
        req.add_query(Query::query(
            Name::from_ascii("cluster.a.").expect("name"),
            RecordType::AXFR,
        ));
        let mut verifier = req.finalize(&s, now).expect("sign").expect("a verifier");
        let bytes = req.to_vec().expect("encode");
        let Check::Valid(mut signing) = Keys::new(Some(&k), &[]).check(&bytes, now) else {
            panic!("request not valid");
        };
        for i in 0..3u8 {
            let mut resp = Message::new(9, MessageType::Response, OpCode::Query);
            resp.metadata.authoritative = true;
            resp.add_answer(hickory_proto::rr::Record::from_rdata(
                Name::from_ascii(format!("h{i}.cluster.a.")).expect("name"),
                5,
                hickory_proto::rr::RData::A(std::net::Ipv4Addr::new(10, 0, 0, i).into()),
            ));
            let mut wire = resp.to_vec().expect("encode");
            let tsig = signing.sign(&wire, now + u64::from(i)).expect("signed");
            append(&mut wire, &tsig);
            verifier
                .verify(&wire)
                .unwrap_or_else(|e| panic!("message {i} does not verify: {e}"));
        }
    }
}
