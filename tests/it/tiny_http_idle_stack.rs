//! A connection thread that waits a while for its keep-alive connection's next request
//! gives back the stack pages its earlier requests touched, and still serves the
//! connection afterwards.

use crate::tiny_http_common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{Limits, Request, Server};
use tiny_http_common::*;

/// How deep the handler touches its stack: far more than the thread keeps while idle.
const DEEP: usize = 256 * 1024;

/// An address inside the handler thread's stack, from its last request.
static HANDLER_STACK: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
fn touch_stack_deeply() {
    let mut deep = [0u8; DEEP];
    for page in deep.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&mut deep);
    HANDLER_STACK.store(std::hint::black_box(&deep) as *const _ as usize, Ordering::SeqCst);
}

/// Resident KiB of the mapping of this process that holds `address`.
fn resident_kib_of_mapping_holding(address: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((low, high)) = first.split_once('-') {
            if let (Ok(low), Ok(high)) = (usize::from_str_radix(low, 16), usize::from_str_radix(high, 16)) {
                inside = (low..high).contains(&address);
                continue;
            }
        }
        if inside {
            if let Some(rss) = line.strip_prefix("Rss:") {
                return rss.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
    }
    panic!("no mapping holds {address:#x}");
}

#[test]
fn an_idle_connection_thread_releases_its_deep_stack_pages() {
    let handler = Arc::new(|request: Request| {
        touch_stack_deeply();
        let _ = request.respond(tiny_http::Response::from_string("deep"));
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        idle_timeout: Duration::from_secs(30),
        thread_stack_size: 1024 * 1024,
        ..Limits::default()
    };
    let _server = Server::from_listener_serving(listener, limits, handler).unwrap();

    let mut client = connect(addr);
    client.write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, _) = read_sized_response(&mut client).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let stack = HANDLER_STACK.load(Ordering::SeqCst);
    let busy = resident_kib_of_mapping_holding(stack);
    assert!(busy * 1024 >= DEEP, "the handler's stack shows only {busy} KiB resident");

    // The connection stays open and silent: its thread releases what it does not use.
    let started = Instant::now();
    let idle = loop {
        let resident = resident_kib_of_mapping_holding(stack);
        if resident <= 64 || started.elapsed() > PATIENCE {
            break resident;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(idle <= 64, "an idle connection thread keeps {idle} KiB of stack (busy: {busy} KiB)");

    // The same connection is served again, as deep as before.
    client.write_all(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, body) = read_sized_response(&mut client).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"deep");
}
