//! The integration tests, as one binary: Cargo links each file directly under
//! `tests/` as its own executable, and linking thirty of them one by one took
//! most of a test run's build time. Seven tests stay binaries of their own
//! because they observe the whole process: `tests/routes_lookup_alloc.rs`,
//! `tests/ureq_allocs.rs` and `tests/proxy_allocs.rs` install a counting
//! global allocator, `tests/routes_logging.rs` and `tests/ureq_trace.rs`
//! install a capturing logger,
//! `tests/proxy_memory.rs` reads the process's RSS, and
//! `tests/tiny_http_process.rs` counts allocations and file descriptors.

mod common;
mod proxy_support;
mod support;
mod tiny_http_common;
mod tls_support;

mod annotations_e2e;
mod annotations_routing;
mod backend_tls_e2e;
mod balance_e2e;
mod basic_auth;
mod cli;
mod client_cert;
mod dockerfile;
mod drain;
mod external_auth_e2e;
mod fuzz_seeds;
mod ingressd_e2e;
mod kube_scripted;
mod kube_watch;
mod limits_e2e;
mod low_ports;
mod manifests;
mod migrate_check;
mod named_secrets;
mod proxy_cut;
mod proxy_e2e;
mod proxy_fakeapi;
mod proxy_hardening;
mod proxy_protocol_e2e;
mod proxy_websocket;
mod readme;
mod source_range_e2e;
mod status_e2e;
mod status_writer;
mod tiny_http_accept_errors;
mod tiny_http_api;
mod tiny_http_body_drain;
mod tiny_http_bodiless_reader;
mod tiny_http_connection_header;
mod tiny_http_drain;
mod tiny_http_drain_idle;
mod tiny_http_from_connection;
mod tiny_http_head_fields;
mod tiny_http_head_lines;
mod tiny_http_head_recycle;
mod tiny_http_head_text;
mod tiny_http_parking;
mod tiny_http_limits;
mod tiny_http_own_headers;
mod tiny_http_parser;
mod tiny_http_pool;
mod tiny_http_preface;
mod tiny_http_serve;
mod tiny_http_shutdown;
mod tiny_http_timeouts;
mod tiny_http_turns;
mod tls_e2e;
mod tls_proxy;
mod ureq_pool;
mod ureq_proto;
mod ureq_timeouts;
