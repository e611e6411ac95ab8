//! Kubeconfig YAML pointing at the fake: one cluster, user and context, all named after the context.

use base64::Engine as _;
use serde_json::json;

/// Kubeconfig text with certificate-authority-data and a bearer token.
pub(crate) fn render(url: &str, ca_pem: &str, token: &str, context: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url, "certificate-authority-data": ca}}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "preferences": {},
    });
    // JSON is valid YAML, so it is a correct fallback should YAML rendering ever fail.
    serde_yaml_ng::to_string(&doc).unwrap_or_else(|_| doc.to_string())
}
