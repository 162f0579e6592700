//! The client-certificate annotations (`auth-tls-*`), read as ingress-nginx
//! reads them. They apply to a whole host, as ingress-nginx's server block:
//! the oldest Ingress on the host that sets `auth-tls-secret` decides (see
//! [`crate::tls::client_auth`], which compiles them with the CA Secret).
//!
//! An invalid `auth-tls-verify-client` or `auth-tls-verify-depth` falls back
//! to the default (`on`, 1), as in ingress-nginx; an invalid
//! `auth-tls-error-page` is left out. The Secret name itself fails closed.

use super::cors::parse_bool;
use super::secrets::secret_key;
use super::value;
use crate::kube::objects::{ObjectKey, StringMap};

/// `auth-tls-verify-client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// A certificate signed by the CA is required.
    On,
    /// A certificate is asked for; when sent, it must be signed by the CA.
    Optional,
    /// A certificate is asked for and passed on whatever signed it.
    OptionalNoCa,
    /// No certificate is asked for.
    Off,
}

impl VerifyClient {
    pub fn parse(text: &str) -> Option<VerifyClient> {
        match text.trim() {
            "on" => Some(VerifyClient::On),
            "optional" => Some(VerifyClient::Optional),
            "optional_no_ca" => Some(VerifyClient::OptionalNoCa),
            "off" => Some(VerifyClient::Off),
            _ => None,
        }
    }
}

/// What the annotations of one Ingress ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertSettings {
    /// The CA bundle's Secret, or why the name is refused.
    pub secret: Result<ObjectKey, String>,
    pub verify: VerifyClient,
    /// Most certificates in the chain above the client's: 1 means signed
    /// directly by a CA of the bundle.
    pub depth: u32,
    /// `auth-tls-pass-certificate-to-upstream`: the `ssl-client-cert` header.
    pub pass_certificate: bool,
    /// `auth-tls-error-page`: where a failed verification is redirected.
    pub error_page: Option<String>,
    /// `auth-tls-match-cn`: a regular expression the subject DN must match.
    pub match_cn: Option<String>,
}

/// The settings `annotations` of an Ingress in `namespace` ask for; `None`
/// without `auth-tls-secret`.
pub fn from_annotations(annotations: &StringMap, namespace: &str, problems: &mut Vec<String>) -> Option<ClientCertSettings> {
    let name = value(annotations, "auth-tls-secret")?;
    let secret = secret_key(namespace, name).map_err(|why| format!("auth-tls-secret {why}"));
    if let Err(why) = &secret {
        problems.push(format!("{why}; the host answers 403 until this is fixed"));
    }
    let verify = match value(annotations, "auth-tls-verify-client") {
        None => VerifyClient::On,
        Some(text) => VerifyClient::parse(text).unwrap_or_else(|| {
            problems.push(format!("auth-tls-verify-client {text:?} is not on, off, optional or optional_no_ca; on is used"));
            VerifyClient::On
        }),
    };
    let depth = match value(annotations, "auth-tls-verify-depth").map(|t| (t, t.trim().parse::<u32>())) {
        None => 1,
        Some((_, Ok(depth))) if (1..=16).contains(&depth) => depth,
        Some((_, Ok(0))) => 1,
        Some((text, _)) => {
            problems.push(format!("auth-tls-verify-depth {text:?} is not a number from 1 to 16; 1 is used"));
            1
        }
    };
    let pass_certificate = match value(annotations, "auth-tls-pass-certificate-to-upstream") {
        None => false,
        Some(text) => parse_bool(text).unwrap_or_else(|| {
            problems.push(format!("auth-tls-pass-certificate-to-upstream {text:?} is not a boolean; false is used"));
            false
        }),
    };
    let error_page = value(annotations, "auth-tls-error-page").and_then(|page| match check_error_page(page) {
        Ok(()) => Some(page.to_string()),
        Err(why) => {
            problems.push(format!("auth-tls-error-page {page:?} ignored: {why}"));
            None
        }
    });
    let match_cn = value(annotations, "auth-tls-match-cn").map(str::to_string);
    Some(ClientCertSettings { secret, verify, depth, pass_certificate, error_page, match_cn })
}

/// An absolute http(s) URL or a path, as a Location header may carry it.
fn check_error_page(page: &str) -> Result<(), &'static str> {
    let absolute = page.starts_with("http://") || page.starts_with("https://");
    if !absolute && !page.starts_with('/') {
        return Err("not an http(s) URL or an absolute path");
    }
    if page.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("white space, control or non-ASCII characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> StringMap {
        crate::annotations::nginx_annotations(pairs)
    }

    #[test]
    fn settings_table() {
        let ca = || Ok(ObjectKey::new("shop", "ca"));
        let settings = |verify, depth, pass_certificate, error_page: Option<&str>| ClientCertSettings {
            secret: ca(),
            verify,
            depth,
            pass_certificate,
            error_page: error_page.map(str::to_string),
            match_cn: None,
        };
        let cases: &[(&crate::annotations::Pairs, Option<ClientCertSettings>, usize)] = &[
            (&[], None, 0),
            (&[("auth-tls-verify-client", "on")], None, 0),
            (&[("auth-tls-secret", "shop/ca")], Some(settings(VerifyClient::On, 1, false, None)), 0),
            (
                &[
                    ("auth-tls-secret", "ca"),
                    ("auth-tls-verify-client", "optional_no_ca"),
                    ("auth-tls-verify-depth", "2"),
                    ("auth-tls-pass-certificate-to-upstream", "true"),
                    ("auth-tls-error-page", "https://auth.example.com/error"),
                ],
                Some(settings(VerifyClient::OptionalNoCa, 2, true, Some("https://auth.example.com/error"))),
                0,
            ),
            (&[("auth-tls-secret", "ca"), ("auth-tls-verify-client", "optional")], Some(settings(VerifyClient::Optional, 1, false, None)), 0),
            (&[("auth-tls-secret", "ca"), ("auth-tls-verify-client", "off")], Some(settings(VerifyClient::Off, 1, false, None)), 0),
            (&[("auth-tls-secret", "ca"), ("auth-tls-verify-client", "maybe")], Some(settings(VerifyClient::On, 1, false, None)), 1),
            (&[("auth-tls-secret", "ca"), ("auth-tls-verify-depth", "0")], Some(settings(VerifyClient::On, 1, false, None)), 0),
            (&[("auth-tls-secret", "ca"), ("auth-tls-verify-depth", "deep")], Some(settings(VerifyClient::On, 1, false, None)), 1),
            (&[("auth-tls-secret", "ca"), ("auth-tls-pass-certificate-to-upstream", "yes please")], Some(settings(VerifyClient::On, 1, false, None)), 1),
            (&[("auth-tls-secret", "ca"), ("auth-tls-error-page", "javascript:x")], Some(settings(VerifyClient::On, 1, false, None)), 1),
            (&[("auth-tls-secret", "ca"), ("auth-tls-error-page", "/error page")], Some(settings(VerifyClient::On, 1, false, None)), 1),
        ];
        for (pairs, expected, problem_count) in cases {
            let mut problems = Vec::new();
            assert_eq!(from_annotations(&annotations(pairs), "shop", &mut problems), *expected, "{pairs:?}");
            assert_eq!(problems.len(), *problem_count, "{pairs:?}: {problems:?}");
        }
        let mut problems = Vec::new();
        let foreign = from_annotations(&annotations(&[("auth-tls-secret", "other/ca")]), "shop", &mut problems).expect("settings");
        assert!(foreign.secret.is_err(), "another namespace is refused");
        assert_eq!(problems.len(), 1);
    }
}
