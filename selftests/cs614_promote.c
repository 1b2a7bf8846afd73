// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 part 2: IOCTL_PROMOTE_VMA registers the mm, writing 1 to the promote
 * flag runs a round of the cs614_promote thread that turns every fully
 * populated, 2 MiB-aligned range of private anonymous memory into a THP, and
 * a VMA split demotes exactly the THPs it cuts.
 *
 * THP is set to "never" so that every huge page seen is cs614's; hugeness is
 * read from pagemap + kpageflags and smaps, splits from kpageflags (the pages
 * a huge page had are base pages again) and, as a lower bound only, from
 * /proc/vmstat, which other processes move too. Sizes come from the system:
 * the base page size and the PMD huge page size (2 MiB on x86-64).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#define KB		1024UL
#define MB		(1024 * KB)
#define PG		cs614_page_size()
#define HPAGE		cs614_hpage_size()
/* Base pages in a huge page (512), and its size in kB (2048), as smaps counts. */
#define HPAGE_NR	(HPAGE / PG)
#define HPAGE_KB	((long)(HPAGE / KB))
#define ROUND_MS	60000

/*
 * Maps len bytes of private anonymous memory at a 2 MiB-aligned address + off,
 * as one VMA with nothing mapped around it.
 */
static char *map_at_offset(size_t len, size_t off, int prot)
{
	size_t span = len + off + 2 * HPAGE;
	char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *start;

	if (p == MAP_FAILED)
		return NULL;
	start = (char *)(((uintptr_t)p + HPAGE) & ~(HPAGE - 1)) + off;
	munmap(p, span);
	p = mmap(start, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	return p == start ? p : NULL;
}

static char *map_aligned(size_t len)
{
	return map_at_offset(len, 0, PROT_READ | PROT_WRITE);
}

/* Writes one pattern word into every page, so that each page is populated. */
static void touch_pages(char *p, size_t len, uint64_t seed)
{
	size_t off;

	for (off = 0; off < len; off += getpagesize())
		*(uint64_t *)(p + off) = cs614_pattern_word(off, seed);
}

/* Whether the pages of [base + from, base + to) hold what touch_pages(base) wrote. */
static bool range_intact(const char *base, size_t from, size_t to, uint64_t seed)
{
	size_t off;

	for (off = from; off < to; off += getpagesize())
		if (*(const uint64_t *)(base + off) != cs614_pattern_word(off, seed))
			return false;
	return true;
}

static bool pages_intact(const char *p, size_t len, uint64_t seed)
{
	return range_intact(p, 0, len, seed);
}

/* Waits until n tasks are named name; false after timeout_ms. */
static bool tasks_become(const char *name, int n, int timeout_ms)
{
	int i;

	for (i = 0; i < timeout_ms; i++) {
		if (cs614_count_kthreads(name) == n)
			return true;
		usleep(1000);
	}
	return false;
}

static int open_registered(void)
{
	int fd = open(CS614_DEV, O_RDWR);

	if (fd >= 0 && ioctl(fd, IOCTL_PROMOTE_VMA, NULL)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The pfns of the n pages at p (0 for a page not present); false on error. */
static bool pfns_of(const char *p, size_t n, uint64_t *pfns)
{
	size_t i;

	if (cs614_pagemap_range(p, n, pfns))
		return false;
	for (i = 0; i < n; i++)
		pfns[i] = pfns[i] & PM_PRESENT ? PAGEMAP_PFN(pfns[i]) : 0;
	return true;
}

FIXTURE(promote)
{
	int fd;
};

FIXTURE_SETUP(promote)
{
	const char *why;

	ASSERT_EQ(0, cs614_install_segv_handler());
	/* Whether a round ran is read from kpageflags. */
	why = cs614_open_for_rounds(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	/* Last: the teardown restores it, but does not run after a failed or skipped setup. */
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN(promote)
{
	cs614_thp_restore();
	close(self->fd);
}

/* The course's scenario: 8 MiB (4 huge pages) RW|EXEC, 'A' every 4 KiB, one round. */
TEST_F_TIMEOUT(promote, course_scenario, 300)
{
	const size_t len = 4 * HPAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *first = (char *)(((uintptr_t)p + HPAGE - 1) & ~(HPAGE - 1));
	size_t nr = (p + len - first) / HPAGE, i;

	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < len; i += 4096)
		p[i] = 'A';
	ASSERT_EQ(0U, cs614_count_thp(first, nr * HPAGE));

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	EXPECT_EQ(nr, cs614_count_thp(first, nr * HPAGE));
	EXPECT_EQ((long)nr * HPAGE_KB, cs614_anon_huge_kb(p));
	for (i = 0; i < len; i++)
		ASSERT_EQ(i % 4096 ? 0 : 'A', p[i]) TH_LOG("byte %zu", i);
	munmap(p, len);
}

TEST_F(promote, partial_range_skipped)
{
	char *p = map_aligned(2 * HPAGE);

	ASSERT_NE(NULL, p);
	touch_pages(p, 2 * HPAGE, 1);
	/* 511 of the second range's 512 pages. */
	ASSERT_EQ(0, madvise(p + HPAGE + 100 * PG, PG, MADV_DONTNEED));

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_FALSE(cs614_is_thp(p + HPAGE));
	EXPECT_EQ(HPAGE_NR - 1, cs614_present_pages(p + HPAGE, HPAGE));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_TRUE(pages_intact(p, HPAGE + 100 * PG, 1));
	EXPECT_EQ(0U, *(uint64_t *)(p + HPAGE + 100 * PG));
	munmap(p, 2 * HPAGE);
}

TEST_F(promote, zero_page_skipped)
{
	char *p = map_aligned(HPAGE);

	ASSERT_NE(NULL, p);
	touch_pages(p, HPAGE, 2);
	/* A read fault maps the shared zero page. */
	ASSERT_EQ(0, madvise(p + 7 * PG, PG, MADV_DONTNEED));
	FORCE_READ(p[7 * PG]);
	ASSERT_EQ(HPAGE_NR, cs614_present_pages(p, HPAGE));

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_FALSE(cs614_is_thp(p));
	EXPECT_EQ(0, cs614_anon_huge_kb(p));
	munmap(p, HPAGE);
}

TEST_F(promote, vma_edges)
{
	/*
	 * [base + 1 MiB, base + 5 MiB): only [base + 2, base + 4) MiB fits
	 * (in huge pages: [base + 1/2, base + 5/2), only [base + 1, base + 2)).
	 */
	char *p = map_at_offset(2 * HPAGE, HPAGE / 2, PROT_READ | PROT_WRITE);
	char *inner = p + HPAGE / 2;

	ASSERT_NE(NULL, p);
	touch_pages(p, 2 * HPAGE, 3);

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	EXPECT_TRUE(cs614_is_thp(inner));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_EQ(2 * HPAGE_NR, cs614_present_pages(p, 2 * HPAGE));
	EXPECT_TRUE(pages_intact(p, 2 * HPAGE, 3));
	munmap(p, 2 * HPAGE);
}

TEST_F(promote, nohugepage_respected)
{
	char *p = map_aligned(2 * HPAGE);

	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, madvise(p, 2 * HPAGE, MADV_NOHUGEPAGE));
	touch_pages(p, 2 * HPAGE, 4);

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_EQ(0U, cs614_count_thp(p, 2 * HPAGE));
	EXPECT_EQ(0, cs614_anon_huge_kb(p));
	EXPECT_TRUE(pages_intact(p, 2 * HPAGE, 4));
	munmap(p, 2 * HPAGE);
}

TEST_F(promote, thp_disabled_process_skipped)
{
	char *p = map_aligned(HPAGE);

	ASSERT_NE(NULL, p);
	touch_pages(p, HPAGE, 19);
	/* The test runs in a process of its own: the setting dies with it. */
	ASSERT_EQ(0, prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0));
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_FALSE(cs614_is_thp(p));
	ASSERT_EQ(0, prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0));
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_TRUE(pages_intact(p, HPAGE, 19));
	munmap(p, HPAGE);
}

TEST_F(promote, shared_mappings_skipped)
{
	char *shared = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *aligned = (char *)(((uintptr_t)shared + HPAGE - 1) & ~(HPAGE - 1));

	ASSERT_NE(MAP_FAILED, shared);
	touch_pages(shared, 2 * HPAGE, 5);
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_EQ(0U, cs614_count_thp(aligned, HPAGE));
	EXPECT_TRUE(pages_intact(shared, 2 * HPAGE, 5));
	munmap(shared, 2 * HPAGE);
}

TEST_F(promote, mlocked_promoted)
{
	char *p = map_aligned(HPAGE);

	ASSERT_NE(NULL, p);
	touch_pages(p, HPAGE, 17);
	ASSERT_EQ(0, mlock(p, HPAGE));

	/* As MADV_COLLAPSE does: the huge page replaces the pages, locked. */
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_EQ(HPAGE_KB, cs614_smaps_kb(p, "Locked"));
	EXPECT_TRUE(pages_intact(p, HPAGE, 17));
	munlock(p, HPAGE);
	munmap(p, HPAGE);
}

TEST_F(promote, userfaultfd_skipped)
{
	struct uffdio_api api = { .api = UFFD_API };
	char *p = map_aligned(HPAGE);
	int uffd;

	ASSERT_NE(NULL, p);
	touch_pages(p, HPAGE, 18);
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		SKIP(munmap(p, HPAGE); return, "userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	ASSERT_EQ(0, uffd_register(uffd, p, HPAGE, true, false, false));

	/* Its faults belong to the monitor: left alone although populated. */
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_FALSE(cs614_is_thp(p));
	EXPECT_EQ(HPAGE_NR, cs614_present_pages(p, HPAGE));

	close(uffd);
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_TRUE(pages_intact(p, HPAGE, 18));
	munmap(p, HPAGE);
}

TEST_F(promote, multiple_rounds)
{
	char *p = map_aligned(2 * HPAGE);
	uint64_t pfn;

	ASSERT_NE(NULL, p);
	touch_pages(p, HPAGE, 6);
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	ASSERT_TRUE(cs614_is_thp(p));
	EXPECT_FALSE(cs614_is_thp(p + HPAGE));
	pfn = PAGEMAP_PFN(cs614_pagemap(p));

	touch_pages(p + HPAGE, HPAGE, 7);
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(p + HPAGE));
	/* The first huge page was left as it was. */
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_EQ(pfn, PAGEMAP_PFN(cs614_pagemap(p)));
	EXPECT_EQ(2 * HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_TRUE(pages_intact(p, HPAGE, 6));
	EXPECT_TRUE(pages_intact(p + HPAGE, HPAGE, 7));
	munmap(p, 2 * HPAGE);
}

TEST_F(promote, cow_shared_with_child_skipped)
{
	char *p = map_aligned(HPAGE);
	int to_child[2], status;
	pid_t pid;
	char c;

	ASSERT_NE(NULL, p);
	touch_pages(p, HPAGE, 8);
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(to_child[1]);
		if (read(to_child[0], &c, 1) != 1)
			_exit(2);
		_exit(pages_intact(p, HPAGE, 8) ? 0 : 1);
	}
	close(to_child[0]);

	/* The pages are shared with the child until it exits. */
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_FALSE(cs614_is_thp(p));

	ASSERT_EQ(1, write(to_child[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_TRUE(pages_intact(p, HPAGE, 8));
	close(to_child[1]);
	munmap(p, HPAGE);
}

/* Two huge pages at p, from a round; returns p or NULL. */
static char *two_huge_pages(uint64_t seed)
{
	char *p = map_aligned(2 * HPAGE);

	if (!p)
		return NULL;
	touch_pages(p, 2 * HPAGE, seed);
	if (cs614_promote_round(ROUND_MS) || cs614_count_thp(p, 2 * HPAGE) != 2) {
		munmap(p, 2 * HPAGE);
		return NULL;
	}
	return p;
}

/*
 * Figure case a: the split leaves each huge page whole in one VMA. The one
 * left mapped is not touched: the same huge page, still PMD-mapped.
 */
TEST_F(promote, demote_case_a)
{
	char *p = two_huge_pages(9);
	uint64_t head;

	ASSERT_NE(NULL, p);
	head = cs614_pfn(p);
	ASSERT_NE(0U, head);

	ASSERT_EQ(0, munmap(p + HPAGE, HPAGE));

	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_EQ(head, cs614_pfn(p));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_TRUE(cs614_faults(p + HPAGE));
	EXPECT_TRUE(pages_intact(p, HPAGE, 9));
	munmap(p, HPAGE);
}

/*
 * Figure case b: the unmapped range cuts both huge pages. Both are demoted by
 * the munmap() itself: the pages left on either side are base pages again,
 * and none is left in a partially mapped huge page for the
 * deferred split queue (which would keep them compound). Checked on our own
 * pages through kpageflags; thp_split_page, which any process moves, must
 * have grown by our two splits at least.
 */
TEST_F(promote, demote_case_b)
{
	char *p = two_huge_pages(10);
	const size_t nr = 2 * HPAGE_NR, half = HPAGE_NR / 2;
	uint64_t *pfns = calloc(nr, sizeof(*pfns));
	long split;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, pfns);
	ASSERT_TRUE(pfns_of(p, nr, pfns));
	split = cs614_vmstat("thp_split_page");

	ASSERT_EQ(0, munmap(p + HPAGE / 2, HPAGE));

	EXPECT_LE(split + 2, cs614_vmstat("thp_split_page"));
	EXPECT_EQ(0U, cs614_compound_pfns(pfns, half)) TH_LOG("the lower huge page is not split");
	EXPECT_EQ(0U, cs614_compound_pfns(pfns + nr - half, half))
		TH_LOG("the upper huge page is not split");
	EXPECT_EQ(0, cs614_anon_huge_kb(p));
	EXPECT_EQ(0, cs614_anon_huge_kb(p + 3 * HPAGE / 2));
	/* The unmapped halves were freed: each side holds half a huge page (1 MiB). */
	EXPECT_EQ(HPAGE_KB / 2, cs614_smaps_kb(p, "Rss"));
	EXPECT_EQ(HPAGE_KB / 2, cs614_smaps_kb(p + 3 * HPAGE / 2, "Rss"));
	EXPECT_TRUE(cs614_faults(p + HPAGE / 2));
	EXPECT_TRUE(cs614_faults(p + 3 * HPAGE / 2 - PG));
	EXPECT_TRUE(range_intact(p, 0, HPAGE / 2, 10));
	EXPECT_TRUE(range_intact(p, 3 * HPAGE / 2, 2 * HPAGE, 10));
	munmap(p, HPAGE / 2);
	munmap(p + 3 * HPAGE / 2, HPAGE / 2);
	free(pfns);
}

TEST_F(promote, munmap_one_page)
{
	char *p = two_huge_pages(11);
	uint64_t *pfns = calloc(HPAGE_NR, sizeof(*pfns));
	const size_t at = 300;
	char *hole;
	long split;
	size_t off;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, pfns);
	hole = p + at * PG;
	ASSERT_TRUE(pfns_of(p, HPAGE_NR, pfns));
	split = cs614_vmstat("thp_split_page");

	ASSERT_EQ(0, munmap(hole, PG));

	/* Demoted at once: the 511 pages left are base pages. */
	EXPECT_LE(split + 1, cs614_vmstat("thp_split_page"));
	pfns[at] = 0;
	EXPECT_EQ(0U, cs614_compound_pfns(pfns, HPAGE_NR)) TH_LOG("the huge page is not split");
	EXPECT_FALSE(cs614_is_thp(p));
	EXPECT_TRUE(cs614_is_thp(p + HPAGE));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p + HPAGE));
	EXPECT_EQ(0, cs614_anon_huge_kb(p));
	EXPECT_EQ(HPAGE_NR - 1, cs614_present_pages(p, HPAGE));
	EXPECT_TRUE(cs614_faults(hole));
	for (off = 0; off < 2 * HPAGE; off += PG) {
		if (p + off == hole)
			continue;
		ASSERT_EQ(cs614_pattern_word(off, 11), *(uint64_t *)(p + off))
			TH_LOG("page %zu", off / PG);
	}
	munmap(p, 2 * HPAGE);
	free(pfns);
}

TEST_F(promote, mprotect_split_demotes)
{
	char *p = two_huge_pages(12);
	uint64_t *pfns = calloc(HPAGE_NR, sizeof(*pfns));
	long split;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, pfns);
	ASSERT_TRUE(pfns_of(p + HPAGE, HPAGE_NR, pfns));
	split = cs614_vmstat("thp_split_page");

	ASSERT_EQ(0, mprotect(p + HPAGE + HPAGE / 2, PG, PROT_READ));

	/* The second huge page is base pages now; the first is untouched. */
	EXPECT_LE(split + 1, cs614_vmstat("thp_split_page"));
	EXPECT_EQ(0U, cs614_compound_pfns(pfns, HPAGE_NR)) TH_LOG("the huge page is not split");
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_FALSE(cs614_is_thp(p + HPAGE));
	EXPECT_EQ(HPAGE_NR, cs614_present_pages(p + HPAGE, HPAGE));
	EXPECT_TRUE(pages_intact(p, 2 * HPAGE, 12));
	munmap(p, 2 * HPAGE);
	free(pfns);
}

/*
 * A merge moves a boundary without a split: mprotect() of the start (or the
 * end) of a VMA whose neighbour already has the new protection joins that
 * range to the neighbour (vma_merge_existing_range()). A boundary moved into
 * a huge page cuts it as a split would, and must demote it. First the two
 * huge pages become two VMAs on their PMD boundary (nothing cut), then half
 * of one huge page joins the other VMA. Its pages are base pages again, the
 * other huge page is untouched, and the VMAs show that a merge, not a split,
 * moved the boundary.
 */
static void merge_cut_demotes(struct __test_metadata *_metadata, bool left, uint64_t seed)
{
	char *p = two_huge_pages(seed);
	/* The huge page the merge cuts, and the one it leaves whole. */
	char *cut = left ? p + HPAGE : p, *whole = left ? p : p + HPAGE;
	uint64_t *pfns = calloc(HPAGE_NR, sizeof(*pfns));
	uintptr_t start, end;
	long split;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, pfns);
	ASSERT_TRUE(pfns_of(cut, HPAGE_NR, pfns));
	ASSERT_EQ(0, mprotect(whole, HPAGE, PROT_READ));
	ASSERT_TRUE(cs614_is_thp(cut));
	ASSERT_TRUE(cs614_is_thp(whole));
	split = cs614_vmstat("thp_split_page");

	/* Left: [p + HPAGE, +HPAGE / 2) joins [p, p + HPAGE); right: the mirror image. */
	ASSERT_EQ(0, mprotect(left ? cut : cut + HPAGE / 2, HPAGE / 2, PROT_READ));

	ASSERT_TRUE(cs614_vma_bounds(whole, &start, &end));
	EXPECT_EQ((uintptr_t)(left ? p : p + HPAGE / 2), start);
	EXPECT_EQ((uintptr_t)(left ? p + 3 * HPAGE / 2 : p + 2 * HPAGE), end);
	EXPECT_LE(split + 1, cs614_vmstat("thp_split_page"));
	EXPECT_EQ(0U, cs614_compound_pfns(pfns, HPAGE_NR)) TH_LOG("the cut huge page is not split");
	EXPECT_FALSE(cs614_is_thp(cut));
	/* The part of the cut huge page left in a VMA of its own, and the joined VMA. */
	EXPECT_EQ(0, cs614_anon_huge_kb(left ? cut + HPAGE / 2 : cut));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(whole));
	EXPECT_EQ(HPAGE_NR, cs614_present_pages(cut, HPAGE));
	EXPECT_TRUE(cs614_is_thp(whole));
	EXPECT_TRUE(pages_intact(p, 2 * HPAGE, seed));
	munmap(p, 2 * HPAGE);
	free(pfns);
}

TEST_F(promote, mprotect_merge_left_demotes)
{
	merge_cut_demotes(_metadata, true, 13);
}

TEST_F(promote, mprotect_merge_right_demotes)
{
	merge_cut_demotes(_metadata, false, 14);
}

TEST_F(promote, register_argument_ignored)
{
	/* The argument carries nothing and is never read. */
	EXPECT_EQ(0, ioctl(self->fd, IOCTL_PROMOTE_VMA, NULL));
	EXPECT_EQ(0, ioctl(self->fd, IOCTL_PROMOTE_VMA, (void *)8));
	EXPECT_EQ(0, ioctl(self->fd, IOCTL_PROMOTE_VMA, (void *)-4096L));
	EXPECT_TRUE(tasks_become("cs614_promote", 1, 2000));
}

TEST_F(promote, thread_lifetime)
{
	int fd2 = open_registered();

	ASSERT_LE(0, fd2);
	EXPECT_TRUE(tasks_become("cs614_promote", 1, 2000));
	close(fd2);
	usleep(100000);
	EXPECT_EQ(1, cs614_count_kthreads("cs614_promote"));
	close(self->fd);
	/* The release of the last registration stopped the thread. */
	EXPECT_TRUE(tasks_become("cs614_promote", 0, 2000));
	/* With nothing registered a round is over at once. */
	EXPECT_EQ(0, cs614_promote_round(1));
	self->fd = open_registered();
	ASSERT_LE(0, self->fd);
	EXPECT_TRUE(tasks_become("cs614_promote", 1, 2000));
}

TEST_F(promote, two_processes)
{
	int to_parent[2], to_child[2], status;
	char *p = map_aligned(HPAGE);
	pid_t pid;
	char c;

	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* A new mm of its own, registered through a file of its own. */
		char *q = map_aligned(HPAGE);
		int fd = open_registered();

		close(to_parent[0]);
		close(to_child[1]);
		if (!q || fd < 0)
			_exit(2);
		touch_pages(q, HPAGE, 14);
		if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(3);
		_exit(cs614_is_thp(q) && pages_intact(q, HPAGE, 14) ? 0 : 1);
	}
	close(to_parent[1]);
	close(to_child[0]);
	/* The child's mapping of p (untouched, so not shared) is its own. */
	touch_pages(p, HPAGE, 13);
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
	ASSERT_EQ(1, write(to_child[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status)) TH_LOG("child died");
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_TRUE(pages_intact(p, HPAGE, 13));
	munmap(p, HPAGE);
}

/*
 * A file closed during a round: the round leaves its mm before the next
 * collapse, instead of promoting an mm that is no longer registered (nor
 * demoted). A child keeps another mm registered, so that the thread and the
 * round go on. The parent closes its file once the round has made a first
 * huge page in its 256 MiB: afterwards at most the collapse under way then
 * may complete.
 */
/*
 * How many of the nr huge page ranges at p start with the head of a THP: one
 * read of pagemap for them all, so that it can take a snapshot while a round
 * runs (cs614_count_thp() reads 512 entries a range, one by one, and a
 * round outruns it). 0 on error.
 */
static size_t thp_heads(const char *p, size_t nr, uint64_t *ents)
{
	size_t r, n = 0;
	uint64_t pfn;

	if (cs614_pagemap_range(p, nr * HPAGE_NR, ents))
		return 0;
	for (r = 0; r < nr; r++) {
		if (!(ents[r * HPAGE_NR] & PM_PRESENT))
			continue;
		pfn = PAGEMAP_PFN(ents[r * HPAGE_NR]);
		n += !(pfn % HPAGE_NR) && (cs614_kpageflags(pfn) & KPF_THP) &&
		     (cs614_kpageflags(pfn) & KPF_COMPOUND_HEAD);
	}
	return n;
}

TEST_F_TIMEOUT(promote, closed_during_round_left, 300)
{
	const size_t nr = 128, len = nr * HPAGE;
	int to_parent[2], to_child[2], status, i;
	char *p = map_aligned(len), flag[8];
	uint64_t *ents = calloc(nr * HPAGE_NR, sizeof(*ents));
	size_t before, after;
	pid_t pid;
	char c;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, ents);
	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		/* The parent's close must release its file: no copy of it here. */
		close(self->fd);
		close(to_parent[0]);
		close(to_child[1]);
		fd = open_registered();
		if (fd < 0)
			_exit(2);
		if (write(to_parent[1], "r", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	/* Only the child writes to_parent and reads to_child: its early exit is an EOF here. */
	close(to_parent[1]);
	close(to_child[0]);
	touch_pages(p, len, 15);
	ASSERT_EQ(1, read(to_parent[0], &c, 1));
	ASSERT_EQ(1, cs614_write_flag("1", 1));
	for (i = 0; i < 60000 && !thp_heads(p, nr, ents); i++)
		usleep(1000);
	ASSERT_EQ(0, close(self->fd));
	self->fd = -1;
	before = thp_heads(p, nr, ents);
	ASSERT_LT(0U, before) TH_LOG("the round made no huge page in a minute");
	for (i = 0; i < 120000; i++) {
		if (cs614_read_promote_flag(flag, sizeof(flag)) > 0 && !strcmp(flag, "0\n"))
			break;
		usleep(1000);
	}
	ASSERT_GT(120000, i) TH_LOG("the round did not end");
	after = thp_heads(p, nr, ents);
	ASSERT_EQ(1, write(to_child[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
	if (before == nr)
		SKIP(goto out, "the round was over before the file was closed");
	EXPECT_GE(before + 1, after)
		TH_LOG("%zu huge pages when the file was closed, %zu after the round",
		       before, after);
	EXPECT_TRUE(pages_intact(p, len, 15));
out:
	munmap(p, len);
	free(ents);
}

/* Whether a line of the registry names pid; -1 if it cannot be read. */
static int registry_lists(pid_t pid, char *state, size_t size)
{
	FILE *f = fopen(CS614_REGISTRY_PATH, "r");
	char line[256], st[16];
	unsigned long id, files;
	int found = 0;
	long p;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "id=%lu pid=%ld files=%lu state=%15s", &id, &p, &files, st) != 4) {
			found = -1;
			break;
		}
		if (p == pid) {
			found = 1;
			snprintf(state, size, "%s", st);
		}
	}
	fclose(f);
	return found;
}

/*
 * Registered children exit while a round works on their mm (64 MiB each).
 * The round completes and the flag reads 0 after it; our own registered
 * memory (a full huge page range and one with a page missing) comes out of
 * every round right: one huge page, the same one, never the partial range,
 * and our data intact; no child stays registered (when the registry can be
 * read); the thread goes on serving us.
 */
TEST_F_TIMEOUT(promote, exit_during_round, 300)
{
	const size_t len = 32 * HPAGE;
	int to_parent[2], status, i;
	pid_t pid, pids[3];
	char *mine = map_aligned(2 * HPAGE), flag[8], state[16];
	uint64_t head = 0;
	char c;

	ASSERT_NE(NULL, mine);
	touch_pages(mine, 2 * HPAGE, 20);
	ASSERT_EQ(0, madvise(mine + HPAGE + 5 * PG, PG, MADV_DONTNEED));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, pipe(to_parent));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			char *q;
			int fd;

			/* Our pages are not to be shared with the child in the round. */
			munmap(mine, 2 * HPAGE);
			q = map_aligned(len);
			fd = open_registered();
			if (!q || fd < 0)
				_exit(2);
			touch_pages(q, len, 15);
			if (write(to_parent[1], "r", 1) != 1)
				_exit(3);
			/* Exit while the round works on this mm. */
			usleep(i * 20000);
			_exit(0);
		}
		pids[i] = pid;
		ASSERT_EQ(1, read(to_parent[0], &c, 1));
		ASSERT_EQ(0, cs614_promote_round(ROUND_MS)) TH_LOG("round %d did not complete", i);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		close(to_parent[0]);
		close(to_parent[1]);

		/* The round is over for good: the flag reads 0. */
		EXPECT_EQ(2, cs614_read_promote_flag(flag, sizeof(flag)));
		EXPECT_STREQ("0\n", flag);
		/* Our full range is one huge page, the same from round to round. */
		EXPECT_TRUE(cs614_is_thp(mine)) TH_LOG("round %d", i);
		if (i == 0)
			head = cs614_pfn(mine);
		EXPECT_EQ(head, cs614_pfn(mine)) TH_LOG("round %d", i);
		/* No other huge page: the partial range stays base pages. */
		EXPECT_FALSE(cs614_is_thp(mine + HPAGE)) TH_LOG("round %d", i);
		EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(mine)) TH_LOG("round %d", i);
		EXPECT_EQ(HPAGE_NR - 1, cs614_present_pages(mine + HPAGE, HPAGE));
		EXPECT_TRUE(pages_intact(mine, HPAGE, 20)) TH_LOG("round %d", i);
		EXPECT_TRUE(range_intact(mine, HPAGE, HPAGE + 5 * PG, 20)) TH_LOG("round %d", i);
		EXPECT_TRUE(range_intact(mine, HPAGE + 6 * PG, 2 * HPAGE, 20))
			TH_LOG("round %d", i);
	}
	/* Only our registration is left, and the thread still serves it. */
	EXPECT_TRUE(tasks_become("cs614_promote", 1, 2000));
	EXPECT_EQ(0, cs614_promote_round(ROUND_MS));
	EXPECT_TRUE(cs614_is_thp(mine));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(mine));
	/* A round drops the registrations of exited processes, if they were still there. */
	if (registry_lists(getpid(), state, sizeof(state)) < 0) {
		TH_LOG(CS614_REGISTRY_PATH " cannot be read: registrations not checked");
	} else {
		for (i = 0; i < 3; i++) {
			pid = pids[i];
			EXPECT_EQ(0, registry_lists(pid, state, sizeof(state)))
				TH_LOG("child %d (pid %d) still registered", i, pid);
		}
		ASSERT_EQ(1, registry_lists(getpid(), state, sizeof(state)))
			TH_LOG("our registration is missing");
		EXPECT_STREQ("live", state);
	}
	munmap(mine, 2 * HPAGE);
}

/* One per thread: only stop is read while it runs, the rest once it is joined. */
struct churn {
	atomic_bool stop;
	unsigned long rounds;
	uint64_t seed;
	bool bad;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
		char *q = map_aligned(2 * HPAGE);

		if (!q)
			continue;
		touch_pages(q, 2 * HPAGE, c->seed);
		usleep(1000);
		/* Cut whatever became huge, then check and drop the rest. */
		munmap(q + HPAGE / 2, PG);
		if (!range_intact(q, 0, HPAGE / 2, c->seed) ||
		    !range_intact(q, HPAGE / 2 + PG, 2 * HPAGE, c->seed))
			c->bad = true;
		munmap(q, 2 * HPAGE);
		c->rounds++;
	}
	return NULL;
}

TEST_F_TIMEOUT(promote, stress, 300)
{
	struct churn churn[4] = {};
	pthread_t threads[4];
	struct timespec t0, t;
	int i, rounds = 0;

	for (i = 0; i < 4; i++) {
		atomic_init(&churn[i].stop, false);
		churn[i].seed = 100 + i;
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, churn_thread, &churn[i]));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 5);
	for (i = 0; i < 4; i++) {
		atomic_store_explicit(&churn[i].stop, true, memory_order_release);
		pthread_join(threads[i], NULL);
		EXPECT_FALSE(churn[i].bad);
		EXPECT_LT(0U, churn[i].rounds);
	}
	TH_LOG("%d rounds, %lu+%lu+%lu+%lu mappings", rounds, churn[0].rounds,
	       churn[1].rounds, churn[2].rounds, churn[3].rounds);
	EXPECT_LT(1, rounds);
}

TEST_F_TIMEOUT(promote, no_leak, 300)
{
	static const char * const held[] = {
		"nr_slab_unreclaimable", "nr_slab_reclaimable", "nr_page_table_pages",
		"nr_file_pages", "nr_anon_pages", "nr_kernel_stack",
	};
	long anon, thp, free_pages = 0, before[ARRAY_SIZE(held)];
	size_t k;
	int status, i;
	pid_t pid;

	ASSERT_LE(0, cs614_settle_memory());
	anon = cs614_vmstat("nr_anon_pages");
	thp = cs614_vmstat("nr_anon_transparent_hugepages");

	/*
	 * Four times 32 MiB (16 huge pages): promoted, partly demoted and
	 * unmapped, then exit. Free memory is measured from after the first
	 * time, once per-CPU lists and caches have warmed up.
	 */
	for (i = 0; i < 4; i++) {
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			const size_t len = 16 * HPAGE;
			char *q = map_aligned(len);
			int fd = open_registered();
			size_t off;

			if (!q || fd < 0)
				_exit(2);
			touch_pages(q, len, 16);
			if (cs614_promote_round(ROUND_MS) ||
			    cs614_count_thp(q, len) != len / HPAGE)
				_exit(3);
			for (off = HPAGE / 2; off < len; off += 2 * HPAGE)
				munmap(q + off, PG);
			munmap(q, 4 * HPAGE);
			_exit(0);
		}
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(0, WEXITSTATUS(status));
		if (i == 0) {
			ASSERT_LE(0, cs614_settle_memory());
			free_pages = cs614_free_pages();
			for (k = 0; k < ARRAY_SIZE(held); k++)
				before[k] = cs614_vmstat(held[k]);
		}
	}

	/*
	 * System-wide counters, which other processes move too: a tolerance,
	 * below what a leak would cost. The children's huge pages leaked would
	 * be 16 a time (or at least one a time, 4 in all); 256 base pages are 1 MiB.
	 */
	EXPECT_GE(anon + 256, cs614_vmstat("nr_anon_pages"));
	EXPECT_GE(thp + 3, cs614_vmstat("nr_anon_transparent_hugepages"));
	/*
	 * Losing the base pages a promotion replaces, or the huge pages,
	 * would be 32 MiB (8192 pages) a time, at least one huge page (512) a
	 * time; allow 4 MiB of noise over three. Both ends are measured after
	 * giving back caches and slabs (KASAN's quarantine of freed objects
	 * included). Frees can lag behind the exit (RCU): up to 5 s for them.
	 */
	for (i = 0; i < 20; i++) {
		ASSERT_LE(0, cs614_settle_memory());
		if (free_pages - (long)(4 * MB / PG) <= cs614_free_pages())
			break;
		usleep(250000);
	}
	TH_LOG("%ld free pages after the first time, %ld at the end", free_pages,
	       cs614_free_pages());
	EXPECT_LE(free_pages - (long)(4 * MB / PG), cs614_free_pages()) {
		for (k = 0; k < ARRAY_SIZE(held); k++)
			TH_LOG("%s: %ld -> %ld", held[k], before[k], cs614_vmstat(held[k]));
	}
}

/*
 * A round over a 16 TiB reservation (MAP_NORESERVE) whose only populated
 * memory is one full 2 MiB range near its end, and one partial range: the
 * full one is promoted, the partial one is not, and the round does not take
 * longer than the timeout walking the empty reservation.
 */
TEST_F_TIMEOUT(promote, sparse_16t_reservation, 300)
{
	const size_t len = 16UL << 40;
	char *p = cs614_map_aligned(len);
	char *full, *partial;

	if (!p)
		SKIP(return, "cannot reserve 16 TiB of address space");
	full = p + len - 4 * HPAGE;
	partial = p + len - 2 * HPAGE;
	touch_pages(full, HPAGE, 7);
	touch_pages(partial, HPAGE - PG, 8);

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	EXPECT_TRUE(cs614_is_thp(full));
	EXPECT_FALSE(cs614_is_thp(partial));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_TRUE(pages_intact(full, HPAGE, 7));
	EXPECT_TRUE(range_intact(partial, 0, HPAGE - PG, 8));
	munmap(p, len);
}

/*
 * A reservation holding many scattered populated page tables - full ones,
 * ones with one page missing, ones holding the zero page, ones with a single
 * page - every 128 MiB (64 huge pages) over 64 GiB (512 such steps): exactly
 * the full ranges are promoted.
 */
TEST_F_TIMEOUT(promote, scattered_tables_exactly_full_promoted, 300)
{
	const size_t step = 64 * HPAGE, nr = 512, len = nr * step;
	char *p = cs614_map_aligned(len);
	size_t i, promoted = 0;

	if (!p)
		SKIP(return, "cannot reserve %zu GiB of address space", len >> 30);
	for (i = 0; i < nr; i++) {
		char *r = p + i * step + (i % 7) * HPAGE;

		switch (i % 4) {
		case 0:		/* full */
			touch_pages(r, HPAGE, i);
			break;
		case 1:		/* one page missing */
			touch_pages(r, HPAGE, i);
			ASSERT_EQ(0, madvise(r + (i % HPAGE_NR) * PG, PG, MADV_DONTNEED));
			break;
		case 2:		/* full, one page the zero page */
			touch_pages(r, HPAGE, i);
			ASSERT_EQ(0, madvise(r + PG, PG, MADV_DONTNEED));
			FORCE_READ(r[PG]);
			break;
		default:	/* one page */
			touch_pages(r, PG, i);
			break;
		}
	}

	ASSERT_EQ(0, cs614_promote_round(ROUND_MS));

	for (i = 0; i < nr; i++) {
		char *r = p + i * step + (i % 7) * HPAGE;

		ASSERT_EQ(i % 4 == 0, cs614_is_thp(r)) TH_LOG("range %zu (kind %zu)", i, i % 4);
		promoted += i % 4 == 0;
		if (i % 4 == 0)
			ASSERT_TRUE(pages_intact(r, HPAGE, i)) TH_LOG("range %zu", i);
	}
	EXPECT_EQ((long)promoted * HPAGE_KB, cs614_anon_huge_kb(p));
	munmap(p, len);
}

TEST_HARNESS_MAIN
