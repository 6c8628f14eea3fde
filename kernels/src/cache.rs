//! Prepared weights for inference: a convolution's packed (or Winograd-transformed) weights,
//! kept between calls so a model that predicts image after image prepares them once.
//!
//! **How an entry stays valid.** The key is the address and length of the weight tensor's
//! buffer plus a tag for the preparation (its geometry). The entry holds a clone of the
//! tensor, so the buffer can neither be freed (and its address reused) nor written in place
//! (flex tensors copy on write while shared): an address match therefore means the same
//! values. Only inference (plain flex tensors) uses the cache — training changes the weights
//! every step.
//!
//! Only preparations that hold something are kept: where a convolution's weights are used as
//! they are (the `gemm` crate's path on CPUs without AVX2) there is nothing to prepare, and
//! an entry of zero bytes would only pin the weight tensor (and never count against the bound).
//!
//! **Bypass.** [`bypass`] runs a closure during which this thread's inference keeps nothing
//! (for evaluation passes between training epochs, whose weights are superseded next epoch);
//! [`crate::on_pool`] carries the setting onto the pool thread that runs its closure.
//!
//! **Bounded.** Least recently used entries go first once the prepared bytes pass the capacity
//! (`CNNZOO_WEIGHT_CACHE_MB`, default 256; 0 turns the cache off). A model larger than that
//! simply prepares its weights every call, as without the cache.

use std::any::Any;
use std::cell::Cell;
use std::sync::{Arc, Mutex, OnceLock};

use burn::backend::flex::FlexTensor;

struct Entry {
    key: Key,
    _hold: Vec<FlexTensor>,
    value: Arc<dyn Any + Send + Sync>,
    bytes: usize,
    used: u64,
}

struct Cache {
    entries: Vec<Entry>,
    bytes: usize,
    clock: u64,
}

/// The buffers (address, length) a preparation was made from, and its tag.
type Key = (Vec<(usize, usize)>, u64);

static CACHE: Mutex<Cache> = Mutex::new(Cache { entries: Vec::new(), bytes: 0, clock: 0 });

thread_local! {
    static BYPASS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the cache bypassed on this thread: inference inside neither inserts prepared
/// weights nor keeps any (it may still use entries made before; results are the same either
/// way). Meant for forwards whose weights will not be seen again, such as the evaluation after
/// each training epoch. Other threads are not affected; a forward run through
/// [`crate::on_pool`] inside `f` is (the setting travels with its closure). Nests; the previous
/// setting is restored when `f` returns or unwinds.
pub fn bypass<R>(f: impl FnOnce() -> R) -> R {
    with_bypass(true, f)
}

/// Whether the cache is bypassed on this thread ([`bypass`]).
pub fn bypassed() -> bool {
    BYPASS.with(Cell::get)
}

/// Runs `f` with this thread's bypass setting `on`, restoring the previous one afterwards (also
/// on unwinding).
pub(crate) fn with_bypass<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BYPASS.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BYPASS.with(|b| b.replace(on)));
    f()
}

/// Capacity in bytes (`CNNZOO_WEIGHT_CACHE_MB`, default 256 MiB).
pub fn capacity() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        let mb = std::env::var("CNNZOO_WEIGHT_CACHE_MB").ok().and_then(|v| v.trim().parse::<usize>().ok());
        mb.unwrap_or(256) << 20
    })
}

/// Drops every prepared weight (and the tensors the entries hold).
pub fn clear() {
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    c.entries.clear();
    c.bytes = 0;
}

/// Entries and prepared bytes held now (a diagnostic for tests and benchmarks).
pub fn stats() -> (usize, usize) {
    let c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    (c.entries.len(), c.bytes)
}

/// The preparation `tag` of the weights `w` (whose `f32` values are `values`): from the cache,
/// or made by `make` (which returns the value and its size in bytes) and remembered — unless
/// it holds nothing (0 bytes), or `values` are not `w`'s own contiguous data (then the entry
/// could not keep them alive: made and not remembered).
pub(crate) fn prepared<T: Any + Send + Sync>(
    w: &FlexTensor,
    values: &[f32],
    tag: u64,
    make: impl FnOnce() -> (T, usize),
) -> Arc<T> {
    prepared_from(&[(w, values)], tag, make)
}

/// [`prepared`] from several tensors (a convolution's weights and the batch norm folded into
/// them): the entry is keyed by all their buffers and holds all of them, so a preparation is
/// found again only while every one of them is the same buffer.
pub(crate) fn prepared_from<T: Any + Send + Sync>(
    sources: &[(&FlexTensor, &[f32])],
    tag: u64,
    make: impl FnOnce() -> (T, usize),
) -> Arc<T> {
    let key: Key = (sources.iter().map(|(_, v)| (v.as_ptr() as usize, v.len())).collect(), tag);
    let own = sources.iter().all(|(t, values)| t.as_slice::<f32>().is_some_and(|s| std::ptr::eq(s, *values)));
    let cap = if own { capacity() } else { 0 };
    if cap > 0 {
        let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        c.clock += 1;
        let now = c.clock;
        if let Some(e) = c.entries.iter_mut().find(|e| e.key == key) {
            e.used = now;
            if let Ok(v) = e.value.clone().downcast::<T>() {
                return v;
            }
        }
    }
    let (value, bytes) = make();
    let value = Arc::new(value);
    if cap == 0 || bytes == 0 || bytes > cap || bypassed() {
        return value;
    }
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    c.entries.retain(|e| e.key != key);
    c.bytes = c.entries.iter().map(|e| e.bytes).sum();
    while c.bytes + bytes > cap {
        let Some(oldest) = c.entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i) else {
            break;
        };
        let e = c.entries.swap_remove(oldest);
        c.bytes -= e.bytes;
    }
    c.clock += 1;
    let used = c.clock;
    let hold = sources.iter().map(|(t, _)| (*t).clone()).collect();
    c.entries.push(Entry { key, _hold: hold, value: value.clone(), bytes, used });
    c.bytes += bytes;
    value
}

/// A tag from the numbers that shape a preparation (FNV-1a over them).
pub(crate) fn tag(parts: &[usize]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &p in parts {
        for b in (p as u64).to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
