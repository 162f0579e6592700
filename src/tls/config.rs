//! The rustls server configuration: TLS 1.2 and 1.3 on the ring provider,
//! ALPN `http/1.1`, a certificate resolver over the live certificates, and
//! the lookup of per-host client-certificate settings.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::client_auth::ClientAuth;

/// The certificates and client-certificate settings of whatever generation
/// is current when a ClientHello arrives, so a Secret change applies to the
/// next handshake without touching established sessions. The cache provides
/// it; TLS names only this, so it imports nothing of the cache that imports
/// it.
pub trait LiveTls: Send + Sync {
    /// The certificate for a ClientHello's server name (the default one
    /// when none matches).
    fn certificate(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>>;
    /// The client-certificate settings for a ClientHello's server name.
    fn client_auth(&self, server_name: Option<&str>) -> Option<Arc<ClientAuth>>;
}

struct LiveResolver {
    live: Arc<dyn LiveTls>,
}

impl std::fmt::Debug for LiveResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for LiveResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.live.certificate(client_hello.server_name())
    }
}

/// What the HTTPS listener's handshakes start from: the rustls
/// configuration, and the live settings for per-host client certificates.
pub struct HttpsConfig {
    pub rustls: Arc<ServerConfig>,
    live: Arc<dyn LiveTls>,
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
        self.live.client_auth(server_name)
    }
}

/// The HTTPS server configuration. The provider is passed explicitly so
/// nothing depends on (or panics for want of) a process-wide default.
pub fn server_config(live: Arc<dyn LiveTls>) -> Arc<HttpsConfig> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3 (a build-time fact, not input)")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(LiveResolver { live: Arc::clone(&live) }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(HttpsConfig { rustls: Arc::new(config), live })
}
