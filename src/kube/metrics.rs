//! Counters the watchers keep and the admin server renders at /metrics, and
//! each kind's last error, which `/readyz` names to loopback clients.
//!
//! The counters are plain atomics, so watchers never block on a lock to count
//! and a scrape never blocks a watcher; the errors sit behind a lock taken
//! only when a request failed or `/readyz` asks.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::Kind;
use crate::prometheus::{self, Type};

/// One set of counters per watched kind.
#[derive(Debug, Default)]
struct KindMetrics {
    list_requests: AtomicU64,
    watch_requests: AtomicU64,
    watch_restarts: AtomicU64,
    relists: AtomicU64,
    events: AtomicU64,
    api_errors: AtomicU64,
    last_event_unix: AtomicU64,
    objects: AtomicU64,
}

/// Watch health for all kinds, plus whether the API server is reachable.
#[derive(Debug)]
pub struct WatchMetrics {
    kinds: [KindMetrics; Kind::COUNT],
    /// -1 before the first request, then 0 or 1.
    api_reachable: AtomicI64,
    /// The last failed request of each kind, for `/readyz` on loopback: written
    /// only on failure, read only by a readiness request.
    last_errors: Mutex<[Option<String>; Kind::COUNT]>,
}

impl Default for WatchMetrics {
    fn default() -> Self {
        WatchMetrics::new()
    }
}

fn slot(kind: Kind) -> usize {
    kind as usize
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Name, type, help text and reader of each per-kind series, in render order.
type Series = (&'static str, Type, &'static str, fn(&KindMetrics) -> &AtomicU64);
const SERIES: &[Series] = &[
    ("ingressd_watch_list_requests_total", Type::Counter, "List requests sent to the API server.", |m| &m.list_requests),
    ("ingressd_watch_requests_total", Type::Counter, "Watch requests sent to the API server.", |m| &m.watch_requests),
    ("ingressd_watch_restarts_total", Type::Counter, "Watches re-established after their stream ended or failed.", |m| {
        &m.watch_restarts
    }),
    ("ingressd_watch_relists_total", Type::Counter, "Complete relists after the first list (expired resource version).", |m| {
        &m.relists
    }),
    ("ingressd_watch_events_total", Type::Counter, "Watch events received, bookmarks included.", |m| &m.events),
    ("ingressd_watch_api_errors_total", Type::Counter, "Failed list or watch requests.", |m| &m.api_errors),
    ("ingressd_watch_last_event_timestamp_seconds", Type::Gauge, "Unix time of the last watch event or list.", |m| {
        &m.last_event_unix
    }),
    ("ingressd_watch_objects", Type::Gauge, "Objects held in the cache.", |m| &m.objects),
];

impl WatchMetrics {
    pub fn new() -> WatchMetrics {
        WatchMetrics { kinds: Default::default(), api_reachable: AtomicI64::new(-1), last_errors: Mutex::default() }
    }

    /// Remembers why the last request of `kind` failed (a message without the token).
    pub fn set_last_error(&self, kind: Kind, message: String) {
        self.last_errors.lock().unwrap_or_else(PoisonError::into_inner)[slot(kind)] = Some(message);
    }

    /// Why the last failed request of `kind` failed; None if none has.
    pub fn last_error(&self, kind: Kind) -> Option<String> {
        self.last_errors.lock().unwrap_or_else(PoisonError::into_inner)[slot(kind)].clone()
    }

    fn of(&self, kind: Kind) -> &KindMetrics {
        &self.kinds[slot(kind)]
    }

    pub fn count_list_request(&self, kind: Kind) {
        self.of(kind).list_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_watch_request(&self, kind: Kind) {
        self.of(kind).watch_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_watch_restart(&self, kind: Kind) {
        self.of(kind).watch_restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_relist(&self, kind: Kind) {
        self.of(kind).relists.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one event and stamps its arrival time.
    pub fn count_event(&self, kind: Kind) {
        let m = self.of(kind);
        m.events.fetch_add(1, Ordering::Relaxed);
        m.last_event_unix.store(unix_now(), Ordering::Relaxed);
    }

    /// A successful list refreshes the kind as much as an event does.
    pub fn mark_fresh(&self, kind: Kind) {
        self.of(kind).last_event_unix.store(unix_now(), Ordering::Relaxed);
    }

    pub fn count_api_error(&self, kind: Kind) {
        self.of(kind).api_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Called by the cache after applying events, so the gauge shows what is held.
    pub fn set_objects(&self, kind: Kind, objects: usize) {
        self.of(kind).objects.store(objects as u64, Ordering::Relaxed);
    }

    /// Records whether the last request reached the API server; logs once per
    /// transition, not once per failed request.
    pub fn set_api_reachable(&self, reachable: bool) {
        let previous = self.api_reachable.swap(i64::from(reachable), Ordering::Relaxed);
        match (previous, reachable) {
            (1 | -1, false) => log::warn!("Kubernetes API server unreachable; serving the routes already known"),
            (0, true) => log::info!("Kubernetes API server reachable again"),
            _ => {}
        }
    }

    /// None before the first request finished.
    pub fn api_reachable(&self) -> Option<bool> {
        match self.api_reachable.load(Ordering::Relaxed) {
            -1 => None,
            v => Some(v == 1),
        }
    }

    pub fn list_requests(&self, kind: Kind) -> u64 {
        self.of(kind).list_requests.load(Ordering::Relaxed)
    }

    pub fn watch_requests(&self, kind: Kind) -> u64 {
        self.of(kind).watch_requests.load(Ordering::Relaxed)
    }

    pub fn watch_restarts(&self, kind: Kind) -> u64 {
        self.of(kind).watch_restarts.load(Ordering::Relaxed)
    }

    pub fn relists(&self, kind: Kind) -> u64 {
        self.of(kind).relists.load(Ordering::Relaxed)
    }

    pub fn events(&self, kind: Kind) -> u64 {
        self.of(kind).events.load(Ordering::Relaxed)
    }

    pub fn api_errors(&self, kind: Kind) -> u64 {
        self.of(kind).api_errors.load(Ordering::Relaxed)
    }

    /// Unix seconds; 0 when nothing arrived yet.
    pub fn last_event_unix(&self, kind: Kind) -> u64 {
        self.of(kind).last_event_unix.load(Ordering::Relaxed)
    }

    pub fn objects(&self, kind: Kind) -> u64 {
        self.of(kind).objects.load(Ordering::Relaxed)
    }

    /// Appends every series in the Prometheus text exposition format.
    pub fn render(&self, out: &mut String) {
        for (name, kind_of_metric, help, field) in SERIES {
            prometheus::header(out, name, *kind_of_metric, help);
            for kind in Kind::ALL {
                prometheus::sample(out, name, &[("kind", kind.name())], field(self.of(kind)).load(Ordering::Relaxed));
            }
        }
        let reachable = i64::from(self.api_reachable() == Some(true));
        let help = "Whether the last request reached the API server (1) or not (0).";
        prometheus::single(out, "ingressd_api_reachable", Type::Gauge, help, reachable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_value(text: &str, series: &str) -> Option<String> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(str::to_string))
    }

    #[test]
    fn render_has_help_type_and_per_kind_values() {
        let m = WatchMetrics::new();
        for _ in 0..3 {
            m.count_event(Kind::Ingress);
        }
        m.count_list_request(Kind::Secret);
        m.count_api_error(Kind::Service);
        m.set_objects(Kind::EndpointSlice, 17);
        m.set_api_reachable(true);
        let mut out = String::new();
        m.render(&mut out);
        assert_eq!(line_value(&out, "ingressd_watch_events_total{kind=\"ingress\"}").as_deref(), Some("3"));
        assert_eq!(line_value(&out, "ingressd_watch_events_total{kind=\"service\"}").as_deref(), Some("0"));
        assert_eq!(line_value(&out, "ingressd_watch_list_requests_total{kind=\"secret\"}").as_deref(), Some("1"));
        assert_eq!(line_value(&out, "ingressd_watch_api_errors_total{kind=\"service\"}").as_deref(), Some("1"));
        assert_eq!(line_value(&out, "ingressd_watch_objects{kind=\"endpointslice\"}").as_deref(), Some("17"));
        assert_eq!(line_value(&out, "ingressd_api_reachable").as_deref(), Some("1"));
        let stamp: u64 = line_value(&out, "ingressd_watch_last_event_timestamp_seconds{kind=\"ingress\"}")
            .and_then(|v| v.parse().ok())
            .expect("timestamp");
        assert!(stamp > 1_600_000_000);
        assert!(out.contains("# TYPE ingressd_watch_events_total counter\n"));
        assert!(out.contains("# HELP ingressd_api_reachable "));
        // Every sample line belongs to a series announced by # TYPE.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            assert!(out.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }

    #[test]
    fn api_reachable_tracks_last_result() {
        let m = WatchMetrics::new();
        assert_eq!(m.api_reachable(), None);
        m.set_api_reachable(false);
        assert_eq!(m.api_reachable(), Some(false));
        m.set_api_reachable(true);
        assert_eq!(m.api_reachable(), Some(true));
        let mut out = String::new();
        m.set_api_reachable(false);
        m.render(&mut out);
        assert_eq!(line_value(&out, "ingressd_api_reachable").as_deref(), Some("0"));
    }
}
