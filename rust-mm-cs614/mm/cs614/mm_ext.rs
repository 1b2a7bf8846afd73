// SPDX-License-Identifier: GPL-2.0

//! The mm entry points built for cs614 (`CONFIG_CS614`), wrapped as extensions of the
//! `kernel::mm` types.
//!
//! mm builds these entry points only for cs614, so their abstractions live here rather than in
//! the `kernel` crate, which cannot depend on the option. This is the component's low-level
//! module: its `unsafe` code is here, but for the trace events and the module's initialisation.
//! The lock each call needs is in the types it takes: the mmap lock's guards, and for
//! compaction's page walk and moves a `GupFastFence` and a `VmaWriteLocked` vma.

//@ promotion
use core::ptr::NonNull;
//@ end
use kernel::{
    bindings,
    //@ compaction
    error::to_result,
    //@ end
    ffi::c_int,
    //@ before promotion
    mm::MmapWriteGuard,
    //@ end
    //@ promotion
    mm::{
        virt::VmaRef,
        //@ compaction
        GupFastFence,
        //@ end
        Mm,
        MmWithUser,
        MmapReadGuard,
        //@ before compaction
        MmapWriteGuard, //
        //@ end
        //@ compaction
        MmapWriteGuard,
        VmaWriteLocked, //
        //@ end
    },
    //@ end
    prelude::*, //
};

/// Converts what a C entry point returns, a count or an address, or a negative errno, to a
/// `Result`.
fn count_or_errno(ret: isize) -> Result<usize> {
    usize::try_from(ret).map_err(|_| Error::from_errno(ret as c_int))
}
//@ promotion

/// Runs `walk`, a C walk of the page tables of `start..end` of a vma that stores addresses in a
/// buffer and where to continue in `*next`, over `addrs`: returns how many it stored and where
/// to continue, `end` once the range is done.
fn walk_into(
    addrs: &mut [usize],
    end: usize,
    walk: impl FnOnce(*mut usize, u32, &mut usize) -> isize,
) -> Result<(usize, usize)> {
    let max = u32::try_from(addrs.len()).unwrap_or(u32::MAX);
    let mut next = end;
    let count = count_or_errno(walk(addrs.as_mut_ptr(), max, &mut next))?;
    Ok((count, next))
}

/// Checks that `vma` is a vma of `mm`.
fn own_vma(mm: &Mm, vma: &VmaRef) -> Result {
    if vma.mm().as_raw() == mm.as_raw() {
        Ok(())
    } else {
        Err(EINVAL)
    }
}
//@ end

/// What cs614 does with the mmap write lock held.
pub(crate) trait MmapWriteGuardExt {
    /// Moves the whole vma containing `vma_addr` so that it starts at `new_addr`.
    ///
    /// This is `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)` of the whole vma without dropping the
    /// lock, except that a mapped destination is refused with `EEXIST` rather than unmapped.
    /// Returns the new start. On error the mapping is unchanged.
    ///
    /// Takes `&mut self`: no vma obtained from the guard may be alive across the move.
    fn move_whole_vma(&mut self, vma_addr: usize, new_addr: usize) -> Result<usize>;
}

impl MmapWriteGuardExt for MmapWriteGuard<'_> {
    fn move_whole_vma(&mut self, vma_addr: usize, new_addr: usize) -> Result<usize> {
        let vma = self.vma_lookup(vma_addr).ok_or(EFAULT)?;
        // SAFETY: `vma` is a valid vma and we hold the mmap write lock of its mm, as the C
        // function requires. It refuses (`EINVAL`) a vma of another mm than `current->mm`.
        let ret = unsafe { bindings::mremap_move_whole_vma(vma.as_ptr(), new_addr) };
        // The C function returns an address below `TASK_SIZE` or a negative errno, like
        // mremap(); reinterpret it as `IS_ERR_VALUE()` does.
        count_or_errno(ret as isize)
    }
}
//@ promotion

/// Sets or clears `MMF_CS614_DEMOTE` of `mm`: while set, a vma split in `mm` splits the large
/// anonymous folio mapped across the split address into base pages at once.
pub(crate) fn set_demote_on_split(mm: &Mm, demote: bool) {
    let flag = bindings::MMF_CS614_DEMOTE as c_int;
    // SAFETY: The pointer is valid since `mm` is a reference; the flags are atomic bits.
    unsafe {
        if demote {
            bindings::mm_flags_set(flag, mm.as_raw())
        } else {
            bindings::mm_flags_clear(flag, mm.as_raw())
        }
    }
}

/// How many huge pages a vma split demoted since boot, in mms with `MMF_CS614_DEMOTE`.
pub(crate) fn nr_vma_split_demotions() -> usize {
    // SAFETY: Always safe to call.
    unsafe { bindings::nr_vma_split_demotions() }
}

/// What a promotion round does with the mmap read lock held.
pub(crate) trait MmapReadGuardExt {
    /// Stores in `addrs`, in ascending order, the start of each 2 MiB range of `start..end` of
    /// `vma` that a page table maps, with what it holds in the low bits
    /// (`enum cs614_promote_result`): `CS614_PROMOTED` when its PTE table maps a present page,
    /// not the zero page, at every entry - the ranges [`CollapseControl::collapse_populated_pmd`]
    /// could collapse -, else the first reason it cannot.
    ///
    /// `start` and `end` must be PMD aligned and inside `vma`, which must be anonymous
    /// (`EINVAL`). Returns how many were stored and where to continue: `end` once the range is
    /// done. Only existing page tables are visited, so the cost follows the populated memory.
    fn full_pte_tables(
        &self,
        vma: &VmaRef,
        start: usize,
        end: usize,
        addrs: &mut [usize],
    ) -> Result<(usize, usize)>;
}

impl MmapReadGuardExt for MmapReadGuard<'_> {
    fn full_pte_tables(
        &self,
        vma: &VmaRef,
        start: usize,
        end: usize,
        addrs: &mut [usize],
    ) -> Result<(usize, usize)> {
        own_vma(self.mm(), vma)?;
        walk_into(addrs, end, |buf, max, next| {
            // SAFETY: We hold the mmap read lock of the mm of `vma`; `buf` has room for `max`
            // addresses and `next` is a valid location.
            unsafe { bindings::vma_full_pte_tables(vma.as_ptr(), start, end, buf, max, next) }
        })
    }
}

//@ compaction
/// Drains the current CPU's caches of folios waiting to be added to an LRU list, so that a
/// collapse can isolate the pages this CPU faulted; unlike `kernel::mm::lru_add_drain_all`, it
/// disturbs no other CPU.
pub(crate) fn lru_add_drain_local() {
    // SAFETY: It can be called from any context that may sleep.
    unsafe { bindings::collapse_lru_add_drain() };
}
//@ end

/// A context for [`CollapseControl::collapse_populated_pmd`]: one serves any number of
/// collapses, one at a time, as one serves a whole `MADV_COLLAPSE` call.
///
/// # Invariants
///
/// `ptr` is a context returned by `collapse_control_alloc()`, owned by this value.
pub(crate) struct CollapseControl {
    ptr: NonNull<bindings::collapse_control>,
}

impl CollapseControl {
    /// Allocates a context; fails with `ENOMEM`.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `collapse_control_alloc` may be called from any context that may sleep.
        let ptr = unsafe { bindings::collapse_control_alloc() };
        // INVARIANT: A non-NULL result is a context this value now owns.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// Collapses the PMD-sized range at `addr` of `mm` into a huge page if all of its pages are
    /// populated.
    ///
    /// Returns `CS614_PROMOTED` if a new PMD-mapped huge page now maps the range, else why not
    /// (`enum cs614_promote_result`): the range is not inside one private anonymous vma that
    /// allows huge pages and is not registered with userfaultfd, or one of its page table
    /// entries is not a present page mapped by this process alone, or it is already PMD-mapped,
    /// or a page was busy, or no huge page could be allocated or charged. `addr` must be PMD
    /// aligned.
    ///
    /// It takes the mmap lock itself: calling it while holding an mmap lock guard of `mm`
    /// deadlocks. Drain the LRU caches once before a series of calls
    /// (`kernel::mm::lru_add_drain_all`, or this CPU's only): a page still in one fails the range
    /// with `CS614_PAGE_BUSY` or `CS614_PAGE_PINNED`.
    pub(crate) fn collapse_populated_pmd(
        &mut self,
        mm: &MmWithUser,
        addr: usize,
    ) -> bindings::cs614_promote_result {
        // SAFETY: The mm has users, as the C function requires; it takes the locks it needs.
        // The context is live by the type invariants, and used by this call alone since it is
        // borrowed mutably.
        let ret = unsafe { bindings::collapse_populated_pmd(mm.as_raw(), addr, self.ptr.as_ptr()) };
        // The C function returns a value of the enum.
        ret as bindings::cs614_promote_result
    }
}

impl Drop for CollapseControl {
    fn drop(&mut self) {
        // SAFETY: By the type invariants, `ptr` is a context of `collapse_control_alloc()` that
        // this value owns; nothing uses it afterwards.
        unsafe { bindings::collapse_control_free(self.ptr.as_ptr()) };
    }
}
//@ end
//@ compaction

/// Set by [`GupFastFenceExt::populated_pages`] on the address of a page that belongs to a large
/// folio: moving it needs [`GupFastFenceExt::split_large_folios`] first.
pub(crate) const POPULATED_LARGE: usize = bindings::VMA_POPULATED_LARGE as usize;

/// Splits the large folios that the user memory `start..end` of the current process (page
/// aligned) shares with memory outside it, so that pinning it pins nothing else. Best effort: a
/// folio that cannot be split now is left whole.
pub(crate) fn split_folios_straddling(start: usize, end: usize) {
    // SAFETY: Always safe to call from process context: the C function takes the locks it needs
    // and only looks at the current process's mappings.
    unsafe { bindings::split_folios_straddling(start, end) };
}

/// What one call of [`GupFastFenceExt::pack_anon_pages`] did.
pub(crate) struct Packed {
    /// How many indices it went through: all of them but on a fatal signal.
    pub(crate) done: usize,
    /// How many pages moved; the others vanished.
    pub(crate) kept: usize,
    /// How many of those moved one by one rather than in a batch of their page table (the zero
    /// page, swap and migration entries, pages still in an ancestor's anon_vma after fork).
    pub(crate) alone: usize,
}

/// What [`GupFastFenceExt::pack_anon_pages`] needs besides the locks: room for a page table's
/// entries, allocated (and charged to the caller's memory cgroup) before the mmap lock is taken,
/// so that nothing is allocated once pages move.
///
/// # Invariants
///
/// `ptr` is a state returned by `packed_move_alloc()`, owned by this value.
pub(crate) struct PackedMove {
    ptr: NonNull<bindings::packed_move>,
}

impl PackedMove {
    /// Allocates the state; fails with `ENOMEM`.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `packed_move_alloc` may be called from any context that may sleep.
        let ptr = unsafe { bindings::packed_move_alloc() };
        // INVARIANT: A non-NULL result is a state this value now owns.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for PackedMove {
    fn drop(&mut self) {
        // SAFETY: By the type invariants, `ptr` is a state of `packed_move_alloc()` that this
        // value owns; nothing uses it afterwards.
        unsafe { bindings::packed_move_free(self.ptr.as_ptr()) };
    }
}

/// Compaction's page walk and moves, in a vma write-locked and GUP-fast fenced: from the walk
/// that accepts the pages to the last move, nothing but the caller changes them.
pub(crate) trait GupFastFenceExt {
    /// Stores in `addrs`, in ascending order, the addresses of the pages of `start..end` that a
    /// page table entry of `vma` maps (present pages, the zero page, swapped-out pages), with
    /// [`POPULATED_LARGE`] set on those of a large folio.
    ///
    /// Returns how many were stored and where to continue: `end` once the range is done, else
    /// the address of the first page that did not fit. Only existing page tables are visited.
    ///
    /// Every page it accepts can be moved by [`GupFastFenceExt::pack_anon_pages`] while the
    /// fence and the vma's write lock last. It fails with `EBUSY` if a page is mapped by another
    /// process too (a shared swap entry included), pinned, owned by a device or a large folio
    /// in the swap cache, `EHWPOISON` if one is poisoned, and `EINVAL` if `vma` is not
    /// anonymous, the range is not inside it, or holds a page table marker (a guard region).
    fn populated_pages(
        &self,
        vma: &VmaWriteLocked,
        start: usize,
        end: usize,
        addrs: &mut [usize],
    ) -> Result<(usize, usize)>;

    /// Splits the large folios that `start..end` of `vma` maps into small ones.
    ///
    /// Fails with `EBUSY` if one cannot be split (pinned, or another reference held) and `EINTR`
    /// on a fatal signal.
    fn split_large_folios(&self, vma: &VmaWriteLocked, start: usize, end: usize) -> Result;

    /// Allocates the page tables that `start..end` of `vma` lacks, so that moving pages there
    /// cannot fail for want of one. Fails with `ENOMEM`.
    fn alloc_page_tables(&self, vma: &VmaWriteLocked, start: usize, end: usize) -> Result;

    /// Moves the pages of the indices `idx` holds, in ascending order, to consecutive pages
    /// from index `dst`, zero copy, as `UFFDIO_MOVE` does page by page: the page table entries
    /// move, the pages and their contents stay. Indices count pages from `base`.
    ///
    /// `vma` must be a private, writable anonymous vma not registered with userfaultfd
    /// (`EBUSY`); `base` and every page inside it, each index above the page it goes to
    /// (`EINVAL`), and each destination empty when its turn comes (`EEXIST`). The pages must
    /// have been accepted by [`GupFastFenceExt::populated_pages`] under this fence, and their
    /// large folios split. No address maps two pages at once for two CPUs: a slot emptied by
    /// an earlier move is flushed from the TLB before it is refilled.
    ///
    /// A page gone when its turn comes (reclaim discarded a lazyfree page) takes no
    /// destination and is dropped from `idx`: the returned [`Packed::kept`] indices that
    /// start `idx` are those of the pages that moved, in order.
    fn pack_anon_pages(
        &self,
        pm: &mut PackedMove,
        vma: &VmaWriteLocked,
        base: usize,
        dst: u32,
        idx: &mut [u32],
    ) -> Result<Packed>;
}

impl GupFastFenceExt for GupFastFence<'_, '_> {
    fn populated_pages(
        &self,
        vma: &VmaWriteLocked,
        start: usize,
        end: usize,
        addrs: &mut [usize],
    ) -> Result<(usize, usize)> {
        own_vma(self.mm(), vma)?;
        walk_into(addrs, end, |buf, max, next| {
            // SAFETY: We hold the mmap write lock of the mm of `vma`, which is write-locked;
            // `buf` has room for `max` addresses and `next` is a valid location.
            unsafe { bindings::vma_populated_pages(vma.as_ptr(), start, end, buf, max, next) }
        })
    }

    fn split_large_folios(&self, vma: &VmaWriteLocked, start: usize, end: usize) -> Result {
        own_vma(self.mm(), vma)?;
        // SAFETY: We hold the mmap write lock of the mm of `vma`, which is write-locked; the C
        // function checks the range against `vma`.
        to_result(unsafe { bindings::vma_split_large_folios(vma.as_ptr(), start, end) })
    }

    fn alloc_page_tables(&self, vma: &VmaWriteLocked, start: usize, end: usize) -> Result {
        own_vma(self.mm(), vma)?;
        // SAFETY: We hold the mmap write lock of the mm of `vma`; the C function checks the
        // range against `vma`.
        to_result(unsafe { bindings::vma_alloc_page_tables(vma.as_ptr(), start, end) })
    }

    fn pack_anon_pages(
        &self,
        pm: &mut PackedMove,
        vma: &VmaWriteLocked,
        base: usize,
        dst: u32,
        idx: &mut [u32],
    ) -> Result<Packed> {
        own_vma(self.mm(), vma)?;
        let nr = u32::try_from(idx.len()).map_err(|_| EINVAL)?;
        let mut kept = 0;
        let mut alone = 0;
        // SAFETY: We hold the mmap write lock of the mm of `vma`, which is write-locked, and
        // GUP-fast is fenced, as the C function requires; it checks the indices against `vma`.
        // `pm` is a live state used by this call alone, being borrowed mutably; `idx` holds `nr`
        // indices; `kept` and `alone` are valid locations.
        let ret = unsafe {
            bindings::move_anon_pages_packed(
                pm.ptr.as_ptr(),
                vma.as_ptr(),
                base,
                dst,
                idx.as_mut_ptr(),
                nr,
                &mut kept,
                &mut alone,
            )
        };
        Ok(Packed {
            done: count_or_errno(ret)?,
            kept: kept as usize,
            alone,
        })
    }
}
//@ end
