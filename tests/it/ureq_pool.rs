//! The vendored ureq's pool (change 3): idle connections are kept per
//! destination and a check-out takes the most recently used one, so a proxy
//! that once had many requests in flight reuses one warm connection when the
//! load falls, instead of cycling through every idle one as the release did
//! (it took the least recently used, from the front of one shared list).
//! Change 7 hashes a destination without SipHash, once per request: each
//! destination still finds its own idle connection, whatever its
//! authority's case. Change 14 lets a call on its agent's configuration
//! share the pool without comparing it: per-request settings still decide.
//! Change 15 boxes a response's body handler where it is made: it still
//! gives its connection back when its body is read to the end.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;

use crate::proxy_support::test_config;

/// Answers every request on a connection with that connection's client port,
/// after `concurrent` connections have each sent their first request.
fn port_echo_backend(concurrent: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_requests = Arc::new(Barrier::new(concurrent));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let first_requests = first_requests.clone();
            thread::spawn(move || answer_with_peer_port(stream, &first_requests));
        }
    });
    port
}

fn answer_with_peer_port(stream: TcpStream, first_requests: &Barrier) {
    let peer_port = stream.peer_addr().unwrap().port().to_string();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut first = true;
    loop {
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        if first {
            first_requests.wait();
            first = false;
        }
        let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{peer_port}", peer_port.len());
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn served_by(agent: &ureq::Agent, port: u16) -> String {
    served_at(agent, &format!("http://127.0.0.1:{port}/"))
}

fn served_at(agent: &ureq::Agent, uri: &str) -> String {
    let request = ureq::http::Request::get(uri).header("host", "t.test").body(()).unwrap();
    let mut body = String::new();
    agent.run(request).unwrap().into_body().into_reader().read_to_string(&mut body).unwrap();
    body
}

#[test]
fn after_a_burst_one_warm_connection_serves_sequential_requests() {
    const BURST: usize = 3;
    let port = port_echo_backend(BURST);
    let agent = ingressd::proxy::upstream::agent(&test_config());

    // Three requests at once: the backend answers none until all three
    // connections are open, so three connections go back to the pool.
    let burst: HashSet<String> = thread::scope(|scope| {
        let requests: Vec<_> = (0..BURST).map(|_| scope.spawn(|| served_by(&agent, port))).collect();
        requests.into_iter().map(|request| request.join().unwrap()).collect()
    });
    assert_eq!(burst.len(), BURST, "the burst used {burst:?}");

    let sequential: Vec<String> = (0..10).map(|_| served_by(&agent, port)).collect();
    assert!(burst.contains(&sequential[0]), "a new connection was opened: {sequential:?} after {burst:?}");
    assert!(sequential.iter().all(|port| *port == sequential[0]), "sequential requests cycled through {sequential:?}");
}

/// Interleaved requests to two destinations: each reuses its own one
/// connection (a check-in and a check-out must agree on the destination's
/// hash, or every request would open a new connection).
#[test]
fn interleaved_destinations_each_reuse_their_connection() {
    let (first, second) = (port_echo_backend(1), port_echo_backend(1));
    let agent = ingressd::proxy::upstream::agent(&test_config());
    let served: Vec<(String, String)> = (0..5).map(|_| (served_by(&agent, first), served_by(&agent, second))).collect();
    assert!(served.iter().all(|pair| *pair == served[0]), "connections changed: {served:?}");
}

/// An authority's case does not make another destination: a connection
/// opened for `localhost` serves `LocalHost`, as in the release.
#[test]
fn authority_case_does_not_split_the_pool() {
    let port = port_echo_backend(1);
    let agent = ingressd::proxy::upstream::agent(&test_config());
    let lower = served_at(&agent, &format!("http://localhost:{port}/"));
    let mixed = served_at(&agent, &format!("http://LocalHost:{port}/"));
    let upper = served_at(&agent, &format!("http://LOCALHOST:{port}/"));
    assert_eq!((&lower, &lower), (&mixed, &upper), "each spelling opened its own connection");
}

/// Calls on the agent's own configuration and calls with one of their own
/// that differs only in what a connection does not depend on (timeouts, as
/// routes set them) share one connection; a configuration with another
/// User-Agent (which a proxy tunnel would send) gets its own (change 14: a
/// call on its agent's configuration skips the comparison).
#[test]
fn request_configurations_share_the_pool_as_before() {
    let port = port_echo_backend(1);
    let agent = ingressd::proxy::upstream::agent(&test_config());
    let uri = format!("http://127.0.0.1:{port}/");
    let request = || ureq::http::Request::get(uri.as_str()).header("host", "t.test").body(()).unwrap();
    let read = |response: ureq::http::Response<ureq::Body>| {
        let mut body = String::new();
        response.into_body().into_reader().read_to_string(&mut body).unwrap();
        body
    };
    let own = || read(agent.run(request()).unwrap());
    let timed = || {
        let request = agent.configure_request(request()).timeout_per_read(Some(std::time::Duration::from_secs(7))).build();
        read(agent.run(request).unwrap())
    };
    let first = own();
    let served = [timed(), own(), timed()];
    assert!(served.iter().all(|port| *port == first), "{first} then {served:?}");

    let other_agent = agent.configure_request(request()).user_agent("another/1").build();
    let other = read(agent.run(other_agent).unwrap());
    assert_ne!(other, first, "a configuration with another User-Agent shared the connection");
    assert_eq!(own(), first);
}

/// A response's body handler (boxed where it is made since change 15, not
/// where its body is) still owns the connection: a body read to its end,
/// whole or through a borrowed reader, gives it back to the pool; a body
/// dropped unread closes it, as in the release.
#[test]
fn a_body_read_to_its_end_gives_back_its_connection() {
    let port = port_echo_backend(1);
    let agent = ingressd::proxy::upstream::agent(&test_config());
    let uri = format!("http://127.0.0.1:{port}/");
    let request = || ureq::http::Request::get(uri.as_str()).header("host", "t.test").body(()).unwrap();

    let first = served_by(&agent, port);
    let mut response = agent.run(request()).unwrap();
    let mut borrowed = String::new();
    response.body_mut().as_reader().read_to_string(&mut borrowed).unwrap();
    assert_eq!(borrowed, first, "a borrowed reader did not reuse the connection");
    assert_eq!(served_by(&agent, port), first, "a body read through a borrowed reader kept its connection");

    drop(agent.run(request()).unwrap());
    assert_ne!(served_by(&agent, port), first, "a body dropped unread gave back its connection");
}
