//! Heap allocations per proxied 1 KiB GET, counted by a global allocator that
//! exists only in this bench binary (never in the shipped one).
//!
//! One keep-alive client, the proxy, and one keep-alive backend run in this
//! process; the client and the backend use fixed buffers and do not allocate,
//! so every allocation counted during the measured requests is the proxy's.
//! `scripts/bench.sh` prints the result.
//!
//! It then measures what the upstream client itself costs: the same GETs to
//! the backend from one thread, once through a ureq Agent configured as the
//! proxy's and once written and read by hand on a raw socket (allocations and
//! time per request; the time includes the backend's share).
//!
//! `ALLOC_TRACE=1` prints a backtrace for each allocation of one request (build
//! with `CARGO_PROFILE_BENCH_DEBUG=line-tables-only CARGO_PROFILE_BENCH_STRIP=none`
//! for symbols).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;


#[path = "../tests/alloc_rig/mod.rs"]
mod alloc_rig;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static TRACING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while this thread captures a backtrace, whose own allocations are not traced.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

fn trace(size: usize) {
    if !TRACING.load(Ordering::Relaxed) || IN_TRACE.with(|t| t.replace(true)) {
        return;
    }
    eprintln!("--- allocation of {size} bytes\n{}", std::backtrace::Backtrace::force_capture());
    IN_TRACE.with(|t| t.set(false));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        trace(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        trace(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BODY: usize = 1024;
const WARM_UP: usize = 2_000;
const MEASURED: usize = 20_000;
const HOST: &str = "bench.test";

fn main() {
    let mut response = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\ncontent-type: application/octet-stream\r\n\r\n").into_bytes();
    response.resize(response.len() + BODY, b'x');
    let backend_port = alloc_rig::backend(response);

    let proxy_addr = alloc_rig::one_route_proxy(HOST, backend_port);
    let mut client = TcpStream::connect(proxy_addr).expect("connect to the proxy");
    client.set_read_timeout(Some(Duration::from_secs(10))).expect("client timeout");
    let request = format!("GET /1k HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let mut buffer = [0u8; 8192];
    for _ in 0..WARM_UP {
        exchange(&mut client, request.as_bytes(), &mut buffer);
    }
    if std::env::var_os("ALLOC_TRACE").is_some() {
        TRACING.store(true, Ordering::SeqCst);
        exchange(&mut client, request.as_bytes(), &mut buffer);
        TRACING.store(false, Ordering::SeqCst);
    }
    let (allocations, bytes) = (ALLOCATIONS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    for _ in 0..MEASURED {
        exchange(&mut client, request.as_bytes(), &mut buffer);
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - allocations;
    let bytes = BYTES.load(Ordering::SeqCst) - bytes;
    println!(
        "{:.1} allocations, {:.0} bytes allocated per proxied 1 KiB GET ({MEASURED} requests on one keep-alive connection)",
        allocations as f64 / MEASURED as f64,
        bytes as f64 / MEASURED as f64
    );
    upstream_client_cost(backend_port);
}

/// ureq against a raw socket for the same keep-alive GETs to the backend.
fn upstream_client_cost(backend_port: u16) {
    let config = alloc_rig::proxy_config(0);
    let agent = ingressd::proxy::upstream::agent(&config);
    let uri = format!("http://127.0.0.1:{backend_port}/1k");
    let mut buffer = [0u8; 8192];
    let ureq_get = |buffer: &mut [u8]| {
        let request = ureq::http::Request::builder().method("GET").uri(uri.as_str()).header("host", HOST).body(()).expect("request");
        let response = agent.run(request).expect("ureq GET");
        let mut body = response.into_body().into_reader();
        while body.read(buffer).expect("body") > 0 {}
    };
    let mut raw = TcpStream::connect(("127.0.0.1", backend_port)).expect("connect to the backend");
    raw.set_nodelay(true).expect("nodelay");
    let request = format!("GET /1k HTTP/1.1\r\nhost: {HOST}\r\n\r\n");
    let mut raw_get = |buffer: &mut [u8]| exchange(&mut raw, request.as_bytes(), buffer);
    let measure = |get: &mut dyn FnMut(&mut [u8]), buffer: &mut [u8]| {
        for _ in 0..WARM_UP {
            get(buffer);
        }
        let allocations = ALLOCATIONS.load(Ordering::SeqCst);
        let started = std::time::Instant::now();
        for _ in 0..MEASURED {
            get(buffer);
        }
        let elapsed = started.elapsed();
        ((ALLOCATIONS.load(Ordering::SeqCst) - allocations) as f64 / MEASURED as f64, elapsed.as_secs_f64() * 1e6 / MEASURED as f64)
    };
    let (ureq_allocations, ureq_micros) = measure(&mut { ureq_get }, &mut buffer);
    let (raw_allocations, raw_micros) = measure(&mut raw_get, &mut buffer);
    println!(
        "upstream client, one thread, 1 KiB GETs to the backend: ureq {ureq_allocations:.1} allocations and {ureq_micros:.1} us per request, raw socket {raw_allocations:.1} and {raw_micros:.1} us"
    );
}

/// Sends one request and reads the whole response into `buffer` without allocating.
fn exchange(client: &mut TcpStream, request: &[u8], buffer: &mut [u8]) {
    client.write_all(request).expect("send a request");
    let mut filled = 0;
    loop {
        let n = client.read(&mut buffer[filled..]).expect("read a response");
        assert!(n > 0, "the proxy closed the connection");
        filled += n;
        if let Some(end) = find(&buffer[..filled], b"\r\n\r\n") {
            let head = &buffer[..end];
            assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(head));
            let total = end + 4 + content_length(head);
            while filled < total {
                let n = client.read(&mut buffer[filled..]).expect("read a body");
                assert!(n > 0, "the proxy closed the connection mid-body");
                filled += n;
            }
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let line = std::str::from_utf8(line).ok()?.trim();
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length")
}

