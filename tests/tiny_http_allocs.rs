//! Heap allocations tiny_http makes per keep-alive request, counted by a global allocator
//! (only possible in its own test binary). The handler and the client allocate nothing, so
//! the count is the server's: parsing the head, the request, and the response writer.

mod support;
mod tiny_http_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tiny_http::{Limits, Request, Server};
use tiny_http_common::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

fn answer(request: Request) {
    let mut writer = request.into_writer();
    let _ = writer.write_all(RESPONSE).and_then(|()| writer.flush());
}

#[test]
fn a_keep_alive_request_costs_few_allocations() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = Server::from_listener_serving(listener, Limits::default(), Arc::new(answer)).unwrap();
    let mut client = connect(addr);
    let request = b"GET /some/path?query=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n";
    let mut response = [0u8; RESPONSE.len()];
    let mut exchange = || {
        client.write_all(request).unwrap();
        std::io::Read::read_exact(&mut client, &mut response).unwrap();
    };
    for _ in 0..100 {
        exchange();
    }
    const REQUESTS: usize = 1000;
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..REQUESTS {
        exchange();
    }
    let per_request = (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / REQUESTS as f64;
    eprintln!("{per_request:.1} allocations per request");
    assert!(per_request <= MAX_ALLOCATIONS, "{per_request:.1} allocations per keep-alive request");
}

/// Request line and three headers: the path, each header's name and value, the header list,
/// the request's bookkeeping and the writer: 15 measured (27 while each head line grew its
/// own buffer), plus one for noise from other threads.
const MAX_ALLOCATIONS: f64 = 16.0;
