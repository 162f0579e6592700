//! Change 34: a dropped request gives its head's buffers back to its connection, which
//! reads its next head into them. Heads read into recycled buffers carry nothing of the
//! previous ones, also when requests are answered on other threads (the buffers may come
//! back while the next head is read, or after) and when heads shrink and grow.

use crate::tiny_http_common;

use std::time::Duration;

use tiny_http::{Limits, Request, Response};
use tiny_http_common::*;

fn describe(request: Request) {
    // Held a moment, so the next head may be read while this request lives.
    std::thread::sleep(Duration::from_millis(2));
    let mut text = format!("{}\n", request.url());
    for header in request.headers() {
        text.push_str(&format!("{}=[{}]\n", header.field, header.value));
    }
    let _ = request.respond(Response::from_string(text));
}

fn case(i: usize) -> (Vec<u8>, String) {
    let target = format!("/{}", "t".repeat(i * 37 % 300));
    let mut raw = format!("GET {target} HTTP/1.1\r\n");
    let mut echo = format!("{target}\n");
    for h in 0..(i * 7 % 12) {
        let value = format!("{i}-{h}-{}", "v".repeat((i + h) * 13 % 200));
        raw.push_str(&format!("X-{h}: {value}\r\n"));
        echo.push_str(&format!("X-{h}=[{value}]\n"));
    }
    raw.push_str("\r\n");
    (raw.into_bytes(), echo)
}

#[test]
fn recycled_head_buffers_carry_nothing_over() {
    let (server, addr) = start_server(Limits::default());
    spawn_workers(&server, 4, describe);
    let cases: Vec<_> = (0..60).map(case).collect();

    let mut client = connect(addr);
    expect_answers_one_by_one(&mut client, &cases);

    let mut client = connect(addr);
    expect_answers_pipelined(&mut client, &cases);
}
