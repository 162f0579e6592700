//! Gives the stack pages an idle connection thread is not using back to the kernel.
//!
//! A connection thread touches its stack as deep as the deepest request it served (a TLS
//! handshake, a proxied exchange: tens of KiB), and those pages stay resident for the
//! thread's whole life. A server holding ten thousand idle keep-alive connections holds
//! ten thousand such stacks, so a connection that has waited a while for its next request
//! releases every page below its current frame; they come back zero-filled if touched.

use std::cell::Cell;

thread_local! {
    /// The lowest address this thread's stack may use, plus a page; 0 on threads the
    /// task pool did not start.
    static STACK_FLOOR: Cell<usize> = const { Cell::new(0) };
}

/// Pages kept between the releasing frame and the released range, for the frames the
/// release itself calls.
const CALL_MARGIN: usize = 2 * 4096;

/// Records this thread's stack bounds; called first thing on a thread started with a
/// stack of `size` bytes. The stack grows down from (about) here: the thread's first
/// frame sits below the top, so `here - size` stays within the mapping.
#[inline(never)]
pub(crate) fn record_thread_stack(size: usize) {
    let here = 0u8;
    let top = std::hint::black_box(&here) as *const u8 as usize;
    STACK_FLOOR.with(|floor| floor.set(top.saturating_sub(size) + page_size()));
}

/// Releases this thread's stack pages below the caller (`madvise(MADV_DONTNEED)`).
/// Nothing live lies below the current frame, so only memory is lost, never data.
#[inline(never)]
pub(crate) fn release_unused() {
    let floor = STACK_FLOOR.with(Cell::get);
    if floor == 0 {
        return;
    }
    let here = 0u8;
    let frame = std::hint::black_box(&here) as *const u8 as usize;
    let page = page_size();
    let start = (floor + page - 1) & !(page - 1);
    let end = frame.saturating_sub(CALL_MARGIN) & !(page - 1);
    if end > start {
        // SAFETY: [start, end) lies inside this thread's stack mapping, below every live
        // frame of this thread; no other thread uses another thread's stack.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        size if size > 0 => size as usize,
        _ => 4096,
    }
}
