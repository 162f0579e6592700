//! ingressd: a Kubernetes Ingress controller and HTTP(S) reverse proxy.
//!
//! # Module map
//!
//! ```text
//! kube::watcher (thread per kind) --events--> cache (one thread)
//!     --compiles--> routes::RouteTable + tls::CertSet --publishes--> cache::Current
//! tiny_http connection threads (proxy::serve) --Current::load--> routes lookup --> ureq upstream
//! tls::listener --TLS sessions--> the same tiny_http server, a connection thread each
//! status (leader only) --Current::load--> Ingress status through the API
//! admin: /healthz /readyz /metrics /debug/routes
//! ```
//!
//! - [`annotations`]: ingress-nginx and ingressd annotation names, and what ingressd does with each.
//! - [`config`]: the command line, a contract with operators and tests.
//! - [`kube`]: API objects, the HTTP client, list-then-watch.
//! - [`store`]: the watched objects by kind, and snapshots of them.
//! - [`cache`]: the thread that owns the store, compiles and publishes immutable generations.
//! - [`routes`]: Ingress → route table compilation and the per-request lookup.
//! - [`proxy`]: the data plane: connection threads, header rewriting, upstream streaming.
//! - [`data_plane`]: the listeners and the server the proxy runs on, started and drained together.
//! - [`proxy_protocol`]: the PROXY protocol header an L4 load balancer sends first.
//! - [`tls`]: certificates from Secrets, chosen by SNI.
//! - [`status`]: leader election and Ingress status publishing.
//! - [`admin`], [`metrics`], [`prometheus`], [`inspect`]: probes, per-request
//!   metrics, the text format they share, the route inspector.
//! - [`migrate`]: `ingressd migrate-check`, what moving from ingress-nginx changes.
//! - [`access_log`], [`shutdown`], [`civil`]: request logs, signals, dates.
//! - [`bounded_lru`]: the fixed-size table per-client state lives in.
//! - [`fast_hash`]: the hash for keys from Kubernetes objects (hosts, metric labels).
//! - [`uri_escape`]: percent-encoding as nginx writes escaped variables.

pub mod access_log;
pub mod annotations;
pub mod base64;
pub mod admin;
pub mod bounded_lru;
pub mod cache;
pub mod cidr;
pub mod civil;
pub mod hostname;
pub mod config;
pub mod data_plane;
pub mod fast_hash;
pub mod inspect;
pub mod kube;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod prometheus;
pub mod proxy;
pub mod proxy_protocol;
pub mod routes;
pub mod shutdown;
pub mod status;
pub mod stop;
pub mod store;
pub mod tls;
pub mod uri_escape;
#[cfg(test)]
mod test_rng;
