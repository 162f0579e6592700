//! Sockets and threads: accept loop, TLS, one thread per connection, request routing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::Options;

pub(crate) struct Started {
    pub shared: Arc<Shared>,
    pub addr: SocketAddr,
    pub url: String,
    pub ca_pem: String,
    pub accept_thread: JoinHandle<()>,
}

pub(crate) struct Shared;

pub(crate) fn start(_opts: Options) -> std::io::Result<Started> {
    todo!()
}

impl Shared {
    pub fn create(&self, _obj: Value) -> Result<Value, String> { todo!() }
    pub fn apply(&self, _obj: Value) -> Result<Value, String> { todo!() }
    pub fn delete(&self, _a: &str, _k: &str, _ns: &str, _n: &str) -> bool { todo!() }
    pub fn get(&self, _a: &str, _k: &str, _ns: &str, _n: &str) -> Option<Value> { todo!() }
    pub fn list(&self, _a: &str, _k: &str) -> Vec<Value> { todo!() }
    pub fn drop_watches(&self) { todo!() }
    pub fn compact(&self) { todo!() }
    pub fn fail_next(&self, _n: usize, _status: u16) { todo!() }
    pub fn add_token(&self, _t: &str) { todo!() }
    pub fn revoke_token(&self, _t: &str) { todo!() }
    pub fn set_hang(&self, _on: bool) { todo!() }
    pub fn set_bookmark_interval(&self, _i: Duration) { todo!() }
    pub fn request_count(&self, _path: &str, _watch: Option<bool>) -> usize { todo!() }
    pub fn total_requests(&self) -> usize { todo!() }
    pub fn open_watches(&self) -> usize { todo!() }
    pub fn wait_for_watches(&self, _n: usize, _t: Duration) -> bool { todo!() }
    pub fn resource_version(&self) -> u64 { todo!() }
    pub fn shutdown(&self, _addr: SocketAddr) { todo!() }
    pub fn wait_for_connections_closed(&self, _t: Duration) { todo!() }
}
