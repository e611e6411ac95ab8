//! Object conversion at the index boundary: arbitrary bytes, read as the
//! JSON an apiserver sends for one list item or watch event object, go
//! through `convert_json` (what the list/watch loop runs on the stream's
//! bytes); whatever converts must then index and publish. A bad object is
//! an error for that object, never a panic.
//!
//! `convert(kind, Value)` (the manifests path) is the reference: both must
//! accept what `convert_json` accepts, as the same object. Whatever it
//! accepts,
//! `key_of` (what a list keeps of an object it skips) must read too.
//!
//! The kind comes from the object's own `apiVersion`/`kind`, as in a
//! manifest; a watcher knows it from its stream instead, so objects that do
//! not name a kind are tried as the kind their length picks.

use crossdns::index::{Change, Kind};
use crossdns::watch::convert::{convert, convert_json, key_of, kind_of};
use serde_json::Value;

use super::world;

pub fn check(data: &[u8]) {
    let v = serde_json::from_slice::<Value>(data).ok();
    let text = |key: &str| {
        v.as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let kind = kind_of(text("apiVersion"), text("kind"))
        .unwrap_or(Kind::ALL[data.len() % Kind::ALL.len()]);
    let streamed = convert_json(kind, data);
    if let Some(v) = v {
        let reference = convert(kind, v);
        // The stream's reader is the stricter one (a duplicated field is an
        // error for it, where a Value keeps the last), so only this way.
        if let Ok(a) = &streamed {
            match &reference {
                Ok(b) => assert_eq!(a, b, "convert_json and convert disagree"),
                Err(e) => panic!("convert_json {a:?} but convert: {e}"),
            }
        }
    }
    // Where no Value parses, the stream's reader may still accept: it skips
    // fields crossdns does not read without checking their strings' UTF-8
    // (serde_json), and an apiserver sends valid JSON anyway.
    match streamed {
        Ok(Some(obj)) => {
            assert_eq!(obj.kind(), kind, "converted into another kind");
            assert!(
                key_of(kind, data).is_some(),
                "key_of cannot read a converted object"
            );
            world::index(vec![Change::Apply(obj)]);
        }
        Ok(None) => {}
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
    }
}
