//! The client-certificate step, right after the route is found (nginx
//! checks `ssl_verify_client` before any location runs): what the
//! connection's handshake found decides whether the request goes on, and
//! the upstream learns it through nginx's `ssl-client-*` headers.
//!
//! Costs nothing unless the connection's SNI host or the route's host has
//! client-certificate settings.

use std::sync::Arc;

use crate::annotations::client_cert::VerifyClient;
use crate::hostname::normalize_host;
use crate::tls::client_auth::{ClientAuth, ClientSession, Verification};

/// The headers this step sets on the upstream request (client-sent ones of
/// these names are removed first).
pub(super) const HEADERS: [&str; 4] = ["ssl-client-verify", "ssl-client-subject-dn", "ssl-client-issuer-dn", "ssl-client-cert"];

/// What the step decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Go on; set these upstream headers.
    Forward(Vec<(&'static str, String)>),
    /// 421: this connection was set up for another host (or other settings);
    /// the client must open a new one.
    Misdirected,
    /// 308 to https: a client-certificate host is never served in plain HTTP.
    RequireHttps,
    /// Answer with this status and text (400 certificate errors, 403 for a
    /// host whose CA is unusable).
    Reject(u16, &'static str),
    /// 302 to `auth-tls-error-page`.
    ErrorPage(String),
}

/// Decides for a request to `host` (the Host header) on a connection whose
/// handshake produced `session` (TLS to a client-certificate host only),
/// routed to a route whose host requires `required` (`None`: no settings).
pub(super) fn decide(secure: bool, session: Option<&ClientSession>, host: &str, required: Option<&Arc<ClientAuth>>) -> Decision {
    if let Some(session) = session {
        // The handshake's settings belong to the SNI name only.
        if session.server_name.as_deref() != Some(normalize_host(host).as_str()) {
            return Decision::Misdirected;
        }
    }
    let (auth, session) = match (required, session) {
        (None, None) => return Decision::Forward(Vec::new()),
        (Some(_), None) if !secure => return Decision::RequireHttps,
        (Some(_), None) => return Decision::Misdirected,
        (Some(required), Some(session)) if !Arc::ptr_eq(required, &session.auth) && **required != *session.auth => return Decision::Misdirected,
        (_, Some(session)) => (&session.auth, session),
    };
    if !auth.usable() {
        return Decision::Reject(403, "client certificate authentication is not available");
    }
    let failure = match (auth.settings.verify, &session.verification) {
        (VerifyClient::On, Verification::None) => Some("No required SSL certificate was sent"),
        (VerifyClient::On | VerifyClient::Optional, Verification::Failed(_)) => Some("The SSL certificate error"),
        _ => None,
    };
    if let Some(text) = failure {
        return match &auth.settings.error_page {
            Some(page) => Decision::ErrorPage(page.clone()),
            None => Decision::Reject(400, text),
        };
    }
    if !auth.subject_allowed(&session.subject_dn) {
        return Decision::Reject(403, "client certificate unauthorized");
    }
    let mut headers = vec![
        ("ssl-client-verify", session.verification.header_value()),
        ("ssl-client-subject-dn", session.subject_dn.clone()),
        ("ssl-client-issuer-dn", session.issuer_dn.clone()),
    ];
    if let Some(pem) = &session.escaped_pem {
        headers.push(("ssl-client-cert", pem.clone()));
    }
    Decision::Forward(headers)
}
