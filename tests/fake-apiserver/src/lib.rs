//! A fake Kubernetes apiserver for end-to-end tests: real list/watch protocol over TLS, with faults.
//!
//! Serves core/v1 namespaces, services, pods, endpoints; discovery.k8s.io/v1 endpointslices;
//! apps/v1 statefulsets. Objects are put in with [`FakeApiServer::apply`] and friends; clients
//! (kube-rs, kubectl) connect with the kubeconfig from [`FakeApiServer::kubeconfig`].

mod discovery;
mod kubeconfig;
mod resources;
mod routes;
mod select;
mod server;
mod state;
mod store;
mod tls;
mod util;
mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::Value;
use tokio::task::JoinHandle;

use state::Shared;
pub use state::{Fault, Stats};

/// Server settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Period of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Bearer token clients must present; random when None.
    pub token: Option<String>,
    /// Events kept for watch resume.
    pub history_limit: usize,
    /// Path segments answered 404 (e.g. `version`, `statefulsets`): an
    /// apiserver without them, or whose RBAC hides them.
    pub hidden: Vec<String>,
    /// Serve streaming lists (`sendInitialEvents=true`, KEP-3157), as
    /// Kubernetes 1.32+ does by default; `false` refuses them with 422, as
    /// older apiservers (or the feature gate off) do.
    pub watch_list: bool,
    /// Names (DNS names or IPs) the server certificate is for; `None`:
    /// localhost and 127.0.0.1.
    pub cert_names: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(1),
            token: None,
            history_limit: 10_000,
            hidden: Vec::new(),
            watch_list: true,
            cert_names: None,
        }
    }
}

/// A running fake apiserver on 127.0.0.1. Dropping it stops the server.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: tls::Tls,
    cert_names: Option<Vec<String>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.task_slot().take() {
            task.abort();
        }
    }
}

impl FakeApiServer {
    /// Start on 127.0.0.1 with an ephemeral port and default options.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// Start on 127.0.0.1 with an ephemeral port.
    pub async fn start_with(opts: Options) -> anyhow::Result<Self> {
        let tls = tls::generate(opts.cert_names.as_deref())?;
        let token = opts.token.unwrap_or_else(util::random_hex);
        let shared = Arc::new(Shared::new(
            token,
            opts.bookmark_interval,
            opts.history_limit.max(1),
            opts.hidden,
            opts.watch_list,
            tls.acceptor.clone(),
        ));
        let listener = server::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let task = server::spawn(listener, Arc::clone(&shared));
        tracing::info!(%addr, "fake apiserver listening");
        Ok(Self {
            shared,
            addr,
            tls,
            cert_names: opts.cert_names,
            accept_task: Mutex::new(Some(task)),
        })
    }

    fn task_slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.accept_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.tls.ca_pem
    }

    /// The token the server started with.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The bearer token accepted now.
    pub fn accepted_token(&self) -> String {
        self.shared.accepted_token()
    }

    /// Accept only `token` from now on: every other token (the old one
    /// included) gets 401, as after a revocation or a rotation. Open
    /// watches carry on, as they do on a real apiserver, until they end.
    pub fn set_token(&self, token: &str) {
        self.shared.set_token(token.to_owned());
    }

    /// A client certificate and key (PEM) for user `name`, signed by the
    /// server's CA: it authenticates a connection instead of a token.
    pub fn client_cert(&self, name: &str) -> anyhow::Result<(String, String)> {
        self.tls.client_cert(name)
    }

    /// Kubeconfig YAML with one cluster/user/context named `context`, set as current-context.
    pub fn kubeconfig(&self, context: &str) -> String {
        kubeconfig::render(
            &self.url(),
            self.ca_pem(),
            &self.shared.accepted_token(),
            context,
        )
    }

    /// Serve a certificate from a new CA that no client trusts (a rotation
    /// clients were not told of), and close every connection so that each
    /// client must handshake again.
    pub async fn rotate_to_untrusted_cert(&self) -> anyhow::Result<()> {
        let other = tls::generate(self.cert_names.as_deref())?;
        self.shared.set_acceptor(other.acceptor);
        self.restart_connections().await
    }

    /// Serve the original certificate again (closing every connection).
    pub async fn restore_cert(&self) -> anyhow::Result<()> {
        self.shared.set_acceptor(self.tls.acceptor.clone());
        self.restart_connections().await
    }

    async fn restart_connections(&self) -> anyhow::Result<()> {
        let running = self.task_slot().is_some();
        self.pause().await;
        if running {
            self.resume().await?;
        }
        Ok(())
    }

    /// The next list response (one page) is not valid JSON; later ones are.
    pub fn garbage_next_list_page(&self) {
        self.shared.arm_garbage_page();
    }

    /// The next watch event emitted (to every watch that sees it) is not
    /// valid JSON; later ones are.
    pub fn garbage_next_watch_event(&self) {
        self.shared.arm_garbage_event();
    }

    pub fn write_kubeconfig(&self, path: &Path, context: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig(context))
    }

    /// Create or replace an object; emits ADDED or MODIFIED; returns its new resourceVersion.
    /// The spec is not validated.
    pub fn apply(&self, obj: Value) -> anyhow::Result<u64> {
        let garbage = self.shared.garbage_watch_event();
        self.shared.store().apply(obj, garbage)
    }

    /// Apply one parsed document: an object, a `kind: List` with `items`, or null (skipped).
    fn apply_doc(&self, doc: Value) -> anyhow::Result<()> {
        if doc.is_null() {
            return Ok(());
        }
        if doc["kind"].as_str().is_some_and(|k| k.ends_with("List"))
            && let Some(items) = doc["items"].as_array()
        {
            for item in items {
                self.apply(item.clone())?;
            }
            return Ok(());
        }
        self.apply(doc).map(|_| ())
    }

    /// Apply multi-document YAML (each document an object or a `kind: List`).
    pub fn apply_yaml(&self, yaml: &str) -> anyhow::Result<()> {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
            let value =
                Value::deserialize(doc).with_context(|| format!("parsing YAML document {i}"))?;
            self.apply_doc(value)
                .with_context(|| format!("applying YAML document {i}"))?;
        }
        Ok(())
    }

    /// Apply every `*.yaml`, `*.yml` and `*.json` file under `dir`, recursively, in path order.
    pub fn apply_dir(&self, dir: &Path) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::path);
        for entry in entries {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                self.apply_dir(&path)?;
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "yaml" | "yml" | "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let applied = if ext == "json" {
                serde_json::from_str(&text)
                    .map_err(anyhow::Error::from)
                    .and_then(|v| self.apply_doc(v))
            } else {
                self.apply_yaml(&text)
            };
            applied.with_context(|| format!("applying {}", path.display()))?;
        }
        Ok(())
    }

    /// Delete an object, emitting DELETED with its last state. False if absent.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let Some(res) = resources::by_kind(api_version, kind) else {
            return false;
        };
        let garbage = self.shared.garbage_watch_event();
        self.shared
            .store()
            .delete(res, namespace.unwrap_or(""), name, garbage)
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let res = resources::by_kind(api_version, kind)?;
        self.shared.store().get(res, namespace.unwrap_or(""), name)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// Forget all watch history: older resourceVersions get 410 Expired; open watches are sent
    /// that ERROR event and closed.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    pub fn set_fault(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
        if fault == Fault::ServerError {
            self.shared.store().close_watches(false);
        }
    }

    /// Break every open watch connection now (no ERROR event).
    pub fn drop_watches(&self) {
        self.shared.store().close_watches(true);
    }

    /// Stop accepting and close every open connection; new connections are refused until
    /// [`resume`](Self::resume), which rebinds the same port.
    pub async fn pause(&self) {
        let task = self.task_slot().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listen again on the same port after [`pause`](Self::pause). No-op when running.
    pub async fn resume(&self) -> anyhow::Result<()> {
        if self.task_slot().is_some() {
            return Ok(());
        }
        let listener = server::rebind(self.addr)
            .await
            .with_context(|| format!("rebinding {}", self.addr))?;
        let task = server::spawn(listener, Arc::clone(&self.shared));
        *self.task_slot() = Some(task);
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The watch connections open now, by resource (plural, e.g.
    /// `services`, `endpointslices`); resources nobody watches are absent.
    /// How many watchers this apiserver serves, as its
    /// `apiserver_longrunning_requests{verb="WATCH"}` gauge would say.
    pub fn open_watches(&self) -> std::collections::BTreeMap<String, u64> {
        self.shared.open_watches()
    }
}
