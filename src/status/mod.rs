//! Ingress status publishing: served Ingresses get
//! `status.loadBalancer.ingress` set to the addresses where ingressd answers,
//! and exactly one replica writes, chosen by a Lease.
//!
//! ```text
//! leader thread:    Lease get/create/update every retry period --> Shared.leader
//! pods thread:      list+watch own pods (when no --publish-status-address) --> Shared.addresses
//! publisher thread: woken by a new generation, term or address set, if leading:
//!                   Current::load + addresses --plan--> PUT .../ingresses/NAME/status
//! ```
//!
//! Pure parts: [`election`] (Lease decisions), [`addresses`] (pods to
//! addresses), [`plan`] (which statuses to write), [`microtime`].
//!
//! RBAC beyond the watchers' list/watch: `ingresses/status` update and
//! `ingresses` get (the re-read after a 409); `leases` get, create and update
//! in the Lease namespace; `pods` list and watch in POD_NAMESPACE when the
//! addresses come from pods.

pub mod addresses;
pub mod election;
mod leader;
pub mod microtime;
pub mod plan;
mod pods;
mod publisher;
pub mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::admin::MetricsSource;
use crate::prometheus::{self, Type};
use crate::cache::{CacheStatus, Current};
use crate::config::Config;
use crate::kube::client::ApiClient;
use crate::kube::objects::IngressLoadBalancerIngress;
use crate::notify::Notify;
use crate::routes::RouteConfig;
use crate::stop::Stop;

use election::Timing;

/// Where the addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSource {
    /// `--publish-status-address`, fixed for the process's life.
    Fixed(Vec<IngressLoadBalancerIngress>),
    /// Host IPs of ready pods matching `selector` in `namespace`.
    Pods { namespace: String, selector: String },
}

/// Everything status publishing needs from the command line and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    pub identity: String,
    pub lease_namespace: String,
    pub lease_name: String,
    pub timing: Timing,
    pub addresses: AddressSource,
}

impl StatusConfig {
    /// `Ok(None)` when publishing is off: without POD_NAMESPACE there are no
    /// pods to find, so only `--publish-status-address` can turn it on. The
    /// Lease lives in `--election-namespace`, else POD_NAMESPACE, else
    /// `default`. The identity is POD_NAME, else `hostname_pid`.
    pub fn from_config(config: &Config, fallback_identity: impl FnOnce() -> String) -> Result<Option<StatusConfig>, String> {
        let addresses = if !config.publish_status_addresses.is_empty() {
            AddressSource::Fixed(addresses::from_publish_flag(&config.publish_status_addresses))
        } else if let Some(namespace) = &config.pod_namespace {
            if config.pod_selector.trim().is_empty() {
                return Err("--pod-selector must not be empty: it would select every pod in the namespace".into());
            }
            AddressSource::Pods { namespace: namespace.clone(), selector: config.pod_selector.clone() }
        } else {
            return Ok(None);
        };
        let timing = Timing {
            lease_duration: config.lease_duration,
            renew_deadline: config.lease_renew_deadline,
            retry_period: config.lease_retry_period,
        };
        timing.check()?;
        if config.election_id.is_empty() {
            return Err("--election-id must not be empty".into());
        }
        let lease_namespace =
            config.election_namespace.clone().or_else(|| config.pod_namespace.clone()).unwrap_or_else(|| "default".to_string());
        Ok(Some(StatusConfig {
            identity: config.pod_name.clone().unwrap_or_else(fallback_identity),
            lease_namespace,
            lease_name: config.election_id.clone(),
            timing,
            addresses,
        }))
    }
}

/// `hostname_pid`: unique per process even when several run on one host.
pub fn fallback_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ingressd".to_string());
    format!("{host}_{}", std::process::id())
}

/// The addresses to publish and a version bumped on every change, so the
/// publisher notices a change without comparing lists each tick.
#[derive(Debug, Default)]
struct Addresses {
    version: u64,
    list: Vec<IngressLoadBalancerIngress>,
}

/// State the three threads share; also the metrics source.
#[derive(Debug)]
pub struct StatusState {
    renew_deadline: Duration,
    /// When the last successful Lease write was sent; `None` when not leading.
    last_renewal: Mutex<Option<Instant>>,
    /// Bumped each time leadership is gained, so the publisher re-evaluates.
    terms: AtomicU64,
    addresses: Mutex<Addresses>,
    writes: AtomicU64,
    write_errors: AtomicU64,
    evaluations: AtomicU64,
    /// Notified on a new term or address set; the publisher waits on it
    /// (it is the published-generation signal of `Current`).
    changed: Arc<Notify>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a plain assignment: a poisoned lock still
    // holds a consistent value.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StatusState {
    fn new(timing: &Timing, changed: Arc<Notify>) -> StatusState {
        StatusState {
            changed,
            renew_deadline: timing.renew_deadline,
            last_renewal: Mutex::new(None),
            terms: AtomicU64::new(0),
            addresses: Mutex::new(Addresses::default()),
            writes: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            evaluations: AtomicU64::new(0),
        }
    }

    /// Asked before every status write: leadership lapses by the clock, even
    /// while the leader thread is stuck in a request.
    pub fn is_leading(&self) -> bool {
        election::still_leading(*lock(&self.last_renewal), Instant::now(), self.renew_deadline)
    }

    /// The current leadership term: changes whenever leadership is regained.
    fn term(&self) -> u64 {
        self.terms.load(Ordering::Relaxed)
    }

    /// Records a successful Lease write sent at `sent`; true when this
    /// starts a new term.
    fn renewed(&self, sent: Instant) -> bool {
        let mut last = lock(&self.last_renewal);
        let was_leading = election::still_leading(*last, sent, self.renew_deadline);
        *last = Some(sent);
        if !was_leading {
            self.terms.fetch_add(1, Ordering::Relaxed);
            self.changed.notify();
        }
        !was_leading
    }

    /// Stops leading at once (another replica holds the Lease); true when
    /// we were leading.
    fn resign(&self) -> bool {
        let was_leading = self.is_leading();
        *lock(&self.last_renewal) = None;
        was_leading
    }

    fn set_addresses(&self, list: Vec<IngressLoadBalancerIngress>) -> bool {
        let mut addresses = lock(&self.addresses);
        if addresses.list == list && addresses.version > 0 {
            return false;
        }
        addresses.list = list;
        addresses.version += 1;
        drop(addresses);
        self.changed.notify();
        true
    }

    fn addresses(&self) -> (u64, Vec<IngressLoadBalancerIngress>) {
        let addresses = lock(&self.addresses);
        (addresses.version, addresses.list.clone())
    }
}

impl MetricsSource for StatusState {
    fn render(&self, out: &mut String) {
        let series = [
            ("ingressd_leader", Type::Gauge, "Whether this replica holds the status Lease and writes Ingress status (1) or not (0).", u64::from(self.is_leading())),
            ("ingressd_status_writes_total", Type::Counter, "Ingress status writes that succeeded.", self.writes.load(Ordering::Relaxed)),
            ("ingressd_status_write_errors_total", Type::Counter, "Ingress status writes that failed (after conflict retries).", self.write_errors.load(Ordering::Relaxed)),
            ("ingressd_status_evaluations_total", Type::Counter, "Times the leader compared desired and current Ingress status.", self.evaluations.load(Ordering::Relaxed)),
        ];
        for (name, kind, help, value) in series {
            prometheus::single(out, name, kind, help, value);
        }
    }
}

/// What the publisher reads besides the shared state.
pub struct Inputs {
    pub client: Arc<ApiClient>,
    pub current: Arc<Current>,
    pub cache: Arc<CacheStatus>,
    pub route_config: RouteConfig,
    /// Ends the status threads (between requests; sleeps end at once).
    pub stop: Stop,
}

/// The running status publisher.
pub struct StatusHandle {
    pub state: Arc<StatusState>,
    elector: Arc<leader::Elector>,
}

/// How long shutdown waits for the Lease release.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

impl StatusHandle {
    /// At shutdown: stop writing and hand the Lease to a follower now rather
    /// than after the lease duration. Waits at most `RELEASE_TIMEOUT`.
    pub fn release(&self) {
        let elector = Arc::clone(&self.elector);
        let (done, finished) = crossbeam_channel::bounded(1);
        let started = std::thread::Builder::new().name("status-release".into()).spawn(move || {
            elector.release();
            let _ = done.send(());
        });
        if started.is_err() || finished.recv_timeout(RELEASE_TIMEOUT).is_err() {
            log::warn!("Lease release did not finish within {RELEASE_TIMEOUT:?}; followers wait for it to expire");
        }
    }
}

/// Starts the leader, pods (if needed) and publisher threads.
pub fn spawn(config: StatusConfig, inputs: Inputs) -> Result<StatusHandle, String> {
    let state = Arc::new(StatusState::new(&config.timing, Arc::clone(inputs.current.published())));
    log::info!(
        "status publishing on: identity {:?}, Lease {}/{}, addresses from {}",
        config.identity,
        config.lease_namespace,
        config.lease_name,
        match &config.addresses {
            AddressSource::Fixed(_) => "--publish-status-address".to_string(),
            AddressSource::Pods { namespace, selector } => format!("ready pods {selector:?} in {namespace}"),
        }
    );
    let thread = |name: &str| std::thread::Builder::new().name(name.to_string());
    let spawn_error = |e: std::io::Error| format!("cannot start a status thread: {e}");
    match &config.addresses {
        AddressSource::Fixed(list) => {
            state.set_addresses(list.clone());
        }
        AddressSource::Pods { namespace, selector } => {
            pods::spawn(Arc::clone(&inputs.client), namespace, selector, Arc::clone(&state), inputs.stop.clone()).map_err(spawn_error)?;
        }
    }
    let elector = Arc::new(leader::Elector::new(&config, Arc::clone(&inputs.client), Arc::clone(&state), inputs.stop.clone()));
    let running = Arc::clone(&elector);
    thread("status-leader").spawn(move || running.run()).map_err(spawn_error)?;
    let changes = Arc::clone(inputs.current.published());
    inputs.stop.on_stop(move || changes.notify());
    let publisher = publisher::Publisher::new(inputs, Arc::clone(&state));
    thread("status-publisher").spawn(move || publisher.run()).map_err(spawn_error)?;
    Ok(StatusHandle { state, elector })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Command;

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        let env = |k: &str| env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string());
        match Config::parse(args.iter().map(|s| s.to_string()), &env) {
            Ok(Command::Run(c)) => *c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn status_config(args: &[&str], env: &[(&str, &str)]) -> Result<Option<StatusConfig>, String> {
        StatusConfig::from_config(&config(args, env), || "host_1".to_string())
    }

    #[test]
    fn off_without_pod_namespace_or_publish_address() {
        assert_eq!(status_config(&[], &[]), Ok(None));
        assert_eq!(status_config(&[], &[("POD_NAME", "ingressd-x")]), Ok(None));
    }

    #[test]
    fn pods_in_pod_namespace_by_default() {
        let c = status_config(&[], &[("POD_NAME", "ingressd-x"), ("POD_NAMESPACE", "ingress")]).expect("valid").expect("on");
        assert_eq!(c.identity, "ingressd-x");
        assert_eq!((c.lease_namespace.as_str(), c.lease_name.as_str()), ("ingress", "ingressd-leader"));
        assert_eq!(c.addresses, AddressSource::Pods { namespace: "ingress".into(), selector: "app.kubernetes.io/name=ingressd".into() });
        assert_eq!(c.timing, Timing::default());
    }

    #[test]
    fn publish_address_without_namespace_uses_default_and_hostname_identity() {
        let c = status_config(&["--publish-status-address", "192.0.2.10, lb.example.com"], &[]).expect("valid").expect("on");
        assert_eq!(c.identity, "host_1");
        assert_eq!(c.lease_namespace, "default");
        let AddressSource::Fixed(list) = c.addresses else { panic!("fixed addresses expected") };
        assert_eq!(list.len(), 2);
        let c = status_config(
            &["--publish-status-address=192.0.2.10", "--election-namespace", "ops", "--election-id", "edge", "--lease-duration", "2", "--lease-renew-deadline", "1.5", "--lease-retry-period", "0.2"],
            &[("POD_NAMESPACE", "ingress")],
        )
        .expect("valid")
        .expect("on");
        assert_eq!((c.lease_namespace.as_str(), c.lease_name.as_str()), ("ops", "edge"));
        assert_eq!(c.timing.renew_deadline, Duration::from_millis(1500));
    }

    #[test]
    fn unsafe_timings_are_refused() {
        let err = status_config(&["--lease-renew-deadline", "20"], &[("POD_NAMESPACE", "ingress")]);
        assert!(matches!(err, Err(m) if m.contains("--lease-renew-deadline")));
        assert!(status_config(&["--pod-selector", ""], &[("POD_NAMESPACE", "ingress")]).is_err());
    }

    #[test]
    fn leadership_terms_and_metrics() {
        let state = StatusState::new(&Timing::default(), Arc::default());
        assert!(!state.is_leading());
        assert!(state.renewed(Instant::now()), "first renewal starts a term");
        assert!(!state.renewed(Instant::now()), "renewing continues it");
        assert_eq!(state.term(), 1);
        let mut out = String::new();
        state.render(&mut out);
        assert!(out.contains("\ningressd_leader 1\n"), "{out}");
        assert!(state.resign());
        assert!(!state.is_leading());
        assert!(state.renewed(Instant::now()));
        assert_eq!(state.term(), 2);
        assert!(state.set_addresses(Vec::new()), "the first set counts even when empty");
        assert!(!state.set_addresses(Vec::new()));
        assert_eq!(state.addresses().0, 1);
    }
}
