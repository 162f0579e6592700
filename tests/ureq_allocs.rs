//! Allocations of one keep-alive GET through the proxy's ureq Agent (the
//! vendored ureq's patches): the call's timings, the shared clock, the
//! shutdown registration, the pool lookup and the request's and response's
//! extensions and a short Content-Type's parts allocate nothing per request,
//! and an endpoint address is resolved without a `host:port` string. What the
//! patches moved still works where it is used (a middleware finds its agent,
//! a response its URI, mime type and charset). A counting global allocator is
//! only possible in its own test binary.

mod counting_alloc;
mod alloc_rig;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ureq::middleware::MiddlewareNext;
use ureq::{RequestExt, ResponseExt, SendBody};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// Allocations per GET before the patches: 30 (timings 3, shutdown
/// registration 1, pool key 2, resolver 2, request extensions 3, response
/// extensions 3, the mime type 1 among them); after: 11. The rest are the
/// request and response header maps and values and the response's body
/// handler. ureq-proto's call state is boxed (its change 5: one allocation
/// that saves copying the state at every state change), and a short
/// response head's shared copy is one allocation, not two (its change 6).
const MOST_PER_GET: usize = 11;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";

#[test]
fn a_pooled_get_allocates_little() {
    let port = alloc_rig::backend(OK);
    let agent = ingressd::proxy::upstream::agent(&alloc_rig::proxy_config(0));
    let uri = format!("http://127.0.0.1:{port}/x");
    let mut buffer = [0u8; 64];
    let mut get = || {
        let request = ureq::http::Request::builder().method("GET").uri(uri.as_str()).header("host", "t.test").body(()).unwrap();
        let response = agent.run(request).unwrap();
        let mut body = response.into_body().into_reader();
        while body.read(&mut buffer).unwrap() > 0 {}
    };
    get();
    // The harness's threads may allocate meanwhile: the fewest of several runs counts.
    const GETS: usize = 50;
    let per_get = (0..10)
        .map(|_| {
            let before = counting_alloc::allocations();
            for _ in 0..GETS {
                get();
            }
            (counting_alloc::allocations() - before) / GETS
        })
        .min()
        .unwrap();
    assert!(per_get <= MOST_PER_GET, "{per_get} allocations per pooled GET (at most {MOST_PER_GET})");
}

/// The agent goes on the request only for an agent with middleware, where
/// `middleware_config` still finds it.
#[test]
fn a_middleware_still_finds_its_agent() {
    let port = alloc_rig::backend(OK);
    let found = Arc::new(AtomicBool::new(false));
    let seen = found.clone();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .middleware(move |request: ureq::http::Request<SendBody>, next: MiddlewareNext| {
            let request = match request.middleware_config() {
                Some(config) => {
                    seen.store(true, Ordering::SeqCst);
                    config.build()
                }
                None => return Err(ureq::Error::BadUri("the agent is not on the request".into())),
            };
            next.handle(request)
        })
        .build()
        .into();
    let uri = format!("http://127.0.0.1:{port}/x");
    let mut response = agent.get(&uri).call().unwrap();
    assert_eq!(response.get_uri(), uri.as_str(), "the URI is also an extension, for a middleware that swaps the body");
    assert_eq!(response.body_mut().read_to_string().unwrap(), "ok");
    assert!(found.load(Ordering::SeqCst));
}

/// The response's URI is kept with its body instead of in its extensions.
#[test]
fn a_response_knows_its_uri() {
    let port = alloc_rig::backend(OK);
    let agent = ingressd::proxy::upstream::agent(&alloc_rig::proxy_config(0));
    let uri = format!("http://127.0.0.1:{port}/a?b=c");
    let request = ureq::http::Request::builder().uri(uri.as_str()).header("host", "t.test").body(()).unwrap();
    let mut response = agent.run(request).unwrap();
    assert!(response.extensions().is_empty(), "no extension map per response");
    assert_eq!(response.get_uri(), uri.as_str());
    assert_eq!(response.body_mut().read_to_string().unwrap(), "ok");
}

/// Mime type and charset are split out of the Content-Type as before, held
/// inline when short and on the heap when long.
#[test]
fn content_type_parts_short_and_long() {
    const SHORT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain ; format=flowed; charset=ISO-8859-1\r\n\r\nok";
    const LONG: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;charset=x-a-charset-name-longer-than-forty-bytes\r\n\r\nok";
    const NONE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let agent = ingressd::proxy::upstream::agent(&alloc_rig::proxy_config(0));
    let cases: [(&[u8], Option<&str>, Option<&str>); 3] = [
        (SHORT, Some("text/plain "), Some("ISO-8859-1")),
        (LONG, Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), Some("x-a-charset-name-longer-than-forty-bytes")),
        (NONE, None, None),
    ];
    for (answer, mime_type, charset) in cases {
        let port = alloc_rig::backend(answer);
        let request = ureq::http::Request::builder().uri(format!("http://127.0.0.1:{port}/")).body(()).unwrap();
        let mut response = agent.run(request).unwrap();
        assert_eq!(response.body().mime_type(), mime_type);
        assert_eq!(response.body().charset(), charset);
        assert_eq!(response.body_mut().read_to_string().unwrap(), "ok");
    }
}

/// A body whose mime type starts with `text/` (as given, in its case,
/// short or long) is read lossily, any other strictly (ureq change 10: the
/// mime type is looked at once, on its bytes).
#[test]
fn text_bodies_are_read_lossily() {
    let agent = ingressd::proxy::upstream::agent(&alloc_rig::proxy_config(0));
    let long = format!("text/{}", "x".repeat(60));
    for (content_type, lossy) in [
        (Some("text/plain; charset=utf-8"), true),
        (Some(long.as_str()), true),
        (Some("Text/Plain"), false),
        (Some("application/json"), false),
        (Some("text"), false),
        (None, false),
    ] {
        let mut answer = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n".to_vec();
        if let Some(content_type) = content_type {
            answer.extend_from_slice(format!("content-type: {content_type}\r\n").as_bytes());
        }
        answer.extend_from_slice(b"\r\no\xffk");
        let port = alloc_rig::backend(answer);
        let request = ureq::http::Request::builder().uri(format!("http://127.0.0.1:{port}/")).body(()).unwrap();
        let text = agent.run(request).unwrap().into_body().read_to_string();
        match lossy {
            true => assert_eq!(text.unwrap(), "o?k", "{content_type:?}"),
            false => assert!(text.is_err(), "{content_type:?} read as {text:?}"),
        }
    }
}

/// Content-Type parameters are split at each `;` as before (ureq change 12:
/// found with a byte scan): the mime type as given up to the first `;`, the
/// last `charset=` parameter (prefix in lowercase) trimmed of spaces, empty
/// pieces skipped. A Content-Encoding passes through untouched with its
/// headers, as the proxy's ureq has no decoder (change 12: not looked up).
#[test]
fn content_type_parameters_and_encodings_as_before() {
    let agent = ingressd::proxy::upstream::agent(&alloc_rig::proxy_config(0));
    let cases: [(&str, Option<&str>, Option<&str>); 8] = [
        ("text/html", Some("text/html"), None),
        ("text/html;", Some("text/html"), None),
        (";charset=utf-8", Some(""), Some("utf-8")),
        ("a/b; charset=one ;charset=two; x=y", Some("a/b"), Some("two")),
        ("a/b; Charset=one", Some("a/b"), None),
        ("a/b;charset=", Some("a/b"), Some("")),
        ("a/b;;; charset = one", Some("a/b"), None),
        ("", Some(""), None),
    ];
    for (content_type, mime_type, charset) in cases {
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: {content_type}\r\n\r\nok");
        let port = alloc_rig::backend(answer.into_bytes());
        let request = ureq::http::Request::builder().uri(format!("http://127.0.0.1:{port}/")).body(()).unwrap();
        let mut response = agent.run(request).unwrap();
        assert_eq!((response.body().mime_type(), response.body().charset()), (mime_type, charset), "{content_type:?}");
        assert_eq!(response.body_mut().read_to_string().unwrap(), "ok");
    }

    for encoding in ["gzip", "br", "deflate"] {
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-encoding: {encoding}\r\n\r\n\x1f\x08zz");
        let port = alloc_rig::backend(answer.into_bytes());
        let request = ureq::http::Request::builder().uri(format!("http://127.0.0.1:{port}/")).body(()).unwrap();
        let response = agent.run(request).unwrap();
        assert_eq!(response.headers()["content-encoding"], encoding);
        assert_eq!(response.headers()["content-length"], "4");
        assert_eq!(response.body().content_length(), Some(4));
        let mut body = Vec::new();
        response.into_body().into_reader().read_to_end(&mut body).unwrap();
        assert_eq!(body, b"\x1f\x08zz", "{encoding}");
    }
}
