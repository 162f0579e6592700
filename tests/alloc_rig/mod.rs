//! What the tests and the bench that count allocations run requests
//! through: a keep-alive backend answering every request head with one fixed
//! response (it allocates nothing per request itself), and the proxy with one
//! route to it. Each binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ingressd::cache::{self, CompileConfig, Current, Generation};
use ingressd::kube::objects::{EndpointSlice, Ingress, Service};
use ingressd::kube::Object;
use ingressd::proxy::{Outcome, ProxyConfig};
use ingressd::routes::RouteConfig;
use ingressd::store::Snapshot;
use serde_json::json;

/// Starts the backend on a free loopback port; its port.
pub fn backend(response: impl Into<Arc<[u8]>>) -> u16 {
    let response: Arc<[u8]> = response.into();
    let listener = TcpListener::bind("127.0.0.1:0").expect("backend listener");
    let port = listener.local_addr().expect("backend address").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let response = Arc::clone(&response);
            thread::spawn(move || serve(stream, &response));
        }
    });
    port
}

/// Answers each request head (no request has a body) until the client closes.
fn serve(mut stream: TcpStream, response: &[u8]) {
    let mut buffer = [0u8; 8192];
    let mut filled = 0;
    loop {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        while let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            if stream.write_all(response).is_err() {
                return;
            }
            buffer.copy_within(end + 4..filled, 0);
            filled -= end + 4;
        }
    }
}

/// The proxy's settings as the command line's defaults give them, with
/// `http_port` as the plain listener's port.
pub fn proxy_config(http_port: u16) -> ProxyConfig {
    ProxyConfig {
        max_body_size: 1 << 20,
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(60),
        read_timeout: Duration::from_secs(60),
        websocket_idle_timeout: Duration::from_secs(60),
        trusted_proxies: Vec::new(),
        proxy_protocol: None,
        http_port,
        https_port: 443,
    }
}

/// Starts the proxy, serving `host` from the backend at `backend_port`
/// (one Ingress, Service and EndpointSlice); its address.
pub fn one_route_proxy(host: &str, backend_port: u16) -> SocketAddr {
    let mut snapshot = Snapshot::default();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "allocs", "namespace": "default"},
        "spec": {"ingressClassName": "ingressd", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "allocs", "port": {"number": 80}}}}]}}]}
    }))
    .expect("ingress");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "allocs", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .expect("service");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "allocs-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "allocs"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": backend_port, "protocol": "TCP"}]
    }))
    .expect("endpoint slice");
    snapshot.insert(Object::Ingress(ingress));
    snapshot.insert(Object::Service(service));
    snapshot.insert(Object::EndpointSlice(slice));
    let routes = RouteConfig { ingress_class: "ingressd".into(), ..RouteConfig::default() };
    let compile_config = CompileConfig { routes, default_certificate: None };
    let current = Arc::new(Current::new(cache::compile(&Arc::new(snapshot), &compile_config, &Generation::default())));
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
    let addr = listener.local_addr().expect("proxy address");
    let config = proxy_config(addr.port());
    // As in production with the access log off: the metrics observe every request.
    let metrics = Arc::new(ingressd::metrics::RequestMetrics::default());
    let observer = Arc::new(move |outcome: &Outcome| metrics.observe(outcome));
    let server = ingressd::proxy::serve(listener, tiny_http::Limits::default(), current, Arc::new(config), observer).expect("server");
    std::mem::forget(server);
    addr
}
