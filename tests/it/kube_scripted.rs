//! One watcher against a scripted plain-HTTP server on loopback: every request
//! the watcher makes is checked in order, and every response is written by
//! hand on a real socket (chunk boundaries inside JSON lines, garbage lines,
//! keep-alive blank lines, ERROR 410, expired continue tokens).

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ingressd::kube::client::ApiClient;
use ingressd::kube::metrics::WatchMetrics;
use ingressd::kube::watcher::spawn;
use ingressd::kube::{Event, Kind, Object};
use ingressd::stop::Stop;
use support::wait::wait_until;

/// What the server answers to one request.
enum Reply {
    Json(u16, String),
    /// A 200 chunked body, one HTTP chunk per element.
    Chunks(Vec<String>),
    /// A 200 chunked body that stops after these chunks and stays silent
    /// for the given time without ending.
    ChunksThenSilence(Vec<String>, Duration),
}

/// Each request's target and Authorization header, in arrival order.
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Serves `script` in order, one request per connection, then 503s.
struct ScriptedServer {
    url: String,
    requests: RequestLog,
    done: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

fn read_head(stream: &mut TcpStream) -> Option<(String, Option<String>)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let target = request_line.split_whitespace().nth(1)?.to_string();
    Some((target, authorization))
}

fn write_reply(stream: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    match reply {
        Reply::Json(status, body) => write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Reply::Chunks(chunks) => {
            write_chunks(stream, chunks)?;
            write!(stream, "0\r\n\r\n")
        }
        Reply::ChunksThenSilence(chunks, silence) => {
            write_chunks(stream, chunks)?;
            std::thread::sleep(*silence);
            Ok(())
        }
    }
}

fn write_chunks(stream: &mut TcpStream, chunks: &[String]) -> std::io::Result<()> {
    write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")?;
    for chunk in chunks {
        write!(stream, "{:x}\r\n{chunk}\r\n", chunk.len())?;
        stream.flush()?;
        // Separate TCP segments, so the client really reads partial lines.
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

impl ScriptedServer {
    fn start(script: Vec<Reply>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (log, finished) = (Arc::clone(&requests), Arc::clone(&done));
        let thread = std::thread::spawn(move || {
            let mut script = script.into_iter();
            for stream in listener.incoming() {
                if finished.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let Some(head) = read_head(&mut stream) else { continue };
                log.lock().expect("log").push(head);
                let reply = script.next().unwrap_or_else(|| {
                    Reply::Json(503, r#"{"kind":"Status","message":"script finished","code":503}"#.into())
                });
                let _ = write_reply(&mut stream, &reply);
            }
        });
        ScriptedServer { url: format!("http://{addr}"), requests, done, addr, thread: Some(thread) }
    }

    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.requests.lock().expect("log").clone()
    }

    fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.requests().len() >= n)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn svc(name: &str, rv: &str) -> String {
    format!(r#"{{"metadata":{{"name":"{name}","namespace":"ns","resourceVersion":"{rv}"}},"spec":{{"ports":[{{"port":80}}]}}}}"#)
}

fn list(rv: &str, continue_token: &str, items: &[String]) -> Reply {
    Reply::Json(
        200,
        format!(r#"{{"kind":"ServiceList","metadata":{{"resourceVersion":"{rv}","continue":"{continue_token}"}},"items":[{}]}}"#, items.join(",")),
    )
}

fn names(objects: &[Object]) -> Vec<String> {
    objects.iter().map(|o| o.metadata().name.clone()).collect()
}

#[test]
fn list_then_watch_follows_the_protocol_step_by_step() {
    let added = format!(r#"{{"type":"ADDED","object":{}}}"#, svc("c", "13"));
    let (added_head, added_tail) = added.split_at(25);
    let undecodable = r#"{"type":"MODIFIED","object":{"metadata":{"name":"c","namespace":"ns","resourceVersion":"14"},"spec":{"ports":"x"}}}"#;
    let gone = r#"{"kind":"Status","status":"Failure","message":"continue token expired","reason":"Expired","code":410}"#;
    let server = ScriptedServer::start(vec![
        list("10", "c1", &[svc("a", "5")]),
        Reply::Json(410, gone.into()),
        list("12", "c2", &[svc("a", "5")]),
        list("12", "", &[svc("b", "6")]),
        Reply::Chunks(vec![
            added_head.to_string(),
            format!("{added_tail}\nthis is not json\n\n"),
            format!("{undecodable}\n"),
            r#"{"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"15"}}}"#.to_string() + "\n",
        ]),
        Reply::Chunks(vec![
            r#"{"type":"ERROR","object":{"kind":"Status","message":"too old resource version: 15 (30)","reason":"Expired","code":410}}"#
                .to_string()
                + "\n",
        ]),
        list("20", "", &[svc("a", "5")]),
        Reply::Chunks(vec![]),
    ]);
    let dir = std::env::temp_dir().join(format!("ingressd-kube-scripted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("token"), "tok-123\n").expect("token");
    let client = Arc::new(ApiClient::new(&server.url, &dir.join("missing-ca"), &dir.join("token")).expect("client"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let metrics = Arc::new(WatchMetrics::new());
    let stop = Stop::new();
    let watcher = spawn(Kind::Service, client, Some("ns".into()), tx, Arc::clone(&metrics), stop.clone()).expect("watcher starts");

    let first = rx.recv_timeout(Duration::from_secs(5)).expect("first event");
    assert!(matches!(&first, Event::Replace(Kind::Service, objects) if names(objects) == ["a", "b"]), "{first:?}");
    let second = rx.recv_timeout(Duration::from_secs(5)).expect("second event");
    assert!(matches!(&second, Event::Upsert(Object::Service(s)) if s.metadata.name == "c"), "{second:?}");
    let third = rx.recv_timeout(Duration::from_secs(5)).expect("third event");
    assert!(matches!(&third, Event::Replace(Kind::Service, objects) if names(objects) == ["a"]), "{third:?}");

    // The empty watch at the end is a failure: the next request waits for a backoff delay.
    assert!(server.wait_for_requests(8, Duration::from_secs(5)));
    let eighth_at = Instant::now();
    assert!(server.wait_for_requests(9, Duration::from_secs(5)));
    assert!(eighth_at.elapsed() >= Duration::from_millis(400), "no backoff after an empty watch");
    stop.stop();
    assert!(wait_until(Duration::from_secs(5), || watcher.is_finished()), "watcher ignores stop");

    let requests = server.requests();
    let targets: Vec<&str> = requests.iter().take(8).map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/api/v1/namespaces/ns/services?limit=500",
            "/api/v1/namespaces/ns/services?limit=500&continue=c1",
            "/api/v1/namespaces/ns/services?limit=500",
            "/api/v1/namespaces/ns/services?limit=500&continue=c2",
            // The watch resumes from the complete list's resourceVersion ...
            &watch_target(&requests[4].0, "12"),
            // ... and after a clean end from the last bookmark, without a relist.
            &watch_target(&requests[5].0, "15"),
            "/api/v1/namespaces/ns/services?limit=500",
            &watch_target(&requests[7].0, "20"),
        ]
    );
    assert!(requests.iter().all(|(_, auth)| auth.as_deref() == Some("Bearer tok-123")));
    assert_eq!(metrics.relists(Kind::Service), 1);
    assert_eq!(metrics.list_requests(Kind::Service), 5);
    assert_eq!(metrics.events(Kind::Service), 3, "ADDED, BOOKMARK and ERROR; undecodable lines are not events");
    assert!(metrics.api_errors(Kind::Service) >= 1);
    assert!(rx.try_recv().is_err(), "nothing else reached the cache");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks a watch target's fixed parts and resourceVersion; returns it when
/// right so the ordered comparison above shows any difference.
fn watch_target(target: &str, resource_version: &str) -> String {
    let prefix = format!("/api/v1/namespaces/ns/services?watch=1&allowWatchBookmarks=true&resourceVersion={resource_version}&timeoutSeconds=");
    match target.strip_prefix(&prefix).and_then(|t| t.parse::<u64>().ok()) {
        Some(timeout) if (300..600).contains(&timeout) => target.to_string(),
        _ => format!("{prefix}<300..600>"),
    }
}

#[test]
fn a_version_that_expires_at_once_does_not_relist_in_a_tight_loop() {
    let expired = r#"{"kind":"Status","message":"too old resource version","reason":"Expired","code":410}"#;
    let server = ScriptedServer::start(vec![
        list("7", "", &[svc("a", "5")]),
        Reply::Json(410, expired.into()),
        list("8", "", &[svc("a", "5")]),
    ]);
    let dir = std::env::temp_dir().join(format!("ingressd-kube-scripted-expiring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let client = Arc::new(ApiClient::new(&server.url, &dir.join("missing-ca"), &dir.join("missing-token")).expect("client"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let metrics = Arc::new(WatchMetrics::new());
    let stop = Stop::new();
    let watcher = spawn(Kind::Service, client, None, tx, Arc::clone(&metrics), stop.clone()).expect("watcher starts");

    assert!(matches!(rx.recv_timeout(Duration::from_secs(5)), Ok(Event::Replace(Kind::Service, _))));
    assert!(server.wait_for_requests(2, Duration::from_secs(5)));
    let expired_at = Instant::now();
    assert!(matches!(rx.recv_timeout(Duration::from_secs(5)), Ok(Event::Replace(Kind::Service, _))));
    assert!(expired_at.elapsed() >= Duration::from_millis(400), "relisted without backing off");
    stop.stop();
    assert!(wait_until(Duration::from_secs(5), || watcher.is_finished()), "watcher ignores stop");
    let requests = server.requests();
    assert!(requests[1].0.starts_with("/api/v1/services?watch=1&allowWatchBookmarks=true&resourceVersion=7&"));
    assert_eq!(requests[2].0, "/api/v1/services?limit=500");
    assert!(requests.iter().all(|(_, auth)| auth.is_none()), "no token file, no Authorization header");
    assert_eq!(metrics.relists(Kind::Service), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_silent_watch_stream_is_abandoned_at_its_read_timeout() {
    let bookmark = r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"3"}}}"#.to_string() + "\n";
    let server = ScriptedServer::start(vec![Reply::ChunksThenSilence(vec![bookmark], Duration::from_secs(4))]);
    let client = ApiClient::new(&server.url, std::path::Path::new("/nonexistent/ca"), std::path::Path::new("/nonexistent/token"))
        .expect("client")
        .with_watch_read_grace(Duration::from_secs(1));
    // timeoutSeconds 1 plus 1 s grace: silence beyond 2 s ends the stream.
    let mut stream = client.watch(Kind::Ingress.resource(), None, Default::default(), "2", 1).expect("watch opens");
    let line = stream.next_line().expect("first line").expect("not the end");
    assert!(String::from_utf8_lossy(&line).contains("BOOKMARK"));
    let started = Instant::now();
    let result = stream.next_line();
    let waited = started.elapsed();
    assert!(matches!(result, Err(ingressd::kube::Error::Timeout(_))), "{result:?}");
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_millis(3500), "{waited:?}");
}
