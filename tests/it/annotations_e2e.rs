//! ingress-nginx annotations through the real binary: the fake API server
//! holds the Ingresses, ingressd answers over real TCP, a real backend
//! stands behind it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common;
use crate::common::{get, ingress, request, service_for, Api, Backend, Ingressd};
use crate::support::wait::wait_until;

/// An Ingress `name` for `NAME.example.com` to the backend, with these
/// `nginx.ingress.kubernetes.io/` annotations.
fn annotated(name: &str, annotations: &[(&str, &str)]) -> Value {
    common::annotated(name, "blue", annotations)
}

fn start(ingresses: Vec<Value>, extra: &[&str]) -> (Api, Backend, Ingressd) {
    common::start_with_blue(ingresses, extra, None)
}

fn post(ingressd: &Ingressd, host: &str, body_length: usize) -> u16 {
    let raw = format!("POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {body_length}\r\nConnection: close\r\n\r\n{}", "x".repeat(body_length));
    request(ingressd.http, &raw).map(|r| r.status).unwrap_or(0)
}

#[test]
fn redirects_answer_without_reaching_the_backend() {
    let (_api, blue, ingressd) = start(
        vec![
            annotated("moved", &[("permanent-redirect", "https://new.example.com$request_uri"), ("permanent-redirect-code", "308")]),
            annotated("away", &[("temporal-redirect", "https://elsewhere.example.com/"), ("permanent-redirect", "https://ignored.example.com/")]),
            annotated("app", &[("app-root", "/app1")]),
            annotated("forced", &[("force-ssl-redirect", "true")]),
            annotated("broken", &[("permanent-redirect", "ftp://files.example.com/")]),
        ],
        &[],
    );
    let answer = |host: &str, path: &str| {
        let response = get(ingressd.http, path, host).expect("answer");
        (response.status, response.header("location").map(str::to_string))
    };
    assert_eq!(answer("moved.example.com", "/a/b?c=1"), (308, Some("https://new.example.com/a/b?c=1".into())));
    assert_eq!(answer("away.example.com", "/x"), (302, Some("https://elsewhere.example.com/".into())), "temporal wins");
    assert_eq!(answer("app.example.com", "/"), (302, Some("http://app.example.com/app1".into())));
    assert_eq!(answer("forced.example.com", "/p?q=1"), (308, Some(format!("https://forced.example.com:{}/p?q=1", ingressd.https.port()))));
    assert_eq!(blue.requests.load(std::sync::atomic::Ordering::SeqCst), 0, "no redirect reached the backend");

    assert_eq!(answer("app.example.com", "/app1/page"), (200, None), "app-root only answers /");
    assert_eq!(answer("broken.example.com", "/still"), (200, None), "a bad redirect URL is left out; the Ingress serves");
}

#[test]
fn proxy_body_size_sets_the_ingress_limit_and_zero_lifts_it() {
    let (_api, _blue, ingressd) = common::start_with_blue(
        vec![
            annotated("small", &[("proxy-body-size", "1k")]),
            annotated("unlimited", &[("proxy-body-size", "0")]),
            annotated("typo", &[("proxy-body-size", "lots")]),
            annotated("plain", &[]),
        ],
        &["--max-body-size", "2048"],
        Some(echoing_backend()),
    );
    assert_eq!(post(&ingressd, "small.example.com", 1024), 200);
    assert_eq!(post(&ingressd, "small.example.com", 1025), 413);
    assert_eq!(post(&ingressd, "unlimited.example.com", 4096), 200, "0 means no limit, whatever --max-body-size says");
    assert_eq!(post(&ingressd, "typo.example.com", 4096), 413, "a bad value keeps --max-body-size");
    assert_eq!(post(&ingressd, "plain.example.com", 2048), 200);
    assert_eq!(post(&ingressd, "plain.example.com", 2049), 413);
}

#[test]
fn a_changed_annotation_takes_effect_for_the_next_request() {
    let (api, _blue, ingressd) = start(vec![annotated("live", &[])], &[]);
    assert_eq!(get(ingressd.http, "/", "live.example.com").map(|r| r.status).ok(), Some(200));
    api.fake.apply(annotated("live", &[("permanent-redirect", "https://next.example.com/")]));
    assert!(wait_until(Duration::from_secs(2), || get(ingressd.http, "/", "live.example.com").map(|r| r.status).ok() == Some(301)));
    api.fake.apply(annotated("live", &[]));
    assert!(wait_until(Duration::from_secs(2), || get(ingressd.http, "/", "live.example.com").map(|r| r.status).ok() == Some(200)));
}

/// A backend that reads each request (its Content-Length body included) and
/// answers with the request head it received.
pub(crate) fn echoing_backend() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(&stream);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => head.push_str(&line),
                        }
                    }
                    let length = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<u64>().unwrap_or(0)))
                        .unwrap_or(0);
                    if std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink()).map_or(true, |n| n != length) {
                        return;
                    }
                    let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{head}", head.len());
                    if (&stream).write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn upstream_vhost_and_x_forwarded_prefix_reach_the_backend() {
    let api = Api::start();
    for object in service_for("web", "echo", echoing_backend()) {
        api.fake.create(object);
    }
    let mut object = ingress("web", "vhost", &[("vhost.example.com", "/", "echo")]);
    object["metadata"]["annotations"] = json!({
        "nginx.ingress.kubernetes.io/upstream-vhost": "internal.svc.example",
        "nginx.ingress.kubernetes.io/x-forwarded-prefix": "/api",
    });
    api.fake.create(object);
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    let raw = "GET /x HTTP/1.1\r\nHost: vhost.example.com\r\nX-Forwarded-Prefix: /forged\r\nConnection: close\r\n\r\n";
    let seen = request(ingressd.http, raw).expect("answer").text().to_ascii_lowercase();
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines.contains(&"host: internal.svc.example"), "{seen}");
    assert!(!lines.contains(&"host: vhost.example.com"), "the client's Host is replaced: {seen}");
    assert!(lines.contains(&"x-forwarded-prefix: /api") && !seen.contains("/forged"), "{seen}");
    assert!(lines.contains(&"x-forwarded-host: vhost.example.com"), "X-Forwarded-Host keeps the client's host: {seen}");
}

#[test]
fn cors_preflights_are_answered_here_and_responses_carry_the_headers() {
    let (_api, blue, ingressd) = start(
        vec![
            annotated("api", &[("enable-cors", "true"), ("cors-allow-origin", "https://app.example.com, https://*.example.org"), ("cors-expose-headers", "X-Total")]),
            annotated("open", &[("enable-cors", "true")]),
        ],
        &[],
    );
    let send = |method: &str, host: &str, origin: Option<&str>| {
        let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
        let raw = format!("{method} /data HTTP/1.1\r\nHost: {host}\r\n{origin}Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n");
        request(ingressd.http, &raw).expect("answer")
    };

    let preflight = send("OPTIONS", "api.example.com", Some("https://app.example.com"));
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(preflight.header("access-control-allow-methods"), Some("GET, PUT, POST, DELETE, PATCH, OPTIONS"));
    assert_eq!(preflight.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(preflight.header("access-control-max-age"), Some("1728000"));
    assert_eq!(blue.requests.load(std::sync::atomic::Ordering::SeqCst), 0, "the preflight never reached the backend");

    let simple = send("GET", "api.example.com", Some("https://shop.example.org"));
    assert_eq!((simple.status, simple.text()), (200, "blue /data\n".to_string()));
    assert_eq!(simple.header("access-control-allow-origin"), Some("https://shop.example.org"));
    assert_eq!(simple.header("access-control-expose-headers"), Some("X-Total"));

    let stranger = send("GET", "api.example.com", Some("https://evil.example.net"));
    assert_eq!(stranger.status, 200);
    assert_eq!(stranger.header("access-control-allow-origin"), None, "an origin off the list gets no CORS headers");
    let stranger_preflight = send("OPTIONS", "api.example.com", Some("https://evil.example.net"));
    assert_eq!(stranger_preflight.text(), "blue /data\n", "and its OPTIONS goes to the backend, as in ingress-nginx");

    let open = send("GET", "open.example.com", None);
    assert_eq!(open.header("access-control-allow-origin"), Some("*"), "the default origin is *");

    // A preflight on a keep-alive connection leaves it ready for the next request.
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(ingressd.http).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let head = "Host: api.example.com\r\nOrigin: https://app.example.com\r\n";
    stream.write_all(format!("OPTIONS /data HTTP/1.1\r\n{head}\r\nGET /after HTTP/1.1\r\n{head}\r\n").as_bytes()).expect("write");
    let first = crate::support::http::read_response(&mut stream, false).expect("preflight");
    let second = crate::support::http::read_response(&mut stream, false).expect("the next response");
    assert_eq!((first.status, second.status, second.text()), (204, 200, "blue /after\n".to_string()));
}

#[test]
fn proxy_read_timeout_bounds_the_wait_for_the_backend() {
    let api = Api::start();
    let slow = Backend::start_with_delay("slow", Duration::from_millis(2500));
    for object in service_for("web", "blue", slow.addr) {
        api.fake.create(object);
    }
    api.fake.create(annotated("impatient", &[("proxy-read-timeout", "1")]));
    api.fake.create(annotated("patient", &[]));
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));
    // Without the annotation the backend's answer after 2.5 s would be a 200.
    assert_eq!(get(ingressd.http, "/", "impatient.example.com").map(|r| r.status).ok(), Some(504), "the Ingress's 1 s applied");
    assert_eq!(get(ingressd.http, "/", "patient.example.com").map(|r| r.status).ok(), Some(200), "the command line's 60 s applies elsewhere");
}
