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
 * move: twice the PTEs the compaction moves), timed in pairs, back to back in
 * alternating order, so that the guest's drifts weigh on both sides of each
 * pair's ratio alike: the bar is the median of those ratios, the ratio of the
 * medians is printed beside it. And the stall: the worst and
 * 99th-percentile latency of mmap()+munmap() of 4 KiB in a second thread
 * while 1 GiB and 2 GiB are compacted, by the ioctl (which holds the mmap
 * write lock) and by UFFDIO_MOVE from user space.
 *
 * And the stall of a sibling process: the child forked while an 8 GiB range
 * held one page shares the range's anon_vma root, which the ioctl locks (in
 * bounded slices) while it moves the 512 MiB the parent populated since;
 * the child's munmap() of 4 KiB of its copy (a VMA split) and its fork()
 * take that lock too. Their worst and 99th-percentile latency during the
 * compaction, and before it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
#define REPS		7
#define PAIRS		9

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
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	size_t i, k = 0;
	double t;

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) ||
	    uffd_register(uffd, p, LEN, true, false, false))
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

/* A fully populated, huge page-aligned 1 GiB for by_mremap(), each page holding its index + 1. */
static char *mremap_setup(void)
{
	char *p = cs614_map_aligned(LEN);
	size_t i;

	if (!p || madvise(p, LEN, MADV_NOHUGEPAGE))
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	for (i = 0; i < NR_PAGES; i++)
		*(uint64_t *)(p + i * PG) = i + 1;
	return p;
}

/* Moves the 1 GiB of mremap_setup() by mremap() 4 KiB off alignment, checks and unmaps it. */
static double by_mremap(char *p)
{
	const size_t hpage = cs614_hpage_size();
	char *hole = cs614_map_aligned(LEN + 2 * hpage), *to;
	size_t i;
	double t;

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

/*
 * The ioctl against mremap(), in PAIRS pairs: both ranges populated first,
 * then the two timed back to back, in alternating order. Returns the median
 * of the pairs' ratios ioctl / mremap, and prints the medians of each.
 */
static double against_mremap(void)
{
	double pi[PAIRS], pm[PAIRS], ratio[PAIRS], mi, mm, lo, hi;
	int r;

	for (r = 0; r < PAIRS; r++) {
		char *p = setup(), *q = mremap_setup();

		if (r % 2) {
			pi[r] = by_ioctl(p);
			pm[r] = by_mremap(q);
		} else {
			pm[r] = by_mremap(q);
			pi[r] = by_ioctl(p);
		}
		check(p);
		munmap(p, LEN);
		ratio[r] = pi[r] / pm[r];
		ksft_print_msg("  pair %d: ioctl %.0f us, mremap %.0f us, ratio %.2f\n",
			       r, pi[r], pm[r], ratio[r]);
	}
	mi = cs614_median(pi, PAIRS);
	lo = pi[0];
	hi = pi[PAIRS - 1];
	mm = cs614_median(pm, PAIRS);
	ksft_print_msg("mremap of 1 GiB, 4 KiB off: median %.0f us (min %.0f, max %.0f)\n",
		       mm, pm[0], pm[PAIRS - 1]);
	ksft_print_msg("ioctl: median %.0f us (min %.0f, max %.0f), ratio of the medians %.2f\n",
		       mi, lo, hi, mi / mm);
	return cs614_median(ratio, PAIRS);
}

/* The mmap()+munmap() loop of the second thread, and what it saw. */
#define MAX_LAT		1048576	/* samples */

/* Only stop is shared while the thread runs; the samples are read once it is joined. */
static struct {
	atomic_bool stop;
	size_t n;
	double start[MAX_LAT], dur[MAX_LAT];
} lat;

static void *latency_thread(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&lat.stop, memory_order_acquire) && lat.n < MAX_LAT) {
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
	atomic_store_explicit(&lat.stop, false, memory_order_release);
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
		int uffd = syscall(__NR_userfaultfd, O_CLOEXEC);

		if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) ||
		    uffd_register(uffd, p, len, true, false, false))
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
	atomic_store_explicit(&lat.stop, true, memory_order_release);
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

/*
 * The sibling's samples, in memory shared with it: when each munmap() or
 * fork() began and how long it took.
 */
#define SIB_LEN		(8192 * MB)
#define SIB_STRIDE	16	/* one page in 16 populated: 512 MiB */
#define SIB_MAX		262144	/* samples */
#define SIB_FORK_EVERY	16	/* one fork() for 15 munmap() */

struct sibling {
	atomic_bool go, stop;
	atomic_size_t n;
	double start[SIB_MAX], dur[SIB_MAX];
	bool fork[SIB_MAX];	/* a fork(), not a munmap() */
};

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		ksft_print_msg("sched_setaffinity: %s\n", strerror(errno));
}

/*
 * The sibling: unmaps the last 4 KiB of its copy of the range (a split of
 * the VMA, which shrinks page by page: a piece mapped again would not merge
 * back into a VMA copied by fork, and VMAs would pile up), and now and then
 * forks a child that exits at once, timing each munmap() and fork(), until
 * told to stop.
 */
static void sibling_loop(struct sibling *s, char *p, size_t len, int cpu)
{
	size_t i = 0, unmapped = 0, n;
	double t, d;
	pid_t pid;

	if (cpu >= 0)
		pin_to_cpu(cpu);
	while (!atomic_load_explicit(&s->go, memory_order_acquire))
		usleep(1000);
	while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
		n = atomic_load_explicit(&s->n, memory_order_relaxed);
		if (n == SIB_MAX || unmapped + 2 > len / PG)
			break;
		s->fork[n] = i % SIB_FORK_EVERY == SIB_FORK_EVERY - 1;
		t = cs614_now_us();
		if (s->fork[n]) {
			pid = fork();
			if (pid == 0)
				_exit(0);
			d = cs614_now_us() - t;
			if (pid > 0)
				waitpid(pid, NULL, 0);
		} else {
			munmap(p + len - ++unmapped * PG, PG);
			d = cs614_now_us() - t;
		}
		s->start[n] = t;
		s->dur[n] = d;
		atomic_store_explicit(&s->n, n + 1, memory_order_release);
		i++;
	}
	_exit(0);
}

/*
 * The number, worst and 99th-percentile duration (ms) of the sibling's
 * samples of one kind that overlapped [lo, hi) (during), or ended before lo.
 */
static size_t sibling_stats(const struct sibling *s, size_t total, bool fork, bool during,
			    double lo, double hi, double *worst, double *p99)
{
	double *d = malloc((total ? total : 1) * sizeof(*d));
	size_t i, m = 0;

	if (!d)
		ksft_exit_fail_msg("no memory\n");
	for (i = 0; i < total; i++) {
		if (s->fork[i] != fork)
			continue;
		if (during ? s->start[i] < hi && s->start[i] + s->dur[i] > lo :
			     s->start[i] + s->dur[i] <= lo)
			d[m++] = s->dur[i];
	}
	qsort(d, m, sizeof(*d), cs614_cmp_double);
	*worst = m ? d[m - 1] / 1000 : 0.0;
	*p99 = m ? d[(m * 99) / 100] / 1000 : 0.0;
	free(d);
	return m;
}

/* Prints what the sibling's samples of one kind took during [t0, t1), and before. */
static void sibling_report(const char *what, const struct sibling *s, size_t total, bool fork,
			   double t0, double t1)
{
	double worst, p99, worst0, p990;
	size_t m;

	m = sibling_stats(s, total, fork, true, t0, t1, &worst, &p99);
	sibling_stats(s, total, fork, false, t0, t1, &worst0, &p990);
	ksft_print_msg("  %s: %zu, worst %.2f ms, p99 %.2f ms (before: worst %.2f, p99 %.2f ms)\n",
		       what, m, worst, p99, worst0, p990);
}

/*
 * A parent maps 8 GiB (MAP_NORESERVE), gives it an anon_vma (one page) and
 * forks: the child's copy of the VMA gets an anon_vma of its own under the
 * same root. The parent then populates one page in 16 (512 MiB, its own:
 * compaction refuses shared pages, so it writes the first page again too)
 * and compacts the range while the child splits its copy and forks.
 */
static void sibling_stall(void)
{
	const size_t nr = SIB_LEN / PG;
	struct sibling *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *p = mmap(NULL, SIB_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	size_t i, total;
	double t0, t1;
	struct cs614_compact_vma arg;
	int cpu_a = -1, cpu_b = -1;
	struct entry *tab;
	cpu_set_t all;
	pid_t child;

	if (s == MAP_FAILED || p == MAP_FAILED || madvise(p, SIB_LEN, MADV_NOHUGEPAGE) ||
	    sched_getaffinity(0, sizeof(all), &all))
		ksft_exit_fail_msg("sibling setup: %s\n", strerror(errno));
	cs614_two_cpus(&cpu_a, &cpu_b);
	*(uint64_t *)p = 1;
	child = fork();
	if (child < 0)
		ksft_exit_fail_msg("fork: %s\n", strerror(errno));
	if (child == 0)
		sibling_loop(s, p, SIB_LEN, cpu_b);
	if (cpu_a >= 0)
		pin_to_cpu(cpu_a);
	tab = mmap(NULL, nr * sizeof(*tab), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (tab == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	for (i = 0; i < nr; i += SIB_STRIDE)
		*(uint64_t *)(p + i * PG) = i + 1;
	atomic_store_explicit(&s->go, true, memory_order_release);
	usleep(200000);
	arg = (struct cs614_compact_vma){
		.addr = (uintptr_t)p, .length = nr, .buff = (uintptr_t)tab,
	};
	t0 = cs614_now_us();
	if (ioctl(fd, IOCTL_COMPACT_VMA, &arg))
		ksft_exit_fail_msg("IOCTL_COMPACT_VMA: %s\n", strerror(errno));
	t1 = cs614_now_us();
	usleep(20000);
	atomic_store_explicit(&s->stop, true, memory_order_release);
	if (waitpid(child, NULL, 0) != child)
		ksft_exit_fail_msg("waitpid: %s\n", strerror(errno));
	sched_setaffinity(0, sizeof(all), &all);
	for (i = 0; i < nr / SIB_STRIDE; i++)
		if (*(uint64_t *)(p + i * PG) != i * SIB_STRIDE + 1)
			ksft_exit_fail_msg("page %zu lost\n", i * SIB_STRIDE);

	total = atomic_load_explicit(&s->n, memory_order_acquire);
	ksft_print_msg("IOCTL_COMPACT_VMA, %zu MiB, %zu MiB populated, and a sibling: %.1f ms\n",
		       SIB_LEN / MB, SIB_LEN / SIB_STRIDE / MB, (t1 - t0) / 1000);
	sibling_report("sibling's munmap of 4 KiB", s, total, false, t0, t1);
	sibling_report("sibling's fork", s, total, true, t0, t1);
	munmap(tab, nr * sizeof(*tab));
	munmap(p, SIB_LEN);
	munmap(s, sizeof(*s));
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
	double samples[3][REPS], med[3], with_promotion[REPS], mp, ratio;
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
	ratio = against_mremap();
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

	ksft_print_msg("ioctl / mremap: median of the pairs' ratios %.2f\n", ratio);
	ksft_test_result(ratio <= 2, "ioctl / mremap <= 2\n");
	cs614_thp_set("never");
	stall("IOCTL_COMPACT_VMA", LEN, 1);
	stall("UFFDIO_MOVE", LEN, 0);
	stall("IOCTL_COMPACT_VMA", 2 * LEN, 1);
	stall("UFFDIO_MOVE", 2 * LEN, 0);
	sibling_stall();
	cs614_thp_restore();
	ksft_finished();
}
