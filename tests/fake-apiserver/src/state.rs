//! State shared by the public handle and every connection: store, token, fault switch, counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

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
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub lists: u64,
    pub watches_started: u64,
    pub watch_events_sent: u64,
    pub bookmarks_sent: u64,
    pub auth_failures: u64,
    pub requests: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub lists: AtomicU64,
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
            watches_started: l(&self.watches_started),
            watch_events_sent: l(&self.watch_events_sent),
            bookmarks_sent: l(&self.bookmarks_sent),
            auth_failures: l(&self.auth_failures),
            requests: l(&self.requests),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// Path segments answered 404.
    pub hidden: Vec<String>,
    pub token: String,
    pub bookmark_interval: Duration,
    pub fault: watch::Sender<Fault>,
    pub counters: Counters,
}

impl Shared {
    pub fn new(
        token: String,
        bookmark_interval: Duration,
        history_limit: usize,
        hidden: Vec<String>,
    ) -> Self {
        Self {
            store: Mutex::new(Store::new(history_limit)),
            token,
            hidden,
            bookmark_interval,
            fault: watch::Sender::new(Fault::None),
            counters: Counters::default(),
        }
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    pub fn garbage(&self) -> bool {
        self.fault() == Fault::GarbageJson
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
