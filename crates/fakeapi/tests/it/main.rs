//! The fake API server's tests, as one binary (one link instead of three).

mod common;

mod api;
mod binary;
mod ureq_client;
