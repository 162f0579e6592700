//! List, then watch, forever: one thread per watched kind.
//!
//! The loop is a state machine ([`Machine`]) whose step is pure: it takes
//! the outcome of the last request and says what to do next, so every rule
//! below is table-tested without HTTP. The thread around it ([`spawn_watch`])
//! only carries out actions: requests, deliveries, sleeps.
//!
//! The rules, in the order they matter for correctness:
//! - the consumer only ever gets a complete list as one `Replace`, so
//!   objects deleted while no watch was open disappear too;
//! - every event (bookmarks included) advances the resourceVersion, so a
//!   watch that ends cleanly resumes where it stopped, without a relist;
//! - only a 410 (expired resourceVersion) forces a relist; an expired
//!   continue token restarts the list from its first page;
//! - failures back off with jitter; a successful list, or a watch that
//!   delivered an event, proves the server healthy and resets the backoff;
//! - a backoff sleep ends early when the probe finds the API answering
//!   (see [`super::probe`]), so recovery never waits out a 30 s delay.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

pub use super::list::{api_path, api_resources};

use super::backoff::{Backoff, Woke, XorShift, MAXIMUM};
use super::client::{ApiClient, WatchStream};
use super::list::{ListPage, Selectors};
use super::metrics::WatchMetrics;
use super::watch_line::{decode_event, DecodeError, WatchEvent};
use super::{Error, Event, Kind, Object, Resource, Versioned};
use crate::stop::Stop;

/// Watches ask the server to end them after a random time in this range, so
/// the watchers of many nodes do not reconnect together.
const WATCH_TIMEOUT_SECONDS: std::ops::Range<u64> = 300..600;
/// A watch that ends sooner than this without a single event did not work;
/// a resourceVersion that expires this soon after its list means something
/// is wrong server-side.
const QUICK_END: Duration = Duration::from_secs(1);
/// A continue token that keeps expiring means the list cannot be paged now.
const MAX_LIST_RESTARTS: u32 = 3;

/// What a watcher hands its consumer.
#[derive(Debug)]
pub enum Change<T> {
    /// A complete list: the objects become exactly these, in one step.
    Replace(Vec<T>),
    /// ADDED or MODIFIED.
    Upsert(T),
    /// DELETED (the object as last seen).
    Delete(T),
}

/// Where a watcher's changes go; false when the consumer is gone, which
/// ends the watcher.
pub trait Sink<T>: Send + 'static {
    fn deliver(&mut self, change: Change<T>) -> bool;
}

/// The cache's channel, for one of the cached kinds.
struct CacheSink {
    kind: Kind,
    tx: Sender<Event>,
}

impl Sink<Object> for CacheSink {
    fn deliver(&mut self, change: Change<Object>) -> bool {
        let event = match change {
            Change::Replace(objects) => Event::Replace(self.kind, objects),
            Change::Upsert(object) => Event::Upsert(object),
            Change::Delete(object) => Event::Delete(object),
        };
        self.tx.send(event).is_ok()
    }
}

/// What one watcher follows: a kind's row, where, and which objects.
pub struct Target<T: 'static> {
    pub resource: &'static Resource<T>,
    /// Ignored for cluster-scoped resources; None or empty means all namespaces.
    pub namespace: Option<String>,
    /// Narrows the objects beyond the row's own field selector.
    pub label_selector: Option<String>,
    /// Joins the row's own field selector (`metadata.name=x` follows one object).
    pub field_selector: Option<String>,
}

/// Starts the watcher thread of one of the cached kinds, feeding the cache.
/// It ends on `stop` (between requests, or at once from a backoff sleep; a
/// blocked watch read ends at its per-read timeout) or when the receiving
/// end of `tx` is gone.
pub fn spawn(
    kind: Kind,
    client: Arc<ApiClient>,
    namespace: Option<String>,
    tx: Sender<Event>,
    metrics: Arc<WatchMetrics>,
    stop: Stop,
) -> std::io::Result<JoinHandle<()>> {
    let target = Target { resource: kind.resource(), namespace, label_selector: None, field_selector: None };
    spawn_watch(target, client, CacheSink { kind, tx }, Some((metrics, kind)), stop)
}

/// Starts a watcher of any resource row; `metrics` counts it under a cached
/// kind when given.
pub fn spawn_watch<T: Versioned + Send + 'static>(
    target: Target<T>,
    client: Arc<ApiClient>,
    sink: impl Sink<T>,
    metrics: Option<(Arc<WatchMetrics>, Kind)>,
    stop: Stop,
) -> std::io::Result<JoinHandle<()>> {
    client.recovery().wake_on(&stop);
    let resource = target.resource;
    let namespace = target.namespace.filter(|ns| !ns.is_empty() && resource.namespaced);
    let label_selector = target.label_selector.filter(|l| !l.is_empty());
    let field_selector = target.field_selector.filter(|f| !f.is_empty());
    let salt = resource.plural.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let driver = Driver { resource, namespace, label_selector, field_selector, client, sink, meter: Meter(metrics), stop };
    let machine = Machine::new(Backoff::new(XorShift::from_time(salt)));
    std::thread::Builder::new().name(format!("watch-{}", resource.name)).spawn(move || driver.run(machine))
}

/// Where the loop is.
#[derive(Debug)]
pub enum State<T> {
    /// Nothing listed yet.
    Empty,
    /// A list under way: the objects of the pages so far, and the token of
    /// the next page (None: the first).
    Listing { objects: Vec<T>, continue_token: Option<String>, restarts: u32 },
    /// Listed at this resourceVersion; the Replace is being delivered.
    Listed { resource_version: String },
    /// A watch from this resourceVersion, requested (`opened` None) or open.
    Watching { resource_version: String, opened: Option<Instant>, events: u64 },
    /// Sleeping out a backoff; then listing again (None) or watching from the version.
    BackingOff { resume: Option<String> },
}

/// What happened to the last action.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Start, a delivery the consumer took, or a backoff sleep that ended.
    Ready,
    Page(ListPage<T>),
    /// `token_rotated`: a 401 after which the token file held a new token,
    /// so retrying at once is what a rotation needs, not a backoff.
    ListFailed { error: Error, token_rotated: bool },
    WatchOpened,
    WatchFailed { error: Error, token_rotated: bool },
    Line(Result<WatchEvent<T>, DecodeError>),
    /// The server ended the watch cleanly.
    WatchClosed,
    /// An open stream broke (reset, read timeout, server restart): the API
    /// was reachable moments ago, so this does not mark it unreachable.
    WatchBroken(Error),
}

/// What to do next.
#[derive(Debug)]
pub enum Action<T> {
    List { continue_token: Option<String> },
    /// `restart`: not the first watch since the last list.
    Watch { resource_version: String, timeout_seconds: u64, restart: bool },
    ReadLine,
    Deliver(Change<T>),
    Sleep(Duration),
}

/// What the step noticed, for logs and metrics.
#[derive(Debug)]
pub enum Note {
    Listed { objects: usize, resource_version: String, relist: bool },
    ListFailed(Error),
    WatchFailed(Error),
    /// Carries on at once: the token was rotated.
    TokenRotated,
    ContinueExpired(String),
    /// `too_soon`: right after its list, so the relist waits a backoff.
    Expired { resource_version: String, message: String, too_soon: bool },
    Broken(Error),
    QuickEnd,
    Closed { lasted: Duration, events: u64 },
    Undecodable(DecodeError),
}

/// The loop's state and memory: pure, time passed in.
#[derive(Debug)]
pub struct Machine<T> {
    state: State<T>,
    backoff: Backoff,
    lists: u64,
    listed_at: Option<Instant>,
    watches_since_list: u64,
}

impl<T: Versioned> Machine<T> {
    pub fn new(backoff: Backoff) -> Machine<T> {
        Machine { state: State::Empty, backoff, lists: 0, listed_at: None, watches_since_list: 0 }
    }

    pub fn state(&self) -> &State<T> {
        &self.state
    }

    /// Failures since the last proof of health.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// The next action after `outcome`, with what it is worth logging.
    pub fn step(&mut self, outcome: Outcome<T>, now: Instant) -> (Action<T>, Option<Note>) {
        match (std::mem::replace(&mut self.state, State::Empty), outcome) {
            (State::Empty, Outcome::Ready) => (self.list_from_start(0), None),
            (State::Listing { mut objects, restarts, .. }, Outcome::Page(page)) => {
                objects.extend(page.items);
                match page.continue_token {
                    Some(token) => {
                        self.state = State::Listing { objects, continue_token: Some(token.clone()), restarts };
                        (Action::List { continue_token: Some(token) }, None)
                    }
                    None => {
                        self.lists += 1;
                        self.listed_at = Some(now);
                        self.watches_since_list = 0;
                        self.backoff.reset();
                        let note = Note::Listed { objects: objects.len(), resource_version: page.resource_version.clone(), relist: self.lists > 1 };
                        self.state = State::Listed { resource_version: page.resource_version };
                        (Action::Deliver(Change::Replace(objects)), Some(note))
                    }
                }
            }
            (State::Listing { continue_token: Some(_), restarts, .. }, Outcome::ListFailed { error: Error::Expired(message), .. })
                if restarts < MAX_LIST_RESTARTS =>
            {
                (self.list_from_start(restarts + 1), Some(Note::ContinueExpired(message)))
            }
            (State::Listing { .. }, Outcome::ListFailed { token_rotated: true, .. }) => (self.list_from_start(0), Some(Note::TokenRotated)),
            (State::Listing { .. }, Outcome::ListFailed { error, .. }) => {
                let delay = self.delay(error.retry_after());
                self.state = State::BackingOff { resume: None };
                (Action::Sleep(delay), Some(Note::ListFailed(error)))
            }
            (State::Listed { resource_version }, Outcome::Ready) => (self.watch_from(resource_version), None),
            (State::Watching { resource_version, events, .. }, Outcome::WatchOpened) => {
                self.state = State::Watching { resource_version, opened: Some(now), events };
                (Action::ReadLine, None)
            }
            (State::Watching { resource_version, .. }, Outcome::WatchFailed { error: Error::Expired(message), .. }) => {
                self.expired(resource_version, message, now)
            }
            (State::Watching { resource_version, .. }, Outcome::WatchFailed { token_rotated: true, .. }) => {
                (self.watch_from(resource_version), Some(Note::TokenRotated))
            }
            (State::Watching { resource_version, .. }, Outcome::WatchFailed { error, .. }) => {
                let delay = self.delay(error.retry_after());
                self.state = State::BackingOff { resume: Some(resource_version) };
                (Action::Sleep(delay), Some(Note::WatchFailed(error)))
            }
            (watching @ State::Watching { .. }, Outcome::Ready) => {
                self.state = watching;
                (Action::ReadLine, None)
            }
            (watching @ State::Watching { .. }, Outcome::Line(Err(error))) => {
                self.state = watching;
                (Action::ReadLine, Some(Note::Undecodable(error)))
            }
            (State::Watching { mut resource_version, opened, events }, Outcome::Line(Ok(event))) => {
                let events = events + 1;
                if events == 1 && !matches!(event, WatchEvent::Error(_)) {
                    // The server streams again: the next failure starts the backoff over.
                    self.backoff.reset();
                }
                let change = match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                        advance(&mut resource_version, &object);
                        Change::Upsert(object)
                    }
                    WatchEvent::Deleted(object) => {
                        advance(&mut resource_version, &object);
                        Change::Delete(object)
                    }
                    WatchEvent::Bookmark { resource_version: bookmark } => {
                        self.state = State::Watching { resource_version: bookmark, opened, events };
                        return (Action::ReadLine, None);
                    }
                    WatchEvent::Error(status) if status.code == 410 => return self.expired(resource_version, status.message, now),
                    WatchEvent::Error(status) => {
                        let delay = self.delay(None);
                        self.state = State::BackingOff { resume: Some(resource_version) };
                        let error = Error::Http { status: status.code, message: status.message, retry_after: None };
                        return (Action::Sleep(delay), Some(Note::WatchFailed(error)));
                    }
                };
                self.state = State::Watching { resource_version, opened, events };
                (Action::Deliver(change), None)
            }
            (State::Watching { resource_version, opened, events }, Outcome::WatchClosed) => {
                let lasted = opened.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                if events == 0 && lasted < QUICK_END {
                    let delay = self.delay(None);
                    self.state = State::BackingOff { resume: Some(resource_version) };
                    return (Action::Sleep(delay), Some(Note::QuickEnd));
                }
                (self.watch_from(resource_version), Some(Note::Closed { lasted, events }))
            }
            (State::Watching { resource_version, .. }, Outcome::WatchBroken(error)) => {
                let delay = self.delay(None);
                self.state = State::BackingOff { resume: Some(resource_version) };
                (Action::Sleep(delay), Some(Note::Broken(error)))
            }
            (State::BackingOff { resume: None }, Outcome::Ready) => (self.list_from_start(0), None),
            (State::BackingOff { resume: Some(resource_version) }, Outcome::Ready) => (self.watch_from(resource_version), None),
            // An outcome that does not fit the state is a driver bug; a
            // fresh list is always a correct way on.
            (state, outcome) => {
                log::error!("watcher: outcome {} unexpected in state {}; listing again", outcome_name(&outcome), state_name(&state));
                (self.list_from_start(0), None)
            }
        }
    }

    fn list_from_start(&mut self, restarts: u32) -> Action<T> {
        self.state = State::Listing { objects: Vec::new(), continue_token: None, restarts };
        Action::List { continue_token: None }
    }

    fn watch_from(&mut self, resource_version: String) -> Action<T> {
        self.watches_since_list += 1;
        let timeout_seconds = self.backoff.rng().range(WATCH_TIMEOUT_SECONDS.start, WATCH_TIMEOUT_SECONDS.end);
        let restart = self.watches_since_list > 1;
        self.state = State::Watching { resource_version: resource_version.clone(), opened: None, events: 0 };
        Action::Watch { resource_version, timeout_seconds, restart }
    }

    /// The next backoff delay, or longer when the server asked for it with
    /// Retry-After (capped like any delay).
    fn delay(&mut self, retry_after: Option<Duration>) -> Duration {
        self.backoff.next_delay().max(retry_after.unwrap_or_default().min(MAXIMUM))
    }

    fn expired(&mut self, resource_version: String, message: String, now: Instant) -> (Action<T>, Option<Note>) {
        let too_soon = self.watches_since_list == 1 && self.listed_at.is_some_and(|at| now.saturating_duration_since(at) < QUICK_END);
        let note = Some(Note::Expired { resource_version, message, too_soon });
        if too_soon {
            let delay = self.delay(None);
            self.state = State::BackingOff { resume: None };
            return (Action::Sleep(delay), note);
        }
        (self.list_from_start(0), note)
    }
}

fn state_name<T>(state: &State<T>) -> &'static str {
    match state {
        State::Empty => "Empty",
        State::Listing { .. } => "Listing",
        State::Listed { .. } => "Listed",
        State::Watching { .. } => "Watching",
        State::BackingOff { .. } => "BackingOff",
    }
}

fn outcome_name<T>(outcome: &Outcome<T>) -> &'static str {
    match outcome {
        Outcome::Ready => "Ready",
        Outcome::Page(_) => "Page",
        Outcome::ListFailed { .. } => "ListFailed",
        Outcome::WatchOpened => "WatchOpened",
        Outcome::WatchFailed { .. } => "WatchFailed",
        Outcome::Line(_) => "Line",
        Outcome::WatchClosed => "WatchClosed",
        Outcome::WatchBroken(_) => "WatchBroken",
    }
}

/// Moves the watch position to an event's object; an object without a
/// resourceVersion (which the API never sends) leaves it where it was.
fn advance<T: Versioned>(resource_version: &mut String, object: &T) {
    let next = object.resource_version();
    if !next.is_empty() {
        resource_version.replace_range(.., next);
    }
}

/// The watch counters of a cached kind; nothing for other watchers.
struct Meter(Option<(Arc<WatchMetrics>, Kind)>);

impl Meter {
    fn with(&self, count: impl FnOnce(&WatchMetrics, Kind)) {
        if let Some((metrics, kind)) = &self.0 {
            count(metrics, *kind);
        }
    }
}

/// The I/O around a [`Machine`]: requests, deliveries, sleeps, logs.
struct Driver<T: 'static, S> {
    resource: &'static Resource<T>,
    namespace: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    client: Arc<ApiClient>,
    sink: S,
    meter: Meter,
    stop: Stop,
}

impl<T: Versioned, S: Sink<T>> Driver<T, S> {
    fn name(&self) -> &'static str {
        self.resource.name
    }

    fn selectors(&self) -> Selectors<'_> {
        Selectors { labels: self.label_selector.as_deref(), fields: self.field_selector.as_deref() }
    }

    fn run(mut self, mut machine: Machine<T>) {
        let mut path = super::list::resource_path(self.resource, self.namespace.as_deref());
        for selector in [&self.label_selector, &self.field_selector].into_iter().flatten() {
            path = format!("{path} ({selector})");
        }
        log::info!("{}: watching {}{path}", self.name(), self.client.base_url());
        let mut stream: Option<WatchStream> = None;
        let mut outcome = Outcome::Ready;
        loop {
            let (action, note) = machine.step(outcome, Instant::now());
            if let Some(note) = note {
                self.report(note);
            }
            if self.stop.is_stopped() {
                return;
            }
            outcome = match action {
                Action::List { continue_token } => {
                    stream = None;
                    self.list(continue_token.as_deref())
                }
                Action::Watch { resource_version, timeout_seconds, restart } => {
                    stream = None;
                    if restart {
                        self.meter.with(WatchMetrics::count_watch_restart);
                    }
                    match self.watch(&resource_version, timeout_seconds) {
                        Ok(opened) => {
                            stream = Some(opened);
                            Outcome::WatchOpened
                        }
                        Err(outcome) => outcome,
                    }
                }
                Action::ReadLine => match stream.as_mut().map(WatchStream::next_line) {
                    Some(Ok(Some(line))) => {
                        let event = decode_event(self.resource, &line);
                        if event.is_ok() {
                            self.meter.with(WatchMetrics::count_event);
                        }
                        Outcome::Line(event)
                    }
                    Some(Ok(None)) | None => Outcome::WatchClosed,
                    Some(Err(error)) => Outcome::WatchBroken(error),
                },
                Action::Deliver(change) => {
                    if !self.sink.deliver(change) {
                        return;
                    }
                    Outcome::Ready
                }
                Action::Sleep(delay) => {
                    stream = None;
                    log::info!("{}: retrying in {:.1} s", self.name(), delay.as_secs_f64());
                    match self.client.recovery().sleep(delay, &self.stop) {
                        Woke::Stopped => return,
                        Woke::ApiAnswers => {
                            log::info!("{}: the API server answers again; retrying now", self.name());
                            Outcome::Ready
                        }
                        Woke::Elapsed => Outcome::Ready,
                    }
                }
            };
        }
    }

    fn list(&self, continue_token: Option<&str>) -> Outcome<T> {
        self.meter.with(WatchMetrics::count_list_request);
        let token_before = self.client.token_generation();
        match self.client.list_page(self.resource, self.namespace.as_deref(), self.selectors(), continue_token) {
            Ok(page) => Outcome::Page(page),
            Err(error) => Outcome::ListFailed { token_rotated: self.token_rotated(&error, token_before), error },
        }
    }

    fn watch(&self, resource_version: &str, timeout_seconds: u64) -> Result<WatchStream, Outcome<T>> {
        self.meter.with(WatchMetrics::count_watch_request);
        let token_before = self.client.token_generation();
        let opened = self.client.watch(self.resource, self.namespace.as_deref(), self.selectors(), resource_version, timeout_seconds);
        match opened {
            Ok(stream) => {
                self.meter.with(|metrics, _| metrics.set_api_reachable(true));
                Ok(stream)
            }
            Err(error) => Err(Outcome::WatchFailed { token_rotated: self.token_rotated(&error, token_before), error }),
        }
    }

    /// A 401 after which the client re-read the token file and found a new token.
    fn token_rotated(&self, error: &Error, generation_before: u64) -> bool {
        matches!(error, Error::Unauthorized) && self.client.token_generation() != generation_before
    }

    fn report(&self, note: Note) {
        let name = self.name();
        match note {
            Note::Listed { objects, resource_version, relist } => {
                self.meter.with(|metrics, kind| {
                    metrics.set_api_reachable(true);
                    metrics.mark_fresh(kind);
                    if relist {
                        metrics.count_relist(kind);
                    }
                });
                log::info!("{name}: listed {objects} objects at resourceVersion {resource_version}");
            }
            Note::ListFailed(error) => self.record_failure("list", &error),
            Note::WatchFailed(error) => self.record_failure("watch", &error),
            Note::TokenRotated => log::info!("{name}: the token file holds a new token; retrying at once"),
            Note::ContinueExpired(message) => log::info!("{name}: continue token expired ({message}); restarting the list"),
            Note::Expired { resource_version, message, too_soon } => {
                log::info!("{name}: resourceVersion {resource_version} expired ({message}); relisting");
                if too_soon {
                    self.meter.with(WatchMetrics::count_api_error);
                }
            }
            Note::Broken(error) => {
                self.meter.with(WatchMetrics::count_api_error);
                log::warn!("{name}: watch stream broke: {error}");
            }
            Note::QuickEnd => {
                self.meter.with(WatchMetrics::count_api_error);
                log::warn!("{name}: watch ended at once without events; backing off");
            }
            Note::Closed { lasted, events } => log::debug!("{name}: watch closed after {lasted:?} and {events} events"),
            Note::Undecodable(error) => log::warn!("{name}: skipping watch event: {error}"),
        }
    }

    fn record_failure(&self, what: &str, error: &Error) {
        self.meter.with(|metrics, kind| {
            metrics.count_api_error(kind);
            metrics.set_api_reachable(error.server_answered());
            metrics.set_last_error(kind, format!("{what} failed: {error}"));
        });
        log::warn!("{}: {what} failed: {error}", self.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::watch_line::Status;

    /// A test object: its name and resourceVersion.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Obj(&'static str, &'static str);

    impl Versioned for Obj {
        fn resource_version(&self) -> &str {
            self.1
        }
    }

    fn page(items: &[Obj], resource_version: &str, continue_token: Option<&str>) -> Outcome<Obj> {
        Outcome::Page(ListPage { items: items.to_vec(), resource_version: resource_version.into(), continue_token: continue_token.map(String::from), skipped: 0 })
    }

    fn line(event: WatchEvent<Obj>) -> Outcome<Obj> {
        Outcome::Line(Ok(event))
    }

    fn error_event(code: u16) -> Outcome<Obj> {
        line(WatchEvent::Error(Status { code, reason: String::new(), message: format!("code {code}") }))
    }

    fn failed(error: Error) -> Outcome<Obj> {
        Outcome::WatchFailed { error, token_rotated: false }
    }

    fn http(status: u16) -> Error {
        Error::Http { status, message: "down".into(), retry_after: None }
    }

    /// What an action is, in a form a table can hold.
    #[derive(Debug, PartialEq, Eq)]
    enum Want {
        List(Option<&'static str>),
        Watch(&'static str),
        Rewatch(&'static str),
        Read,
        Replace(Vec<&'static str>),
        Upsert(&'static str),
        Delete(&'static str),
        Sleep,
    }

    fn seen(action: Action<Obj>) -> Want {
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        match action {
            Action::List { continue_token } => Want::List(continue_token.map(leak)),
            Action::Watch { resource_version, timeout_seconds, restart } => {
                assert!(WATCH_TIMEOUT_SECONDS.contains(&timeout_seconds));
                if restart { Want::Rewatch(leak(resource_version)) } else { Want::Watch(leak(resource_version)) }
            }
            Action::ReadLine => Want::Read,
            Action::Deliver(Change::Replace(objects)) => Want::Replace(objects.iter().map(|o| o.0).collect()),
            Action::Deliver(Change::Upsert(object)) => Want::Upsert(object.0),
            Action::Deliver(Change::Delete(object)) => Want::Delete(object.0),
            Action::Sleep(delay) => {
                assert!(delay > Duration::ZERO && delay <= MAXIMUM);
                Want::Sleep
            }
        }
    }

    /// Runs outcomes at the given offsets (ms from the start) and checks each action.
    fn run(table: Vec<(u64, Outcome<Obj>, Want)>) -> Machine<Obj> {
        let start = Instant::now();
        let mut machine = Machine::new(Backoff::new(XorShift::new(9)));
        for (row, (at, outcome, want)) in table.into_iter().enumerate() {
            let described = format!("{outcome:?}");
            let (action, _) = machine.step(outcome, start + Duration::from_millis(at));
            assert_eq!(seen(action), want, "row {row}: after {described}");
        }
        machine
    }

    const A: Obj = Obj("a", "5");
    const B: Obj = Obj("b", "6");

    #[test]
    fn pages_via_continue_then_one_replace_then_a_watch_from_the_list_version() {
        let machine = run(vec![
            (0, Outcome::Ready, Want::List(None)),
            (0, page(&[A], "10", Some("tok1")), Want::List(Some("tok1"))),
            (0, page(&[B], "10", Some("tok2")), Want::List(Some("tok2"))),
            (0, page(&[], "10", None), Want::Replace(vec!["a", "b"])),
            (0, Outcome::Ready, Want::Watch("10")),
            (0, Outcome::WatchOpened, Want::Read),
        ]);
        assert!(matches!(machine.state(), State::Watching { resource_version, opened: Some(_), events: 0 } if resource_version == "10"));
    }

    #[test]
    fn events_advance_the_version_and_bookmarks_too() {
        run(vec![
            (0, Outcome::Ready, Want::List(None)),
            (0, page(&[], "10", None), Want::Replace(vec![])),
            (0, Outcome::Ready, Want::Watch("10")),
            (0, Outcome::WatchOpened, Want::Read),
            (10, line(WatchEvent::Added(Obj("a", "11"))), Want::Upsert("a")),
            (10, Outcome::Ready, Want::Read),
            (20, line(WatchEvent::Bookmark { resource_version: "15".into() }), Want::Read),
            (30, Outcome::Line(Err(DecodeError::Malformed("x".into()))), Want::Read),
            (5_000, Outcome::WatchClosed, Want::Rewatch("15")),
            (5_000, Outcome::WatchOpened, Want::Read),
            (5_010, line(WatchEvent::Deleted(Obj("a", "16"))), Want::Delete("a")),
            (5_010, Outcome::Ready, Want::Read),
            (6_000, Outcome::WatchBroken(Error::Timeout("read".into())), Want::Sleep),
            (8_000, Outcome::Ready, Want::Rewatch("16")),
            (8_000, line(WatchEvent::Modified(Obj("b", "17"))), Want::Upsert("b")),
        ]);
    }

    #[test]
    fn expired_relists_from_the_first_page_and_backs_off_only_right_after_a_list() {
        run(vec![
            (0, Outcome::Ready, Want::List(None)),
            (0, page(&[A], "10", None), Want::Replace(vec!["a"])),
            (0, Outcome::Ready, Want::Watch("10")),
            (5_000, Outcome::WatchOpened, Want::Read),
            (9_000, error_event(410), Want::List(None)),
            (9_000, page(&[B], "40", None), Want::Replace(vec!["b"])),
            (9_000, Outcome::Ready, Want::Watch("40")),
            // Expired as soon as listed: a server problem, not a reason to relist in a tight loop.
            (9_100, failed(Error::Expired("too old".into())), Want::Sleep),
            (10_000, Outcome::Ready, Want::List(None)),
        ]);
    }

    #[test]
    fn an_expired_continue_token_restarts_the_list_a_few_times_then_backs_off() {
        let expired = || Outcome::ListFailed { error: Error::Expired("continue expired".into()), token_rotated: false };
        let mut table = vec![(0, Outcome::Ready, Want::List(None))];
        for _ in 0..MAX_LIST_RESTARTS {
            table.push((0, page(&[A], "10", Some("t")), Want::List(Some("t"))));
            table.push((0, expired(), Want::List(None)));
        }
        table.push((0, page(&[A], "10", Some("t")), Want::List(Some("t"))));
        table.push((0, expired(), Want::Sleep));
        table.push((0, Outcome::Ready, Want::List(None)));
        table.push((0, page(&[A], "11", None), Want::Replace(vec!["a"])));
        run(table);
    }

    #[test]
    fn failures_back_off_and_a_list_or_an_event_resets_the_backoff() {
        let list_failed = |error| Outcome::ListFailed { error, token_rotated: false };
        let mut machine = run(vec![
            (0, Outcome::Ready, Want::List(None)),
            (0, list_failed(http(500)), Want::Sleep),
            (1_000, Outcome::Ready, Want::List(None)),
            (1_000, list_failed(Error::Transport("refused".into())), Want::Sleep),
            (3_000, Outcome::Ready, Want::List(None)),
        ]);
        assert_eq!(machine.failures(), 2);
        let start = Instant::now();
        machine.step(page(&[], "10", None), start);
        assert_eq!(machine.failures(), 0, "a successful list proves the server healthy");
        machine.step(Outcome::Ready, start);
        let (action, note) = machine.step(failed(http(503)), start);
        assert!(matches!(action, Action::Sleep(_)) && matches!(note, Some(Note::WatchFailed(_))));
        assert!(matches!(machine.step(Outcome::Ready, start).0, Action::Watch { restart: true, .. }));
        machine.step(Outcome::WatchOpened, start);
        assert_eq!(machine.failures(), 1);
        machine.step(line(WatchEvent::Added(A)), start);
        assert_eq!(machine.failures(), 0, "an event proves it too");
    }

    #[test]
    fn a_watch_that_ends_at_once_backs_off_and_an_error_event_is_a_failure() {
        run(vec![
            (0, Outcome::Ready, Want::List(None)),
            (0, page(&[], "10", None), Want::Replace(vec![])),
            (0, Outcome::Ready, Want::Watch("10")),
            (0, Outcome::WatchOpened, Want::Read),
            (200, Outcome::WatchClosed, Want::Sleep),
            (1_200, Outcome::Ready, Want::Rewatch("10")),
            (1_200, Outcome::WatchOpened, Want::Read),
            (1_300, error_event(500), Want::Sleep),
            (2_300, Outcome::Ready, Want::Rewatch("10")),
        ]);
    }

    #[test]
    fn retry_after_lengthens_the_delay_within_the_cap_and_a_rotated_token_retries_at_once() {
        let mut machine = Machine::<Obj>::new(Backoff::new(XorShift::new(1)));
        let now = Instant::now();
        machine.step(Outcome::Ready, now);
        let slow = Error::Http { status: 429, message: String::new(), retry_after: Some(Duration::from_secs(20)) };
        let (action, _) = machine.step(Outcome::ListFailed { error: slow, token_rotated: false }, now);
        assert!(matches!(action, Action::Sleep(d) if d >= Duration::from_secs(20)));
        machine.step(Outcome::Ready, now);
        let huge = Error::Http { status: 503, message: String::new(), retry_after: Some(Duration::from_secs(3600)) };
        assert!(matches!(machine.step(Outcome::ListFailed { error: huge, token_rotated: false }, now).0, Action::Sleep(d) if d == MAXIMUM));
        machine.step(Outcome::Ready, now);
        let (action, note) = machine.step(Outcome::ListFailed { error: Error::Unauthorized, token_rotated: true }, now);
        assert!(matches!(action, Action::List { continue_token: None }) && matches!(note, Some(Note::TokenRotated)));
    }

    #[test]
    fn an_outcome_that_does_not_fit_lists_again() {
        run(vec![(0, Outcome::WatchClosed, Want::List(None)), (0, page(&[A], "3", None), Want::Replace(vec!["a"]))]);
    }
}
