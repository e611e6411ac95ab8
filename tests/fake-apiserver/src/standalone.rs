//! What the `fake-apiserver` binary adds to the library when it runs on its own (for example one
//! per simulated region in `examples/regions`): a listening address other than loopback, and a
//! manifests folder kept in step with the served objects while it runs. Used by `main.rs` only;
//! it reaches the server through its public API and never into the store.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use fake_apiserver::FakeApiServer;
use serde::Deserialize as _;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// How often the manifests folder is scanned for changes. A tenth of the 1 s propagation bound
/// that crossdns is held to, so the folder adds little to a measured follow latency.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(100);

/// Accept on `listen` and relay every connection, bytes unchanged (TLS stays end to end), to the
/// server's own loopback socket. Returns the bound address.
pub async fn relay(listen: SocketAddr, to: SocketAddr) -> anyhow::Result<SocketAddr> {
    if listen.ip().is_unspecified() {
        bail!(
            "--listen {listen}: give the address clients connect to (it goes into the kubeconfig), not {}",
            listen.ip()
        );
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding --listen {listen}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((client, peer)) => {
                    tokio::spawn(relay_one(client, peer, to));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(bound)
}

async fn relay_one(mut client: TcpStream, peer: SocketAddr, to: SocketAddr) {
    let mut server = match TcpStream::connect(to).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot reach the apiserver behind the relay");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
        tracing::debug!(%peer, error = %e, "relayed connection ended with an error");
    }
}

/// The library's kubeconfig with `server` moved to `https://addr`. The serving certificate names
/// `localhost` and 127.0.0.1 only, so `tls-server-name: localhost` keeps verification on.
pub fn kubeconfig_at(
    server: &FakeApiServer,
    context: &str,
    addr: SocketAddr,
) -> anyhow::Result<String> {
    let mut doc: Value = serde_yaml_ng::from_str(&server.kubeconfig(context))
        .context("parsing the library's kubeconfig")?;
    let cluster = doc["clusters"][0]["cluster"]
        .as_object_mut()
        .context("kubeconfig has no clusters[0].cluster")?;
    cluster.insert("server".into(), Value::String(format!("https://{addr}")));
    cluster.insert("tls-server-name".into(), Value::String("localhost".into()));
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// An object's identity as `FakeApiServer::delete` takes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl Key {
    fn of(obj: &Value) -> anyhow::Result<Self> {
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(Self {
            api_version: text(&obj["apiVersion"]).context("an object has no apiVersion")?,
            kind: text(&obj["kind"]).context("an object has no kind")?,
            namespace: text(&obj["metadata"]["namespace"]),
            name: text(&obj["metadata"]["name"]).context("an object has no metadata.name")?,
        })
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One manifests file as last read: when it was modified, and its objects from the last read
/// that parsed (a file that stops parsing keeps serving those).
#[derive(Debug)]
struct Seen {
    stamp: (SystemTime, u64),
    objects: Vec<(Key, Value)>,
}

/// Keeps the server's objects equal to what a manifests folder holds: a changed file is applied
/// again (only its changed objects, so unchanged ones get no MODIFIED event), an object that
/// left every file is deleted.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    files: BTreeMap<PathBuf, Seen>,
    applied: BTreeMap<Key, Value>,
}

impl Follower {
    /// Read and apply the whole folder; any file that does not parse or apply is an error here.
    pub fn start(server: &FakeApiServer, dir: &Path) -> anyhow::Result<Self> {
        let mut follower = Self {
            dir: dir.to_owned(),
            files: BTreeMap::new(),
            applied: BTreeMap::new(),
        };
        for (path, stamp) in scan(dir)? {
            let objects =
                read_objects(&path).with_context(|| format!("reading {}", path.display()))?;
            follower.files.insert(path, Seen { stamp, objects });
        }
        follower.reconcile(server, true)?;
        Ok(follower)
    }

    /// Scan the folder every [`SCAN_INTERVAL`] and follow its changes, until the process ends.
    pub fn spawn(mut self, server: Arc<FakeApiServer>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SCAN_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.step(&server) {
                    tracing::warn!(dir = %self.dir.display(), error = %format!("{e:#}"), "manifests folder not followed this round");
                }
            }
        });
    }

    /// One scan: re-read changed files, forget removed ones, then reconcile.
    fn step(&mut self, server: &FakeApiServer) -> anyhow::Result<()> {
        let now = scan(&self.dir)?;
        let mut changed = false;
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            tracing::info!(file = %path.display(), "manifests file removed");
            self.files.remove(&path);
            changed = true;
        }
        for (path, stamp) in now {
            if self.files.get(&path).is_some_and(|s| s.stamp == stamp) {
                continue;
            }
            changed = true;
            match read_objects(&path) {
                Ok(objects) => {
                    self.files.insert(path, Seen { stamp, objects });
                }
                Err(e) => {
                    // Keep the last good objects; remember the stamp so a broken file is not
                    // re-read (and re-logged) every scan until it changes again.
                    tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "manifests file does not parse; keeping its last objects");
                    let objects = self
                        .files
                        .remove(&path)
                        .map(|s| s.objects)
                        .unwrap_or_default();
                    self.files.insert(path, Seen { stamp, objects });
                }
            }
        }
        if changed {
            self.reconcile(server, false)?;
        }
        Ok(())
    }

    /// Apply what differs from the last applied state and delete what is gone. With `strict`,
    /// the first failure is returned; otherwise failures are logged and the rest goes on.
    fn reconcile(&mut self, server: &FakeApiServer, strict: bool) -> anyhow::Result<()> {
        let mut want: BTreeMap<Key, Value> = BTreeMap::new();
        for seen in self.files.values() {
            for (key, obj) in &seen.objects {
                want.insert(key.clone(), obj.clone());
            }
        }
        for (key, obj) in &want {
            if self.applied.get(key) == Some(obj) {
                continue;
            }
            // Logged before the apply: watchers hear of it as it applies,
            // and may act before a line logged after it (examples/regions
            // dates crossdns's publish from this line).
            tracing::info!(object = %key, "applying");
            match server.apply(obj.clone()) {
                Ok(rv) => {
                    tracing::info!(object = %key, rv, "applied");
                    self.applied.insert(key.clone(), obj.clone());
                }
                Err(e) if strict => return Err(e.context(format!("applying {key}"))),
                Err(e) => tracing::warn!(object = %key, error = %format!("{e:#}"), "not applied"),
            }
        }
        let gone: BTreeSet<Key> = self
            .applied
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            // A namespaced object without metadata.namespace was stored in `default`.
            let ns = key.namespace.as_deref().unwrap_or("default");
            let deleted = server.delete(&key.api_version, &key.kind, Some(ns), &key.name)
                || server.delete(&key.api_version, &key.kind, None, &key.name);
            tracing::info!(object = %key, deleted, rv = server.resource_version(), "deleted: no file holds it any more");
            self.applied.remove(&key);
        }
        Ok(())
    }
}

/// Every `*.yaml`, `*.yml` and `*.json` file under `dir` (recursively; names starting with `.`
/// are skipped, so editors' and scripts' temporary files are not read half-written), with its
/// modification time and length.
fn scan(dir: &Path) -> anyhow::Result<BTreeMap<PathBuf, (SystemTime, u64)>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if matches!(ext, "yaml" | "yml" | "json") {
                out.insert(path, (meta.modified()?, meta.len()));
            }
        }
    }
    Ok(out)
}

/// The objects of one file: YAML documents (JSON is YAML), each an object or a `kind: *List`
/// with `items`; empty documents are skipped.
fn read_objects(path: &Path) -> anyhow::Result<Vec<(Key, Value)>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let doc = Value::deserialize(doc).with_context(|| format!("parsing document {i}"))?;
        let items = match doc {
            Value::Null => Vec::new(),
            Value::Object(ref o)
                if o.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                o.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            }
            other => vec![other],
        };
        for obj in items {
            let key = Key::of(&obj).with_context(|| format!("document {i}"))?;
            out.push((key, obj));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    fn svc(name: &str, port: u16) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        )
    }

    fn port_of(server: &FakeApiServer, name: &str) -> Option<u64> {
        server
            .get("v1", "Service", Some("default"), name)
            .and_then(|s| s["spec"]["ports"][0]["port"].as_u64())
    }

    #[tokio::test]
    async fn a_changed_file_is_applied_and_an_object_whose_file_went_away_is_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.yaml", &svc("a", 1));
        write(
            dir.path(),
            "b.yaml",
            &format!("{}---\n{}", svc("b", 1), svc("c", 1)),
        );
        let server = FakeApiServer::start().await.expect("start");
        let mut f = Follower::start(&server, dir.path()).expect("initial apply");
        assert_eq!(port_of(&server, "a"), Some(1));
        let rv = server.resource_version();

        f.step(&server).expect("step");
        assert_eq!(
            server.resource_version(),
            rv,
            "nothing changed, nothing applied"
        );

        // Different length, so the stamp changes even within one mtime tick.
        write(dir.path(), "b.yaml", &svc("b", 22));
        std::fs::remove_file(dir.path().join("a.yaml")).expect("rm");
        f.step(&server).expect("step");
        assert_eq!(port_of(&server, "b"), Some(22));
        assert_eq!(port_of(&server, "a"), None, "a's file was removed");
        assert_eq!(port_of(&server, "c"), None, "c left b.yaml");
    }

    #[tokio::test]
    async fn a_file_that_stops_parsing_keeps_its_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.yaml", &svc("a", 1));
        let server = FakeApiServer::start().await.expect("start");
        let mut f = Follower::start(&server, dir.path()).expect("initial apply");
        write(dir.path(), "a.yaml", "kind: [unclosed");
        f.step(&server).expect("a bad file is logged, not an error");
        assert_eq!(port_of(&server, "a"), Some(1));
    }

    #[tokio::test]
    async fn a_bad_file_at_start_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "bad.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {}\n",
        );
        let server = FakeApiServer::start().await.expect("start");
        let err = Follower::start(&server, dir.path()).expect_err("no name");
        assert!(format!("{err:#}").contains("bad.yaml"), "{err:#}");
    }
}
