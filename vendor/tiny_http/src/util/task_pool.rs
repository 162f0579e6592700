use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A task goes to an idle thread only when one is free for it; otherwise a new thread is
/// created, so a task never waits behind long-running ones (each task serves a connection
/// for its whole life). Threads beyond `MIN_THREADS` exit after a few idle seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
    stack_size: usize,
}

type Task = Box<dyn FnMut() + Send>;

struct Sharing {
    state: Mutex<State>,

    // notified whenever a task is added to `todo` or the pool shuts down
    condvar: Condvar,
}

struct State {
    // tasks handed to idle threads that have not picked them up yet
    todo: VecDeque<Task>,

    // threads waiting for a task; each queued task has one of them reserved
    idle: usize,

    // threads alive, busy or idle
    threads: usize,

    shutting_down: bool,
}

/// Minimum number of active threads.
const MIN_THREADS: usize = 4;

/// How long a thread above `MIN_THREADS` waits for a task before exiting.
const IDLE_THREAD_LIFETIME: Duration = Duration::from_secs(5);

impl Sharing {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TaskPool {
    pub fn new(stack_size: usize) -> TaskPool {
        let pool = TaskPool {
            stack_size,
            sharing: Arc::new(Sharing {
                state: Mutex::new(State {
                    todo: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    shutting_down: false,
                }),
                condvar: Condvar::new(),
            }),
        };

        for _ in 0..MIN_THREADS {
            pool.add_thread(None)
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Task) {
        let mut state = self.sharing.lock();
        if state.idle > state.todo.len() {
            state.todo.push_back(code);
            self.sharing.condvar.notify_one();
        } else {
            drop(state);
            self.add_thread(Some(code));
        }
    }

    fn add_thread(&self, initial_fn: Option<Task>) {
        let sharing = self.sharing.clone();
        sharing.lock().threads += 1;

        let stack_size = self.stack_size;
        let spawned = thread::Builder::new().stack_size(stack_size).spawn(move || {
            if let Some(mut f) = initial_fn {
                f();
            }
            while let Some(mut task) = Self::next_task(&sharing) {
                task();
            }
        });
        if let Err(e) = spawned {
            // The task (a connection) is dropped with the closure, which closes it.
            log::error!("cannot start a connection thread: {}", e);
            self.sharing.lock().threads -= 1;
        }
    }

    /// Waits for a task; `None` when this thread should exit.
    fn next_task(sharing: &Sharing) -> Option<Task> {
        let mut state = sharing.lock();
        loop {
            if let Some(task) = state.todo.pop_front() {
                return Some(task);
            }
            if state.shutting_down {
                state.threads -= 1;
                return None;
            }
            state.idle += 1;
            let timed_out = if state.threads <= MIN_THREADS {
                state = sharing
                    .condvar
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                false
            } else {
                let (new_state, wait) = sharing
                    .condvar
                    .wait_timeout(state, IDLE_THREAD_LIFETIME)
                    .unwrap_or_else(PoisonError::into_inner);
                state = new_state;
                wait.timed_out()
            };
            state.idle -= 1;
            if timed_out && state.todo.is_empty() {
                state.threads -= 1;
                return None;
            }
        }
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing.lock().shutting_down = true;
        self.sharing.condvar.notify_all();
    }
}
