//! The rustls server configuration: TLS 1.2 and 1.3 on the ring provider,
//! ALPN `http/1.1`, and a certificate resolver over the live [`CertSet`].
//!
//! [`CertSet`]: super::CertSet

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

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

/// The HTTPS server configuration. The provider is passed explicitly so
/// nothing depends on (or panics for want of) a process-wide default.
pub fn server_config(current: Arc<Current>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3 (a build-time fact, not input)")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(LiveResolver { current }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
