//! Strict parsing of Kubernetes manifests for the manifest tests: every
//! document as its k8s-openapi type, with no field k8s-openapi does not know
//! (a re-serialized round trip must give back the input).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

/// The YAML documents of a file.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Paths where `a` and `b` differ, for a readable failure.
pub fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(&format!("{path}.{k}"), p, q, out),
                    (Some(_), None) => {
                        out.push(format!("{path}.{k} is not a field k8s-openapi knows"))
                    }
                    (None, Some(_)) => out.push(format!("{path}.{k} appeared on re-serializing")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} became {b}")),
        _ => {}
    }
}

/// Parses `doc` as `T` and checks that nothing was dropped or changed.
pub fn strict<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{file}: does not match the Kubernetes schema: {e}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    let mut problems = Vec::new();
    diff("", doc, &back, &mut problems);
    assert!(problems.is_empty(), "{file}: {problems:#?}");
    typed
}

/// The YAML documents of a string (a `kubectl kustomize` output).
pub fn documents_of(text: &str, what: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: not YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}
