//! Responses the proxy cannot complete end the client connection at once,
//! not at the server's idle timeout.

use crate::proxy_support;
use crate::support;

use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use proxy_support::*;
use support::http::*;

/// Far above every bound asserted here: a close by the idle timeout fails.
fn patient_limits() -> tiny_http::Limits {
    tiny_http::Limits { idle_timeout: Duration::from_secs(30), ..test_limits() }
}

#[test]
fn an_upstream_failing_mid_body_cuts_the_client_at_once() {
    let backend = Backend::start(Arc::new(|_, out| {
        respond_sized(out, 200, &[], 1000, &[b'x'; 500]);
        let _ = out.shutdown(Shutdown::Both);
    }));
    let proxy = start_proxy_with_limits(snapshot(&[rule("cut.test", "/", &[backend.port()])]), test_config(), patient_limits());
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET /half HTTP/1.1\r\nHost: cut.test\r\n\r\n");
    let (line, headers) = read_head(&mut conn).expect("the response head");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    assert_eq!(header(&headers, "content-length"), Some("1000"));
    let (body, took) = read_until_closed(&mut conn).unwrap_or_else(|err| panic!("no close within {IO_TIMEOUT:?}: {err}"));
    assert_eq!(body.len(), 500, "the bytes the upstream sent, and no clean end");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
}

#[test]
fn a_chunked_upstream_failing_mid_body_cuts_the_client_at_once() {
    let backend = Backend::start(Arc::new(|_, out| {
        use std::io::Write;
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
        let _ = out.shutdown(Shutdown::Both);
    }));
    let proxy = start_proxy_with_limits(snapshot(&[rule("cut.test", "/", &[backend.port()])]), test_config(), patient_limits());
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET /chunks HTTP/1.1\r\nHost: cut.test\r\n\r\n");
    let (line, _) = read_head(&mut conn).expect("the response head");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let (body, took) = read_until_closed(&mut conn).unwrap_or_else(|err| panic!("no close within {IO_TIMEOUT:?}: {err}"));
    assert!(!body.ends_with(b"0\r\n\r\n"), "no last chunk after a failure: {body:?}");
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
}
