//! epoll and eventfd, which std does not wrap: the waits of the parking thread
//! (`crate::parking`). The crate's only `unsafe` lives here, each call with its argument.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Most readiness reports taken from the kernel per wait; more wait for the next one.
const EVENTS_PER_WAIT: usize = 256;

/// An epoll instance; descriptors are added level-triggered, each with a token.
pub(crate) struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

/// One descriptor's readiness, as a wait reported it.
pub(crate) struct Ready {
    pub(crate) token: u64,
    /// Hung up or in error: nothing more will be read from it.
    pub(crate) hung_up: bool,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: no pointer arguments; a negative result is an error.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            // SAFETY: `fd` was just created and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT],
        })
    }

    /// Reports `fd` as `token` while it is readable (data or end of stream), hung up or in
    /// error.
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `event` is valid for the call, which copies it; a bad `fd` is an error.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })
            .map(drop)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event argument (null allowed since Linux 2.6.9).
        check(unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut())
        })
        .map(drop)
    }

    /// Waits until a descriptor is ready or `timeout` (rounded up to a millisecond) passed;
    /// `None` waits without limit. A signal ends the wait early with nothing ready.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<Ready>> {
        let timeout_ms = match timeout {
            None => -1,
            Some(timeout) => timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        // SAFETY: the kernel writes at most `len` events into the vector's `len` initialised
        // elements, which nothing else borrows meanwhile.
        let ready = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        let count = match check(ready) {
            Ok(count) => count as usize,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        let hang_up = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
        Ok(self.events[..count]
            .iter()
            .map(|event| {
                // Copies: the struct is packed on x86_64, so its fields are not borrowed.
                let (events, token) = (event.events, event.u64);
                Ready {
                    token,
                    hung_up: events & hang_up != 0,
                }
            })
            .collect())
    }
}

/// An eventfd: another thread's `wake` makes the descriptor readable until `reset`.
pub(crate) struct Waker {
    file: File,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: no pointer arguments; a negative result is an error.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        Ok(Waker {
            // SAFETY: `fd` was just created and nothing else owns it.
            file: File::from(unsafe { OwnedFd::from_raw_fd(fd) }),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub(crate) fn wake(&self) {
        // Fails only when the counter is near overflow, when it is readable anyway.
        let _ = (&self.file).write(&1u64.to_ne_bytes());
    }

    pub(crate) fn reset(&self) {
        let _ = (&self.file).read(&mut [0; 8]);
    }
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}
