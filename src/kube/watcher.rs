//! One thread per kind: list, then watch, forever.
//!
//! The loop's rules, in the order they matter for correctness:
//! - the cache only ever gets a complete list as one `Replace`, so objects
//!   deleted while no watch was open disappear too;
//! - every event (bookmarks included) advances the resourceVersion, so a
//!   watch that ends cleanly resumes where it stopped, without a relist;
//! - only a 410 (expired resourceVersion) forces a relist;
//! - failures back off with jitter; a watch that stayed up a minute resets it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub use super::list::{api_path, API_RESOURCES};

use super::backoff::{sleep_unless_stopped, Backoff, XorShift, HEALTHY_AFTER, MAXIMUM};
use super::client::ApiClient;
use super::list::{ListAccumulator, ListProgress};
use super::metrics::WatchMetrics;
use super::watch_line::{decode_event, DecodeError, WatchEvent};
use super::{Error, Event, Kind, Object};

/// Watches ask the server to end them after a random time in this range, so
/// the watchers of many nodes do not reconnect together.
const WATCH_TIMEOUT_SECONDS: std::ops::Range<u64> = 300..600;
/// A watch that ends sooner than this without a single event did not work.
const QUICK_END: Duration = Duration::from_secs(1);
/// A continue token that keeps expiring means the list cannot be paged now.
const MAX_LIST_RESTARTS: u32 = 3;

/// Starts the watcher thread of `kind`. It ends when `stop` is set (checked
/// between requests; a blocked watch read ends at its per-read timeout) or
/// when the receiving end of `tx` is gone.
pub fn spawn(
    kind: Kind,
    client: Arc<ApiClient>,
    namespace: Option<String>,
    tx: Sender<Event>,
    metrics: Arc<WatchMetrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    // Cluster-scoped kinds ignore the namespace.
    let namespace = namespace.filter(|ns| !ns.is_empty() && kind != Kind::IngressClass);
    let rng = XorShift::from_time(kind as u64 + 1);
    let watcher = Watcher { kind, client, namespace, tx, metrics, stop, backoff: Backoff::new(rng) };
    std::thread::Builder::new()
        .name(format!("watch-{}", kind.name()))
        .spawn(move || watcher.run())
}

/// How one watch request ended.
enum WatchEnd {
    /// The server closed the stream normally.
    Closed { events: u64 },
    /// 410: the resourceVersion is too old.
    Expired(String),
    /// The request failed: the API may be unreachable.
    Failed(Error),
    /// An open stream broke (reset, read timeout, server restart): the API
    /// was reachable moments ago, so this does not mark it unreachable.
    Broken(Error),
    /// Stopped, or the cache is gone: the thread ends.
    Finished,
}

struct Watcher {
    kind: Kind,
    client: Arc<ApiClient>,
    namespace: Option<String>,
    tx: Sender<Event>,
    metrics: Arc<WatchMetrics>,
    stop: Arc<AtomicBool>,
    backoff: Backoff,
}

impl Watcher {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps for the next backoff delay, or longer when the server asked for
    /// it with Retry-After (capped like any delay); false when stopped meanwhile.
    fn back_off(&mut self, retry_after: Option<Duration>) -> bool {
        let delay = self.backoff.next_delay().max(retry_after.unwrap_or_default().min(MAXIMUM));
        log::info!("{}: retrying in {:.1} s", self.name(), delay.as_secs_f64());
        sleep_unless_stopped(delay, &self.stop);
        !self.stopped()
    }

    /// A 401 after which the token file held a new token (the client re-read
    /// it on the 401): retrying at once is what a rotation needs, not a backoff.
    fn token_rotated(&self, error: &Error, generation_before: u64) -> bool {
        let rotated = matches!(error, Error::Unauthorized) && self.client.token_generation() != generation_before;
        if rotated {
            log::info!("{}: the token file holds a new token; retrying at once", self.name());
        }
        rotated
    }

    fn record_failure(&self, what: &str, error: &Error) {
        self.metrics.count_api_error(self.kind);
        self.metrics.set_api_reachable(error.server_answered());
        self.metrics.set_last_error(self.kind, format!("{what} failed: {error}"));
        log::warn!("{}: {what} failed: {error}", self.name());
    }

    fn record_broken_stream(&self, error: &Error) {
        self.metrics.count_api_error(self.kind);
        log::warn!("{}: watch stream broke: {error}", self.name());
    }

    fn run(mut self) {
        log::info!("{}: watching {}{}", self.name(), self.client.base_url(), api_path(self.kind, self.namespace.as_deref()));
        let mut first_list = true;
        'relist: loop {
            let Some((objects, mut resource_version)) = self.list() else { return };
            if !first_list {
                self.metrics.count_relist(self.kind);
            }
            first_list = false;
            log::info!("{}: listed {} objects at resourceVersion {resource_version}", self.name(), objects.len());
            if self.tx.send(Event::Replace(self.kind, objects)).is_err() {
                return;
            }
            let listed_at = Instant::now();
            let mut watches_since_list = 0u64;
            loop {
                if self.stopped() {
                    return;
                }
                if watches_since_list > 0 {
                    self.metrics.count_watch_restart(self.kind);
                }
                watches_since_list += 1;
                let started = Instant::now();
                let token_before = self.client.token_generation();
                let end = self.watch(&mut resource_version);
                let lasted = started.elapsed();
                if lasted >= HEALTHY_AFTER {
                    self.backoff.reset();
                }
                match end {
                    WatchEnd::Finished => return,
                    WatchEnd::Expired(message) => {
                        log::info!("{}: resourceVersion {resource_version} expired ({message}); relisting", self.name());
                        // A version that expires as soon as it was listed means
                        // something is wrong server-side: do not relist in a tight loop.
                        if watches_since_list == 1 && listed_at.elapsed() < QUICK_END {
                            self.metrics.count_api_error(self.kind);
                            if !self.back_off(None) {
                                return;
                            }
                        }
                        continue 'relist;
                    }
                    WatchEnd::Closed { events } if events == 0 && lasted < QUICK_END => {
                        self.metrics.count_api_error(self.kind);
                        log::warn!("{}: watch ended at once without events; backing off", self.name());
                        if !self.back_off(None) {
                            return;
                        }
                    }
                    WatchEnd::Closed { events } => {
                        log::debug!("{}: watch closed after {lasted:?} and {events} events", self.name());
                    }
                    WatchEnd::Failed(error) => {
                        self.record_failure("watch", &error);
                        if !self.token_rotated(&error, token_before) && !self.back_off(error.retry_after()) {
                            return;
                        }
                    }
                    WatchEnd::Broken(error) => {
                        self.record_broken_stream(&error);
                        if !self.back_off(None) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Lists until it succeeds (backing off between failures); None when stopped.
    fn list(&mut self) -> Option<(Vec<Object>, String)> {
        loop {
            if self.stopped() {
                return None;
            }
            let token_before = self.client.token_generation();
            match self.list_pages() {
                Ok(listed) => {
                    self.metrics.set_api_reachable(true);
                    self.metrics.mark_fresh(self.kind);
                    return Some(listed);
                }
                Err(_) if self.stopped() => return None,
                Err(error) => {
                    self.record_failure("list", &error);
                    if !self.token_rotated(&error, token_before) && !self.back_off(error.retry_after()) {
                        return None;
                    }
                }
            }
        }
    }

    /// Fetches every page; an expired continue token restarts from page one.
    fn list_pages(&self) -> Result<(Vec<Object>, String), Error> {
        let mut pages = ListAccumulator::new();
        let mut continue_token: Option<String> = None;
        let mut restarts = 0;
        loop {
            self.metrics.count_list_request(self.kind);
            match self.client.list_page(self.kind, self.namespace.as_deref(), continue_token.as_deref()) {
                Ok(page) => match pages.add(page) {
                    ListProgress::Continue(token) => continue_token = Some(token),
                    ListProgress::Complete { objects, resource_version } => return Ok((objects, resource_version)),
                },
                Err(Error::Expired(message)) if continue_token.is_some() && restarts < MAX_LIST_RESTARTS => {
                    log::info!("{}: continue token expired ({message}); restarting the list", self.name());
                    restarts += 1;
                    pages = ListAccumulator::new();
                    continue_token = None;
                }
                Err(error) => return Err(error),
            }
            if self.stopped() {
                return Err(Error::Transport("stopped during the list".into()));
            }
        }
    }

    /// One watch request, read to its end.
    fn watch(&mut self, resource_version: &mut String) -> WatchEnd {
        let timeout = self.backoff.rng().range(WATCH_TIMEOUT_SECONDS.start, WATCH_TIMEOUT_SECONDS.end);
        self.metrics.count_watch_request(self.kind);
        let mut stream = match self.client.watch(self.kind, self.namespace.as_deref(), resource_version, timeout) {
            Ok(stream) => stream,
            Err(Error::Expired(message)) => return WatchEnd::Expired(message),
            Err(error) => return WatchEnd::Failed(error),
        };
        self.metrics.set_api_reachable(true);
        let mut events = 0;
        loop {
            if self.stopped() {
                return WatchEnd::Finished;
            }
            let line = match stream.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return WatchEnd::Closed { events },
                Err(error) => return WatchEnd::Broken(error),
            };
            let event = match decode_event(self.kind, &line) {
                Ok(event) => event,
                Err(error) => {
                    self.log_undecodable(&error);
                    continue;
                }
            };
            events += 1;
            self.metrics.count_event(self.kind);
            let to_cache = match event {
                WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                    advance(resource_version, &object);
                    Event::Upsert(object)
                }
                WatchEvent::Deleted(object) => {
                    advance(resource_version, &object);
                    Event::Delete(object)
                }
                WatchEvent::Bookmark { resource_version: bookmark } => {
                    *resource_version = bookmark;
                    continue;
                }
                WatchEvent::Error(status) if status.code == 410 => return WatchEnd::Expired(status.message),
                WatchEvent::Error(status) => {
                    let error = Error::Http { status: status.code, message: status.message, retry_after: None };
                    return WatchEnd::Failed(error);
                }
            };
            if self.tx.send(to_cache).is_err() {
                return WatchEnd::Finished;
            }
        }
    }

    fn log_undecodable(&self, error: &DecodeError) {
        log::warn!("{}: skipping watch event: {error}", self.name());
    }
}

/// Moves the watch position to an event's object; an object without a
/// resourceVersion (which the API never sends) leaves it where it was.
fn advance(resource_version: &mut String, object: &Object) {
    let next = &object.metadata().resource_version;
    if !next.is_empty() {
        resource_version.clone_from(next);
    }
}
