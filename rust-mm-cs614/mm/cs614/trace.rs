// SPDX-License-Identifier: GPL-2.0

//! The trace events of cs614, declared in `include/trace/events/cs614.h`.
//@ promotion
//!
//! The demotion event fires from C, in `split_folio_cut_by_vma_split()`.
//@ end

use kernel::{
    ffi::{
        c_int,
        //@ promotion
        c_uint,
        //@ end
        c_ulong, //
    },
    prelude::*,
    tracepoint::declare_trace, //
};

declare_trace! {
    unsafe fn cs614_move(pid: c_int, old_start: c_ulong, old_end: c_ulong, new_start: c_ulong,
                         ret: c_int);
    //@ promotion
    unsafe fn cs614_round_start(mms: c_uint);
    unsafe fn cs614_round_end(mms: c_uint, examined: c_ulong, promoted: c_ulong,
                              skipped: c_ulong, duration_ns: u64);
    unsafe fn cs614_promote_range(pid: c_int, addr: c_ulong, result: c_int);
    //@ end
    //@ compaction
    #[allow(clippy::too_many_arguments)]
    unsafe fn cs614_compact(pid: c_int, start: c_ulong, pages: c_ulong, populated: c_ulong,
                            batched: c_ulong, alone: c_ulong, promoted: c_ulong, ret: c_int);
    //@ end
}

/// The errno of `ret`, `0` for success, as the events report it.
pub(crate) fn errno<T>(ret: &Result<T>) -> c_int {
    match ret {
        Ok(_) => 0,
        Err(err) => err.to_errno(),
    }
}

/// A VMA move: the caller's `pid`, the VMA's bounds before (`0..0` if none was found), its new
/// start (`0` if it did not move), and the result.
pub(crate) fn trace_move(pid: i32, old: (usize, usize), new_start: usize, ret: c_int) {
    // SAFETY: Always safe to call.
    unsafe {
        cs614_move(
            pid,
            old.0 as c_ulong,
            old.1 as c_ulong,
            new_start as c_ulong,
            ret,
        )
    }
}

//@ promotion
/// A promotion round starts, with `mms` registered.
pub(crate) fn trace_round_start(mms: usize) {
    // SAFETY: Always safe to call.
    unsafe { cs614_round_start(mms as c_uint) }
}

/// A promotion round ended.
pub(crate) fn trace_round_end(mms: usize, examined: usize, promoted: usize, duration_ns: u64) {
    // SAFETY: Always safe to call.
    unsafe {
        cs614_round_end(
            mms as c_uint,
            examined as c_ulong,
            promoted as c_ulong,
            examined.saturating_sub(promoted) as c_ulong,
            duration_ns,
        )
    }
}

/// A promotion round examined the 2 MiB range at `addr` of the mm `pid` registered.
pub(crate) fn trace_promote_range(pid: i32, addr: usize, result: u32) {
    // SAFETY: Always safe to call.
    unsafe { cs614_promote_range(pid, addr as c_ulong, result as c_int) }
}
//@ end

//@ compaction
/// What one compaction did.
#[derive(Default)]
pub(crate) struct CompactStats {
    /// Populated pages found.
    pub(crate) populated: usize,
    /// Pages moved with the others of their page table.
    pub(crate) batched: usize,
    /// Pages moved one by one.
    pub(crate) alone: usize,
    /// Populated pages that reclaim discarded (lazyfree) before their move: holes now.
    pub(crate) vanished: usize,
    /// Huge pages made of the new front.
    pub(crate) promoted: usize,
}

/// A compaction of `pages` pages from `start`.
pub(crate) fn trace_compact(pid: i32, start: usize, pages: usize, s: &CompactStats, ret: c_int) {
    // SAFETY: Always safe to call.
    unsafe {
        cs614_compact(
            pid,
            start as c_ulong,
            pages as c_ulong,
            s.populated as c_ulong,
            s.batched as c_ulong,
            s.alone as c_ulong,
            s.promoted as c_ulong,
            ret,
        )
    }
}
//@ end
