// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 part 3: IOCTL_COMPACT_VMA moves the populated pages of a range to
 * its front by moving page table entries, writes an old->new table, and
 * promotes the 2 MiB ranges that became fully populated.
 *
 * Zero copy is checked through pagemap: a page keeps its pfn when it moves.
 * A hole stays a hole of the VMA: not present, so that reading it through
 * the table takes a page fault (counted in ru_minflt) and returns 0.
 *
 * The ABI counts 4 KiB pages (length, and entry i at addr + i * 4096): every
 * test skips when the page size is not 4 KiB. The huge page size comes from
 * the system (2 MiB on x86-64).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#define KB		1024UL
#define MB		(1024 * KB)
#define GB		(1024 * MB)
#define HPAGE		cs614_hpage_size()
/* The page of the ABI; the tests skip unless it is the page size. */
#define PG		4096UL
/* Pages in a huge page (512), and its size in kB (2048), as smaps counts. */
#define HPAGE_NR	(HPAGE / PG)
#define HPAGE_KB	((long)(HPAGE / KB))

struct entry {
	uint64_t old;
	uint64_t new;
};

/* A huge page-aligned private anonymous VMA of len bytes with nothing around it. */
static char *map_aligned(size_t len)
{
	size_t span = len + 2 * HPAGE;
	char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *start;

	if (p == MAP_FAILED)
		return NULL;
	start = (char *)(((uintptr_t)p + HPAGE) & ~(HPAGE - 1));
	munmap(p, span);
	p = mmap(start, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	return p == start ? p : NULL;
}

/*
 * Whether addr is a hole: no page is mapped there, so that reading it takes
 * a page fault (a minor one, mapping the zero page) and returns 0. Holes of
 * an anonymous VMA are not SIGSEGV: they stay inside the VMA.
 */
static bool hole_faults(const char *addr)
{
	struct rusage before, after;
	char c;

	if (cs614_pagemap(addr) & CS614_PM_PRESENT)
		return false;
	getrusage(RUSAGE_SELF, &before);
	c = *(const volatile char *)addr;
	getrusage(RUSAGE_SELF, &after);
	return c == 0 && after.ru_minflt > before.ru_minflt;
}

/*
 * Checks the table of a compaction of pages [p, p + n pages) where
 * populated[i] said which were populated and pfns[i] held their pfns:
 * a permutation, populated pages at the front in order with their pfn and
 * stamp, holes after them in order, faulting.
 */
static bool table_ok(struct __test_metadata *_metadata, char *p, size_t n,
		     const bool *populated, const uint64_t *pfns,
		     const struct entry *t, uint64_t seed)
{
	size_t i, k = 0, holes = 0, nr_pop = 0;
	uintptr_t huge_checked = 0;
	bool huge = false;

	for (i = 0; i < n; i++)
		nr_pop += populated[i];
	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;
		uintptr_t range = (uintptr_t)new & ~(HPAGE - 1);

		/* A page promoted after the moves was copied into a huge page. */
		if (range != huge_checked) {
			huge_checked = range;
			huge = cs614_is_thp((void *)range);
		}

		if (t[i].old != (uintptr_t)(p + i * PG)) {
			TH_LOG("entry %zu: old %#lx", i, (unsigned long)t[i].old);
			return false;
		}
		if (populated[i]) {
			if (new != p + k * PG || (!huge && cs614_pfn(new) != pfns[i]) ||
			    !cs614_stamped(new, i, seed)) {
				TH_LOG("page %zu: new %p, want %p", i, new, p + k * PG);
				return false;
			}
			k++;
		} else {
			if (new != p + (nr_pop + holes) * PG || !hole_faults(new)) {
				TH_LOG("hole %zu: new %p, want %p", i, new,
				       p + (nr_pop + holes) * PG);
				return false;
			}
			holes++;
		}
	}
	return true;
}

FIXTURE(compact)
{
	int fd;
};

FIXTURE_SETUP(compact)
{
	const char *why;

	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	why = cs614_page_not_4k();
	if (why)
		SKIP(return, "%s", why);
	/* Zero copy is checked through pfns, huge pages through kpageflags. */
	why = cs614_pfns_unavailable();
	if (why)
		SKIP(return, "%s", why);
	/* Last: the teardown restores it, but does not run after a failed or skipped setup. */
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN(compact)
{
	cs614_thp_restore();
	close(self->fd);
}

/* The course's scenario: 4 MiB (two huge pages), every other page full of 'A'. */
TEST_F(compact, course_scenario)
{
	const size_t n = 2 * HPAGE_NR;
	struct entry *t = calloc(n, sizeof(*t));
	char *p = map_aligned(n * PG);
	size_t i, j;

	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, p);
	for (i = 0; i < n; i += 2)
		memset(p + i * PG, 'A', PG);

	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));

	/* The first 2 MiB are fully populated now, and a huge page. */
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	EXPECT_EQ(n / 2, cs614_present_pages(p, n * PG));
	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;

		ASSERT_EQ((uintptr_t)(p + i * PG), t[i].old);
		/*
		 * Every populated page holds the same bytes: the slots, not the
		 * contents, say that each went where it should.
		 */
		ASSERT_EQ((uintptr_t)(p + (i % 2 ? n / 2 : 0) * PG + i / 2 * PG), t[i].new)
			TH_LOG("entry %zu", i);
		if (i % 2) {
			ASSERT_TRUE(hole_faults(new)) TH_LOG("entry %zu", i);
			continue;
		}
		for (j = 0; j < PG; j++)
			ASSERT_EQ('A', new[j]) TH_LOG("entry %zu byte %zu", i, j);
	}
	munmap(p, n * PG);
	free(t);
}

/*
 * Pages stamped with their index, populated in an irregular pattern, in a
 * range [off, off + n) of a larger VMA.
 */
static void pattern_case(struct __test_metadata *_metadata, int fd, size_t vma_pages,
			 size_t off, size_t n, int every)
{
	bool *populated = calloc(n, sizeof(bool));
	uint64_t *pfns = calloc(n, sizeof(uint64_t));
	struct entry *t = calloc(n, sizeof(*t));
	char *vma = map_aligned(vma_pages * PG);
	char *p = vma + off * PG;
	size_t i, k = 0;

	ASSERT_NE(NULL, vma);
	ASSERT_NE(NULL, t);
	/* Pages outside the range, populated, must not move. */
	for (i = 0; i < vma_pages; i++)
		if (i < off || i >= off + n)
			cs614_stamp(vma, i, 77);
	for (i = 0; i < n; i++) {
		populated[i] = every ? (i * 7 + i / 3) % every < 2 : true;
		if (populated[i]) {
			cs614_stamp(p, i, 5);
			pfns[i] = cs614_pfn(p + i * PG);
			k++;
		}
	}

	ASSERT_EQ(0, cs614_compact(fd, p, n, t));

	EXPECT_EQ(k, cs614_present_pages(p, k * PG));
	EXPECT_EQ(0U, cs614_present_pages(p + k * PG, (n - k) * PG));
	EXPECT_TRUE(table_ok(_metadata, p, n, populated, pfns, t, 5));
	for (i = 0; i < vma_pages; i++)
		if (i < off || i >= off + n)
			ASSERT_TRUE(cs614_stamped(vma + i * PG, i, 77))
				TH_LOG("outside page %zu", i);
	munmap(vma, vma_pages * PG);
	free(populated);
	free(pfns);
	free(t);
}

/* Slow under KASAN and TCG: up to 5 minutes. */
TEST_F_TIMEOUT(compact, range_inside_vma, 300)
{
	pattern_case(_metadata, self->fd, 2048, 300, 1000, 5);
}

TEST_F_TIMEOUT(compact, range_ends_at_vma_end, 300)
{
	pattern_case(_metadata, self->fd, 1024, 24, 1000, 3);
}

TEST_F_TIMEOUT(compact, all_populated_is_identity, 300)
{
	pattern_case(_metadata, self->fd, 600, 0, 600, 0);
}

TEST_F_TIMEOUT(compact, sparse_pattern_spanning_page_tables, 300)
{
	/* 3 page tables, one page in eleven populated. */
	pattern_case(_metadata, self->fd, 1536, 0, 1536, 11);
}

/* Snapshot of the pfns of n pages, to show that nothing changed. */
static void pfns_of(char *p, size_t n, uint64_t *pfns)
{
	size_t i;

	for (i = 0; i < n; i++)
		pfns[i] = cs614_pfn(p + i * PG);
}

static bool same_pfns(char *p, size_t n, const uint64_t *pfns)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (cs614_pfn(p + i * PG) != pfns[i])
			return false;
	return true;
}

/* What a table is filled with before a call that must not write it. */
#define TABLE_FILL	0xa5

static void fill_table(void *t, size_t entries)
{
	memset(t, TABLE_FILL, entries * sizeof(struct entry));
}

static bool table_untouched(const void *t, size_t entries)
{
	return cs614_all_bytes(t, entries * sizeof(struct entry), (char)TABLE_FILL);
}

TEST_F(compact, errors_change_nothing)
{
	const size_t n = 512;
	uint64_t pfns[512];
	struct entry *t = calloc(n + 1, sizeof(*t));
	struct entry *ro = mmap(NULL, n * sizeof(*t), PROT_READ,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *short_t = mmap(NULL, n * sizeof(*t), PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = map_aligned(n * PG);
	size_t i;

	ASSERT_NE(NULL, p);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_NE(MAP_FAILED, short_t);
	/* Only the first half of this table is mapped. */
	ASSERT_EQ(0, munmap(short_t + n * sizeof(*t) / 2, n * sizeof(*t) / 2));
	for (i = 1; i < n; i += 2)
		cs614_stamp(p, i, 9);
	pfns_of(p, n, pfns);
	/* Nothing is written to the table on any error. */
	fill_table(t, n + 1);
	fill_table(short_t, n / 2);

	/* One page past the end of the VMA. */
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n + 1, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, p + 1, n - 1, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, p, 0, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, p + n * PG + HPAGE, 1, t));
	EXPECT_EQ(EINVAL, errno);
	/* The range wraps around the address space. */
	EXPECT_EQ(-1, cs614_compact(self->fd, (void *)(-PG), 2, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_COMPACT_VMA, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, ro));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, (struct entry *)short_t));
	EXPECT_EQ(EFAULT, errno);

	EXPECT_TRUE(same_pfns(p, n, pfns));
	for (i = 1; i < n; i += 2)
		ASSERT_TRUE(cs614_stamped(p + i * PG, i, 9));
	EXPECT_TRUE(table_untouched(t, n + 1));
	EXPECT_TRUE(table_untouched(short_t, n / 2)) TH_LOG("the mapped half was written");
	EXPECT_TRUE(cs614_all_bytes(ro, n * sizeof(*t), 0));

	/* A range of holes only. */
	ASSERT_EQ(0, madvise(p, n * PG, MADV_DONTNEED));
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_TRUE(table_untouched(t, n + 1));
	munmap(ro, n * sizeof(*t));
	munmap(short_t, n * sizeof(*t) / 2);
	munmap(p, n * PG);
	free(t);
}

TEST_F(compact, other_vma_kinds_refused)
{
	struct entry t[16];
	char *shared = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int memfd = memfd_create("cs614", 0);
	char *file, *ro;

	ASSERT_NE(MAP_FAILED, shared);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, 16 * PG));
	file = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, memfd, 0);
	ASSERT_NE(MAP_FAILED, file);
	ro = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	shared[PG] = 1;
	file[PG] = 1;
	ro[PG] = 1;
	ASSERT_EQ(0, mprotect(ro, 16 * PG, PROT_READ));
	fill_table(t, 16);

	EXPECT_EQ(-1, cs614_compact(self->fd, shared, 16, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, file, 16, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, cs614_compact(self->fd, ro, 16, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_TRUE(table_untouched(t, 16));
	EXPECT_EQ(1, shared[PG]);
	EXPECT_EQ(1, file[PG]);
	EXPECT_EQ(1, ro[PG]);
	munmap(shared, 16 * PG);
	munmap(file, 16 * PG);
	munmap(ro, 16 * PG);
	close(memfd);
}

/* A userfaultfd registered on the range, in mode (MISSING or WP). */
static int uffd_register(void *p, size_t len, __u64 mode)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { (uintptr_t)p, len }, .mode = mode };
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0)
		return -1;
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		close(uffd);
		return -1;
	}
	return uffd;
}

/*
 * A VMA registered with userfaultfd, in any mode, is refused: EBUSY, nothing
 * moved (write protection lives in the PTEs, which a move would rebuild
 * without it; missing-page faults belong to the monitor, as for a move or a
 * promotion). Once the userfaultfd is closed the range compacts.
 */
TEST_F(compact, userfaultfd_ranges)
{
	static const struct {
		__u64 mode;
		const char *name;
	} modes[] = {
		{ UFFDIO_REGISTER_MODE_WP, "WP" },
		{ UFFDIO_REGISTER_MODE_MISSING, "MISSING" },
		{ UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, "MISSING|WP" },
	};
	const size_t n = 64;
	struct uffdio_writeprotect wp;
	struct entry t[64];
	uint64_t pfns[64];
	char *p = map_aligned(n * PG);
	unsigned int m;
	size_t i;
	int uffd;

	ASSERT_NE(NULL, p);
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 8);
	pfns_of(p, n, pfns);
	for (m = 0; m < ARRAY_SIZE(modes); m++) {
		uffd = uffd_register(p, n * PG, modes[m].mode);
		if (uffd < 0 && m == 0)
			SKIP(munmap(p, n * PG); return, "userfaultfd WP: %s", strerror(errno));
		ASSERT_LE(0, uffd) TH_LOG("%s: %s", modes[m].name, strerror(errno));
		if (modes[m].mode & UFFDIO_REGISTER_MODE_WP) {
			wp = (struct uffdio_writeprotect){
				.range = { (uintptr_t)p, n * PG },
				.mode = UFFDIO_WRITEPROTECT_MODE_WP,
			};
			ASSERT_EQ(0, ioctl(uffd, UFFDIO_WRITEPROTECT, &wp));
		}
		fill_table(t, n);
		errno = 0;
		EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t)) TH_LOG("%s", modes[m].name);
		EXPECT_EQ(EBUSY, errno) TH_LOG("%s: errno %d (%s)", modes[m].name, errno,
					       strerror(errno));
		EXPECT_TRUE(same_pfns(p, n, pfns)) TH_LOG("%s: pages moved", modes[m].name);
		EXPECT_TRUE(table_untouched(t, n)) TH_LOG("%s: table written", modes[m].name);
		close(uffd);
	}

	/* Closing the userfaultfd unregisters the VMA. */
	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t)) TH_LOG("%s", strerror(errno));
	for (i = 0; i < n; i += 2) {
		ASSERT_EQ((uintptr_t)(p + i / 2 * PG), t[i].new);
		ASSERT_EQ(pfns[i], cs614_pfn(p + i / 2 * PG)) TH_LOG("entry %zu", i);
		ASSERT_TRUE(cs614_stamped(p + i / 2 * PG, i, 8)) TH_LOG("entry %zu", i);
	}
	EXPECT_EQ(0U, cs614_present_pages(p + n / 2 * PG, n / 2 * PG));
	munmap(p, n * PG);
}

/*
 * A huge page in the middle of the range: split, moved, then promoted at the
 * front. The whole table is checked: the populated pages in order at the
 * front, the holes in order after them, not present and reading as zero.
 */
TEST_F_TIMEOUT(compact, huge_page_in_range, 300)
{
	const size_t nr = HPAGE_NR, n = 3 * nr, k = nr / 2 + nr;
	struct entry *t = calloc(n, sizeof(*t));
	uint64_t *pfns = calloc(n, sizeof(*pfns));
	char *p = map_aligned(n * PG);
	size_t i, r = 0, h = 0;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, pfns);
	/* Registered for promotion through the fixture's file. */
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_PROMOTE_VMA, NULL));
	/* [0, 2 MiB) half populated, [2, 4) MiB full and promoted, [4, 6) MiB empty. */
	for (i = 0; i < nr; i += 2)
		cs614_stamp(p, i, 3);
	for (i = nr; i < 2 * nr; i++)
		cs614_stamp(p, i, 3);
	ASSERT_EQ(0, cs614_promote_round(60000));
	ASSERT_TRUE(cs614_is_thp(p + HPAGE));
	pfns_of(p, n, pfns);

	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));

	/* 768 populated pages: the first 2 MiB are full again, and a huge page. */
	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_FALSE(cs614_is_thp(p + HPAGE));
	EXPECT_EQ(k, cs614_present_pages(p, n * PG));
	EXPECT_EQ(k, cs614_present_pages(p, k * PG));
	/* The table, before anything is read through it. */
	for (i = 0; i < n; i++) {
		bool populated = i < nr ? i % 2 == 0 : i < 2 * nr;
		char *want = populated ? p + r++ * PG : p + (k + h++) * PG;

		ASSERT_EQ((uintptr_t)(p + i * PG), t[i].old) TH_LOG("entry %zu", i);
		ASSERT_EQ((uintptr_t)want, t[i].new) TH_LOG("entry %zu", i);
	}
	ASSERT_EQ(k, r);
	ASSERT_EQ(n - k, h);
	/* The pages: beyond the new huge page, each kept its pfn (split, not copied). */
	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;

		if (i < nr ? i % 2 : i >= 2 * nr) {
			ASSERT_TRUE(hole_faults(new)) TH_LOG("entry %zu (a hole)", i);
			continue;
		}
		ASSERT_TRUE(cs614_stamped(new, i, 3)) TH_LOG("entry %zu", i);
		if (new >= p + HPAGE)
			ASSERT_EQ(pfns[i], cs614_pfn(new)) TH_LOG("entry %zu", i);
	}
	munmap(p, n * PG);
	free(pfns);
	free(t);
}

/*
 * A huge page already at the front stays as it is; the pages after it move
 * behind it, keeping their pfn, and the holes follow them, not present and
 * reading as zero.
 */
TEST_F(compact, huge_page_in_place_kept)
{
	const size_t nr = HPAGE_NR, n = 2 * nr, first = nr + 88;
	struct entry *t = calloc(n, sizeof(*t));
	uint64_t *pfns = calloc(n, sizeof(*pfns));
	char *p = map_aligned(n * PG);
	size_t i, k, r = 0, h = 0;
	uint64_t head;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, pfns);
	/* Registered for promotion through the fixture's file. */
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_PROMOTE_VMA, NULL));
	for (i = 0; i < nr; i++)
		cs614_stamp(p, i, 4);
	ASSERT_EQ(0, cs614_promote_round(60000));
	ASSERT_TRUE(cs614_is_thp(p));
	head = cs614_pfn(p);
	/* Then every third page from page 600 (nr + 88) on. */
	for (i = first; i < n; i += 3)
		cs614_stamp(p, i, 4);
	k = nr + (n - first + 2) / 3;
	pfns_of(p, n, pfns);

	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));

	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_EQ(head, cs614_pfn(p));
	EXPECT_EQ(k, cs614_present_pages(p, k * PG));
	EXPECT_EQ(0U, cs614_present_pages(p + k * PG, (n - k) * PG)) TH_LOG("holes present");
	for (i = 0; i < n; i++) {
		bool populated = i < nr || (i >= first && (i - first) % 3 == 0);
		char *want = populated ? p + r++ * PG : p + (k + h++) * PG;

		ASSERT_EQ((uintptr_t)(p + i * PG), t[i].old) TH_LOG("entry %zu", i);
		ASSERT_EQ((uintptr_t)want, t[i].new) TH_LOG("entry %zu", i);
	}
	ASSERT_EQ(k, r);
	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;

		if (i < nr || (i >= first && (i - first) % 3 == 0)) {
			ASSERT_TRUE(cs614_stamped(new, i, 4)) TH_LOG("entry %zu", i);
			ASSERT_EQ(pfns[i], cs614_pfn(new)) TH_LOG("entry %zu", i);
		} else {
			ASSERT_TRUE(hole_faults(new)) TH_LOG("entry %zu (a hole)", i);
		}
	}
	munmap(p, n * PG);
	free(pfns);
	free(t);
}

/*
 * Zero-page entries (a read of a hole) are populated too: they move with the
 * pages around them, one by one, while the pages move in batches.
 */
TEST_F_TIMEOUT(compact, zero_page_entries_move_too, 300)
{
	const size_t n = 1536;
	struct entry *t = calloc(n, sizeof(*t));
	uint64_t *pfns = calloc(n, sizeof(uint64_t));
	char *p = map_aligned(n * PG);
	size_t i, k = 0, zeros = 0;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, pfns);
	for (i = 0; i < n; i++) {
		if (i % 4 == 0)
			cs614_stamp(p, i, 6);
		else if (i % 8 == 1)
			ASSERT_EQ(0, p[i * PG]);
		pfns[i] = cs614_pfn(p + i * PG);
	}

	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));

	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;

		if (i % 4 == 0 || i % 8 == 1) {
			ASSERT_EQ((uintptr_t)(p + k++ * PG), (uintptr_t)new) TH_LOG("entry %zu", i);
			/* Same page, or the same zero page, and the same bytes. */
			ASSERT_EQ(pfns[i], cs614_pfn(new)) TH_LOG("entry %zu", i);
			if (i % 4 == 0) {
				ASSERT_TRUE(cs614_stamped(new, i, 6)) TH_LOG("entry %zu", i);
			} else {
				ASSERT_EQ(0U, *(uint64_t *)new) TH_LOG("entry %zu", i);
				zeros++;
			}
		} else {
			ASSERT_TRUE(hole_faults(new)) TH_LOG("entry %zu", i);
		}
	}
	ASSERT_EQ(n / 8, zeros);
	ASSERT_EQ(3 * n / 8, k);
	munmap(p, n * PG);
	free(pfns);
	free(t);
}

/* Pages shared with a fork child cannot move: EBUSY, both sides intact. */
TEST_F(compact, after_fork)
{
	const size_t n = 256;
	struct entry *t = calloc(n, sizeof(*t));
	char *p = map_aligned(n * PG);
	int to_child[2], status;
	uint64_t pfns[256];
	pid_t pid;
	size_t i;
	char c;

	ASSERT_NE(NULL, p);
	for (i = 1; i < n; i += 2)
		cs614_stamp(p, i, 6);
	pfns_of(p, n, pfns);
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (read(to_child[0], &c, 1) != 1)
			_exit(2);
		for (i = 0; i < n; i++)
			if (i % 2 ? !cs614_stamped(p + i * PG, i, 6) : !!*(uint64_t *)(p + i * PG))
				_exit(1);
		_exit(0);
	}

	fill_table(t, n);
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_TRUE(same_pfns(p, n, pfns));
	EXPECT_TRUE(table_untouched(t, n));
	ASSERT_EQ(1, write(to_child[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/*
	 * With the child gone the pages are mapped once but still marked
	 * shared, until a write fault reuses them: refused until then.
	 */
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_TRUE(table_untouched(t, n));
	/*
	 * The write fault reuses a page unless something else still holds a
	 * reference to it (another CPU's LRU batch), then it copies: take the
	 * pfns the pages have now, and check that compaction keeps them.
	 */
	for (i = 1; i < n; i += 2)
		cs614_stamp(p, i, 6);
	pfns_of(p, n, pfns);
	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));
	for (i = 1; i < n; i += 2) {
		ASSERT_TRUE(cs614_stamped((char *)(uintptr_t)t[i].new, i, 6));
		ASSERT_EQ(pfns[i], cs614_pfn((char *)(uintptr_t)t[i].new)) TH_LOG("page %zu", i);
	}
	EXPECT_EQ(n / 2, cs614_present_pages(p, n * PG / 2));
	munmap(p, n * PG);
	free(t);
}

/* 2 GiB with one populated page: nothing proportional to the holes but the table. */
TEST_F_TIMEOUT(compact, sparse_2g, 300)
{
	const size_t n = 2 * GB / PG;
	struct entry *t = mmap(NULL, n * sizeof(*t), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = map_aligned(2 * GB);
	struct timespec t0, t1;
	uint64_t pfn;

	ASSERT_NE(NULL, p);
	ASSERT_NE(MAP_FAILED, t);
	cs614_stamp(p, n - 1, 8);
	pfn = cs614_pfn(p + (n - 1) * PG);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TH_LOG("2 GiB, one page: %.1f ms (the table is 8 MiB)",
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);

	EXPECT_TRUE(cs614_stamped(p, n - 1, 8));
	EXPECT_EQ(pfn, cs614_pfn(p));
	EXPECT_EQ((uintptr_t)p, t[n - 1].new);
	EXPECT_EQ((uintptr_t)(p + PG), t[0].new);
	EXPECT_EQ((uintptr_t)(p + (n - 1) * PG), t[n - 2].new);
	EXPECT_EQ(1U, cs614_present_pages(p, 4 * MB));
	munmap(t, n * sizeof(*t));
	munmap(p, 2 * GB);
}

struct churn {
	volatile bool stop;
	unsigned long iterations;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	while (!c->stop) {
		char *q = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (q == MAP_FAILED)
			continue;
		memset(q, 1, 64 * PG);
		munmap(q + 8 * PG, 8 * PG);
		munmap(q, 64 * PG);
		c->iterations++;
	}
	return NULL;
}

TEST_F_TIMEOUT(compact, stress, 300)
{
	const size_t n = 1024;
	struct entry *t = calloc(n, sizeof(*t));
	char *p = map_aligned(n * PG);
	struct churn churn = {};
	pthread_t threads[3];
	int i, rounds = 0;
	struct timespec t0, t1;

	ASSERT_NE(NULL, p);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, churn_thread, &churn));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		size_t j;

		ASSERT_EQ(0, madvise(p, n * PG, MADV_DONTNEED));
		for (j = rounds % 3; j < n; j += 3)
			cs614_stamp(p, j, rounds);
		ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));
		for (j = rounds % 3; j < n; j += 3)
			ASSERT_TRUE(cs614_stamped((char *)(uintptr_t)t[j].new, j, rounds));
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (t1.tv_sec - t0.tv_sec < 4);
	churn.stop = true;
	for (i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);
	TH_LOG("%d compactions, %lu mmaps by other threads", rounds, churn.iterations);
	EXPECT_LT(1, rounds);
	munmap(p, n * PG);
	free(t);
}

/*
 * Processes killed at varying points of populate, compact, unmap: each dies
 * of the signal, and no page outlives them. Some kills land inside the
 * ioctl, which stops at its next page table.
 */
TEST_F_TIMEOUT(compact, killed_midway_no_leak, 300)
{
	const size_t n = 16384;
	long anon;
	int i, status;

	anon = cs614_vmstat("nr_anon_pages");
	for (i = 0; i < 8; i++) {
		int ready[2];
		pid_t pid;
		char c;

		ASSERT_EQ(0, pipe(ready));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			struct entry *t = calloc(n, sizeof(*t));
			bool first = true;

			close(ready[0]);
			for (;;) {
				char *p = map_aligned(n * PG);
				size_t j;

				if (!p || !t)
					_exit(2);
				for (j = 0; j < n; j += 2)
					cs614_stamp(p, j, 9);
				if (first && write(ready[1], "r", 1) != 1)
					_exit(3);
				first = false;
				if (cs614_compact(self->fd, p, n, t))
					_exit(4);
				munmap(p, n * PG);
			}
		}
		close(ready[1]);
		ASSERT_EQ(1, read(ready[0], &c, 1));
		close(ready[0]);
		usleep(i * 3000);
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("status %#x", status);
		ASSERT_EQ(SIGKILL, WTERMSIG(status));
	}
	/* 64 MiB a child, half populated: 8192 pages each if they leaked. */
	EXPECT_GE(anon + 1024, cs614_vmstat("nr_anon_pages"));
}

/*
 * A page pinned for DMA (io_uring registered buffers pin with
 * FOLL_LONGTERM) cannot move: EBUSY, nothing moved or written. Once
 * unpinned, the range compacts.
 */
TEST_F(compact, pinned_page_refused)
{
	const size_t n = 64;
	struct io_uring_params params = {};
	struct entry t[64];
	uint64_t pfns[64];
	char *p = map_aligned(n * PG);
	struct iovec iov;
	int ring, tries;
	size_t i;

	ASSERT_NE(NULL, p);
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 14);
	ring = syscall(__NR_io_uring_setup, 4, &params);
	if (ring < 0)
		SKIP(munmap(p, n * PG); return, "io_uring: %s", strerror(errno));
	/* Page 2, which compaction moves to slot 1. */
	iov.iov_base = p + 2 * PG;
	iov.iov_len = PG;
	ASSERT_EQ(0, syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1))
		TH_LOG("IORING_REGISTER_BUFFERS: %s", strerror(errno));
	pfns_of(p, n, pfns);
	fill_table(t, n);

	errno = 0;
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(EBUSY, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
	EXPECT_TRUE(same_pfns(p, n, pfns));
	EXPECT_TRUE(table_untouched(t, n));

	ASSERT_EQ(0, syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0));
	close(ring);
	/* The unpin may be left to a worker: a refusal changes nothing, so try again. */
	for (tries = 0; tries < 200; tries++) {
		if (!cs614_compact(self->fd, p, n, t))
			break;
		ASSERT_EQ(EBUSY, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
		ASSERT_TRUE(same_pfns(p, n, pfns));
		usleep(10000);
	}
	ASSERT_GT(200, tries) TH_LOG("still refused 2 s after the unpin");
	for (i = 0; i < n; i += 2) {
		ASSERT_EQ((uintptr_t)(p + i / 2 * PG), t[i].new);
		ASSERT_EQ(pfns[i], cs614_pfn(p + i / 2 * PG)) TH_LOG("entry %zu", i);
		ASSERT_TRUE(cs614_stamped(p + i / 2 * PG, i, 14)) TH_LOG("entry %zu", i);
	}
	munmap(p, n * PG);
}

/*
 * Swapped-out pages are populated too: compaction moves their swap entries
 * like present pages, and refuses those shared with another process. Swap
 * is set up on zram by the test itself, with no tools but the kernel's.
 */
#define ZRAM		"/sys/block/zram0"
#define ZRAM_DEV	"/dev/zram0"
#define ZRAM_SIZE	"256M"

FIXTURE(swap)
{
	int fd;
	bool loaded;		/* zram loaded by the test: unloaded at the end */
	bool swapped_on;	/* by the test: swapoff() at the end */
	bool sized;		/* disksize set by the test: reset at the end */
	pid_t child;
};

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* Whether a line of file (/proc/swaps, /proc/mounts) names the zram device. */
static bool zram_listed(const char *file)
{
	FILE *f = fopen(file, "r");
	char line[512];
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, ZRAM_DEV " ", strlen(ZRAM_DEV " ")))
			found = true;
	fclose(f);
	return found;
}

/* What mkswap writes: a version 1 header in page 0, "SWAPSPACE2" at its end. */
static int write_swap_header(const char *dev, long size)
{
	uint32_t page[PG / sizeof(uint32_t)] = { 0 };
	/* struct { u32 version, last_page, nr_badpages; u8 uuid[16]; char volume[16]; ... } */
	uint32_t *info = page + 1024 / sizeof(uint32_t);
	int fd = open(dev, O_WRONLY);
	int ret = -1;

	if (fd < 0)
		return -1;
	info[0] = 1;
	info[1] = size / PG - 1;
	info[2] = 0;
	memcpy((char *)page + PG - 10, "SWAPSPACE2", 10);
	if (pwrite(fd, page, PG, 0) == (ssize_t)PG && !fsync(fd))
		ret = 0;
	close(fd);
	return ret;
}

/*
 * Undoes what the setup did: swapon(), setting the size of the device,
 * loading zram.
 */
static void swap_undo(bool *swapped_on, bool *sized, bool *loaded)
{
	if (*swapped_on && swapoff(ZRAM_DEV))
		perror("swapoff " ZRAM_DEV);
	*swapped_on = false;
	if (*sized && write_str(ZRAM "/reset", "1"))
		perror("resetting " ZRAM);
	*sized = false;
	if (*loaded && system("modprobe -r zram >/dev/null 2>&1"))
		fprintf(stderr, "# modprobe -r zram failed\n");
	*loaded = false;
}

FIXTURE_SETUP(swap)
{
	const char *why;
	cpu_set_t one;
	long size;
	int err;

	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	why = cs614_page_not_4k();
	if (why)
		SKIP(return, "%s", why);
	/* Swap slots show in pagemap to CAP_SYS_ADMIN only, as pfns do. */
	why = cs614_pfns_unavailable();
	if (why)
		SKIP(return, "%s", why);
	if (access(ZRAM, F_OK)) {
		if (system("modprobe zram >/dev/null 2>&1"))
			SKIP(return, "no " ZRAM " (CONFIG_ZRAM), and modprobe zram failed");
		self->loaded = true;
	}
	if (access(ZRAM, F_OK)) {
		swap_undo(&self->swapped_on, &self->sized, &self->loaded);
		SKIP(return, "no " ZRAM " (CONFIG_ZRAM)");
	}

	/* From here on, a setup that gives up undoes what it did: no teardown follows. */
	if (!zram_listed("/proc/swaps")) {
		if (zram_listed("/proc/mounts")) {
			swap_undo(&self->swapped_on, &self->sized, &self->loaded);
			SKIP(return, ZRAM_DEV " is mounted");
		}
		size = cs614_read_long(ZRAM "/disksize");
		if (size == 0) {
			if (write_str(ZRAM "/disksize", ZRAM_SIZE)) {
				swap_undo(&self->swapped_on, &self->sized, &self->loaded);
				SKIP(return, "cannot set the size of " ZRAM_DEV);
			}
			self->sized = true;
			size = cs614_read_long(ZRAM "/disksize");
		}
		if (size < (long)(16 * PG) || write_swap_header(ZRAM_DEV, size)) {
			swap_undo(&self->swapped_on, &self->sized, &self->loaded);
			SKIP(return, "cannot write a swap header to " ZRAM_DEV);
		}
		if (swapon(ZRAM_DEV, 0)) {
			err = errno;
			swap_undo(&self->swapped_on, &self->sized, &self->loaded);
			SKIP(return, "swapon " ZRAM_DEV ": %s (CONFIG_SWAP?)", strerror(err));
		}
		self->swapped_on = true;
	}
	if (cs614_thp_set("never")) {
		swap_undo(&self->swapped_on, &self->sized, &self->loaded);
		SKIP(return, "cannot set " CS614_THP_PATH);
	}
	/*
	 * Fault and page out on one CPU: MADV_PAGEOUT drains that CPU's LRU
	 * batches only, and pages not on the LRU are not paged out.
	 */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() > 0 ? sched_getcpu() : 0, &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		TH_LOG("sched_setaffinity: %s", strerror(errno));
}

FIXTURE_TEARDOWN(swap)
{
	int status;

	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, &status, 0);
	}
	cs614_thp_restore();
	swap_undo(&self->swapped_on, &self->sized, &self->loaded);
	close(self->fd);
}

/* The number of the n pages at p that are swapped out, from pagemap. */
static size_t swapped_pages(const char *p, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += !!(cs614_pagemap(p + i * PG) & CS614_PM_SWAP);
	return k;
}

/* MADV_PAGEOUT of the n pages at p until want of them are swapped out; false if never. */
static bool page_out(char *p, size_t n, size_t want)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (madvise(p, n * PG, MADV_PAGEOUT))
			return false;
		if (swapped_pages(p, n) >= want)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * Swapped out, then forked: the child shares every swap entry. EBUSY, every
 * entry left as it was. Alone again, and the pages written (exclusive), the
 * range compacts.
 */
TEST_F(swap, shared_swap_entries_refused)
{
	const size_t n = 256;
	uint64_t before[256], after[256];
	char *p = map_aligned(n * PG);
	struct entry t[256];
	int status;
	size_t i;

	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, madvise(p, n * PG, MADV_NOHUGEPAGE));
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 12);
	/* MADV_PAGEOUT leaves pages mapped by two processes alone: page out, then fork. */
	ASSERT_TRUE(page_out(p, n, n / 2))
		TH_LOG("%zu of %zu pages swapped out", swapped_pages(p, n), n / 2);
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (self->child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	ASSERT_EQ(0, cs614_where(p, n, before));
	for (i = 0; i < n; i++)
		ASSERT_EQ(i % 2 ? 0 : CS614_PM_SWAP, before[i] & (CS614_PM_PRESENT | CS614_PM_SWAP))
			TH_LOG("page %zu", i);
	fill_table(t, n);

	errno = 0;
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(EBUSY, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
	ASSERT_EQ(0, cs614_where(p, n, after));
	for (i = 0; i < n; i++)
		EXPECT_EQ(before[i], after[i]) TH_LOG("entry %zu changed", i);
	EXPECT_TRUE(table_untouched(t, n));

	ASSERT_EQ(0, kill(self->child, SIGKILL));
	ASSERT_EQ(self->child, waitpid(self->child, &status, 0));
	self->child = 0;
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 12);
	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t)) TH_LOG("%s", strerror(errno));
	for (i = 0; i < n; i += 2) {
		ASSERT_EQ((uintptr_t)(p + i / 2 * PG), t[i].new) TH_LOG("entry %zu", i);
		ASSERT_TRUE(cs614_stamped(p + i / 2 * PG, i, 12)) TH_LOG("entry %zu", i);
	}
	munmap(p, n * PG);
}

/*
 * Half of the populated pages swapped out, the rest present, no fork: the
 * swap entries move as they are (same slot), the present pages keep their
 * pfn, and every page reads back at its new address; holes stay holes.
 */
TEST_F(swap, swapped_pages_move)
{
	const size_t n = 512;
	struct entry *t = calloc(n, sizeof(*t));
	uint64_t before[512], after[512], want;
	char *p = map_aligned(n * PG);
	size_t i, j;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, madvise(p, n * PG, MADV_NOHUGEPAGE));
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 13);
	/* The populated pages of the first half go to swap. */
	ASSERT_TRUE(page_out(p, n / 2, n / 4))
		TH_LOG("%zu of %zu pages swapped out", swapped_pages(p, n / 2), n / 4);
	ASSERT_EQ(0, cs614_where(p, n, before));
	for (i = 0; i < n; i++) {
		want = i % 2 ? 0 : i < n / 2 ? CS614_PM_SWAP : CS614_PM_PRESENT;
		ASSERT_EQ(want, before[i] & (CS614_PM_PRESENT | CS614_PM_SWAP))
			TH_LOG("page %zu", i);
	}

	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t)) TH_LOG("%s", strerror(errno));

	/* Where everything is first, touching nothing; then the bytes. */
	ASSERT_EQ(0, cs614_where(p, n, after));
	for (i = 0; i < n; i++) {
		j = i % 2 ? n / 2 + i / 2 : i / 2;
		ASSERT_EQ((uintptr_t)(p + i * PG), t[i].old);
		ASSERT_EQ((uintptr_t)(p + j * PG), t[i].new) TH_LOG("entry %zu", i);
		EXPECT_EQ(i % 2 ? 0 : before[i], after[j]) TH_LOG("entry %zu", i);
	}
	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;

		ASSERT_TRUE(i % 2 ? hole_faults(new) : cs614_stamped(new, i, 13))
			TH_LOG("entry %zu", i);
	}
	munmap(p, n * PG);
	free(t);
}

TEST_HARNESS_MAIN
