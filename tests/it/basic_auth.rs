//! `auth-type: basic` through the real binary: Secrets in the fake API
//! server, real requests, a backend that echoes what it received.

use std::time::Duration;

use serde_json::{json, Value};

use crate::annotations_e2e::echoing_backend;
use crate::common;
use crate::common::{request, service_for, Api, Ingressd};
use crate::support::http::Response;
use crate::support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(10);

/// `htpasswd -nbB -C 4 alice secret1`, `htpasswd -nbm bob secret2`,
/// `htpasswd -nbs carol secret3`, `openssl passwd -1 -salt abc password`.
const HTPASSWD: &str = "\
alice:$2y$04$o2P9Du.ks7G/TXJuQGbFbew9S/KvYiGKkD9IDaQ3qzXoYlgEEhEny
bob:$apr1$qGqYkezf$jZBKz0HpSDf4vAQWYU7kQ.
carol:{SHA}QY7lFvHLCVxQ/y8Qp2GSiJwoHzo=
dave:$1$abc$BXBqpb9BZcZhXLgbee.0s/
";

fn base64(bytes: &[u8]) -> String {
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

fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| (k.to_string(), json!(base64(v.as_bytes())))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": namespace}, "data": data})
}

/// An Ingress `name` in namespace `web` for `NAME.example.com` to the echo
/// Service, with these `nginx.ingress.kubernetes.io/` annotations.
fn protected(name: &str, annotations: &[(&str, &str)]) -> Value {
    common::annotated(name, "echo", annotations)
}

fn start(objects: Vec<Value>) -> (Api, Ingressd) {
    let api = Api::start();
    for object in service_for("web", "echo", echoing_backend()).into_iter().chain(objects) {
        api.fake.create(object);
    }
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(WAIT));
    (api, ingressd)
}

fn get_as(ingressd: &Ingressd, host: &str, credentials: Option<&str>) -> Response {
    let authorization = credentials.map(|c| format!("Authorization: Basic {}\r\n", base64(c.as_bytes()))).unwrap_or_default();
    let raw = format!("GET /private HTTP/1.1\r\nHost: {host}\r\n{authorization}Connection: close\r\n\r\n");
    request(ingressd.http, &raw).expect("an answer")
}

#[test]
fn each_hash_type_lets_its_password_in_and_nothing_else() {
    let (_api, ingressd) = start(vec![
        secret("web", "users", &[("auth", HTPASSWD)]),
        protected("file", &[("auth-type", "basic"), ("auth-secret", "users"), ("auth-realm", "Staff only")]),
        secret("web", "map", &[("erin", "$apr1$qGqYkezf$jZBKz0HpSDf4vAQWYU7kQ.")]),
        protected("map", &[("auth-type", "basic"), ("auth-secret", "web/map"), ("auth-secret-type", "auth-map")]),
    ]);
    // The named Secret arrives by its own watch, after readiness.
    assert!(wait_until(WAIT, || get_as(&ingressd, "file.example.com", None).status == 401));
    let challenge = get_as(&ingressd, "file.example.com", None);
    assert_eq!(challenge.header("www-authenticate"), Some("Basic realm=\"Staff only\""));

    for (user, password) in [("alice", "secret1"), ("bob", "secret2"), ("carol", "secret3"), ("dave", "password")] {
        let ok = get_as(&ingressd, "file.example.com", Some(&format!("{user}:{password}")));
        assert_eq!(ok.status, 200, "{user}");
        let seen = ok.text().to_ascii_lowercase();
        assert!(seen.starts_with("get /private"), "the backend answered: {seen}");
        assert!(!seen.contains("authorization"), "the consumed credential is not forwarded: {seen}");
        for wrong in [format!("{user}:wrong"), format!("{user}:{password}x"), format!("{user}:"), format!("nobody:{password}")] {
            assert_eq!(get_as(&ingressd, "file.example.com", Some(&wrong)).status, 401, "{wrong}");
        }
    }
    // A second success of bcrypt comes from the cache; a wrong password still fails after it.
    assert_eq!(get_as(&ingressd, "file.example.com", Some("alice:secret1")).status, 200);
    assert_eq!(get_as(&ingressd, "file.example.com", Some("alice:secret2")).status, 401);

    assert!(wait_until(WAIT, || get_as(&ingressd, "map.example.com", Some("erin:secret2")).status == 200));
    assert_eq!(get_as(&ingressd, "map.example.com", Some("erin:secret3")).status, 401);
    assert_eq!(get_as(&ingressd, "map.example.com", None).header("www-authenticate"), Some("Basic realm=\"\""));
}

#[test]
fn auth_that_cannot_be_set_up_answers_503_never_200() {
    let (api, ingressd) = start(vec![
        protected("missing", &[("auth-type", "basic"), ("auth-secret", "nowhere")]),
        secret("web", "garbage", &[("auth", "just some text\nalice:plaintext\n")]),
        protected("malformed", &[("auth-type", "basic"), ("auth-secret", "garbage")]),
        secret("other", "users", &[("auth", HTPASSWD)]),
        protected("foreign", &[("auth-type", "basic"), ("auth-secret", "other/users")]),
        protected("digest", &[("auth-type", "digest"), ("auth-secret", "garbage")]),
        secret("web", "no-key", &[("htpasswd", HTPASSWD)]),
        protected("nokey", &[("auth-type", "basic"), ("auth-secret", "no-key")]),
    ]);
    for host in ["missing", "malformed", "foreign", "digest", "nokey"] {
        let host = format!("{host}.example.com");
        for credentials in [None, Some("alice:secret1"), Some("alice:plaintext")] {
            assert_eq!(get_as(&ingressd, &host, credentials).status, 503, "{host} {credentials:?}");
        }
    }
    // The Secret appears: the path starts asking for passwords.
    api.fake.create(secret("web", "nowhere", &[("auth", HTPASSWD)]));
    assert!(wait_until(WAIT, || get_as(&ingressd, "missing.example.com", Some("bob:secret2")).status == 200));
    assert_eq!(get_as(&ingressd, "missing.example.com", None).status, 401);
    // And it goes bad again: 503, not open.
    api.fake.apply(secret("web", "nowhere", &[("auth", "broken")]));
    assert!(wait_until(WAIT, || get_as(&ingressd, "missing.example.com", Some("bob:secret2")).status == 503));
}
