//! The address lists (`allowlist-source-range`, `whitelist-source-range`,
//! `denylist-source-range`) through the real binary: Ingresses in the fake
//! API server, requests over real TCP from 127.0.0.1, or with the client
//! address given by a PROXY protocol header or a trusted X-Forwarded-For.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::common;
use crate::common::{get, request, Api, Backend, Ingressd};
use crate::support::wait::wait_until;

/// An Ingress `name` for `NAME.example.com` to Service `blue`, with these
/// `nginx.ingress.kubernetes.io/` annotations.
fn annotated(name: &str, annotations: &[(&str, &str)]) -> Value {
    common::annotated(name, "blue", annotations)
}

fn start(ingresses: Vec<Value>, extra: &[&str]) -> (Api, Backend, Ingressd) {
    common::start_with_blue(ingresses, extra, None)
}

fn status(ingressd: &Ingressd, name: &str) -> u16 {
    get(ingressd.http, "/", &format!("{name}.example.com")).map(|r| r.status).unwrap_or(0)
}

/// A request whose connection starts with `preface` and carries `headers`.
fn status_with(ingressd: &Ingressd, name: &str, preface: &str, headers: &str) -> u16 {
    let raw = format!("{preface}GET / HTTP/1.1\r\nHost: {name}.example.com\r\n{headers}Connection: close\r\n\r\n");
    request(ingressd.http, &raw).map(|r| r.status).unwrap_or(0)
}

#[test]
fn allow_and_deny_lists_answer_403_and_never_reach_the_backend() {
    let (_api, blue, ingressd) = start(
        vec![
            annotated("inside", &[("allowlist-source-range", "10.0.0.0/8, 127.0.0.1")]),
            annotated("outside", &[("allowlist-source-range", "10.0.0.0/8,2001:db8::/32")]),
            annotated("legacy", &[("whitelist-source-range", "192.0.2.0/24")]),
            annotated("denied", &[("denylist-source-range", "127.0.0.0/8")]),
            annotated("elsewhere", &[("denylist-source-range", "10.0.0.0/8")]),
            annotated("both", &[("allowlist-source-range", "127.0.0.0/8"), ("denylist-source-range", "127.0.0.1/32")]),
            annotated("preflight", &[("allowlist-source-range", "10.0.0.0/8"), ("enable-cors", "true"), ("permanent-redirect", "https://x.test/")]),
            annotated("plain", &[]),
        ],
        &[],
    );
    assert_eq!(status(&ingressd, "inside"), 200);
    assert_eq!(status(&ingressd, "elsewhere"), 200);
    assert_eq!(status(&ingressd, "plain"), 200);
    let served = blue.requests.load(Ordering::SeqCst);
    assert_eq!(status(&ingressd, "outside"), 403);
    assert_eq!(status(&ingressd, "legacy"), 403, "whitelist-source-range is the same list");
    assert_eq!(status(&ingressd, "denied"), 403);
    assert_eq!(status(&ingressd, "both"), 403, "deny wins");
    assert_eq!(status(&ingressd, "preflight"), 403, "refused before the redirect");
    let preflight = "OPTIONS / HTTP/1.1\r\nHost: preflight.example.com\r\nOrigin: https://a.test\r\nConnection: close\r\n\r\n";
    assert_eq!(request(ingressd.http, preflight).map(|r| r.status).ok(), Some(403), "and before a CORS preflight");
    assert_eq!(blue.requests.load(Ordering::SeqCst), served, "no refused request reached the backend");
}

#[test]
fn a_bad_list_fails_closed_with_a_metric_until_it_is_fixed() {
    let (api, blue, ingressd) = start(
        vec![
            annotated("typo", &[("allowlist-source-range", "127.0.0.1/33")]),
            annotated("trailing", &[("denylist-source-range", "10.0.0.0/8,")]),
            annotated("plain", &[]),
        ],
        &[],
    );
    assert_eq!(status(&ingressd, "typo"), 403, "a list that would admit 127.0.0.1 if read leniently");
    assert_eq!(status(&ingressd, "trailing"), 403);
    assert_eq!(status(&ingressd, "plain"), 200, "other Ingresses serve");
    assert_eq!(blue.requests.load(Ordering::SeqCst), 1);
    assert_eq!(ingressd.metric(r#"ingressd_ingress_annotations_invalid{annotation="allowlist-source-range"}"#), Some(1.0));
    assert_eq!(ingressd.metric(r#"ingressd_ingress_annotations_invalid{annotation="denylist-source-range"}"#), Some(1.0));

    api.fake.apply(annotated("typo", &[("allowlist-source-range", "127.0.0.1/32")]));
    assert!(wait_until(Duration::from_secs(2), || status(&ingressd, "typo") == 200), "fixed, it serves");
    assert_eq!(ingressd.metric(r#"ingressd_ingress_annotations_invalid{annotation="allowlist-source-range"}"#), None);
}

#[test]
fn the_client_address_comes_from_the_proxy_protocol_header() {
    let (_api, _blue, ingressd) = start(
        vec![
            annotated("office", &[("allowlist-source-range", "203.0.113.0/24, 2001:db8::/32")]),
            annotated("blocked", &[("denylist-source-range", "198.51.100.0/24")]),
        ],
        &["--use-proxy-protocol"],
    );
    let v1 = |client: &str| {
        let family = if client.contains(':') { "TCP6 " } else { "TCP4 " };
        let destination = if client.contains(':') { "::1" } else { "127.0.0.1" };
        format!("PROXY {family}{client} {destination} 4711 80\r\n")
    };
    assert_eq!(status_with(&ingressd, "office", &v1("203.0.113.7"), ""), 200);
    assert_eq!(status_with(&ingressd, "office", &v1("2001:db8::7"), ""), 200);
    assert_eq!(status_with(&ingressd, "office", &v1("198.51.100.1"), ""), 403);
    assert_eq!(status_with(&ingressd, "blocked", &v1("198.51.100.1"), ""), 403);
    assert_eq!(status_with(&ingressd, "blocked", &v1("203.0.113.7"), ""), 200);
    assert_eq!(status_with(&ingressd, "office", "", ""), 0, "no header, no answer");
}

#[test]
fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let office = || vec![annotated("office", &[("allowlist-source-range", "203.0.113.0/24")])];
    let forwarded = "X-Forwarded-For: 203.0.113.7\r\n";
    let (_api, _blue, trusting) = start(office(), &["--trusted-proxies", "127.0.0.1/32"]);
    assert_eq!(status_with(&trusting, "office", "", forwarded), 200);
    assert_eq!(status_with(&trusting, "office", "", "X-Forwarded-For: 198.51.100.1\r\n"), 403);
    assert_eq!(status_with(&trusting, "office", "", "X-Forwarded-For: not-an-address\r\n"), 403, "an unreadable hop fails closed");
    let (_api, _blue, untrusting) = start(office(), &[]);
    assert_eq!(status_with(&untrusting, "office", "", forwarded), 403, "a client cannot claim an address");
}
