//! Client certificates (`auth-tls-*`) through the real binary: the fake API
//! server holds the Ingresses, the TLS Secret and the CA Secret; clients
//! speak real TLS with and without certificates; the backend echoes the
//! request head it received.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use fakeapi::certs::base64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use serde_json::{json, Value};

use crate::annotations_e2e::echoing_backend;
use crate::common;
use crate::common::{get, ingress, service_for, Api, Ingressd};
use crate::support::http::Response;
use crate::support::wait::wait_until;
use crate::tls_support::{connect, provider, AnyCertificate, Ca, Issued};

const WAIT: Duration = Duration::from_secs(10);

fn tls_secret(name: &str, issued: &Issued) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name, "namespace": "web"},
        "data": {"tls.crt": base64(issued.cert_pem.as_bytes()), "tls.key": base64(issued.key_pem.as_bytes())}})
}

fn ca_secret(name: &str, ca: &Ca) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": "web"},
        "data": {"ca.crt": base64(ca.cert.pem().as_bytes())}})
}

/// An Ingress for `NAME.example.com` with a TLS entry and these annotations.
fn site(name: &str, annotations: &[(&str, &str)]) -> Value {
    let host = format!("{name}.example.com");
    let mut object = ingress("web", name, &[(&host, "/", "echo")]);
    object["spec"]["tls"] = json!([{"hosts": [host], "secretName": "site-tls"}]);
    object["metadata"]["annotations"] = common::nginx_annotations(annotations);
    object
}

/// A client presenting `identity` (a leaf and its key), or none.
fn client(identity: Option<&Issued>) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(rustls::crypto::ring::default_provider())));
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let chain = vec![CertificateDer::from(issued.leaf.clone())];
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key");
            builder.with_client_auth_cert(chain, key).expect("client certificate")
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

struct Edge {
    _api: Api,
    ingressd: Ingressd,
    /// Signed by the CA the hosts trust.
    good: Issued,
    /// Signed by another CA.
    stranger: Issued,
    /// Signed by the trusted CA, CN=admin.example.
    admin: Issued,
}

fn start() -> Edge {
    let api = Api::start();
    let server_ca = Ca::new();
    let names: Vec<String> = ["on", "optional", "off", "nca", "open", "broken", "paged", "named"].iter().map(|n| format!("{n}.example.com")).collect();
    let serving = server_ca.issue(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let trusted = Ca::new();
    let other = Ca::new();
    for object in service_for("web", "echo", echoing_backend()) {
        api.fake.create(object);
    }
    for object in [
        tls_secret("site-tls", &serving),
        ca_secret("client-ca", &trusted),
        site("on", &[("auth-tls-secret", "client-ca"), ("auth-tls-pass-certificate-to-upstream", "true")]),
        site("optional", &[("auth-tls-secret", "web/client-ca"), ("auth-tls-verify-client", "optional")]),
        site("off", &[("auth-tls-secret", "client-ca"), ("auth-tls-verify-client", "off")]),
        site("nca", &[("auth-tls-secret", "client-ca"), ("auth-tls-verify-client", "optional_no_ca")]),
        site("open", &[]),
        site("broken", &[("auth-tls-secret", "no-such-ca")]),
        site("paged", &[("auth-tls-secret", "client-ca"), ("auth-tls-error-page", "https://help.example.com/certificates")]),
        site("named", &[("auth-tls-secret", "client-ca"), ("auth-tls-match-cn", "CN=admin")]),
    ] {
        api.fake.create(object);
    }
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(WAIT));
    let edge = Edge { _api: api, ingressd, good: trusted.issue(&["client.example"]), stranger: other.issue(&["client.example"]), admin: trusted.issue(&["admin.example"]) };
    // The CA Secret arrives by its own watch, after readiness.
    assert!(wait_until(WAIT, || edge.get("on", "on", Some(&edge.good), &[]).map(|r| r.status) == Some(200)));
    edge
}

impl Edge {
    /// One request over a new connection: SNI `sni`.example.com, Host
    /// `host`.example.com; `None` when the handshake failed.
    fn get(&self, sni: &str, host: &str, identity: Option<&Issued>, extra: &[(&str, &str)]) -> Option<Response> {
        let tls = connect(self.ingressd.https, Some(&format!("{sni}.example.com")), client(identity)).ok()?;
        let mut tls = BufReader::new(tls);
        let extra: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let head = format!("GET /x HTTP/1.1\r\nHost: {host}.example.com\r\n{extra}Content-Length: 0\r\n\r\n");
        std::io::Write::write_all(tls.get_mut(), head.as_bytes()).ok()?;
        crate::support::http::read_response(&mut tls, false).ok()
    }

    fn status(&self, sni: &str, host: &str, identity: Option<&Issued>) -> u16 {
        self.get(sni, host, identity, &[]).map_or(0, |r| r.status)
    }
}

/// The lower-cased `name: value` lines the backend received.
fn seen(response: &Response) -> Vec<String> {
    response.text().to_ascii_lowercase().lines().map(str::to_string).collect()
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|line| line.strip_prefix(&format!("{name}: ")))
}

#[test]
fn verification_modes_decide_as_ingress_nginx() {
    let edge = start();
    let (good, stranger) = (Some(&edge.good), Some(&edge.stranger));

    let ok = edge.get("on", "on", good, &[("ssl-client-verify", "forged")]).expect("answer");
    assert_eq!(ok.status, 200);
    let lines = seen(&ok);
    assert_eq!(header(&lines, "ssl-client-verify"), Some("success"), "{lines:?}");
    assert_eq!(header(&lines, "ssl-client-subject-dn"), Some("cn=client.example"));
    assert_eq!(header(&lines, "ssl-client-issuer-dn"), Some("cn=ingressd test ca"));
    let cert = header(&lines, "ssl-client-cert").expect("the certificate is passed on");
    assert!(cert.starts_with("-----begin%20certificate-----%0a") && cert.ends_with("-----end%20certificate-----%0a"), "{cert}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("ssl-client-verify:")).count(), 1, "the client's forged header is replaced");

    assert_eq!(edge.status("on", "on", None), 400, "on: no certificate");
    assert_eq!(edge.status("on", "on", stranger), 400, "on: another CA");

    let none = edge.get("optional", "optional", None, &[("ssl-client-verify", "SUCCESS")]).expect("answer");
    assert_eq!(none.status, 200);
    assert_eq!(header(&seen(&none), "ssl-client-verify"), Some("none"), "optional without certificate");
    assert_eq!(header(&seen(&none), "ssl-client-cert"), None, "not passed unless asked");
    assert_eq!(edge.status("optional", "optional", good), 200);
    assert_eq!(edge.status("optional", "optional", stranger), 400, "optional: a certificate that is sent must verify");

    let unverified = edge.get("nca", "nca", stranger, &[]).expect("answer");
    assert_eq!(unverified.status, 200, "optional_no_ca passes an unverified certificate on");
    assert!(header(&seen(&unverified), "ssl-client-verify").is_some_and(|v| v.starts_with("failed:")), "{:?}", seen(&unverified));

    let off = edge.get("off", "off", good, &[]).expect("answer");
    assert_eq!(off.status, 200);
    assert_eq!(header(&seen(&off), "ssl-client-verify"), Some("none"), "off asks for no certificate");

    assert_eq!(edge.status("broken", "broken", good), 403, "a missing CA Secret fails closed");

    let paged = edge.get("paged", "paged", None, &[]).expect("answer");
    assert_eq!((paged.status, paged.header("location")), (302, Some("https://help.example.com/certificates")));
    assert_eq!(edge.status("paged", "paged", good), 200);
    assert_eq!(edge.status("named", "named", good), 403, "CN=client.example does not match CN=admin");
    assert_eq!(edge.status("named", "named", Some(&edge.admin)), 200);
    assert_eq!(edge.status("open", "open", None), 200, "a host without settings is untouched");
}

#[test]
fn the_host_must_be_the_handshakes_server_name() {
    let edge = start();
    assert_eq!(edge.status("open", "on", None), 421, "a handshake without certificate cannot reach a client-certificate host");
    assert_eq!(edge.status("open", "on", Some(&edge.good)), 421);
    assert_eq!(edge.status("on", "open", Some(&edge.good)), 421, "a client-certificate connection serves its own host only");
    assert_eq!(edge.status("optional", "on", Some(&edge.good)), 421, "another host's settings do not count");
    assert_eq!(edge.status("open", "open", None), 200);

    let plain = get(edge.ingressd.http, "/x", "on.example.com").expect("answer");
    assert_eq!(plain.status, 308, "plain HTTP never reaches a client-certificate host");
    assert!(plain.header("location").is_some_and(|l| l.starts_with("https://on.example.com:")));
}
