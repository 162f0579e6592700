//! The one HTTP client every worker shares to reach upstreams.

use std::time::Duration;

use ureq::config::AutoHeaderValue;
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
    Agent::config_builder()
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
        .build()
        .into()
}
