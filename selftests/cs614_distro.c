// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 and the mm of a distribution kernel: what moving, promoting and
 * compacting do with the kinds of pages such a kernel has besides plain
 * anonymous memory.
 *
 * - KSM pages (merged by ksmd): compaction refuses a range holding one
 *   (EBUSY), promotion leaves its 2 MiB range alone, a move unmerges them as
 *   mremap() does.
 * - NUMA hinting PTEs (PROT_NONE, made by the NUMA balancing scanner): present
 *   pages for compaction and promotion alike.
 * - Memory cgroups: a huge page that cannot be charged is not made and its
 *   range is left as it was; compaction near the limit succeeds or fails with
 *   ENOMEM having changed nothing; compaction leaks no charge.
 * - Poisoned pages (MADV_HWPOISON): compaction refuses them (EHWPOISON),
 *   promotion leaves their 2 MiB range alone.
 * - MGLRU aging and DAMON sampling the memory that promotion rounds and
 *   compactions work on.
 *
 * The tests change system settings (ksmd, NUMA balancing, a cgroup, a DAMON
 * monitor) and record what they changed in their fixture data, which the
 * harness shares with the test's parent: the teardowns run there
 * (FIXTURE_TEARDOWN_PARENT), after the test process has exited, so that they
 * undo everything even when it died of a signal, and find its cgroup empty.
 * The main process puts the sysctls back at exit too, should the harness'
 * timeout have killed a test before its teardown ran.
 *
 * The ABI counts 4 KiB pages: every test skips when the page size is not
 * 4 KiB. THP is set to "never", so that every huge page seen is cs614's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE	12
#endif
#ifndef MADV_HWPOISON
#define MADV_HWPOISON	100
#endif

#define KB		1024UL
#define HPAGE		cs614_hpage_size()
/* The page of the ABI; the tests skip unless it is the page size. */
#define PG		4096UL
/* Pages in a huge page (512), and its size in kB (2048), as smaps counts. */
#define HPAGE_NR	(HPAGE / PG)
#define HPAGE_KB	((long)(HPAGE / KB))
#define ROUND_MS	60000

struct entry {
	uint64_t old;
	uint64_t new;
};

/* Seconds on the monotonic clock. */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Writes s to the file at path in one write(); -1 with errno on error. */
static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), err;
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	err = errno;
	close(fd);
	errno = err;
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int write_long(const char *path, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	return write_str(path, buf);
}

/* Reads the first line of the file at path into buf, without its newline; -1 on error. */
static int read_line(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Whether the list of words s (separated by spaces) holds word. */
static bool has_word(const char *s, const char *word)
{
	size_t len = strlen(word);
	const char *w;

	for (w = strstr(s, word); w; w = strstr(w + 1, word))
		if ((w == s || w[-1] == ' ') && (!w[len] || w[len] == ' '))
			return true;
	return false;
}

#define KSM_DIR		"/sys/kernel/mm/ksm/"
#define NUMA_SYSCTL	"/proc/sys/kernel/numa_balancing"
#define NUMA_DEBUGFS	"/sys/kernel/debug/sched/numa_balancing/"

/*
 * The settings the tests change, with the values they had when the program
 * started: a teardown puts back those of its kind, the main process all of
 * them at exit.
 */
static const char *const knobs[] = {
	KSM_DIR "pages_to_scan",
	KSM_DIR "sleep_millisecs",
	KSM_DIR "run",
	NUMA_SYSCTL,
	NUMA_DEBUGFS "scan_delay_ms",
	NUMA_DEBUGFS "scan_period_min_ms",
};

static char knob_initial[ARRAY_SIZE(knobs)][32];
static pid_t knobs_pid;

/* Puts back the initial values of the knobs whose path starts with prefix. */
static void knobs_put_back(const char *prefix)
{
	char now[32];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(knobs); i++) {
		if (!knob_initial[i][0] || strncmp(knobs[i], prefix, strlen(prefix)))
			continue;
		if (read_line(knobs[i], now, sizeof(now)) || !strcmp(now, knob_initial[i]))
			continue;
		/* ksmd was not running: unmerge whatever it merged meanwhile. */
		if (!strcmp(knobs[i], KSM_DIR "run") && strcmp(knob_initial[i], "1"))
			write_str(knobs[i], "2");
		if (write_str(knobs[i], knob_initial[i]))
			fprintf(stderr, "# cannot put back %s (%s): %s\n", knobs[i],
				knob_initial[i], strerror(errno));
	}
}

/*
 * Sets a knob whose initial value is known, so that it can be put back; -1
 * otherwise (errno ENOENT: it was unreadable when the program started).
 */
static int knob_set(const char *path, const char *val)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(knobs); i++)
		if (!strcmp(knobs[i], path) && knob_initial[i][0])
			return write_str(path, val);
	errno = ENOENT;
	return -1;
}

static void knobs_at_exit(void)
{
	if (getpid() == knobs_pid)
		knobs_put_back("/");
}

static void __attribute__((constructor)) knobs_save(void)
{
	size_t i;

	knobs_pid = getpid();
	for (i = 0; i < ARRAY_SIZE(knobs); i++)
		if (read_line(knobs[i], knob_initial[i], sizeof(knob_initial[i])))
			knob_initial[i][0] = '\0';
	atexit(knobs_at_exit);
}

/* Puts back the THP mode the program started with (cs614_util.h saved it). */
static void thp_put_back(void)
{
	char now[32];

	if (cs614_thp_initial[0] && !cs614_thp_get(now, sizeof(now)) &&
	    strcmp(now, cs614_thp_initial) && cs614_thp_write(cs614_thp_initial))
		perror("putting back " CS614_THP_PATH);
}

/*
 * What every fixture needs: /dev/cs614 open into *fd and the process
 * registered for promotion rounds, whose results are read from kpageflags;
 * 4 KiB pages. Returns why the test must skip, or NULL; then *fd < 0 is a
 * failure (errno tells).
 */
static const char *setup_common(int *fd)
{
	const char *why = cs614_open_for_rounds(fd);

	if (why || *fd < 0)
		return why;
	return cs614_page_not_4k();
}

/* Whether the page at addr is present, from pagemap: reading it would fault it in. */
static bool present(const void *addr)
{
	return cs614_pagemap(addr) & PM_PRESENT;
}

/*
 * Whether addr is a hole: no page mapped there, so that reading it takes a
 * page fault (a minor one, mapping the zero page) and returns 0.
 */
static bool hole_faults(const char *addr)
{
	struct rusage before, after;
	char c;

	if (present(addr))
		return false;
	getrusage(RUSAGE_SELF, &before);
	c = FORCE_READ(*addr);
	getrusage(RUSAGE_SELF, &after);
	return c == 0 && after.ru_minflt > before.ru_minflt;
}

/* What a table is filled with before a call that must not write it. */
#define TABLE_FILL	0xa5

static void fill_table(struct entry *t, size_t entries)
{
	memset(t, TABLE_FILL, entries * sizeof(*t));
}

static bool table_untouched(const struct entry *t, size_t entries)
{
	return cs614_all_bytes(t, entries * sizeof(*t), (char)TABLE_FILL);
}

/*
 * Whether the n pages at p still live where before, from cs614_where(),
 * says: the same pfn or swap entry, present or not. Logs the first that
 * changed.
 */
static bool same_where(struct __test_metadata *_metadata, const char *p, size_t n,
		       const uint64_t *before)
{
	uint64_t *now = calloc(n, sizeof(*now));
	bool same = now && !cs614_where(p, n, now);
	size_t i;

	for (i = 0; same && i < n; i++) {
		if (now[i] != before[i]) {
			TH_LOG("page %zu: pagemap %#llx, was %#llx", i,
			       (unsigned long long)now[i], (unsigned long long)before[i]);
			same = false;
		}
	}
	free(now);
	return same;
}

/*
 * Whether the pages of the n at p that were populated (before[i] != 0) hold
 * their stamps, page skip (a poisoned one: reading it is SIGBUS) left out.
 */
static bool stamps_intact(struct __test_metadata *_metadata, const char *p, size_t n,
			  const uint64_t *before, uint64_t seed, size_t skip)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i != skip && before[i] && !cs614_stamped(p + i * PG, i, seed)) {
			TH_LOG("page %zu lost its contents", i);
			return false;
		}
	}
	return true;
}

/*
 * Checks a compaction of the n pages at p that returned 0, where before[]
 * (cs614_where(), taken just before the call) says which pages were
 * populated and where they lived, each populated page i stamped with i and
 * seed: the table is the one the ABI describes, every populated page is in
 * its slot, the same page (pfn), unless the 2 MiB range it went to became a
 * huge page, and holds its stamp; every hole is a hole. Every pagemap entry
 * is checked before any byte is read: a read may migrate the page it reads
 * (NUMA balancing).
 */
static bool compacted_ok(struct __test_metadata *_metadata, char *p, size_t n,
			 const uint64_t *before, const struct entry *t, uint64_t seed)
{
	size_t i, k = 0, holes = 0, nr_pop = 0;
	uintptr_t huge_checked = 0, range;
	bool huge = false;
	char *new;

	for (i = 0; i < n; i++)
		nr_pop += !!before[i];
	for (i = 0; i < n; i++) {
		new = (char *)(uintptr_t)t[i].new;
		if (t[i].old != (uintptr_t)(p + i * PG)) {
			TH_LOG("entry %zu: old %#llx", i, (unsigned long long)t[i].old);
			return false;
		}
		if (!before[i]) {
			if (new != p + (nr_pop + holes) * PG || present(new)) {
				TH_LOG("hole %zu: new %p, want %p, present %d", i, new,
				       p + (nr_pop + holes) * PG, present(new));
				return false;
			}
			holes++;
			continue;
		}
		range = (uintptr_t)new & ~(HPAGE - 1);
		if (range != huge_checked) {
			huge_checked = range;
			huge = cs614_is_thp((void *)range);
		}
		if (new != p + k * PG ||
		    (!huge && (cs614_pagemap(new) & CS614_PM_WHERE) != before[i])) {
			TH_LOG("page %zu: new %p, want %p; pagemap %#llx, was %#llx", i, new,
			       p + k * PG, (unsigned long long)cs614_pagemap(new),
			       (unsigned long long)before[i]);
			return false;
		}
		k++;
	}
	for (i = 0; i < n; i++) {
		new = (char *)(uintptr_t)t[i].new;
		if (before[i] ? !cs614_stamped(new, i, seed) : !hole_faults(new)) {
			TH_LOG("entry %zu: %s at %p", i,
			       before[i] ? "wrong contents" : "not a hole", new);
			return false;
		}
	}
	return true;
}

/* A free range of len bytes with a free page on each side; NULL on error. */
static char *free_range(size_t len)
{
	char *p = mmap(NULL, len + 2 * PG, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	munmap(p, len + 2 * PG);
	return p + PG;
}

/*
 * KSM. Identical pages in a MADV_MERGEABLE VMA, merged by ksmd (run=1,
 * scanning fast), which is stopped (run=0 keeps the merged pages) before the
 * operation, so that nothing changes under the test. A KSM page is mapped by
 * every page merged into it: not exclusive, compaction cannot move it and
 * promotion's collapse counts it shared.
 */
/* A mask, as vm_util.h's KPF_* (which has no KPF_KSM). */
#define KPF_KSM		BIT_ULL(21)
#define KSM_WAIT_S	45

/* The number of the n pages at p that are KSM pages, from kpageflags. */
static size_t ksm_pages(const char *p, size_t n)
{
	size_t i, k = 0;
	uint64_t pfn;

	for (i = 0; i < n; i++) {
		pfn = cs614_pfn(p + i * PG);
		k += pfn && (cs614_kpageflags(pfn) & KPF_KSM);
	}
	return k;
}

/*
 * Runs ksmd, fast, until want of the n pages at p are merged, then stops
 * it. Returns why the test must skip (no permission, or no merge within
 * KSM_WAIT_S seconds), or NULL. The teardown puts the settings back.
 */
static const char *ksm_merge(const char *p, size_t n, size_t want)
{
	static char why[128];
	double end = now_s() + KSM_WAIT_S;
	size_t got;

	if (knob_set(KSM_DIR "pages_to_scan", "4096") ||
	    knob_set(KSM_DIR "sleep_millisecs", "10") || knob_set(KSM_DIR "run", "1")) {
		snprintf(why, sizeof(why), "cannot start ksmd: %s", strerror(errno));
		return why;
	}
	do {
		got = ksm_pages(p, n);
		if (got >= want)
			break;
		usleep(100 * 1000);
	} while (now_s() < end);
	/* Waits for the batch of pages that ksmd is scanning, if any. */
	write_str(KSM_DIR "run", "0");
	if (got >= want)
		return NULL;
	snprintf(why, sizeof(why), "ksmd merged %zu of %zu pages in %d s", got, want, KSM_WAIT_S);
	return why;
}

FIXTURE(ksm)
{
	int fd;
};

FIXTURE_SETUP(ksm)
{
	const char *why = setup_common(&self->fd);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	if (access(KSM_DIR "run", F_OK))
		SKIP(return, "no " KSM_DIR " (CONFIG_KSM)");
	/* Last: the teardown puts it back, but does not run after a failed or skipped setup. */
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN_PARENT(ksm)
{
	knobs_put_back(KSM_DIR);
	thp_put_back();
}

/*
 * A range holding KSM pages, unique pages and holes: refused with EBUSY,
 * nothing moved, the table not written, every page as it was.
 */
TEST_F_TIMEOUT(ksm, compaction_refused, 180)
{
	const size_t n = 64;
	uint64_t before[64];
	struct entry t[64];
	char *p = cs614_map_aligned(n * PG);
	size_t i, want = 0;
	const char *why;

	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, madvise(p, n * PG, MADV_MERGEABLE)) TH_LOG("%s", strerror(errno));
	/* Every fourth page a hole; of the others, those of the first half identical. */
	for (i = 0; i < n; i++) {
		if (i % 4 == 3)
			continue;
		if (i < n / 2) {
			memset(p + i * PG, 'K', PG);
			want++;
		} else {
			cs614_stamp(p, i, 21);
		}
	}
	why = ksm_merge(p, n, want);
	if (why)
		SKIP(munmap(p, n * PG); return, "%s", why);
	ASSERT_EQ(0, cs614_where(p, n, before));
	fill_table(t, n);

	errno = 0;
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(EBUSY, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
	EXPECT_TRUE(same_where(_metadata, p, n, before));
	EXPECT_TRUE(table_untouched(t, n));
	EXPECT_EQ(want, ksm_pages(p, n));
	for (i = 0; i < n; i++)
		ASSERT_TRUE(i % 4 == 3 ? hole_faults(p + i * PG) :
			    i < n / 2 ? cs614_all_bytes(p + i * PG, PG, 'K') :
			    cs614_stamped(p + i * PG, i, 21))
			TH_LOG("page %zu", i);
	munmap(p, n * PG);
}

/*
 * Two fully populated 2 MiB ranges of a mergeable VMA, one all KSM pages
 * (512 identical pages), one with two KSM pages among unique ones: a round
 * promotes neither, and changes none of their pages. A range of another,
 * unmergeable VMA is promoted by the same round.
 */
TEST_F_TIMEOUT(ksm, promotion_skips_range, 180)
{
	const size_t nr = HPAGE_NR;
	uint64_t *before = calloc(2 * nr, sizeof(*before));
	char *m = cs614_map_aligned(2 * HPAGE);
	char *c = cs614_map_aligned(HPAGE);
	const char *why;
	size_t i;

	ASSERT_NE(NULL, before);
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(0, madvise(m, 2 * HPAGE, MADV_MERGEABLE)) TH_LOG("%s", strerror(errno));
	for (i = 0; i < nr; i++)
		memset(m + i * PG, 'A', PG);
	memset(m + HPAGE, 'B', PG);
	memset(m + HPAGE + PG, 'B', PG);
	for (i = 2; i < nr; i++)
		cs614_stamp(m + HPAGE, i, 22);
	for (i = 0; i < nr; i++)
		cs614_stamp(c, i, 23);
	why = ksm_merge(m, 2 * nr, nr + 2);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, cs614_where(m, 2 * nr, before));

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	EXPECT_TRUE(cs614_is_thp(c)) TH_LOG("the round promoted nothing");
	EXPECT_EQ(0U, cs614_count_thp(m, 2 * HPAGE));
	EXPECT_EQ(0, cs614_anon_huge_kb(m));
	EXPECT_TRUE(same_where(_metadata, m, 2 * nr, before));
	EXPECT_EQ(nr + 2, ksm_pages(m, 2 * nr));
	for (i = 0; i < nr; i++) {
		ASSERT_TRUE(cs614_all_bytes(m + i * PG, PG, 'A')) TH_LOG("page %zu", i);
		ASSERT_TRUE(cs614_stamped(c + i * PG, i, 23)) TH_LOG("control page %zu", i);
		if (i >= 2)
			ASSERT_TRUE(cs614_stamped(m + HPAGE + i * PG, i, 22))
				TH_LOG("page %zu", nr + i);
	}
	EXPECT_TRUE(cs614_all_bytes(m + HPAGE, 2 * PG, 'B'));
	munmap(m, 2 * HPAGE);
	munmap(c, HPAGE);
	free(before);
}

/*
 * A move of a VMA holding KSM pages succeeds: mremap()'s move path breaks
 * the KSM pages of the range it moves (the pages at the new place are the
 * process' own), the contents are intact there, the old range faults.
 */
TEST_F_TIMEOUT(ksm, move_unmerges, 180)
{
	const size_t n = 64;
	struct cs614_move_vma arg = { 0 };
	char *src = cs614_map_aligned(n * PG), *to;
	uintptr_t start, end;
	const char *why;
	size_t i;

	ASSERT_EQ(0, cs614_install_segv_handler());
	ASSERT_NE(NULL, src);
	ASSERT_EQ(0, madvise(src, n * PG, MADV_MERGEABLE)) TH_LOG("%s", strerror(errno));
	for (i = 0; i < n; i++) {
		if (i < n / 2)
			memset(src + i * PG, 'M', PG);
		else
			cs614_stamp(src, i, 24);
	}
	why = ksm_merge(src, n, n / 2);
	if (why)
		SKIP(munmap(src, n * PG); return, "%s", why);
	ASSERT_TRUE(cs614_vma_bounds(src, &start, &end));
	ASSERT_EQ((uintptr_t)src, start);
	ASSERT_EQ((uintptr_t)(src + n * PG), end);
	to = free_range(n * PG);
	ASSERT_NE(NULL, to);
	arg.vma_addr = (uintptr_t)src;
	arg.to_addr = (uintptr_t)to;

	ASSERT_EQ(0, ioctl(self->fd, IOCTL_MVE_VMA_TO, &arg)) TH_LOG("%s", strerror(errno));

	/* Where the pages are (pagemap, kpageflags) first, their bytes last. */
	EXPECT_EQ(0U, ksm_pages(to, n)) TH_LOG("KSM pages at the new place");
	EXPECT_EQ(n, cs614_present_pages(to, n * PG));
	for (i = 0; i < n; i++)
		ASSERT_TRUE(i < n / 2 ? cs614_all_bytes(to + i * PG, PG, 'M') :
			    cs614_stamped(to + i * PG, i, 24))
			TH_LOG("page %zu", i);
	EXPECT_TRUE(cs614_faults(src));
	EXPECT_TRUE(cs614_faults(src + n * PG - 1));
	munmap(to, n * PG);
}

/*
 * NUMA hinting PTEs. With two nodes and NUMA balancing on, the scanner of
 * the task (task_numa_work(), run from its ticks) makes the PTEs of its
 * memory PROT_NONE so that the next access faults: they are still present
 * pages (pte_present()), which compaction moves as they are and promotion's
 * collapse takes like any other.
 */
#define NUMA_WAIT_S	45

/* The number of nodes with memory, from sysfs ("0-1"); 0 on error. */
static int memory_nodes(void)
{
	char buf[256], *s, *save;
	int n = 0, a, b, r;

	if (read_line("/sys/devices/system/node/has_memory", buf, sizeof(buf)))
		return 0;
	for (s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		r = sscanf(s, "%d-%d", &a, &b);
		if (r == 1)
			n++;
		else if (r == 2 && b >= a)
			n += b - a + 1;
	}
	return n;
}

#define SCAN_SEQ	"mm->numa_scan_seq"

/* How many times the NUMA scanner of the mm has started over; -1 if unknown. */
static long numa_scan_seq(void)
{
	FILE *f = fopen("/proc/self/sched", "r");
	char line[256], *colon;
	long seq = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, SCAN_SEQ, strlen(SCAN_SEQ)))
			continue;
		colon = strchr(line, ':');
		if (colon)
			seq = strtol(colon + 1, NULL, 10);
		break;
	}
	fclose(f);
	return seq;
}

/*
 * Runs on the CPU, touching nothing but its stack, until NUMA balancing has
 * made want PTE updates since *upd (system-wide) and, if /proc/self/sched
 * tells, the scanner of the mm has started over three times since *seq: one
 * pass may skip a new VMA, the next one scans it, whole. False after
 * NUMA_WAIT_S seconds; *upd and *seq then say how far it got.
 */
/* A thread that waits for its pipe to close: the mm then has two users. */
static void *numa_idle_thread(void *arg)
{
	char c;

	return (void *)(long)read(*(int *)arg, &c, 1);
}

static bool numa_scanned(long *upd, long want, long *seq)
{
	const long upd0 = *upd, seq0 = *seq;
	double end = now_s() + NUMA_WAIT_S, t;
	pthread_t idle;
	int pipefd[2];
	bool ok = false;

	/*
	 * The scanner leaves alone the pages of a single-threaded process
	 * that are on the node it runs on (change_pte_range()): with a
	 * second thread, every page gets a hinting PTE.
	 */
	if (pipe(pipefd) || pthread_create(&idle, NULL, numa_idle_thread, &pipefd[0]))
		return false;
	do {
		/* The scanner runs on the task's ticks: 100 ms of user time. */
		t = now_s() + 0.1;
		while (now_s() < t)
			continue;
		*upd = cs614_vmstat("numa_pte_updates");
		*seq = numa_scan_seq();
		ok = *upd - upd0 >= want && (seq0 < 0 || *seq >= seq0 + 3);
	} while (!ok && now_s() < end);
	close(pipefd[1]);
	pthread_join(idle, NULL);
	close(pipefd[0]);
	return ok;
}

FIXTURE(numa)
{
	int fd;
};

FIXTURE_SETUP(numa)
{
	const char *why = setup_common(&self->fd);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	if (memory_nodes() < 2)
		SKIP(return, "%d NUMA node(s) with memory: hinting needs two", memory_nodes());
	if (access(NUMA_SYSCTL, W_OK) || cs614_vmstat("numa_pte_updates") < 0)
		SKIP(return, "no writable " NUMA_SYSCTL " (CONFIG_NUMA_BALANCING, root)");
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN_PARENT(numa)
{
	knobs_put_back(NUMA_SYSCTL);
	knobs_put_back(NUMA_DEBUGFS);
	thp_put_back();
}

/*
 * A range of 512 pages, three in four populated, and a full 2 MiB range,
 * left alone until the scanner has made their PTEs hinting ones: the range
 * compacts (every page in its slot, the same page, its contents), the 2 MiB
 * range is promoted, its contents intact.
 */
TEST_F_TIMEOUT(numa, hinting_ptes_move_and_promote, 180)
{
	const size_t n = HPAGE_NR;
	uint64_t *before = calloc(n, sizeof(*before));
	uint64_t *hinted = calloc(n, sizeof(*hinted));
	struct entry *t = calloc(n, sizeof(*t));
	char *a = cs614_map_aligned(n * PG);
	char *b = cs614_map_aligned(HPAGE);
	long upd, upd0, seq, seq0;
	size_t i, k = 0;

	ASSERT_NE(NULL, before);
	ASSERT_NE(NULL, hinted);
	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, knob_set(NUMA_SYSCTL, "1")) TH_LOG("%s", strerror(errno));
	/*
	 * Scan new VMAs at once, and often; left as they are without debugfs
	 * at the start of the program (they could not be put back), slower.
	 */
	knob_set(NUMA_DEBUGFS "scan_delay_ms", "10");
	knob_set(NUMA_DEBUGFS "scan_period_min_ms", "100");
	for (i = 0; i < n; i++) {
		if (i % 4 != 1) {
			cs614_stamp(a, i, 31);
			k++;
		}
		cs614_stamp(b, i, 32);
	}
	upd0 = cs614_vmstat("numa_pte_updates");
	upd = upd0;
	seq0 = numa_scan_seq();
	seq = seq0;
	if (!numa_scanned(&upd, k + n, &seq))
		SKIP(return, "NUMA balancing: %ld PTE updates, scan sequence %ld -> %ld in %d s",
		     upd - upd0, seq0, seq, NUMA_WAIT_S);
	ASSERT_EQ(0, cs614_where(a, n, before));
	ASSERT_EQ(0, cs614_where(b, n, hinted));

	ASSERT_EQ(0, cs614_compact(self->fd, a, n, t)) TH_LOG("%s", strerror(errno));
	EXPECT_TRUE(compacted_ok(_metadata, a, n, before, t, 31));

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(b)) TH_LOG("a range of NUMA hinting PTEs was not promoted");
	/* Promoted, it is all in smaps; else every page is where it was. */
	EXPECT_TRUE(cs614_is_thp(b) ? cs614_anon_huge_kb(b) == HPAGE_KB :
		    same_where(_metadata, b, n, hinted));
	for (i = 0; i < n; i++)
		ASSERT_TRUE(cs614_stamped(b + i * PG, i, 32)) TH_LOG("page %zu", i);
	munmap(a, n * PG);
	munmap(b, HPAGE);
	free(before);
	free(hinted);
	free(t);
}

/*
 * Memory cgroups. The test process moves into a cgroup of its own, under
 * cgroup2 at /sys/fs/cgroup (mounted if it is not), with memory.swap.max 0:
 * nothing it charges can be reclaimed, so that a limit holds exactly. The
 * huge page of a promotion is charged to the mm's cgroup; a charge of 2 MiB
 * that fails does not invoke the OOM killer (costly order), a small one
 * would: the limits leave room for the test's own small allocations.
 */
#define CGROUP		"/sys/fs/cgroup"
/* memory.max above memory.current: far less than a huge page, room for the rest. */
#define PROMOTE_MARGIN	(HPAGE / 2)
#define COMPACT_MARGIN	(64 * PG)
/* A CPU holds up to MEMCG_CHARGE_BATCH (64) pages charged ahead, counted in memory.current. */
#define CHARGE_BATCH	64
/* memory.stat is flushed every 2 s: read 2.5 s after a change, it counts it. */
#define STAT_FLUSH_US	2500000
#define ANON_SLACK	(16 * (long)PG)
#define REPEAT		32

FIXTURE(memcg)
{
	int fd;
	bool mounted;		/* cgroup2 mounted by the test: unmounted at the end */
	bool made;		/* the test's cgroup, removed at the end */
	bool no_swap;		/* memory.swap.max of the cgroup set to 0 */
	char cg[64];
};

static long cg_read(const char *cg, const char *file)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", cg, file);
	return cs614_read_long(path);
}

static int cg_write(const char *cg, const char *file, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", cg, file);
	return write_str(path, val);
}

static int cg_write_long(const char *cg, const char *file, long v)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", cg, file);
	return write_long(path, v);
}

/* The value of key in a file of "key value" lines (memory.stat, memory.events); -1 if absent. */
static long cg_key(const char *cg, const char *file, const char *key)
{
	size_t len = strlen(key);
	char path[128], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cg, file);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, len) && line[len] == ' ') {
			v = strtol(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/*
 * Moves the test process into a cgroup of its own with the memory
 * controller. Returns why the test must skip, or NULL; what it did is
 * recorded for the teardown, which undoes it.
 */
static const char *memcg_enter(FIXTURE_DATA(memcg) *self)
{
	static char why[160];
	char buf[256];

	if (access(CGROUP "/cgroup.controllers", F_OK)) {
		if (mount("none", CGROUP, "cgroup2", 0, NULL)) {
			snprintf(why, sizeof(why), "no cgroup2 at " CGROUP ", mounting it: %s",
				 strerror(errno));
			return why;
		}
		self->mounted = true;
	}
	if (read_line(CGROUP "/cgroup.controllers", buf, sizeof(buf)) || !has_word(buf, "memory"))
		return "no memory controller in cgroup2 (CONFIG_MEMCG, or bound to cgroup1)";
	if ((read_line(CGROUP "/cgroup.subtree_control", buf, sizeof(buf)) ||
	     !has_word(buf, "memory")) &&
	    write_str(CGROUP "/cgroup.subtree_control", "+memory")) {
		snprintf(why, sizeof(why), "cannot enable the memory controller: %s",
			 strerror(errno));
		return why;
	}
	snprintf(self->cg, sizeof(self->cg), CGROUP "/cs614-distro-%d", getpid());
	if (mkdir(self->cg, 0755)) {
		snprintf(why, sizeof(why), "mkdir %s: %s", self->cg, strerror(errno));
		return why;
	}
	self->made = true;
	self->no_swap = !cg_write(self->cg, "memory.swap.max", "0");
	if (cg_write_long(self->cg, "cgroup.procs", getpid())) {
		snprintf(why, sizeof(why), "cannot move into %s: %s", self->cg, strerror(errno));
		return why;
	}
	return NULL;
}

FIXTURE_SETUP(memcg)
{
	const char *why = setup_common(&self->fd);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN_PARENT(memcg)
{
	int i;

	/* The test process has exited: its cgroup is empty, or about to be. */
	for (i = 0; self->made && i < 50; i++) {
		if (!rmdir(self->cg) || errno == ENOENT)
			break;
		usleep(100 * 1000);
	}
	if (self->made && i == 50)
		fprintf(stderr, "# cannot remove %s: %s\n", self->cg, strerror(errno));
	if (self->mounted && umount(CGROUP))
		perror("# umount " CGROUP);
	thp_put_back();
}

/*
 * A populated 2 MiB range in a cgroup whose memory.max leaves less than
 * 2 MiB: the round tries to charge the huge page (a "max" event), fails, and
 * leaves the range as it was, every page in place and intact. With the limit
 * raised, the next round promotes it.
 */
TEST_F_TIMEOUT(memcg, promotion_at_limit, 180)
{
	const size_t nr = HPAGE_NR;
	uint64_t *before = calloc(nr, sizeof(*before));
	long cur, max, events;
	const char *why;
	char *p;
	size_t i;

	ASSERT_NE(NULL, before);
	why = memcg_enter(self);
	if (why)
		SKIP(return, "%s", why);
	if (!self->no_swap)
		SKIP(return, "cannot set memory.swap.max: a limit would swap, not hold");
	p = cs614_map_aligned(HPAGE);
	ASSERT_NE(NULL, p);
	for (i = 0; i < nr; i++)
		cs614_stamp(p, i, 41);
	ASSERT_EQ(0, cs614_where(p, nr, before));
	cur = cg_read(self->cg, "memory.current");
	ASSERT_LT(0, cur);
	max = cur + PROMOTE_MARGIN;
	ASSERT_EQ(0, cg_write_long(self->cg, "memory.max", max)) TH_LOG("%s", strerror(errno));
	events = cg_key(self->cg, "memory.events", "max");

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	EXPECT_FALSE(cs614_is_thp(p)) TH_LOG("a huge page charged past memory.max");
	EXPECT_EQ(0, cs614_anon_huge_kb(p));
	EXPECT_TRUE(same_where(_metadata, p, nr, before));
	EXPECT_GE(max, cg_read(self->cg, "memory.current"));
	EXPECT_LT(events, cg_key(self->cg, "memory.events", "max"))
		TH_LOG("no charge was refused: did the round try the range?");
	EXPECT_TRUE(stamps_intact(_metadata, p, nr, before, 41, nr));

	ASSERT_EQ(0, cg_write(self->cg, "memory.max", "max"));
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(p)) TH_LOG("not promoted once the limit was raised");
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_TRUE(stamps_intact(_metadata, p, nr, before, 41, nr));
	munmap(p, HPAGE);
	free(before);
}

/*
 * Compaction in a cgroup 64 pages short of its limit, of a range whose
 * destination has no page table yet and whose new front is a full 2 MiB
 * range: either it succeeds with the table the ABI describes (the front
 * cannot be charged as a huge page and stays small pages), or it fails with
 * ENOMEM and nothing changed. Everything the test writes is allocated before
 * the limit is set.
 */
TEST_F_TIMEOUT(memcg, compaction_near_limit, 180)
{
	const size_t n = 3 * HPAGE_NR;
	uint64_t *before = calloc(n, sizeof(*before));
	struct entry *t = calloc(n, sizeof(*t));
	long cur, max, after;
	const char *why;
	int ret, err;
	char *p;
	size_t i;

	ASSERT_NE(NULL, before);
	ASSERT_NE(NULL, t);
	why = memcg_enter(self);
	if (why)
		SKIP(return, "%s", why);
	if (!self->no_swap)
		SKIP(return, "cannot set memory.swap.max: a limit would swap, not hold");
	p = cs614_map_aligned(n * PG);
	ASSERT_NE(NULL, p);
	/* Every other page of the last two 2 MiB ranges: 512 pages, to the first range. */
	for (i = HPAGE_NR; i < n; i += 2)
		cs614_stamp(p, i, 42);
	ASSERT_EQ(0, cs614_where(p, n, before));
	fill_table(t, n);
	cur = cg_read(self->cg, "memory.current");
	ASSERT_LT(0, cur);
	max = cur + COMPACT_MARGIN;
	ASSERT_EQ(0, cg_write_long(self->cg, "memory.max", max)) TH_LOG("%s", strerror(errno));

	ret = cs614_compact(self->fd, p, n, t);
	err = errno;
	after = cg_read(self->cg, "memory.current");
	/* What is checked next is read, not charged; no limit for it all the same. */
	ASSERT_EQ(0, cg_write(self->cg, "memory.max", "max"));

	EXPECT_GE(max, after);
	if (!ret) {
		EXPECT_FALSE(cs614_is_thp(p)) TH_LOG("a huge page charged past memory.max");
		EXPECT_TRUE(compacted_ok(_metadata, p, n, before, t, 42));
	} else {
		EXPECT_EQ(ENOMEM, err) TH_LOG("errno %d (%s)", err, strerror(err));
		EXPECT_TRUE(same_where(_metadata, p, n, before));
		EXPECT_TRUE(table_untouched(t, n));
		EXPECT_TRUE(stamps_intact(_metadata, p, n, before, 42, n));
	}
	munmap(p, n * PG);
	free(before);
	free(t);
}

/*
 * Charges: a compaction that moves 512 pages and promotes them leaves the
 * cgroup's memory.current and its anonymous memory (memory.stat anon) as
 * they were, within what the CPUs hold charged ahead and a few pages; 32
 * more compactions of the range, repopulated each time, do not make them
 * grow.
 */
TEST_F_TIMEOUT(memcg, compaction_charges, 240)
{
	const size_t n = 2 * HPAGE_NR;
	const long slack = (CHARGE_BATCH * sysconf(_SC_NPROCESSORS_ONLN) + 16) * (long)PG;
	uint64_t *before = calloc(n, sizeof(*before));
	struct entry *t = calloc(n, sizeof(*t));
	long cur0, anon0, cur1, anon1, base;
	const char *why;
	cpu_set_t one;
	char *p;
	size_t i;
	int r;

	ASSERT_NE(NULL, before);
	ASSERT_NE(NULL, t);
	why = memcg_enter(self);
	if (why)
		SKIP(return, "%s", why);
	/* Charges ahead are per CPU: on one CPU, one CPU's worth of them moves. */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() > 0 ? sched_getcpu() : 0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	p = cs614_map_aligned(n * PG);
	ASSERT_NE(NULL, p);
	memset(t, 0, n * sizeof(*t));
	for (i = 1; i < n; i += 2)
		cs614_stamp(p, i, 43);
	ASSERT_EQ(0, cs614_where(p, n, before));
	usleep(STAT_FLUSH_US);
	cur0 = cg_read(self->cg, "memory.current");
	anon0 = cg_key(self->cg, "memory.stat", "anon");
	ASSERT_LT(0, cur0);
	ASSERT_LE((long)(n / 2 * PG), anon0);

	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t)) TH_LOG("%s", strerror(errno));
	ASSERT_TRUE(compacted_ok(_metadata, p, n, before, t, 43));
	usleep(STAT_FLUSH_US);
	cur1 = cg_read(self->cg, "memory.current");
	anon1 = cg_key(self->cg, "memory.stat", "anon");
	TH_LOG("memory.current %ld -> %ld, anon %ld -> %ld; the front %s a huge page",
	       cur0, cur1, anon0, anon1, cs614_is_thp(p) ? "is" : "is not");
	EXPECT_GE(slack, labs(cur1 - cur0));
	EXPECT_GE(ANON_SLACK, labs(anon1 - anon0));

	base = cur1;
	for (r = 0; r < REPEAT; r++) {
		ASSERT_EQ(0, madvise(p, n * PG, MADV_DONTNEED));
		for (i = r % 2; i < n; i += 2)
			cs614_stamp(p, i, r);
		ASSERT_EQ(0, cs614_compact(self->fd, p, n, t)) TH_LOG("%s", strerror(errno));
		for (i = r % 2; i < n; i += 2)
			ASSERT_TRUE(cs614_stamped((char *)(uintptr_t)t[i].new, i, r))
				TH_LOG("compaction %d, page %zu", r, i);
	}
	usleep(STAT_FLUSH_US);
	cur1 = cg_read(self->cg, "memory.current");
	anon1 = cg_key(self->cg, "memory.stat", "anon");
	TH_LOG("after %d more: memory.current %ld, anon %ld", REPEAT, cur1, anon1);
	EXPECT_GE(slack, cur1 - base);
	EXPECT_GE(ANON_SLACK, labs(anon1 - anon0));
	munmap(p, n * PG);
	free(before);
	free(t);
}

/*
 * Poisoned pages. MADV_HWPOISON (CAP_SYS_ADMIN, CONFIG_MEMORY_FAILURE)
 * unmaps the page and leaves a hwpoison entry in its PTE; the process may
 * get a SIGBUS for it on the way out of madvise(), which poison() catches.
 * Reading the page afterwards is SIGBUS: the tests never do.
 */
static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, sig);
}

static struct sigaction bus_old;

/* Puts back the SIGBUS action poison() replaced; returns ret, errno kept. */
static int poison_done(int ret)
{
	int err = errno;

	sigaction(SIGBUS, &bus_old, NULL);
	errno = err;
	return ret;
}

/* Poisons the page at addr; 0, or -1 with errno from madvise(). */
static int poison(void *addr)
{
	struct sigaction sa = { .sa_handler = on_sigbus };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &bus_old))
		return -1;
	if (sigsetjmp(bus_jmp, 1)) {
		/* The kernel signalled the poison it injected. */
		errno = 0;
		return poison_done(0);
	}
	return poison_done(madvise(addr, PG, MADV_HWPOISON));
}

/* Whether errno err from MADV_HWPOISON means that it cannot be tested here. */
static bool poison_unsupported(int err)
{
	return err == EPERM || err == EINVAL || err == EOPNOTSUPP;
}

FIXTURE(hwpoison)
{
	int fd;
};

FIXTURE_SETUP(hwpoison)
{
	const char *why = setup_common(&self->fd);

	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN_PARENT(hwpoison)
{
	thp_put_back();
}

/* A range with a poisoned page: EHWPOISON, nothing moved, the table not written. */
TEST_F_TIMEOUT(hwpoison, compaction_refused, 120)
{
	const size_t n = 64, bad = 10;
	uint64_t before[64];
	struct entry t[64];
	char *p = cs614_map_aligned(n * PG);
	size_t i;
	int ret;

	ASSERT_NE(NULL, p);
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 51);
	ret = poison(p + bad * PG);
	if (ret && poison_unsupported(errno))
		SKIP(return, "MADV_HWPOISON: %s", strerror(errno));
	ASSERT_EQ(0, ret) TH_LOG("MADV_HWPOISON: %s", strerror(errno));
	ASSERT_FALSE(present(p + bad * PG)) TH_LOG("the poisoned page is still mapped");
	ASSERT_EQ(0, cs614_where(p, n, before));
	ASSERT_NE(0U, before[bad]) TH_LOG("no hwpoison entry in pagemap");
	fill_table(t, n);

	errno = 0;
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(EHWPOISON, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
	EXPECT_TRUE(same_where(_metadata, p, n, before));
	EXPECT_TRUE(table_untouched(t, n));
	EXPECT_TRUE(stamps_intact(_metadata, p, n, before, 51, bad));
	munmap(p, n * PG);
}

/*
 * Two full 2 MiB ranges, a page of the first poisoned: a round promotes the
 * second and leaves the first as it was, every other page in place and
 * intact.
 */
TEST_F_TIMEOUT(hwpoison, promotion_skips_range, 180)
{
	const size_t nr = HPAGE_NR, bad = 100;
	uint64_t *before = calloc(2 * nr, sizeof(*before));
	char *p = cs614_map_aligned(2 * HPAGE);
	size_t i;
	int ret;

	ASSERT_NE(NULL, before);
	ASSERT_NE(NULL, p);
	for (i = 0; i < 2 * nr; i++)
		cs614_stamp(p, i, 52);
	ret = poison(p + bad * PG);
	if (ret && poison_unsupported(errno))
		SKIP(return, "MADV_HWPOISON: %s", strerror(errno));
	ASSERT_EQ(0, ret) TH_LOG("MADV_HWPOISON: %s", strerror(errno));
	ASSERT_FALSE(present(p + bad * PG)) TH_LOG("the poisoned page is still mapped");
	ASSERT_EQ(0, cs614_where(p, 2 * nr, before));

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	EXPECT_FALSE(cs614_is_thp(p));
	EXPECT_TRUE(same_where(_metadata, p, nr, before));
	EXPECT_TRUE(stamps_intact(_metadata, p, nr, before, 52, bad));
	EXPECT_TRUE(cs614_is_thp(p + HPAGE)) TH_LOG("the round promoted nothing");
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_TRUE(stamps_intact(_metadata, p, 2 * nr, before, 52, bad));
	munmap(p, 2 * HPAGE);
	free(before);
}

/*
 * MGLRU aging and DAMON. A DAMON vaddr monitor of the test process clears
 * the accessed bits of sampled pages (a page table walk under the mmap read
 * lock, holding a reference to each folio for a moment); a thread has MGLRU
 * age every lruvec with a walk of the page tables of every mm
 * (/sys/kernel/debug/lru_gen, "+ memcg node max_gen": force_scan by
 * default). Meanwhile promotion rounds and compactions run in a loop: each
 * call succeeds, or fails having changed nothing; data is always intact;
 * what a round or a compaction promoted is AnonHugePages in smaps.
 */
#define LRU_GEN		"/sys/kernel/debug/lru_gen"
#define LRU_GEN_ENABLED	"/sys/kernel/mm/lru_gen/enabled"
#define DAMON		"/sys/kernel/mm/damon/admin/kdamonds/"
#define DAMON_CTX	DAMON "0/contexts/0/"
#define AGING_S		12

struct aging {
	atomic_bool stop;
	atomic_long agings;	/* generations made */
	atomic_long refused;	/* writes refused: a race with reclaim's aging */
};

/* Ages every lruvec that LRU_GEN lists once. */
static void age_all(struct aging *a)
{
	struct {
		unsigned long long memcg;
		int node;
		unsigned long max_seq;
	} v[64];
	unsigned long long memcg = 0;
	unsigned long seq;
	char line[256], cmd[96];
	int n = 0, i, node = -1;
	FILE *f = fopen(LRU_GEN, "r");

	if (!f)
		return;
	/* "memcg ID PATH", " node NID", then " SEQ AGE_MS ANON FILE", ascending. */
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "memcg %llu", &memcg) == 1) {
			node = -1;
		} else if (sscanf(line, " node %d", &node) == 1) {
			if (n == ARRAY_SIZE(v))
				break;
			v[n].memcg = memcg;
			v[n].node = node;
			v[n++].max_seq = 0;
		} else if (node >= 0 && n && sscanf(line, " %lu", &seq) == 1) {
			v[n - 1].max_seq = seq;
		}
	}
	fclose(f);
	for (i = 0; i < n; i++) {
		snprintf(cmd, sizeof(cmd), "+ %llu %d %lu\n", v[i].memcg, v[i].node,
			 v[i].max_seq);
		if (write_str(LRU_GEN, cmd))
			atomic_fetch_add(&a->refused, 1);
		else
			atomic_fetch_add(&a->agings, 1);
	}
}

static void *aging_thread(void *arg)
{
	struct aging *a = arg;

	while (!atomic_load(&a->stop)) {
		age_all(a);
		usleep(20 * 1000);
	}
	return NULL;
}

/*
 * Starts a DAMON vaddr monitor of pid, sampling every 2 ms. Returns why the
 * test must skip, or NULL; *made tells the teardown that the kdamond is the
 * test's to remove.
 */
static const char *damon_start(bool *made, pid_t pid)
{
	static const char *const attrs[][2] = {
		{ DAMON "0/contexts/nr_contexts", "1" },
		{ DAMON_CTX "operations", "vaddr" },
		{ DAMON_CTX "monitoring_attrs/intervals/sample_us", "2000" },
		{ DAMON_CTX "monitoring_attrs/intervals/aggr_us", "20000" },
		{ DAMON_CTX "monitoring_attrs/intervals/update_us", "200000" },
		{ DAMON_CTX "targets/nr_targets", "1" },
	};
	static char why[192];
	long kdamonds = cs614_read_long(DAMON "nr_kdamonds");
	char state[16];
	size_t i;

	if (kdamonds < 0)
		return "no " DAMON " (CONFIG_DAMON_SYSFS)";
	if (kdamonds > 0)
		return "DAMON is in use: nr_kdamonds is not 0";
	if (write_str(DAMON "nr_kdamonds", "1")) {
		snprintf(why, sizeof(why), "cannot create a kdamond: %s", strerror(errno));
		return why;
	}
	*made = true;
	for (i = 0; i < ARRAY_SIZE(attrs); i++) {
		if (write_str(attrs[i][0], attrs[i][1])) {
			snprintf(why, sizeof(why), "writing %s to %s: %s (CONFIG_DAMON_VADDR?)",
				 attrs[i][1], attrs[i][0], strerror(errno));
			return why;
		}
	}
	if (write_long(DAMON_CTX "targets/0/pid_target", pid) ||
	    write_str(DAMON "0/state", "on") || read_line(DAMON "0/state", state, sizeof(state)) ||
	    strcmp(state, "on")) {
		snprintf(why, sizeof(why), "cannot start the DAMON monitor: %s", strerror(errno));
		return why;
	}
	return NULL;
}

/* Stops and removes the kdamond damon_start() made; it may have stopped on its own. */
static void damon_remove(void)
{
	int i;

	write_str(DAMON "0/state", "off");
	for (i = 0; i < 50; i++) {
		if (!write_str(DAMON "nr_kdamonds", "0"))
			return;
		usleep(100 * 1000);
	}
	fprintf(stderr, "# cannot remove the kdamond: %s\n", strerror(errno));
}

#define DEBUGFS		"/sys/kernel/debug"

FIXTURE(aging)
{
	int fd;
	bool debugfs;		/* debugfs mounted by the test, unmounted at the end */
	bool damon;		/* a kdamond made by the test, removed at the end */
};

FIXTURE_SETUP(aging)
{
	const char *why = setup_common(&self->fd);
	char enabled[32];

	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	if (read_line(LRU_GEN_ENABLED, enabled, sizeof(enabled)) || !strtoul(enabled, NULL, 0))
		SKIP(return, "MGLRU is not enabled (" LRU_GEN_ENABLED ")");
	if (access(DAMON "nr_kdamonds", W_OK))
		SKIP(return, "no writable " DAMON "nr_kdamonds (CONFIG_DAMON_SYSFS, root)");
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN_PARENT(aging)
{
	if (self->damon)
		damon_remove();
	if (self->debugfs && umount(DEBUGFS))
		perror("# umount " DEBUGFS);
	thp_put_back();
}

TEST_F_TIMEOUT(aging, damon_and_mglru, 300)
{
	const size_t np = 4 * HPAGE_NR, nc = 2 * HPAGE_NR;
	uint64_t *before = calloc(nc, sizeof(*before));
	struct entry *t = calloc(nc, sizeof(*t));
	char *p = cs614_map_aligned(4 * HPAGE);
	char *c = cs614_map_aligned(nc * PG);
	int it, r, rounds = 0, compactions = 0, refused = 0;
	struct aging aging;
	pthread_t thread;
	size_t thp = 0, i;
	uint64_t seed;
	const char *why;
	double end;

	ASSERT_NE(NULL, before);
	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, c);
	if (access(LRU_GEN, F_OK) && cs614_dir_empty(DEBUGFS))
		self->debugfs = !mount("none", DEBUGFS, "debugfs", 0, NULL);
	if (access(LRU_GEN, W_OK))
		SKIP(return, "no writable " LRU_GEN " (CONFIG_LRU_GEN, debugfs, root)");
	why = damon_start(&self->damon, getpid());
	if (why)
		SKIP(return, "%s", why);
	atomic_init(&aging.stop, false);
	atomic_init(&aging.agings, 0);
	atomic_init(&aging.refused, 0);
	ASSERT_EQ(0, pthread_create(&thread, NULL, aging_thread, &aging));

	end = now_s() + AGING_S;
	for (it = 0; it < 2 || now_s() < end; it++) {
		/* Four full 2 MiB ranges, promoted by at most four rounds. */
		ASSERT_EQ(0, madvise(p, 4 * HPAGE, MADV_DONTNEED));
		for (i = 0; i < np; i++)
			cs614_stamp(p, i, it);
		for (r = 0; r < 4 && thp < 4; r++) {
			ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
			rounds++;
			thp = cs614_count_thp(p, 4 * HPAGE);
			ASSERT_EQ((long)thp * HPAGE_KB, cs614_anon_huge_kb(p))
				TH_LOG("iteration %d: %zu huge pages", it, thp);
			for (i = 0; i < np; i++)
				ASSERT_TRUE(cs614_stamped(p + i * PG, i, it))
					TH_LOG("iteration %d, page %zu", it, i);
		}
		EXPECT_EQ(4U, thp) TH_LOG("iteration %d: %zu of 4 ranges promoted by 4 rounds",
					  it, thp);
		thp = 0;

		/* Half of the pages (a huge page at the front), or two in five. */
		seed = 1000 + it;
		ASSERT_EQ(0, madvise(c, nc * PG, MADV_DONTNEED));
		for (i = 0; i < nc; i++)
			if (it % 2 ? (i * 7 + it) % 5 < 2 : i % 2 == 0)
				cs614_stamp(c, i, seed);
		ASSERT_EQ(0, cs614_where(c, nc, before));
		fill_table(t, nc);
		if (!cs614_compact(self->fd, c, nc, t)) {
			compactions++;
			ASSERT_TRUE(compacted_ok(_metadata, c, nc, before, t, seed))
				TH_LOG("iteration %d", it);
			ASSERT_EQ((long)cs614_is_thp(c) * HPAGE_KB, cs614_anon_huge_kb(c))
				TH_LOG("iteration %d", it);
		} else {
			refused++;
			TH_LOG("iteration %d: compaction refused: %s", it, strerror(errno));
			ASSERT_TRUE(same_where(_metadata, c, nc, before));
			ASSERT_TRUE(table_untouched(t, nc));
			ASSERT_TRUE(stamps_intact(_metadata, c, nc, before, seed, nc));
		}
	}
	atomic_store(&aging.stop, true);
	pthread_join(thread, NULL);
	TH_LOG("%d iterations: %d rounds, %d compactions, %d refused; %ld agings, %ld refused",
	       it, rounds, compactions, refused, atomic_load(&aging.agings),
	       atomic_load(&aging.refused));
	EXPECT_LT(0, atomic_load(&aging.agings)) TH_LOG("MGLRU aged nothing");
	EXPECT_LT(0, compactions);
	munmap(p, 4 * HPAGE);
	munmap(c, nc * PG);
	free(before);
	free(t);
}

TEST_HARNESS_MAIN
