//! Coarse fork-join for the kernels: one split of a big operation into a part per thread, the
//! calling thread taking part 0 itself.
//!
//! Why not rayon here: at the book's mini-batch of 10 a training step is ~1 ms and makes about
//! eight splits, each ~0.1 ms of work. Through rayon each split injected a job from the
//! (non-pool) training thread, woke a pool thread, and put the caller to sleep until a pool
//! thread finished: two futex round trips per split, 12% of a step's samples in the kernel's
//! scheduler, and a third runnable thread on two cores. The team here has `threads - 1`
//! helpers; a helper spins briefly for the next split (the next op of the step arrives within
//! microseconds) and then parks, so an idle or shared machine is not burnt; the caller spins
//! for its helpers only while they are known to be running, yielding after a short while (a
//! competing process gets the core instead of a spinning thread).
//!
//! The thread count is rayon's (`--threads` sets rayon's global pool), so one setting governs
//! both. Inside a helper, a rayon task, or another split, a split runs serially: nothing nests.

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a helper spins for the next split before parking.
const HELPER_SPIN: Duration = Duration::from_micros(100);
/// How long the caller spins for its helpers before yielding between checks.
const CALLER_SPIN: Duration = Duration::from_micros(50);

thread_local! {
    /// Set while this thread runs a part of a split (or is a helper): splits inside run serially.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    /// Tests' override of the thread count (see [`with_threads`]).
    static THREADS: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The number of threads the kernels split work across from this thread now: rayon's (set by
/// `--threads`), or [`with_threads`]'s limit, and 1 inside a parallel region.
pub fn threads() -> usize {
    if INSIDE.with(Cell::get) || rayon::current_thread_index().is_some() {
        return 1;
    }
    THREADS
        .with(Cell::get)
        .unwrap_or_else(rayon::current_num_threads)
        .clamp(1, MAX_THREADS)
}

/// Runs `f` with the kernels' splits limited to `n` threads on this thread, whatever rayon's
/// pool holds: to compare results at 1 and 2 threads (they are equal or differ only where a
/// kernel documents it), or to time a kernel single-threaded. Restored when `f` returns or
/// panics.
///
/// ```
/// use nndl_tensor::{matmul, threads, with_threads, Tensor};
///
/// let a = Tensor::from_vec((0..64 * 64).map(|i| (i % 7) as f32).collect(), &[64, 64])?;
/// let one = with_threads(1, || {
///     assert_eq!(threads(), 1);
///     matmul(&a, false, &a, true)
/// })?;
/// let two = with_threads(2, || matmul(&a, false, &a, true))?;
/// // Small integers: every summation order gives the exact result.
/// assert_eq!(one, two);
/// # Ok::<(), nndl_tensor::TensorError>(())
/// ```
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let old = THREADS.with(|t| t.replace(Some(n.max(1))));
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREADS.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(old);
    f()
}

/// Whether an operation of `work` units should be split: more than one thread here, and at
/// least `min` work.
pub(crate) fn worth_splitting(work: usize, min: usize) -> bool {
    work >= min && threads() > 1
}

/// The most threads a split uses (helpers are made on first use, up to this many less one).
pub(crate) const MAX_THREADS: usize = 64;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped for each split; a helper runs when it sees a new value.
    epoch: AtomicU64,
    /// The current split: its epoch, function, number of parts and of threads (while it runs).
    job: Mutex<Option<(u64, usize, usize, usize)>>,
    /// Parts finished by helpers in the current split.
    done: AtomicUsize,
    /// The current split's epoch (high 32 bits) and its next unclaimed part (low 32 bits):
    /// parts go to whichever thread claims them first, so a helper the OS has not scheduled
    /// (a busy machine) delays nothing: the caller takes its parts too.
    claim: AtomicU64,
    /// A helper's part panicked.
    panicked: AtomicBool,
}

struct Helper {
    thread: Thread,
    sleeping: Arc<AtomicBool>,
}

struct Team {
    shared: Arc<Shared>,
    helpers: Mutex<Vec<Helper>>,
    /// Held by the thread running a split: a second thread splitting at once runs serially.
    busy: Mutex<()>,
}

fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| Team {
        shared: Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            done: AtomicUsize::new(0),
            claim: AtomicU64::new(0),
            panicked: AtomicBool::new(false),
        }),
        helpers: Mutex::new(Vec::new()),
        busy: Mutex::new(()),
    })
}

fn helper_loop(index: usize, shared: Arc<Shared>, sleeping: Arc<AtomicBool>) {
    INSIDE.with(|c| c.set(true));
    // `checked`: the last epoch seen; `ran`: the last split looked at. Both start at 0 (epochs
    // start at 1), so a helper made for the split being started finds its job however late it
    // starts: the job is written before the epoch is bumped, and a split that needs this
    // helper cannot end without it.
    let (mut checked, mut ran) = (0u64, 0u64);
    loop {
        // Wait for the next split: spin a little, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = shared.epoch.load(Ordering::Acquire);
            if e != checked {
                checked = e;
                break;
            }
            spins += 1;
            if spins.is_multiple_of(64) && start.elapsed() > HELPER_SPIN {
                sleeping.store(true, Ordering::SeqCst);
                if shared.epoch.load(Ordering::SeqCst) == checked {
                    thread::park();
                }
                sleeping.store(false, Ordering::SeqCst);
                spins = 0;
            } else {
                std::hint::spin_loop();
            }
        }
        let job = *shared.job.lock().unwrap_or_else(|e| e.into_inner());
        let Some((epoch, ptr, parts, team)) = job else {
            continue;
        };
        if epoch <= ran {
            continue;
        }
        ran = epoch;
        if index < team {
            while let Some(i) = claim(&shared, epoch, parts) {
                // SAFETY: a part was claimed, so the split is not finished: its caller keeps
                // the function alive until `done` counts every part.
                let f: &(dyn Fn(usize) + Sync) = unsafe { &*decode(ptr) };
                if catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
                    shared.panicked.store(true, Ordering::SeqCst);
                }
                shared.done.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// The next unclaimed part of split `epoch`, if any is left.
fn claim(s: &Shared, epoch: u64, parts: usize) -> Option<usize> {
    let tag = (epoch & 0xffff_ffff) << 32;
    let mut v = s.claim.load(Ordering::Acquire);
    loop {
        let i = (v & 0xffff_ffff) as usize;
        if v & !0xffff_ffff != tag || i >= parts {
            return None;
        }
        match s
            .claim
            .compare_exchange_weak(v, v + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(i),
            Err(now) => v = now,
        }
    }
}

// A fat pointer does not fit one usize: keep it in a box whose address is stored.
fn encode(f: &(dyn Fn(usize) + Sync)) -> Box<Job> {
    let p: *const (dyn Fn(usize) + Sync + '_) = f;
    // SAFETY: only the lifetime is erased; `run` outlives every use of the pointer.
    Box::new(unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Job>(p) })
}

/// # Safety
/// `p` came from `Box::into_raw(encode(..))` and is still alive.
unsafe fn decode(p: usize) -> Job {
    *(p as *const Job)
}

/// Runs `f(0)`, ..., `f(parts - 1)` on up to [`threads`] threads at once, each thread
/// claiming the next part until none is left (the caller claims first, so it takes part 0);
/// returns when all are done. A panic in any part is resumed on the caller.
pub(crate) fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    let width = parts.min(threads());
    if width <= 1 {
        return serial(parts, f);
    }
    let t = team();
    // Poisoned (an earlier split panicked) is as good as free: the lock guards no data.
    let _busy = match t.busy.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return serial(parts, f),
    };
    {
        let mut helpers = t.helpers.lock().unwrap_or_else(|e| e.into_inner());
        while helpers.len() < width - 1 {
            let (shared, sleeping) = (t.shared.clone(), Arc::new(AtomicBool::new(false)));
            let index = helpers.len() + 1;
            let s2 = sleeping.clone();
            let spawned = thread::Builder::new()
                .name(format!("nndl-kernel-{index}"))
                .spawn(move || helper_loop(index, shared, s2));
            match spawned {
                Ok(h) => helpers.push(Helper {
                    thread: h.thread().clone(),
                    sleeping,
                }),
                Err(_) => break,
            }
        }
        if helpers.len() < width - 1 {
            drop(helpers);
            return serial(parts, f);
        }
    }
    let boxed = Box::into_raw(encode(f));
    let s = &t.shared;
    s.done.store(0, Ordering::SeqCst);
    let epoch = s.epoch.load(Ordering::SeqCst) + 1;
    s.claim.store((epoch & 0xffff_ffff) << 32, Ordering::SeqCst);
    *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some((epoch, boxed as usize, parts, width));
    s.epoch.store(epoch, Ordering::SeqCst);
    for h in t
        .helpers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .take(width - 1)
    {
        if h.sleeping.load(Ordering::SeqCst) {
            h.thread.unpark();
        }
    }
    let was = INSIDE.with(|c| c.replace(true));
    // Every claimed part is counted done, panicked or not: the function must outlive them all.
    let mut mine = Ok(());
    while let Some(i) = claim(s, epoch, parts) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(i))) {
            mine = Err(p);
        }
        s.done.fetch_add(1, Ordering::AcqRel);
    }
    INSIDE.with(|c| c.set(was));
    let start = Instant::now();
    let mut spins = 0u32;
    while s.done.load(Ordering::Acquire) < parts {
        spins += 1;
        if spins.is_multiple_of(64) && start.elapsed() > CALLER_SPIN {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
    // SAFETY: made by Box::into_raw above; every helper part has finished with it.
    drop(unsafe { Box::from_raw(boxed) });
    let helper_panicked = s.panicked.swap(false, Ordering::SeqCst);
    if let Err(p) = mine {
        resume_unwind(p);
    }
    if helper_panicked {
        panic!("a kernel thread panicked");
    }
}

/// A raw pointer the parts of a split share, each touching only its own elements.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);

// SAFETY: the parts of a split write disjoint elements (each use says why), and `run` does not
// return before every part has finished.
unsafe impl<T: Send> Sync for SyncPtr<T> {}
unsafe impl<T: Send> Send for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The pointer (a method, so that closures capture the wrapper, not the raw field).
    pub(crate) fn ptr(&self) -> *mut T {
        self.0
    }

    /// Elements `start..start + len` as a slice.
    ///
    /// # Safety
    /// They lie in the buffer the pointer came from, and no other part touches them meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice<'a>(&self, start: usize, len: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// Every part on this thread, as a parallel region (splits inside stay serial).
fn serial(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    let was = INSIDE.with(|c| c.replace(true));
    let r = catch_unwind(AssertUnwindSafe(|| (0..parts).for_each(f)));
    INSIDE.with(|c| c.set(was));
    if let Err(p) = r {
        resume_unwind(p);
    }
}

/// Runs `f(k, piece)` on every `chunk`-element piece `k` of `data` (the last may be shorter),
/// the pieces split in one contiguous run per thread of the kernels' team: per-item work
/// outside this crate that would otherwise leave the other threads idle between the ops
/// (filling an augmented mini-batch, image by image). Inside a split it runs serially.
///
/// ```
/// let mut v = vec![0usize; 10];
/// nndl_tensor::for_each_chunk(&mut v, 4, &|k, piece| piece.iter_mut().for_each(|x| *x = k));
/// assert_eq!(v, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]);
/// ```
pub fn for_each_chunk<T: Send>(data: &mut [T], chunk: usize, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let (chunk, len) = (chunk.max(1), data.len());
    let p = SyncPtr(data.as_mut_ptr());
    split(len.div_ceil(chunk), 1, &|_, lo, hi| {
        for k in lo..hi {
            let start = k * chunk;
            // SAFETY: the split's ranges of pieces are disjoint, and every piece lies in
            // `data`.
            f(k, unsafe { p.slice(start, chunk.min(len - start)) });
        }
    });
}

/// Runs `f(part, lo, hi)` on one contiguous range per thread covering `0..units`
/// (boundaries multiples of `granule`; at most [`MAX_THREADS`] parts).
pub(crate) fn split(units: usize, granule: usize, f: &(dyn Fn(usize, usize, usize) + Sync)) {
    let parts = threads();
    let g = granule.max(1);
    let per = units.div_ceil(parts).div_ceil(g) * g;
    if per >= units {
        f(0, 0, units);
        return;
    }
    let n = units.div_ceil(per);
    run(n, &|i| f(i, i * per, ((i + 1) * per).min(units)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_and_nested_splits_are_serial() {
        for parts in [1, 2, 3] {
            let hits: Vec<AtomicUsize> = (0..8).map(|_| AtomicUsize::new(0)).collect();
            let nested = AtomicUsize::new(0);
            with_threads(parts, || {
                for _ in 0..100 {
                    split(8, 1, &|_, lo, hi| {
                        if threads() == 1 {
                            nested.fetch_add(1, Ordering::Relaxed);
                        }
                        for h in &hits[lo..hi] {
                            h.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 100));
            let want = 100 * 8usize.div_ceil(8usize.div_ceil(parts));
            assert_eq!(nested.load(Ordering::Relaxed), want, "{parts} threads");
        }
    }

    #[test]
    fn more_parts_than_threads_each_run_once() {
        for threads in [1, 2] {
            let hits: Vec<AtomicUsize> = (0..7).map(|_| AtomicUsize::new(0)).collect();
            with_threads(threads, || {
                run(7, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                })
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "{threads}"
            );
        }
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_and_the_team_still_works() {
        let r = std::panic::catch_unwind(|| {
            with_threads(2, || run(2, &|i| assert!(i != 1, "part one fails")));
        });
        assert!(r.is_err());
        let sum = AtomicUsize::new(0);
        with_threads(2, || {
            run(2, &|i| {
                sum.fetch_add(i + 1, Ordering::Relaxed);
            })
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3);
    }
}
