//! Field and label selectors (equality and existence terms), parsed from query strings.

use serde_json::Value;

use crate::resources::ResourceDef;

/// One `key op value` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
}

/// What a list or watch is restricted to.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub res: &'static ResourceDef,
    pub namespace: Option<String>,
    pub name: Option<String>,
    fields: Vec<Term>,
    labels: Vec<Term>,
}

/// A selector could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("unable to parse requirement: {0:?}")]
pub(crate) struct BadSelector(String);

impl Filter {
    pub fn new(
        res: &'static ResourceDef,
        namespace: Option<String>,
        name: Option<String>,
        field_selector: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Self, BadSelector> {
        let fields = parse(field_selector.unwrap_or(""), false)?;
        let labels = parse(label_selector.unwrap_or(""), true)?;
        Ok(Self {
            res,
            namespace,
            name,
            fields,
            labels,
        })
    }

    /// Does the object pass every restriction?
    pub fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        if let Some(ns) = &self.namespace
            && meta["namespace"].as_str().unwrap_or("") != ns
        {
            return false;
        }
        if let Some(name) = &self.name
            && meta["name"].as_str().unwrap_or("") != name
        {
            return false;
        }
        let field = |k: &str| field_value(obj, k);
        let label = |k: &str| meta["labels"][k].as_str().map(str::to_string);
        self.fields.iter().all(|t| term_ok(t, &field))
            && self.labels.iter().all(|t| term_ok(t, &label))
    }
}

fn field_value(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn term_ok(t: &Term, get: &dyn Fn(&str) -> Option<String>) -> bool {
    match t {
        Term::Eq(k, v) => get(k).unwrap_or_default() == *v,
        Term::Ne(k, v) => get(k).unwrap_or_default() != *v,
        Term::Exists(k) => get(k).is_some(),
        Term::NotExists(k) => get(k).is_none(),
    }
}

fn parse(sel: &str, allow_existence: bool) -> Result<Vec<Term>, BadSelector> {
    let mut out = Vec::new();
    for raw in sel.split(',') {
        let part = raw.trim();
        if part.is_empty() {
            continue;
        }
        let term = if let Some((k, v)) = part.split_once("!=") {
            Term::Ne(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = part.split_once("==") {
            Term::Eq(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = part.split_once('=') {
            Term::Eq(k.trim().to_string(), v.trim().to_string())
        } else if allow_existence && valid_key(part.trim_start_matches('!')) {
            match part.strip_prefix('!') {
                Some(k) => Term::NotExists(k.trim().to_string()),
                None => Term::Exists(part.to_string()),
            }
        } else {
            return Err(BadSelector(part.to_string()));
        };
        let key = match &term {
            Term::Eq(k, _) | Term::Ne(k, _) | Term::Exists(k) | Term::NotExists(k) => k,
        };
        if !valid_key(key) {
            return Err(BadSelector(part.to_string()));
        }
        out.push(term);
    }
    Ok(out)
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;
    use serde_json::json;

    fn svc() -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns1", "labels": {"app": "web", "tier": "x"}}})
    }

    fn filter(fields: &str, labels: &str) -> Filter {
        Filter::new(&RESOURCES[1], None, None, Some(fields), Some(labels)).expect("valid selector")
    }

    #[test]
    fn equality_and_inequality_terms_select_objects() {
        assert!(filter("metadata.name=a", "app=web").matches(&svc()));
        assert!(filter("metadata.namespace==ns1", "app==web,tier!=y").matches(&svc()));
        assert!(!filter("metadata.name!=a", "").matches(&svc()));
        assert!(!filter("", "app=db").matches(&svc()));
        assert!(filter("", "app,!missing").matches(&svc()));
        assert!(!filter("", "!app").matches(&svc()));
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        assert!(Filter::new(&RESOURCES[1], None, None, Some("metadata.name"), None).is_err());
        assert!(Filter::new(&RESOURCES[1], None, None, None, Some("a in (b)")).is_err());
    }
}
