// SPDX-License-Identifier: GPL-2.0

//! Moving a whole VMA: `IOCTL_MVE_VMA_TO` and `IOCTL_MVE_VMA`.
//!
//! The destination is validated, or searched for, and the VMA moved under one hold of the mmap
//! write lock, so no other thread can map the destination in between. The page-table work is
//! mremap()'s own, through `MmapWriteGuardExt::move_whole_vma`.

use crate::{
    mm_ext::MmapWriteGuardExt,
    stats,
    trace, //
};
use kernel::{
    current,
    mm::{
        mmap_min_addr,
        virt::{
            flags,
            vm_flags_t,
            VmaRef, //
        },
        MmWithUser,
        MmapWriteGuard, //
    },
    page::PAGE_SIZE,
    prelude::*, //
};

/// VMAs that mremap() cannot move, or that cs614 refuses to: raw PFN and I/O mappings, special
/// mappings (which set `VM_DONTEXPAND`) and hugetlb.
const UNMOVABLE: vm_flags_t =
    flags::PFNMAP | flags::IO | flags::MIXEDMAP | flags::DONTEXPAND | flags::HUGETLB;

/// Where a VMA is moved to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Destination {
    /// To this page-aligned address (`IOCTL_MVE_VMA_TO`).
    At(usize),
    /// To the lowest address at or above the end of the VMA where it fits (`IOCTL_MVE_VMA`).
    FirstHoleAfter,
}

/// Moves the whole VMA of `mm` that contains `vma_addr` to `dest`; returns its new start.
///
/// `keep_out`, if given, is a range `(start, end)` the VMA must not overlap (the caller's
/// argument, which must not move under it).
///
/// Errors, with nothing changed: `EINVAL` for an unaligned or out-of-range destination, no VMA
/// at `vma_addr`, a VMA that cannot move or that overlaps `keep_out`; `EEXIST` for a
/// destination that overlaps a mapping (the VMA itself included) or a stack guard gap; `ENOMEM`
/// when no hole fits; `EBUSY` for a VMA registered with userfaultfd; and the errors of mremap()
/// itself.
pub(crate) fn move_vma(
    mm: &MmWithUser,
    vma_addr: usize,
    dest: Destination,
    keep_out: Option<(usize, usize)>,
) -> Result<usize> {
    let mut old = (0, 0);
    let ret = move_vma_locked(mm, vma_addr, dest, keep_out, &mut old);
    trace::trace_move(
        current!().tgid(),
        old,
        *ret.as_ref().unwrap_or(&0),
        trace::errno(&ret),
    );
    if ret.is_ok() {
        stats::MOVES.add(1);
    } else {
        stats::MOVES_FAILED.add(1);
    }
    ret
}

/// [`move_vma`] itself; sets `old` to the bounds of the VMA once found.
fn move_vma_locked(
    mm: &MmWithUser,
    vma_addr: usize,
    dest: Destination,
    keep_out: Option<(usize, usize)>,
    old: &mut (usize, usize),
) -> Result<usize> {
    if let Destination::At(to) = dest {
        if to % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
    }

    let mut guard = mm.mmap_write_lock_killable()?;
    let (old_start, to) = {
        let vma = guard.vma_lookup(vma_addr).ok_or(EINVAL)?;
        *old = (vma.start(), vma.end());
        if vma.flags() & UNMOVABLE != 0 {
            return Err(EINVAL);
        }
        if let Some((start, end)) = keep_out {
            if start < vma.end() && vma.start() < end {
                return Err(EINVAL);
            }
        }
        let to = match dest {
            Destination::At(to) => check_destination(&guard, vma, to)?,
            Destination::FirstHoleAfter => first_hole_after(&guard, vma)?,
        };
        (vma.start(), to)
    };
    guard.move_whole_vma(old_start, to)
}

/// Returns the end of `[start, start + size)` if the range lies in the user address range of the
/// mm, `None` otherwise.
fn user_range_end(guard: &MmapWriteGuard<'_>, start: usize, size: usize) -> Option<usize> {
    let end = start.checked_add(size)?;
    (start >= mmap_min_addr() && end <= guard.mm().task_size()).then_some(end)
}

/// Checks that `vma` can move to `to`; returns `to`.
fn check_destination(guard: &MmapWriteGuard<'_>, vma: &VmaRef, to: usize) -> Result<usize> {
    let end = user_range_end(guard, to, vma.end() - vma.start()).ok_or(EINVAL)?;
    // The first VMA ending above `to` is the only one that can overlap the range from below;
    // any other overlapping VMA starts even lower than the range's end.
    match guard.find_vma(to) {
        Some(next) if next.start_gap() < end => Err(EEXIST),
        _ => Ok(to),
    }
}

/// Finds the lowest address at or above the end of `vma` where `vma` fits.
fn first_hole_after(guard: &MmapWriteGuard<'_>, vma: &VmaRef) -> Result<usize> {
    let size = vma.end() - vma.start();
    let mut candidate = vma.end().max(mmap_min_addr());
    for next in guard.vmas_from(vma.end()) {
        let end = user_range_end(guard, candidate, size).ok_or(ENOMEM)?;
        if end <= next.start_gap() {
            return Ok(candidate);
        }
        candidate = candidate.max(next.end());
    }
    user_range_end(guard, candidate, size).ok_or(ENOMEM)?;
    Ok(candidate)
}
