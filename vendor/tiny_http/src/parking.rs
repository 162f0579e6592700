//! Keep-alive connections idle between requests wait without a thread.
//!
//! A connection whose next request has not begun within `PARK_AFTER` is handed, with all
//! its state, to one parking thread that waits on every such socket with epoll. When a
//! parked socket becomes readable the connection gets a thread again (as a new connection
//! does) and goes on reading its next request; when its idle deadline passes, or a drain
//! or cut closed its socket, the parking thread closes it. Threads are then bounded by the
//! connections that are busy, not by the connections that are open.

use std::collections::{BinaryHeap, HashMap};
use std::cmp::Reverse;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::ClientConnection;
use crate::util::epoll::{Epoll, Waker};

/// How long a connection waits for its next request on its own thread before it is
/// parked: far longer than the pause between a busy client's requests, so a loaded
/// connection is never parked, and short enough that idle ones soon give their thread up.
pub(crate) const PARK_AFTER: Duration = Duration::from_secs(1);

/// The parking thread runs nothing deep: its own small stack.
const PARKING_STACK_SIZE: usize = 64 * 1024;

/// The waker's token; connection tokens count up from 0 and never reach it.
const WAKER_TOKEN: u64 = u64::MAX;

/// Takes a resumed connection to a thread.
pub(crate) type Resume = Box<dyn Fn(ClientConnection) + Send>;

/// The server's handle on its parking thread, which ends when this is dropped and closes
/// the connections still parked.
pub(crate) struct Parking {
    shared: Arc<ParkingShared>,
}

struct ParkingShared {
    /// Parked connections not yet taken by the parking thread.
    arriving: Mutex<Vec<ClientConnection>>,
    waker: Waker,
    stopped: AtomicBool,
}

impl Parking {
    /// Starts the parking thread. `resume` hands a connection whose next request arrived
    /// to a thread; `closing_idle` set (a drain) makes a woken connection close instead.
    pub(crate) fn start(resume: Resume, closing_idle: Arc<AtomicBool>) -> io::Result<Parking> {
        let epoll = Epoll::new()?;
        let waker = Waker::new()?;
        epoll.add(waker.fd(), WAKER_TOKEN)?;
        let shared = Arc::new(ParkingShared {
            arriving: Mutex::default(),
            waker,
            stopped: AtomicBool::new(false),
        });
        let lot = Lot {
            shared: shared.clone(),
            epoll,
            resume,
            closing_idle,
            parked: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_token: 0,
        };
        thread::Builder::new()
            .name("tiny_http parking".into())
            .stack_size(PARKING_STACK_SIZE)
            .spawn(move || lot.run())?;
        Ok(Parking { shared })
    }

    /// Parks a connection that asked for it (`ClientConnection::wants_parking`).
    pub(crate) fn park(&self, connection: ClientConnection) {
        self.shared
            .arriving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
        self.shared.waker.wake();
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.waker.wake();
    }
}

/// The parking thread's own state.
struct Lot {
    shared: Arc<ParkingShared>,
    epoll: Epoll,
    resume: Resume,
    closing_idle: Arc<AtomicBool>,
    parked: HashMap<u64, (ClientConnection, RawFd)>,
    /// Each parked connection's idle deadline; entries of connections gone are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_token: u64,
}

impl Lot {
    fn run(mut self) {
        while !self.shared.stopped.load(Ordering::Acquire) {
            self.take_arrivals();
            let timeout = self.close_expired();
            let ready = match self.epoll.wait(timeout) {
                Ok(ready) => ready,
                Err(e) => {
                    log::error!("waiting on parked connections failed: {}", e);
                    thread::sleep(PARK_AFTER);
                    continue;
                }
            };
            for ready in ready {
                if ready.token == WAKER_TOKEN {
                    self.shared.waker.reset();
                    continue;
                }
                let Some(connection) = self.unpark(ready.token) else {
                    continue;
                };
                if ready.hung_up || self.closing_idle.load(Ordering::Acquire) {
                    drop(connection);
                } else {
                    (self.resume)(connection);
                }
            }
        }
    }

    fn take_arrivals(&mut self) {
        let arriving = std::mem::take(
            &mut *self
                .shared
                .arriving
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for connection in arriving {
            let (Some(fd), Some(deadline)) = (connection.pollable_fd(), connection.idle_deadline())
            else {
                continue;
            };
            let token = self.next_token;
            self.next_token += 1;
            if let Err(e) = self.epoll.add(fd, token) {
                log::warn!("cannot park a connection, closing it: {}", e);
                continue;
            }
            self.parked.insert(token, (connection, fd));
            self.deadlines.push(Reverse((deadline, token)));
        }
    }

    /// Closes the connections whose idle deadline passed; returns the wait until the next.
    fn close_expired(&mut self) -> Option<Duration> {
        let now = Instant::now();
        while let Some(&Reverse((deadline, token))) = self.deadlines.peek() {
            if !self.parked.contains_key(&token) {
                self.deadlines.pop();
            } else if deadline <= now {
                self.deadlines.pop();
                drop(self.unpark(token));
            } else {
                return Some(deadline - now);
            }
        }
        None
    }

    fn unpark(&mut self, token: u64) -> Option<ClientConnection> {
        let (connection, fd) = self.parked.remove(&token)?;
        if let Err(e) = self.epoll.delete(fd) {
            log::debug!("removing a parked socket from epoll failed: {}", e);
        }
        Some(connection)
    }
}
