//! TLS termination: the certificate set compiled from Ingress TLS Secrets and
//! the SNI resolver rustls consults at handshake time.

/// Certificates by host, compiled by the cache thread.
#[derive(Debug, Default)]
pub struct CertSet {}
