//! SIGTERM and SIGINT, turned into a message the main thread waits for.
//!
//! The handler only writes one byte to a pipe (`write(2)` is
//! async-signal-safe); a thread blocked reading the pipe turns each byte into
//! a message on a channel. Everything else — failing readiness, stopping
//! listeners, waiting for in-flight requests — happens on ordinary threads,
//! and nothing polls a flag. `signal(2)`, `pipe(2)`, `read(2)` and `write(2)`
//! are declared here rather than pulling in the libc crate for four
//! functions; std already links the C library they live in.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

use crossbeam_channel::Receiver;

/// The pipe's write end, for the handler; -1 until installed.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn pipe(fds: *mut i32) -> i32;
    fn read(fd: i32, buf: *mut u8, count: usize) -> isize;
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
}

extern "C" fn on_signal(_signum: i32) {
    let fd = PIPE_WRITE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) on a valid pipe fd from a one-byte buffer; it is
        // async-signal-safe. A full pipe only drops a repeated signal.
        unsafe {
            write(fd, &byte, 1);
        }
    }
}

/// Installs the handlers; call once at start. Each SIGTERM or SIGINT then
/// sends one message on the returned channel.
pub fn install() -> io::Result<Receiver<()>> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills the two-element array it is given.
    if unsafe { pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new().name("signals".into()).spawn(move || loop {
        let mut byte = 0u8;
        // SAFETY: read(2) of one byte into a valid buffer from the pipe's read end.
        match unsafe { read(read_end, &mut byte, 1) } {
            1 => {
                if tx.send(()).is_err() {
                    return;
                }
            }
            0 => return,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    })?;
    PIPE_WRITE.store(write_end, Ordering::SeqCst);
    // SAFETY: `on_signal` only loads an atomic and calls write(2), both
    // async-signal-safe, and has the C ABI signature signal(2) expects.
    unsafe {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
    }
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn raise(signum: i32) -> i32;
    }

    #[test]
    fn sigterm_sends_a_message_instead_of_killing_the_process() {
        let signals = install().expect("installed");
        assert!(signals.try_recv().is_err());
        // SAFETY: raising a signal whose handler was just installed.
        assert_eq!(unsafe { raise(SIGTERM) }, 0);
        assert!(signals.recv_timeout(std::time::Duration::from_secs(5)).is_ok(), "the signal became a message");
    }
}
