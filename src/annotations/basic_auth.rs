//! `auth-type: basic` with `auth-secret`, `auth-secret-type` and
//! `auth-realm`, compiled once per route compile from the Ingress's
//! annotations and the Secret they name, so requests never read a Secret.
//!
//! Fails closed: when the annotations ask for authentication but it cannot
//! be set up (no such Secret, another namespace's Secret, no usable line,
//! an auth type ingressd does not implement), the result is
//! [`BasicAuth::Unavailable`] and every request on the Ingress answers 503,
//! never 200. Without `auth-type` there is no authentication, as in
//! ingress-nginx.

use std::sync::Arc;

use super::htpasswd::{self, check_user, Credentials, Hash};
use super::secrets::secret_key;
use super::value;
use crate::kube::objects::{ObjectKey, Secret, StringMap};
use crate::base64;

/// What an Ingress's basic-auth annotations compile to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasicAuth {
    /// Requests must carry a password of one of these users.
    Required { realm: String, credentials: Credentials },
    /// Authentication was asked for and cannot be set up; the reason is logged.
    Unavailable,
}

/// The basic auth `annotations` of an Ingress in `namespace` ask for, with
/// `secret` looking Secrets up in the current snapshot. `None` when they ask
/// for none. Every problem is described in `problems` (never with hashes).
pub fn from_annotations<'s>(
    annotations: &StringMap,
    namespace: &str,
    secret: impl Fn(&ObjectKey) -> Option<&'s Arc<Secret>>,
    problems: &mut Vec<String>,
) -> Option<BasicAuth> {
    let Some(auth_type) = value(annotations, "auth-type") else {
        if value(annotations, "auth-secret").is_some() {
            problems.push("auth-secret without auth-type: no authentication, as in ingress-nginx; set auth-type: basic".into());
        }
        return None;
    };
    let unavailable = |problems: &mut Vec<String>, why: String| {
        problems.push(format!("{why}; every request answers 503 until this is fixed"));
        Some(BasicAuth::Unavailable)
    };
    match auth_type.trim() {
        "basic" => {}
        "digest" => return unavailable(problems, "auth-type digest is not supported by ingressd".into()),
        other => return unavailable(problems, format!("auth-type {other:?} is neither basic nor digest")),
    }
    let map = match value(annotations, "auth-secret-type").map(str::trim) {
        None | Some("auth-file") => false,
        Some("auth-map") => true,
        Some(other) => return unavailable(problems, format!("auth-secret-type {other:?} is neither auth-file nor auth-map")),
    };
    let Some(name) = value(annotations, "auth-secret") else {
        return unavailable(problems, "auth-type basic without auth-secret".into());
    };
    let key = match secret_key(namespace, name) {
        Ok(key) => key,
        Err(why) => return unavailable(problems, format!("auth-secret {why}")),
    };
    let Some(secret) = secret(&key) else {
        return unavailable(problems, format!("auth-secret {key} does not exist (or is not readable)"));
    };
    let credentials = match credentials(&secret.data, map) {
        Ok((credentials, line_problems)) => {
            for problem in line_problems {
                problems.push(format!("auth-secret {key}: {problem}"));
            }
            credentials
        }
        Err(why) => return unavailable(problems, format!("auth-secret {key}: {why}")),
    };
    if credentials.is_empty() {
        return unavailable(problems, format!("auth-secret {key} holds no usable user"));
    }
    let realm = match value(annotations, "auth-realm") {
        None => String::new(),
        Some(realm) if realm.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\') => realm.to_string(),
        Some(_) => {
            problems.push("auth-realm holds quotes, backslashes or non-printable characters; an empty realm is used".into());
            String::new()
        }
    };
    Some(BasicAuth::Required { realm, credentials })
}

/// The users of a Secret's data (base64 values, as the API sends them):
/// the htpasswd text under `auth`, or for `auth-map` one user per key with
/// its hash as the value. `Err` when the data cannot be read at all.
pub fn credentials(data: &StringMap, map: bool) -> Result<(Credentials, Vec<String>), String> {
    if !map {
        let encoded = data.get("auth").ok_or("no key \"auth\" in the Secret's data")?;
        let text = base64::decode(encoded).map_err(|_| "the value of \"auth\" is not base64")?;
        let (credentials, problems) = htpasswd::parse(&String::from_utf8_lossy(&text));
        let problems = problems.into_iter().map(|p| format!("line {} skipped: {}", p.line, p.why)).collect();
        return Ok((credentials, problems));
    }
    let mut credentials = Credentials::default();
    let mut problems = Vec::new();
    for (user, encoded) in data.iter() {
        let hash = base64::decode(encoded)
            .map_err(|_| "not base64")
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "not UTF-8"))
            .and_then(|text| check_user(user).and_then(|()| Hash::parse(text.trim_end_matches(['\r', '\n']))));
        match hash {
            Ok(hash) => {
                credentials.insert(user, hash);
            }
            Err(why) => problems.push(format!("user {user:?} skipped: {why}")),
        }
    }
    Ok((credentials, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::ObjectMeta;

    const ALICE: &str = "alice:$2y$04$o2P9Du.ks7G/TXJuQGbFbew9S/KvYiGKkD9IDaQ3qzXoYlgEEhEny\n";
    const BOB_HASH: &str = "$apr1$qGqYkezf$jZBKz0HpSDf4vAQWYU7kQ.";

    fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]) } else { '=' });
            }
        }
        out
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> Arc<Secret> {
        let mut secret = Secret { metadata: ObjectMeta { namespace: "shop".into(), name: name.into(), ..Default::default() }, ..Default::default() };
        for (key, value) in data {
            secret.data.insert(*key, encode(value.as_bytes()));
        }
        Arc::new(secret)
    }

    fn annotations(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    /// (annotations, Some(realm and users) or None for Unavailable or no
    /// auth (`asked`), problems expected).
    #[test]
    fn annotations_and_secrets_table() {
        let secrets = [
            secret("file", &[("auth", ALICE)]),
            secret("map", &[("bob", BOB_HASH), ("eve", "plain")]),
            secret("garbage", &[("auth", "not a line\nalso:not-a-hash\n")]),
            secret("no-auth-key", &[("users", ALICE)]),
        ];
        let lookup = |key: &ObjectKey| secrets.iter().find(|s| s.metadata.key() == *key);
        // Annotations; no basic auth, or auth refusing everyone, or a realm
        // and the number of users; the problems logged.
        type Case = (&'static crate::annotations::Pairs, Option<Option<(&'static str, usize)>>, usize);
        let cases: &[Case] = &[
            (&[], None, 0),
            (&[("auth-secret", "file")], None, 1),
            (&[("auth-type", "basic"), ("auth-secret", "file")], Some(Some(("", 1))), 0),
            (&[("auth-type", "basic"), ("auth-secret", "shop/file"), ("auth-realm", "Authentication Required - foo")], Some(Some(("Authentication Required - foo", 1))), 0),
            (&[("auth-type", "basic"), ("auth-secret", "file"), ("auth-realm", "a\"b")], Some(Some(("", 1))), 1),
            (&[("auth-type", "basic"), ("auth-secret", "map"), ("auth-secret-type", "auth-map")], Some(Some(("", 1))), 1),
            (&[("auth-type", "basic"), ("auth-secret", "map")], Some(None), 1),
            (&[("auth-type", "basic"), ("auth-secret", "missing")], Some(None), 1),
            (&[("auth-type", "basic"), ("auth-secret", "other/file")], Some(None), 1),
            (&[("auth-type", "basic"), ("auth-secret", "garbage")], Some(None), 3),
            (&[("auth-type", "basic"), ("auth-secret", "no-auth-key")], Some(None), 1),
            (&[("auth-type", "basic")], Some(None), 1),
            (&[("auth-type", "digest"), ("auth-secret", "file")], Some(None), 1),
            (&[("auth-type", "form"), ("auth-secret", "file")], Some(None), 1),
            (&[("auth-type", "basic"), ("auth-secret", "file"), ("auth-secret-type", "auth-ldap")], Some(None), 1),
        ];
        for (pairs, expected, problem_count) in cases {
            let mut problems = Vec::new();
            let got = from_annotations(&annotations(pairs), "shop", lookup, &mut problems);
            let got = got.map(|auth| match auth {
                BasicAuth::Required { realm, credentials } => Some((realm, credentials.len())),
                BasicAuth::Unavailable => None,
            });
            let expected = expected.map(|e| e.map(|(realm, users)| (realm.to_string(), users)));
            assert_eq!(got, expected, "{pairs:?}");
            assert_eq!(problems.len(), *problem_count, "{pairs:?}: {problems:?}");
            for problem in &problems {
                assert!(!problem.contains("$2y$") && !problem.contains("plain\""), "a problem echoes a secret: {problem}");
            }
        }
    }
}
