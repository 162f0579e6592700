//! The vendored ureq-proto's trace dumps (change 9: whether tracing is on is
//! asked once per dump, not once per 16-byte row): with tracing on, the
//! request head, the response head and the body still appear as hex rows;
//! with it off, none do. A capturing logger is process-wide, hence its own
//! test binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::thread;

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        if record.level() == log::Level::Trace && record.target().starts_with("ureq_proto") {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(record.args().to_string());
            }
        }
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn take_lines() -> Vec<String> {
    CAPTURE.0.lock().map(|mut lines| std::mem::take(&mut *lines)).unwrap_or_default()
}

const BODY: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

/// Answers every request on a connection with `BODY`.
fn backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{BODY}", BODY.len());
                            if writer.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    port
}

fn get(agent: &ureq::Agent, port: u16) {
    let request = ureq::http::Request::get(format!("http://127.0.0.1:{port}/traced")).header("host", "t.test").body(()).unwrap();
    let mut body = String::new();
    agent.run(request).unwrap().into_body().into_reader().read_to_string(&mut body).unwrap();
    assert_eq!(body, BODY);
}

#[test]
fn heads_and_bodies_are_dumped_only_when_tracing() {
    log::set_logger(&CAPTURE).expect("the only logger in this binary");
    let port = backend();
    let agent = ureq::Agent::new_with_defaults();

    log::set_max_level(log::LevelFilter::Trace);
    get(&agent, port);
    let lines = take_lines();
    let has_row = |hex: &str, text: &str| lines.iter().any(|line| line.starts_with(hex) && line.ends_with(text));
    // The request head's first row, the response head's, and every row of the body.
    assert!(has_row("4745 5420 2f74 7261 6365 6420 4854 5450 ", "GET./traced.HTTP"), "{lines:#?}");
    assert!(has_row("4854 5450 2f31 2e31 2032 3030 204f 4b0d ", "HTTP/1.1.200.OK."), "{lines:#?}");
    assert!(has_row("6162 6364 6566 6768 696a 6b6c 6d6e 6f70 ", "abcdefghijklmnop"), "{lines:#?}");
    assert!(has_row("7172 7374 7576 7778 797a 3031 3233 3435 ", "qrstuvwxyz012345"), "{lines:#?}");
    assert!(has_row("3637 3839 ---- ---- ---- ---- ---- ---- ", "6789............"), "{lines:#?}");

    log::set_max_level(log::LevelFilter::Debug);
    get(&agent, port);
    assert_eq!(take_lines(), Vec::<String>::new());
}
