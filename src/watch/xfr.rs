//! Reading the response to a zone transfer request, message by message,
//! without I/O: AXFR (RFC 5936 §2.2: the zone between two copies of its
//! SOA), and IXFR (RFC 1995 §4): a single SOA when the asked serial is
//! current, differences (old SOA, deletions, new SOA, additions, repeated,
//! possibly condensed into one) between the server's SOA and a final copy of
//! it, or the whole zone in AXFR form. The messages are checked as a
//! response to the request (ID, opcode, RCODE, question, no truncation);
//! records are checked only for the framing SOAs: the index decides what
//! the rest means. Anything else is an error naming what was wrong.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::index::serial_gt;

/// Records a transfer may carry before it is refused (memory bound: about
/// 150 bytes each while held).
pub const MAX_RECORDS: usize = 4_000_000;

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Axfr,
    /// IXFR from the serial held.
    Ixfr {
        serial: u32,
    },
}

impl Ask {
    pub fn rtype(self) -> RecordType {
        match self {
            Ask::Axfr => RecordType::AXFR,
            Ask::Ixfr { .. } => RecordType::IXFR,
        }
    }
}

/// One IXFR difference: from serial `from` to `to`, these records go and
/// these come (SOAs left out).
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub from: u32,
    pub to: u32,
    pub deleted: Vec<Record>,
    pub added: Vec<Record>,
}

/// A complete transfer.
#[derive(Debug, Clone, PartialEq)]
pub enum Transfer {
    /// IXFR: the serial held is the server's (or newer).
    UpToDate { serial: u32 },
    /// The whole zone at `serial` (an AXFR, or an IXFR answered whole),
    /// without its SOA.
    Full { serial: u32, records: Vec<Record> },
    /// IXFR differences, oldest first, ending at `serial`.
    Incremental { serial: u32, diffs: Vec<Diff> },
}

impl Transfer {
    pub fn serial(&self) -> u32 {
        match self {
            Transfer::UpToDate { serial }
            | Transfer::Full { serial, .. }
            | Transfer::Incremental { serial, .. } => *serial,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfrError {
    #[error("the primary answered {0}")]
    Rcode(ResponseCode),
    /// IXFR was answered with a single SOA newer than the serial held:
    /// the server has no difference to give (ask for AXFR).
    #[error("the primary has no incremental transfer from serial {0}")]
    NoIncremental(u32),
    #[error("the transfer holds more than {MAX_RECORDS} records")]
    TooLarge,
    #[error("{0}")]
    Protocol(String),
}

fn protocol(s: impl Into<String>) -> XfrError {
    XfrError::Protocol(s.into())
}

#[derive(Debug)]
enum State {
    /// Before the first record.
    Start,
    /// After the server's SOA (`serial`), before the second record.
    First {
        serial: u32,
    },
    Axfr {
        serial: u32,
        records: Vec<Record>,
    },
    /// IXFR differences; `adding`: after the current difference's new SOA.
    Ixfr {
        serial: u32,
        diffs: Vec<Diff>,
        adding: bool,
    },
    Done(Transfer),
    Failed,
}

/// Reads the response messages to one request for `zone`.
#[derive(Debug)]
pub struct Reader {
    zone: Name,
    ask: Ask,
    id: u16,
    messages: usize,
    records: usize,
    state: State,
}

impl Reader {
    /// `id`: the request's message ID.
    pub fn new(zone: Name, ask: Ask, id: u16) -> Self {
        Self {
            zone,
            ask,
            id,
            messages: 0,
            records: 0,
            state: State::Start,
        }
    }

    /// Reads one response message; `Ok(true)` once the transfer is complete.
    pub fn push(&mut self, msg: &Message) -> Result<bool, XfrError> {
        let result = self.read(msg);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn read(&mut self, msg: &Message) -> Result<bool, XfrError> {
        let m = &msg.metadata;
        if m.id != self.id {
            return Err(protocol(format!(
                "response ID {}, asked with {}",
                m.id, self.id
            )));
        }
        if m.message_type != MessageType::Response || m.op_code != OpCode::Query {
            return Err(protocol("not a QUERY response"));
        }
        if m.response_code != ResponseCode::NoError {
            return Err(XfrError::Rcode(m.response_code));
        }
        if m.truncation {
            return Err(protocol("truncated response over a stream"));
        }
        if let Some(q) = msg.queries.first()
            && (q.name() != &self.zone || q.query_type() != self.ask.rtype())
        {
            return Err(protocol(format!(
                "the response is for {} {}",
                q.name(),
                q.query_type()
            )));
        }
        self.messages += 1;
        if let State::Done(_) | State::Failed = self.state {
            return Err(protocol("a message after the final SOA"));
        }
        for r in &msg.answers {
            self.records += 1;
            if self.records > MAX_RECORDS {
                return Err(XfrError::TooLarge);
            }
            self.step(r)?;
        }
        // RFC 1995 §4: an IXFR answered by the SOA alone.
        if let (State::First { serial }, Ask::Ixfr { serial: held }) = (&self.state, self.ask)
            && self.messages == 1
            && msg.answers.len() == 1
        {
            let serial = *serial;
            if serial_gt(serial, held) {
                return Err(XfrError::NoIncremental(held));
            }
            self.state = State::Done(Transfer::UpToDate { serial });
        }
        if self.messages == 1 && msg.answers.is_empty() {
            return Err(protocol("the first response message holds no records"));
        }
        Ok(matches!(self.state, State::Done(_)))
    }

    /// The zone's SOA serial, if `r` is the zone's SOA.
    fn soa_serial(&self, r: &Record) -> Option<u32> {
        match &r.data {
            RData::SOA(soa) if r.name == self.zone => Some(soa.serial),
            _ => None,
        }
    }

    fn step(&mut self, r: &Record) -> Result<(), XfrError> {
        let soa = self.soa_serial(r);
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.state = match state {
            State::Start => match soa {
                Some(serial) => State::First { serial },
                None => {
                    return Err(protocol(format!(
                        "the first record is {} {}, not the zone's SOA",
                        r.name,
                        r.record_type()
                    )));
                }
            },
            State::First { serial } => match (soa, self.ask) {
                // The old SOA of the first difference (RFC 1995 §4).
                (Some(from), Ask::Ixfr { serial: held }) if from == held && from != serial => {
                    State::Ixfr {
                        serial,
                        diffs: vec![Diff {
                            from,
                            to: from,
                            deleted: Vec::new(),
                            added: Vec::new(),
                        }],
                        adding: false,
                    }
                }
                (Some(s), _) if s == serial => State::Done(Transfer::Full {
                    serial,
                    records: Vec::new(),
                }),
                (Some(s), _) => {
                    return Err(protocol(format!(
                        "SOA serial {s} after the zone's SOA {serial}"
                    )));
                }
                (None, _) => State::Axfr {
                    serial,
                    records: vec![r.clone()],
                },
            },
            State::Axfr {
                serial,
                mut records,
            } => match soa {
                Some(s) if s == serial => State::Done(Transfer::Full { serial, records }),
                Some(s) => {
                    return Err(protocol(format!(
                        "SOA serial {s} inside the transfer of serial {serial}"
                    )));
                }
                None => {
                    records.push(r.clone());
                    State::Axfr { serial, records }
                }
            },
            State::Ixfr {
                serial,
                mut diffs,
                adding,
            } => {
                let Some(current) = diffs.last_mut() else {
                    return Err(protocol("no difference open"));
                };
                match (soa, adding) {
                    (None, false) => {
                        current.deleted.push(r.clone());
                        State::Ixfr {
                            serial,
                            diffs,
                            adding,
                        }
                    }
                    (None, true) => {
                        current.added.push(r.clone());
                        State::Ixfr {
                            serial,
                            diffs,
                            adding,
                        }
                    }
                    (Some(to), false) => {
                        if !serial_gt(to, current.from) {
                            return Err(protocol(format!(
                                "a difference from serial {} to {to}",
                                current.from
                            )));
                        }
                        current.to = to;
                        State::Ixfr {
                            serial,
                            diffs,
                            adding: true,
                        }
                    }
                    (Some(s), true) if s == serial && current.to == serial => {
                        State::Done(Transfer::Incremental { serial, diffs })
                    }
                    (Some(s), true) if s == current.to => {
                        diffs.push(Diff {
                            from: s,
                            to: s,
                            deleted: Vec::new(),
                            added: Vec::new(),
                        });
                        State::Ixfr {
                            serial,
                            diffs,
                            adding: false,
                        }
                    }
                    (Some(s), true) => {
                        return Err(protocol(format!(
                            "a difference from serial {s} after one to {}",
                            current.to
                        )));
                    }
                }
            }
            State::Done(_) | State::Failed => return Err(protocol("a record after the final SOA")),
        };
        Ok(())
    }

    /// The transfer, once `push` said it is complete.
    pub fn finish(self) -> Result<Transfer, XfrError> {
        match self.state {
            State::Done(t) => Ok(t),
            _ => Err(protocol("the transfer ended before its final SOA")),
        }
    }
}

#[cfg(test)]
mod tests;
