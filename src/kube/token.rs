//! The service-account bearer token.
//!
//! Projected tokens rotate (kubelet rewrites the file well before expiry), so
//! the file is re-read every minute and at once after a 401. A failed read
//! keeps the last good token: a half-written file during rotation must not
//! drop authentication. The token never appears in logs or Debug output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the file is re-read even without a 401.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The token's value and when the file was last read.
#[derive(Default)]
struct State {
    value: Option<String>,
    read_at: Option<Instant>,
    /// Bumped whenever a read finds a different token.
    generation: u64,
}

/// A bearer token backed by a file.
pub struct Token {
    path: PathBuf,
    state: Mutex<State>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = self.lock().value.is_some();
        f.debug_struct("Token").field("path", &self.path).field("value", &if present { "<redacted>" } else { "<none>" }).finish()
    }
}

/// Reads a token file: trimmed, and None when empty.
fn read_token(path: &Path) -> std::io::Result<Option<String>> {
    let text = std::fs::read_to_string(path)?;
    let token = text.trim();
    Ok(if token.is_empty() { None } else { Some(token.to_string()) })
}

impl Token {
    /// Reads the file at once; a missing file means no token is sent until it appears.
    /// Warns when it finds no token: every request then goes anonymous and
    /// fails with 401s that do not say why.
    pub fn new(path: &Path) -> Token {
        let token = Token { path: path.to_path_buf(), state: Mutex::new(State::default()) };
        token.reload();
        if token.lock().value.is_none() {
            // Other read errors were logged by `reload`.
            let problem = match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
                Ok(_) => Some("is empty"),
                Err(_) => None,
            };
            if let Some(problem) = problem {
                log::warn!(
                    "token file {} {problem}: requests to the API server carry no token until it holds one (see --token-file)",
                    path.display()
                );
            }
        }
        token
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The guarded state is two plain fields, valid even after a panic elsewhere.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Re-reads the file now. Keeps the previous token when the read fails.
    pub fn reload(&self) {
        let result = read_token(&self.path);
        let mut state = self.lock();
        state.read_at = Some(Instant::now());
        match result {
            Ok(Some(value)) => {
                if state.value.as_ref() != Some(&value) {
                    state.generation += 1;
                }
                state.value = Some(value);
            }
            Ok(None) if state.value.is_some() => {
                log::warn!("token file {} is empty; keeping the previous token", self.path.display())
            }
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && state.value.is_none() => {}
            Err(e) => log::warn!("cannot read token file {}: {e}; keeping the previous token", self.path.display()),
        }
    }

    /// Changes whenever a read found a different token, so a caller that got
    /// a 401 can tell whether retrying at once has a chance.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The `Authorization` header value, re-reading the file when the last
    /// read is older than [`REFRESH_INTERVAL`].
    pub fn authorization(&self) -> Option<String> {
        let due = self.lock().read_at.is_none_or(|at| at.elapsed() >= REFRESH_INTERVAL);
        if due {
            self.reload();
        }
        self.lock().value.as_ref().map(|t| format!("Bearer {t}"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh path under the system temp dir, unique per test and process.
    pub(crate) fn temp_path(name: &str) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("ingressd-kube-{}-{n}-{name}", std::process::id()))
    }

    #[test]
    fn generation_changes_only_with_the_token() {
        let path = temp_path("generation");
        std::fs::write(&path, "one").expect("write");
        let token = Token::new(&path);
        let first = token.generation();
        token.reload();
        assert_eq!(token.generation(), first, "same token, same generation");
        std::fs::write(&path, "two\n").expect("write");
        token.reload();
        assert_eq!(token.generation(), first + 1);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn missing_file_sends_no_token_until_it_appears() {
        let path = temp_path("token");
        let token = Token::new(&path);
        assert_eq!(token.authorization(), None);
        std::fs::write(&path, "abc\n").expect("write");
        token.reload();
        assert_eq!(token.authorization().as_deref(), Some("Bearer abc"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn failed_or_empty_read_keeps_last_good_token() {
        let path = temp_path("token");
        std::fs::write(&path, "  first  ").expect("write");
        let token = Token::new(&path);
        assert_eq!(token.authorization().as_deref(), Some("Bearer first"));
        std::fs::write(&path, "").expect("write");
        token.reload();
        assert_eq!(token.authorization().as_deref(), Some("Bearer first"));
        std::fs::remove_file(&path).expect("remove");
        token.reload();
        assert_eq!(token.authorization().as_deref(), Some("Bearer first"));
        std::fs::write(&path, "second").expect("write");
        token.reload();
        assert_eq!(token.authorization().as_deref(), Some("Bearer second"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn cached_between_refreshes() {
        let path = temp_path("token");
        std::fs::write(&path, "one").expect("write");
        let token = Token::new(&path);
        std::fs::write(&path, "two").expect("write");
        // Within the refresh interval the cached value is used; a reload picks up the new one.
        assert_eq!(token.authorization().as_deref(), Some("Bearer one"));
        token.reload();
        assert_eq!(token.authorization().as_deref(), Some("Bearer two"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let path = temp_path("token");
        std::fs::write(&path, "s3cr3t-value").expect("write");
        let token = Token::new(&path);
        let shown = format!("{token:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("redacted"));
        let _ = std::fs::remove_file(&path);
    }
}
