//! The Kubernetes API client: objects, the HTTP client, list-then-watch.

pub mod objects;
