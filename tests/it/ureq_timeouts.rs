//! The vendored ureq's timeouts (change 8): a call reads the clock only for
//! a time some configured timeout counts from. Every budget must still
//! bind, with its own reason, and a phase's budget must still count from
//! the end of the phase before it, whichever timeouts are configured alone.
//! Change 11 moves a call's timings into its body handler or its redirect.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::{Agent, Error, Timeout};

/// What the backend does once it has read a request head.
#[derive(Clone, Copy)]
enum Answer {
    /// Nothing: the connection stays open and silent.
    Silent,
    /// Waits, then answers with a 2-byte body.
    After(Duration),
    /// Sends a head announcing 10 bytes and 2 of them, then stays silent.
    StalledBody,
    /// Sends the head at once and the 2-byte body after a pause.
    BodyAfter(Duration),
    /// Reads a 4-byte body (without sending `100 Continue`), then answers.
    ReadBodyFirst,
    /// Answers the connection's first request with a redirect (with a body
    /// or without one) and stays silent on the next.
    RedirectThenSilent { with_body: bool },
    /// Answers `204 No Content`.
    NoContent,
}

fn backend(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream, answer));
        }
    });
    port
}

/// Serves requests on one connection as `answer` says, keeping it open.
fn serve(stream: TcpStream, answer: Answer) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut first = true;
    loop {
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
        let sent = match answer {
            Answer::Silent => {
                let _ = reader.read(&mut [0; 1]);
                return;
            }
            Answer::After(pause) => {
                thread::sleep(pause);
                writer.write_all(format!("{head}ok").as_bytes())
            }
            Answer::StalledBody => {
                let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok");
                let _ = reader.read(&mut [0; 1]);
                return;
            }
            Answer::BodyAfter(pause) => {
                let _ = writer.write_all(head.as_bytes());
                thread::sleep(pause);
                writer.write_all(b"ok")
            }
            Answer::ReadBodyFirst => {
                let mut body = [0; 4];
                let _ = reader.read_exact(&mut body);
                writer.write_all(format!("{head}ok").as_bytes())
            }
            Answer::RedirectThenSilent { with_body } if first => {
                let body = if with_body { "moved" } else { "" };
                writer.write_all(format!("HTTP/1.1 302 Found\r\nlocation: /next\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes())
            }
            Answer::RedirectThenSilent { .. } => {
                let _ = reader.read(&mut [0; 1]);
                return;
            }
            Answer::NoContent => writer.write_all(b"HTTP/1.1 204 No Content\r\n\r\n"),
        };
        first = false;
        if sent.is_err() {
            return;
        }
    }
}

fn agent(configure: impl FnOnce(ureq::config::ConfigBuilder<ureq::typestate::AgentScope>) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope>) -> Agent {
    let config: Config = configure(Agent::config_builder().http_status_as_error(false)).build();
    Agent::new_with_config(config)
}

fn get(agent: &Agent, port: u16) -> Result<String, Error> {
    let request = ureq::http::Request::get(format!("http://127.0.0.1:{port}/")).body(()).unwrap();
    let mut body = String::new();
    agent.run(request)?.into_body().into_reader().read_to_string(&mut body).map_err(Error::Io)?;
    Ok(body)
}

/// The timeout a failed call reports, from the call or from its body read.
fn timeout_of(err: &Error) -> Option<Timeout> {
    match err {
        Error::Timeout(timeout) => Some(*timeout),
        Error::Io(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            Some(Error::Timeout(timeout)) => Some(*timeout),
            _ => None,
        },
        _ => None,
    }
}

/// Runs a GET that must time out with `expected` about `after` in.
fn assert_times_out(agent: &Agent, port: u16, expected: Timeout, after: Duration) {
    let started = Instant::now();
    let err = get(agent, port).expect_err("the call was expected to time out");
    let took = started.elapsed();
    assert_eq!(timeout_of(&err), Some(expected), "{err:?}");
    assert!(took >= after - Duration::from_millis(20), "{expected:?} fired after {took:?}, before its {after:?}");
    assert!(took < after + Duration::from_secs(2), "{expected:?} fired after {took:?}");
}

const BUDGET: Duration = Duration::from_millis(300);

#[test]
fn each_total_budget_binds_with_its_reason() {
    let silent = backend(Answer::Silent);
    assert_times_out(&agent(|c| c.timeout_global(Some(BUDGET))), silent, Timeout::Global, BUDGET);
    assert_times_out(&agent(|c| c.timeout_per_call(Some(BUDGET))), silent, Timeout::PerCall, BUDGET);
    assert_times_out(&agent(|c| c.timeout_recv_response(Some(BUDGET))), silent, Timeout::RecvResponse, BUDGET);
    assert_times_out(&agent(|c| c.timeout_per_read(Some(BUDGET))), silent, Timeout::PerRead, BUDGET);

    let stalled = backend(Answer::StalledBody);
    assert_times_out(&agent(|c| c.timeout_recv_body(Some(BUDGET))), stalled, Timeout::RecvBody, BUDGET);
    // A global budget set with others still binds the body.
    assert_times_out(
        &agent(|c| c.timeout_global(Some(BUDGET)).timeout_connect(Some(Duration::from_secs(5)))),
        stalled,
        Timeout::Global,
        BUDGET,
    );
}

/// The body's budget counts from the end of the response head, also when
/// no timeout before it is configured (so nothing else needs that time).
#[test]
fn body_budget_starts_after_a_slow_head() {
    let slow_head = backend(Answer::After(Duration::from_millis(400)));
    let agent = agent(|c| c.timeout_recv_body(Some(BUDGET)));
    assert_eq!(get(&agent, slow_head).unwrap(), "ok");

    let slow_body = backend(Answer::BodyAfter(Duration::from_millis(600)));
    assert_times_out(&agent, slow_body, Timeout::RecvBody, BUDGET);
}

/// The response's budget counts from the end of the request, alone or with
/// a body's budget after it, and a pooled connection serves the next call.
#[test]
fn response_budget_alone_and_with_body_budget() {
    let slow_head = backend(Answer::After(Duration::from_millis(100)));
    for agent in [
        agent(|c| c.timeout_recv_response(Some(BUDGET))),
        agent(|c| c.timeout_recv_response(Some(BUDGET)).timeout_recv_body(Some(BUDGET))),
        agent(|c| c.timeout_connect(Some(BUDGET)).timeout_per_read(Some(BUDGET))),
    ] {
        for _ in 0..3 {
            assert_eq!(get(&agent, slow_head).unwrap(), "ok");
        }
    }
}

/// A request expecting `100 Continue` waits the await-100 budget, then sends
/// its body anyway: the wait counts from the end of the request head.
#[test]
fn await_100_budget_ends_the_wait() {
    let port = backend(Answer::ReadBodyFirst);
    let agent = agent(|c| c.timeout_await_100(Some(Duration::from_millis(200))).timeout_global(Some(Duration::from_secs(10))));
    let request = ureq::http::Request::post(format!("http://127.0.0.1:{port}/")).header("expect", "100-continue").body("body").unwrap();
    let started = Instant::now();
    let mut body = String::new();
    agent.run(request).unwrap().into_body().into_reader().read_to_string(&mut body).unwrap();
    assert_eq!(body, "ok");
    assert!(started.elapsed() >= Duration::from_millis(180), "the body went out after {:?}", started.elapsed());
}

/// A call's timings move into its body handler, or into the next call when
/// it follows a redirect (change 11: moved, not swapped out for a default):
/// the global budget still spans the redirect, with or without a body on
/// it, and a response without a body, or a redirect not followed, leaves
/// its connection to serve the next call.
#[test]
fn timings_follow_the_call_through_redirects_and_empty_bodies() {
    for with_body in [false, true] {
        let port = backend(Answer::RedirectThenSilent { with_body });
        assert_times_out(&agent(|c| c.timeout_global(Some(BUDGET))), port, Timeout::Global, BUDGET);
    }

    let no_content = backend(Answer::NoContent);
    let agent_without_redirects = agent(|c| c.max_redirects(0).timeout_recv_body(Some(BUDGET)).timeout_global(Some(Duration::from_secs(10))));
    for _ in 0..3 {
        assert_eq!(get(&agent_without_redirects, no_content).unwrap(), "");
    }
    for with_body in [false, true] {
        let port = backend(Answer::RedirectThenSilent { with_body });
        let request = ureq::http::Request::get(format!("http://127.0.0.1:{port}/")).body(()).unwrap();
        let response = agent_without_redirects.run(request).unwrap();
        assert_eq!(response.status(), 302);
        let mut body = String::new();
        response.into_body().into_reader().read_to_string(&mut body).unwrap();
        assert_eq!(body, if with_body { "moved" } else { "" });
    }
}
