//! ingressd: a Kubernetes Ingress controller and HTTP(S) reverse proxy.
//!
//! # Module map
//!
//! ```text
//! kube::watch (thread per kind) --events--> cache (one thread)
//!     --compiles--> routes::RouteTable + tls::CertSet --publishes--> cache::Current
//! proxy workers --Current::load--> routes lookup --> ureq upstream
//! admin: /healthz /readyz /metrics
//! ```
//!
//! - [`config`]: the command line, a contract with operators and tests.
//! - [`kube`]: API objects, the HTTP client, list-then-watch.
//! - [`cache`]: owns the objects, publishes immutable generations.
//! - [`routes`]: Ingress → route table compilation and the per-request lookup.
//! - [`proxy`]: the data plane: workers, header rewriting, upstream streaming.
//! - [`tls`]: certificates from Secrets, chosen by SNI.

pub mod cache;
pub mod civil;
pub mod config;
pub mod kube;
pub mod proxy;
pub mod routes;
pub mod tls;
pub mod admin;
pub mod shutdown;
pub mod access_log;
pub mod inspect;
pub mod metrics;
pub mod status;
