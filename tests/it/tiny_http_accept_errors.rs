//! Fix 2: an accept() error (here EMFILE) is logged and retried instead of ending the accept
//! loop for good. The server runs in a child process whose descriptor limit is lowered with
//! the shell's `ulimit -n`, so the rest of the test suite keeps its descriptors.

use crate::support;
use crate::tiny_http_common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::http::*;
use support::wait::wait_until;
use tiny_http::Limits;
use tiny_http_common::*;

const CHILD_ENV: &str = "TINY_HTTP_EMFILE_CHILD";

#[test]
fn accept_loop_survives_running_out_of_file_descriptors() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" tiny_http_accept_errors::emfile_child --exact --nocapture --test-threads=1"#)
        .arg(&exe)
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the child test did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    assert!(status.success(), "child failed:\n{output}");
    assert!(
        output.contains("tiny_http_accept_errors::emfile_child ... ok"),
        "child test did not run:\n{output}"
    );
}

/// Runs only inside the child started above.
///
/// A blocked accept() already holds the number of its future descriptor, so EMFILE shows up
/// on the accept() call made while the table is full: after serving connection A (whose client
/// socket takes the last descriptor; the server's side uses the one its accept() held), the
/// accept loop's next call fails.
#[test]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 2, answer_ok);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    // Once this connection is closed, the accept thread is blocked in accept() again.
    let (head, _) = exchange(addr, request).unwrap();
    assert_eq!(status_of(&head), 200);
    assert!(wait_until(PATIENCE, || server.num_connections() == 0));

    let mut fillers = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        fillers.push(file);
    }
    assert!(fillers.len() < 64, "ulimit -n did not apply");

    // Connection A (kept open): its client socket uses the last descriptor.
    fillers.truncate(fillers.len() - 1);
    let mut kept_open = connect(addr);
    kept_open.write_all(request).unwrap();
    let (head, _) = read_sized_response(&mut kept_open).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");

    // Connection B waits in the backlog: every accept() fails with EMFILE meanwhile.
    fillers.pop();
    let mut client = connect(addr);
    client.write_all(request).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let starved = client.read(&mut byte);
    assert!(
        matches!(&starved, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "expected the connection to wait in the backlog until a descriptor is free \
         (EOF or a reset means the listener was closed), got {starved:?}"
    );

    // Descriptors come back: the pending connection and new ones are served.
    drop(fillers);
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let (head, _) = read_sized_response(&mut client).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
    let (head, _) = exchange(addr, request).unwrap();
    assert_eq!(status_of(&head), 200, "{head}");
}
