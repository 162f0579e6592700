//! Per-request metrics, fed by the proxy's outcome of every request, and
//! the gauges read when /metrics is scraped: the live generation's and the
//! connections'.
//!
//! Label values come only from Ingress objects (namespace, name, Service)
//! and from the status class, never from paths, hosts or anything else a
//! client sends, so the number of series is bounded by the cluster's objects.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use smol_str::SmolStr;

use crate::admin::MetricsSource;
use crate::cache::Current;
use crate::fast_hash::BuildFastHasher;
use crate::kube::objects::ObjectKey;
use crate::prometheus::{self, Type};
use crate::proxy::{self, Outcome};
use crate::{inspect, proxy_protocol, tls};

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Status classes in label order; a request counts under its class's index.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Counts by the first bucket a duration fits, not by every bucket it fits:
/// a request increments one counter, found by a binary search, and render
/// adds up the cumulative counts Prometheus expects.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One series of `ingressd_requests_total`.
#[derive(Debug, PartialEq, Eq)]
struct SeriesKey {
    ingress: ObjectKey,
    service: SmolStr,
}

/// Each name is written once: the hasher mixes in every write's length,
/// which keeps the names apart without the separator byte `str` adds.
impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.ingress.namespace.as_bytes());
        state.write(self.ingress.name.as_bytes());
        state.write(self.service.as_bytes());
    }
}

#[derive(Debug)]
struct Series {
    /// Requests by status class.
    requests: [u64; CLASSES.len()],
    /// The index of its Ingress's histogram in `Counters::durations`.
    durations: usize,
}

/// A request finds its series with one hash of its three names; the
/// histogram is per Ingress (shared by the Ingress's Services), so its series
/// points to it, and the by-Ingress index is looked up only for a series
/// never seen before.
#[derive(Debug, Default)]
struct Counters {
    series: HashMap<SeriesKey, Series, BuildFastHasher>,
    durations: Vec<(ObjectKey, Histogram)>,
    durations_index: HashMap<ObjectKey, usize, BuildFastHasher>,
    upstream_connect_errors: u64,
    upstream_retries: u64,
    upstream_timeouts: u64,
}

/// Request counters and latency histograms.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    counters: Mutex<Counters>,
}

/// The index of a status's class in [`CLASSES`].
fn status_class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

impl Counters {
    /// The series of `key`, created with its Ingress's histogram if missing.
    fn series(&mut self, key: SeriesKey) -> &mut Series {
        let Counters { series, durations, durations_index, .. } = self;
        series.entry(key).or_insert_with_key(|key| {
            let index = *durations_index.entry(key.ingress.clone()).or_insert_with_key(|ingress| {
                durations.push((ingress.clone(), Histogram::default()));
                durations.len() - 1
            });
            Series { requests: [0; CLASSES.len()], durations: index }
        })
    }
}

impl RequestMetrics {
    /// Counts one finished request.
    pub fn observe(&self, outcome: &Outcome) {
        // Clones of the names copy them (inline) or bump a count, never allocate.
        let key = SeriesKey { ingress: outcome.ingress.clone().unwrap_or_default(), service: outcome.service.clone().unwrap_or_default() };
        let seconds = outcome.duration.as_secs_f64();
        let bucket = BUCKETS.partition_point(|&bound| bound < seconds);
        let mut counters = match self.counters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let series = counters.series(key);
        series.requests[status_class(outcome.status)] += 1;
        let durations = series.durations;
        if let Some((_, histogram)) = counters.durations.get_mut(durations) {
            if let Some(n) = histogram.buckets.get_mut(bucket) {
                *n += 1;
            }
            histogram.count += 1;
            histogram.sum += seconds;
        }
        counters.upstream_connect_errors += u64::from(outcome.connect_errors);
        counters.upstream_retries += u64::from(outcome.attempts.saturating_sub(1));
        counters.upstream_timeouts += u64::from(outcome.timed_out);
    }
}

impl MetricsSource for RequestMetrics {
    fn render(&self, out: &mut String) {
        let counters = match self.counters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        const REQUESTS: &str = "ingressd_requests_total";
        prometheus::header(out, REQUESTS, Type::Counter, "Requests answered, by Ingress, Service and status class.");
        let mut series: Vec<(&SeriesKey, &Series)> = counters.series.iter().collect();
        series.sort_unstable_by(|a, b| (&a.0.ingress, &a.0.service).cmp(&(&b.0.ingress, &b.0.service)));
        for (key, per) in series {
            for (class, &n) in CLASSES.iter().zip(&per.requests).filter(|(_, &n)| n > 0) {
                let labels = [("namespace", key.ingress.namespace.as_str()), ("ingress", key.ingress.name.as_str()), ("service", key.service.as_str()), ("code_class", *class)];
                prometheus::sample(out, REQUESTS, &labels, n);
            }
        }
        prometheus::header(
            out,
            "ingressd_request_duration_seconds",
            Type::Histogram,
            "Time from request head to the last byte sent, by Ingress.",
        );
        let mut durations: Vec<&(ObjectKey, Histogram)> = counters.durations.iter().collect();
        durations.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (ingress, h) in durations {
            let by_ingress = [("namespace", ingress.namespace.as_str()), ("ingress", ingress.name.as_str())];
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let le = bound.to_string();
                let labels = [by_ingress[0], by_ingress[1], ("le", le.as_str())];
                prometheus::sample(out, "ingressd_request_duration_seconds_bucket", &labels, cumulative);
            }
            let labels = [by_ingress[0], by_ingress[1], ("le", "+Inf")];
            prometheus::sample(out, "ingressd_request_duration_seconds_bucket", &labels, h.count);
            prometheus::sample(out, "ingressd_request_duration_seconds_sum", &by_ingress, h.sum);
            prometheus::sample(out, "ingressd_request_duration_seconds_count", &by_ingress, h.count);
        }
        for (name, help, value) in [
            ("ingressd_upstream_connect_errors_total", "Failed connection attempts to upstreams.", counters.upstream_connect_errors),
            ("ingressd_upstream_retries_total", "Requests sent to another endpoint after a connect failure.", counters.upstream_retries),
            ("ingressd_upstream_timeouts_total", "Upstream responses that timed out (504).", counters.upstream_timeouts),
        ] {
            prometheus::single(out, name, Type::Counter, help, value);
        }
    }
}

/// Metrics of the live generation: certificates, and annotations not applied.
pub struct GenerationMetrics(pub Arc<Current>);

impl MetricsSource for GenerationMetrics {
    fn render(&self, out: &mut String) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let generation = self.0.load();
        tls::write_metrics(&generation.certs, now, out);
        inspect::write_annotation_metrics(&generation, out);
        inspect::write_invalid_annotation_metrics(&generation, out);
    }
}

/// Client connections held by the server, upstream connections held by the
/// proxy's pool (idle or in use), and connections the PROXY protocol closed.
pub struct ConnectionMetrics(pub Arc<tiny_http::Server>);

impl MetricsSource for ConnectionMetrics {
    fn render(&self, out: &mut String) {
        let client = self.0.num_connections();
        prometheus::single(out, "ingressd_client_connections", Type::Gauge, "Client connections open (HTTP and HTTPS).", client);
        let upstream = proxy::upstream::open_connections();
        prometheus::single(out, "ingressd_upstream_connections", Type::Gauge, "Upstream connections open, idle in the pool or in use.", upstream);
        proxy_protocol::write_metrics(out);
        proxy::limits::write_metrics(out);
        proxy::external_auth::write_metrics(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(status: u16, millis: u64) -> Outcome {
        Outcome {
            status,
            duration: Duration::from_millis(millis),
            ingress: Some(ObjectKey::new("web", "site")),
            service: Some("blue".into()),
            path: "/secret/customer/42".into(),
            host: "attacker-chosen.example".into(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_by_ingress_service_and_class_never_by_client_input() {
        let metrics = RequestMetrics::default();
        metrics.observe(&outcome(200, 3));
        metrics.observe(&outcome(204, 30));
        metrics.observe(&outcome(503, 2000));
        metrics.observe(&Outcome { status: 404, ..Default::default() });
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("ingressd_requests_total{namespace=\"web\",ingress=\"site\",service=\"blue\",code_class=\"2xx\"} 2\n"), "{out}");
        assert!(out.contains("code_class=\"5xx\"} 1\n"), "{out}");
        assert!(out.contains("ingressd_requests_total{namespace=\"\",ingress=\"\",service=\"\",code_class=\"4xx\"} 1\n"), "{out}");
        assert!(out.contains("ingressd_request_duration_seconds_bucket{namespace=\"web\",ingress=\"site\",le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("ingressd_request_duration_seconds_bucket{namespace=\"web\",ingress=\"site\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(!out.contains("secret/customer") && !out.contains("attacker"), "{out}");
    }

    /// Buckets are stored by first fit; render must still print, for every
    /// bound, how many durations are at or below it, one histogram per Ingress
    /// across its Services, in name order.
    #[test]
    fn histograms_render_cumulative_counts_per_ingress_in_name_order() {
        let metrics = RequestMetrics::default();
        let micros = [0, 999, 1_000, 1_001, 5_000, 24_999, 100_000, 999_999, 1_000_000, 10_000_000, 10_000_001, 60_000_000];
        for (i, &us) in micros.iter().enumerate() {
            let service = if i % 2 == 0 { "blue" } else { "green" };
            let ingress = ObjectKey::new("web", "site");
            metrics.observe(&Outcome { status: 200, duration: Duration::from_micros(us), ingress: Some(ingress), service: Some(service.into()), ..Default::default() });
        }
        metrics.observe(&Outcome { status: 500, duration: Duration::from_millis(7), ingress: Some(ObjectKey::new("a", "z")), ..Default::default() });
        let mut out = String::new();
        metrics.render(&mut out);
        for bound in BUCKETS {
            let fits = micros.iter().filter(|&&us| Duration::from_micros(us).as_secs_f64() <= bound).count();
            let line = format!("ingressd_request_duration_seconds_bucket{{namespace=\"web\",ingress=\"site\",le=\"{bound}\"}} {fits}\n");
            assert!(out.contains(&line), "{line}{out}");
        }
        assert!(out.contains("ingressd_request_duration_seconds_bucket{namespace=\"web\",ingress=\"site\",le=\"+Inf\"} 12\n"), "{out}");
        assert!(out.contains("ingressd_request_duration_seconds_count{namespace=\"web\",ingress=\"site\"} 12\n"), "{out}");
        assert!(out.contains("ingressd_request_duration_seconds_bucket{namespace=\"a\",ingress=\"z\",le=\"0.005\"} 0\n"), "{out}");
        assert!(out.contains("ingressd_request_duration_seconds_bucket{namespace=\"a\",ingress=\"z\",le=\"0.01\"} 1\n"), "{out}");
        let order = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("{needle} in {out}"));
        assert!(order("namespace=\"a\",ingress=\"z\",service=\"\"") < order("service=\"blue\",code_class=\"2xx\"} 6\n"));
        assert!(order("service=\"blue\",code_class=\"2xx\"} 6\n") < order("service=\"green\",code_class=\"2xx\"} 6\n"));
        assert!(order("namespace=\"a\",ingress=\"z\",le=\"+Inf\"") < order("namespace=\"web\",ingress=\"site\",le=\"0.001\""));
    }

    #[test]
    fn upstream_failures_are_counted() {
        let metrics = RequestMetrics::default();
        metrics.observe(&Outcome { status: 200, connect_errors: 1, attempts: 2, ..Default::default() });
        metrics.observe(&Outcome { status: 504, timed_out: true, attempts: 1, ..Default::default() });
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("ingressd_upstream_connect_errors_total 1\n"), "{out}");
        assert!(out.contains("ingressd_upstream_retries_total 1\n"), "{out}");
        assert!(out.contains("ingressd_upstream_timeouts_total 1\n"), "{out}");
    }
}
