//! A connection's requests read and write its socket in turn: request N+1's
//! reader waits until request N's has finished with the socket, and the same
//! for writers, even when requests are handled on other threads (`recv()`).
//!
//! The turn is passed through one slot per connection (a mutex and a condvar,
//! notified only when someone waits for it), not a channel: the release made
//! two channels per request, and its first send allocated a block of 31 slots,
//! about 4 KiB of allocations per request; one channel per connection still
//! cost about 700 instructions per request in sends, receives and their locks.
//! Only one reader (or writer) at a time waits for the turn, as the
//! connection makes the next one only once the previous has its turn (and
//! reads a request only once the previous one was answered), so one slot
//! keeps the order.

use std::io::Result as IoResult;
use std::io::{BufRead, Read, Write};

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The slot a connection's turns pass through. `T` is the reader itself, or
/// `()` for writers, which share the writer behind a lock.
struct Turn<T> {
    slot: Mutex<Slot<T>>,
    passed: Condvar,
}

struct Slot<T> {
    turn: Option<T>,
    /// How many wait for the turn: passing it wakes one only when some do.
    waiting: usize,
}

impl<T> Turn<T> {
    fn new() -> Arc<Turn<T>> {
        Arc::new(Turn {
            slot: Mutex::new(Slot {
                turn: None,
                waiting: 0,
            }),
            passed: Condvar::new(),
        })
    }

    fn slot(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until the previous holder passes the turn.
    fn wait(&self) -> T {
        let mut slot = self.slot();
        loop {
            if let Some(turn) = slot.turn.take() {
                return turn;
            }
            slot.waiting += 1;
            slot = self
                .passed
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
            slot.waiting -= 1;
        }
    }

    fn pass(&self, turn: T) {
        let mut slot = self.slot();
        slot.turn = Some(turn);
        if slot.waiting > 0 {
            self.passed.notify_one();
        }
    }
}

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    first: Option<R>,
    turn: Arc<Turn<R>>,
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    /// `None` until this reader's turn came.
    reader: Option<R>,
    turn: Arc<Turn<R>>,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    first: bool,
    turn: Arc<Turn<()>>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    /// Whether this writer may write: the first always, the others once the
    /// previous writer was dropped.
    has_turn: bool,
    writer: Arc<Mutex<W>>,
    turn: Arc<Turn<()>>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            first: Some(reader),
            turn: Turn::new(),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            first: true,
            turn: Turn::new(),
        }
    }
}

impl<R: Read + Send> Iterator for SequentialReaderBuilder<R> {
    type Item = SequentialReader<R>;

    fn next(&mut self) -> Option<SequentialReader<R>> {
        Some(SequentialReader {
            reader: self.first.take(),
            turn: self.turn.clone(),
        })
    }
}

impl<W: Write + Send> Iterator for SequentialWriterBuilder<W> {
    type Item = SequentialWriter<W>;
    fn next(&mut self) -> Option<SequentialWriter<W>> {
        let has_turn = std::mem::replace(&mut self.first, false);
        Some(SequentialWriter {
            has_turn,
            writer: self.writer.clone(),
            turn: self.turn.clone(),
        })
    }
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => self.reader.insert(self.turn.wait()),
        };
        reader.read(buf)
    }
}

/// The connection reads a request head straight from the buffer under the reader, a line
/// at a time, not through `read` a byte at a time.
impl<R: BufRead + Send> BufRead for SequentialReader<R> {
    fn fill_buf(&mut self) -> IoResult<&[u8]> {
        match self.reader {
            Some(ref mut reader) => reader.fill_buf(),
            None => self.reader.insert(self.turn.wait()).fill_buf(),
        }
    }

    /// Only what `fill_buf` returned can be consumed, so the reader has its turn.
    fn consume(&mut self, amount: usize) {
        if let Some(reader) = &mut self.reader {
            reader.consume(amount);
        }
    }
}

impl<W: Write + Send> SequentialWriter<W> {
    fn wait_for_turn(&mut self) {
        if !self.has_turn {
            self.turn.wait();
            self.has_turn = true;
        }
    }
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.wait_for_turn();
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.wait_for_turn();
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// A reader that never got its turn passes nothing: the turn is still on its
/// way, or waits in the slot, for the next reader.
impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            self.turn.pass(reader);
        }
    }
}

/// Likewise a writer that never wrote leaves the previous writer's turn in
/// the slot for the next one.
impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        if self.has_turn {
            self.turn.pass(());
        }
    }
}
