//! Test support shared by the integration tests: HTTP reading, bounded
//! polling, ports that stay free, and the small YAML reader the manifest
//! tests use.

pub mod http;
pub mod ports;
pub mod wait;
pub mod yaml;
