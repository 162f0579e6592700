//! `backend-protocol` through the real binary, with real TLS backends on
//! loopback: one that reports the SNI it received, one that requires a
//! client certificate. Each Ingress (one host each) tries one combination of
//! the `proxy-ssl-*` settings.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use fakeapi::certs::base64;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};

use crate::common::{annotated, get, service_for, Api, Backend, Ingressd};
use crate::support::wait::wait_until;
use crate::tls_support::{provider, Ca, Issued};

/// A TLS backend answering `sni=NAME client=BOOL` for what its handshake saw.
fn tls_backend(issued: &Issued, client_ca: Option<&Ca>) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes()).map(|c| c.expect("cert")).collect();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key");
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.cert.der().clone()).expect("client ca");
            builder.with_client_cert_verifier(WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().expect("verifier"))
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_single_cert(chain, key).expect("server config"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = ServerConnection::new(config).expect("server connection");
                let mut tls = BufReader::new(StreamOwned::new(conn, stream));
                loop {
                    // One request after another on the same connection (the proxy pools them).
                    loop {
                        let mut line = String::new();
                        match tls.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let stream = tls.get_mut();
                    let body = format!("sni={:?} client={}", stream.conn.server_name(), stream.conn.peer_certificates().is_some());
                    let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if stream.write_all(answer.as_bytes()).and_then(|()| stream.flush()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// An Opaque Secret in `web` with these PEM fields (base64 as the API
/// serves them): ingressd reads it because an annotation names it.
fn secret(name: &str, fields: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = fields.iter().map(|(k, v)| (k.to_string(), json!(base64(v.as_bytes())))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "web", "name": name}, "type": "Opaque", "data": data})
}

/// Ingress name, which backend (`open` or `mutual`), annotations, the status expected, and what the backend saw of the TLS session.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, Option<&'a str>);

#[test]
fn https_backends_with_and_without_verification() {
    let server_ca = Ca::new();
    let other_ca = Ca::new();
    let client_ca = Ca::new();
    let plain = Backend::start("plain");
    let open = tls_backend(&server_ca.issue(&["backend.internal"]), None);
    let mutual = tls_backend(&server_ca.issue(&["backend.internal"]), Some(&client_ca));
    let client = client_ca.issue(&["ingressd.client"]);

    let api = Api::start();
    for (service, addr) in [("open", open), ("mutual", mutual), ("plain", plain.addr)] {
        for object in service_for("web", service, addr) {
            api.fake.create(object);
        }
    }
    let server_ca_pem = server_ca.cert.pem();
    api.fake.create(secret("right-ca", &[("ca.crt", &server_ca_pem)]));
    api.fake.create(secret("wrong-ca", &[("ca.crt", &other_ca.cert.pem())]));
    api.fake.create(secret("with-client", &[("ca.crt", &server_ca_pem), ("tls.crt", &client.cert_pem), ("tls.key", &client.key_pem)]));
    let https = ("backend-protocol", "HTTPS");
    let verify = ("proxy-ssl-verify", "on");
    let named = ("proxy-ssl-name", "backend.internal");
    let cases: &[Case] = &[
        ("unverified", "open", &[https], 200, Some("sni=None client=false")),
        ("sni", "open", &[https, named, ("proxy-ssl-server-name", "on")], 200, Some("sni=Some(\"backend.internal\") client=false")),
        ("verified", "open", &[https, verify, named, ("proxy-ssl-secret", "right-ca")], 200, Some("sni=None client=false")),
        ("verified-ns", "open", &[https, verify, named, ("proxy-ssl-secret", "web/right-ca")], 200, None),
        ("wrong-ca", "open", &[https, verify, named, ("proxy-ssl-secret", "wrong-ca")], 502, None),
        ("wrong-name", "open", &[https, verify, ("proxy-ssl-name", "other.internal"), ("proxy-ssl-secret", "right-ca")], 502, None),
        ("no-name", "open", &[https, verify, ("proxy-ssl-secret", "right-ca")], 502, None),
        ("missing-secret", "open", &[https, verify, named, ("proxy-ssl-secret", "nowhere")], 502, None),
        ("late-secret", "open", &[https, verify, named, ("proxy-ssl-secret", "late-ca")], 502, None),
        ("foreign-secret", "open", &[https, verify, named, ("proxy-ssl-secret", "other/right-ca")], 502, None),
        ("client-cert", "mutual", &[https, verify, named, ("proxy-ssl-secret", "with-client")], 200, Some("sni=None client=true")),
        ("no-client-cert", "mutual", &[https, verify, named, ("proxy-ssl-secret", "right-ca")], 502, None),
        ("plain-to-tls", "open", &[], 502, None),
        ("auto-http", "plain", &[("backend-protocol", "AUTO_HTTP")], 200, Some("plain /\n")),
        ("grpc", "plain", &[("backend-protocol", "GRPC")], 502, None),
        ("fcgi", "plain", &[("backend-protocol", "FCGI")], 502, None),
    ];
    for (name, service, annotations, _, _) in cases {
        api.fake.create(annotated(name, service, annotations));
    }
    let ingressd = Ingressd::start(&api, &[]);
    assert!(ingressd.wait_ready(Duration::from_secs(10)));

    for (name, _, _, status, body) in cases {
        for round in 0..2 {
            let response = get(ingressd.http, "/", &format!("{name}.example.com")).expect("an answer");
            assert_eq!(response.status, *status, "{name} (request {round}): {}", response.text());
            if let Some(body) = body {
                assert_eq!(response.text(), *body, "{name}");
            }
        }
    }
    assert_eq!(plain.requests.load(std::sync::atomic::Ordering::SeqCst), 2, "GRPC and FCGI never reach the backend");

    // The Secret appears: the Ingress naming it is recompiled and verifies against it.
    api.fake.create(secret("late-ca", &[("ca.crt", &server_ca_pem)]));
    let late = || get(ingressd.http, "/", "late-secret.example.com").map(|r| r.status).unwrap_or(0);
    assert!(wait_until(Duration::from_secs(10), || late() == 200), "a Secret created later is used");
    // A CA that no longer matches takes effect the same way, failing closed.
    api.fake.apply(secret("late-ca", &[("ca.crt", &other_ca.cert.pem())]));
    assert!(wait_until(Duration::from_secs(10), || late() == 502), "a rotated CA that does not match answers 502");
}
