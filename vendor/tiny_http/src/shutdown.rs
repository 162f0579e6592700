//! Closing a client connection from outside the thread that serves it.

use std::net::Shutdown;
use std::sync::Weak;

use crate::connection::Connection;
use crate::external::WeakExternal;

/// Ends a client connection at once, from any thread.
///
/// A handler whose response cannot be completed (an upstream failing mid-body, a tunnel
/// whose other side went away) must not leave the client waiting for bytes that will never
/// come until the idle timeout. The handle does not keep the connection open: once the
/// server has closed it, `shutdown` does nothing.
#[derive(Clone, Default)]
pub struct ShutdownHandle {
    target: Target,
}

#[derive(Clone, Default)]
enum Target {
    /// A request that came from no socket (`TestRequest`).
    #[default]
    Detached,
    Http(Weak<Connection>),
    External(WeakExternal),
}

impl ShutdownHandle {
    pub(crate) fn http(connection: Weak<Connection>) -> ShutdownHandle {
        ShutdownHandle {
            target: Target::Http(connection),
        }
    }

    pub(crate) fn external(external: WeakExternal) -> ShutdownHandle {
        ShutdownHandle {
            target: Target::External(external),
        }
    }

    /// Closes both directions: the client sees EOF (or a reset) and every blocked read or
    /// write on the connection returns.
    ///
    /// An external stream that shares its socket (`ExternalStream::shared_socket`) is shut
    /// down at once. Any other waits for the stream's lock, which a read blocked on the
    /// connection's thread holds until it times out.
    pub fn shutdown(&self) {
        let result = match &self.target {
            Target::Detached => Ok(()),
            Target::Http(connection) => match connection.upgrade() {
                Some(connection) => connection.shutdown(Shutdown::Both),
                None => Ok(()),
            },
            Target::External(external) => external.shutdown(),
        };
        if let Err(e) = result {
            log::debug!("shutting a client connection down failed: {}", e);
        }
    }

    /// Like `shutdown`, but never waits: an external stream whose lock a read holds is
    /// left alone (an idle one notices the drain between its short reads).
    pub(crate) fn try_shutdown(&self) {
        match &self.target {
            Target::External(external) => external.try_shutdown(),
            _ => self.shutdown(),
        }
    }
}
