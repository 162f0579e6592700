//! Label and field selectors, as the `labelSelector` and `fieldSelector` query parameters
//! carry them.

use serde_json::Value;

/// One comma-separated term; a selector matches when every term does.
#[derive(Debug, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// Which part of the object the keys name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Keys of `metadata.labels`.
    Labels,
    /// Dotted paths into the object (`metadata.name`, `type`, `spec.nodeName`).
    Fields,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Selector {
    scope: Scope,
    terms: Vec<Term>,
}

/// The selector text was not understood; the message is for the 400 answer.
#[derive(Debug, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl Selector {
    pub fn labels(text: &str) -> Result<Selector, SelectorError> {
        parse(text, Scope::Labels)
    }

    /// Field selectors have no existence terms: a bare key is an error, as upstream.
    pub fn fields(text: &str) -> Result<Selector, SelectorError> {
        let selector = parse(text, Scope::Fields)?;
        if selector.terms.iter().any(|t| matches!(t, Term::Exists(_) | Term::NotExists(_))) {
            return Err(SelectorError(format!("invalid field selector: {text:?}")));
        }
        Ok(selector)
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Equals(key, want) => self.value(object, key).as_deref() == Some(want.as_str()),
            // Upstream: a missing label satisfies `!=`; a missing field compares as "".
            Term::NotEquals(key, want) => self.value(object, key).as_deref() != Some(want.as_str()),
            Term::Exists(key) => self.value(object, key).is_some(),
            Term::NotExists(key) => self.value(object, key).is_none(),
        })
    }

    fn value(&self, object: &Value, key: &str) -> Option<String> {
        let found = match self.scope {
            Scope::Labels => object.pointer("/metadata/labels").and_then(|labels| labels.get(key)),
            Scope::Fields => key.split('.').try_fold(object, |node, part| node.get(part)),
        };
        match (self.scope, found) {
            (_, Some(Value::String(s))) => Some(s.clone()),
            (_, Some(Value::Bool(b))) => Some(b.to_string()),
            (_, Some(Value::Number(n))) => Some(n.to_string()),
            (Scope::Fields, _) => Some(String::new()),
            (Scope::Labels, _) => None,
        }
    }
}

fn parse(text: &str, scope: Scope) -> Result<Selector, SelectorError> {
    let mut terms = Vec::new();
    for raw in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let bad = || SelectorError(format!("unable to parse requirement: {raw:?}"));
        let term = if let Some((key, value)) = raw.split_once("!=") {
            Term::NotEquals(valid_key(key.trim()).ok_or_else(bad)?, valid_value(value.trim()).ok_or_else(bad)?)
        } else if let Some((key, value)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
            Term::Equals(valid_key(key.trim()).ok_or_else(bad)?, valid_value(value.trim()).ok_or_else(bad)?)
        } else if let Some(key) = raw.strip_prefix('!') {
            Term::NotExists(valid_key(key.trim()).ok_or_else(bad)?)
        } else {
            Term::Exists(valid_key(raw).ok_or_else(bad)?)
        };
        terms.push(term);
    }
    Ok(Selector { scope, terms })
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

fn valid_value(value: &str) -> Option<String> {
    let ok = value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "web", "labels": {"app": "shop", "tier": "front"}},
               "type": "kubernetes.io/tls", "spec": {"nodeName": "n1"}})
    }

    #[test]
    fn label_selector_table() {
        for (text, want) in [
            ("", true),
            ("app=shop", true),
            ("app==shop", true),
            ("app=other", false),
            ("app!=other", true),
            ("app!=shop", false),
            ("missing!=x", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=shop,tier=front", true),
            ("app=shop, tier=back", false),
            ("app=shop,missing", false),
        ] {
            assert_eq!(Selector::labels(text).unwrap().matches(&pod()), want, "{text}");
        }
    }

    #[test]
    fn field_selector_table() {
        for (text, want) in [
            ("type=kubernetes.io/tls", true),
            ("type!=kubernetes.io/tls", false),
            ("metadata.name=p", true),
            ("metadata.namespace=web", true),
            ("metadata.namespace=other", false),
            ("spec.nodeName=n1,metadata.name=p", true),
            ("spec.missing=", true),
        ] {
            assert_eq!(Selector::fields(text).unwrap().matches(&pod()), want, "{text}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for text in ["=x", "a=b=c", "a=(x)", "a in (x)"] {
            assert!(Selector::labels(text).is_err(), "{text}");
        }
        assert!(Selector::fields("metadata.name").is_err());
    }
}
