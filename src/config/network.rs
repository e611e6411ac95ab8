//! Validation of addresses, TLS files and forward upstreams: the parts of
//! the config about the network rather than about clusters.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawConfig, RawForward};
use super::validate::{Ctx, duration, zone_name};
use super::{ConfigError, ForwardSettings, TlsSettings, Upstream, UpstreamTls};

pub(super) fn socket_addrs(
    cx: &Ctx<'_>,
    key: &str,
    list: &[String],
) -> Result<Vec<SocketAddr>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<SocketAddr>().map_err(|_| {
                cx.err(
                    format!("{key}[{i}]"),
                    s,
                    "is not an IP:port address (0.0.0.0:53, [::]:53)",
                )
            })
        })
        .collect()
}

pub(super) fn tls_settings(
    cx: &Ctx<'_>,
    raw: &RawConfig,
) -> Result<Option<TlsSettings>, ConfigError> {
    let dns = &raw.dns;
    if dns.tls_listen.is_empty() {
        for (key, v) in [
            ("dns.tls_cert", &dns.tls_cert),
            ("dns.tls_key", &dns.tls_key),
            ("dns.tls_client_ca", &dns.tls_client_ca),
        ] {
            if let Some(p) = v {
                return Err(cx.err(key, p, "is set but dns.tls_listen is empty"));
            }
        }
        return Ok(None);
    }
    let listen = socket_addrs(cx, "dns.tls_listen", &dns.tls_listen)?;
    let file = |key: &str, p: &Option<PathBuf>| -> Result<PathBuf, ConfigError> {
        let p = p
            .as_ref()
            .ok_or_else(|| cx.err(key, "", "is required when dns.tls_listen is set"))?;
        let resolved = cx.resolve(p);
        if !resolved.is_file() {
            return Err(cx.err(key, p, "is not a readable file"));
        }
        Ok(resolved)
    };
    let cert = file("dns.tls_cert", &dns.tls_cert)?;
    let key = file("dns.tls_key", &dns.tls_key)?;
    let client_ca = match &dns.tls_client_ca {
        None => None,
        some => Some(file("dns.tls_client_ca", some)?),
    };
    Ok(Some(TlsSettings {
        listen,
        cert,
        key,
        client_ca,
    }))
}

pub(super) fn forward_zone(
    cx: &Ctx<'_>,
    i: usize,
    f: &RawForward,
) -> Result<ForwardSettings, ConfigError> {
    let zone = zone_name(cx, format!("forward[{i}].zone"), &f.zone)?;
    if f.upstreams.is_empty() {
        return Err(cx.err(
            format!("forward[{i}].upstreams"),
            "[]",
            "must list at least one upstream",
        ));
    }
    let mut upstreams = Vec::with_capacity(f.upstreams.len());
    for (j, u) in f.upstreams.iter().enumerate() {
        upstreams.push(parse_upstream(u).ok_or_else(|| {
            cx.err(
                format!("forward[{i}].upstreams[{j}]"),
                u,
                "is not IP, IP:port or tls://IP:port#server-name",
            )
        })?);
    }
    if f.max_fails == 0 {
        return Err(cx.err(
            format!("forward[{i}].max_fails"),
            f.max_fails,
            "must be at least 1",
        ));
    }
    let tls = upstream_tls(
        cx,
        &format!("forward[{i}]"),
        [&f.tls_ca, &f.tls_cert, &f.tls_key],
    )?;
    Ok(ForwardSettings {
        zone,
        upstreams,
        policy: f.policy,
        max_fails: f.max_fails,
        stale_for: duration(
            cx,
            &format!("forward[{i}].stale_for"),
            f.stale_for.as_deref(),
            Duration::from_secs(3600),
        )?,
        tls,
    })
}

pub(super) fn parse_upstream(s: &str) -> Option<Upstream> {
    fn addr(s: &str, default_port: u16) -> Option<SocketAddr> {
        s.parse::<SocketAddr>().ok().or_else(|| {
            s.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, default_port))
        })
    }
    match s.strip_prefix("tls://") {
        Some(rest) => {
            let (a, name) = match rest.split_once('#') {
                Some((a, n)) if !n.is_empty() => (a, n.to_owned()),
                Some(_) => return None,
                None => (rest, String::new()),
            };
            let addr = addr(a, 853)?;
            let server_name = if name.is_empty() {
                addr.ip().to_string()
            } else {
                name
            };
            Some(Upstream::Tls { addr, server_name })
        }
        None => addr(s, 53).map(Upstream::Plain),
    }
}

/// The `tls_ca`, `tls_cert` and `tls_key` of an upstream list (`prefix` is
/// its key, `forward[0]`): files that must exist; cert and key go together.
pub(super) fn upstream_tls(
    cx: &Ctx<'_>,
    prefix: &str,
    [ca, cert, key]: [&Option<PathBuf>; 3],
) -> Result<UpstreamTls, ConfigError> {
    let file = |k: &str, p: &PathBuf| -> Result<PathBuf, ConfigError> {
        let resolved = cx.resolve(p);
        if resolved.is_file() {
            Ok(resolved)
        } else {
            Err(cx.err(format!("{prefix}.{k}"), p, "is not a readable file"))
        }
    };
    let ca = ca.as_ref().map(|p| file("tls_ca", p)).transpose()?;
    let client_cert = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((file("tls_cert", c)?, file("tls_key", k)?)),
        (Some(c), None) => {
            return Err(cx.err(format!("{prefix}.tls_cert"), c, "needs tls_key too"));
        }
        (None, Some(k)) => {
            return Err(cx.err(format!("{prefix}.tls_key"), k, "needs tls_cert too"));
        }
    };
    Ok(UpstreamTls { ca, client_cert })
}
