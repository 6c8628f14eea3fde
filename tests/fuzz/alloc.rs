//! A counting global allocator for the fuzz binary: while a case runs (armed), it records the
//! largest single allocation (or reallocation target) of any thread, so a parser that sizes a
//! buffer from a lying header is caught even when the allocation itself succeeds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The largest single allocation a case may make: 256 MiB. Every seed is under 300 KB and no
/// parser needs more than a small multiple of its input (an image's pixels, a checkpoint's
/// tensors), so anything this large was sized from a claimed, not an actual, length.
pub const BOUND: usize = 256 << 20;

/// Counts allocations while armed; otherwise the system allocator unchanged.
pub struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

fn note(size: usize) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    LARGEST.fetch_max(size, Ordering::Relaxed);
    if size > BOUND && !WARNED.swap(true, Ordering::Relaxed) {
        // The allocation may not return (the process may be killed for it), so say now which
        // input did it, without allocating.
        let mut buf = [0u8; 20];
        let mut n = size;
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"fuzz: an allocation of ");
        let _ = err.write_all(&buf[i..]);
        let _ = err.write_all(
            b" bytes, over the bound; the input is the in-flight file under fuzz-crashes/ (see below)\n",
        );
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts counting (from zero).
pub fn arm() {
    LARGEST.store(0, Ordering::Relaxed);
    WARNED.store(false, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
}

/// Stops counting and returns the largest single allocation since [`arm`].
pub fn disarm() -> usize {
    ARMED.store(false, Ordering::Relaxed);
    LARGEST.load(Ordering::Relaxed)
}
