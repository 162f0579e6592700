use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::{fmt, io, mem};

use http::uri::{Authority, Scheme};
use http::Uri;

use crate::config::Config;
use crate::http;
use crate::proxy::Proxy;
use crate::transport::time::{Duration, Instant};
use crate::transport::{Buffers, ConnectionDetails, Connector, NextTimeout};
use crate::transport::{RegisterShutdown, ShutdownHandle, Transport};
use crate::util::DebugAuthority;
use crate::Error;

pub(crate) struct ConnectionPool {
    connector: Box<dyn Connector<Out = Box<dyn Transport>>>,
    pool: Arc<Mutex<Pool>>,
    /// Made once and shared by every call, which would otherwise allocate one.
    register_shutdown: Arc<RegisterShutdown>,
}

impl ConnectionPool {
    pub fn new(connector: Box<dyn Connector<Out = Box<dyn Transport>>>, config: &Config) -> Self {
        let pool = Arc::new(Mutex::new(Pool::new(config)));
        let weak = Arc::downgrade(&pool);
        let register_shutdown: Arc<RegisterShutdown> =
            Arc::new(move |handle| match weak.upgrade() {
                Some(pool) => pool.lock().unwrap().register_shutdown(handle),
                // Without the pool there is no agent left to shut down.
                None => Ok(()),
            });
        ConnectionPool {
            connector,
            pool,
            register_shutdown,
        }
    }

    pub fn connect(
        &self,
        details: &ConnectionDetails,
        max_idle_age: Duration,
        use_pool: bool,
    ) -> Result<Connection, Error> {
        let mut pool = self.pool.lock().unwrap();
        if pool.closed {
            let e = io::Error::new(io::ErrorKind::NotConnected, "Agent is shut down");
            return Err(e.into());
        }
        pool.purge(details.now);

        if use_pool {
            // Compared in place: a pooled connection is found without building
            // (allocating) a key for this request.
            if let Some(conn) = pool.get(
                details.uri,
                details.config.proxy(),
                max_idle_age,
                details.now,
            ) {
                debug!("Use pooled: {:?}", conn.key);
                return Ok(conn);
            }
        }
        drop(pool);

        let key = details.into();

        let transport = self.run_connector(details)?;

        let conn = Connection {
            transport,
            key,
            last_use: details.now,
            pool: if use_pool {
                Arc::downgrade(&self.pool)
            } else {
                // An incompatible request must neither borrow from nor return
                // its newly established connection to the Agent's pool.
                Weak::new()
            },
        };

        Ok(conn)
    }

    pub fn run_connector(&self, details: &ConnectionDetails) -> Result<Box<dyn Transport>, Error> {
        let transport = self
            .connector
            .connect(details, None)?
            .ok_or(Error::ConnectionFailed)?;

        Ok(transport)
    }

    /// The [`RegisterShutdown`] for [`ConnectionDetails`], which tracks transports
    /// in this pool until [`shutdown()`](Self::shutdown).
    pub fn make_register_shutdown(&self) -> Arc<RegisterShutdown> {
        self.register_shutdown.clone()
    }

    /// Close every connection, idle or in use, and refuse new ones.
    ///
    /// Connections in use are shut down through the handles their connectors
    /// registered. That interrupts calls blocked on them in other threads.
    pub fn shutdown(&self) {
        let (idle, handles) = {
            let mut pool = self.pool.lock().unwrap();
            pool.closed = true;
            pool.idle_count = 0;
            (
                mem::take(&mut pool.by_destination),
                mem::take(&mut pool.shutdown_handles),
            )
        };

        // Drop idle connections outside the lock before upgrading the handles.
        // This closes their transports and lets their weak handles expire,
        // avoiding redundant shutdown calls. Weak::upgrade skips expired handles
        // without a separate purge.
        drop(idle);

        // Shut down the remaining live transports outside the lock.
        for handle in handles.iter().filter_map(Weak::upgrade) {
            handle.shutdown();
        }
    }

    #[cfg(test)]
    /// Exposed for testing the pool count.
    pub fn pool_count(&self) -> usize {
        let lock = self.pool.lock().unwrap();
        lock.idle_count
    }
}

pub(crate) struct Connection {
    transport: Box<dyn Transport>,
    key: PoolKey,
    last_use: Instant,
    pool: Weak<Mutex<Pool>>,
}

impl Connection {
    pub fn buffers(&mut self) -> &mut dyn Buffers {
        self.transport.buffers()
    }

    pub fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        // An already expired budget must fail here. Transports can't set a zero
        // socket timeout and would instead grant a short grace period per call.
        if timeout.after.is_zero() {
            return Err(Error::Timeout(timeout.reason));
        }
        self.transport.transmit_output(amount, timeout)
    }

    pub fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        if timeout.after.is_zero() {
            return Err(Error::Timeout(timeout.reason));
        }
        self.transport.maybe_await_input(timeout)
    }

    pub fn consume_input(&mut self, amount: usize) {
        self.transport.buffers().input_consume(amount)
    }

    pub fn close(self) {
        debug!("Close: {:?}", self.key);
        // Just consume self.
    }

    pub fn reuse(mut self, now: Instant) {
        if !self.transport.buffers().input().is_empty() {
            // Unconsumed input means the server sent more bytes than the body
            // we read. Same condition as the probe below, only the bytes are
            // already in our buffer instead of still in the socket.
            debug!("Unconsumed input. Closing connection");
            return;
        }

        if !self.transport.is_open() {
            // The purpose of probing is that is_open() for tcp connector attempts
            // to read some more bytes. If that succeeds, the connection is considered
            // _NOT_ open, since that means we either failed to read the previous
            // body to end, or the server sent bogus data after the body. Either
            // is a condition where we mustn't reuse the connection.
            return;
        }
        self.last_use = now;

        let Some(arc) = self.pool.upgrade() else {
            debug!("Pool gone: {:?}", self.key);
            return;
        };

        debug!("Return to pool: {:?}", self.key);

        let mut pool = arc.lock().unwrap();

        if pool.closed {
            debug!("Pool shut down: {:?}", self.key);
            return;
        }

        pool.add(self);
        pool.purge(now);
    }

    pub fn is_tls(&self) -> bool {
        self.transport.is_tls()
    }

    fn age(&self, now: Instant) -> Duration {
        now.duration_since(self.last_use)
    }

    fn is_open(&mut self) -> bool {
        self.transport.is_open()
    }
}

/// The pool key is the Scheme, Authority from the uri and the Proxy setting
///
///
/// ```notrust
/// abc://username:password@example.com:123/path/data?key=value&key2=value2#fragid1
/// |-|   |-------------------------------||--------| |-------------------| |-----|
///  |                  |                       |               |              |
/// scheme          authority                 path            query         fragment
/// ```
///
/// It's correct to include username/password since connections with differing such and
/// the same host/port must not be mixed up.
///
#[derive(Clone, PartialEq, Eq)]
struct PoolKey(Arc<PoolKeyInner>);

impl PoolKey {
    fn new(uri: &Uri, proxy: Option<&Proxy>) -> Self {
        let scheme = uri.scheme().expect("uri with scheme").clone();
        let authority = uri.authority().expect("uri with authority").clone();
        let hash = destination_hash(&scheme, &authority);
        let inner = PoolKeyInner(scheme, authority, proxy.cloned(), hash);

        PoolKey(Arc::new(inner))
    }
}

/// Scheme, authority, proxy, and the [`destination_hash`] of the first two,
/// worked out once per key instead of on every check-in.
#[derive(PartialEq, Eq)]
struct PoolKeyInner(Scheme, Authority, Option<Proxy>, u64);

impl PoolKey {
    /// Whether this key is the one [`PoolKey::new`] makes of `uri` and `proxy`.
    fn is_for(&self, uri: &Uri, proxy: Option<&Proxy>) -> bool {
        let PoolKeyInner(scheme, authority, own_proxy, _) = &*self.0;
        // An authority equal byte for byte (a proxy's upstream address,
        // every time) is told by one comparison of its bytes; only one
        // that differs is compared again ignoring ASCII case, as `==` does
        // byte by byte.
        let same_authority = uri.authority().is_some_and(|own| {
            own.as_str().as_bytes() == authority.as_str().as_bytes() || own == authority
        });
        uri.scheme() == Some(scheme) && same_authority && own_proxy.as_ref() == proxy
    }
}

/// Idle connections, kept per destination so that a check-out and a check-in
/// touch only their own destination's list: the release's pool was one list
/// it searched from the front on every check-out and renumbered per host on
/// every check-in, which cost a proxy with hundreds of idle upstream
/// connections more than its requests did.
#[derive(Debug)]
struct Pool {
    /// Idle lists by a hash of scheme and authority. Keys sharing a hash
    /// (another proxy for the same authority, or a collision) share a bucket
    /// and are told apart by comparing them in place.
    by_destination: HashMap<u64, Vec<IdleList>, BuildHasherDefault<Prehashed>>,
    /// Idle connections across every list.
    idle_count: usize,
    max_idle_connections: usize,
    max_idle_connections_per_host: usize,
    max_idle_age: Duration,
    /// When [`Pool::purge`] next walks every list for expired connections and
    /// dead shutdown handles: at most once a second, not on every call.
    next_sweep: Instant,
    /// Every transport the connectors created, idle or in use, until dropped.
    /// Weak, so that dropping a transport closes it as before.
    shutdown_handles: Vec<Weak<dyn ShutdownHandle>>,
    /// Set by [`ConnectionPool::shutdown()`]. No connections are made after that.
    closed: bool,
}

/// One destination's idle connections, the least recently used first.
#[derive(Debug)]
struct IdleList {
    key: PoolKey,
    connections: VecDeque<Connection>,
}

/// How often [`Pool::purge`] sweeps. Expired connections wait at most this
/// much longer to be closed; a check-out never hands one out.
const SWEEP_INTERVAL: Duration = Duration::Exact(std::time::Duration::from_secs(1));

impl Pool {
    fn new(config: &Config) -> Self {
        Pool {
            by_destination: HashMap::default(),
            idle_count: 0,
            max_idle_connections: config.max_idle_connections(),
            max_idle_connections_per_host: config.max_idle_connections_per_host(),
            max_idle_age: config.max_idle_age().into(),
            next_sweep: Instant::AlreadyHappened,
            shutdown_handles: Vec::new(),
            closed: false,
        }
    }

    fn register_shutdown(&mut self, handle: Weak<dyn ShutdownHandle>) -> Result<(), Error> {
        // Checked under the same lock as shutdown(), so that a connection made
        // while the shutdown runs cannot escape it.
        if self.closed {
            let e = io::Error::new(io::ErrorKind::NotConnected, "Agent is shut down");
            return Err(e.into());
        }

        self.shutdown_handles.push(handle);

        Ok(())
    }

    /// Closes expired idle connections and forgets dropped transports' handles,
    /// once per [`SWEEP_INTERVAL`]; the caps are kept by [`Pool::add`].
    fn purge(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;

        let max_idle_age = self.max_idle_age;
        let mut closed = 0;
        self.by_destination.retain(|_, bucket| {
            bucket.retain_mut(|list| {
                while list
                    .connections
                    .front()
                    .is_some_and(|c| c.age(now) > max_idle_age)
                {
                    list.connections.pop_front();
                    closed += 1;
                }
                !list.connections.is_empty()
            });
            !bucket.is_empty()
        });
        self.idle_count -= closed;

        // Evicting idle connections can expire their shutdown handles.
        self.shutdown_handles.retain(|h| h.strong_count() > 0);
    }

    fn add(&mut self, conn: Connection) {
        let hash = conn.key.0.3;
        let bucket = self.by_destination.entry(hash).or_default();
        let index = match bucket.iter().position(|list| list.key == conn.key) {
            Some(index) => index,
            None => {
                bucket.push(IdleList {
                    key: conn.key.clone(),
                    connections: VecDeque::new(),
                });
                bucket.len() - 1
            }
        };
        let list = &mut bucket[index].connections;
        list.push_back(conn);
        self.idle_count += 1;
        if list.len() > self.max_idle_connections_per_host {
            list.pop_front();
            self.idle_count -= 1;
        }
        while self.idle_count > self.max_idle_connections {
            self.close_least_recently_used();
        }
    }

    /// Closes the idle connection unused for longest across all destinations.
    /// It walks every destination's list, but only runs when the pool is full.
    fn close_least_recently_used(&mut self) {
        let oldest = self
            .by_destination
            .values_mut()
            .flat_map(|bucket| bucket.iter_mut())
            .filter_map(|list| Some((list.connections.front()?.last_use, list)))
            .min_by(|(a, _), (b, _)| a.cmp(b));
        if let Some((_, list)) = oldest {
            list.connections.pop_front();
            self.idle_count -= 1;
        }
    }

    /// The most recently used open connection to the request's destination:
    /// it is the likeliest to be still open, and the surplus ones age out.
    fn get(
        &mut self,
        uri: &Uri,
        proxy: Option<&Proxy>,
        max_idle_age: Duration,
        now: Instant,
    ) -> Option<Connection> {
        let (scheme, authority) = (uri.scheme()?, uri.authority()?);
        let hash = destination_hash(scheme, authority);
        let bucket = self.by_destination.get_mut(&hash)?;
        let list = bucket.iter_mut().find(|list| list.key.is_for(uri, proxy))?;
        // A max_idle_age shorter in the request than in the pool leaves
        // connections older than it in the pool, unused for this request.
        while list
            .connections
            .back()
            .is_some_and(|c| c.age(now) < max_idle_age)
        {
            let mut conn = list.connections.pop_back()?;
            self.idle_count -= 1;
            // Before we release the connection, we probe that it appears to still work.
            if conn.is_open() {
                return Some(conn);
            }
        }
        None
    }
}

/// A hash of scheme and authority that agrees with how the key compares
/// them (ASCII case does not count), FxHash-style: one multiply per eight
/// bytes. The release hashed each request's destination twice with SipHash,
/// one byte per call, which cost more than the rest of the pool's work. A
/// keyed hash defends a map whose keys an attacker picks; these keys are the
/// proxy's upstream addresses, and a collision only puts two destinations'
/// lists in one bucket, where they are told apart by comparing keys.
fn destination_hash(scheme: &Scheme, authority: &Authority) -> u64 {
    let hash = fold_ignoring_case(0, scheme.as_str().as_bytes());
    fold_ignoring_case(hash, authority.as_str().as_bytes()).rotate_left(26)
}

/// Folds `bytes` and their length into `hash`. Setting bit 5 of every byte
/// maps ASCII letters of either case to the same value, so bytes equal but
/// for ASCII case fold alike.
fn fold_ignoring_case(hash: u64, bytes: &[u8]) -> u64 {
    const SEED: u64 = 0xf135_7aea_2e62_a9c5;
    const CASE: u64 = 0x2020_2020_2020_2020;
    let add = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    let mut chunks = bytes.chunks_exact(8);
    let mut hash = add(hash, bytes.len() as u64);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        hash = add(hash, u64::from_le_bytes(word) | CASE);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = add(hash, u64::from_le_bytes(word) | CASE);
    }
    hash
}

/// The hasher of a map whose keys are already [`destination_hash`]es.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fold_ignoring_case(self.0, bytes);
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("connector", &self.connector)
            .finish()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("key", &self.key)
            .field("conn", &self.transport)
            .finish()
    }
}

impl fmt::Debug for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolKey")
            .field("scheme", &self.0 .0)
            .field("authority", &DebugAuthority(&self.0 .1))
            .field("proxy", &self.0 .2)
            .finish()
    }
}

impl<'a, 'b> From<&'a ConnectionDetails<'b>> for PoolKey {
    fn from(details: &'a ConnectionDetails) -> Self {
        PoolKey::new(details.uri, details.config.proxy())
    }
}

#[cfg(all(test, feature = "_test"))]
mod test {
    use super::*;

    #[test]
    fn poolkey_new() {
        // Test that PoolKey::new() does not panic on unrecognized schemes.
        PoolKey::new(&Uri::from_static("zzz://example.com"), None);
    }

    #[test]
    fn no_reuse_with_unconsumed_input() {
        use crate::test::init_test_log;
        use crate::transport::set_handler;

        init_test_log();

        // The body is 5 bytes, but the server sends 9. The 4 extra bytes end
        // up in the input buffer. A connection with unconsumed input must not
        // go back into the pool.
        set_handler("/trailing", 200, &[("content-length", "5")], b"hellojunk");

        let agent = crate::Agent::new_with_defaults();
        let mut res = agent.get("https://example.test/trailing").call().unwrap();
        assert_eq!(res.body_mut().read_to_string().unwrap(), "hello");

        assert_eq!(agent.pool_count(), 0);
    }
}

#[cfg(test)]
mod config_pooling_tests {
    use super::*;
    use crate::transport::LazyBuffers;
    use crate::unversioned::resolver::DefaultResolver;
    use crate::Agent;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct CountingConnector(Arc<AtomicUsize>);

    impl Connector for CountingConnector {
        type Out = TestTransport;

        fn connect(
            &self,
            _: &ConnectionDetails,
            _: Option<()>,
        ) -> Result<Option<Self::Out>, Error> {
            let id = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Some(TestTransport {
                id,
                buffers: LazyBuffers::new(1024, 1024),
            }))
        }
    }

    #[derive(Debug)]
    struct TestTransport {
        id: usize,
        buffers: LazyBuffers,
    }

    impl Transport for TestTransport {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }
        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), Error> {
            Ok(())
        }
        fn await_input(&mut self, _: NextTimeout) -> Result<bool, Error> {
            let body = self.id.to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                body
            );
            self.buffers.input_append_buf()[..response.len()].copy_from_slice(response.as_bytes());
            self.buffers.input_appended(response.len());
            Ok(true)
        }
        fn is_open(&mut self) -> bool {
            true
        }
        fn is_tls(&self) -> bool {
            true
        }
    }

    fn agent(config: Config) -> Agent {
        Agent::with_parts(
            config,
            CountingConnector(Arc::new(AtomicUsize::new(0))),
            DefaultResolver::default(),
        )
    }

    fn request(agent: &Agent, config: Config) -> String {
        let mut req = http::Request::get("https://127.0.0.1/").body(()).unwrap();
        req.extensions_mut()
            .insert(crate::config::RequestLevelConfig(config));
        agent.run(req).unwrap().body_mut().read_to_string().unwrap()
    }

    fn check_override(config: Config) {
        let base = Agent::config_builder().proxy(None).build();
        check_configs(base, config);
    }

    fn check_configs(base: Config, config: Config) {
        let agent = agent(base.clone());
        assert_eq!(request(&agent, base.clone()), "1");
        assert_eq!(
            request(&agent, config.clone()),
            "2",
            "override must bypass existing connection"
        );
        assert_eq!(request(&agent, config), "3", "override must not enter pool");
        assert_eq!(
            request(&agent, base),
            "1",
            "Agent connection must remain reusable"
        );
    }

    #[test]
    fn connection_overrides_bypass_pool() {
        check_override(Agent::config_builder().proxy(None).no_delay(false).build());
        check_override(
            Agent::config_builder()
                .proxy(None)
                .ip_family(crate::config::IpFamily::Ipv4Only)
                .build(),
        );
        check_override(
            Agent::config_builder()
                .proxy(None)
                .input_buffer_size(4096)
                .build(),
        );
        check_override(
            Agent::config_builder()
                .proxy(None)
                .output_buffer_size(4096)
                .build(),
        );
        check_override(
            Agent::config_builder()
                .proxy(None)
                .user_agent("custom")
                .build(),
        );
    }

    #[test]
    fn request_settings_preserve_pooling() {
        let base = Agent::config_builder().proxy(None).build();
        let agent = agent(base.clone());
        assert_eq!(request(&agent, base), "1");
        let config = Agent::config_builder()
            .proxy(None)
            .https_only(true)
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .max_response_header_size(4096)
            .build();
        assert_eq!(request(&agent, config), "1");
    }

    #[test]
    #[cfg(feature = "_tls")]
    fn client_identity_isolation() {
        use crate::tls::{Certificate, ClientCert, PrivateKey, TlsConfig};
        // The transport is synthetic: these bytes identify credentials without
        // performing a handshake. Response bodies identify actual connections.
        let identity = |bytes: &'static [u8]| {
            ClientCert::new_with_certs(
                &[Certificate::from_der(bytes)],
                PrivateKey::from_pem(
                    b"-----BEGIN PRIVATE KEY-----\nQQ==\n-----END PRIVATE KEY-----\n",
                )
                .unwrap(),
            )
        };
        let config = |cert| {
            Agent::config_builder()
                .proxy(None)
                .tls_config(TlsConfig::builder().client_cert(cert).build())
                .build()
        };
        let a = config(Some(identity(b"A")));
        let b = config(Some(identity(b"B")));
        let none = config(None);
        check_configs(a.clone(), b);
        check_configs(a.clone(), none.clone());
        check_configs(none, a.clone());
        let agent = agent(a.clone());
        assert_eq!(request(&agent, a.clone()), "1");
        assert_eq!(
            request(&agent, a),
            "1",
            "cloned credentials can reuse connections"
        );
    }

    #[test]
    #[cfg(feature = "_tls")]
    fn tls_overrides_bypass_pool() {
        use crate::tls::{RootCerts, TlsConfig, TlsProvider};
        for tls in [
            TlsConfig::builder().disable_verification(true).build(),
            TlsConfig::builder().use_sni(false).build(),
            TlsConfig::builder()
                .provider(TlsProvider::NativeTls)
                .build(),
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        ] {
            check_override(Agent::config_builder().proxy(None).tls_config(tls).build());
        }
    }
}

#[cfg(test)]
mod shutdown_registry_tests {
    use super::*;
    use crate::config::RequestLevelConfig;
    use crate::transport::{boxed_connector, TcpConnector};
    use crate::unversioned::resolver::DefaultResolver;
    use crate::Agent;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default)]
    struct Flag(AtomicBool);

    impl ShutdownHandle for Flag {
        fn shutdown(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn weak(flag: &Arc<Flag>) -> Weak<dyn ShutdownHandle> {
        Arc::downgrade(flag) as Weak<dyn ShutdownHandle>
    }

    fn handle_count(pool: &ConnectionPool) -> usize {
        pool.pool.lock().unwrap().shutdown_handles.len()
    }

    #[derive(Debug)]
    struct IdleTransport {
        _handle: Arc<Flag>,
    }

    impl Transport for IdleTransport {
        fn buffers(&mut self) -> &mut dyn Buffers {
            unreachable!("only used for idle eviction")
        }

        fn transmit_output(&mut self, _: usize, _: NextTimeout) -> Result<(), Error> {
            unreachable!("only used for idle eviction")
        }

        fn await_input(&mut self, _: NextTimeout) -> Result<bool, Error> {
            unreachable!("only used for idle eviction")
        }

        fn is_open(&mut self) -> bool {
            unreachable!("only used for idle eviction")
        }
    }

    #[test]
    fn purge_removes_handles_of_evicted_connections() {
        for config in [
            Agent::config_builder().max_idle_connections(0).build(),
            Agent::config_builder()
                .max_idle_connections_per_host(0)
                .build(),
        ] {
            let mut pool = Pool::new(&config);
            let now = Instant::now();
            let handle = Arc::new(Flag::default());
            pool.register_shutdown(weak(&handle)).unwrap();
            pool.add(Connection {
                transport: Box::new(IdleTransport { _handle: handle }),
                key: PoolKey::new(&Uri::from_static("http://example.test/"), None),
                last_use: now,
                pool: Weak::new(),
            });

            pool.purge(now);

            assert_eq!(pool.idle_count, 0);
            assert!(pool.shutdown_handles.is_empty());
        }
    }

    #[test]
    fn bypassing_pool_purges_expired_shutdown_handles() {
        let config = Agent::config_builder().proxy(None).build();
        // This connector returns no transport, so registration cannot hide a
        // missing purge when the request bypasses connection reuse.
        let agent = Agent::with_parts(config, (), DefaultResolver::default());
        let handle = Arc::new(Flag::default());
        agent.pool.make_register_shutdown()(weak(&handle)).unwrap();
        drop(handle);

        let config = Agent::config_builder().proxy(None).no_delay(false).build();
        let mut request = http::Request::get("http://127.0.0.1/").body(()).unwrap();
        request.extensions_mut().insert(RequestLevelConfig(config));

        assert!(matches!(agent.run(request), Err(Error::ConnectionFailed)));
        assert_eq!(handle_count(&agent.pool), 0);
    }

    #[test]
    fn shutdown_reaches_live_handles_and_refuses_new_ones() {
        let connector = boxed_connector(TcpConnector::default());
        let pool = ConnectionPool::new(connector, &Config::default());
        let register = pool.make_register_shutdown();

        let live = Arc::new(Flag::default());
        let dropped = Arc::new(Flag::default());
        register(weak(&live)).unwrap();
        register(weak(&dropped)).unwrap();
        assert_eq!(handle_count(&pool), 2);

        // The pool only holds a Weak. Purging removes a dropped transport's entry.
        drop(dropped);
        pool.pool.lock().unwrap().purge(Instant::now());
        let other = Arc::new(Flag::default());
        register(weak(&other)).unwrap();
        assert_eq!(handle_count(&pool), 2);

        pool.shutdown();
        assert!(live.0.load(Ordering::SeqCst));
        assert!(other.0.load(Ordering::SeqCst));

        // Registration takes the same lock as the shutdown, so a transport
        // created while the shutdown runs cannot escape it.
        let late = Arc::new(Flag::default());
        let err = register(weak(&late)).unwrap_err();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::NotConnected),
            "{err:?}"
        );
        assert!(!late.0.load(Ordering::SeqCst));
    }
}
