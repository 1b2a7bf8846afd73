// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 part 3 benchmark: a 1 GiB range with every other page populated,
 * compacted by IOCTL_COMPACT_VMA, by the same moves done from user space with
 * UFFDIO_MOVE, and by copying (memcpy to the front, then MADV_DONTNEED of the
 * back), in one boot. Prints the medians and the ratios. Not run by default:
 * 'make bench'.
 *
 * The ratios compare like with like: the mapping is MADV_NOHUGEPAGE, so the
 * ioctl does not promote its new front (the baselines make no huge pages).
 * The ioctl with promotion of the 256 fully populated 2 MiB ranges it makes
 * is timed too, for information: that adds one 512 MiB copy.
 *
 * Then the page-table limit: the ioctl against mremap() of a fully populated
 * 1 GiB to a destination 4 KiB off 2 MiB alignment (so that PTEs, not PMDs,
 * move: twice the PTEs the compaction moves). And the stall: the worst and
 * 99th-percentile latency of mmap()+munmap() of 4 KiB in a second thread
 * while 1 GiB and 2 GiB are compacted, by the ioctl (which holds the mmap
 * write lock) and by UFFDIO_MOVE from user space.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>
#include <linux/userfaultfd.h>

#include "../kselftest.h"
#include "cs614_bench.h"
#include "cs614_util.h"

#include <pthread.h>

#define MB		(1024UL * 1024)
#define LEN		(1024 * MB)
/* The page of the ABI: the benchmark skips unless it is the page size. */
#define PG		4096UL
#define NR_PAGES	(LEN / PG)
#define REPS		5

struct entry {
	uint64_t old;
	uint64_t new;
};

static struct entry *table;
static int fd;

static int promote;

/* 1 GiB of 4 KiB pages, the even ones populated with their index. */
static char *setup(void)
{
	char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t i;

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	if (!promote && madvise(p, LEN, MADV_NOHUGEPAGE))
		ksft_exit_fail_msg("MADV_NOHUGEPAGE: %s\n", strerror(errno));
	for (i = 0; i < NR_PAGES; i += 2)
		*(uint64_t *)(p + i * PG) = i + 1;
	return p;
}

static void check(const char *p)
{
	size_t i;

	for (i = 0; i < NR_PAGES / 2; i++)
		if (*(const uint64_t *)(p + i * PG) != 2 * i + 1)
			ksft_exit_fail_msg("page %zu lost\n", 2 * i);
	if (cs614_present_pages(p + LEN / 2, 64 * PG))
		ksft_exit_fail_msg("back half still populated\n");
}

static double by_ioctl(char *p)
{
	struct cs614_compact_vma arg = {
		.addr = (uintptr_t)p, .length = NR_PAGES, .buff = (uintptr_t)table,
	};
	double t = cs614_now_us();

	if (ioctl(fd, IOCTL_COMPACT_VMA, &arg))
		ksft_exit_fail_msg("IOCTL_COMPACT_VMA: %s\n", strerror(errno));
	return cs614_now_us() - t;
}

/* The same moves, one UFFDIO_MOVE per page; the table built in user space too. */
static double by_uffd_move(char *p)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (uintptr_t)p, LEN }, .mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	size_t i, k = 0;
	double t;

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg))
		ksft_exit_fail_msg("userfaultfd: %s\n", strerror(errno));
	t = cs614_now_us();
	for (i = 0; i < NR_PAGES; i += 2, k++) {
		struct uffdio_move mv = {
			.dst = (uintptr_t)(p + k * PG), .src = (uintptr_t)(p + i * PG), .len = PG,
		};

		table[i] = (struct entry){ (uintptr_t)(p + i * PG), mv.dst };
		table[i + 1] = (struct entry){ (uintptr_t)(p + (i + 1) * PG),
					       (uintptr_t)(p + (NR_PAGES / 2 + k) * PG) };
		if (i && ioctl(uffd, UFFDIO_MOVE, &mv))
			ksft_exit_fail_msg("UFFDIO_MOVE: %s\n", strerror(errno));
	}
	t = cs614_now_us() - t;
	close(uffd);
	return t;
}

/* Copy-based: memcpy each page to its slot, then drop the back half. */
static double by_copy(char *p)
{
	size_t i, k = 0;
	double t = cs614_now_us();

	for (i = 0; i < NR_PAGES; i += 2, k++) {
		table[i] = (struct entry){ (uintptr_t)(p + i * PG), (uintptr_t)(p + k * PG) };
		table[i + 1] = (struct entry){ (uintptr_t)(p + (i + 1) * PG),
					       (uintptr_t)(p + (NR_PAGES / 2 + k) * PG) };
		if (i)
			memcpy(p + k * PG, p + i * PG, PG);
	}
	if (madvise(p + LEN / 2, LEN / 2, MADV_DONTNEED))
		ksft_exit_fail_msg("MADV_DONTNEED: %s\n", strerror(errno));
	return cs614_now_us() - t;
}

/* A fully populated, huge page-aligned 1 GiB moved by mremap() 4 KiB off alignment. */
static double by_mremap(void)
{
	const size_t hpage = cs614_hpage_size();
	char *p = cs614_map_aligned(LEN), *hole, *to;
	size_t i;
	double t;

	if (!p || madvise(p, LEN, MADV_NOHUGEPAGE))
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	for (i = 0; i < NR_PAGES; i++)
		*(uint64_t *)(p + i * PG) = i + 1;
	hole = cs614_map_aligned(LEN + 2 * hpage);
	if (!hole)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	munmap(hole, LEN + 2 * hpage);
	to = hole + hpage + PG;
	t = cs614_now_us();
	if (mremap(p, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to)
		ksft_exit_fail_msg("mremap: %s\n", strerror(errno));
	t = cs614_now_us() - t;
	for (i = 0; i < NR_PAGES; i += 4099)
		if (*(uint64_t *)(to + i * PG) != i + 1)
			ksft_exit_fail_msg("mremap lost page %zu\n", i);
	munmap(to, LEN);
	return t;
}

/* The mmap()+munmap() loop of the second thread, and what it saw. */
#define MAX_LAT		1048576	/* samples */

static struct {
	volatile int stop;
	size_t n;
	double start[MAX_LAT], dur[MAX_LAT];
} lat;

static void *latency_thread(void *arg)
{
	(void)arg;
	while (!lat.stop && lat.n < MAX_LAT) {
		double t = cs614_now_us();
		void *q = mmap(NULL, PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (q != MAP_FAILED)
			munmap(q, PG);
		lat.start[lat.n] = t;
		lat.dur[lat.n] = cs614_now_us() - t;
		lat.n++;
	}
	return NULL;
}

/*
 * Compacts len bytes (every other page populated) by fn while the second
 * thread maps and unmaps; prints the worst and 99th-percentile latency of
 * the iterations that overlapped the compaction.
 */
static void stall(const char *what, size_t len, int by_ioctl_call)
{
	size_t nr = len / PG, i, k = 0, m = 0;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct entry *tab = malloc(nr * sizeof(*tab));
	double t0, t1, *d;
	pthread_t th;

	if (p == MAP_FAILED || !tab || madvise(p, len, MADV_NOHUGEPAGE))
		ksft_exit_fail_msg("setup: %s\n", strerror(errno));
	for (i = 0; i < nr; i += 2)
		*(uint64_t *)(p + i * PG) = i + 1;
	lat.stop = 0;
	lat.n = 0;
	if (pthread_create(&th, NULL, latency_thread, NULL))
		ksft_exit_fail_msg("pthread_create\n");
	usleep(20000);
	t0 = cs614_now_us();
	if (by_ioctl_call) {
		struct cs614_compact_vma arg = {
			.addr = (uintptr_t)p, .length = nr, .buff = (uintptr_t)tab,
		};

		if (ioctl(fd, IOCTL_COMPACT_VMA, &arg))
			ksft_exit_fail_msg("IOCTL_COMPACT_VMA: %s\n", strerror(errno));
	} else {
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg = {
			.range = { (uintptr_t)p, len }, .mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		int uffd = syscall(__NR_userfaultfd, O_CLOEXEC);

		if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg))
			ksft_exit_fail_msg("userfaultfd: %s\n", strerror(errno));
		for (i = 2, k = 1; i < nr; i += 2, k++) {
			struct uffdio_move mv = {
				.dst = (uintptr_t)(p + k * PG), .src = (uintptr_t)(p + i * PG),
				.len = PG,
			};

			if (ioctl(uffd, UFFDIO_MOVE, &mv))
				ksft_exit_fail_msg("UFFDIO_MOVE: %s\n", strerror(errno));
		}
		close(uffd);
	}
	t1 = cs614_now_us();
	usleep(20000);
	lat.stop = 1;
	pthread_join(th, NULL);
	d = malloc(lat.n * sizeof(*d));
	if (!d)
		ksft_exit_fail_msg("no memory\n");
	for (i = 0; i < lat.n; i++)
		if (lat.start[i] < t1 && lat.start[i] + lat.dur[i] > t0)
			d[m++] = lat.dur[i];
	qsort(d, m, sizeof(*d), cs614_cmp_double);
	ksft_print_msg("%s, %zu MiB: %.1f ms; mmap+munmap: %zu, worst %.2f ms, p99 %.2f ms\n",
		       what, len / MB, (t1 - t0) / 1000, m, m ? d[m - 1] / 1000 : 0.0,
		       m ? d[(m * 99) / 100] / 1000 : 0.0);
	free(d);
	free(tab);
	munmap(p, len);
}

/* Why userfaultfd with UFFDIO_MOVE cannot serve as the baseline here; NULL if it can. */
static const char *no_uffd_move(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC);

	if (uffd < 0)
		return strerror(errno);
	if (ioctl(uffd, UFFDIO_API, &api)) {
		close(uffd);
		return "UFFDIO_API failed";
	}
	close(uffd);
	return api.features & UFFD_FEATURE_MOVE ? NULL : "no UFFD_FEATURE_MOVE";
}

int main(void)
{
	double (*const fn[3])(char *) = { by_ioctl, by_uffd_move, by_copy };
	static const char *const name[3] = { "IOCTL_COMPACT_VMA", "UFFDIO_MOVE", "memcpy" };
	double samples[3][REPS], med[3], with_promotion[REPS], mp;
	const char *why;
	int i, r;

	ksft_print_header();
	ksft_set_plan(3);
	fd = open(CS614_DEV, O_RDWR);
	if (fd < 0)
		ksft_exit_skip(CS614_DEV ": %s\n", strerror(errno));
	if (cs614_page_size() != PG)
		ksft_exit_skip("IOCTL_COMPACT_VMA counts 4 KiB pages; the page size is %zu\n",
			       cs614_page_size());
	why = no_uffd_move();
	if (why)
		ksft_exit_skip("userfaultfd: %s\n", why);
	/* Put back at any exit, ksft_exit_fail_msg() included. */
	atexit(cs614_thp_restore);
	if (cs614_thp_set("never"))
		ksft_exit_skip("cannot set " CS614_THP_PATH "\n");
	table = malloc(NR_PAGES * sizeof(*table));
	if (!table)
		ksft_exit_fail_msg("no memory for the table\n");
	memset(table, 0, NR_PAGES * sizeof(*table));

	for (r = 0; r < REPS; r++) {
		for (i = 0; i < 3; i++) {
			/* Rotate the order, so that none always runs first. */
			int m = (i + r) % 3;
			char *p = setup();

			samples[m][r] = fn[m](p);
			check(p);
			munmap(p, LEN);
		}
		ksft_print_msg("  sample %d: ioctl %.0f us, UFFDIO_MOVE %.0f us, memcpy %.0f us\n",
			       r, samples[0][r], samples[1][r], samples[2][r]);
	}
	promote = 1;
	for (r = 0; r < REPS; r++) {
		char *p = setup();

		with_promotion[r] = by_ioctl(p);
		check(p);
		if (cs614_anon_huge_kb(p) != (long)(LEN / 2 / 1024))
			ksft_exit_fail_msg("front not promoted: %ld kB\n", cs614_anon_huge_kb(p));
		munmap(p, LEN);
	}
	mp = cs614_median(with_promotion, REPS);
	ksft_print_msg("ioctl with promotion of the front (256 huge pages): median %.0f us\n", mp);
	cs614_thp_restore();
	for (i = 0; i < 3; i++)
		med[i] = cs614_median(samples[i], REPS);
	ksft_print_msg("1 GiB, every other page: %s %.0f us, %s %.0f us, %s %.0f us\n",
		       name[0], med[0], name[1], med[1], name[2], med[2]);
	ksft_print_msg("ratio ioctl/UFFDIO_MOVE %.3f, memcpy/ioctl %.2f\n",
		       med[0] / med[1], med[2] / med[0]);
	ksft_test_result(med[0] / med[1] <= 1.10, "ioctl / UFFDIO_MOVE <= 1.10\n");
	ksft_test_result(med[2] / med[0] >= 5, "memcpy / ioctl >= 5\n");

	{
		double mr[REPS], mm, lo, hi;

		for (r = 0; r < REPS; r++)
			mr[r] = by_mremap();
		mm = cs614_median(mr, REPS);
		lo = samples[0][0];
		hi = samples[0][REPS - 1];
		ksft_print_msg("mremap of 1 GiB, 4 KiB off: median %.0f us (min %.0f, max %.0f)\n",
			       mm, mr[0], mr[REPS - 1]);
		ksft_print_msg("ioctl: median %.0f us (min %.0f, max %.0f), ratio %.2f\n",
			       med[0], lo, hi, med[0] / mm);
		ksft_test_result(med[0] / mm <= 2, "ioctl / mremap <= 2\n");
	}
	cs614_thp_set("never");
	stall("IOCTL_COMPACT_VMA", LEN, 1);
	stall("UFFDIO_MOVE", LEN, 0);
	stall("IOCTL_COMPACT_VMA", 2 * LEN, 1);
	stall("UFFDIO_MOVE", 2 * LEN, 0);
	cs614_thp_restore();
	ksft_finished();
}
