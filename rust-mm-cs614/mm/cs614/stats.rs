// SPDX-License-Identifier: GPL-2.0

//! Counters of what cs614 did since boot, read in debugfs `cs614/stats`.
//!
//! Each is one atomic, incremented without a lock where the event happens; they move with the
//! trace events of the same names.

//@ compaction
use crate::trace::CompactStats;
//@ end
use core::fmt;
//@ promotion
use kernel::bindings;
//@ end
use kernel::sync::atomic::{
    Atomic,
    Relaxed, //
};

/// A counter since boot.
pub(crate) struct Counter(Atomic<u64>);

impl Counter {
    const fn new() -> Self {
        Self(Atomic::new(0))
    }

    /// Adds `n`.
    pub(crate) fn add(&self, n: usize) {
        self.0.add(n as u64, Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

//@ promotion
/// The number of promotion results (`enum cs614_promote_result`).
const NR_RESULTS: usize = bindings::cs614_promote_result_CS614_NR_PROMOTE_RESULTS as usize;

/// The names of the promotion results, in the order of `enum cs614_promote_result`, as the
/// trace event prints them.
const RESULT_NAMES: [&str; NR_RESULTS] = [
    "promoted",
    "already_huge",
    "pte_none",
    "pte_zero_page",
    "pte_swap",
    "pte_other",
    "page_shared",
    "page_pinned",
    "page_busy",
    "vma_nohugepage",
    "vma_userfaultfd",
    "vma_changed",
    "thp_disabled",
    "alloc_failed",
    "other",
];
//@ end

pub(crate) static MOVES: Counter = Counter::new();
pub(crate) static MOVES_FAILED: Counter = Counter::new();
//@ promotion
pub(crate) static ROUNDS: Counter = Counter::new();
pub(crate) static ROUND_MMS: Counter = Counter::new();
pub(crate) static RANGES_EXAMINED: Counter = Counter::new();
static PROMOTE: [Counter; NR_RESULTS] = [const { Counter::new() }; NR_RESULTS];
//@ end
//@ compaction
static COMPACTIONS: Counter = Counter::new();
static COMPACTIONS_FAILED: Counter = Counter::new();
static COMPACTED_BATCHED: Counter = Counter::new();
static COMPACTED_ALONE: Counter = Counter::new();
static COMPACTED_VANISHED: Counter = Counter::new();
static COMPACTION_PROMOTED: Counter = Counter::new();
//@ end

//@ promotion
/// Counts a range a round examined, with its result (`enum cs614_promote_result`).
pub(crate) fn count_promote_result(result: u32) {
    RANGES_EXAMINED.add(1);
    if let Some(counter) = PROMOTE.get(result as usize) {
        counter.add(1);
    }
}
//@ end

//@ compaction
/// Counts a compaction.
pub(crate) fn count_compaction(s: &CompactStats, ok: bool) {
    if ok {
        COMPACTIONS.add(1);
    } else {
        COMPACTIONS_FAILED.add(1);
    }
    COMPACTED_BATCHED.add(s.batched);
    COMPACTED_ALONE.add(s.alone);
    COMPACTED_VANISHED.add(s.vanished);
    COMPACTION_PROMOTED.add(s.promoted);
}
//@ end

/// Writes every counter, one `name value` a line.
pub(crate) fn show(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "moves {}", MOVES.get())?;
    writeln!(f, "moves_failed {}", MOVES_FAILED.get())?;
    //@ promotion
    writeln!(f, "rounds {}", ROUNDS.get())?;
    writeln!(f, "round_mms {}", ROUND_MMS.get())?;
    writeln!(f, "ranges_examined {}", RANGES_EXAMINED.get())?;
    for (name, counter) in RESULT_NAMES.iter().zip(PROMOTE.iter()) {
        writeln!(f, "promote_{name} {}", counter.get())?;
    }
    writeln!(f, "demotions {}", crate::mm_ext::nr_vma_split_demotions())?;
    //@ end
    //@ compaction
    writeln!(f, "compactions {}", COMPACTIONS.get())?;
    writeln!(f, "compactions_failed {}", COMPACTIONS_FAILED.get())?;
    writeln!(f, "compacted_batched {}", COMPACTED_BATCHED.get())?;
    writeln!(f, "compacted_alone {}", COMPACTED_ALONE.get())?;
    writeln!(f, "compacted_vanished {}", COMPACTED_VANISHED.get())?;
    writeln!(f, "compaction_promoted {}", COMPACTION_PROMOTED.get())?;
    //@ end
    Ok(())
}
