//! Watch response bodies: prefix events, live queue, bookmarks, timeouts, and close semantics.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::resources::ResourceDef;
use crate::routes::Body;
use crate::state::{Counters, Shared};
use crate::store::{self, CloseKind, WatchCtl, WatchHandle};

/// Counts a live watch as open from its creation until it is dropped.
struct Open {
    shared: Arc<Shared>,
    plural: &'static str,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.shared.watch_closed(self.plural);
    }
}

struct State {
    shared: Arc<Shared>,
    /// Set for a live watch (not for one answered 410 at once).
    _open: Option<Open>,
    res: &'static ResourceDef,
    prefix: VecDeque<Bytes>,
    live: Option<(mpsc::Receiver<Bytes>, Arc<WatchCtl>)>,
    bookmark: Option<Interval>,
    deadline: Option<Instant>,
    done: bool,
}

enum Item {
    Event(Bytes),
    Bookmark(Bytes),
    Abort,
    End,
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A bookmark at the current resourceVersion, only if this watch has been sent every event up
/// to it (checked under the store lock, which every event is queued under).
fn bookmark_if_caught_up(
    shared: &Shared,
    res: &ResourceDef,
    rx: &mpsc::Receiver<Bytes>,
) -> Option<Bytes> {
    let store = shared.store();
    rx.is_empty()
        .then(|| store::bookmark_line(res, store.rv(), false))
}

async fn next(st: &mut State) -> Item {
    if st.done {
        return Item::End;
    }
    if let Some(b) = st.prefix.pop_front() {
        return Item::Event(b);
    }
    let State {
        shared,
        res,
        live,
        bookmark,
        deadline,
        done,
        ..
    } = st;
    let Some((rx, ctl)) = live else {
        return Item::End;
    };
    loop {
        tokio::select! {
            biased;
            m = rx.recv() => return match m {
                Some(b) => Item::Event(b),
                None => {
                    *done = true;
                    match ctl.take_close() {
                        Some(CloseKind::Error(b)) => Item::Event(b),
                        Some(CloseKind::Abort) => Item::Abort,
                        None => Item::End,
                    }
                }
            },
            () = until(*deadline) => return Item::End,
            () = tick(bookmark) => {
                if let Some(b) = bookmark_if_caught_up(shared, res, rx) {
                    return Item::Bookmark(b);
                }
            }
        }
    }
}

/// The streaming body for a watch; `started` is Err(410 line) for a too-old resourceVersion.
pub(crate) fn body(
    shared: Arc<Shared>,
    res: &'static ResourceDef,
    started: Result<WatchHandle, Bytes>,
    bookmarks: bool,
    timeout: Option<Duration>,
) -> Body {
    let (prefix, live) = match started {
        Ok(h) => (h.prefix.into(), Some((h.rx, h.ctl))),
        Err(line) => (VecDeque::from([line]), None),
    };
    let bookmark = bookmarks.then(|| {
        let period = shared.bookmark_interval.max(Duration::from_millis(10));
        let mut i = tokio::time::interval_at(Instant::now() + period, period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    let open = live.is_some().then(|| {
        shared.watch_opened(res.plural);
        Open {
            shared: Arc::clone(&shared),
            plural: res.plural,
        }
    });
    let st = State {
        shared,
        _open: open,
        res,
        prefix,
        live,
        bookmark,
        deadline: timeout.map(|t| Instant::now() + t),
        done: false,
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        let out = match next(&mut st).await {
            Item::Event(b) => {
                Counters::bump(&st.shared.counters.watch_events_sent);
                Ok(Frame::data(b))
            }
            Item::Bookmark(b) => {
                Counters::bump(&st.shared.counters.bookmarks_sent);
                Ok(Frame::data(b))
            }
            Item::Abort => Err(std::io::Error::other("watch dropped by the test")),
            Item::End => return None,
        };
        // A stalled server goes silent on open watches until the fault is cleared.
        st.shared.wait_not_stalled().await;
        Some((out, st))
    });
    StreamBody::new(stream).boxed()
}
