//! TLS termination: the certificate set compiled from Ingress TLS Secrets, the
//! SNI resolver rustls consults at handshake time, and the HTTPS accept loop.
//!
//! - [`certs`]: pure compilation of Secrets into a [`CertSet`] (cache thread).
//! - [`client_auth`]: client-certificate settings per host (`auth-tls-*`),
//!   chosen from the ClientHello, verified right after the handshake.
//! - [`der`], [`dn`]: the small codecs compilation and client
//!   certificates need.
//! - [`config`]: the rustls `ServerConfig` whose resolver reads the live set.
//! - [`stream`]: one TLS session as a stream tiny_http serves; the handshake
//!   runs on the connection's own thread with a deadline.
//! - [`listener`]: the accept loop that hands sockets to tiny_http.
//! - [`upstream`]: the client side, TLS to backends (`backend-protocol: HTTPS`).

pub mod certs;
pub mod client_auth;
pub mod config;
pub mod der;
pub mod dn;
pub mod listener;
pub mod stream;
pub mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};

pub use certs::{CertEntry, CertSet};
pub use config::{server_config, HttpsConfig, LiveTls};
pub use listener::{spawn_listener, HttpsListener};
pub use stream::TlsStream;

/// Secrets rejected since start; `ingressd_tls_secret_errors_total`.
static SECRET_ERRORS: AtomicU64 = AtomicU64::new(0);

/// The value of the `ingressd_tls_secret_errors_total` counter: Secret
/// versions rejected because their certificate or key was unusable.
pub fn secret_errors_total() -> u64 {
    SECRET_ERRORS.load(Ordering::Relaxed)
}

/// Appends the TLS metrics in the Prometheus text format, for the admin
/// server's /metrics: the rejected-Secret counter and, per served
/// certificate, the seconds left until its notAfter (negative once expired),
/// so an alert can fire before clients start failing. The default
/// certificate has `host=""`.
pub fn write_metrics(certs: &CertSet, now_unix: i64, out: &mut String) {
    use crate::prometheus::{self, Type};
    prometheus::single(
        out,
        "ingressd_tls_secret_errors_total",
        Type::Counter,
        "TLS Secret versions rejected (unparsable or mismatched certificate or key).",
        secret_errors_total(),
    );
    const EXPIRY: &str = "ingressd_tls_certificate_expiry_seconds";
    prometheus::header(out, EXPIRY, Type::Gauge, "Seconds until a served certificate's notAfter.");
    for entry in certs.entries() {
        let secret = entry.secret.to_string();
        let labels = [("host", entry.host.as_deref().unwrap_or("")), ("secret", secret.as_str())];
        prometheus::sample(out, EXPIRY, &labels, entry.not_after - now_unix);
    }
}

/// Why a TLS Secret could not be used. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A Secret data value is not base64; `offset` is the first bad byte.
    Base64 { offset: usize },
    /// The Secret has no such data key (`tls.crt` or `tls.key`).
    MissingData(&'static str),
    /// `tls.crt` holds no PEM `CERTIFICATE` block, or a block is malformed.
    Certificate(String),
    /// A certificate is not the DER the expiry walk expects (what was wrong).
    Der(&'static str),
    /// `tls.key` holds no PKCS#1, PKCS#8 or SEC1 key rustls can sign with.
    Key(String),
    /// The private key does not belong to the first certificate.
    KeyMismatch,
}

impl From<crate::base64::InvalidBase64> for Error {
    fn from(invalid: crate::base64::InvalidBase64) -> Error {
        Error::Base64 { offset: invalid.offset }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Base64 { offset } => write!(f, "invalid base64 at byte {offset}"),
            Error::MissingData(key) => write!(f, "no {key} in the Secret's data"),
            Error::Certificate(why) => write!(f, "tls.crt: {why}"),
            Error::Der(why) => write!(f, "tls.crt: malformed certificate: {why}"),
            Error::Key(why) => write!(f, "tls.key: {why}"),
            Error::KeyMismatch => f.write_str("tls.key does not match the certificate in tls.crt"),
        }
    }
}

impl std::error::Error for Error {}
