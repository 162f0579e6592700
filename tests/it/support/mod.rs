//! Test support shared by the integration tests: HTTP reading, bounded
//! polling, and the small YAML reader the manifest tests use.

pub mod http;
pub mod wait;
pub mod yaml;
