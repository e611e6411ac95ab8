//! Object conversion at the index boundary: arbitrary bytes, read as the
//! JSON an apiserver sends for one list item or watch event object, go
//! through `crossdns::watch::convert::convert`; whatever converts must then
//! index and publish. A bad object is an error for that object, never a
//! panic.
//!
//! The kind comes from the object's own `apiVersion`/`kind`, as in a
//! manifest; a watcher knows it from its stream instead, so objects that do
//! not name a kind are tried as the kind their length picks.
//!
//! When the watch path deserializes straight from the stream's bytes
//! (`convert::convert_json(kind, &[u8])` and `convert::key_of`, on the
//! `watch` branch), this check must feed `data` to `convert_json` itself —
//! that is then the path users run — and keep `convert(kind, Value)` (the
//! manifests path) as the reference: both must agree on Ok/Err and on the
//! object, and for `Ok(Some(obj))` `key_of(kind, data)` must be the
//! object's key.

use crossdns::index::{Change, Kind};
use crossdns::watch::convert::{convert, kind_of};
use serde_json::Value;

use super::world;

pub fn check(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default();
    let kind = kind_of(text("apiVersion"), text("kind"))
        .unwrap_or(Kind::ALL[data.len() % Kind::ALL.len()]);
    match convert(kind, v) {
        Ok(Some(obj)) => {
            assert_eq!(obj.kind(), kind, "converted into another kind");
            world::index(vec![Change::Apply(obj)]);
        }
        Ok(None) => {}
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
    }
}
