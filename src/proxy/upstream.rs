//! The one HTTP client every worker shares to reach upstreams.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ureq::config::AutoHeaderValue;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport};
use ureq::Agent;

use super::ProxyConfig;

/// Idle upstream connections older than this are not reused: pods and
/// kube-proxy rules change, and servers close idle keep-alives on their own.
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// An Agent that behaves like a proxy: statuses and redirects pass through
/// untouched, nothing is injected, the environment's proxy variables are
/// ignored, and every wait is bounded. The pool holds one idle connection per
/// worker per upstream so a busy route reuses connections instead of opening
/// thousands.
pub fn agent(config: &ProxyConfig) -> Agent {
    let workers = config.workers.max(1);
    let agent_config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(AutoHeaderValue::None)
        .accept(AutoHeaderValue::None)
        .allow_non_standard_methods(true)
        .proxy(None)
        .no_delay(true)
        .max_idle_connections(workers * 4)
        .max_idle_connections_per_host(workers)
        .max_idle_age(MAX_IDLE_AGE)
        .timeout_connect(Some(config.connect_timeout))
        .timeout_recv_response(Some(config.response_timeout))
        .timeout_per_read(Some(config.read_timeout))
        .timeout_per_write(Some(config.read_timeout))
        .build();
    Agent::with_parts(agent_config, DefaultConnector::new().chain(CountingConnector), DefaultResolver::default())
}

/// Upstream connections open right now, idle in the pool or in use.
static OPEN_CONNECTIONS: AtomicI64 = AtomicI64::new(0);

/// The number of upstream connections open, idle in the pool or in use; ureq
/// does not expose its pool, so every connection it opens is counted from
/// creation to close.
pub fn open_connections() -> i64 {
    OPEN_CONNECTIONS.load(Ordering::Relaxed)
}

/// Wraps every new upstream connection in a [`Counted`] one.
#[derive(Debug)]
struct CountingConnector;

impl Connector<Box<dyn Transport>> for CountingConnector {
    type Out = Box<dyn Transport>;

    fn connect(&self, _: &ConnectionDetails, chained: Option<Box<dyn Transport>>) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| {
            OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
            Box::new(Counted(inner)) as Box<dyn Transport>
        }))
    }
}

/// A connection that leaves the open count when it is dropped.
#[derive(Debug)]
struct Counted(Box<dyn Transport>);

impl Drop for Counted {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Transport for Counted {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.0.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.0.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.0.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.0.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.0.is_open()
    }

    fn is_tls(&self) -> bool {
        self.0.is_tls()
    }
}
