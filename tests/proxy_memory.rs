//! Memory stays flat while a large body streams through the proxy. Alone in
//! its own binary: RSS is per process and other tests would disturb it.

mod proxy_support;

use std::io::{Read, Write};
use std::sync::Arc;

use proxy_support::*;

#[test]
fn streaming_a_large_download_keeps_memory_flat() {
    const TOTAL: usize = 64 << 20;
    let backend = Backend::start(Arc::new(|_req, out| {
        let _ = out.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {TOTAL}\r\n\r\n").as_bytes());
        let block = vec![b'z'; 64 << 10];
        for _ in 0..TOTAL / block.len() {
            if out.write_all(&block).is_err() {
                return;
            }
        }
    }));
    let proxy = start_proxy(&[rule("a.test", "/", &[backend.port()])], test_config());
    let rss_before = rss_bytes();
    let mut conn = connect(&proxy);
    send(&mut conn, b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n");
    let (line, headers) = read_head(&mut conn).unwrap();
    assert!(line.contains(" 200 "));
    assert_eq!(header(&headers, "content-length"), Some(TOTAL.to_string().as_str()));
    let mut buffer = vec![0; 64 << 10];
    let mut received = 0;
    while received < TOTAL {
        let read = conn.read(&mut buffer).unwrap();
        assert!(read > 0, "download ended early at {received}");
        received += read;
    }
    let growth = rss_bytes().saturating_sub(rss_before);
    assert!(growth < 16 << 20, "RSS grew by {} KiB streaming {} MiB", growth >> 10, TOTAL >> 20);
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
