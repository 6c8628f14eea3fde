//! Allocator setting for training and benchmark processes.
//!
//! Every op returns a fresh output buffer. With glibc's defaults, blocks above 128 KiB–32 MiB
//! come from `mmap` and go back with `munmap`: each step then pays page faults to re-zero
//! the same activations and TLB-shootdown interrupts (expensive in a VM). [`tune_allocator`]
//! keeps freed memory in the process instead (no `mmap` for large blocks, no trimming of the
//! heap top), so a training loop reuses the same pages every step. Peak memory is unchanged
//! but is no longer given back to the OS until the process exits.

/// Applies the setting (glibc on Linux; a no-op elsewhere). Call once, early in `main`.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; it is called before the heavy
    // allocation starts and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
