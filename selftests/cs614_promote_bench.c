// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 part 2 benchmark: 256 fully populated 2 MiB ranges (512 MiB) of 4 KiB
 * pages turned into huge pages by one promotion round and by
 * madvise(MADV_COLLAPSE) on an identical mapping, in one boot. Prints the
 * medians per range, their ratio round / MADV_COLLAPSE, and the RSS before
 * and after. Then the time of a round over one VMA of 2 MiB to 16 TiB
 * (MAP_NORESERVE) with only its last 2 MiB populated: a round must cost what
 * the populated memory costs, not the reserved address space. Last, what
 * demotion buys: the memory that unmapping half of each of 64 huge pages
 * gives back at once, in an mm registered with cs614 (eager demotion at the
 * VMA split) and in one that is not (the halves wait on the deferred split
 * queue for memory pressure), and what each split costs where it is paid:
 * in munmap() when eager, in a later pass of the shrinkers (drop_caches=2,
 * timed against one before the munmap() calls) when deferred. Not run by
 * default: 'make bench'.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>

#include "../kselftest.h"
#include "cs614_bench.h"
#include "cs614_util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

#define MB		(1024UL * 1024)
/* The system's page and huge page sizes (4 KiB and 2 MiB on x86-64). */
#define PG		cs614_page_size()
#define HPAGE		cs614_hpage_size()
#define NR_RANGES	256
#define LEN		(NR_RANGES * HPAGE)
#define REPS		7

/* A huge page-aligned, fully populated mapping of len bytes of base pages. */
static char *populated_len(size_t len)
{
	char *res = mmap(NULL, len + HPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;
	size_t off;

	if (res == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	p = (char *)(((uintptr_t)res + HPAGE - 1) & ~(HPAGE - 1));
	munmap(res, len + HPAGE);
	if (mmap(p, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != p)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	for (off = 0; off < len; off += PG)
		memset(p + off, (char)(off >> 12), PG);
	return p;
}

static char *populated(void)
{
	return populated_len(LEN);
}

/* Promotes a fresh mapping one way; returns the time per range in us. */
static double promote(int by_round)
{
	char *p = populated();
	long rss_before = cs614_smaps_kb(p, "Rss"), rss_after;
	double t;
	size_t off;

	if (cs614_anon_huge_kb(p) != 0)
		ksft_exit_fail_msg("huge pages before promotion\n");
	t = cs614_now_us();
	if (by_round) {
		if (cs614_promote_round(600000))
			ksft_exit_fail_msg("promotion round failed or timed out\n");
	} else if (madvise(p, LEN, MADV_COLLAPSE)) {
		ksft_exit_fail_msg("MADV_COLLAPSE: %s\n", strerror(errno));
	}
	t = cs614_now_us() - t;

	rss_after = cs614_smaps_kb(p, "Rss");
	if (cs614_anon_huge_kb(p) != (long)(LEN / 1024))
		ksft_exit_fail_msg("%s: %ld kB of %lu kB huge\n",
				   by_round ? "round" : "MADV_COLLAPSE",
				   cs614_anon_huge_kb(p), LEN / 1024);
	if (rss_after != rss_before)
		ksft_exit_fail_msg("RSS %ld kB before, %ld kB after\n", rss_before, rss_after);
	for (off = 0; off < LEN; off += PG)
		if (p[off] != (char)(off >> 12) || p[off + PG - 1] != (char)(off >> 12))
			ksft_exit_fail_msg("byte at offset %zu lost\n", off);
	munmap(p, LEN);
	return t / NR_RANGES;
}

/* Round time over one VMA of each size, only its last 2 MiB populated. */
#define NR_SIZES	5
#define SIZE_REPS	5

static const struct {
	const char *name;
	size_t len;
} sizes[NR_SIZES] = {
	{ "2 MiB", 0 },		/* one huge page */
	{ "1 GiB", 1UL << 30 },
	{ "64 GiB", 64UL << 30 },
	{ "1 TiB", 1UL << 40 },
	{ "16 TiB", 16UL << 40 },
};

/* Milliseconds of one round with the last 2 MiB of p + len freshly populated. */
static double round_over(char *p, size_t len)
{
	char *last = p + len - HPAGE;
	size_t off;
	double t;

	if (madvise(last, HPAGE, MADV_DONTNEED))
		ksft_exit_fail_msg("MADV_DONTNEED: %s\n", strerror(errno));
	for (off = 0; off < HPAGE; off += PG)
		last[off] = (char)(off >> 12);
	if (cs614_count_thp(last, HPAGE))
		ksft_exit_fail_msg("huge page before the round\n");
	t = cs614_now_us();
	if (cs614_promote_round(600000))
		ksft_exit_fail_msg("promotion round failed or timed out\n");
	t = cs614_now_us() - t;
	if (!cs614_is_thp(last))
		ksft_exit_fail_msg("round over %zu bytes: last 2 MiB not promoted\n", len);
	return t / 1000;
}

/*
 * Prints the round times for each size; whether the 16 TiB round takes at
 * most twice the 1 GiB one.
 */
static bool rounds_by_size(void)
{
	double med[NR_SIZES], t[SIZE_REPS], lo, hi;
	int i, j;

	for (i = 0; i < NR_SIZES; i++) {
		size_t len = sizes[i].len ? sizes[i].len : HPAGE;
		char *p = cs614_map_aligned(len);

		if (!p)
			ksft_exit_fail_msg("cannot reserve %s\n", sizes[i].name);
		for (j = 0; j < SIZE_REPS; j++)
			t[j] = round_over(p, len);
		munmap(p, len);
		/* cs614_median() sorts the samples */
		med[i] = cs614_median(t, SIZE_REPS);
		lo = t[0];
		hi = t[SIZE_REPS - 1];
		ksft_print_msg("round, %s VMA: median %.2f ms (min %.2f, max %.2f, n %d)\n",
			       sizes[i].name, med[i], lo, hi, SIZE_REPS);
	}
	ksft_print_msg("16 TiB round / 1 GiB round: %.2f\n", med[4] / med[1]);
	return med[4] <= 2 * med[1];
}

/*
 * Whether MADV_COLLAPSE works here: one populated huge page range collapsed;
 * errno set when it does not.
 */
static bool collapse_works(void)
{
	char *p = cs614_map_aligned(HPAGE);
	size_t off;
	bool ok;

	if (!p)
		return false;
	for (off = 0; off < HPAGE; off += PG)
		p[off] = 1;
	ok = !madvise(p, HPAGE, MADV_COLLAPSE);
	munmap(p, HPAGE);
	return ok;
}

#define SPLIT_THPS	64
#define SPLIT_REPS	3

/* What unmapping the upper half of SPLIT_THPS huge pages gives back at once. */
struct split_result {
	double freed_mb;	/* free memory gained, in MiB */
	double munmap_us;	/* the SPLIT_THPS munmap() calls */
	long partial;		/* THPs added to the deferred split queue */
	double shrink_us;	/* the shrinkers' pass after, less the one before */
	double shrunk_mb;	/* free memory that pass gained, in MiB */
};

/*
 * The time of one write of 2 to /proc/sys/vm/drop_caches, which runs every
 * shrinker once, the deferred split queue's included; -1 if it cannot be
 * written.
 */
static double shrink_us(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	double t;
	ssize_t n;

	if (fd < 0)
		return -1;
	t = cs614_now_us();
	n = write(fd, "2", 1);
	t = cs614_now_us() - t;
	close(fd);
	return n == 1 ? t : -1;
}

static struct split_result split_halves(void)
{
	size_t len = SPLIT_THPS * HPAGE, i;
	struct split_result r;
	long free_before, partial_before;
	char *p = populated_len(len);
	double t, base;

	if (madvise(p, len, MADV_COLLAPSE))
		ksft_exit_fail_msg("MADV_COLLAPSE: %s\n", strerror(errno));
	if (cs614_anon_huge_kb(p) != (long)(len / 1024))
		ksft_exit_fail_msg("%ld kB of %zu kB huge\n", cs614_anon_huge_kb(p), len / 1024);
	/* What a shrinkers' pass costs with nothing of ours queued. */
	base = shrink_us();
	partial_before = cs614_partially_mapped_thps();
	free_before = cs614_vmstat("nr_free_pages");
	t = cs614_now_us();
	for (i = 0; i < SPLIT_THPS; i++)
		if (munmap(p + i * HPAGE + HPAGE / 2, HPAGE / 2))
			ksft_exit_fail_msg("munmap: %s\n", strerror(errno));
	r.munmap_us = cs614_now_us() - t;
	r.freed_mb = (double)(cs614_vmstat("nr_free_pages") - free_before) * PG / MB;
	r.partial = cs614_partially_mapped_thps() - partial_before;
	/* The deferred split's later cost: the shrinker splits what was queued. */
	free_before = cs614_vmstat("nr_free_pages");
	t = shrink_us();
	r.shrink_us = base < 0 || t < 0 ? -1 : t - base;
	r.shrunk_mb = (double)(cs614_vmstat("nr_free_pages") - free_before) * PG / MB;
	for (i = 0; i < SPLIT_THPS; i++)
		munmap(p + i * HPAGE, HPAGE / 2);
	return r;
}

/* The median of SPLIT_REPS split_halves() in this mm. */
static struct split_result split_median(void)
{
	double freed[SPLIT_REPS], us[SPLIT_REPS], shrink[SPLIT_REPS], shrunk[SPLIT_REPS];
	struct split_result r = { 0 }, one;
	int i;

	for (i = 0; i < SPLIT_REPS; i++) {
		one = split_halves();
		freed[i] = one.freed_mb;
		us[i] = one.munmap_us;
		shrink[i] = one.shrink_us;
		shrunk[i] = one.shrunk_mb;
		r.partial = one.partial > r.partial ? one.partial : r.partial;
	}
	r.freed_mb = cs614_median(freed, SPLIT_REPS);
	r.munmap_us = cs614_median(us, SPLIT_REPS);
	r.shrink_us = cs614_median(shrink, SPLIT_REPS);
	r.shrunk_mb = cs614_median(shrunk, SPLIT_REPS);
	return r;
}

/* split_median() in a child that never registers: the deferred split queue. */
static struct split_result split_median_unregistered(void)
{
	struct split_result r;
	int pipefd[2], status;
	pid_t pid;

	if (pipe(pipefd))
		ksft_exit_fail_msg("pipe: %s\n", strerror(errno));
	pid = fork();
	if (pid < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (!pid) {
		r = split_median();
		_exit(write(pipefd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	if (read(pipefd[0], &r, sizeof(r)) != sizeof(r) || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status))
		ksft_exit_fail_msg("the unregistered child failed\n");
	close(pipefd[0]);
	close(pipefd[1]);
	return r;
}

int main(void)
{
	struct split_result deferred, eager;
	double by_round[REPS], by_collapse[REPS], mr, mc;
	int fd, i;

	ksft_print_header();
	ksft_set_plan(3);
	fd = open(CS614_DEV, O_RDWR);
	if (fd < 0)
		ksft_exit_skip(CS614_DEV ": %s\n", strerror(errno));
	if (access(CS614_PROMOTE_PATH, W_OK))
		ksft_exit_skip("cannot write " CS614_PROMOTE_PATH ": %s\n", strerror(errno));
	if (!cs614_pfns_visible())
		ksft_exit_skip("no pfns in pagemap or no /proc/kpageflags (not root?)\n");
	/* EINVAL: a kernel without MADV_COLLAPSE; other errors are the benchmark's to report. */
	if (!collapse_works() && errno == EINVAL)
		ksft_exit_skip("MADV_COLLAPSE: %s\n", strerror(errno));
	/* Before this mm registers: a child of a registered mm would demote too. */
	deferred = split_median_unregistered();
	if (ioctl(fd, IOCTL_PROMOTE_VMA, NULL))
		ksft_exit_fail_msg("IOCTL_PROMOTE_VMA: %s\n", strerror(errno));
	eager = split_median();
	/* Put back at any exit, ksft_exit_fail_msg() included. */
	atexit(cs614_thp_restore);
	if (cs614_thp_set("never"))
		ksft_exit_skip("cannot set " CS614_THP_PATH "\n");

	for (i = 0; i < REPS; i++) {
		/* Alternate which goes first, so neither inherits the other's state. */
		if (i % 2) {
			by_round[i] = promote(1);
			by_collapse[i] = promote(0);
		} else {
			by_collapse[i] = promote(0);
			by_round[i] = promote(1);
		}
		ksft_print_msg("  sample %d: round %.0f us/range, MADV_COLLAPSE %.0f us/range\n",
			       i, by_round[i], by_collapse[i]);
	}
	mr = cs614_median(by_round, REPS);
	mc = cs614_median(by_collapse, REPS);
	ksft_print_msg("512 MiB, 256 ranges: RSS unchanged (%lu kB) by either\n", LEN / 1024);
	ksft_print_msg("medians: round %.0f us/range, MADV_COLLAPSE %.0f us/range, ratio %.3f\n",
		       mr, mc, mr / mc);
	ksft_test_result(mr / mc <= 1.25, "round / MADV_COLLAPSE <= 1.25\n");
	ksft_test_result(rounds_by_size(), "16 TiB round <= 2 x 1 GiB round\n");
	ksft_print_msg("unmapping half of each of %d huge pages (%lu MiB), medians of %d:\n",
		       SPLIT_THPS, SPLIT_THPS * HPAGE / 2 / MB, SPLIT_REPS);
	ksft_print_msg("  eager: %.1f MiB freed at once, %ld partial THPs, munmap %.0f us\n",
		       eager.freed_mb, eager.partial, eager.munmap_us);
	ksft_print_msg("  deferred: %.1f MiB freed at once, %ld partial THPs, munmap %.0f us\n",
		       deferred.freed_mb, deferred.partial, deferred.munmap_us);
	ksft_print_msg("  shrinkers after: +%.0f us, %.1f MiB freed (eager: +%.0f us, %.1f MiB)\n",
		       deferred.shrink_us, deferred.shrunk_mb, eager.shrink_us, eager.shrunk_mb);
	ksft_print_msg("  per THP: eager split %.0f us in munmap(), deferred %.0f us later\n",
		       (eager.munmap_us - deferred.munmap_us) / SPLIT_THPS,
		       deferred.shrink_us / SPLIT_THPS);
	ksft_test_result(eager.freed_mb >= 0.9 * SPLIT_THPS * HPAGE / 2 / MB,
			 "eager demotion frees the unmapped halves at once\n");
	cs614_thp_restore();
	ksft_finished();
}
