//! knotd as the primary a `primary:` source follows: one zone from a zone
//! file, transfers allowed to loopback (only signed with a TSIG key, when
//! one is given), NOTIFY sent to crossdns on every change (signed with the
//! key), and IXFR answered from the differences between zone file versions
//! (`zonefile-load: difference` with a journal of changes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::RecordType;

use super::{Proc, find_program, run_bounded, start_dns_daemon};

/// A TSIG key as knot.conf and crossdns's `tsig_keys` both take it.
#[derive(Debug, Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: String,
    /// Base64, as `tsig-keygen` and `keymgr -t` print it.
    pub secret: String,
}

impl TsigKey {
    pub fn sha256(name: &str, secret: &str) -> Self {
        Self {
            name: name.to_owned(),
            algorithm: "hmac-sha256".to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// Writes the secret where crossdns's `secret_file` reads it.
    pub fn write_secret(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.key", self.name));
        std::fs::write(&path, format!("{}\n", self.secret)).expect("write the TSIG secret");
        path
    }
}

#[derive(Debug, Clone, Default)]
pub struct KnotPrimaryOptions {
    /// Transfers must be signed with it; NOTIFYs are.
    pub key: Option<TsigKey>,
    /// Where to send NOTIFY on each change.
    pub notify: Option<SocketAddr>,
}

/// knotd serving one zone as a primary.
#[derive(Debug)]
pub struct KnotPrimary {
    proc: Proc,
    pub addr: SocketAddr,
    dir: PathBuf,
    knotd: PathBuf,
    zone: String,
    options: KnotPrimaryOptions,
}

impl KnotPrimary {
    pub async fn start(
        knotd: &Path,
        dir: &Path,
        zone: &str,
        zonefile: &str,
        options: KnotPrimaryOptions,
    ) -> Self {
        let dir = dir.join(format!("knot-{zone}"));
        std::fs::create_dir_all(&dir).expect("create knotd folder");
        std::fs::write(dir.join("zone"), zonefile).expect("write zone file");
        let (proc, addr) = Self::spawn(knotd, &dir, zone, &options, None).await;
        Self {
            proc,
            addr,
            dir,
            knotd: knotd.to_owned(),
            zone: zone.to_owned(),
            options,
        }
    }

    async fn spawn(
        knotd: &Path,
        dir: &Path,
        zone: &str,
        options: &KnotPrimaryOptions,
        port: Option<u16>,
    ) -> (Proc, SocketAddr) {
        start_dns_daemon("knotd", dir, port, (zone, RecordType::SOA), |port| {
            let conf = dir.join("knot.conf");
            std::fs::write(&conf, conf_text(dir, zone, port, options)).expect("write knot.conf");
            let mut cmd = Command::new(knotd);
            cmd.arg("-c").arg(&conf);
            cmd
        })
        .await
    }

    /// Replaces the zone file and has knotd load it, waiting until it has:
    /// knotd journals the difference (for IXFR) and sends its NOTIFY.
    pub fn reload(&self, zonefile: &str) {
        std::fs::write(self.dir.join("zone"), zonefile).expect("write zone file");
        let knotc = find_program("knotc").expect("knotc is installed with knotd");
        let (status, out, err) = run_bounded(
            Command::new(knotc)
                .arg("-c")
                .arg(self.dir.join("knot.conf"))
                .args(["-b", "zone-reload", &self.zone]),
            Duration::from_secs(20),
        );
        assert!(
            status.success(),
            "knotc zone-reload: {out}{err}\n{}",
            self.proc.log()
        );
    }

    /// SIGKILL, as when a site drops off the network.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts knotd again on the same port, from its zone file.
    pub async fn restart(&mut self) {
        self.proc.kill();
        let (proc, _) = Self::spawn(
            &self.knotd,
            &self.dir,
            &self.zone,
            &self.options,
            Some(self.addr.port()),
        )
        .await;
        self.proc = proc;
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

fn conf_text(dir: &Path, zone: &str, port: u16, o: &KnotPrimaryOptions) -> String {
    let d = dir.display();
    let mut c = format!(
        "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: \"{d}\"\n"
    );
    if let Some(k) = &o.key {
        c.push_str(&format!(
            "key:\n  - id: {}\n    algorithm: {}\n    secret: {}\n",
            k.name, k.algorithm, k.secret
        ));
    }
    let key_line = |indent: &str| {
        o.key
            .as_ref()
            .map(|k| format!("{indent}key: {}\n", k.name))
            .unwrap_or_default()
    };
    c.push_str("acl:\n  - id: transfer\n    address: 127.0.0.0/8\n    action: transfer\n");
    c.push_str(&key_line("    "));
    if let Some(n) = o.notify {
        c.push_str(&format!(
            "remote:\n  - id: secondary\n    address: {}@{}\n",
            n.ip(),
            n.port()
        ));
        c.push_str(&key_line("    "));
    }
    c.push_str(&format!(
        "template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: difference\n    journal-content: changes\n\
         zone:\n  - domain: {zone}\n    file: \"{d}/zone\"\n    acl: transfer\n"
    ));
    if o.notify.is_some() {
        c.push_str("    notify: secondary\n");
    }
    c
}
