//! `backend-protocol` and the `proxy-ssl-*` settings of TLS to backends.
//!
//! As in ingress-nginx, the backend's certificate is not verified unless
//! `proxy-ssl-verify: "on"`; then the CA comes from `proxy-ssl-secret`
//! (`ca.crt`), whose `tls.crt`/`tls.key` (when present) are the client
//! certificate. SNI is sent only with `proxy-ssl-server-name: "on"`.

use crate::kube::objects::StringMap;

use super::value;

/// How a route speaks to its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendProtocol {
    /// `HTTP` (the default) and `AUTO_HTTP`, which ingress-nginx's template
    /// also forwards as plain HTTP.
    Http,
    /// `HTTPS`, with these settings.
    Https(ProxySsl),
    /// `GRPC`, `GRPCS`, `AJP`, `FCGI`: every request answers 502; the text says why.
    Unsupported(&'static str),
}

/// The `proxy-ssl-*` settings as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySsl {
    /// `proxy-ssl-verify: "on"`.
    pub verify: bool,
    /// `proxy-ssl-secret`, as written (`name` or `namespace/name`).
    pub secret: Option<String>,
    /// `proxy-ssl-name`: the name verified and sent as SNI.
    pub name: Option<String>,
    /// `proxy-ssl-server-name: "on"`: send SNI.
    pub server_name: bool,
}

const GRPC: &str = "gRPC needs HTTP/2 to the backend, which ingressd does not speak yet";
const AJP: &str = "AJP backends are out of scope";
const FCGI: &str = "FastCGI backends are out of scope";

impl BackendProtocol {
    /// `None` for plain HTTP (the default, nothing to do per request).
    pub fn from_annotations(annotations: &StringMap, problems: &mut Vec<String>) -> Option<BackendProtocol> {
        let protocol = value(annotations, "backend-protocol")?;
        match protocol.trim().to_ascii_uppercase().as_str() {
            "HTTP" | "AUTO_HTTP" => None,
            "HTTPS" => Some(BackendProtocol::Https(proxy_ssl(annotations, problems))),
            "GRPC" | "GRPCS" => Some(BackendProtocol::Unsupported(GRPC)),
            "AJP" => Some(BackendProtocol::Unsupported(AJP)),
            "FCGI" => Some(BackendProtocol::Unsupported(FCGI)),
            _ => {
                problems.push(format!("backend-protocol {protocol:?} ignored: not HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS, AJP or FCGI; HTTP is used"));
                None
            }
        }
    }
}

fn proxy_ssl(annotations: &StringMap, problems: &mut Vec<String>) -> ProxySsl {
    let mut ssl = ProxySsl::default();
    for (name, slot) in [("proxy-ssl-verify", &mut ssl.verify), ("proxy-ssl-server-name", &mut ssl.server_name)] {
        if let Some(text) = value(annotations, name) {
            match text.trim() {
                "on" => *slot = true,
                "off" => *slot = false,
                // A verify setting that cannot be read fails closed.
                other if name == "proxy-ssl-verify" => {
                    problems.push(format!("{name} {other:?} is not \"on\" or \"off\"; verification stays on"));
                    *slot = true;
                }
                other => problems.push(format!("{name} {other:?} ignored: not \"on\" or \"off\"")),
            }
        }
    }
    ssl.secret = value(annotations, "proxy-ssl-secret").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(name) = value(annotations, "proxy-ssl-name").map(str::trim) {
        match rustls::pki_types::ServerName::try_from(name) {
            Ok(_) => ssl.name = Some(name.to_string()),
            Err(_) => problems.push(format!("proxy-ssl-name {name:?} ignored: not a DNS name or IP address")),
        }
    }
    ssl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> (Option<BackendProtocol>, Vec<String>) {
        let map: StringMap = crate::annotations::nginx_annotations(pairs);
        let mut problems = Vec::new();
        (BackendProtocol::from_annotations(&map, &mut problems), problems)
    }

    #[test]
    fn protocols_as_ingress_nginx_names_them() {
        assert_eq!(parse(&[]), (None, vec![]));
        assert_eq!(parse(&[("backend-protocol", "HTTP")]), (None, vec![]));
        assert_eq!(parse(&[("backend-protocol", "AUTO_HTTP")]), (None, vec![]));
        assert_eq!(parse(&[("backend-protocol", "HTTPS")]).0, Some(BackendProtocol::Https(ProxySsl::default())));
        assert_eq!(parse(&[("backend-protocol", "https")]).0, Some(BackendProtocol::Https(ProxySsl::default())));
        for unsupported in ["GRPC", "GRPCS", "AJP", "FCGI"] {
            assert!(matches!(parse(&[("backend-protocol", unsupported)]).0, Some(BackendProtocol::Unsupported(_))), "{unsupported}");
        }
        let (protocol, problems) = parse(&[("backend-protocol", "QUIC")]);
        assert_eq!((protocol, problems.len()), (None, 1));
    }

    #[test]
    fn proxy_ssl_settings_and_a_bad_verify_fails_closed() {
        let (protocol, problems) = parse(&[
            ("backend-protocol", "HTTPS"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-secret", "default/ca"),
            ("proxy-ssl-name", "backend.internal"),
            ("proxy-ssl-server-name", "on"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let expected = ProxySsl { verify: true, secret: Some("default/ca".into()), name: Some("backend.internal".into()), server_name: true };
        assert_eq!(protocol, Some(BackendProtocol::Https(expected)));

        let (protocol, problems) = parse(&[("backend-protocol", "HTTPS"), ("proxy-ssl-verify", "yes"), ("proxy-ssl-name", "bad name")]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let Some(BackendProtocol::Https(ssl)) = protocol else { panic!("https") };
        assert!(ssl.verify, "an unreadable verify setting keeps verification on");
        assert_eq!(ssl.name, None);
    }
}
