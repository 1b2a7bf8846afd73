// SPDX-License-Identifier: GPL-2.0

//! Huge page promotion: `IOCTL_PROMOTE_VMA` and `/sys/kernel/kobject_cs614/promote`.
//!
//! `IOCTL_PROMOTE_VMA` registers the caller's mm. Writing `1` to the flag asks the one promotion
//! thread, `cs614_promote`, for a round: for each registered mm it asks khugepaged's collapse
//! code, through `MmWithUser::collapse_populated_pmd`, to turn every 2 MiB-aligned range inside
//! a private anonymous VMA whose 512 pages are all present into a PMD-mapped huge page. The flag
//! reads `1` from the request until the round is over.
//!
//! A registered mm also has `MMF_CS614_DEMOTE` set, which makes a VMA split demote the huge page
//! it cuts (see `cs614_vma_split()` in `include/linux/cs614.h`).
//!
//! Locking, outermost first: a file's [`Registrations`], [`THREAD`], [`REGISTRY`]. The thread
//! takes only [`REGISTRY`], briefly, to copy the list of mms, and then each mm's mmap lock
//! through the collapse, never while holding [`REGISTRY`]; so stopping the thread with
//! [`THREAD`] held cannot deadlock. An mm is registered by reference to the `mm_struct`
//! (`mmgrab`), not to its address space: a round takes `mmget_not_zero` for the time it works on
//! it, so an exiting process is never kept alive by a registration, only by a round in progress.

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::{
    bindings,
    kthread::{KThread, KThreadContext},
    mm::{self, Mm, MmWithUser},
    new_mutex,
    prelude::*,
    sync::{aref::ARef, global_lock, Mutex},
};

/// The size of a PMD-mapped huge page.
pub(crate) const HPAGE_SIZE: usize = 1 << bindings::HPAGE_PMD_SHIFT;

/// The bounds of the 2 MiB-aligned ranges lying entirely inside `start..end`, if there is one.
fn huge_bounds(start: usize, end: usize) -> Option<(usize, usize)> {
    let first = start.checked_next_multiple_of(HPAGE_SIZE)?;
    let last = end / HPAGE_SIZE * HPAGE_SIZE;
    (first < last).then_some((first, last))
}

/// Promotes, now and in the caller's context, the fully populated 2 MiB-aligned ranges inside
/// `start..end` of `mm`; returns whether any became a huge page. A range that cannot be
/// promoted is left as it is. Compaction uses it for its new populated front.
pub(crate) fn promote_now(mm: &MmWithUser, start: usize, end: usize) -> bool {
    let Some((first, last)) = huge_bounds(start, end) else {
        return false;
    };
    // Freshly faulted pages sit in per-CPU caches, off the LRU, until drained.
    mm::lru_add_drain_all();
    let mut promoted = false;
    for addr in (first..last).step_by(HPAGE_SIZE) {
        promoted |= mm.collapse_populated_pmd(addr).unwrap_or(false);
    }
    promoted
}

/// A round was requested and has not started yet.
const ROUND_REQUESTED: u8 = 1 << 0;
/// A round was requested and has not ended yet: the value of the sysfs flag.
const ROUND_PENDING: u8 = 1 << 1;

/// The state of promotion rounds, a combination of `ROUND_*` bits.
static ROUND: AtomicU8 = AtomicU8::new(0);

/// An mm registered for promotion by at least one file.
struct Registered {
    mm: ARef<Mm>,
    /// How many files registered it.
    files: usize,
}

global_lock! {
    // SAFETY: Initialized by `init` from the module initializer, before any other use.
    unsafe(uninit) static REGISTRY: Mutex<KVec<Registered>> = KVec::new();
}

global_lock! {
    // SAFETY: Initialized by `init` from the module initializer, before any other use.
    unsafe(uninit) static THREAD: Mutex<Option<KThread>> = None;
}

/// Initializes the global locks of this module.
///
/// # Safety
///
/// Must be called once, before any other function of this module.
pub(crate) unsafe fn init() {
    // SAFETY: Called once, before any use, by the safety requirements.
    unsafe {
        REGISTRY.init();
        THREAD.init();
    }
}

/// Returns whether a promotion round is pending, the value of the sysfs flag.
pub(crate) fn round_pending() -> bool {
    ROUND.load(Ordering::Acquire) & ROUND_PENDING != 0
}

/// Asks the promotion thread for a round.
///
/// Without a registered mm there is no thread and nothing to promote: the request is complete at
/// once and the flag stays `0`.
pub(crate) fn request_round() {
    let thread = THREAD.lock();
    if let Some(thread) = thread.as_ref() {
        ROUND.fetch_or(ROUND_REQUESTED | ROUND_PENDING, Ordering::AcqRel);
        thread.task().wake_up();
    }
}

/// The mms one file of `/dev/cs614` registered.
#[pin_data(PinnedDrop)]
pub(crate) struct Registrations {
    #[pin]
    mms: Mutex<KVec<ARef<Mm>>>,
}

impl Registrations {
    /// Creates an empty set of registrations.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            mms <- new_mutex!(KVec::new(), "cs614::Registrations::mms"),
        })
    }

    /// Registers `mm` for promotion, and starts the promotion thread if it is not running.
    ///
    /// Registering an mm this file already registered does nothing.
    pub(crate) fn register(&self, mm: &Mm) -> Result {
        let mut mine = self.mms.lock();
        if mine.iter().any(|m| m.as_raw() == mm.as_raw()) {
            return Ok(());
        }
        mine.reserve(1, GFP_KERNEL)?;

        let mut thread = THREAD.lock();
        let mut registry = REGISTRY.lock();
        registry.reserve(1, GFP_KERNEL)?;
        if thread.is_none() {
            // The new thread sleeps until a round is requested, which needs `THREAD`.
            *thread = Some(KThread::run(c"cs614_promote", GFP_KERNEL, promote_thread)?);
        }
        match registry.iter_mut().find(|r| r.mm.as_raw() == mm.as_raw()) {
            Some(r) => r.files += 1,
            None => {
                mm.set_demote_on_split(true);
                // Cannot fail: the capacity is reserved.
                let _ = registry.push(
                    Registered {
                        mm: mm.into(),
                        files: 1,
                    },
                    GFP_NOWAIT,
                );
            }
        }
        // Cannot fail: the capacity is reserved.
        let _ = mine.push(mm.into(), GFP_NOWAIT);
        Ok(())
    }
}

#[pinned_drop]
impl PinnedDrop for Registrations {
    /// Unregisters the mms of a file being released, and stops the promotion thread if no mm is
    /// left.
    fn drop(self: Pin<&mut Self>) {
        let mine = core::mem::take(&mut *self.mms.lock());
        if mine.is_empty() {
            return;
        }

        let mut thread = THREAD.lock();
        let empty = {
            let mut registry = REGISTRY.lock();
            registry.retain(|r| {
                if mine.iter().any(|m| m.as_raw() == r.mm.as_raw()) {
                    r.files -= 1;
                }
                if r.files == 0 {
                    r.mm.set_demote_on_split(false);
                }
                r.files != 0
            });
            registry.is_empty()
        };
        if empty {
            // Stops the thread and waits for it; it does not take `THREAD`. A round it was
            // running is over: nothing is registered.
            drop(thread.take());
            ROUND.store(0, Ordering::Release);
        }
    }
}

/// The promotion thread: one round per request, until stopped.
fn promote_thread(ctx: &KThreadContext) {
    while ctx.sleep_until(|| ROUND.load(Ordering::Acquire) & ROUND_REQUESTED != 0) {
        ROUND.fetch_and(!ROUND_REQUESTED, Ordering::AcqRel);
        let stats = run_round(ctx);
        pr_debug!(
            "cs614: promoted {} huge pages in {} mms ({} busy, {} failed)\n",
            stats.promoted,
            stats.mms,
            stats.busy,
            stats.failed
        );
        // The round is over unless another one was requested meanwhile.
        let _ = ROUND.compare_exchange(ROUND_PENDING, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// What a round did.
#[derive(Default)]
struct RoundStats {
    mms: usize,
    promoted: usize,
    busy: usize,
    failed: usize,
}

/// Promotes every eligible range of every registered mm.
fn run_round(ctx: &KThreadContext) -> RoundStats {
    let mut stats = RoundStats::default();
    let mms = {
        let registry = REGISTRY.lock();
        let mut mms = KVec::new();
        if mms.reserve(registry.len(), GFP_KERNEL).is_err() {
            pr_warn!("cs614: no memory for a promotion round\n");
            return stats;
        }
        for r in registry.iter() {
            // Cannot fail: the capacity is reserved.
            let _ = mms.push(r.mm.clone(), GFP_NOWAIT);
        }
        mms
    };

    mm::lru_add_drain_all();
    for mm in mms.iter() {
        if ctx.should_stop() {
            break;
        }
        // An mm whose process has exited is skipped; its file is released soon.
        if let Some(mm) = mm.mmget_not_zero() {
            stats.mms += 1;
            promote_mm(ctx, &mm, &mut stats);
        }
    }
    stats
}

/// Returns the 2 MiB-aligned ranges at or above `from` that lie inside the next VMA eligible for
/// promotion, as `(start, end)`.
fn next_candidate(mm: &MmWithUser, from: usize) -> Option<(usize, usize)> {
    let guard = mm.mmap_read_lock();
    guard.vmas_from(from).find_map(|vma| {
        // Private anonymous memory only; the collapse checks again, with the lock it takes.
        if !vma.is_anonymous() || vma.flags() & mm::virt::flags::NOHUGEPAGE != 0 {
            return None;
        }
        huge_bounds(vma.start().max(from), vma.end())
    })
}

/// Promotes the eligible ranges of `mm`, one at a time.
///
/// The mmap lock is dropped between ranges, so the VMAs may change meanwhile: each range is
/// checked again by the collapse.
fn promote_mm(ctx: &KThreadContext, mm: &MmWithUser, stats: &mut RoundStats) {
    let mut from = 0;
    while let Some((start, end)) = next_candidate(mm, from) {
        for addr in (start..end).step_by(HPAGE_SIZE) {
            if ctx.should_stop() {
                return;
            }
            match mm.collapse_populated_pmd(addr) {
                Ok(true) => stats.promoted += 1,
                Ok(false) => {}
                Err(e) if e == EAGAIN => stats.busy += 1,
                Err(_) => stats.failed += 1,
            }
        }
        from = end;
    }
}
