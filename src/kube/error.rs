//! The one error type of the API client and the watchers.
//!
//! Variants are chosen by what the watcher must do next: relist on
//! [`Error::Expired`], re-read the token on [`Error::Unauthorized`], back off
//! on everything else. Messages never contain the bearer token.

use std::fmt;
use std::time::Duration;

/// Why a request to the API server did not give a usable answer.
#[derive(Debug)]
pub enum Error {
    /// The command line or a startup file is unusable (bad URL, unreadable CA
    /// file, CA file without a certificate); ingressd cannot start.
    Config(String),
    /// The API server answered with an HTTP error status not covered by a more
    /// specific variant; `message` is the `Status` object's message when the
    /// body had one, `retry_after` the server's `Retry-After` (429, 503).
    Http { status: u16, message: String, retry_after: Option<Duration> },
    /// HTTP 410 Gone or a watch ERROR event with code 410: the resourceVersion
    /// or continue token is too old and the kind must be listed again.
    Expired(String),
    /// HTTP 401: the token is missing, expired or revoked.
    Unauthorized,
    /// The connection could not be made or broke (refused, reset, TLS failure).
    Transport(String),
    /// A connect, response or per-read timeout expired.
    Timeout(String),
    /// A response body was not the JSON the API promises.
    Decode(String),
    /// HTTP 409 on a write: the object changed since it was read (stale
    /// resourceVersion) or a create found it already there; re-read, then
    /// decide again.
    Conflict(String),
}

impl Error {
    /// Whether the error shows the API server itself was reached and answered.
    /// Used for the `api_reachable` gauge: a 403 or 410 still proves the server is up.
    pub fn server_answered(&self) -> bool {
        matches!(self, Error::Http { .. } | Error::Expired(_) | Error::Unauthorized | Error::Decode(_) | Error::Conflict(_))
    }
}

impl Error {
    /// How long the server asked clients to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::Http { status, message, .. } if message.is_empty() => write!(f, "HTTP {status}"),
            Error::Http { status, message, .. } => write!(f, "HTTP {status}: {message}"),
            Error::Expired(m) => write!(f, "resource version expired (410): {m}"),
            Error::Unauthorized => f.write_str("unauthorized (401): token missing, expired or revoked"),
            Error::Transport(m) => write!(f, "transport: {m}"),
            Error::Timeout(m) => write!(f, "timeout: {m}"),
            Error::Decode(m) => write!(f, "undecodable response: {m}"),
            Error::Conflict(m) => write!(f, "conflict (409): {m}"),
        }
    }
}

impl std::error::Error for Error {}
