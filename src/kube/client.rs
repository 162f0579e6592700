//! The HTTP(S) client for the Kubernetes API: one ureq Agent shared by all
//! watchers, trusting only the cluster CA.
//!
//! Timeouts are per request kind: a list must finish in bounded time, while a
//! watch may legitimately stay open for its whole `timeoutSeconds`, so it
//! only gets a per-read timeout longer than the bookmark interval. A global
//! timeout would cut every healthy watch short.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, BodyReader};

use super::backoff::Recovery;
use super::list::{decode_list_page, list_query, resource_path, watch_query, ListPage, Selectors};
use super::token::Token;
use super::watch_line::{LineSplitter, Status, MAX_LINE};
use super::{Error, Resource};

/// Connecting, TLS included.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waiting for the response head of a list or watch.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reading one whole list page.
pub const LIST_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Added to a watch's `timeoutSeconds` for its per-read timeout: the server
/// ends the watch by itself at `timeoutSeconds`, so silence beyond this grace
/// means the connection is dead.
pub const WATCH_READ_GRACE: Duration = Duration::from_secs(30);
/// Largest list page body accepted (500 objects of etcd's 1.5 MiB maximum fit).
const LIST_BODY_LIMIT: u64 = 1 << 30;
/// Largest single object read or written by the generic JSON helpers.
const OBJECT_BODY_LIMIT: u64 = 16 << 20;
/// Largest error body read for its Status message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A client bound to one API server.
pub struct ApiClient {
    agent: Agent,
    base: String,
    token: Token,
    watch_read_grace: Duration,
    recovery: Arc<Recovery>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("base", &self.base).field("token", &self.token).finish()
    }
}

/// Parses the CA file into root certificates; a file without any usable
/// certificate would make every request fail later, so it fails now.
fn load_roots(ca_file: &Path) -> Result<RootCerts, Error> {
    let pem = std::fs::read(ca_file).map_err(|e| Error::Config(format!("cannot read CA file {}: {e}", ca_file.display())))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::Config(format!("CA file {} holds no usable certificate", ca_file.display())));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// Checks the API server URL and returns it without a trailing slash.
fn base_url(apiserver: &str) -> Result<(String, bool), Error> {
    let uri: ureq::http::Uri =
        apiserver.parse().map_err(|e| Error::Config(format!("invalid API server URL {apiserver:?}: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(Error::Config(format!("API server URL {apiserver:?} must start with https:// or http://"))),
    };
    if uri.host().is_none_or(str::is_empty) || uri.query().is_some() {
        return Err(Error::Config(format!("API server URL {apiserver:?} needs a host and no query")));
    }
    Ok((apiserver.trim_end_matches('/').to_string(), https))
}

/// Turns an error response into the variant that tells the watcher what to do.
/// Only the delay-seconds form of `Retry-After` is understood; an HTTP date is ignored.
pub fn status_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<Status>(body)
        .map(|s| s.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string());
    match status {
        401 => Error::Unauthorized,
        409 => Error::Conflict(message),
        410 => Error::Expired(message),
        _ => Error::Http {
            status,
            message,
            retry_after: retry_after.and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs),
        },
    }
}

/// Maps a ureq failure, keeping timeouts apart from other transport errors.
fn transport_error(e: ureq::Error) -> Error {
    match e {
        ureq::Error::Timeout(which) => Error::Timeout(format!("{which:?}")),
        ureq::Error::Io(io) => io_error(io),
        other => Error::Transport(other.to_string()),
    }
}

/// A body read error; ureq wraps its own timeouts inside `io::Error`.
fn io_error(e: std::io::Error) -> Error {
    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
        return Error::Timeout(e.to_string());
    }
    match e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()) {
        Some(ureq::Error::Timeout(which)) => Error::Timeout(format!("{which:?}")),
        _ => Error::Transport(e.to_string()),
    }
}

impl ApiClient {
    /// `ca_file` is read only for an `https://` server; with `http://` (for
    /// `kubectl proxy`) it is not needed.
    pub fn new(apiserver: &str, ca_file: &Path, token_file: &Path) -> Result<ApiClient, Error> {
        let (base, https) = base_url(apiserver)?;
        let mut config = Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_send_request(Some(RESPONSE_TIMEOUT))
            .user_agent(concat!("ingressd/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .max_idle_connections(16)
            .max_idle_connections_per_host(16);
        if https {
            let tls = TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .root_certs(load_roots(ca_file)?)
                .build();
            config = config.tls_config(tls);
        }
        Ok(ApiClient { agent: config.build().new_agent(), base, token: Token::new(token_file), watch_read_grace: WATCH_READ_GRACE, recovery: Arc::default() })
    }

    /// Replaces [`WATCH_READ_GRACE`]: a shorter grace finds dead connections
    /// sooner but must still exceed the server's bookmark interval.
    pub fn with_watch_read_grace(mut self, grace: Duration) -> ApiClient {
        self.watch_read_grace = grace;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// See [`Token::generation`].
    pub fn token_generation(&self) -> u64 {
        self.token.generation()
    }

    /// Where every user of this client sleeps out its backoff, so one
    /// successful [`probe`](Self::probe) can end them all.
    pub fn recovery(&self) -> &Arc<Recovery> {
        &self.recovery
    }

    /// `GET /version`: the cheapest request that proves the server answers
    /// authenticated requests (every authenticated client may read it).
    pub fn probe(&self) -> Result<(), Error> {
        let url = format!("{}/version", self.base);
        let mut response = self.get(&url, |c| c.timeout_recv_response(Some(CONNECT_TIMEOUT)).timeout_recv_body(Some(CONNECT_TIMEOUT)).build())?;
        response.body_mut().with_config().limit(ERROR_BODY_LIMIT).read_to_vec().map_err(transport_error)?;
        Ok(())
    }

    /// Sends a GET and returns the response only for a 2xx status.
    fn get(
        &self,
        url: &str,
        configure: impl FnOnce(ureq::config::ConfigBuilder<ureq::typestate::RequestScope<ureq::typestate::WithoutBody>>) -> ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let response = configure(self.authorized(self.agent.get(url)).config()).call().map_err(transport_error)?;
        self.success(response)
    }

    /// Adds the bearer token, when there is one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match self.token.authorization() {
            Some(authorization) => request.header("authorization", authorization),
            None => request,
        }
    }

    /// The response of a 2xx status; any other becomes the [`Error`] that
    /// [`status_error`] maps it to, after re-reading the token on a 401.
    fn success(&self, mut response: ureq::http::Response<ureq::Body>) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = response.body_mut().with_config().limit(ERROR_BODY_LIMIT).read_to_vec().unwrap_or_default();
        if status == 401 {
            self.token.reload();
        }
        Err(status_error(status, retry_after.as_deref(), &body))
    }

    /// Fetches one page of `resource`'s list, narrowed by `narrowed`.
    pub fn list_page<T>(&self, resource: &Resource<T>, namespace: Option<&str>, narrowed: Selectors, continue_token: Option<&str>) -> Result<ListPage<T>, Error> {
        let url = format!("{}{}?{}", self.base, resource_path(resource, namespace), list_query(resource, narrowed, continue_token));
        decode_list_page(resource, &self.get_body(&url)?)
    }

    /// GETs `url` and reads the whole body, within the list timeouts and size limit.
    fn get_body(&self, url: &str) -> Result<Vec<u8>, Error> {
        let mut response = self.get(url, |c| {
            c.timeout_recv_response(Some(RESPONSE_TIMEOUT)).timeout_recv_body(Some(LIST_BODY_TIMEOUT)).build()
        })?;
        response.body_mut().with_config().limit(LIST_BODY_LIMIT).read_to_vec().map_err(transport_error)
    }

    /// Opens a watch of `resource` from `resource_version`, narrowed by
    /// `narrowed`; the server ends it after `timeout_seconds`, and
    /// reads time out only after that plus the grace.
    pub fn watch<T>(&self, resource: &Resource<T>, namespace: Option<&str>, narrowed: Selectors, resource_version: &str, timeout_seconds: u64) -> Result<WatchStream, Error> {
        let url = format!(
            "{}{}?{}",
            self.base,
            resource_path(resource, namespace),
            watch_query(resource, narrowed, resource_version, timeout_seconds)
        );
        let per_read = Duration::from_secs(timeout_seconds) + self.watch_read_grace;
        let response =
            self.get(&url, |c| c.timeout_recv_response(Some(RESPONSE_TIMEOUT)).timeout_per_read(Some(per_read)).build())?;
        Ok(WatchStream::new(resource.name.to_string(), response.into_body().into_reader()))
    }

    /// GETs `path` (with its query, if any) and decodes the JSON body: for
    /// single objects (Leases, Ingresses re-read after a conflict) and the
    /// migration check.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, Error> {
        let body = self.get_body(&format!("{}{}", self.base, path))?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(format!("{path}: {e}")))
    }

    /// POSTs `body` to a collection `path` (create); 409 means it exists.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, Error> {
        self.send_json(self.agent.post(format!("{}{path}", self.base)), path, body)
    }

    /// PUTs `body` to an object `path` (replace); 409 means its
    /// `metadata.resourceVersion` is stale.
    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, Error> {
        self.send_json(self.agent.put(format!("{}{path}", self.base)), path, body)
    }

    fn send_json(
        &self,
        request: ureq::RequestBuilder<ureq::typestate::WithBody>,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Decode(format!("cannot encode {path}: {e}")))?;
        let response = self
            .authorized(request.header("content-type", "application/json"))
            .config()
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .timeout_recv_body(Some(RESPONSE_TIMEOUT))
            .build()
            .send(&bytes[..])
            .map_err(transport_error)?;
        let mut response = self.success(response)?;
        let body = response.body_mut().with_config().limit(OBJECT_BODY_LIMIT).read_to_vec().map_err(transport_error)?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(format!("{path}: {e}")))
    }
}

/// The open body of a watch, read incrementally, never buffered whole.
pub struct WatchStream {
    /// Names the watched kind in log lines.
    kind: String,
    reader: BodyReader<'static>,
    splitter: LineSplitter,
    chunk: Vec<u8>,
}

impl WatchStream {
    fn new(kind: String, reader: BodyReader<'static>) -> WatchStream {
        WatchStream { kind, reader, splitter: LineSplitter::new(MAX_LINE), chunk: vec![0; 64 * 1024] }
    }

    /// The next event line; `Ok(None)` when the server ended the watch cleanly.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, Error> {
        loop {
            match self.splitter.next_line() {
                Some(Ok(line)) => return Ok(Some(line)),
                Some(Err(too_long)) => {
                    log::error!("{}: watch line longer than {} bytes skipped", self.kind, too_long.limit);
                    continue;
                }
                None => {}
            }
            let read = self.reader.read(&mut self.chunk).map_err(io_error)?;
            if read == 0 {
                if self.splitter.buffered() > 0 {
                    log::warn!("{}: watch ended inside a line; {} bytes dropped", self.kind, self.splitter.buffered());
                }
                return Ok(None);
            }
            self.splitter.push(&self.chunk[..read]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_map_to_actions() {
        let gone = br#"{"kind":"Status","status":"Failure","message":"continue token expired","reason":"Expired","code":410}"#;
        assert!(matches!(status_error(410, None, gone), Error::Expired(m) if m == "continue token expired"));
        assert!(matches!(status_error(401, None, b""), Error::Unauthorized));
        let forbidden = br#"{"kind":"Status","message":"secrets is forbidden","code":403}"#;
        assert!(matches!(
            status_error(403, None, forbidden),
            Error::Http { status: 403, message, retry_after: None } if message == "secrets is forbidden"
        ));
        assert!(matches!(
            status_error(502, None, b"<html>bad gateway</html>"),
            Error::Http { status: 502, message, .. } if message.contains("bad gateway")
        ));
        let throttled = status_error(429, Some(" 3 "), b"");
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(status_error(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"").retry_after(), None);
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(base_url("https://10.0.0.1:443/").expect("ok"), ("https://10.0.0.1:443".to_string(), true));
        assert_eq!(base_url("http://127.0.0.1:8001").expect("ok"), ("http://127.0.0.1:8001".to_string(), false));
        assert!(matches!(base_url("ftp://x"), Err(Error::Config(_))));
        assert!(matches!(base_url("10.0.0.1:443"), Err(Error::Config(_))));
        assert!(matches!(base_url("https://"), Err(Error::Config(_))));
    }

    #[test]
    fn ca_file_without_certificate_is_a_startup_error() {
        let path = super::super::token::tests::temp_path("ca.crt");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = ApiClient::new("https://127.0.0.1:6443", &path, Path::new("/nonexistent/token"));
        assert!(matches!(err, Err(Error::Config(m)) if m.contains("no usable certificate")));
        let missing = ApiClient::new("https://127.0.0.1:6443", Path::new("/nonexistent/ca.crt"), Path::new("/nonexistent/token"));
        assert!(matches!(missing, Err(Error::Config(_))));
        // http:// needs no CA at all.
        assert!(ApiClient::new("http://127.0.0.1:8001", Path::new("/nonexistent/ca.crt"), Path::new("/nonexistent/token")).is_ok());
        let _ = std::fs::remove_file(&path);
    }
}
