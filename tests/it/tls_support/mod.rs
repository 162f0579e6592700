//! Shared by the TLS test binaries: certificates made with rcgen, Secrets as
//! the API serves them, and a rustls client speaking raw HTTP/1.1.
#![allow(dead_code)]

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use fakeapi::certs::base64;
use ingressd::kube::objects::{ObjectMeta, Secret};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::support::http::{read_response, Response};

/// Bound for anything that must happen; a hang fails as a timeout of this length.
pub const PATIENCE: Duration = Duration::from_secs(10);

// ---- certificates and Secrets -------------------------------------------

pub struct Ca {
    pub cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub leaf: Vec<u8>,
}

impl Ca {
    pub fn new() -> Ca {
        let key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "ingressd test CA");
        Ca { cert: params.self_signed(&key).expect("ca cert"), key }
    }

    /// A leaf for `hosts` with the CA in its chain.
    pub fn issue(&self, hosts: &[&str]) -> Issued {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params = rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, hosts[0]);
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("leaf");
        Issued { cert_pem: format!("{}{}", cert.pem(), self.cert.pem()), key_pem: key.serialize_pem(), leaf: cert.der().to_vec() }
    }
}

pub fn secret(namespace: &str, name: &str, cert_pem: &str, key_pem: &str) -> Arc<Secret> {
    let mut secret = Secret {
        metadata: ObjectMeta { namespace: namespace.into(), name: name.into(), ..ObjectMeta::default() },
        type_: "kubernetes.io/tls".into(),
        ..Secret::default()
    };
    secret.data.insert("tls.crt", base64(cert_pem.as_bytes()));
    secret.data.insert("tls.key", base64(key_pem.as_bytes()));
    Arc::new(secret)
}

// ---- the client -------------------------------------------------------------

/// Checks handshake signatures but accepts any certificate: the tests look at
/// which certificate was served, not at whether a browser would trust it.
#[derive(Debug)]
pub struct AnyCertificate(pub rustls::crypto::CryptoProvider);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn client_config(versions: &[&'static rustls::SupportedProtocolVersion], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(rustls::crypto::ring::default_provider())))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub fn any_client() -> Arc<ClientConfig> {
    client_config(rustls::DEFAULT_VERSIONS, &[b"http/1.1"])
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake; `server_name` None sends no SNI.
pub fn connect(addr: SocketAddr, server_name: Option<&str>, config: Arc<ClientConfig>) -> io::Result<Tls> {
    let name = match server_name {
        Some(name) => ServerName::try_from(name.to_string()).expect("dns name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(PATIENCE))?;
    socket.set_write_timeout(Some(PATIENCE))?;
    let mut tls = StreamOwned::new(ClientConnection::new(config, name).expect("client"), socket);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

pub fn served_leaf(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().expect("server certificates")[0].to_vec()
}

pub fn alert_of(error: &io::Error) -> Option<AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// A POST with a Content-Length body; the response must be sized.
pub fn request(tls: &mut BufReader<Tls>, host: &str, path: &str, body: &[u8]) -> io::Result<Response> {
    send_request(tls, "POST", host, path, body)
}

/// One keep-alive request; the response must carry a Content-Length.
pub fn send_request(tls: &mut BufReader<Tls>, method: &str, host: &str, path: &str, body: &[u8]) -> io::Result<Response> {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n", body.len());
    tls.get_mut().write_all(head.as_bytes())?;
    tls.get_mut().write_all(body)?;
    tls.get_mut().flush()?;
    let response = read_response(tls, method == "HEAD")?;
    if response.header("content-length").is_none() {
        return Err(io::Error::other("no content-length"));
    }
    Ok(response)
}

