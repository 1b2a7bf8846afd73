//@ compaction
// SPDX-License-Identifier: GPL-2.0

//! Compacting a VMA range: `IOCTL_COMPACT_VMA`.
//!
//! The populated pages of the range move, in ascending order, to its front; the holes end up at
//! its back. Pages move by their page table entries (`GupFastFenceExt::pack_anon_pages`: the
//! machinery of `UFFDIO_MOVE`, batched per page table), never by copy.
//!
//! The call either does all of its work or changes nothing (but for a fatal signal, which kills
//! the caller midway). Everything that can fail does so before the first move:
//!
//! - the user's table is pinned before the mmap lock is taken, so that writing it afterwards
//!   cannot fault; the registration for demotion is prepared then too;
//! - under the mmap write lock, the vma is write-locked and GUP-fast fenced off the mm, so that
//!   no fault (per-vma lock included), madvise, userfaultfd operation, second compaction or new
//!   pin changes the range from the walk that collects the populated pages to the last move;
//! - the walk refuses every page that cannot move (shared, pinned, owned by a device,
//!   poisoned); the large folios that must move are split and the destination's page tables
//!   allocated before any page moves.
//!
//! Then every 2 MiB-aligned range of the new populated front is promoted to a huge page with
//! part 2's collapse, and the old→new table is written through the pinned pages.
//!
//! Memory: the original indices of the populated pages (4 bytes each) are kept in one
//! `kvmalloc` vector; nothing is proportional to the holes. The page tables of the holes are not
//! visited either: `populated_pages` skips missing page tables at the level they are missing.

use crate::{
    mm_ext::{
        self,
        GupFastFenceExt,
        PackedMove,
        POPULATED_LARGE, //
    },
    promote::{
        self,
        PendingRegistration, //
    },
    trace::CompactStats, //
};
use kernel::{
    alloc::KVVec,
    mm::{
        pin::PinnedUserRange,
        virt::{
            flags,
            VmaRef, //
        },
        GupFastFence,
        MmWithUser,
        VmaWriteLocked, //
    },
    page::PAGE_SIZE,
    pr_warn_once,
    prelude::*,
    uaccess::UserPtr, //
};

/// How many addresses one batch of the page table walk collects: eight page tables' worth, so
/// that a dense range costs few walks.
const WALK_BATCH: usize = 4096;

/// One entry of the user's table: `struct cs614_compact_entry { u64 old; u64 new; }`.
type TableEntry = [u64; 2];

/// A validated `IOCTL_COMPACT_VMA` request, its table pinned.
pub(crate) struct Request {
    /// First page of the range.
    start: usize,
    /// Number of pages of the range.
    pages: usize,
    /// The user's table of `pages` entries, pinned for writing.
    table: PinnedUserRange,
    /// The vma did not refuse huge pages (`MADV_NOHUGEPAGE`) when the range was checked.
    huge_ok: bool,
}

impl Request {
    /// Checks the arguments and pins the table: `EINVAL` for an unaligned address, an empty
    /// range, one that wraps around, a table that overlaps the range or a range that no vma of
    /// `mm` could compact, then `EFAULT` for a table that cannot be written, `ENOMEM`. Nothing is
    /// written, and the table is not touched unless the range passed its checks. The vma is
    /// checked again, under the mmap write lock, by [`compact`].
    pub(crate) fn new(mm: &MmWithUser, addr: u64, pages: u32, table: u64) -> Result<Self> {
        let start = usize::try_from(addr).map_err(|_| EINVAL)?;
        let pages = usize::try_from(pages).map_err(|_| EINVAL)?;
        if start % PAGE_SIZE != 0 || pages == 0 {
            return Err(EINVAL);
        }
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| start.checked_add(len))
            .ok_or(EINVAL)?;
        let table = usize::try_from(table).map_err(|_| EFAULT)?;
        let size = pages.checked_mul(size_of::<TableEntry>()).ok_or(EFAULT)?;
        let table_end = table.checked_add(size).ok_or(EFAULT)?;
        // The table's pages would move with the range, and the table be written over its data.
        if table < end && start < table_end {
            return Err(EINVAL);
        }
        // A range that cannot be compacted is refused before the table is split or pinned.
        let huge_ok = {
            let guard = mm.mmap_read_lock();
            let vma = guard.vma_lookup(start);
            if !compactable(vma, end) {
                return Err(EINVAL);
            }
            vma.is_some_and(|vma| vma.flags() & flags::NOHUGEPAGE == 0)
        };
        // A large folio that the table shared with the range would be pinned, and its pages in
        // the range could not move.
        mm_ext::split_folios_straddling(
            table & !(PAGE_SIZE - 1),
            table_end
                .checked_next_multiple_of(PAGE_SIZE)
                .ok_or(EFAULT)?,
        );
        Ok(Self {
            start,
            pages,
            table: PinnedUserRange::new(UserPtr::from_addr(table), size)?,
            huge_ok,
        })
    }

    /// Whether the range holds a 2 MiB-aligned range that compaction could promote, in a vma
    /// that took huge pages when it was checked. Without it, no registration is prepared (nor
    /// the promotion thread started) for nothing; a vma that `MADV_HUGEPAGE` allows meanwhile
    /// is compacted as it was checked, without promotion.
    pub(crate) fn may_promote(&self) -> bool {
        self.huge_ok && promote::huge_bounds(self.start, self.end()).is_some()
    }

    /// The address of page `i` of the range.
    fn addr(&self, i: usize) -> usize {
        self.start + i * PAGE_SIZE
    }

    /// The end of the range.
    fn end(&self) -> usize {
        self.addr(self.pages)
    }

    /// The index of the page at `addr` in the range; `u32` holds it, as it held `pages`.
    fn index(&self, addr: usize) -> u32 {
        ((addr - self.start) / PAGE_SIZE) as u32
    }

    /// Writes the table: populated pages to their rank, holes, in order, to the slots after the
    /// last one. `populated` holds the original indices of the populated pages, ascending.
    fn write_table(&self, populated: &[u32]) -> Result {
        let k = populated.len();
        let mut rank = 0;
        let mut next = populated.first().copied();
        self.table.write_with(0, self.pages, |i| -> TableEntry {
            let new = if next == Some(i as u32) {
                rank += 1;
                next = populated.get(rank).copied();
                rank - 1
            } else {
                k + i - rank
            };
            [self.addr(i) as u64, self.addr(new) as u64]
        })
    }
}

/// Compacts the range of `req` in `mm`, the caller's, and writes its table. `registration`,
/// prepared beforehand if [`Request::may_promote`], makes demotion apply to `mm` if a huge page
/// was made; without it nothing is promoted.
///
/// Errors, all with nothing changed: `EINVAL` if the range is not inside one private, writable
/// anonymous VMA or holds a guard region; `ENOENT` if it has no populated page; `EBUSY` if the
/// VMA is registered with userfaultfd, or a populated page is shared with another process
/// (fork; a swapped-out one included), pinned, owned by a device, a large folio that cannot be
/// split or in the swap cache; `EHWPOISON` for a poisoned page; `ENOMEM`; `EINTR` if a fatal
/// signal arrives before the first move.
///
/// A fatal signal after the first move leaves the range partly compacted, every page in it
/// once, and the table unwritten: the caller's threads die with it, but another process that
/// shares the mm (`clone(CLONE_VM)` without `CLONE_THREAD`) lives on and sees the range so. A
/// populated page that reclaim discards between the walk and its move (a lazyfree page) leaves
/// no hole in the front: it becomes a hole of the table, as it became one of the range.
///
/// `stats` receives what it did, for the trace event and the counters.
pub(crate) fn compact(
    mm: &MmWithUser,
    req: &Request,
    registration: Option<PendingRegistration<'_>>,
    stats: &mut CompactStats,
) -> Result {
    let (populated, huge_ok) = compact_locked(mm, req, stats)?;

    // Promote what became promotable: the 2 MiB-aligned ranges of the new populated front,
    // unless the vma refuses huge pages (then not even the LRU caches are drained).
    if let Some(mut registration) = registration.filter(|_| huge_ok) {
        // From the first huge page made on, a split by another thread demotes it.
        registration.arm_demotion();
        stats.promoted = promote::promote_now(mm, req.start, req.addr(populated.len()));
        if stats.promoted > 0 {
            // Later splits of the new huge pages demote them, as for promotion.
            registration.commit();
        }
    }

    // Populated pages go to their rank; holes, in order, to the slots after the last one.
    req.write_table(&populated)
}

/// Whether `vma`, the one at the start of a range that ends at `end`, could compact it: the range
/// inside a private, writable anonymous vma.
fn compactable(vma: Option<&VmaRef>, end: usize) -> bool {
    vma.is_some_and(|vma| {
        end <= vma.end()
            && vma.is_anonymous()
            && vma.flags() & (flags::SHARED | flags::WRITE) == flags::WRITE
    })
}

/// Moves the populated pages of the range to its front; returns the original indices of those
/// now there, ascending, and whether the vma allows huge pages (not `MADV_NOHUGEPAGE`).
fn compact_locked(
    mm: &MmWithUser,
    req: &Request,
    stats: &mut CompactStats,
) -> Result<(KVVec<u32>, bool)> {
    // Allocated before the lock, and charged to the caller: the less done under the lock, the
    // shorter other threads wait.
    let mut batch = KVec::from_elem(0usize, WALK_BATCH, GFP_KERNEL_ACCOUNT)?;
    let mut pm = PackedMove::new()?;
    let mut guard = mm.mmap_write_lock_killable()?;
    guard.fence_gup_fast(|fence| {
        let vma = fence.vma_lookup(req.start);
        if !compactable(vma, req.end()) {
            return Err(EINVAL);
        }
        let vma = vma.ok_or(EINVAL)?;
        let huge_ok = vma.flags() & flags::NOHUGEPAGE == 0;
        let vma = fence.vma_start_write(vma)?;
        let (mut populated, large) = collect(fence, vma, req, &mut batch)?;

        // The pages already in place, a prefix, stay. The large folios of the others are split,
        // and the page tables of the destination allocated, before any page moves.
        let k = populated.len();
        stats.populated = k;
        let first = populated
            .iter()
            .enumerate()
            .position(|(j, &p)| p as usize != j)
            .unwrap_or(k);
        if first == k {
            return Ok((populated, huge_ok));
        }
        for &(from, to) in large.iter() {
            let from = (from as usize).max(first);
            if from < to as usize {
                fence.split_large_folios(vma, req.addr(from), req.addr(to as usize))?;
            }
        }
        fence.alloc_page_tables(vma, req.addr(first), req.addr(k))?;

        // The page of rank `j` moves from index `populated[j] > j` to the next free slot: in
        // ascending order, the slots below it are filled and the others up to `populated[j]`
        // empty by then. A page that reclaim discarded since the walk (lazyfree) takes no slot
        // and leaves the list: it becomes a hole of the table, as it became one of the range.
        let dst = u32::try_from(first).map_err(|_| EINVAL)?;
        let idx = populated.get_mut(first..).ok_or(EINVAL)?;
        let n = idx.len();
        let packed = fence.pack_anon_pages(&mut pm, vma, req.start, dst, idx)?;
        if packed.done != n {
            // Cut short by a fatal signal, the caller being killed; else by what the walk, under
            // these locks, excludes: a pin that outlasted the fence, a destination found full, an
            // entry that cannot move.
            if kernel::current!().signal_pending() {
                return Err(EINTR);
            }
            pr_warn_once!("compaction did {} pages of {n}\n", packed.done);
            return Err(EIO);
        }
        stats.vanished = n - packed.kept;
        stats.alone = packed.alone;
        stats.batched = packed.kept - packed.alone.min(packed.kept);
        populated.truncate(first + packed.kept);
        Ok((populated, huge_ok))
    })
}

/// The indices of the populated pages of a range, ascending, and the runs `[first, end)` of
/// those that belong to large folios.
type Collected = (KVVec<u32>, KVVec<(u32, u32)>);

/// Collects every populated page of the range, ascending, and the runs `[first, end)` of those
/// that belong to large folios: a page that cannot move fails the request here.
fn collect(
    fence: &GupFastFence<'_, '_>,
    vma: &VmaWriteLocked,
    req: &Request,
    batch: &mut [usize],
) -> Result<Collected> {
    let mut populated = KVVec::<u32>::new();
    let mut large = KVVec::<(u32, u32)>::new();
    let mut cursor = req.start;
    while cursor < req.end() {
        let (count, next) = fence.populated_pages(vma, cursor, req.end(), batch)?;
        let addrs = batch.get(..count).ok_or(EINVAL)?;
        populated.reserve(count, GFP_KERNEL_ACCOUNT)?;
        for &addr in addrs {
            let i = req.index(addr & !POPULATED_LARGE);
            populated.push_within_capacity(i).map_err(|_| ENOMEM)?;
            if addr & POPULATED_LARGE != 0 {
                match large.last_mut() {
                    Some(run) if run.1 == i => run.1 = i + 1,
                    _ => large.push((i, i + 1), GFP_KERNEL_ACCOUNT)?,
                }
            }
        }
        cursor = next;
    }
    if populated.is_empty() {
        return Err(ENOENT);
    }
    Ok((populated, large))
}
//@ end
