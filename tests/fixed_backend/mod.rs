//! A keep-alive backend that answers every request head with one fixed
//! response: the upstream of the tests and the bench that count allocations,
//! so it allocates nothing per request itself.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

/// Starts the backend on a free loopback port; its port.
pub fn start(response: impl Into<Arc<[u8]>>) -> u16 {
    let response: Arc<[u8]> = response.into();
    let listener = TcpListener::bind("127.0.0.1:0").expect("backend listener");
    let port = listener.local_addr().expect("backend address").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let response = Arc::clone(&response);
            thread::spawn(move || serve(stream, &response));
        }
    });
    port
}

/// Answers each request head (no request has a body) until the client closes.
fn serve(mut stream: TcpStream, response: &[u8]) {
    let mut buffer = [0u8; 8192];
    let mut filled = 0;
    loop {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        while let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            if stream.write_all(response).is_err() {
                return;
            }
            buffer.copy_within(end + 4..filled, 0);
            filled -= end + 4;
        }
    }
}
