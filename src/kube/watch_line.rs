//! The watch wire format, without I/O.
//!
//! A watch response is a chunked body of JSON objects, one per line. Chunk
//! boundaries fall anywhere, so [`LineSplitter`] reassembles lines from
//! arbitrary byte chunks with a bounded buffer, and [`decode_event`] turns one
//! line into a [`WatchEvent`] for a given kind.

use serde::Deserialize;

use super::objects::ObjectKey;
use super::{Object, Resource};

/// Longest line accepted. etcd refuses objects above 1.5 MiB by default, so
/// anything near this is garbage or an attack on memory.
pub const MAX_LINE: usize = 32 << 20;

/// A line exceeded the maximum; its bytes were dropped up to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong {
    pub limit: usize,
}

/// Splits a byte stream into newline-terminated lines. Blank lines (the API
/// server's keep-alives) are skipped; a trailing `\r` is removed.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Bytes before this index are already consumed lines.
    start: usize,
    /// Bytes before this index (and after `start`) hold no newline.
    scanned: usize,
    max_line: usize,
    /// After an over-long line: drop input until the next newline.
    discarding: bool,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter { buf: Vec::new(), start: 0, scanned: 0, max_line, discarding: false }
    }

    /// Adds bytes as they came off the wire.
    pub fn push(&mut self, mut chunk: &[u8]) {
        if self.discarding {
            match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.discarding = false;
                    chunk = &chunk[i + 1..];
                }
                None => return,
            }
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete non-blank line, an error for an over-long line (the
    /// splitter then resynchronises at the next newline), or None until more
    /// input arrives.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineTooLong>> {
        loop {
            let Some(offset) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.max_line {
                    self.buf.clear();
                    self.start = 0;
                    self.scanned = 0;
                    self.discarding = true;
                    return Some(Err(LineTooLong { limit: self.max_line }));
                }
                return None;
            };
            let end = self.scanned + offset;
            let line_start = self.start;
            self.start = end + 1;
            self.scanned = self.start;
            let mut line = &self.buf[line_start..end];
            if line.len() > self.max_line {
                return Some(Err(LineTooLong { limit: self.max_line }));
            }
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(Ok(line.to_vec()));
        }
    }

    /// Bytes held for an incomplete line; bounded by about the maximum line.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// The `Status` object of an ERROR event or an error response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Status {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// One decoded line of a watch stream.
#[derive(Debug, Clone)]
pub enum WatchEvent<T = Object> {
    Added(T),
    Modified(T),
    Deleted(T),
    /// Only the resourceVersion is meaningful; watching resumes from it.
    Bookmark { resource_version: String },
    /// The server ended the watch with a status (410 means relist).
    Error(Status),
}

/// Why a line did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON watch event (`{"type":..,"object":..}`) at all.
    Malformed(String),
    /// A `type` this client does not know.
    UnknownType(String),
    /// The event is well-formed but its object does not decode as the kind;
    /// `key` names it when its metadata could be read.
    Object { key: Option<ObjectKey>, reason: String },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(reason) => write!(f, "malformed watch line: {reason}"),
            DecodeError::UnknownType(t) => write!(f, "unknown watch event type {t:?}"),
            DecodeError::Object { key: Some(key), reason } => write!(f, "object {key} does not decode: {reason}"),
            DecodeError::Object { key: None, reason } => write!(f, "object without readable name does not decode: {reason}"),
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: String,
    /// Kept as its JSON text and decoded once the type says as what.
    #[serde(default, borrow)]
    object: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NameOnly {
    name: String,
    namespace: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct MetaOnly<T: Default> {
    metadata: T,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct VersionOnly {
    resource_version: String,
}

/// namespace/name of an undecodable object, for the log line, when readable.
fn object_key(object: &str) -> Option<ObjectKey> {
    let meta = serde_json::from_str::<MetaOnly<NameOnly>>(object).ok()?.metadata;
    (!meta.name.is_empty()).then(|| ObjectKey::new(&meta.namespace, &meta.name))
}

/// Decodes one object, given as its JSON text, as `resource`'s type.
pub fn decode_object<T>(resource: &Resource<T>, object: &str) -> Result<T, DecodeError> {
    (resource.decode)(object).map_err(|e| {
        // serde quotes offending values, and a Secret's values are key material.
        let reason = if resource.withhold_values { "a field has the wrong type (value withheld)".to_string() } else { e.to_string() };
        DecodeError::Object { key: object_key(object), reason }
    })
}

/// Decodes one watch line for a watcher of `resource`.
pub fn decode_event<T>(resource: &Resource<T>, line: &[u8]) -> Result<WatchEvent<T>, DecodeError> {
    let envelope: Envelope = serde_json::from_slice(line).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let object = envelope.object.map_or("null", serde_json::value::RawValue::get);
    match envelope.event_type.as_str() {
        "ADDED" => decode_object(resource, object).map(WatchEvent::Added),
        "MODIFIED" => decode_object(resource, object).map(WatchEvent::Modified),
        "DELETED" => decode_object(resource, object).map(WatchEvent::Deleted),
        "BOOKMARK" => {
            let resource_version = serde_json::from_str::<MetaOnly<VersionOnly>>(object)
                .ok()
                .map(|o| o.metadata.resource_version)
                .filter(|rv| !rv.is_empty())
                .ok_or_else(|| DecodeError::Malformed("BOOKMARK without metadata.resourceVersion".into()))?;
            Ok(WatchEvent::Bookmark { resource_version })
        }
        "ERROR" => serde_json::from_str::<Status>(object).map(WatchEvent::Error).map_err(|e| DecodeError::Malformed(e.to_string())),
        other => Err(DecodeError::UnknownType(other.chars().take(64).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::Kind;

    fn drain(splitter: &mut LineSplitter) -> Vec<Result<String, LineTooLong>> {
        std::iter::from_fn(|| splitter.next_line())
            .map(|r| r.map(|l| String::from_utf8(l).expect("utf8")))
            .collect()
    }

    #[test]
    fn line_split_across_chunks() {
        let mut s = LineSplitter::new(1024);
        s.push(b"{\"type\":\"ADD");
        assert!(s.next_line().is_none());
        s.push(b"ED\"}");
        assert!(s.next_line().is_none());
        s.push(b"\n{\"x\"");
        assert_eq!(drain(&mut s), vec![Ok("{\"type\":\"ADDED\"}".to_string())]);
        s.push(b":1}\r\n");
        assert_eq!(drain(&mut s), vec![Ok("{\"x\":1}".to_string())]);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn several_lines_in_one_chunk_and_blank_keepalives() {
        let mut s = LineSplitter::new(1024);
        s.push(b"\n\na\n  \r\nb\nc\n\nd");
        assert_eq!(drain(&mut s), vec![Ok("a".into()), Ok("b".into()), Ok("c".into())]);
        s.push(b"\n");
        assert_eq!(drain(&mut s), vec![Ok("d".into())]);
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let input = b"first line\nsecond\n\nthird one\n";
        for cut in 0..input.len() {
            let mut s = LineSplitter::new(64);
            s.push(&input[..cut]);
            let mut lines = drain(&mut s);
            s.push(&input[cut..]);
            lines.extend(drain(&mut s));
            assert_eq!(lines, vec![Ok("first line".into()), Ok("second".into()), Ok("third one".into())], "cut {cut}");
        }
    }

    /// Random input in random chunkings gives exactly the lines a whole-input
    /// split gives, and random bytes never panic the decoder.
    #[test]
    fn random_chunkings_match_a_reference_split() {
        let mut rng = crate::kube::backoff::XorShift::new(0x5eed);
        for _ in 0..200 {
            let input: Vec<u8> = (0..rng.range(0, 400)).map(|_| b"ab{}\"\n \r"[rng.range(0, 8) as usize]).collect();
            let expected: Vec<Vec<u8>> = input
                .split(|b| *b == b'\n')
                .take(input.split(|b| *b == b'\n').count() - 1)
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .collect();
            let mut s = LineSplitter::new(1024);
            let mut got = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at((rng.range(1, 40) as usize).min(rest.len()));
                s.push(chunk);
                while let Some(line) = s.next_line() {
                    let line = line.expect("short lines");
                    let _ = decode_event(Kind::Secret.resource(), &line);
                    got.push(line);
                }
                rest = tail;
            }
            assert_eq!(got, expected, "input {:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn over_long_line_is_reported_once_and_splitter_resyncs() {
        let mut s = LineSplitter::new(16);
        s.push(b"ok\n0123456789");
        assert_eq!(drain(&mut s), vec![Ok("ok".into())]);
        s.push(b"0123456789");
        assert_eq!(drain(&mut s), vec![Err(LineTooLong { limit: 16 })]);
        s.push(b"more garbage without end");
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.buffered(), 0, "discarded bytes are not kept");
        s.push(b"tail\nnext\n");
        assert_eq!(drain(&mut s), vec![Ok("next".into())]);
        // A complete over-long line arriving in one chunk is reported too.
        s.push(b"0123456789abcdefghij\nafter\n");
        assert_eq!(drain(&mut s), vec![Err(LineTooLong { limit: 16 }), Ok("after".into())]);
    }

    fn big_ingress_line(annotation_bytes: usize) -> String {
        let big = "x".repeat(annotation_bytes);
        format!(
            r#"{{"type":"MODIFIED","object":{{"metadata":{{"name":"big","namespace":"ns","resourceVersion":"9","annotations":{{"a":"{big}"}}}},"spec":{{}}}}}}"#
        )
    }

    #[test]
    fn one_mebibyte_object_in_small_chunks() {
        let line = big_ingress_line(1 << 20) + "\n";
        let mut s = LineSplitter::new(MAX_LINE);
        let mut lines = Vec::new();
        for chunk in line.as_bytes().chunks(16 * 1024) {
            s.push(chunk);
            while let Some(l) = s.next_line() {
                lines.push(l.expect("within limit"));
            }
        }
        assert_eq!(lines.len(), 1);
        match decode_event(Kind::Ingress.resource(), &lines[0]) {
            Ok(WatchEvent::Modified(Object::Ingress(ing))) => {
                assert_eq!(ing.metadata.annotations.get("a").map(str::len), Some(1 << 20));
                assert_eq!(ing.metadata.resource_version, "9");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decodes_each_event_type() {
        let added = br#"{"type":"ADDED","object":{"kind":"Service","metadata":{"name":"s","namespace":"n","resourceVersion":"5"},"spec":{"ports":[{"port":80}]}}}"#;
        match decode_event(Kind::Service.resource(), added) {
            Ok(WatchEvent::Added(Object::Service(svc))) => assert_eq!(svc.spec.ports[0].port, 80),
            other => panic!("unexpected {other:?}"),
        }
        let deleted = br#"{"type":"DELETED","object":{"metadata":{"name":"c"}}}"#;
        assert!(matches!(decode_event(Kind::IngressClass.resource(), deleted), Ok(WatchEvent::Deleted(Object::IngressClass(_)))));
        let bookmark = br#"{"type":"BOOKMARK","object":{"kind":"Secret","metadata":{"resourceVersion":"12345"}}}"#;
        match decode_event(Kind::Secret.resource(), bookmark) {
            Ok(WatchEvent::Bookmark { resource_version }) => assert_eq!(resource_version, "12345"),
            other => panic!("unexpected {other:?}"),
        }
        let expired = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (50)","reason":"Expired","code":410}}"#;
        match decode_event(Kind::EndpointSlice.resource(), expired) {
            Ok(WatchEvent::Error(status)) => {
                assert_eq!(status.code, 410);
                assert_eq!(status.reason, "Expired");
                assert!(status.message.contains("too old"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_naming_the_object_when_possible() {
        assert!(matches!(decode_event(Kind::Ingress.resource(), b"not json"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_event(Kind::Ingress.resource(), b"[1,2]"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_event(Kind::Ingress.resource(), br#"{"object":{}}"#), Err(DecodeError::Malformed(_))));
        assert_eq!(
            decode_event(Kind::Ingress.resource(), br#"{"type":"WEIRD","object":{}}"#).err(),
            Some(DecodeError::UnknownType("WEIRD".into()))
        );
        assert!(matches!(decode_event(Kind::Secret.resource(), br#"{"type":"BOOKMARK","object":{}}"#), Err(DecodeError::Malformed(_))));
        let bad_port = br#"{"type":"ADDED","object":{"metadata":{"name":"web","namespace":"shop"},"spec":{"ports":[{"port":"eighty"}]}}}"#;
        match decode_event(Kind::Service.resource(), bad_port) {
            Err(DecodeError::Object { key, reason }) => {
                assert_eq!(key, Some(ObjectKey::new("shop", "web")));
                assert!(!reason.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        let odd_secret = br#"{"type":"ADDED","object":{"metadata":{"name":"tls","namespace":"shop"},"data":"-----BEGIN PRIVATE KEY-----"}}"#;
        match decode_event(Kind::Secret.resource(), odd_secret) {
            Err(error @ DecodeError::Object { .. }) => {
                let shown = error.to_string();
                assert!(shown.contains("shop/tls") && !shown.contains("PRIVATE KEY"), "{shown}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let nameless = br#"{"type":"ADDED","object":{"metadata":7}}"#;
        assert!(matches!(decode_event(Kind::Service.resource(), nameless), Err(DecodeError::Object { key: None, .. })));
    }
}
