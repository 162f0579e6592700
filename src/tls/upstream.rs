//! TLS to backends (`backend-protocol: HTTPS`): the rustls client settings
//! one Ingress asks for, resolved from its `proxy-ssl-*` annotations and
//! the Secret they name when its routes are compiled.
//!
//! Like ingress-nginx, the backend's certificate is not verified unless
//! `proxy-ssl-verify: "on"`. With verification on, a Secret that is missing,
//! in another namespace, or without a usable `ca.crt` fails closed: the
//! setting carries the reason and its routes answer 502, never falling back
//! to an unverified connection.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::base64;
use super::certs::{parse_chain, parse_key};
use crate::annotations::backend_tls::ProxySsl;
use crate::annotations::secrets::secret_key;
use crate::kube::objects::{ObjectKey, Secret};

/// What identifies one TLS setting: two routes with equal keys may share
/// pooled connections, any difference keeps them apart.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TlsKey {
    /// The name verified (and sent as SNI when `sni`).
    pub server_name: String,
    pub sni: bool,
    /// `None`: the backend's certificate is not verified.
    pub roots: Option<Vec<Vec<u8>>>,
    /// The client certificate chain and key (DER), when the Secret has one.
    pub client: Option<(Vec<Vec<u8>>, Vec<u8>)>,
}

/// Never prints the client key: a setting in a log line or a failed
/// assertion must not carry it.
impl std::fmt::Debug for TlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsKey")
            .field("server_name", &self.server_name)
            .field("sni", &self.sni)
            .field("roots", &self.roots.as_ref().map(Vec::len))
            .field("client", &self.client.as_ref().map(|(chain, _)| (chain.len(), "<key redacted>")))
            .finish()
    }
}

/// One route's TLS to its backends.
pub struct BackendTls {
    pub key: TlsKey,
    /// The client configuration, or why none can be used (the route answers 502).
    pub config: Result<Arc<ClientConfig>, String>,
    /// The proxy's client for this setting, found or made on the first
    /// request (the proxy keeps one per [`TlsKey`] across compiles, so a
    /// recompiled route keeps its pooled connections).
    pub agent: OnceLock<Arc<ureq::Agent>>,
}

impl std::fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendTls")
            .field("server_name", &self.key.server_name)
            .field("sni", &self.key.sni)
            .field("verify", &self.key.roots.is_some())
            .field("client_cert", &self.key.client.is_some())
            .field("usable", &self.config.is_ok())
            .finish()
    }
}

/// Finds a Secret by key; the store's lookup in production.
pub type SecretLookup<'a> = &'a dyn Fn(&ObjectKey) -> Option<Arc<Secret>>;

/// Resolves an Ingress's `proxy-ssl-*` settings. `service` names the
/// route's Service: with verification on and no `proxy-ssl-name`, the name
/// verified is the Service's cluster DNS name (ingress-nginx would verify
/// `upstream_balancer`, which no certificate carries).
pub fn resolve(ssl: &ProxySsl, namespace: &str, service: &str, secrets: SecretLookup<'_>) -> BackendTls {
    let server_name = ssl.name.clone().unwrap_or_else(|| format!("{service}.{namespace}.svc"));
    let mut key = TlsKey { server_name, sni: ssl.server_name, roots: None, client: None };
    let material = material(ssl, namespace, secrets);
    let config = match material {
        Ok((roots, client)) => {
            key.roots = roots;
            key.client = client;
            client_config(&key)
        }
        Err(why) => Err(why),
    };
    BackendTls { key, config, agent: OnceLock::new() }
}

type Material = (Option<Vec<Vec<u8>>>, Option<(Vec<Vec<u8>>, Vec<u8>)>);

/// The CA roots (with verification on) and the client certificate from the Secret.
fn material(ssl: &ProxySsl, namespace: &str, secrets: SecretLookup<'_>) -> Result<Material, String> {
    let secret = match &ssl.secret {
        None if ssl.verify => return Err("proxy-ssl-verify is on but no proxy-ssl-secret names the CA".into()),
        None => return Ok((None, None)),
        Some(written) => {
            let key = secret_key(namespace, written).map_err(|why| format!("proxy-ssl-secret {why}"))?;
            match secrets(&key) {
                Some(secret) => secret,
                None if ssl.verify => return Err(format!("proxy-ssl-secret {key} not found")),
                None => {
                    log::warn!("proxy-ssl-secret {key} not found; connecting without a client certificate");
                    return Ok((None, None));
                }
            }
        }
    };
    let field = |name: &str| -> Result<Option<Vec<u8>>, String> {
        secret.data.get(name).map(|text| base64::decode(text).map_err(|e| format!("{name} of {} is not base64: {e:?}", secret.metadata.key()))).transpose()
    };
    let roots = if ssl.verify {
        let ca = field("ca.crt")?.ok_or_else(|| format!("proxy-ssl-secret {} has no ca.crt", secret.metadata.key()))?;
        let chain = parse_chain(&ca).map_err(|e| format!("ca.crt of {}: {e}", secret.metadata.key()))?;
        Some(chain.into_iter().map(|c| c.as_ref().to_vec()).collect())
    } else {
        None
    };
    let client = match (field("tls.crt")?, field("tls.key")?) {
        (Some(crt), Some(key)) => {
            let chain = parse_chain(&crt).map_err(|e| format!("tls.crt of {}: {e}", secret.metadata.key()))?;
            let key = parse_key(&key).map_err(|e| format!("tls.key of {}: {e}", secret.metadata.key()))?;
            Some((chain.into_iter().map(|c| c.as_ref().to_vec()).collect(), key.secret_der().to_vec()))
        }
        _ => None,
    };
    Ok((roots, client))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(key: &TlsKey) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &key.roots {
        Some(roots) => {
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(roots.iter().map(|der| CertificateDer::from(der.clone())));
            if added == 0 {
                return Err("ca.crt holds no usable CA certificate".into());
            }
            builder.with_root_certificates(store)
        }
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(Unverified(provider))),
    };
    let mut config = match &key.client {
        Some((chain, der)) => {
            let chain = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
            let key = PrivateKeyDer::try_from(der.clone()).map_err(|_| "tls.key is not a usable private key".to_string())?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate refused: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = key.sni;
    ServerName::try_from(key.server_name.as_str()).map_err(|_| format!("{:?} is not a DNS name or IP address", key.server_name))?;
    Ok(Arc::new(config))
}

/// `proxy-ssl-verify` off, as ingress-nginx's default: any certificate is
/// accepted, but the handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_setting_never_prints_its_client_key() {
        let key = TlsKey { server_name: "api.internal".into(), sni: true, roots: Some(vec![vec![1]]), client: Some((vec![vec![2]], b"private-key-bytes".to_vec())) };
        let printed = format!("{key:?}");
        assert!(printed.contains("api.internal") && printed.contains("<key redacted>"), "{printed}");
        let key_bytes = format!("{:?}", b"private-key-bytes".to_vec());
        assert!(!printed.contains(&key_bytes[..20]), "{printed}");
    }

    #[test]
    fn verification_on_fails_closed_without_a_usable_ca() {
        let none: SecretLookup<'_> = &|_| None;
        let verify = |secret: Option<&str>| ProxySsl { verify: true, secret: secret.map(str::to_string), name: None, server_name: false };
        for (ssl, reason) in [
            (verify(None), "no proxy-ssl-secret"),
            (verify(Some("ca")), "not found"),
            (verify(Some("other/ca")), "another namespace"),
        ] {
            let resolved = resolve(&ssl, "web", "api", none);
            let error = resolved.config.expect_err("fails closed");
            assert!(error.contains(reason), "{error}");
        }
        let empty = Arc::new(Secret { metadata: Default::default(), type_: "Opaque".into(), data: Default::default() });
        let found: SecretLookup<'_> = &move |_| Some(Arc::clone(&empty));
        assert!(resolve(&verify(Some("ca")), "web", "api", found).config.expect_err("no ca.crt").contains("no ca.crt"));
    }

    #[test]
    fn verification_off_needs_no_secret_and_names_default_to_the_service() {
        let none: SecretLookup<'_> = &|_| None;
        let resolved = resolve(&ProxySsl::default(), "web", "api", none);
        assert!(resolved.config.is_ok());
        assert_eq!(resolved.key, TlsKey { server_name: "api.web.svc".into(), sni: false, roots: None, client: None });
        let named = ProxySsl { name: Some("backend.internal".into()), server_name: true, ..ProxySsl::default() };
        let resolved = resolve(&named, "web", "api", none);
        assert_eq!((resolved.key.server_name.as_str(), resolved.key.sni), ("backend.internal", true));
        assert!(resolved.config.expect("config").enable_sni);
    }
}
