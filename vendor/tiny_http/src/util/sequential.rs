//! A connection's requests read and write its socket in turn: request N+1's
//! reader waits until request N's has finished with the socket, and the same
//! for writers, even when requests are handled on other threads (`recv()`).
//!
//! The turn is passed through one channel per connection, not one per
//! request: the release made two channels per request, and its first send
//! allocated a block of 31 slots, about 4 KiB of allocations per request.
//! Only one reader (or writer) at a time waits for the turn, as the
//! connection makes the next one only once the previous has its turn, so one
//! channel keeps the order.

use std::io::Result as IoResult;
use std::io::{BufRead, Error as IoError, ErrorKind, Read, Write};

use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

/// The channel a connection's turns pass through. `T` is the reader itself, or
/// `()` for writers, which share the writer behind a lock.
struct Turn<T> {
    pass: Sender<T>,
    take: Mutex<Receiver<T>>,
}

impl<T> Turn<T> {
    fn new() -> Arc<Turn<T>> {
        let (pass, take) = channel();
        Arc::new(Turn {
            pass,
            take: Mutex::new(take),
        })
    }

    /// Blocks until the previous holder passes the turn. Never fails while the
    /// `Turn` (which holds a sender) is alive; the error is for completeness.
    fn wait(&self) -> IoResult<T> {
        self.take
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv()
            .map_err(|_| IoError::new(ErrorKind::BrokenPipe, "the connection's turn was lost"))
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
            None => self.reader.insert(self.turn.wait()?),
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
            None => self.reader.insert(self.turn.wait()?).fill_buf(),
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
    fn wait_for_turn(&mut self) -> IoResult<()> {
        if !self.has_turn {
            self.turn.wait()?;
            self.has_turn = true;
        }
        Ok(())
    }
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.wait_for_turn()?;
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.wait_for_turn()?;
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// A reader that never got its turn passes nothing: the turn is still on its
/// way through the channel, to the next reader.
impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            self.turn.pass.send(reader).ok();
        }
    }
}

/// Likewise a writer that never wrote leaves the previous writer's turn in
/// the channel for the next one.
impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        if self.has_turn {
            self.turn.pass.send(()).ok();
        }
    }
}
