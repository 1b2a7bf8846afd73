// SPDX-License-Identifier: GPL-2.0

//! Compacting a VMA range: `IOCTL_COMPACT_VMA`.
//!
//! The populated pages of the range move, in ascending order, to its front; the holes end up at
//! its back. Pages move by their page table entries (`MmapWriteGuard::pack_anon_pages`: the
//! machinery of `UFFDIO_MOVE`, batched per page table), never by copy, under one hold of the
//! mmap write lock, so that no other thread faults or maps in the range meanwhile. Then every
//! 2 MiB-aligned range of the new populated front is promoted to a huge page with part 2's
//! collapse, and the old→new table is written to user space, outside the lock.
//!
//! Memory: the original indices of the populated pages (4 bytes each) are kept in one
//! `kvmalloc` vector; nothing is proportional to the holes. The page tables of the holes are not
//! visited either: `populated_pages` skips missing page tables at the level they are missing.

use crate::promote::{self, HPAGE_SIZE};
use kernel::{
    alloc::KVVec,
    mm::{virt::flags, MmWithUser},
    page::PAGE_SIZE,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// How many addresses one batch of the page table walk collects.
const WALK_BATCH: usize = 256;

/// How many table entries are written to user space at once.
const TABLE_BATCH: usize = 128;

/// One entry of the user's table: `struct cs614_compact_entry { u64 old; u64 new; }`.
type TableEntry = [u64; 2];

/// A validated `IOCTL_COMPACT_VMA` request.
pub(crate) struct Request {
    /// First page of the range.
    start: usize,
    /// Number of pages of the range.
    pages: usize,
    /// The user's table of `pages` entries.
    table: UserPtr,
}

impl Request {
    /// Checks the arguments that need no lock: `EINVAL` for an unaligned address, an empty
    /// range or one that wraps around, `EFAULT` for a table that cannot be written.
    ///
    /// The table is written with each entry's `old` address in both fields, which also faults
    /// its pages in, before anything else changes.
    pub(crate) fn new(addr: u64, pages: u32, table: u64) -> Result<Self> {
        let start = usize::try_from(addr).map_err(|_| EINVAL)?;
        let pages = usize::try_from(pages).map_err(|_| EINVAL)?;
        if start % PAGE_SIZE != 0 || pages == 0 {
            return Err(EINVAL);
        }
        pages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| start.checked_add(len))
            .ok_or(EINVAL)?;
        let req = Self {
            start,
            pages,
            table: UserPtr::from_addr(usize::try_from(table).map_err(|_| EFAULT)?),
        };
        req.write_table(|i| req.addr(i))?;
        Ok(req)
    }

    /// The address of page `i` of the range.
    fn addr(&self, i: usize) -> usize {
        self.start + i * PAGE_SIZE
    }

    /// The end of the range.
    fn end(&self) -> usize {
        self.addr(self.pages)
    }

    /// Writes the table, entry `i` being `{ addr(i), new(i) }`.
    fn write_table(&self, mut new: impl FnMut(usize) -> usize) -> Result {
        let size = self
            .pages
            .checked_mul(size_of::<TableEntry>())
            .ok_or(EFAULT)?;
        let mut writer = UserSlice::new(self.table, size).writer();
        let mut buf = KVec::<TableEntry>::with_capacity(TABLE_BATCH, GFP_KERNEL)?;
        let mut i = 0;
        while i < self.pages {
            buf.clear();
            while buf.len() < TABLE_BATCH && i < self.pages {
                // Cannot fail: the capacity is reserved.
                let _ = buf.push([self.addr(i) as u64, new(i) as u64], GFP_NOWAIT);
                i += 1;
            }
            writer.write_slice(buf.as_slice().as_bytes())?;
        }
        Ok(())
    }
}

/// Compacts the range of `req` in `mm`, the caller's, and writes its table.
///
/// Errors: `EINVAL` if the range is not inside one private, writable anonymous VMA or holds a
/// guard region, `ENOENT` if it has no populated page, `EBUSY` if a populated page is shared
/// with another process (fork) or the VMA is registered for userfaultfd write protection: all
/// with nothing changed. Should a move fail midway (a fatal signal, no memory for a page table,
/// a page pinned meanwhile), the range is left partly compacted, every byte still in a page of
/// the range, and the error returned without a table.
///
/// Returns whether the caller should make demotion apply to `mm`: some huge page is mapped now.
pub(crate) fn compact(mm: &MmWithUser, req: &Request) -> Result<bool> {
    let populated = compact_locked(mm, req)?;

    // Promote what became promotable: the 2 MiB-aligned ranges of the new populated front.
    let promoted = promote::promote_now(mm, req.start, req.addr(populated.len()));

    // Populated pages go to their rank; holes, in order, to the slots after the last one.
    let k = populated.len();
    let mut rank = 0;
    req.write_table(|i| {
        let idx = populated.get(rank).map(|&p| p as usize);
        if idx == Some(i) {
            rank += 1;
            req.addr(rank - 1)
        } else {
            req.addr(k + i - rank)
        }
    })?;
    Ok(promoted)
}

/// Moves the populated pages of the range to its front; returns their original indices.
fn compact_locked(mm: &MmWithUser, req: &Request) -> Result<KVVec<u32>> {
    let guard = mm.mmap_write_lock_killable()?;
    let vma = guard.vma_lookup(req.start).ok_or(EINVAL)?;
    if req.end() > vma.end()
        || !vma.is_anonymous()
        || vma.flags() & (flags::SHARED | flags::WRITE) != flags::WRITE
    {
        return Err(EINVAL);
    }

    // Collect every populated page first: a page that cannot move fails the request here,
    // before anything moved.
    let mut populated = KVVec::<u32>::new();
    let mut batch = [0usize; WALK_BATCH];
    let mut cursor = req.start;
    while cursor < req.end() {
        let (count, next) = guard.populated_pages(vma, cursor, req.end(), &mut batch)?;
        let found = batch.get(..count).ok_or(EINVAL)?;
        populated.reserve(count, GFP_KERNEL)?;
        for &addr in found {
            // Cannot fail: the capacity is reserved; indices fit in `u32` as `pages` did.
            let _ = populated.push(((addr - req.start) / PAGE_SIZE) as u32, GFP_NOWAIT);
        }
        cursor = next;
    }
    if populated.is_empty() {
        return Err(ENOENT);
    }

    // The page of rank `j` moves from index `populated[j] >= j` to `j`. In ascending order,
    // slots below `j` are filled and those from `j` up to `populated[j]` empty by then, so
    // every destination is empty when its turn comes. Pages already in place stay; the others
    // move one source page table (2 MiB) at a time, so that no call crosses unpopulated page
    // tables.
    let mut j = populated
        .iter()
        .enumerate()
        .position(|(j, &p)| p as usize != j)
        .unwrap_or(populated.len());
    while let Some(&p) = populated.get(j) {
        let src = req.addr(p as usize);
        let src_end = req.end().min((src / HPAGE_SIZE + 1) * HPAGE_SIZE);
        let moved = guard.pack_anon_pages(vma, req.addr(j), src, src_end - src)? / PAGE_SIZE;
        if moved == 0 {
            // Cannot happen: the source page is populated.
            return Err(EAGAIN);
        }
        j += moved;
    }
    Ok(populated)
}
