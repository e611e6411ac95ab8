//! One `primary:` source's DNS client: SOA queries (over UDP, then TCP
//! when truncated; over TLS to `tls://` servers) and zone transfers over TCP
//! or TLS (XoT, RFC 9103: ALPN `dot`), each request signed with the
//! source's TSIG key when it has one and every response message checked
//! against it (`crate::tsig`). Failures carry the cause `/metrics` counts.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::config::{PrimarySettings, Upstream};
use crate::index::FailureCause;
use crate::tsig::{self, ResponseVerifier, TsigFailure};
use crate::watch::xfr::{Ask, Reader, Transfer, XfrError};

/// Connecting (TCP, and the TLS handshake) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// An SOA query waits this long for its answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// A transfer waits this long for each next message.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Unreachable(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("no answer within {0:?}")]
    Stalled(Duration),
    #[error("the primary answered {rcode}{detail}")]
    Rcode { rcode: ResponseCode, detail: String },
    #[error("the response's TSIG: {0}")]
    Tsig(TsigFailure),
    #[error("the primary has no incremental transfer from serial {0}")]
    NoIncremental(u32),
    #[error("{0}")]
    Garbage(String),
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    pub fn cause(&self) -> FailureCause {
        match self {
            ClientError::Unreachable(_) => FailureCause::Unreachable,
            ClientError::Tls(_) => FailureCause::Tls,
            ClientError::Stalled(_) => FailureCause::Stalled,
            ClientError::Rcode {
                rcode: ResponseCode::Refused | ResponseCode::NotAuth,
                ..
            } => FailureCause::Unauthorized,
            ClientError::Rcode { .. } => FailureCause::ServerError,
            ClientError::Tsig(TsigFailure::Peer(_)) => FailureCause::Unauthorized,
            ClientError::Tsig(_) => FailureCause::Tsig,
            ClientError::NoIncremental(_) | ClientError::Garbage(_) => FailureCause::Garbage,
            ClientError::Setup(_) => FailureCause::Other,
        }
    }

    /// After an IXFR that failed so, an AXFR may still work.
    pub fn try_axfr(&self) -> bool {
        matches!(
            self,
            ClientError::NoIncremental(_) | ClientError::Garbage(_)
        ) || matches!(
            self,
            ClientError::Rcode { rcode, .. }
                if matches!(rcode, ResponseCode::NotImp | ResponseCode::FormErr)
        )
    }
}

impl From<XfrError> for ClientError {
    fn from(e: XfrError) -> Self {
        match e {
            XfrError::Rcode(rcode) => ClientError::Rcode {
                rcode,
                detail: String::new(),
            },
            XfrError::NoIncremental(s) => ClientError::NoIncremental(s),
            XfrError::TooLarge | XfrError::Protocol(_) => ClientError::Garbage(e.to_string()),
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The client of one zone's primaries.
pub struct Client {
    zone: Name,
    signer: Option<TSigner>,
    tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("zone", &self.zone)
            .field("key", &self.signer.as_ref().map(TSigner::signer_name))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Client {
    pub fn new(zone: Name, settings: &PrimarySettings) -> Result<Self, ClientError> {
        let signer = settings
            .key
            .as_ref()
            .map(tsig::signer)
            .transpose()
            .map_err(ClientError::Setup)?;
        let tls = if settings
            .servers
            .iter()
            .any(|s| matches!(s, Upstream::Tls { .. }))
        {
            let client = settings
                .tls
                .client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            let mut config = crate::tls::client_config(settings.tls.ca.as_deref(), client)
                .map_err(|e| ClientError::Setup(e.to_string()))?;
            // RFC 9103 §7.1: XoT clients offer ALPN "dot".
            config.alpn_protocols = vec![b"dot".to_vec()];
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Self { zone, signer, tls })
    }

    /// A request for the zone, signed when there is a key; with the serial
    /// held in the authority section for IXFR (RFC 1995 §3).
    fn request(
        &self,
        rtype: RecordType,
        held: Option<u32>,
    ) -> Result<(Message, Vec<u8>, Option<ResponseVerifier>), ClientError> {
        let mut m = Message::new(fastrand::u16(..), MessageType::Query, OpCode::Query);
        m.add_query(Query::query(self.zone.clone(), rtype));
        if let Some(serial) = held {
            let z = self.zone.clone();
            let soa = SOA::new(z.clone(), z.clone(), serial, 0, 0, 0, 0);
            m.add_authority(Record::from_rdata(z, 0, RData::SOA(soa)));
        }
        if rtype == RecordType::SOA {
            let mut edns = Edns::new();
            edns.set_max_payload(crate::wire::EDNS_UDP);
            m.set_edns(edns);
        }
        let verifier = match &self.signer {
            Some(s) => {
                let mac = tsig::sign(s, &mut m).map_err(ClientError::Setup)?;
                Some(ResponseVerifier::new(s.clone(), mac))
            }
            None => None,
        };
        let bytes = m.to_vec().map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok((m, bytes, verifier))
    }

    /// The zone's SOA serial at `server`.
    pub async fn soa_serial(&self, server: &Upstream) -> Result<u32, ClientError> {
        let (req, bytes, mut verifier) = self.request(RecordType::SOA, None)?;
        let answer = match server {
            Upstream::Plain(addr) => match udp_exchange(*addr, &bytes, req.metadata.id).await? {
                Some(answer) => answer,
                // Truncated: again over TCP (RFC 7766).
                None => {
                    let mut s = self.connect(server).await?;
                    send(&mut s, &bytes).await?;
                    recv(&mut s, QUERY_TIMEOUT).await?
                }
            },
            Upstream::Tls { .. } => {
                let mut s = self.connect(server).await?;
                send(&mut s, &bytes).await?;
                recv(&mut s, QUERY_TIMEOUT).await?
            }
        };
        let msg = parse(&answer)?;
        check_signature(verifier.as_mut(), &answer, &msg)?;
        if let Some(v) = &verifier {
            v.finish().map_err(ClientError::Tsig)?;
        }
        if msg.metadata.id != req.metadata.id {
            return Err(ClientError::Garbage("an answer with another ID".into()));
        }
        if msg.metadata.response_code != ResponseCode::NoError {
            return Err(ClientError::Rcode {
                rcode: msg.metadata.response_code,
                detail: String::new(),
            });
        }
        msg.answers
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) if r.name == self.zone => Some(soa.serial),
                _ => None,
            })
            .ok_or_else(|| ClientError::Garbage(format!("no SOA of {} in the answer", self.zone)))
    }

    /// Transfers the zone from `server` (`ask`: AXFR, or IXFR from a serial).
    pub async fn transfer(&self, server: &Upstream, ask: Ask) -> Result<Transfer, ClientError> {
        let held = match ask {
            Ask::Axfr => None,
            Ask::Ixfr { serial } => Some(serial),
        };
        let (req, bytes, mut verifier) = self.request(ask.rtype(), held)?;
        let mut s = self.connect(server).await?;
        send(&mut s, &bytes).await?;
        let mut reader = Reader::new(self.zone.clone(), ask, req.metadata.id);
        loop {
            let raw = recv(&mut s, READ_TIMEOUT).await?;
            let msg = parse(&raw)?;
            check_signature(verifier.as_mut(), &raw, &msg)?;
            if reader.push(&msg)? {
                break;
            }
        }
        if let Some(v) = &verifier {
            v.finish().map_err(ClientError::Tsig)?;
        }
        Ok(reader.finish()?)
    }

    async fn connect(&self, server: &Upstream) -> Result<Box<dyn Stream>, ClientError> {
        let addr = match server {
            Upstream::Plain(a) | Upstream::Tls { addr: a, .. } => *a,
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                ClientError::Unreachable(format!("no connection within {CONNECT_TIMEOUT:?}"))
            })?
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let Upstream::Tls { server_name, .. } = server else {
            return Ok(Box::new(tcp));
        };
        let config = self
            .tls
            .clone()
            .ok_or_else(|| ClientError::Setup("no TLS configuration".into()))?;
        let name = ServerName::try_from(server_name.clone())
            .map_err(|_| ClientError::Tls(format!("bad server name {server_name:?}")))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Tls(format!("no handshake within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Box::new(tls))
    }
}

/// Checks a response's signature; an error RCODE (the primary refusing our
/// key, say) is reported as such rather than as a missing signature.
fn check_signature(
    verifier: Option<&mut ResponseVerifier>,
    raw: &[u8],
    msg: &Message,
) -> Result<(), ClientError> {
    let Some(v) = verifier else {
        return Ok(());
    };
    match v.verify(raw, msg) {
        Ok(()) => Ok(()),
        Err(e) if msg.metadata.response_code != ResponseCode::NoError => Err(ClientError::Rcode {
            rcode: msg.metadata.response_code,
            detail: format!(" ({e})"),
        }),
        Err(e) => Err(ClientError::Tsig(e)),
    }
}

fn parse(raw: &[u8]) -> Result<Message, ClientError> {
    Message::from_vec(raw)
        .map_err(|e| ClientError::Garbage(format!("a message that does not parse: {e}")))
}

/// One query over UDP; `None` when the answer is truncated.
async fn udp_exchange(
    addr: SocketAddr,
    bytes: &[u8],
    id: u16,
) -> Result<Option<Vec<u8>>, ClientError> {
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let unreachable = |e: io::Error| ClientError::Unreachable(e.to_string());
    let sock = UdpSocket::bind(local).await.map_err(unreachable)?;
    sock.connect(addr).await.map_err(unreachable)?;
    sock.send(bytes).await.map_err(unreachable)?;
    let mut buf = vec![0u8; 65_535];
    let wait = async {
        loop {
            let n = sock.recv(&mut buf).await.map_err(unreachable)?;
            // Answers to other IDs (late ones, spoofs) are not ours.
            if n >= 4 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                let truncated = buf[2] & 0x02 != 0;
                return Ok((!truncated).then(|| buf[..n].to_vec()));
            }
        }
    };
    tokio::time::timeout(QUERY_TIMEOUT, wait)
        .await
        .map_err(|_| ClientError::Stalled(QUERY_TIMEOUT))?
}

async fn send(s: &mut Box<dyn Stream>, bytes: &[u8]) -> Result<(), ClientError> {
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    framed.extend_from_slice(bytes);
    s.write_all(&framed).await.map_err(stream_error)?;
    s.flush().await.map_err(stream_error)
}

/// A failed read or write: TLS (an alert, say the server wanting a client
/// certificate, which TLS 1.3 sends after the handshake) or the connection.
fn stream_error(e: io::Error) -> ClientError {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        ClientError::Tls(e.to_string())
    } else {
        ClientError::Unreachable(e.to_string())
    }
}

/// The next length-prefixed message (RFC 1035 §4.2.2).
async fn recv(s: &mut Box<dyn Stream>, timeout: Duration) -> Result<Vec<u8>, ClientError> {
    let read = async {
        let len = s.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await?;
        Ok::<_, io::Error>(buf)
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ClientError::Stalled(timeout)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ClientError::Garbage(
            "the connection closed before the response ended".into(),
        )),
        Ok(Err(e)) => Err(stream_error(e)),
        Ok(Ok(buf)) => Ok(buf),
    }
}
