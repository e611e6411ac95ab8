//! State shared by the public handle and every connection: store, token, fault switch, counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::store::Store;

/// Injected misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Every API request answers HTTP 500 with a Status body; open watches are closed.
    ServerError,
    /// Requests are accepted but not answered until the fault is cleared; open watches go silent.
    Stall,
    /// List bodies and new watch events are not valid JSON.
    GarbageJson,
    /// Every API request answers 429 Too Many Requests with this Retry-After
    /// (seconds), as API Priority and Fairness does when a level is full.
    TooManyRequests { retry_after_secs: u64 },
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub lists: u64,
    /// Watches with `sendInitialEvents=true` (streaming lists, KEP-3157).
    pub watch_lists: u64,
    pub watches_started: u64,
    pub watch_events_sent: u64,
    pub bookmarks_sent: u64,
    pub auth_failures: u64,
    pub requests: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub lists: AtomicU64,
    pub watch_lists: AtomicU64,
    pub watches_started: AtomicU64,
    pub watch_events_sent: AtomicU64,
    pub bookmarks_sent: AtomicU64,
    pub auth_failures: AtomicU64,
    pub requests: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            lists: l(&self.lists),
            watch_lists: l(&self.watch_lists),
            watches_started: l(&self.watches_started),
            watch_events_sent: l(&self.watch_events_sent),
            bookmarks_sent: l(&self.bookmarks_sent),
            auth_failures: l(&self.auth_failures),
            requests: l(&self.requests),
        }
    }
}

/// The TLS acceptor (which has no `Debug` of its own).
pub(crate) struct Acceptor(TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// Path segments answered 404.
    pub hidden: Vec<String>,
    /// The token the server started with (what `kubeconfig()` writes first).
    pub token: String,
    /// The bearer token accepted now (a revocation replaces it).
    accepted: RwLock<String>,
    pub bookmark_interval: Duration,
    /// Streaming lists (`sendInitialEvents=true`) are served; otherwise they
    /// are refused with 422, as before Kubernetes 1.27 or with the WatchList
    /// feature gate off.
    pub watch_list: bool,
    pub fault: watch::Sender<Fault>,
    pub counters: Counters,
    /// The TLS configuration new connections get (rotated by tests).
    acceptor: Mutex<Acceptor>,
    /// One-shot faults: the next list page / watch event is not JSON.
    garbage_page: AtomicBool,
    garbage_event: AtomicBool,
    /// Watch responses streaming now, by resource (plural): one per watch
    /// connection a client holds open.
    open_watches: Mutex<BTreeMap<&'static str, u64>>,
}

impl Shared {
    pub fn new(
        token: String,
        bookmark_interval: Duration,
        history_limit: usize,
        hidden: Vec<String>,
        watch_list: bool,
        acceptor: TlsAcceptor,
    ) -> Self {
        Self {
            store: Mutex::new(Store::new(history_limit)),
            accepted: RwLock::new(token.clone()),
            token,
            hidden,
            bookmark_interval,
            watch_list,
            fault: watch::Sender::new(Fault::None),
            counters: Counters::default(),
            acceptor: Mutex::new(Acceptor(acceptor)),
            garbage_page: AtomicBool::new(false),
            garbage_event: AtomicBool::new(false),
            open_watches: Mutex::new(BTreeMap::new()),
        }
    }

    fn open_watch_counts(&self) -> MutexGuard<'_, BTreeMap<&'static str, u64>> {
        self.open_watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A watch of `plural` started streaming.
    pub fn watch_opened(&self, plural: &'static str) {
        *self.open_watch_counts().entry(plural).or_default() += 1;
    }

    /// A watch of `plural` ended (its response body was dropped: the
    /// stream finished or the client went away).
    pub fn watch_closed(&self, plural: &'static str) {
        let mut counts = self.open_watch_counts();
        if let Some(n) = counts.get_mut(plural) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(plural);
            }
        }
    }

    /// Open watches by resource (plural); resources with none are absent.
    pub fn open_watches(&self) -> BTreeMap<String, u64> {
        self.open_watch_counts()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect()
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn accepted_token(&self) -> String {
        self.accepted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_token(&self, token: String) {
        *self
            .accepted
            .write()
            .unwrap_or_else(PoisonError::into_inner) = token;
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    pub fn set_acceptor(&self, acceptor: TlsAcceptor) {
        *self.acceptor.lock().unwrap_or_else(PoisonError::into_inner) = Acceptor(acceptor);
    }

    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    pub fn garbage(&self) -> bool {
        self.fault() == Fault::GarbageJson
    }

    /// Whether this list page is garbage (the fault, or the one-shot).
    pub fn garbage_list_page(&self) -> bool {
        self.garbage() || self.garbage_page.swap(false, Ordering::Relaxed)
    }

    /// Whether the event being emitted is garbage (the fault, or the one-shot).
    pub fn garbage_watch_event(&self) -> bool {
        self.garbage() || self.garbage_event.swap(false, Ordering::Relaxed)
    }

    pub fn arm_garbage_page(&self) {
        self.garbage_page.store(true, Ordering::Relaxed);
    }

    pub fn arm_garbage_event(&self) {
        self.garbage_event.store(true, Ordering::Relaxed);
    }

    /// Returns once the fault is no longer `Stall`.
    pub async fn wait_not_stalled(&self) {
        let mut rx = self.fault.subscribe();
        loop {
            if *rx.borrow_and_update() != Fault::Stall {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
