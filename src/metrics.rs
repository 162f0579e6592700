//! Per-request metrics, fed by the proxy's outcome of every request.
//!
//! Label values come only from Ingress objects (namespace, name, Service)
//! and from the status class, never from paths, hosts or anything else a
//! client sends, so the number of series is bounded by the cluster's objects.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::admin::MetricsSource;
use crate::fast_hash::BuildFastHasher;
use crate::prometheus::{self, Type};
use crate::proxy::Outcome;

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Status classes in label order; a request counts under its class's index.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One Ingress's series.
#[derive(Debug, Default)]
struct PerIngress {
    /// Requests by Service and status class.
    requests: HashMap<String, [u64; CLASSES.len()], BuildFastHasher>,
    durations: Histogram,
}

/// Nested by namespace, then Ingress name, so a request finds its series by
/// borrowed names and allocates only for a series never seen before.
#[derive(Debug, Default)]
struct Counters {
    by_ingress: HashMap<String, HashMap<String, PerIngress, BuildFastHasher>, BuildFastHasher>,
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

/// The value under `key`, inserted with `key` copied only when missing.
fn entry_by_name<'m, V: Default>(map: &'m mut HashMap<String, V, BuildFastHasher>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl RequestMetrics {
    /// Counts one finished request.
    pub fn observe(&self, outcome: &Outcome) {
        let (namespace, ingress) = match &outcome.ingress {
            Some(key) => (key.namespace.as_str(), key.name.as_str()),
            None => ("", ""),
        };
        let service = outcome.service.as_deref().unwrap_or("");
        let seconds = outcome.duration.as_secs_f64();
        let mut counters = match self.counters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let series = entry_by_name(entry_by_name(&mut counters.by_ingress, namespace), ingress);
        entry_by_name(&mut series.requests, service)[status_class(outcome.status)] += 1;
        let histogram = &mut series.durations;
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
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
        let mut series: Vec<(&str, &str, &PerIngress)> = counters
            .by_ingress
            .iter()
            .flat_map(|(namespace, ingresses)| ingresses.iter().map(move |(ingress, per)| (namespace.as_str(), ingress.as_str(), per)))
            .collect();
        series.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for &(namespace, ingress, per) in &series {
            let mut services: Vec<_> = per.requests.iter().collect();
            services.sort();
            for (service, counts) in services {
                for (class, &n) in CLASSES.iter().zip(counts).filter(|(_, &n)| n > 0) {
                    let labels = [("namespace", namespace), ("ingress", ingress), ("service", service.as_str()), ("code_class", *class)];
                    prometheus::sample(out, REQUESTS, &labels, n);
                }
            }
        }
        prometheus::header(
            out,
            "ingressd_request_duration_seconds",
            Type::Histogram,
            "Time from request head to the last byte sent, by Ingress.",
        );
        for &(namespace, ingress, per) in &series {
            let h = &per.durations;
            let by_ingress = [("namespace", namespace), ("ingress", ingress)];
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                let le = bound.to_string();
                let labels = [by_ingress[0], by_ingress[1], ("le", le.as_str())];
                prometheus::sample(out, "ingressd_request_duration_seconds_bucket", &labels, n);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::ObjectKey;
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
