//! What nndl's tests share across crates. A dev-dependency only: no library depends on it, so
//! a test helper never becomes part of a crate's API.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// An allocator that records the largest single allocation, to show a loader never reserves
/// what a header claims. A test binary opts in with
/// `#[global_allocator] static A: test_support::Counting = test_support::Counting;`: only the
/// binaries that measure pay for the counting.
pub struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc` or `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The largest allocation `f` makes; panics unless [`Counting`] is the global allocator.
/// Measurements take turns: tests run in parallel and the record is one for the process.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Without the allocator in place every measurement would be 0 and every bound would pass.
    LARGEST.store(0, Ordering::Relaxed);
    drop(std::hint::black_box(Vec::<u8>::with_capacity(1)));
    assert!(
        LARGEST.load(Ordering::Relaxed) > 0,
        "test_support::Counting is not this test binary's global allocator"
    );
    LARGEST.store(0, Ordering::Relaxed);
    let out = f();
    (out, LARGEST.load(Ordering::Relaxed))
}

/// A gzip stream of an IDX images header declaring `count` 28x28 images, then `zeros` zero
/// bytes: a bomb, as deflate packs zeros about 1000:1.
pub fn gzip_bomb(count: u32, zeros: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for w in [2051u32, count, 28, 28] {
        e.write_all(&w.to_be_bytes()).unwrap();
    }
    // In blocks, so a bomb of gigabytes never needs them in memory.
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len());
        e.write_all(&block[..n]).unwrap();
        left -= n;
    }
    e.finish().unwrap()
}

/// `assert_matches!(value => pattern)`: asserts that `value` matches `pattern`, showing the
/// value when it does not (the standard library's `assert_matches!` is not stable yet). The
/// arrow keeps a pattern on one line: rustfmt would spread one after a comma over many.
#[macro_export]
macro_rules! assert_matches {
    ($value:expr => $pattern:pat $(if $guard:expr)? $(,)?) => {{
        let value = &$value;
        assert!(
            matches!(value, $pattern $(if $guard)?),
            "{value:?} does not match {}",
            stringify!($pattern $(if $guard)?)
        );
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn assert_matches_passes_a_match_and_fails_anything_else() {
        assert_matches!(Some(3) => Some(1..=5));
        let missed = std::panic::catch_unwind(|| assert_matches!(Some(7) => Some(1..=5)));
        assert!(missed.is_err());
    }

    #[test]
    #[should_panic(expected = "not this test binary's global allocator")]
    fn measuring_without_the_counting_allocator_is_refused() {
        // This binary keeps the system allocator: a bound checked here would always pass.
        super::largest_allocation(|| vec![0u8; 1 << 20]);
    }
}
