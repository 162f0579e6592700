//! Test support shared by the root crate's test binaries: each declares
//! `mod support;` and uses the parts it needs. (`yaml.rs` is included on its
//! own by the one test that reads manifests.)

pub mod http;
pub mod wait;
