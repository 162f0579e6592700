//! The vendored ureq-proto's changes, through the proxy's ureq Agent against
//! a scripted backend on loopback: response heads become the same header maps
//! as the release built them (change 1: one shared copy of the head instead
//! of one allocation per value), whatever their names' casing, repetition,
//! bytes or number; request heads go out byte for byte as the release wrote
//! them (change 2: copied piece by piece instead of through `core::fmt`);
//! Connection and Transfer-Encoding lists decide reuse and framing as before
//! (change 3: compared on the bytes, only the lines of that name visited);
//! a request's Host, Content-Length, Authorization and Transfer-Encoding are
//! checked and completed as before (change 4: in one pass over its headers);
//! a call goes through every state as before (change 5: its state boxed);
//! heads short and long keep their values (change 6: a short head's copy
//! shares one allocation with its count); request heads go out byte for
//! byte through a small output buffer (change 7: lines copied whole);
//! common response header names in any casing are the standard names
//! (change 8: recognised without `HeaderName::from_bytes`); Content-Length
//! values are taken and refused as before (change 10: digits folded in place);
//! only a request with a body waits for `100 Continue` (change 14: its
//! Expect lines looked up only then); `keep-alive` keeps an HTTP/1.0
//! connection as before (change 15: looked for in HTTP/1.0 responses only);
//! a request's own `Connection: close` closes as before (change 16: found
//! in the pass that checks its headers); header lines go out and come back
//! in order, and frame and close as maps do (ureq-proto change 17 and ureq
//! change 16: `HeaderLines` instead of header maps, for the proxy).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{self, Receiver};
use std::thread;

use ureq::http::{self, HeaderMap, HeaderName, HeaderValue};

use crate::proxy_support::test_config;

/// A backend that answers the requests on each connection with `answers`,
/// in turn, and sends every request it read (head and body) to the receiver.
fn scripted_backend(answers: Vec<Vec<u8>>) -> (u16, Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (requests, received) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (answers, requests) = (answers.clone(), requests.clone());
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                for answer in answers {
                    let Some(request) = read_request(&mut reader) else { return };
                    let _ = requests.send(request);
                    if writer.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, received)
}

/// One request's bytes: its head and a Content-Length or chunked body.
fn read_request(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut content_length = 0;
    let mut chunked = false;
    loop {
        let start = request.len();
        if reader.read_until(b'\n', &mut request).ok()? == 0 {
            return None;
        }
        let line = String::from_utf8_lossy(&request[start..]).to_ascii_lowercase();
        if let Some(value) = line.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap();
        }
        chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
        if line == "\r\n" {
            break;
        }
    }
    if chunked {
        while !request.ends_with(b"\r\n0\r\n\r\n") {
            reader.read_until(b'\n', &mut request).ok()?;
        }
    } else {
        let start = request.len();
        request.resize(start + content_length, 0);
        reader.read_exact(&mut request[start..]).ok()?;
    }
    Some(request)
}

fn agent() -> ureq::Agent {
    ingressd::proxy::upstream::agent(&test_config())
}

fn get(agent: &ureq::Agent, port: u16) -> Result<http::Response<ureq::Body>, ureq::Error> {
    let request = http::Request::get(format!("http://127.0.0.1:{port}/")).header("host", "t.test").body(()).unwrap();
    agent.run(request)
}

fn body(response: http::Response<ureq::Body>) -> String {
    let mut body = String::new();
    response.into_body().into_reader().read_to_string(&mut body).unwrap();
    body
}

/// A response head with `lines` as its header lines and a two-byte body.
fn answer(lines: &[&[u8]]) -> Vec<u8> {
    let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
    for line in lines {
        answer.extend_from_slice(line);
        answer.extend_from_slice(b"\r\n");
    }
    answer.extend_from_slice(b"content-length: 2\r\n\r\nok");
    answer
}

/// The header map `lines` make when each is appended in turn, as the
/// release's `Response::builder().header(..)` did.
fn expected(lines: &[(&str, &[u8])]) -> Vec<(HeaderName, HeaderValue)> {
    let mut map = HeaderMap::new();
    for (name, value) in lines {
        map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap());
    }
    map.append(http::header::CONTENT_LENGTH, HeaderValue::from_static("2"));
    pairs(&map)
}

fn pairs(map: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    map.iter().map(|(name, value)| (name.clone(), value.clone())).collect()
}

/// Repeated names in any casing keep every value in order; names are
/// lower-cased, values kept byte for byte: obs-text, tabs, inner spaces,
/// empty values, a value that ends the head.
#[test]
fn response_headers_keep_repeats_casing_and_bytes() {
    let lines: [(&str, &[u8]); 9] = [
        ("Set-Cookie", b"a=1; Path=/"),
        ("X-MiXeD-CaSe", b"Value  With\tInner Spaces"),
        ("set-cookie", b"b=2"),
        ("X-Obs-Text", b"caf\xe9 \x80\xff"),
        ("X-Empty", b""),
        ("SET-COOKIE", b"c=3"),
        ("Connection", b"keep-alive"),
        ("x-empty", b""),
        ("X-Last", b"z"),
    ];
    let raw: Vec<Vec<u8>> = lines.iter().map(|(name, value)| [name.as_bytes(), b": ", value].concat()).collect();
    let raw: Vec<&[u8]> = raw.iter().map(Vec::as_slice).collect();
    let (port, _) = scripted_backend(vec![answer(&raw)]);
    let response = get(&agent(), port).unwrap();
    let headers = response.headers();
    assert_eq!(pairs(headers), expected(&lines));
    let cookies: Vec<&[u8]> = headers.get_all("set-cookie").iter().map(HeaderValue::as_bytes).collect();
    assert_eq!(cookies, [&b"a=1; Path=/"[..], b"b=2", b"c=3"]);
    assert_eq!(headers["x-mixed-case"], "Value  With\tInner Spaces");
    assert_eq!(headers["x-obs-text"].as_bytes(), b"caf\xe9 \x80\xff");
    assert_eq!(headers.get_all("x-empty").iter().count(), 2);
    assert_eq!(headers["x-last"], "z");
    assert_eq!(body(response), "ok");
}

/// Up to the release's limit of 128 response headers every one arrives;
/// one more is an error, not a truncated map.
#[test]
fn response_with_many_headers() {
    let lines = |count: usize| -> Vec<Vec<u8>> {
        (1..count).map(|i| format!("X-Header-{i}: {}", "v".repeat(i % 40)).into_bytes()).collect()
    };
    let at_limit = lines(128);
    let at_limit: Vec<&[u8]> = at_limit.iter().map(Vec::as_slice).collect();
    let (port, _) = scripted_backend(vec![answer(&at_limit)]);
    let response = get(&agent(), port).unwrap();
    assert_eq!(response.headers().len(), 128, "127 and content-length");
    for i in 1..128 {
        assert_eq!(response.headers()[format!("x-header-{i}").as_str()], "v".repeat(i % 40).as_str());
    }
    assert_eq!(body(response), "ok");

    let over = lines(129);
    let over: Vec<&[u8]> = over.iter().map(Vec::as_slice).collect();
    let (port, _) = scripted_backend(vec![answer(&over)]);
    assert!(get(&agent(), port).is_err(), "129 headers are refused");
}

/// Header values do not borrow the connection's buffer: a response's headers
/// stay as they were while the same pooled connection reads the next one.
#[test]
fn response_headers_outlive_the_next_response_on_the_connection() {
    let first = answer(&[b"X-Value: first-answer", b"Set-Cookie: one"]);
    let second = answer(&[b"X-Value: other-answer", b"Set-Cookie: two"]);
    let (port, _) = scripted_backend(vec![first, second]);
    let agent = agent();
    let response = get(&agent, port).unwrap();
    let (parts, first_body) = response.into_parts();
    let mut first_body = first_body.into_reader();
    let mut ok = String::new();
    first_body.read_to_string(&mut ok).unwrap();
    drop(first_body);
    let next = get(&agent, port).unwrap();
    // A new connection would have been answered with the first answer again.
    assert_eq!(next.headers()["x-value"], "other-answer", "the pooled connection was reused");
    assert_eq!(body(next), "ok");
    assert_eq!(parts.headers["x-value"], "first-answer");
    assert_eq!(parts.headers["set-cookie"], "one");
}

/// Request heads byte for byte: the request line with any method and
/// version, a query-only target given its leading slash, headers in order
/// with repeats and obs-text values, and the headers ureq adds (Host when
/// there is none, the body's framing) in front of the caller's.
#[test]
fn request_heads_are_written_byte_exact() {
    let (port, requests) = scripted_backend(vec![answer(&[]); 8]);
    let agent = agent();
    let base = format!("http://127.0.0.1:{port}");

    let get = http::Request::get(format!("{base}/a/b?c=d&e"))
        .header("host", "t.test")
        .header("X-One", "1")
        .header("x-rep", "a")
        .header("X-Rep", "b")
        .header("x-obs", HeaderValue::from_bytes(b"caf\xe9 \xff").unwrap())
        .body(ureq::SendBody::none())
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sent(&agent, &requests, get)),
        String::from_utf8_lossy(b"GET /a/b?c=d&e HTTP/1.1\r\nhost: t.test\r\nx-one: 1\r\nx-rep: a\r\nx-rep: b\r\nx-obs: caf\xe9 \xff\r\n\r\n")
    );

    let purge = http::Request::builder().method("PURGE").uri(format!("{base}?only=query")).header("host", "t.test").body(ureq::SendBody::none()).unwrap();
    assert_eq!(sent(&agent, &requests, purge), b"PURGE /?only=query HTTP/1.1\r\nhost: t.test\r\n\r\n");

    let mut hello: &[u8] = b"hello";
    let sized = http::Request::post(format!("{base}/p")).header("host", "t.test").header("content-length", "5").body(ureq::SendBody::from_reader(&mut hello)).unwrap();
    assert_eq!(sent(&agent, &requests, sized), b"POST /p HTTP/1.1\r\nhost: t.test\r\ncontent-length: 5\r\n\r\nhello");

    let mut hello: &[u8] = b"hello";
    let chunked = http::Request::post(format!("{base}/c")).header("host", "t.test").body(ureq::SendBody::from_reader(&mut hello)).unwrap();
    assert_eq!(sent(&agent, &requests, chunked), b"POST /c HTTP/1.1\r\ntransfer-encoding: chunked\r\nhost: t.test\r\n\r\n5\r\nhello\r\n0\r\n\r\n");

    let http10 = http::Request::get(format!("{base}/old")).version(http::Version::HTTP_10).body(ureq::SendBody::none()).unwrap();
    assert_eq!(sent(&agent, &requests, http10), format!("GET /old HTTP/1.0\r\nhost: 127.0.0.1:{port}\r\n\r\n").into_bytes());
}

/// What the backend read of `request`, answered "ok".
fn sent(agent: &ureq::Agent, requests: &Receiver<Vec<u8>>, request: http::Request<ureq::SendBody<'_>>) -> Vec<u8> {
    assert_eq!(body(agent.run(request).unwrap()), "ok");
    requests.recv_timeout(std::time::Duration::from_secs(5)).unwrap()
}

/// Whether a second request reuses the connection that carried the answer
/// `status_line` + `lines` (a new connection is answered "first" again).
fn reused_after(status_line: &str, lines: &[&[u8]], body: &[u8]) -> bool {
    let answer = |which: &str| {
        let mut answer = format!("{status_line}\r\nx-which: {which}\r\n").into_bytes();
        for line in lines {
            answer.extend_from_slice(line);
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"\r\n");
        answer.extend_from_slice(body);
        answer
    };
    let (port, _) = scripted_backend(vec![answer("first"), answer("second")]);
    let agent = agent();
    let first = get(&agent, port).unwrap();
    assert_eq!(first.headers()["x-which"], "first");
    assert_eq!(self::body(first), "ok");
    let second = get(&agent, port).unwrap();
    let reused = second.headers()["x-which"] == "second";
    assert_eq!(self::body(second), "ok");
    reused
}

/// Connection options in any case, in lists and repeated lines, close a
/// connection; a look-alike or a value with obs-text does not (the release
/// skipped values that are not visible ASCII); HTTP/1.0 closes unless it
/// says keep-alive.
#[test]
fn response_connection_options_decide_reuse() {
    const SIZED: &[u8] = b"ok";
    let cases: [(&str, &[&[u8]], bool); 8] = [
        ("HTTP/1.1 200 OK", &[b"content-length: 2"], true),
        ("HTTP/1.1 200 OK", &[b"content-length: 2", b"Connection: Keep-Alive, CLOSE"], false),
        ("HTTP/1.1 200 OK", &[b"content-length: 2", b"connection: keep-alive", b"Connection:  close\t"], false),
        ("HTTP/1.1 200 OK", &[b"content-length: 2", b"Connection: closed, keep-alive-ish"], true),
        ("HTTP/1.1 200 OK", &[b"content-length: 2", b"Connection: close, caf\xe9"], true),
        ("HTTP/1.0 200 OK", &[b"content-length: 2"], false),
        ("HTTP/1.0 200 OK", &[b"content-length: 2", b"Connection: Keep-Alive"], true),
        ("HTTP/1.0 200 OK", &[b"content-length: 2", b"Connection: upgrade,keep-alive"], true),
    ];
    for (status_line, lines, reused) in cases {
        assert_eq!(reused_after(status_line, lines, SIZED), reused, "{status_line} {lines:?}");
    }
}

/// `chunked` anywhere in a Transfer-Encoding list, in any case, frames the
/// body as chunks (a close-delimited body would end the connection).
#[test]
fn response_chunked_in_a_transfer_encoding_list() {
    const CHUNKED: &[u8] = b"2\r\nok\r\n0\r\n\r\n";
    assert!(reused_after("HTTP/1.1 200 OK", &[b"Transfer-Encoding: gzip, ChUnKeD"], CHUNKED));
    assert!(reused_after("HTTP/1.1 200 OK", &[b"transfer-encoding: gzip", b"Transfer-Encoding: chunked"], CHUNKED));
}

/// A request's own `Connection: close` closes its connection after the answer.
#[test]
fn request_connection_close_is_honoured() {
    let (port, _) = scripted_backend(vec![answer(&[b"x-which: first"]), answer(&[b"x-which: second"])]);
    let agent = agent();
    let closing = http::Request::get(format!("http://127.0.0.1:{port}/")).header("host", "t.test").header("connection", "Keep-Alive, Close").body(()).unwrap();
    assert_eq!(body(agent.run(closing).unwrap()), "ok");
    let next = get(&agent, port).unwrap();
    assert_eq!(next.headers()["x-which"], "first", "a new connection");
    assert_eq!(body(next), "ok");
}

/// What the checks before sending see in one pass: a second Host or
/// Content-Length, a Host or Authorization that is not visible ASCII, or a
/// Content-Length list refuse the request before anything is sent; the
/// userinfo's Basic credentials are added only without an Authorization of
/// the caller's; `chunked` in a Transfer-Encoding list frames the body.
#[test]
fn request_headers_are_checked_and_completed_as_before() {
    let (port, requests) = scripted_backend(vec![answer(&[]); 8]);
    let agent = agent();
    let base = format!("http://127.0.0.1:{port}");
    let with = |lines: &[(&str, &[u8])]| {
        let mut request = http::Request::post(format!("{base}/r"));
        for (name, value) in lines {
            request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
        }
        request.body(ureq::SendBody::none()).unwrap()
    };
    let refused: [&[(&str, &[u8])]; 5] = [
        &[("host", b"a.test"), ("Host", b"b.test")],
        &[("host", b"a.test"), ("content-length", b"0"), ("Content-Length", b"0")],
        &[("host", b"caf\xe9.test")],
        &[("host", b"a.test"), ("authorization", b"Basic \xff")],
        &[("host", b"a.test"), ("content-length", b"5, 5")],
    ];
    for lines in refused {
        assert!(agent.run(with(lines)).is_err(), "{lines:?}");
    }
    assert!(requests.try_recv().is_err(), "a refused request reached the backend");

    let userinfo = http::Request::get(format!("http://u:p@127.0.0.1:{port}/")).header("host", "t.test").body(ureq::SendBody::none()).unwrap();
    assert_eq!(sent(&agent, &requests, userinfo), b"GET / HTTP/1.1\r\nauthorization: Basic dTpw\r\nhost: t.test\r\n\r\n");
    let own = http::Request::get(format!("http://u:p@127.0.0.1:{port}/")).header("authorization", "Bearer x").header("host", "t.test").body(ureq::SendBody::none()).unwrap();
    assert_eq!(sent(&agent, &requests, own), b"GET / HTTP/1.1\r\nauthorization: Bearer x\r\nhost: t.test\r\n\r\n");
    // The userinfo ends at the authority's last `@` (change 13: found with a byte scan).
    for (userinfo, basic) in [("user", "dXNlcjo="), ("a%40b:c%3Ad", "YSU0MGI6YyUzQWQ=")] {
        let request = http::Request::get(format!("http://{userinfo}@127.0.0.1:{port}/")).header("host", "t.test").body(ureq::SendBody::none()).unwrap();
        let expected = format!("GET / HTTP/1.1\r\nauthorization: Basic {basic}\r\nhost: t.test\r\n\r\n");
        assert_eq!(String::from_utf8(sent(&agent, &requests, request)).unwrap(), expected);
    }

    let mut hello: &[u8] = b"hello";
    let listed = http::Request::post(format!("{base}/t")).header("host", "t.test").header("transfer-encoding", "gzip, chunked").body(ureq::SendBody::from_reader(&mut hello)).unwrap();
    assert_eq!(sent(&agent, &requests, listed), b"POST /t HTTP/1.1\r\nhost: t.test\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
}

/// A call through its states with its state boxed: a POST's body sent, a
/// 303 followed by a GET (the redirect state builds the next call from the
/// last), a chunked body read to its end, the connection back in the pool
/// for the next call.
#[test]
fn a_call_goes_through_every_state() {
    let redirect = b"HTTP/1.1 303 See Other\r\nlocation: /next\r\ncontent-length: 0\r\n\r\n".to_vec();
    let chunked = b"HTTP/1.1 200 OK\r\nx-which: chunked\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec();
    let (port, requests) = scripted_backend(vec![redirect, chunked, answer(&[b"x-which: pooled"])]);
    let agent: ureq::Agent = ureq::Agent::config_builder().user_agent(ureq::config::AutoHeaderValue::None).accept(ureq::config::AutoHeaderValue::None).build().into();
    let response = agent.post(format!("http://127.0.0.1:{port}/form")).send("a=1").unwrap();
    assert_eq!(response.headers()["x-which"], "chunked");
    assert_eq!(body(response), "ok");
    let next = agent.get(format!("http://127.0.0.1:{port}/")).call().unwrap();
    assert_eq!(next.headers()["x-which"], "pooled", "the connection went back to the pool");
    assert_eq!(body(next), "ok");
    let heads: Vec<String> = (0..3).map(|_| String::from_utf8(requests.recv_timeout(std::time::Duration::from_secs(5)).unwrap()).unwrap()).collect();
    assert_eq!(
        heads,
        [
            format!("POST /form HTTP/1.1\r\ncontent-length: 3\r\nhost: 127.0.0.1:{port}\r\n\r\na=1"),
            format!("GET /next HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"),
        ]
    );
}

/// Heads around the sizes of the inline copies (change 11: 240, 496 and
/// 1008 bytes), the shortest and far past the largest keep every value,
/// the first and the last line.
#[test]
fn heads_short_and_long_keep_their_values() {
    // The status line, "x-pad: ", "x-last: z", content-length and the blank
    // line around a padding value.
    const FRAME: usize = 17 + 9 + 11 + 19 + 2;
    for head_len in (FRAME + 1..FRAME + 4).chain(230..250).chain(486..506).chain(990..1030).chain([4096, 20_000]) {
        let pad: Vec<u8> = (0..head_len - FRAME).map(|i| b'a' + (i % 26) as u8).collect();
        let pad_line = [&b"x-pad: "[..], &pad].concat();
        let (port, _) = scripted_backend(vec![answer(&[&pad_line, b"x-last: z"])]);
        let response = get(&agent(), port).unwrap();
        assert_eq!(response.headers()["x-pad"].as_bytes(), pad, "a {head_len}-byte head");
        assert_eq!(response.headers()["x-last"], "z", "a {head_len}-byte head");
        assert_eq!(response.headers()["content-length"], "2");
        assert_eq!(body(response), "ok");
    }
}

/// The headers ureq adds (vendored ureq, change 9: each looked for only
/// where the answer matters): User-Agent, Accept and Accept-Encoding when
/// configured and the caller set none, never over the caller's, never when
/// configured off (the proxy's Agent); a body's framing only for a body
/// whose headers do not frame it.
#[test]
fn added_request_headers_follow_configuration_and_caller() {
    let (port, requests) = scripted_backend(vec![answer(&[]); 8]);
    let base = format!("http://127.0.0.1:{port}");
    let defaults = ureq::Agent::new_with_defaults();
    let gzip = ureq::Agent::new_with_config(ureq::Agent::config_builder().accept_encoding("gzip").build());
    let proxy = agent();
    let get = |headers: &[(&str, &str)]| {
        let mut request = http::Request::get(format!("{base}/")).header("host", "t.test");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(ureq::SendBody::none()).unwrap()
    };
    let text = |agent: &ureq::Agent, request| String::from_utf8(sent(agent, &requests, request)).unwrap();

    assert_eq!(text(&defaults, get(&[])), "GET / HTTP/1.1\r\nuser-agent: ureq/3.5.2\r\naccept: */*\r\nhost: t.test\r\n\r\n");
    assert_eq!(
        text(&defaults, get(&[("User-Agent", "mine"), ("accept", "text/plain")])),
        "GET / HTTP/1.1\r\nhost: t.test\r\nuser-agent: mine\r\naccept: text/plain\r\n\r\n"
    );
    assert_eq!(text(&gzip, get(&[])), "GET / HTTP/1.1\r\naccept-encoding: gzip\r\nuser-agent: ureq/3.5.2\r\naccept: */*\r\nhost: t.test\r\n\r\n");
    assert_eq!(
        text(&gzip, get(&[("accept-encoding", "identity")])),
        "GET / HTTP/1.1\r\nuser-agent: ureq/3.5.2\r\naccept: */*\r\nhost: t.test\r\naccept-encoding: identity\r\n\r\n"
    );
    assert_eq!(text(&proxy, get(&[("user-agent", "client"), ("accept", "*/*")])), "GET / HTTP/1.1\r\nhost: t.test\r\nuser-agent: client\r\naccept: */*\r\n\r\n");
    assert_eq!(text(&proxy, get(&[("content-length", "0")])), "GET / HTTP/1.1\r\nhost: t.test\r\ncontent-length: 0\r\n\r\n");

    let sized = http::Request::put(format!("{base}/")).header("host", "t.test").body(ureq::SendBody::from_owned_reader(&b"hello"[..])).unwrap();
    assert_eq!(text(&proxy, sized), "PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\nhost: t.test\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    let mut hello: &[u8] = b"hello";
    let framed = http::Request::put(format!("{base}/")).header("host", "t.test").header("content-length", "5").body(ureq::SendBody::from_reader(&mut hello)).unwrap();
    assert_eq!(sent(&proxy, &requests, framed), b"PUT / HTTP/1.1\r\nhost: t.test\r\ncontent-length: 5\r\n\r\nhello");
}

/// A request head written through an output buffer smaller than the head
/// (change 7: each line copied straight into the output if it fits whole)
/// arrives byte for byte over several writes, whether a line fills the
/// buffer to the byte or the head's blank line does not fit beside the
/// last header; a line longer than the buffer fails the call.
#[test]
fn request_heads_through_a_small_output_buffer() {
    let (port, requests) = scripted_backend(vec![answer(&[]); 8]);
    let base = format!("http://127.0.0.1:{port}");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder().output_buffer_size(40).user_agent(ureq::config::AutoHeaderValue::None).accept(ureq::config::AutoHeaderValue::None).build(),
    );
    let request = |path: &str, headers: &[(&str, String)]| {
        let mut request = http::Request::get(format!("{base}{path}"));
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        request.body(ureq::SendBody::none()).unwrap()
    };
    let fill = |line: usize, name: &str| "v".repeat(line - name.len() - 4);

    for (path, headers) in [
        // A request line and header lines of 40 bytes, the buffer's size.
        (format!("/{}", "p".repeat(24)), vec![("host", fill(40, "host")), ("x-forty", fill(40, "x-forty")), ("x-end", fill(36, "x-end"))]),
        // The last line fits, the blank line after it does not.
        ("/".to_string(), vec![("host", "t.test".to_string()), ("x-last", fill(38, "x-last"))]),
        ("/".to_string(), vec![("host", "t.test".to_string()), ("x-a", "1".to_string()), ("x-b", fill(39, "x-b")), ("x-c", "3".to_string())]),
    ] {
        let mut expected = format!("GET {path} HTTP/1.1\r\n");
        for (name, value) in &headers {
            expected.push_str(&format!("{name}: {value}\r\n"));
        }
        expected.push_str("\r\n");
        assert_eq!(String::from_utf8(sent(&agent, &requests, request(&path, &headers))).unwrap(), expected);
    }

    let too_long = request("/", &[("host", "t.test".to_string()), ("x-long", fill(41, "x-long"))]);
    assert!(agent.run(too_long).is_err(), "a 41-byte line went through a 40-byte buffer");
}

/// Response header names that most responses carry, in any casing, become
/// the standard names `HeaderName::from_bytes` makes of them, and names
/// that only look like them (another byte, another length, `_` for `-`)
/// stay names of their own (change 8: common names recognised by length,
/// first letter and an eight-byte compare ignoring case).
#[test]
fn common_response_header_names_in_any_casing() {
    let known = [
        "date", "etag", "vary", "server", "expires", "location", "connection", "set-cookie", "content-type", "accept-ranges",
        "cache-control", "last-modified", "content-encoding",
    ];
    let mut names: Vec<String> = Vec::new();
    for name in known {
        names.push(name.to_string());
        names.push(name.to_ascii_uppercase());
        // Every other letter upper-cased, starting with the first or the second.
        for start in [0, 1] {
            names.push(name.char_indices().map(|(i, c)| if i % 2 == start { c.to_ascii_uppercase() } else { c }).collect());
        }
    }
    names.extend(
        [
            "datf", "Dat3", "xate", "etaG1", "Vary-", "server_", "Serve", "expireS", "locatioN_", "Connectio_", "set_cookie",
            "Content_Type", "content-typf", "accept-rangez", "Cache-Kontrol", "last-modifieD", "content-encodinG",
            "Content_Length", "content-lengtx", "Transfer_Encoding", "transfer-encodinh", "x", "ETag2", "d",
        ]
        .map(String::from),
    );
    let lines: Vec<(&str, Vec<u8>)> = names.iter().enumerate().map(|(i, name)| (name.as_str(), format!("v{i}").into_bytes())).collect();
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for (name, value) in &lines {
        head.extend_from_slice(format!("{name}: ").as_bytes());
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"CONTENT-length: 2\r\n\r\nok");
    let (port, _) = scripted_backend(vec![head]);
    let response = get(&agent(), port).unwrap();
    let lines: Vec<(&str, &[u8])> = lines.iter().map(|(name, value)| (*name, value.as_slice())).collect();
    assert_eq!(pairs(response.headers()), expected(&lines));
    assert_eq!(response.headers().get_all(http::header::DATE).iter().count(), 4);
    assert_eq!(body(response), "ok");
}

/// Content-Length values are read as before (change 10: the digits folded
/// in place instead of a UTF-8 check and `u64::from_str`): digits with
/// optional spaces and tabs around them, leading zeros, up to `u64::MAX`,
/// and lists of one repeated value; a sign, another character, an empty
/// value, a number past `u64::MAX` or two different values fail the call.
#[test]
fn response_content_length_values() {
    let head = |value: &str| format!("HTTP/1.1 200 OK\r\ncontent-length: {value}\r\n\r\n").into_bytes();
    // A zero length is no body, which has no length.
    for (value, length) in [("2", Some(2)), (" \t2\t ", Some(2)), ("0002", Some(2)), ("0", None), ("2, 2", Some(2)), ("18446744073709551615", Some(u64::MAX))] {
        let mut answer = head(value);
        answer.extend_from_slice(b"ok");
        let (port, _) = scripted_backend(vec![answer]);
        let response = get(&agent(), port).unwrap_or_else(|err| panic!("{value:?}: {err}"));
        assert_eq!(response.body().content_length(), length, "{value:?}");
    }
    for value in ["+2", "-2", "2 2", "", "0x2", "2a", "\u{663}", "18446744073709551616", "99999999999999999999", "2, 3"] {
        let mut answer = head(value);
        answer.extend_from_slice(b"ok");
        let (port, _) = scripted_backend(vec![answer]);
        assert!(get(&agent(), port).is_err(), "{value:?} was taken");
    }
}

/// A redirection follows its last Location (change 12: looked up for a
/// redirection only), whatever the status's kind; a 304 or a success that
/// carries a Location is the answer itself.
#[test]
fn redirects_follow_the_last_location() {
    let agent = ureq::Agent::new_with_defaults();
    let path = |request: &[u8]| String::from_utf8_lossy(request).split(' ').nth(1).unwrap_or_default().to_string();
    for status in ["301 Moved Permanently", "302 Found", "303 See Other", "307 Temporary Redirect", "308 Permanent Redirect"] {
        let redirect = format!("HTTP/1.1 {status}\r\nlocation: /first\r\nx-a: b\r\nLocation: /second\r\ncontent-length: 0\r\n\r\n").into_bytes();
        let (port, requests) = scripted_backend(vec![redirect, answer(&[])]);
        let response = agent.run(http::Request::get(format!("http://127.0.0.1:{port}/start")).body(()).unwrap()).unwrap();
        assert_eq!(response.status(), 200, "{status}");
        assert_eq!(body(response), "ok");
        let paths: Vec<String> = requests.try_iter().map(|request| path(&request)).collect();
        assert_eq!(paths, ["/start", "/second"], "{status}");
    }
    for status in ["304 Not Modified", "200 OK", "201 Created"] {
        let head = format!("HTTP/1.1 {status}\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n").into_bytes();
        let (port, requests) = scripted_backend(vec![head]);
        let response = agent.run(http::Request::get(format!("http://127.0.0.1:{port}/start")).body(()).unwrap()).unwrap();
        assert_eq!(response.status().as_u16(), status[..3].parse::<u16>().unwrap());
        assert_eq!(response.headers()["location"], "/elsewhere");
        assert_eq!(requests.try_iter().count(), 1, "{status}");
    }
}

/// A request waits for `100 Continue` (here its whole await-100 budget, as
/// the backend sends none) only when its own Expect lines hold
/// `100-continue` and it sends a body (change 14: the Expect lines are
/// looked up only then, not for every call); the request arrives whole
/// either way.
#[test]
fn only_a_request_with_a_body_waits_for_100_continue() {
    use std::time::{Duration, Instant};
    const WAIT: Duration = Duration::from_millis(1500);
    let (port, requests) = scripted_backend(vec![answer(&[]); 8]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .user_agent(ureq::config::AutoHeaderValue::None)
        .accept(ureq::config::AutoHeaderValue::None)
        .timeout_await_100(Some(WAIT))
        .build()
        .into();
    let uri = format!("http://127.0.0.1:{port}/");
    let waited = |method: &str, expect: Option<&str>, body: &'static [u8]| {
        let mut request = http::Request::builder().method(method).uri(uri.as_str()).header("host", "t.test");
        if let Some(expect) = expect {
            request = request.header("expect", expect);
        }
        let mut reader = body;
        let start = Instant::now();
        let head = if body.is_empty() {
            sent(&agent, &requests, request.body(ureq::SendBody::none()).unwrap())
        } else {
            sent(&agent, &requests, request.body(ureq::SendBody::from_reader(&mut reader)).unwrap())
        };
        (start.elapsed() >= WAIT, String::from_utf8(head).unwrap())
    };

    let expect = |value: &str| format!("expect: {value}\r\n");
    for value in ["100-continue", "100-Continue", "foo, 100-continue"] {
        assert_eq!(
            waited("POST", Some(value), b"abcd"),
            (true, format!("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nhost: t.test\r\n{}\r\n4\r\nabcd\r\n0\r\n\r\n", expect(value))),
            "{value}"
        );
    }
    assert_eq!(
        waited("POST", None, b"abcd"),
        (false, "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nhost: t.test\r\n\r\n4\r\nabcd\r\n0\r\n\r\n".to_string())
    );
    assert!(!waited("POST", Some("200-ok"), b"abcd").0);
    assert_eq!(waited("GET", Some("100-continue"), b""), (false, format!("GET / HTTP/1.1\r\nhost: t.test\r\n{}\r\n", expect("100-continue"))));
}

/// `keep-alive` keeps an HTTP/1.0 connection, on any of its Connection
/// lines, in any case, unless `close` is there too; an HTTP/1.1 response
/// keeps its connection whatever else its lines hold (change 15: only an
/// HTTP/1.0 response looks for `keep-alive`).
#[test]
fn keep_alive_is_read_for_http10_only() {
    const SIZED: &[u8] = b"ok";
    let cases: [(&str, &[&[u8]], bool); 7] = [
        ("HTTP/1.0 200 OK", &[b"content-length: 2", b"connection: foo", b"Connection: KEEP-ALIVE"], true),
        ("HTTP/1.0 200 OK", &[b"content-length: 2", b"Connection: keep-alive, close"], false),
        ("HTTP/1.0 200 OK", &[b"content-length: 2", b"Connection: keep-alive", b"connection: Close"], false),
        ("HTTP/1.0 200 OK", &[b"content-length: 2", b"Connection: keep-alive\xe9"], false),
        ("HTTP/1.1 200 OK", &[b"content-length: 2", b"Connection: keep-alive"], true),
        ("HTTP/1.1 200 OK", &[b"content-length: 2", b"Connection: Keep-Alive, upgrade"], true),
        ("HTTP/1.1 200 OK", &[b"content-length: 2", b"Connection: keep-alive, Close"], false),
    ];
    for (status_line, lines, reused) in cases {
        assert_eq!(reused_after(status_line, lines, SIZED), reused, "{status_line} {lines:?}");
    }
}

/// A request's own `close`, on any of its Connection lines, in any case,
/// with a body or without one, closes its connection after the answer; a
/// look-alike does not (change 16: found in the pass that checks the
/// request's headers, not looked up when the call is made).
#[test]
fn request_connection_close_on_any_line() {
    let cases: [(&str, &[&str], bool); 5] = [
        ("GET", &["keep-alive", "CLOSE"], true),
        ("GET", &["upgrade,close"], true),
        ("POST", &["Close"], true),
        ("GET", &["closed", "keep-alive"], false),
        ("POST", &[], false),
    ];
    for (method, lines, closes) in cases {
        let (port, _) = scripted_backend(vec![answer(&[b"x-which: first"]), answer(&[b"x-which: second"])]);
        let agent = agent();
        let mut request = http::Request::builder().method(method).uri(format!("http://127.0.0.1:{port}/")).header("host", "t.test");
        for line in lines {
            request = request.header("connection", *line);
        }
        let mut data: &[u8] = b"abc";
        let response = if method == "POST" {
            agent.run(request.body(ureq::SendBody::from_reader(&mut data)).unwrap())
        } else {
            agent.run(request.body(()).unwrap())
        };
        assert_eq!(body(response.unwrap()), "ok");
        let next = get(&agent, port).unwrap();
        let expected = if closes { "first" } else { "second" };
        assert_eq!(next.headers()["x-which"], expected, "{method} {lines:?}");
        assert_eq!(body(next), "ok");
    }
}

/// A request carrying `ureq::HeaderLines` (ureq-proto change 17, ureq
/// change 16), as the proxy sends them.
fn with_lines<B>(request: http::request::Builder, pairs: &[(&str, &str)], body: B) -> http::Request<B> {
    let mut lines = ureq::HeaderLines::default();
    for (name, value) in pairs {
        lines.push(name.as_bytes(), value.as_bytes()).unwrap();
    }
    let mut request = request.body(body).unwrap();
    request.extensions_mut().insert(lines);
    request
}

/// The response's header lines, taken from its body, and the body.
fn lines_and_body(response: http::Response<ureq::Body>) -> (Vec<(String, Vec<u8>)>, String) {
    assert!(response.headers().is_empty(), "a response to header lines has an empty map");
    let mut body = response.into_body();
    let lines = body.take_header_lines().expect("header lines");
    let lines = lines.iter().map(|(name, value)| (String::from_utf8(name.to_vec()).unwrap(), value.to_vec())).collect();
    let mut text = String::new();
    body.into_reader().read_to_string(&mut text).unwrap();
    (lines, text)
}

/// Header lines go out after the map's headers, in their order with repeats
/// where they are, and decide the request's Host and Content-Length; the
/// response's come back in order with names lower-cased and values byte for
/// byte, and its mime type and charset are read from them.
#[test]
fn header_lines_go_out_and_come_back_in_order() {
    let answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nSet-Cookie: a=1\r\nX-Empty:\r\nX-Obs: caf\xe9\r\nset-cookie: b=2\r\ncontent-length: 2\r\n\r\nok".to_vec();
    let (port, requests) = scripted_backend(vec![answer.clone(), answer]);
    let agent = agent();
    let url = format!("http://127.0.0.1:{port}/p?q=1");

    let pairs = [("Host", "t.test"), ("x-a", "1"), ("x-b", ""), ("x-a", "2")];
    let request = with_lines(http::Request::get(&url).header("x-map", "m"), &pairs, ());
    let response = agent.run(request).unwrap();
    assert_eq!(response.body().mime_type(), Some("text/plain"));
    assert_eq!(response.body().charset(), Some("utf-8"));
    let (lines, body) = lines_and_body(response);
    assert_eq!(body, "ok");
    let expected: Vec<(String, Vec<u8>)> = [
        ("content-type", &b"text/plain; charset=utf-8"[..]),
        ("set-cookie", b"a=1"),
        ("x-empty", b""),
        ("x-obs", b"caf\xe9"),
        ("set-cookie", b"b=2"),
        ("content-length", b"2"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_vec()))
    .collect();
    assert_eq!(lines, expected);
    let head = requests.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(String::from_utf8_lossy(&head), "GET /p?q=1 HTTP/1.1\r\nx-map: m\r\nhost: t.test\r\nx-a: 1\r\nx-b: \r\nx-a: 2\r\n\r\n");

    // Handed to the call directly (`run_with_header_lines`), as the proxy does.
    let mut lines = ureq::HeaderLines::default();
    lines.push(b"host", b"t.test").unwrap();
    lines.push(b"content-length", b"3").unwrap();
    let mut upload: &[u8] = b"abc";
    let request = http::Request::post(&url).body(ureq::SendBody::from_reader(&mut upload)).unwrap();
    let (_, body) = lines_and_body(agent.run_with_header_lines(request, lines).unwrap());
    assert_eq!(body, "ok", "answered on the same connection");
    let sent = requests.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(String::from_utf8_lossy(&sent), "POST /p?q=1 HTTP/1.1\r\nhost: t.test\r\ncontent-length: 3\r\n\r\nabc");
}

/// A response's lines frame its body and decide its connection's reuse as
/// its map did: chunks in a Transfer-Encoding list, then `Connection: close`.
#[test]
fn header_lines_frame_and_close_as_maps_do() {
    let answers = vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nx-which: first\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nx-which: second\r\nConnection: keep-alive, Close\r\ncontent-length: 2\r\n\r\nok".to_vec(),
    ];
    let (port, _) = scripted_backend(answers);
    let agent = agent();
    let which = |lines: &[(String, Vec<u8>)]| lines.iter().find(|(name, _)| name == "x-which").map(|(_, value)| value.clone());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let request = with_lines(http::Request::get(format!("http://127.0.0.1:{port}/")), &[("host", "t.test")], ());
        let (lines, body) = lines_and_body(agent.run(request).unwrap());
        assert_eq!(body, "ok");
        seen.push(which(&lines).expect("x-which"));
    }
    assert_eq!(seen, [b"first".to_vec(), b"second".to_vec(), b"first".to_vec()], "chunked kept the connection, close ended it");
}

/// Bytes that could end a head or split a line are refused when pushed.
#[test]
fn header_lines_refuse_what_could_split_a_head() {
    let mut lines = ureq::HeaderLines::default();
    assert!(lines.push(b"x-a", b"1\r\nx-injected: 1").is_err());
    assert!(lines.push(b"x a", b"1").is_err());
    assert!(lines.push(b"x-a", b"1\0").is_err());
    assert!(lines.is_empty());
}
