//! The zone-distribution keys of design.md §7: `tsig_keys`, `transfer` and
//! the `primary:` cluster source, validated into typed settings. Reads the
//! TSIG secret files (so `crossdns check` finds a missing or bad one).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use super::network::{parse_upstream, upstream_tls};
use super::raw::{RawPrimary, RawTransfer, RawTsigKey};
use super::validate::{Ctx, duration, parse_net, zone_name};
use super::{AllowList, ConfigError, Upstream, UpstreamTls};
use crate::dnsname::WireName;

/// RFC 8945 §6 / RFC 4635: the HMACs crossdns signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    /// The name as configs (and BIND/knot) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

/// One TSIG key. The secret never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key name as configured (`sites`); on the wire it is a domain name.
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
    /// Where the secret came from (for messages).
    pub secret_file: PathBuf,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

/// `transfer`: who may transfer, with which key, whom to NOTIFY, and the
/// catalog zone.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    pub allow: AllowList,
    /// When set, a transfer request must also be signed with this key.
    pub key: Option<TsigKey>,
    pub notify: Vec<SocketAddr>,
    /// An RFC 9432 (version 2) catalog zone of every transferable zone.
    pub catalog: Option<WireName>,
}

/// `clusters[].primary`: where the zone is transferred from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimarySettings {
    /// Tried in order; `Upstream::Tls` is XFR over TLS (RFC 9103).
    pub servers: Vec<Upstream>,
    /// Signs SOA queries and transfers; NOTIFYs must be signed with it.
    pub key: Option<TsigKey>,
    /// SOA check interval (a NOTIFY triggers one at once).
    pub poll: Duration,
    /// How `tls://` servers are trusted (`tls_ca`) and whom this server
    /// shows itself as (`tls_cert`, `tls_key`), as for forward upstreams.
    pub tls: UpstreamTls,
}

/// RFC 8945 §6 suggests keys at least as long as the hash output.
const MIN_SECRET: usize = 16;

pub(super) fn tsig_keys(cx: &Ctx<'_>, raw: &[RawTsigKey]) -> Result<Vec<TsigKey>, ConfigError> {
    let mut keys: Vec<TsigKey> = Vec::with_capacity(raw.len());
    for (i, k) in raw.iter().enumerate() {
        let key = |f: &str| format!("tsig_keys[{i}].{f}");
        if WireName::parse(&k.name).is_err() {
            return Err(cx.err(key("name"), &k.name, "is not a valid DNS name"));
        }
        if keys.iter().any(|o| o.name.eq_ignore_ascii_case(&k.name)) {
            return Err(cx.err(key("name"), &k.name, "is defined twice"));
        }
        let algorithm = match k.algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            _ => {
                return Err(cx.err(
                    key("algorithm"),
                    &k.algorithm,
                    "is not hmac-sha256, hmac-sha384 or hmac-sha512",
                ));
            }
        };
        let path = cx.resolve(&k.secret_file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            cx.err(
                key("secret_file"),
                &k.secret_file,
                format!("cannot be read: {e}"),
            )
        })?;
        let secret =
            parse_secret(&text).map_err(|why| cx.err(key("secret_file"), &k.secret_file, why))?;
        if secret.len() < MIN_SECRET {
            return Err(cx.err(
                key("secret_file"),
                &k.secret_file,
                format!(
                    "holds a {}-byte secret; use at least {MIN_SECRET} (tsig-keygen makes them)",
                    secret.len()
                ),
            ));
        }
        keys.push(TsigKey {
            name: k.name.clone(),
            algorithm,
            secret,
            secret_file: path,
        });
    }
    Ok(keys)
}

/// A secret file holds the base64 secret alone, or a BIND key statement
/// (`key "x" { algorithm ...; secret "..."; };`, as `tsig-keygen` prints).
fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let b64 = match text.find("secret") {
        Some(at) => {
            let rest = &text[at + "secret".len()..];
            let open = rest
                .find('"')
                .ok_or("has `secret` without a quoted value")?;
            let rest = &rest[open + 1..];
            let close = rest.find('"').ok_or("has an unterminated secret \"...\"")?;
            &rest[..close]
        }
        None => text.trim(),
    };
    let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("does not hold a base64 secret: {e}"))
}

fn find_key(
    cx: &Ctx<'_>,
    key: String,
    name: &str,
    keys: &[TsigKey],
) -> Result<TsigKey, ConfigError> {
    keys.iter()
        .find(|k| k.name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            cx.err(
                key,
                name,
                format!("is not in tsig_keys (they are {known:?})"),
            )
        })
}

pub(super) fn transfer(
    cx: &Ctx<'_>,
    raw: &RawTransfer,
    keys: &[TsigKey],
) -> Result<TransferSettings, ConfigError> {
    let mut nets = Vec::with_capacity(raw.allow.len());
    for (i, s) in raw.allow.iter().enumerate() {
        nets.push(parse_net(s).ok_or_else(|| {
            cx.err(
                format!("transfer.allow[{i}]"),
                s,
                "is not a CIDR (10.0.0.0/8) or an IP address",
            )
        })?);
    }
    let key = raw
        .key
        .as_deref()
        .map(|k| find_key(cx, "transfer.key".to_owned(), k, keys))
        .transpose()?;
    let mut notify = Vec::with_capacity(raw.notify.len());
    for (i, s) in raw.notify.iter().enumerate() {
        match parse_upstream(s) {
            Some(Upstream::Plain(a)) => notify.push(a),
            _ => {
                return Err(cx.err(
                    format!("transfer.notify[{i}]"),
                    s,
                    "is not IP or IP:port (NOTIFY goes over UDP)",
                ));
            }
        }
    }
    let catalog = raw
        .catalog
        .as_deref()
        .map(|c| zone_name(cx, "transfer.catalog".to_owned(), c))
        .transpose()?;
    Ok(TransferSettings {
        allow: AllowList::new(nets),
        key,
        notify,
        catalog,
    })
}

pub(super) fn primary(
    cx: &Ctx<'_>,
    i: usize,
    raw: &RawPrimary,
    keys: &[TsigKey],
) -> Result<PrimarySettings, ConfigError> {
    let key = |f: &str| format!("clusters[{i}].primary.{f}");
    if raw.servers.is_empty() {
        return Err(cx.err(key("servers"), "[]", "must list at least one server"));
    }
    let mut servers = Vec::with_capacity(raw.servers.len());
    for (j, s) in raw.servers.iter().enumerate() {
        servers.push(parse_upstream(s).ok_or_else(|| {
            cx.err(
                format!("clusters[{i}].primary.servers[{j}]"),
                s,
                "is not IP, IP:port or tls://IP:port#server-name",
            )
        })?);
    }
    let tsig = raw
        .key
        .as_deref()
        .map(|k| find_key(cx, key("key"), k, keys))
        .transpose()?;
    let poll = duration(
        cx,
        &key("poll"),
        raw.poll.as_deref(),
        Duration::from_secs(1),
    )?;
    if poll < Duration::from_millis(100) {
        return Err(cx.err(key("poll"), &raw.poll, "must be at least 100ms"));
    }
    let tls = upstream_tls(
        cx,
        &format!("clusters[{i}].primary"),
        [&raw.tls_ca, &raw.tls_cert, &raw.tls_key],
    )?;
    Ok(PrimarySettings {
        servers,
        key: tsig,
        poll,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_secret;

    #[test]
    fn secrets_are_read_bare_or_from_a_bind_key_statement() {
        let bare = parse_secret("  c2l0ZXMtc2VjcmV0LWtleS0xMjM0NQ==\n").expect("bare");
        assert_eq!(bare, b"sites-secret-key-12345");
        let bind = "key \"sites\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2l0ZXMtc2VjcmV0LWtleS0xMjM0NQ==\";\n};\n";
        assert_eq!(parse_secret(bind).expect("bind"), bare);
        assert!(parse_secret("not base64 !!").is_err());
        assert!(parse_secret("secret \"abc").is_err());
    }
}
