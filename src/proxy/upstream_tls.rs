//! Clients for routes with `backend-protocol: HTTPS`: one ureq Agent per TLS
//! setting, kept apart from the plain upstream client (`upstream`), which
//! plain routes use untouched.
//!
//! Endpoints are IP addresses, so the name a certificate is verified against
//! (and sent as SNI) is not the address connected to. ureq takes both from
//! the URI, so each Agent gets its own TLS connector that connects to the
//! URI's address and handshakes with the setting's name. One Agent per
//! setting keeps pooled connections of different settings apart (a
//! connection verified against one CA never serves a route that trusts
//! another), and the Agents are found by [`TlsKey`], so a recompiled route
//! with unchanged settings keeps its pool.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, TcpConnector, Transport, TransportAdapter};
use ureq::Agent;

use super::upstream::{agent_config, CountingConnector, EndpointResolver};
use super::ProxyConfig;
use crate::tls::upstream::{BackendTls, TlsKey};

/// The Agents by setting. An Agent outlives the routes that use it until
/// another setting needs a new one: a route recompiled with the same setting
/// (the host changed, the Secret did not) finds its pool again even when the
/// old generation was dropped before its first request.
#[derive(Debug, Default)]
pub(crate) struct TlsAgents {
    agents: Mutex<HashMap<TlsKey, Arc<Agent>>>,
}

impl TlsAgents {
    /// The Agent for a route's TLS setting, or why it has none (the route
    /// answers 502). Found once per compiled route; later requests take it
    /// from the route.
    pub(crate) fn agent<'t>(&self, tls: &'t BackendTls, config: &ProxyConfig) -> Result<&'t Agent, &'t str> {
        let client_config = tls.config.as_ref().map_err(String::as_str)?;
        Ok(tls.agent.get_or_init(|| {
            let mut agents = self.agents.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(agent) = agents.get(&tls.key) {
                return Arc::clone(agent);
            }
            // Settings no route holds any more (a rotated CA, a removed Ingress) go.
            agents.retain(|_, agent| Arc::strong_count(agent) > 1);
            let agent = Arc::new(new_agent(config, Arc::clone(client_config), &tls.key.server_name));
            agents.insert(tls.key.clone(), Arc::clone(&agent));
            agent
        }))
    }
}

fn new_agent(config: &ProxyConfig, client_config: Arc<ClientConfig>, server_name: &str) -> Agent {
    let connector = TcpConnector::default().chain(TlsConnector { config: client_config, server_name: server_name.to_string() }).chain(CountingConnector);
    Agent::with_parts(agent_config(config), connector, EndpointResolver::default())
}

/// Wraps each new connection in TLS with the setting's name, whatever address it goes to.
#[derive(Debug)]
struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: String,
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Box<dyn Transport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else { return Ok(None) };
        // Checked when the setting was compiled; a name rustls refuses cannot reach here.
        let name = ServerName::try_from(self.server_name.clone()).map_err(|_| ureq::Error::Tls("invalid proxy-ssl-name"))?;
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name).map_err(|e| ureq::Error::Io(std::io::Error::other(e)))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Box::new(TlsTransport { buffers, stream: StreamOwned { conn, sock } })))
    }
}

struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
