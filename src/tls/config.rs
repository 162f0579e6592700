//! The rustls server configuration: TLS 1.2 and 1.3 on the ring provider,
//! ALPN `http/1.1`, a certificate resolver over the live [`CertSet`], and the
//! lookup of per-host client-certificate settings.
//!
//! [`CertSet`]: super::CertSet

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::client_auth::ClientAuth;
use crate::cache::Current;

/// Chooses the certificate from whatever generation is current when the
/// ClientHello arrives, so a Secret change applies to the next handshake
/// without touching established sessions.
pub struct LiveResolver {
    current: Arc<Current>,
}

impl std::fmt::Debug for LiveResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for LiveResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().certs.resolve(client_hello.server_name())
    }
}

/// What the HTTPS listener's handshakes start from: the rustls
/// configuration, and the live generation for per-host client-certificate
/// settings.
pub struct HttpsConfig {
    pub rustls: Arc<ServerConfig>,
    current: Arc<Current>,
}

impl std::fmt::Debug for HttpsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsConfig").finish_non_exhaustive()
    }
}

impl HttpsConfig {
    /// The client-certificate settings for a ClientHello's server name, from
    /// the generation current when it arrives.
    pub fn client_auth(&self, server_name: Option<&str>) -> Option<Arc<ClientAuth>> {
        let generation = self.current.load();
        generation.client_auth.for_server_name(server_name).cloned()
    }
}

/// The HTTPS server configuration. The provider is passed explicitly so
/// nothing depends on (or panics for want of) a process-wide default.
pub fn server_config(current: Arc<Current>) -> Arc<HttpsConfig> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3 (a build-time fact, not input)")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(LiveResolver { current: Arc::clone(&current) }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(HttpsConfig { rustls: Arc::new(config), current })
}
