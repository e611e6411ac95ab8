//! A static source: a folder of Kubernetes YAML (multi-document files and
//! `kind: List`, as `kubectl get -o yaml` writes them); a file is re-read
//! when it changes. A file that stops parsing keeps its last good objects
//! (the store remembers what each file delivered), so a half-saved edit never
//! empties a zone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::convert::{convert, kind_of};
use super::{Failure, SourceEvent};
use crate::index::{Change, FailureCause, Kind, Object};

/// How often the folder is checked for changes.
pub const POLL: Duration = Duration::from_millis(500);

/// What a file looked like when last read: (modified, length).
type Stamp = (Option<SystemTime>, u64);

pub async fn run(dir: PathBuf, kinds: Vec<Kind>, tx: mpsc::Sender<SourceEvent>) {
    let mut stamps: BTreeMap<PathBuf, Stamp> = BTreeMap::new();
    let mut first = true;
    let mut failed = false;
    loop {
        let found = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || scan(&dir)
        })
        .await;
        let now = match found {
            Ok(Ok(now)) => {
                if failed && tx.send(SourceEvent::Healthy(None)).await.is_err() {
                    return;
                }
                failed = false;
                now
            }
            Ok(Err(e)) => {
                failed = true;
                let failure = Failure {
                    scope: None,
                    cause: FailureCause::Unreadable,
                    message: format!("cannot read {}: {e}", dir.display()),
                };
                let _ = tx.send(SourceEvent::Failing(failure)).await;
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(_) => return,
        };
        // Each file is a source of its own: the store remembers what it
        // delivered, so only changed files are read and sent, and a file
        // that stops parsing is simply not sent (its objects stay). Each is
        // sent as soon as it is parsed (one file's objects in memory at a
        // time); removed files last, so an object moved to another file
        // never disappears in between.
        for (path, stamp) in &now {
            if stamps.get(path) == Some(stamp) {
                continue;
            }
            // Reading and parsing block: off the async workers.
            let read = tokio::task::spawn_blocking({
                let path = path.clone();
                move || read_file(&path)
            })
            .await;
            let read = match read {
                Ok(read) => read,
                // A panic in the parser is a bad file like any other.
                Err(e) if e.is_panic() => Err(anyhow::anyhow!("the parser panicked")),
                Err(_) => return, // the runtime is shutting down
            };
            let parsed = match read {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "manifest does not parse; keeping its last good objects");
                    continue;
                }
            };
            for why in &parsed.skipped {
                tracing::warn!(file = %path.display(), error = %why, "skipping object that does not parse");
            }
            let objects = parsed
                .objects
                .into_iter()
                .filter(|o| kinds.contains(&o.kind()))
                .collect();
            let change = Change::ResetSource(path.display().to_string(), objects);
            if tx.send(SourceEvent::Change(change)).await.is_err() {
                return;
            }
        }
        for path in stamps.keys().filter(|p| !now.contains_key(*p)) {
            let change = Change::ResetSource(path.display().to_string(), Vec::new());
            if tx.send(SourceEvent::Change(change)).await.is_err() {
                return;
            }
        }
        stamps = now;
        if first {
            for kind in &kinds {
                if tx.send(SourceEvent::Synced((*kind, None))).await.is_err() {
                    return;
                }
            }
            first = false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every YAML/JSON file under `dir`, with its stamp.
fn scan(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, Stamp>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            // Follow symlinks: ConfigMap volumes swap a `..data` link.
            let meta = std::fs::metadata(&path)?;
            if meta.is_dir() {
                if !entry.file_name().to_string_lossy().starts_with("..") {
                    stack.push(path);
                }
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                out.insert(path, (meta.modified().ok(), meta.len()));
            }
        }
    }
    Ok(out)
}

/// The objects of one file: those crossdns reads, and why others were skipped.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<Object>,
    /// One line per object of a kind crossdns reads that did not convert.
    pub skipped: Vec<String>,
}

/// Parses one file; kinds crossdns does not read are ignored.
pub fn read_file(path: &Path) -> anyhow::Result<Parsed> {
    let text = std::fs::read_to_string(path)?;
    parse_documents(&text)
}

/// Parses YAML documents. Text that is not YAML fails the whole file (the
/// caller keeps its last good objects); an object that does not fit the
/// Kubernetes schema is skipped with its reason, like the kube source does.
pub fn parse_documents(text: &str) -> anyhow::Result<Parsed> {
    // One document (or List item) is converted before the next is read, so
    // a large file never holds more than one JSON tree at a time.
    let mut parsed = Parsed::default();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        match Value::deserialize(doc)? {
            Value::Null => {}
            mut v
                if v.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k == "List" || k.ends_with("List")) =>
            {
                if let Some(Value::Array(items)) = v.get_mut("items") {
                    for item in std::mem::take(items) {
                        parsed.add(item);
                    }
                }
            }
            v => parsed.add(v),
        }
    }
    Ok(parsed)
}

impl Parsed {
    /// Converts one object; kinds crossdns does not read are ignored.
    fn add(&mut self, mut v: Value) {
        let text = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind_name) = (text(&v, "apiVersion"), text(&v, "kind"));
        let Some(kind) = kind_of(&api_version, &kind_name) else {
            return;
        };
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        // kubectl applies a missing namespace as `default`.
        if kind != Kind::Namespace
            && v.pointer("/metadata/namespace").is_none()
            && let Some(Value::Object(meta)) = v.get_mut("metadata")
        {
            meta.insert("namespace".to_owned(), Value::String("default".to_owned()));
        }
        match convert(kind, v) {
            Ok(Some(obj)) => self.objects.push(obj),
            Ok(None) => {}
            Err(e) => self.skipped.push(format!("{kind_name} {name}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_files_and_lists_are_both_read() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.0.0.1}\n---\n---\napiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {name: shop}\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: ignored}\n";
        let objects = parse_documents(text).expect("parses").objects;
        assert_eq!(objects.len(), 2);
        assert!(matches!(&objects[0], Object::Service(s) if s.key.namespace() == "default"));
        assert_eq!(objects[1], Object::Namespace("shop".to_owned()));
    }

    #[test]
    fn a_bad_object_is_skipped_with_its_name_and_the_rest_load() {
        let parsed = parse_documents(
            "apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec: {clusterIP: nope}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: fine}\nspec: {clusterIP: 10.0.0.1}\n",
        )
        .expect("the file is YAML");
        assert_eq!(parsed.objects.len(), 1);
        assert!(
            parsed.skipped[0].contains("Service broken"),
            "{:?}",
            parsed.skipped
        );
        assert!(
            parse_documents("kind: [unclosed").is_err(),
            "not YAML fails the file"
        );
    }
}
