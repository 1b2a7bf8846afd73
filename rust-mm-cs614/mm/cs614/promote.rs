//@ promotion
// SPDX-License-Identifier: GPL-2.0

//! Huge page promotion: `IOCTL_PROMOTE_VMA` and `/sys/kernel/kobject_cs614/promote`.
//!
//! `IOCTL_PROMOTE_VMA` registers the caller's mm. Writing `1` to the flag asks the one promotion
//! thread, `cs614_promote`, for a round: for each registered mm it asks khugepaged's collapse
//! code, through `CollapseControl::collapse_populated_pmd`, to turn every 2 MiB-aligned range
//! inside a private anonymous VMA whose 512 pages are all present into a PMD-mapped huge page.
//! The flag reads `1` from the request until the round is over.
//!
//! A registered mm also has `MMF_CS614_DEMOTE` set, which makes a VMA split demote the huge page
//! it cuts (see `cs614_vma_split()` in `mm/vma.h`).
//!
//! Locking, outermost first: a file's [`Registrations`], [`THREAD`], [`REGISTRY`]. The thread
//! takes only [`REGISTRY`], briefly, to copy the list of mms, and then each mm's mmap lock
//! through the collapse, never while holding [`REGISTRY`], and, to sleep, the lock of its
//! [`Wake`], which it holds only to check for work and which it drops while it sleeps; so
//! stopping the thread with [`THREAD`] held cannot deadlock. An mm is registered by reference to
//! the `mm_struct` (`mmgrab`), not to its address space: a round takes `mmget_not_zero` for the
//! time it works on it, so an exiting process is never kept alive by a registration, only by a
//! round in progress.

use crate::{
    mm_ext::{
        self,
        CollapseControl,
        MmapReadGuardExt, //
    },
    stats,
    trace, //
};
use core::fmt;
use kernel::{
    bindings,
    current,
    kthread::{
        KThread,
        KThreadContext, //
    },
    mm::{
        self,
        Mm,
        MmWithUser, //
    },
    new_condvar,
    new_mutex,
    pr_warn_once,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Acquire,
            Atomic,
            Full,
            Relaxed,
            Release, //
        },
        global_lock,
        Arc,
        CondVar,
        Mutex, //
    },
    task::Pid,
    time::{
        Instant,
        Monotonic, //
    }, //
};

/// The size of a PMD-mapped huge page.
pub(crate) const HPAGE_SIZE: usize = 1 << bindings::HPAGE_PMD_SHIFT;

/// The bounds of the 2 MiB-aligned ranges lying entirely inside `start..end`, if there is one.
pub(crate) fn huge_bounds(start: usize, end: usize) -> Option<(usize, usize)> {
    let first = start.checked_next_multiple_of(HPAGE_SIZE)?;
    let last = end / HPAGE_SIZE * HPAGE_SIZE;
    (first < last).then_some((first, last))
}
//@ compaction

/// Promotes, now and in the caller's context, the fully populated 2 MiB-aligned ranges inside
/// `start..end` of `mm`; returns how many became a huge page. A range that cannot be promoted
/// is left as it is, as are all of them if no collapse context can be allocated. Compaction uses
/// it for its new populated front.
///
/// Freshly faulted pages sit in per-CPU caches, off the LRU, until drained. The caller may be
/// any user: this CPU's caches are drained, and every CPU's (which queues work on each) only if
/// a range then fails on a page that may still be in another CPU's, once, before those ranges
/// are tried again.
pub(crate) fn promote_now(mm: &MmWithUser, start: usize, end: usize) -> usize {
    let Some((first, last)) = huge_bounds(start, end) else {
        return 0;
    };
    let Ok(mut cc) = CollapseControl::new() else {
        return 0;
    };
    mm_ext::lru_add_drain_local();
    let mut promoted = 0;
    // The first and the last range that failed on a page in a cache, if one did.
    let mut retry: Option<(usize, usize)> = None;
    for addr in (first..last).step_by(HPAGE_SIZE) {
        match cc.collapse_populated_pmd(mm, addr) {
            PROMOTED => promoted += 1,
            PAGE_BUSY | PAGE_PINNED => retry = Some((retry.map_or(addr, |r| r.0), addr)),
            _ => (),
        }
    }
    if let Some((from, to)) = retry {
        mm::lru_add_drain_all();
        // Those in between that were promoted are already huge: they are skipped at once.
        promoted += (from..=to)
            .step_by(HPAGE_SIZE)
            .filter(|&addr| cc.collapse_populated_pmd(mm, addr) == PROMOTED)
            .count();
    }
    promoted
}
//@ end

/// `enum cs614_promote_result`: the range became a huge page.
const PROMOTED: u32 = bindings::cs614_promote_result_CS614_PROMOTED;
//@ compaction
/// `enum cs614_promote_result`: a page was locked or off the LRU, maybe in a per-CPU cache.
const PAGE_BUSY: u32 = bindings::cs614_promote_result_CS614_PAGE_BUSY;
/// `enum cs614_promote_result`: a page had a reference too many, maybe a per-CPU cache's.
const PAGE_PINNED: u32 = bindings::cs614_promote_result_CS614_PAGE_PINNED;
//@ end

/// A round was requested and has not started yet.
const ROUND_REQUESTED: u32 = 1 << 0;
/// A round was requested and has not ended yet: the value of the sysfs flag.
const ROUND_PENDING: u32 = 1 << 1;

/// The state of promotion rounds, a combination of `ROUND_*` bits.
static ROUND: Atomic<u32> = Atomic::new(0);

/// Sets `ROUND` to `f` of its value, atomically (a full barrier); returns the old value.
fn round_update(f: impl Fn(u32) -> u32) -> u32 {
    let mut old = ROUND.load(Relaxed);
    loop {
        match ROUND.cmpxchg(old, f(old), Full) {
            Ok(_) => return old,
            Err(now) => old = now,
        }
    }
}

/// An mm registered for promotion by at least one file.
struct Registered {
    /// Names the registration in the files that made it; ascending in [`Registry::entries`].
    id: u64,
    mm: ARef<Mm>,
    /// The thread group of the process that registered it first.
    pid: Pid,
    /// How many files registered it.
    files: usize,
}

/// The registered mms.
///
/// # Invariants
///
/// `entries` is sorted by `id`, which are unique and below `next_id`, and has room for
/// `reserved` more entries.
///
/// `armed` holds one address of `mm_struct` per [`PendingRegistration`] armed and not yet
/// committed or cancelled, so at most `reserved`, and has room for `reserved`.
struct Registry {
    entries: KVec<Registered>,
    /// Registrations prepared and not yet committed or cancelled.
    reserved: usize,
    /// The mms of the armed pending registrations, by address, once per registration: their
    /// `MMF_CS614_DEMOTE` stays set while one is armed, whatever becomes of `entries`.
    armed: KVec<usize>,
    next_id: u64,
}

impl Registry {
    /// Drops the mms whose processes have exited: a round has nothing to do in them, and only
    /// their files' release would drop them otherwise. The registry so holds the live mms
    /// registered, and those that exited since the last registration or round.
    fn prune(&mut self) {
        self.entries.retain(|r| r.mm.has_users());
    }

    /// Whether the registration `id` is still in the registry.
    fn holds(id: u64) -> bool {
        REGISTRY
            .lock()
            .entries
            .binary_search_by_key(&id, |r| r.id)
            .is_ok()
    }

    /// Whether splits in `mm` must still demote: `mm` is registered, or a pending registration
    /// of it is armed.
    fn demotes(&self, mm: usize) -> bool {
        self.entries.iter().any(|r| r.mm.as_raw() as usize == mm) || self.armed.contains(&mm)
    }

    /// Forgets one armed pending registration of `mm`.
    fn disarm(&mut self, mm: usize) {
        if let Some(at) = self.armed.iter().position(|&a| a == mm) {
            // In bounds: `position` found it.
            let _ = self.armed.remove(at);
        }
    }

    /// Whether nothing is registered and nothing is about to be.
    fn is_idle(&self) -> bool {
        self.entries.is_empty() && self.reserved == 0
    }
}

global_lock! {
    // SAFETY: Initialized by `init` from the module initializer, before any other use.
    unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry {
        entries: KVec::new(),
        reserved: 0,
        armed: KVec::new(),
        next_id: 0,
    };
}

global_lock! {
    // SAFETY: Initialized by `init` from the module initializer, before any other use.
    unsafe(uninit) static THREAD: Mutex<Option<PromoteThread>> = None;
}

/// What the promotion thread sleeps on: a round requested (`ROUND_REQUESTED`), or a stop.
#[pin_data]
struct Wake {
    /// Whether the thread must return; set by [`PromoteThread`]'s drop.
    #[pin]
    stop: Mutex<bool>,
    #[pin]
    cv: CondVar,
}

/// The promotion thread, `cs614_promote`, and what it sleeps on.
struct PromoteThread {
    wake: Arc<Wake>,
    /// Stopped and reaped when dropped, after [`PromoteThread`]'s drop has woken it to return.
    _thread: KThread,
}

impl PromoteThread {
    /// Starts the thread, which sleeps until a round is requested.
    fn start() -> Result<Self> {
        let wake = Arc::pin_init(
            pin_init!(Wake {
                stop <- new_mutex!(false, "cs614::Wake::stop"),
                cv <- new_condvar!("cs614::Wake::cv"),
            }),
            GFP_KERNEL,
        )?;
        let theirs = wake.clone();
        let thread = KThread::run(c"cs614_promote", GFP_KERNEL, move |ctx| {
            promote_thread(ctx, &theirs)
        })?;
        Ok(Self {
            wake,
            _thread: thread,
        })
    }

    /// Wakes the thread up for a round that `ROUND_REQUESTED` asks for.
    fn kick(&self) {
        // Taken once the bit is set: a thread that found it clear is queued on `cv` by now.
        drop(self.wake.stop.lock());
        self.wake.cv.notify_one();
    }
}

impl Drop for PromoteThread {
    /// Stops the thread: wakes it up to return, then `self._thread`'s drop waits for that.
    fn drop(&mut self) {
        *self.wake.stop.lock() = true;
        self.wake.cv.notify_one();
    }
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
    ROUND.load(Acquire) & ROUND_PENDING != 0
}

/// Asks the promotion thread for a round.
///
/// Without a registered mm there is no thread and nothing to promote: the request is complete at
/// once and the flag stays `0`.
pub(crate) fn request_round() {
    let thread = THREAD.lock();
    if let Some(thread) = thread.as_ref() {
        round_update(|r| r | ROUND_REQUESTED | ROUND_PENDING);
        thread.kick();
    }
}

/// Writes the registry, one line per registered mm, for debugfs.
pub(crate) fn show_registry(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let registry = REGISTRY.lock();
    for r in registry.entries.iter() {
        let state = if r.mm.has_users() { "live" } else { "exited" };
        writeln!(
            f,
            "id={} pid={} files={} state={}",
            r.id, r.pid, r.files, state
        )?;
    }
    Ok(())
}

/// The registrations one file of `/dev/cs614` made, by id.
///
/// # Invariants
///
/// `ids` is ascending, and has room for `reserved` more ids.
struct FileIds {
    ids: KVec<u64>,
    reserved: usize,
}

/// The mms one file of `/dev/cs614` registered.
#[pin_data(PinnedDrop)]
pub(crate) struct Registrations {
    #[pin]
    mine: Mutex<FileIds>,
}

impl Registrations {
    /// Creates an empty set of registrations.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            mine <- new_mutex!(
                FileIds {
                    ids: KVec::new(),
                    reserved: 0,
                },
                "cs614::Registrations::mine"
            ),
        })
    }

    /// Registers `mm` for promotion, and starts the promotion thread if it is not running.
    ///
    /// Registering an mm this file already registered does nothing.
    pub(crate) fn register(&self, mm: &Mm) -> Result {
        self.prepare(mm)?.commit();
        Ok(())
    }

    /// Prepares the registration of `mm`: allocates what it needs and starts the promotion
    /// thread, so that [`PendingRegistration::commit`] cannot fail. Dropping the result instead
    /// registers nothing.
    pub(crate) fn prepare(&self, mm: &Mm) -> Result<PendingRegistration<'_>> {
        let mut mine = self.mine.lock();
        let mut thread = THREAD.lock();
        let mut registry = REGISTRY.lock();
        let registry = &mut *registry;
        let mine = &mut *mine;
        // Allocated first: a failure changes nothing, and leaves the thread as it found it.
        mine.ids.reserve(mine.reserved + 1, GFP_KERNEL)?;
        registry
            .entries
            .reserve(registry.reserved + 1, GFP_KERNEL)?;
        registry.armed.reserve(
            (registry.reserved + 1).saturating_sub(registry.armed.len()),
            GFP_KERNEL,
        )?;
        registry.prune();
        // Forget the registrations of this file that were pruned.
        mine.ids
            .retain(|id| registry.entries.binary_search_by_key(id, |r| r.id).is_ok());
        if thread.is_none() {
            // The new thread sleeps until a round is requested, which needs `THREAD`.
            *thread = Some(PromoteThread::start()?);
        }
        // INVARIANT: All three have room for one more.
        mine.reserved += 1;
        registry.reserved += 1;
        Ok(PendingRegistration {
            file: self,
            mm: mm.into(),
            pid: current!().tgid(),
            done: false,
            armed: false,
        })
    }
}

/// A registration prepared by [`Registrations::prepare`], made by
/// [`PendingRegistration::commit`] or cancelled when dropped.
pub(crate) struct PendingRegistration<'a> {
    file: &'a Registrations,
    mm: ARef<Mm>,
    pid: Pid,
    /// Committed or cancelled: the reservation is given back.
    done: bool,
    /// The mm's flag was set before the commit, and counted in the registry's `armed`.
    armed: bool,
}

impl PendingRegistration<'_> {
    //@ compaction
    /// Makes VMA splits in the mm demote from now on, before the registration is committed:
    /// a huge page made before [`PendingRegistration::commit`] is demoted by a split that
    /// another thread makes meanwhile. Until then, neither the release of a file that
    /// registered the mm nor another pending registration of it clears the flag; dropping this
    /// one instead clears it unless the mm is registered or armed by another.
    pub(crate) fn arm_demotion(&mut self) {
        if self.armed {
            return;
        }
        let mut registry = REGISTRY.lock();
        // Room was reserved by `prepare`, and no allocation is made under the lock.
        if registry
            .armed
            .push_within_capacity(self.mm.as_raw() as usize)
            .is_ok()
        {
            self.armed = true;
        }
        // Set even if not counted (it cannot fail): a flag left set only demotes more.
        mm_ext::set_demote_on_split(&self.mm, true);
    }

    //@ end
    /// Registers the mm; cannot fail.
    pub(crate) fn commit(mut self) {
        let mut mine = self.file.mine.lock();
        let mut registry = REGISTRY.lock();
        let registry = &mut *registry;
        mine.reserved -= 1;
        registry.reserved -= 1;
        self.done = true;
        let raw = self.mm.as_raw();
        if self.armed {
            // The entry found or made below keeps the flag set from now on.
            registry.disarm(raw as usize);
        }
        let id = match registry.entries.iter_mut().find(|r| r.mm.as_raw() == raw) {
            Some(r) if mine.ids.binary_search(&r.id).is_ok() => return,
            Some(r) => {
                r.files += 1;
                r.id
            }
            None => {
                let id = registry.next_id;
                registry.next_id += 1;
                mm_ext::set_demote_on_split(&self.mm, true);
                let entry = Registered {
                    id,
                    mm: self.mm.clone(),
                    pid: self.pid,
                    files: 1,
                };
                // Cannot fail: room was reserved by `prepare`.
                if registry.entries.push_within_capacity(entry).is_err() {
                    return;
                }
                id
            }
        };
        // Ids only grow, but an older one may be added after a newer one: keep them sorted.
        let at = mine.ids.binary_search(&id).unwrap_or_else(|at| at);
        if mine.ids.push_within_capacity(id).is_ok() {
            if let Some(tail) = mine.ids.get_mut(at..) {
                tail.rotate_right(1);
            }
        }
    }
}

impl Drop for PendingRegistration<'_> {
    /// Gives the reservation of a registration that was not committed back.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut mine = self.file.mine.lock();
        let mut thread = THREAD.lock();
        let mut registry = REGISTRY.lock();
        mine.reserved -= 1;
        registry.reserved -= 1;
        if self.armed {
            let raw = self.mm.as_raw() as usize;
            registry.disarm(raw);
            if !registry.demotes(raw) {
                mm_ext::set_demote_on_split(&self.mm, false);
            }
        }
        if registry.is_idle() {
            drop(registry);
            // Stops the thread, which it may have started for nothing.
            drop(thread.take());
            ROUND.store(0, Release);
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Registrations {
    /// Unregisters the mms of a file being released, and stops the promotion thread if no mm is
    /// left.
    fn drop(self: Pin<&mut Self>) {
        let mine = core::mem::take(&mut self.mine.lock().ids);
        if mine.is_empty() {
            return;
        }

        let mut thread = THREAD.lock();
        let idle = {
            let mut registry = REGISTRY.lock();
            let registry = &mut *registry;
            let armed = &registry.armed;
            registry.entries.retain(|r| {
                if mine.binary_search(&r.id).is_ok() {
                    r.files -= 1;
                }
                // A pending registration armed meanwhile keeps demotion on.
                if r.files == 0 && !armed.contains(&(r.mm.as_raw() as usize)) {
                    mm_ext::set_demote_on_split(&r.mm, false);
                }
                r.files != 0
            });
            registry.prune();
            registry.is_idle()
        };
        if idle {
            // Stops the thread and waits for it; it does not take `THREAD`. A round it was
            // running is over: nothing is registered.
            drop(thread.take());
            ROUND.store(0, Release);
        }
    }
}

/// The promotion thread: one round per request, until stopped.
fn promote_thread(ctx: &KThreadContext, wake: &Wake) {
    while wait_for_round(wake) {
        round_update(|r| r & !ROUND_REQUESTED);
        let start = Instant::<Monotonic>::now();
        let round = run_round(ctx);
        trace::trace_round_end(
            round.mms,
            round.examined,
            round.promoted,
            start.elapsed().as_nanos().try_into().unwrap_or(0),
        );
        stats::ROUNDS.add(1);
        stats::ROUND_MMS.add(round.mms);
        // The round is over unless another one was requested meanwhile.
        let _ = ROUND.cmpxchg(ROUND_PENDING, 0, Full);
    }
}

/// Sleeps until a round is requested: `true`; or until the thread must stop: `false`.
fn wait_for_round(wake: &Wake) -> bool {
    let mut stop = wake.stop.lock();
    while !*stop && ROUND.load(Acquire) & ROUND_REQUESTED == 0 {
        // A kernel thread takes no signals: there is none to check for.
        let _ = wake.cv.wait_interruptible(&mut stop);
    }
    !*stop
}

/// What a round did.
#[derive(Default)]
struct RoundStats {
    /// The mms visited.
    mms: usize,
    /// The 2 MiB ranges examined: those with a page table.
    examined: usize,
    /// The ranges that became huge pages.
    promoted: usize,
}

/// Promotes every eligible range of every registered mm.
fn run_round(ctx: &KThreadContext) -> RoundStats {
    let mut round = RoundStats::default();
    let mms = {
        let mut registry = REGISTRY.lock();
        registry.prune();
        let mut mms = KVec::new();
        trace::trace_round_start(registry.entries.len());
        if mms.reserve(registry.entries.len(), GFP_KERNEL).is_err() {
            pr_warn_once!("no memory for a promotion round\n");
            return round;
        }
        for r in registry.entries.iter() {
            let entry = (r.mm.clone(), r.pid, r.id);
            // Cannot fail: the capacity is reserved.
            if mms.push_within_capacity(entry).is_err() {
                break;
            }
        }
        mms
    };

    let Ok(mut cc) = CollapseControl::new() else {
        pr_warn_once!("no memory for a promotion round\n");
        return round;
    };
    mm::lru_add_drain_all();
    for (mm, pid, id) in mms.iter() {
        if ctx.should_stop() {
            break;
        }
        // An mm whose process has exited is skipped; its file is released soon.
        if let Some(mm) = mm.mmget_not_zero() {
            round.mms += 1;
            promote_mm(ctx, &mm, *pid, *id, &mut cc, &mut round);
        }
    }
    round
}

/// How many candidate ranges one hold of the mmap read lock collects at most.
const CANDIDATE_BATCH: usize = 32;

/// How much address space one hold of the mmap read lock walks at most: 1 TiB, a few thousand
/// page table entries when it is empty.
const WALK_SPAN: usize = 1 << 40;

/// The low bits of an entry of [`next_candidates`]: its `enum cs614_promote_result`.
const RESULT_MASK: usize = HPAGE_SIZE - 1;

/// Collects into `out`, from `from` on, the 2 MiB ranges of `mm` that a round examines: those
/// inside a private anonymous VMA that a page table maps. Each entry is the range's address
/// with, in its low bits ([`RESULT_MASK`]), `PROMOTED` if its PTE table is full, so that the
/// collapse should be asked, else why not (`enum cs614_promote_result`); every range of a
/// `VM_NOHUGEPAGE` VMA has `CS614_VMA_NOHUGEPAGE`.
///
/// Returns how many it found and where to go on, `None` once `mm` is done. Missing page tables
/// are skipped at the level they are missing at, so the cost follows the populated memory, not
/// the reserved address space; the lock is held for at most [`WALK_SPAN`] of address space or
/// [`CANDIDATE_BATCH`] candidates.
fn next_candidates(
    mm: &MmWithUser,
    from: usize,
    out: &mut [usize; CANDIDATE_BATCH],
) -> (usize, Option<usize>) {
    let guard = mm.mmap_read_lock();
    let stop = from.saturating_add(WALK_SPAN) / HPAGE_SIZE * HPAGE_SIZE;
    let mut found = 0;
    for vma in guard.vmas_from(from) {
        if vma.start() >= stop {
            return (found, Some(stop));
        }
        // Private anonymous memory only; the collapse checks again, with the lock it takes.
        if !vma.is_anonymous() {
            continue;
        }
        let nohugepage = vma.flags() & mm::virt::flags::NOHUGEPAGE != 0;
        let end = vma.end().min(stop);
        let Some((start, end)) = huge_bounds(vma.start().max(from), end) else {
            if vma.end() > stop {
                return (found, Some(stop));
            }
            continue;
        };
        let Some(room) = out.get_mut(found..) else {
            return (found, Some(start));
        };
        match guard.full_pte_tables(vma, start, end, room) {
            Ok((n, next)) => {
                if nohugepage {
                    for entry in room.iter_mut().take(n) {
                        *entry = (*entry & !RESULT_MASK) | NOHUGEPAGE as usize;
                    }
                }
                found += n;
                if next < end {
                    return (found, Some(next));
                }
            }
            Err(_) => continue,
        }
        if vma.end() > stop {
            return (found, Some(stop));
        }
    }
    (found, None)
}

/// `enum cs614_promote_result`: the range is in a `VM_NOHUGEPAGE` VMA.
const NOHUGEPAGE: u32 = bindings::cs614_promote_result_CS614_VMA_NOHUGEPAGE;

/// Promotes the eligible ranges of `mm`, which `pid` registered as registration `id`, a batch at
/// a time; traces and counts each range examined. Stops before a collapse once `id` is gone
/// from the registry (its files were closed during the round).
///
/// The mmap lock is dropped between batches and for each collapse, so the VMAs may change
/// meanwhile: each range is checked again by the collapse.
fn promote_mm(
    ctx: &KThreadContext,
    mm: &MmWithUser,
    pid: Pid,
    id: u64,
    cc: &mut CollapseControl,
    round: &mut RoundStats,
) {
    let mut from = 0;
    let mut batch = [0usize; CANDIDATE_BATCH];
    loop {
        if ctx.should_stop() {
            return;
        }
        let (count, next) = next_candidates(mm, from, &mut batch);
        for &entry in batch.iter().take(count) {
            if ctx.should_stop() {
                return;
            }
            let addr = entry & !RESULT_MASK;
            let mut result = (entry & RESULT_MASK) as u32;
            if result == PROMOTED {
                // Its files closed since the round began: it is no longer promoted, nor
                // demoted, so no huge page is made in it.
                if !Registry::holds(id) {
                    return;
                }
                result = cc.collapse_populated_pmd(mm, addr);
            }
            round.examined += 1;
            round.promoted += usize::from(result == PROMOTED);
            trace::trace_promote_range(pid, addr, result);
            stats::count_promote_result(result);
        }
        match next {
            Some(next) => from = next,
            None => return,
        }
    }
}
//@ end
