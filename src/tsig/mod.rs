//! TSIG (RFC 8945) through hickory-proto's implementation (`TSigner`): the
//! configured keys as signers, and the secondary's side here: signed
//! requests, the checks of signed responses (one, or the messages of a zone
//! transfer, §5.3.1) and of signed requests (NOTIFY in). The primary's side
//! (checking a transfer request and signing every message of the response)
//! is [`primary`]. crossdns frames no HMAC input itself: every MAC is
//! computed and compared by hickory-proto.

pub mod primary;

use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigAlgorithm as Algorithm, signed_bitmessage_to_buf};
use hickory_proto::rr::{Name, Record, TSigner};

use crate::config::{TsigAlgorithm, TsigKey};

/// Seconds a signature's time may differ from this server's clock (RFC 8945
/// §10 recommends 300).
pub const FUDGE: u16 = 300;

/// RFC 8945 §5.3.1: a TSIG at least every 100 messages of a transfer.
const MAX_UNSIGNED: usize = 99;

/// Why a signed exchange does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsigFailure {
    #[error("the message is not signed")]
    Unsigned,
    #[error("it is signed with key {0}, not the configured one")]
    WrongKey(String),
    #[error("its signature does not verify")]
    BadSig,
    #[error("it was signed at {signed}, more than {fudge} s from this server's clock ({now})")]
    BadTime { signed: u64, now: u64, fudge: u16 },
    #[error("the peer refused our signature: TSIG error {0}")]
    Peer(String),
    #[error("more than 99 messages in a row are unsigned (RFC 8945 §5.3.1)")]
    TooManyUnsigned,
    #[error("its last message is not signed")]
    LastUnsigned,
}

/// Seconds since the Unix epoch, as TSIG times are.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn algorithm(a: TsigAlgorithm) -> Algorithm {
    match a {
        TsigAlgorithm::HmacSha256 => Algorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => Algorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => Algorithm::HmacSha512,
    }
}

/// The signer of a configured key (its name is the key's domain name).
pub fn signer(key: &TsigKey) -> Result<TSigner, String> {
    let name = Name::from_ascii(&key.name).map_err(|e| format!("key name {}: {e}", key.name))?;
    TSigner::new(key.secret.clone(), algorithm(key.algorithm), name, FUDGE)
        .map_err(|e| format!("key {}: {e}", key.name))
}

/// Signs `msg` (it must not change afterwards); returns its MAC, which the
/// responses' signatures cover.
pub fn sign(signer: &TSigner, msg: &mut Message) -> Result<Vec<u8>, String> {
    msg.finalize(signer, now()).map_err(|e| e.to_string())?;
    msg.signature()
        .map(|s| s.data.mac.clone())
        .ok_or_else(|| "signing left no TSIG record".to_owned())
}

fn check_time(tsig: &TSIG, now: u64) -> Result<(), TsigFailure> {
    let fudge = u64::from(tsig.fudge);
    if tsig.time.saturating_sub(fudge) <= now && now <= tsig.time.saturating_add(fudge) {
        Ok(())
    } else {
        Err(TsigFailure::BadTime {
            signed: tsig.time,
            now,
            fudge: tsig.fudge,
        })
    }
}

/// Checks the key, and a time hickory-proto can take: it computes `time -
/// fudge`, which a hostile peer could make underflow (no real signature is
/// that old, so it cannot verify).
fn check_key(signer: &TSigner, sig: &Record<TSIG>) -> Result<(), TsigFailure> {
    if sig.data.time < u64::from(sig.data.fudge) {
        return Err(TsigFailure::BadSig);
    }
    if sig.name != *signer.signer_name() || sig.data.algorithm != *signer.algorithm() {
        return Err(TsigFailure::WrongKey(format!(
            "{} ({})",
            sig.name, sig.data.algorithm
        )));
    }
    Ok(())
}

/// Checks a signed request (`bytes`, whose TSIG record is `sig`) against
/// `signer`, at `now`; returns its MAC, which the response's signature must
/// cover (RFC 8945 §5.2).
pub fn verify_request(
    signer: &TSigner,
    bytes: &[u8],
    sig: &Record<TSIG>,
    now: u64,
) -> Result<Vec<u8>, TsigFailure> {
    check_key(signer, sig)?;
    let (mac, _, _) = signer
        .verify_message_byte(bytes, None, true)
        .map_err(|_| TsigFailure::BadSig)?;
    check_time(&sig.data, now)?;
    Ok(mac)
}

/// Checks the responses to one signed request, in order: the first must be
/// signed; later ones may go unsigned, up to 99 in a row, and are then
/// covered by the next signature (RFC 8945 §5.3.1).
pub struct ResponseVerifier {
    signer: TSigner,
    /// The MAC the next signature covers: the request's, then the last
    /// response's.
    previous: Vec<u8>,
    first: bool,
    /// Unsigned messages since the last signed one, as received.
    pending: Vec<u8>,
    unsigned: usize,
    last_time: u64,
}

impl std::fmt::Debug for ResponseVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseVerifier")
            .field("key", self.signer.signer_name())
            .field("first", &self.first)
            .field("unsigned", &self.unsigned)
            .finish_non_exhaustive()
    }
}

impl ResponseVerifier {
    pub fn new(signer: TSigner, request_mac: Vec<u8>) -> Self {
        Self {
            signer,
            previous: request_mac,
            first: true,
            pending: Vec::new(),
            unsigned: 0,
            last_time: 0,
        }
    }

    /// Checks one response: `bytes` as received, `msg` as parsed from them.
    pub fn verify(&mut self, bytes: &[u8], msg: &Message) -> Result<(), TsigFailure> {
        let Some(sig) = msg.signature() else {
            if self.first {
                return Err(TsigFailure::Unsigned);
            }
            self.unsigned += 1;
            if self.unsigned > MAX_UNSIGNED {
                return Err(TsigFailure::TooManyUnsigned);
            }
            self.pending.extend_from_slice(bytes);
            return Ok(());
        };
        if let Some(error) = &sig.data.error {
            return Err(TsigFailure::Peer(format!("{error:?}")));
        }
        check_key(&self.signer, sig)?;
        let mac = if self.pending.is_empty() {
            let (mac, _, _) = self
                .signer
                .verify_message_byte(bytes, Some(&self.previous), self.first)
                .map_err(|_| TsigFailure::BadSig)?;
            mac
        } else {
            // The prior MAC, the unsigned messages, then this one without
            // its TSIG and with the timers only (§5.3.1).
            let (tail, record) =
                signed_bitmessage_to_buf(bytes, None, false).map_err(|_| TsigFailure::BadSig)?;
            // Truncated MACs (RFC 8945 §5.2.2.1) are refused, as
            // hickory-proto refuses them for signed messages.
            let full = match record.data.algorithm {
                Algorithm::HmacSha256 => 32,
                Algorithm::HmacSha384 => 48,
                Algorithm::HmacSha512 => 64,
                _ => usize::MAX,
            };
            if record.data.mac.len() < full {
                return Err(TsigFailure::BadSig);
            }
            let mut tbv =
                Vec::with_capacity(2 + self.previous.len() + self.pending.len() + tail.len());
            tbv.extend_from_slice(&(self.previous.len() as u16).to_be_bytes());
            tbv.extend_from_slice(&self.previous);
            tbv.extend_from_slice(&self.pending);
            tbv.extend_from_slice(&tail);
            self.signer
                .verify(&tbv, &record.data.mac)
                .map_err(|_| TsigFailure::BadSig)?;
            record.data.mac.clone()
        };
        check_time(&sig.data, now())?;
        if sig.data.time < self.last_time {
            return Err(TsigFailure::BadTime {
                signed: sig.data.time,
                now: now(),
                fudge: sig.data.fudge,
            });
        }
        self.last_time = sig.data.time;
        self.previous = mac;
        self.first = false;
        self.pending.clear();
        self.unsigned = 0;
        Ok(())
    }

    /// Checks that the exchange ended signed.
    pub fn finish(&self) -> Result<(), TsigFailure> {
        match (self.first, self.unsigned) {
            (true, _) => Err(TsigFailure::Unsigned),
            (false, 0) => Ok(()),
            (false, _) => Err(TsigFailure::LastUnsigned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::tsig::TsigError;
    use hickory_proto::rr::{RData, RecordType, TSigResponseContext};

    fn key(secret: &[u8]) -> TsigKey {
        TsigKey {
            name: "sites".into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: secret.to_vec(),
            secret_file: "k".into(),
        }
    }

    fn request(s: &TSigner) -> (Message, Vec<u8>) {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("cluster.a.").expect("name"),
            RecordType::AXFR,
        ));
        let mac = sign(s, &mut m).expect("signs");
        (m, mac)
    }

    /// A response message as a primary signs it, chained to `previous`
    /// (the request's MAC, or the last response's), or unsigned.
    fn response(s: &TSigner, n: u8, previous: &[u8], signed: bool) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            Name::from_ascii(format!("h{n}.cluster.a.")).expect("name"),
            5,
            RData::A(hickory_proto::rr::rdata::A::new(10, 0, 0, n)),
        ));
        let bytes = m.to_vec().expect("encode");
        if !signed {
            return bytes;
        }
        let ctx = TSigResponseContext::new(7, now(), s.clone(), previous.to_vec(), None);
        m.set_signature(ctx.sign(&bytes).expect("sign"));
        m.to_vec().expect("encode")
    }

    /// A later message of a transfer signed as RFC 8945 §5.3.1 says: the
    /// MAC covers the prior MAC, the unsigned messages since, this message
    /// and its timers only. (hickory-proto's response signer covers all of
    /// the TSIG variables, which fits single responses only.)
    fn next(s: &TSigner, bytes: &[u8], previous: &[u8], unsigned: &[u8]) -> Vec<u8> {
        let time = now();
        let mut tbv = (previous.len() as u16).to_be_bytes().to_vec();
        tbv.extend_from_slice(previous);
        tbv.extend_from_slice(unsigned);
        tbv.extend_from_slice(bytes);
        tbv.extend_from_slice(&((time >> 32) as u16).to_be_bytes());
        tbv.extend_from_slice(&(time as u32).to_be_bytes());
        tbv.extend_from_slice(&FUDGE.to_be_bytes());
        let mac = s.sign(&tbv).expect("mac");
        let tsig = TSIG::new(Algorithm::HmacSha256, time, FUDGE, mac, 7, None, Vec::new());
        let mut msg = Message::from_vec(bytes).expect("parse");
        msg.set_signature(Box::new(hickory_proto::rr::rdata::tsig::make_tsig_record(
            s.signer_name().clone(),
            tsig,
        )));
        msg.to_vec().expect("encode")
    }

    fn mac_of(bytes: &[u8]) -> Vec<u8> {
        Message::from_vec(bytes)
            .expect("parse")
            .signature()
            .expect("signed")
            .data
            .mac
            .clone()
    }

    #[test]
    fn a_transfer_verifies_signed_unsigned_and_signed_again_and_refuses_tampering() {
        let s = signer(&key(b"0123456789abcdef0123")).expect("signer");
        let (_, req_mac) = request(&s);
        let m1 = response(&s, 1, &req_mac, true);
        let mut v = ResponseVerifier::new(s.clone(), req_mac.clone());
        let parsed = |b: &[u8]| Message::from_vec(b).expect("parse");
        v.verify(&m1, &parsed(&m1)).expect("first verifies");
        let m2 = next(&s, &response(&s, 2, &[], false), &mac_of(&m1), &[]);
        v.verify(&m2, &parsed(&m2)).expect("second verifies");
        let unsigned = response(&s, 3, &[], false);
        v.verify(&unsigned, &parsed(&unsigned))
            .expect("unsigned allowed");
        assert_eq!(v.finish(), Err(TsigFailure::LastUnsigned));
        let m4 = next(&s, &response(&s, 4, &[], false), &mac_of(&m2), &unsigned);
        v.verify(&m4, &parsed(&m4))
            .expect("covers the unsigned message");
        v.finish().expect("ends signed");

        // A changed byte in a signed message fails.
        let mut bad = response(&s, 1, &req_mac, true);
        let at = bad.len() - 10; // inside the MAC
        bad[at] ^= 1;
        let mut v = ResponseVerifier::new(s.clone(), req_mac.clone());
        assert!(v.verify(&bad, &parsed(&bad)).is_err());
        // So does a changed address in the data.
        let mut bad = response(&s, 1, &req_mac, true);
        let at = bad
            .windows(4)
            .position(|w| w == [10, 0, 0, 1])
            .expect("the A record")
            + 3;
        bad[at] = 9;
        let mut v = ResponseVerifier::new(s.clone(), req_mac.clone());
        assert_eq!(v.verify(&bad, &parsed(&bad)), Err(TsigFailure::BadSig));
        // The first response unsigned, or signed with another secret, fails.
        let mut v = ResponseVerifier::new(s.clone(), req_mac.clone());
        let plain = response(&s, 1, &[], false);
        assert_eq!(
            v.verify(&plain, &parsed(&plain)),
            Err(TsigFailure::Unsigned)
        );
        let other = signer(&key(b"another-secret-of-20")).expect("signer");
        let forged = response(&other, 1, &req_mac, true);
        let mut v = ResponseVerifier::new(s, req_mac);
        assert_eq!(
            v.verify(&forged, &parsed(&forged)),
            Err(TsigFailure::BadSig)
        );
    }

    #[test]
    fn a_signed_request_verifies_and_a_peer_error_is_reported() {
        let s = signer(&key(b"0123456789abcdef0123")).expect("signer");
        let (m, mac) = request(&s);
        let bytes = m.to_vec().expect("encode");
        let sig = m.signature().expect("signed");
        assert_eq!(verify_request(&s, &bytes, sig, now()), Ok(mac));
        assert!(matches!(
            verify_request(&s, &bytes, sig, now() + 1000),
            Err(TsigFailure::BadTime { .. })
        ));
        let other = signer(&TsigKey {
            name: "other".into(),
            ..key(b"0123456789abcdef0123")
        })
        .expect("signer");
        assert!(matches!(
            verify_request(&other, &bytes, sig, now()),
            Err(TsigFailure::WrongKey(_))
        ));
        // A BADKEY answer carries an unsigned TSIG with the error.
        let mut resp = Message::new(7, MessageType::Response, OpCode::Query);
        let bytes = resp.to_vec().expect("encode");
        let ctx =
            TSigResponseContext::unknown_key(7, now(), Name::from_ascii("sites.").expect("n"));
        resp.set_signature(ctx.sign(&bytes).expect("sign"));
        let bytes = resp.to_vec().expect("encode");
        let mut v = ResponseVerifier::new(s, vec![1; 32]);
        assert_eq!(
            v.verify(&bytes, &Message::from_vec(&bytes).expect("parse")),
            Err(TsigFailure::Peer(format!("{:?}", TsigError::BadKey)))
        );
    }
}
