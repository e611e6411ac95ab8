//! The two halves of a stream's life after its requests are made: a list
//! (paginated or streaming) delivered object by object between `ListStart`
//! and `ListEnd`, and the watch that follows it.

use super::*;

impl ScopeWatch {
    /// A paginated list, each page's items sent as they are parsed; returns
    /// the list's resourceVersion.
    pub(super) async fn list(&self, bad: &mut BadObjects) -> Result<String, Ended> {
        let limit = PAGE_SIZE.to_string();
        let mut token: Option<String> = None;
        let mut started = false;
        loop {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(t) = &token {
                query.push(("continue", t.as_str()));
            }
            let res = self.get(&query, false).await?;
            let body: Bytes = match res.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    let (cause, message) = classify(&e);
                    return Err(self.failed(cause, message, false));
                }
            };
            let page: Page<'_> = serde_json::from_slice(&body).map_err(|e| {
                self.failed(
                    FailureCause::Garbage,
                    format!("list page of {} is not a list: {e}", self.path()),
                    false,
                )
            })?;
            if !started {
                self.send(SourceEvent::Healthy(Some(self.scope.clone())))
                    .await?;
                self.change(Change::ListStart(self.kind(), self.scope.1.clone()))
                    .await?;
                started = true;
            }
            for item in page.items.unwrap_or_default() {
                self.item(item.get().as_bytes(), true, bad).await?;
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                let rv = page
                    .metadata
                    .resource_version
                    .filter(|rv| !rv.is_empty())
                    .ok_or_else(|| {
                        self.failed(
                            FailureCause::Garbage,
                            format!("list of {} has no resourceVersion", self.path()),
                            true,
                        )
                    })?;
                self.end_list().await?;
                return Ok(rv);
            }
        }
    }

    async fn end_list(&self) -> Result<(), Ended> {
        self.change(Change::ListEnd(self.kind(), self.scope.1.clone()))
            .await?;
        tracing::debug!(cluster = %self.cluster, kind = %self.kind().as_str(), "listed");
        self.send(SourceEvent::Synced(self.scope.clone())).await
    }

    /// One object of a list or watch: applied, or kept if it does not
    /// convert (a list), or left as it was (a watch).
    async fn item(&self, json: &[u8], listing: bool, bad: &mut BadObjects) -> Result<(), Ended> {
        let kind = self.kind();
        match convert_json(kind, json) {
            Ok(Some(obj)) => {
                if !bad.0.is_empty()
                    && let Some(key) = key_of(kind, json)
                {
                    bad.0.remove(&key);
                }
                self.change(Change::Apply(obj)).await
            }
            // Valid but nothing DNS serves: a list leaves it out; a watch
            // drops what was stored under its key (it lost its label).
            Ok(None) if listing => Ok(()),
            Ok(None) => match key_of(kind, json) {
                Some(key) => self.change(Change::Delete(kind, key)).await,
                None => Ok(()),
            },
            Err(e) => {
                let key = key_of(kind, json);
                let msg = e.to_string();
                let name = key
                    .as_ref()
                    .map_or_else(|| "?".to_owned(), ToString::to_string);
                let seen = key.as_ref().and_then(|k| bad.0.get(k)) == Some(&msg);
                if !seen {
                    tracing::warn!(cluster = %self.cluster, kind = %kind.as_str(), object = %name, error = %msg, "skipping object that does not parse; keeping its last good version");
                    self.handle
                        .status
                        .skipped_objects
                        .fetch_add(1, Ordering::Relaxed);
                }
                match key {
                    Some(key) => {
                        bad.0.insert(key.clone(), msg);
                        if listing {
                            self.change(Change::Keep(kind, key)).await
                        } else {
                            Ok(())
                        }
                    }
                    None => Ok(()),
                }
            }
        }
    }

    /// A watch: from `rv`, or (`initial`, `rv` None) a streaming list that
    /// first delivers every object. Ends `Ok` when the server (or our own
    /// deadline) ends it; `rv` follows every event and bookmark.
    pub(super) async fn watch(
        &self,
        rv: &mut Option<String>,
        initial: bool,
        bad: &mut BadObjects,
    ) -> Result<(), Ended> {
        let timeout = if initial {
            WATCH_LIST_TIMEOUT_SECS
        } else {
            WATCH_TIMEOUT_SECS
        }
        .to_string();
        let from = rv.clone().unwrap_or_default();
        let mut query = vec![
            ("watch", "1"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout.as_str()),
        ];
        if initial {
            query.push(("sendInitialEvents", "true"));
            query.push(("resourceVersionMatch", "NotOlderThan"));
        } else {
            query.push(("resourceVersion", from.as_str()));
        }
        let opened = Instant::now();
        let res = self.get(&query, true).await?;
        self.send(SourceEvent::Healthy(Some(self.scope.clone())))
            .await?;
        let body = res
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        let mut lines = FramedRead::new(StreamReader::new(body), LinesCodec::new());
        let mut listing = initial;
        if listing {
            self.change(Change::ListStart(self.kind(), self.scope.1.clone()))
                .await?;
        }
        loop {
            if !listing && opened.elapsed() >= Duration::from_secs(WATCH_TIMEOUT_SECS.into()) {
                return Ok(()); // re-open from rv, as after a server timeout
            }
            let line = match tokio::time::timeout(IDLE, lines.next()).await {
                Err(_) => {
                    return Err(self.failed(
                        FailureCause::Stalled,
                        format!("watch of {} silent for {IDLE:?}", self.path()),
                        listing,
                    ));
                }
                Ok(None) if listing => {
                    return Err(self.failed(
                        FailureCause::Garbage,
                        format!(
                            "streaming list of {} ended before its last object",
                            self.path()
                        ),
                        true,
                    ));
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    let (cause, message) = classify(&e);
                    return Err(self.failed(cause, message, listing));
                }
                Ok(Some(Ok(line))) => line,
            };
            if line.trim().is_empty() {
                continue;
            }
            // A line that does not decode is an event lost: only a relist
            // can tell what it was.
            let ev: Line<'_> = serde_json::from_str(&line).map_err(|e| {
                self.failed(
                    FailureCause::Garbage,
                    format!("watch event of {} does not decode: {e}", self.path()),
                    true,
                )
            })?;
            let object = ev.object.get().as_bytes();
            let meta = serde_json::from_slice::<WithMeta>(object)
                .map(|m| m.metadata)
                .unwrap_or_default();
            match &*ev.type_ {
                "ADDED" | "MODIFIED" => self.item(object, listing, bad).await?,
                "DELETED" if listing => {} // impossible in initial events (KEP-3157)
                "DELETED" => {
                    if let Some(key) = key_of(self.kind(), object) {
                        self.change(Change::Delete(self.kind(), key)).await?;
                    }
                }
                "BOOKMARK" => {
                    let end = meta
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(INITIAL_EVENTS_END))
                        .is_some_and(|v| v == "true");
                    if listing && end {
                        listing = false;
                        if let Some(v) = meta.resource_version.clone() {
                            *rv = Some(v);
                        }
                        self.end_list().await?;
                    }
                }
                "ERROR" => {
                    let status: Status = serde_json::from_slice(object).unwrap_or_default();
                    if status.code == 410 {
                        return Err(Ended::Expired);
                    }
                    let cause = match status.code {
                        401 | 403 => FailureCause::Unauthorized,
                        429 => FailureCause::Throttled,
                        500..=599 => FailureCause::ServerError,
                        _ => FailureCause::Other,
                    };
                    return Err(self.failed(
                        cause,
                        format!(
                            "watch of {} ended with {} {}: {}",
                            self.path(),
                            status.code,
                            status.reason,
                            status.message
                        ),
                        listing,
                    ));
                }
                other => {
                    return Err(self.failed(
                        FailureCause::Garbage,
                        format!("watch of {} sent an event of type {other:?}", self.path()),
                        true,
                    ));
                }
            }
            if !listing && let Some(v) = meta.resource_version.filter(|v| !v.is_empty()) {
                *rv = Some(v);
            }
        }
    }
}
