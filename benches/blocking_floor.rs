//! The least a proxy of ingressd's model can cost: a thread per client
//! connection, blocking std sockets, one upstream connection per thread, no
//! allocation, no parsing beyond finding the end of each head, no policy,
//! no timeouts. Not a proxy anyone should run: `scripts/bench.sh` measures it
//! beside nginx and ingressd in the same interleaved run, so the README can
//! say how much of ingressd's cost is the model's and how much is its own.
//!
//! `cargo bench --bench blocking_floor -- LISTEN_ADDR BACKEND_ADDR` serves
//! until killed; without arguments (a plain `cargo bench`) it does nothing.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Client requests (GETs without bodies) and upstream responses up to this size.
const BUFFER: usize = 128 * 1024;

fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|window| window == b"\r\n\r\n").map(|at| at + 4)
}

fn content_length(head: &[u8]) -> usize {
    head.split(|&byte| byte == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&byte| byte == b':')?;
            let (name, value) = line.split_at(colon);
            name.eq_ignore_ascii_case(b"content-length").then(|| std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok())?
        })
        .next()
        .unwrap_or(0)
}

/// Relays one client connection's requests, in turn, over one upstream connection.
fn relay(mut client: TcpStream, backend: &str) -> io::Result<()> {
    let mut upstream = TcpStream::connect(backend)?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (mut request, mut response) = (vec![0u8; BUFFER], vec![0u8; BUFFER]);
    let mut buffered = 0;
    loop {
        let end = loop {
            if let Some(end) = head_end(&request[..buffered]) {
                break end;
            }
            match client.read(&mut request[buffered..])? {
                0 => return Ok(()),
                read => buffered += read,
            }
        };
        upstream.write_all(&request[..end])?;
        request.copy_within(end..buffered, 0);
        buffered -= end;
        let mut received = 0;
        let whole = loop {
            match upstream.read(&mut response[received..])? {
                0 => return Ok(()),
                read => received += read,
            }
            if let Some(end) = head_end(&response[..received]) {
                break end + content_length(&response[..end]);
            }
        };
        while received < whole {
            match upstream.read(&mut response[received..])? {
                0 => return Ok(()),
                read => received += read,
            }
        }
        client.write_all(&response[..received])?;
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    let [listen, backend] = args.as_slice() else { return Ok(()) };
    let listener = TcpListener::bind(listen)?;
    for client in listener.incoming().flatten() {
        let backend = backend.clone();
        std::thread::Builder::new().stack_size(256 * 1024).spawn(move || relay(client, &backend))?;
    }
    Ok(())
}
