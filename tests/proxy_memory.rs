//! Memory stays flat while large bodies stream through the proxy in both
//! directions. Alone in its own binary, in one test: RSS is per process and
//! other tests would disturb it.

#[path = "it/proxy_support/mod.rs"]
mod proxy_support;
#[path = "it/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use proxy_support::*;
use support::http::*;

const TOTAL: usize = 256 << 20;
const BLOCK: usize = 64 << 10;

/// GET answers `length` bytes (from the target path); POST counts a chunked body without keeping it.
fn streaming_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            thread::spawn(move || serve_streaming(stream));
        }
    });
    port
}

fn serve_streaming(stream: TcpStream) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Ok((line, headers)) = read_head(&mut reader) {
        if line.starts_with("GET ") {
            let length: usize = line.split(' ').nth(1).and_then(|t| t.trim_start_matches('/').parse().ok()).unwrap_or(0);
            let _ = out.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n").as_bytes());
            let block = vec![b'z'; BLOCK];
            for _ in 0..length / BLOCK {
                if out.write_all(&block).is_err() {
                    return;
                }
            }
            continue;
        }
        assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
        let mut received = 0usize;
        let mut discard = vec![0u8; BLOCK];
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut left = size + 2;
            while left > 0 {
                let n = left.min(discard.len());
                if reader.read_exact(&mut discard[..n]).is_err() {
                    return;
                }
                left -= n;
            }
            if size == 0 {
                break;
            }
            received += size;
        }
        let text = received.to_string();
        let _ = out.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}", text.len()).as_bytes());
    }
}

fn download(conn: &mut BufReader<TcpStream>, length: usize) {
    send(conn, format!("GET /{length} HTTP/1.1\r\nHost: a.test\r\n\r\n").as_bytes());
    let (line, headers) = read_head(conn).unwrap();
    assert!(line.contains(" 200 "));
    assert_eq!(header(&headers, "content-length"), Some(length.to_string().as_str()));
    let mut buffer = vec![0; BLOCK];
    let mut received = 0;
    while received < length {
        let read = conn.read(&mut buffer[..BLOCK.min(length - received)]).unwrap();
        assert!(read > 0, "download ended early at {received}");
        received += read;
    }
}

fn upload(conn: &mut BufReader<TcpStream>, length: usize) {
    send(conn, b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    let block = vec![b'u'; BLOCK];
    for _ in 0..length / BLOCK {
        send(conn, format!("{BLOCK:x}\r\n").as_bytes());
        send(conn, &block);
        send(conn, b"\r\n");
    }
    send(conn, b"0\r\n\r\n");
    let response = read_response(conn, false).expect("a response");
    assert_eq!((response.status, response.text()), (200, length.to_string()));
}

#[test]
fn streaming_large_bodies_keeps_memory_flat() {
    let proxy = start_proxy(&[rule("a.test", "/", &[streaming_backend()])], test_config());
    let mut conn = connect(&proxy);
    // Warm up pools, buffers and thread stacks before measuring.
    download(&mut conn, 4 * BLOCK);
    upload(&mut conn, 4 * BLOCK);
    let rss_before = rss_bytes();
    download(&mut conn, TOTAL);
    upload(&mut conn, TOTAL);
    let growth = rss_bytes().saturating_sub(rss_before);
    assert!(growth < 8 << 20, "RSS grew by {} KiB streaming {} MiB each way", growth >> 10, TOTAL >> 20);
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
