//! One line per request on stdout, as text or JSON.
//!
//! Every value that came from the client is escaped so that a line stays one
//! line whatever bytes were sent (no log injection through a path or Host).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::AccessLog;
use crate::proxy::Outcome;

/// Formats one access-log line (without the newline).
pub fn format(outcome: &Outcome, format: AccessLog, now: SystemTime) -> Option<String> {
    let time = rfc3339(now);
    let client = outcome.client.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
    let ingress = outcome.ingress.as_ref().map(|k| k.to_string()).unwrap_or_else(|| "-".into());
    let upstream = outcome.upstream.as_deref().unwrap_or("-");
    let upstream_status = outcome.upstream_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    let millis = outcome.duration.as_secs_f64() * 1000.0;
    match format {
        AccessLog::Off => None,
        AccessLog::Text => Some(format!(
            "{time} {client} \"{}\" \"{} {}\" {} {} {millis:.3}ms upstream={upstream} upstream_status={upstream_status} request_id=\"{}\" ingress={ingress}",
            escape_text(&outcome.host),
            escape_text(&outcome.method),
            escape_text(&outcome.path),
            outcome.status,
            outcome.bytes_sent,
            escape_text(&outcome.request_id),
        )),
        AccessLog::Json => {
            let line = JsonLine {
                time: &time,
                client: &client,
                host: &outcome.host,
                method: &outcome.method,
                path: &outcome.path,
                status: outcome.status,
                bytes_sent: outcome.bytes_sent,
                duration_ms: (millis * 1000.0).round() / 1000.0,
                upstream,
                upstream_status: outcome.upstream_status.map_or_else(|| serde_json::json!("-"), serde_json::Value::from),
                request_id: &outcome.request_id,
                ingress: &ingress,
            };
            serde_json::to_string(&line).ok()
        }
    }
}

/// One JSON access-log line; serde escapes every control character, so the
/// line stays one line, and keeps the fields in this order.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    client: &'a str,
    host: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    bytes_sent: u64,
    duration_ms: f64,
    upstream: &'a str,
    /// The upstream's status, or "-" when no upstream answered.
    upstream_status: serde_json::Value,
    request_id: &'a str,
    ingress: &'a str,
}

/// Writes the line for `outcome` to stdout (one `write` so lines from
/// different workers never interleave).
pub fn write(outcome: &Outcome, format: AccessLog) {
    // Off costs a request nothing: not the clock, not the formatting.
    if format == AccessLog::Off {
        return;
    }
    if let Some(mut line) = self::format(outcome, format, SystemTime::now()) {
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// Escapes quotes, backslashes, control characters and non-ASCII as `\xNN`.
fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
}


/// `2026-11-25T10:00:00.123Z` from a system time, without a date crate.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::civil::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome() -> Outcome {
        Outcome {
            client: Some("10.0.0.9:5555".parse().expect("addr")),
            host: "shop.example.com".into(),
            method: "GET".into(),
            path: "/cart?x=1".into(),
            status: 200,
            bytes_sent: 1234,
            duration: Duration::from_micros(1500),
            upstream: Some("10.1.0.4:8080".into()),
            upstream_status: Some(200),
            request_id: "abc".into(),
            ingress: Some(crate::kube::objects::ObjectKey::new("shop", "web")),
            service: Some("web".into()),
            ..Default::default()
        }
    }

    #[test]
    fn text_line_has_every_field() {
        let line = format(&outcome(), AccessLog::Text, UNIX_EPOCH + Duration::from_secs(1_764_064_800)).expect("line");
        assert_eq!(
            line,
            "2025-11-25T10:00:00.000Z 10.0.0.9:5555 \"shop.example.com\" \"GET /cart?x=1\" 200 1234 1.500ms \
             upstream=10.1.0.4:8080 upstream_status=200 request_id=\"abc\" ingress=shop/web"
        );
    }

    #[test]
    fn hostile_bytes_stay_on_one_line() {
        let mut o = outcome();
        o.path = "/a\r\nFAKE 200 \"x\"\u{1b}[31m\u{e9}".into();
        o.host = "h\nx".into();
        for f in [AccessLog::Text, AccessLog::Json] {
            let line = format(&o, f, SystemTime::now()).expect("line");
            assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\u{1b}'), "{line}");
        }
        let json = format(&o, AccessLog::Json, SystemTime::now()).expect("line");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["path"], "/a\r\nFAKE 200 \"x\"\u{1b}[31m\u{e9}");
        assert_eq!(value["status"], 200);
        assert_eq!(value["ingress"], "shop/web");
        assert_eq!(value["upstream_status"], 200);
        assert_eq!(value["duration_ms"], 1.5);
        let unanswered = format(&Outcome::default(), AccessLog::Json, SystemTime::now()).expect("line");
        let unanswered: serde_json::Value = serde_json::from_str(&unanswered).expect("valid JSON");
        assert_eq!(unanswered["upstream_status"], "-");
        assert_eq!(unanswered["ingress"], "-");
    }

    #[test]
    fn off_writes_nothing() {
        assert!(format(&outcome(), AccessLog::Off, SystemTime::now()).is_none());
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
    }
}
