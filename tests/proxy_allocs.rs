//! Allocations of one proxied keep-alive GET through the whole data plane
//! (tiny_http, routing, header rewriting, ureq, response framing), bounded so
//! that a change adding per-request allocations shows here.
//! `benches/proxy_allocs.rs` reports the exact figure and traces each
//! allocation. A counting global allocator needs its own test binary.

mod counting_alloc;
mod alloc_rig;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;


#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const HOST: &str = "allocs.test";

/// 64.1 before the proxy's own strings, header views and head buffer stopped
/// allocating and ureq's extensions went; 26 after, with tiny_http change 20;
/// 15 with tiny_http's head as one text (changes 28 and 34) and ureq's cuts;
/// 12 with the headers sent and received as ureq `HeaderLines` (no `http`
/// header maps) and the endpoint's URI authority parsed with the route table.
const MOST_PER_GET: usize = 13;

/// The same GET as a browser sends it, eight headers, one of them
/// `Connection` (dropped without a lower-cased copy, its tokens compared in
/// place): 51, then 17, now 14. A header costs tiny_http nothing (its head
/// is one text) and the upstream request no allocation of its own (its
/// lines are one buffer); a `SmolStr` when its value is longer than 23 bytes.
const MOST_PER_BROWSER_GET: usize = 15;

const BODY: &[u8] = &[b'x'; 1024];

fn backend() -> u16 {
    let mut response = b"HTTP/1.1 200 OK\r\ncontent-length: 1024\r\ncontent-type: application/octet-stream\r\n\r\n".to_vec();
    response.extend_from_slice(BODY);
    alloc_rig::backend(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` and reads the whole 1 KiB answer into `buffer`.
fn exchange(client: &mut TcpStream, request: &[u8], buffer: &mut [u8]) {
    client.write_all(request).unwrap();
    let mut filled = 0;
    loop {
        let n = client.read(&mut buffer[filled..]).unwrap();
        assert!(n > 0, "the proxy closed the connection");
        filled += n;
        if let Some(end) = find(&buffer[..filled], b"\r\n\r\n") {
            assert!(buffer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..end]));
            while filled < end + 4 + BODY.len() {
                let n = client.read(&mut buffer[filled..]).unwrap();
                assert!(n > 0, "the proxy closed the connection mid-body");
                filled += n;
            }
            return;
        }
    }
}

/// The fewest allocations per GET over several batches: the proxy's idle
/// threads may allocate meanwhile.
fn allocations_per_get(proxy: SocketAddr, request: &[u8]) -> usize {
    let mut client = TcpStream::connect(proxy).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buffer = [0u8; 4096];
    for _ in 0..200 {
        exchange(&mut client, request, &mut buffer);
    }
    const GETS: usize = 50;
    (0..10)
        .map(|_| {
            let before = counting_alloc::allocations();
            for _ in 0..GETS {
                exchange(&mut client, request, &mut buffer);
            }
            (counting_alloc::allocations() - before) / GETS
        })
        .min()
        .unwrap()
}

#[test]
fn a_proxied_get_allocates_little() {
    let proxy = alloc_rig::one_route_proxy(HOST, backend());
    let minimal = format!("GET /1k HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let per_get = allocations_per_get(proxy, minimal.as_bytes());
    assert!(per_get <= MOST_PER_GET, "{per_get} allocations per proxied GET (at most {MOST_PER_GET})");
    let browser = format!(
        "GET /static/app.js?v=3 HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
         Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n\
         Referer: http://{HOST}/\r\nCookie: session=0123456789abcdef0123456789abcdef\r\n\r\n"
    );
    let per_get = allocations_per_get(proxy, browser.as_bytes());
    assert!(per_get <= MOST_PER_BROWSER_GET, "{per_get} allocations per proxied browser GET (at most {MOST_PER_BROWSER_GET})");
}
