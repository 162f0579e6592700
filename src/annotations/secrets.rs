//! Secrets that annotations name (`auth-secret`, `auth-tls-secret`,
//! `proxy-ssl-secret`): which objects ingressd may read for an Ingress.
//!
//! ingressd can read Secrets cluster-wide, so an annotation must not let a
//! tenant borrow another namespace's Secret through it: a name is accepted
//! bare or as `namespace/name` only when that namespace is the Ingress's own.
//! ingress-nginx accepted any namespace; an Ingress that relied on that gets
//! an error from [`secret_key`], and the annotation's user fails closed.

use crate::kube::objects::{Ingress, ObjectKey};

use super::value;

/// The annotations whose value names a Secret.
pub const SECRET_ANNOTATIONS: [&str; 3] = ["auth-secret", "auth-tls-secret", "proxy-ssl-secret"];

/// The Secret an annotation on an Ingress in `namespace` names.
pub fn secret_key(namespace: &str, value: &str) -> Result<ObjectKey, String> {
    let value = value.trim();
    let (named_namespace, name) = match value.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (namespace, value),
    };
    if !is_dns_subdomain(name) {
        return Err(format!("{value:?} is not a Secret name"));
    }
    if named_namespace != namespace {
        return Err(format!("{value:?} names a Secret in another namespace; only the Ingress's own namespace ({namespace}) may be read"));
    }
    Ok(ObjectKey::new(namespace, name))
}

/// Every Secret `ingress`'s annotations validly name, sorted, each once.
pub fn named_secrets(ingress: &Ingress) -> Vec<ObjectKey> {
    let annotations = &ingress.metadata.annotations;
    let mut keys: Vec<ObjectKey> = SECRET_ANNOTATIONS
        .iter()
        .filter_map(|name| value(annotations, name))
        .filter_map(|text| secret_key(&ingress.metadata.namespace, text).ok())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// RFC 1123 subdomain, as the API requires of object names.
fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes.iter().all(|&b| alnum(b) || b == b'-' || b == b'.')
        && bytes.first().copied().is_some_and(alnum)
        && bytes.last().copied().is_some_and(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::ObjectMeta;

    #[test]
    fn secret_names_table() {
        // The annotation's value, then the Secret's namespace and name or a part of the refusal.
        type Case = (&'static str, Result<(&'static str, &'static str), &'static str>);
        let table: [Case; 9] = [
            ("basic-auth", Ok(("shop", "basic-auth"))),
            ("shop/basic-auth", Ok(("shop", "basic-auth"))),
            (" ca.v1 ", Ok(("shop", "ca.v1"))),
            ("other/basic-auth", Err("another namespace")),
            ("/basic-auth", Err("another namespace")),
            ("", Err("not a Secret name")),
            ("Basic", Err("not a Secret name")),
            ("a/b/c", Err("not a Secret name")),
            ("-x", Err("not a Secret name")),
        ];
        for (text, want) in table {
            match (secret_key("shop", text), want) {
                (Ok(key), Ok((ns, name))) => assert_eq!(key, ObjectKey::new(ns, name), "{text:?}"),
                (Err(why), Err(part)) => assert!(why.contains(part), "{text:?}: {why}"),
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_ingress_names_each_valid_secret_once_under_either_prefix() {
        let mut ingress = Ingress { metadata: ObjectMeta { namespace: "shop".into(), name: "web".into(), ..Default::default() }, ..Default::default() };
        for (key, value) in [
            ("nginx.ingress.kubernetes.io/auth-secret", "creds"),
            ("ingressd.io/auth-tls-secret", "shop/ca"),
            ("nginx.ingress.kubernetes.io/auth-tls-secret", "shop/ignored-by-precedence"),
            ("nginx.ingress.kubernetes.io/proxy-ssl-secret", "elsewhere/upstream"),
            ("ingressd.io/proxy-ssl-secret", "creds"),
        ] {
            ingress.metadata.annotations.insert(key, value);
        }
        assert_eq!(named_secrets(&ingress), [ObjectKey::new("shop", "ca"), ObjectKey::new("shop", "creds")]);
    }
}
