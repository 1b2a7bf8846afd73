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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

	if (cs614_pagemap(addr) & PM_PRESENT)
		return false;
	getrusage(RUSAGE_SELF, &before);
	c = FORCE_READ(*addr);
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

/* A userfaultfd registered on the range, in mode (MISSING or WP, or both). */
static int uffd_open_registered(void *p, size_t len, __u64 mode)
{
	struct uffdio_api api = { .api = UFFD_API };
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0)
		return -1;
	if (ioctl(uffd, UFFDIO_API, &api) ||
	    uffd_register(uffd, p, len, mode & UFFDIO_REGISTER_MODE_MISSING,
			  mode & UFFDIO_REGISTER_MODE_WP, false)) {
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
		uffd = uffd_open_registered(p, n * PG, modes[m].mode);
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

/* Shared by all the churn threads. */
struct churn {
	atomic_bool stop;
	atomic_ulong iterations;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
		char *q = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (q == MAP_FAILED)
			continue;
		memset(q, 1, 64 * PG);
		munmap(q + 8 * PG, 8 * PG);
		munmap(q, 64 * PG);
		/* A count only, read once the threads are joined. */
		atomic_fetch_add_explicit(&c->iterations, 1, memory_order_relaxed);
	}
	return NULL;
}

TEST_F_TIMEOUT(compact, stress, 300)
{
	const size_t n = 1024;
	struct entry *t = calloc(n, sizeof(*t));
	char *p = map_aligned(n * PG);
	struct churn churn;
	pthread_t threads[3];
	int i, rounds = 0;
	struct timespec t0, t1;

	ASSERT_NE(NULL, p);
	atomic_init(&churn.stop, false);
	atomic_init(&churn.iterations, 0);
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
	atomic_store_explicit(&churn.stop, true, memory_order_release);
	for (i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);
	TH_LOG("%d compactions, %lu mmaps by other threads", rounds,
	       atomic_load_explicit(&churn.iterations, memory_order_relaxed));
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

/* The seconds since start, on CLOCK_MONOTONIC. */
static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - start->tv_sec + (now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Pins the calling thread to cpu. */
static int pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/* Starts a thread that runs on cpu only, from its first instruction; an errno. */
static int start_on_cpu(pthread_t *thread, int cpu, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	cpu_set_t set;
	int err;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	err = pthread_attr_init(&attr);
	if (err)
		return err;
	err = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	if (!err)
		err = pthread_create(thread, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return err;
}

/* The first word of a page, read once, as another CPU may be changing what maps it. */
static uint64_t first_word(const void *page)
{
	return __atomic_load_n((const uint64_t *)page, __ATOMIC_RELAXED);
}

/*
 * A long compaction in little memory: 4 GiB of address space with page 1
 * and every 64th page from page 3 on populated (16385 pages, 64 MiB), so
 * that each of its 2048 page tables holds pages and one run of moves spans
 * them all. Page 1 moves to slot 0 first, then page 3 to slot 1, which page
 * 1 has just left.
 */
#define SPARSE_PAGES	(4 * GB / PG)
#define SPARSE_STRIDE	64
#define SPARSE_K	(1 + SPARSE_PAGES / SPARSE_STRIDE)

static bool sparse_populated(size_t i)
{
	return i == 1 || i % SPARSE_STRIDE == 3;
}

/* Maps the sparse range and stamps its pages with seed; NULL on error. */
static char *sparse_build(uint64_t seed)
{
	const size_t len = SPARSE_PAGES * PG;
	char *p = map_aligned(len);
	size_t i;

	if (!p)
		return NULL;
	/* Nothing to promote afterwards: these tests are about the moves. */
	if (madvise(p, len, MADV_NOHUGEPAGE)) {
		munmap(p, len);
		return NULL;
	}
	cs614_stamp(p, 1, seed);
	for (i = 3; i < SPARSE_PAGES; i += SPARSE_STRIDE)
		cs614_stamp(p, i, seed);
	return p;
}

/* The table of a complete compaction of the sparse range at p, and the pages it names. */
static bool sparse_table_ok(struct __test_metadata *_metadata, char *p,
			    const struct entry *t, uint64_t seed)
{
	size_t i, r = 0, h = 0;
	char *want;

	for (i = 0; i < SPARSE_PAGES; i++) {
		want = sparse_populated(i) ? p + r++ * PG : p + (SPARSE_K + h++) * PG;
		if (t[i].old != (uintptr_t)(p + i * PG) || t[i].new != (uintptr_t)want) {
			TH_LOG("entry %zu: { %#lx, %#lx }, want { %p, %p }", i,
			       (unsigned long)t[i].old, (unsigned long)t[i].new, p + i * PG, want);
			return false;
		}
		if (sparse_populated(i) && !cs614_stamped(want, i, seed)) {
			TH_LOG("page %zu is not at %p", i, want);
			return false;
		}
	}
	return true;
}

/*
 * What a compaction of the sparse range at p stopped midway must leave:
 * every one of its pages in it exactly once, and nothing else populated.
 * *moved counts the pages that are not where they started.
 */
static bool sparse_each_once(struct __test_metadata *_metadata, char *p, uint64_t seed,
			     size_t *moved)
{
	const size_t chunk = 65536;
	uint64_t *pm = malloc(chunk * sizeof(*pm));
	bool *seen = calloc(SPARSE_PAGES, sizeof(*seen));
	size_t base, j, s, i, found = 0;
	bool ok = pm && seen;

	*moved = 0;
	for (base = 0; ok && base < SPARSE_PAGES; base += chunk) {
		if (cs614_pagemap_range(p + base * PG, chunk, pm)) {
			TH_LOG("pagemap: %s", strerror(errno));
			ok = false;
		}
		for (j = 0; ok && j < chunk; j++) {
			if (!(pm[j] & (PM_PRESENT | PM_SWAP)))
				continue;
			s = base + j;
			i = *(uint64_t *)(p + s * PG) ^ seed;
			if (i >= SPARSE_PAGES || !sparse_populated(i) || seen[i] ||
			    !cs614_stamped(p + s * PG, i, seed)) {
				TH_LOG("slot %zu holds %#lx%s", s, (unsigned long)(i ^ seed),
				       i < SPARSE_PAGES && seen[i] ? ", a page found before" : "");
				ok = false;
				break;
			}
			seen[i] = true;
			found++;
			*moved += s != i;
		}
	}
	if (ok && found != SPARSE_K) {
		TH_LOG("%zu pages of %zu found", found, (size_t)SPARSE_K);
		ok = false;
	}
	free(pm);
	free(seen);
	return ok;
}

/*
 * The threads of the coherence test. R1 keeps reading slot S on one CPU.
 * R2, on the other CPU, has that CPU switch to another mm before each of
 * its reads of S, so that it cannot hold a TLB entry of ours from before,
 * and publishes the identity of the page that came into S once it reads
 * it. R1 reads what R2 published before each of its own reads: once it has
 * seen it, R1 must not read the page that left S any more.
 */
struct coherence {
	const char *slot;		/* slot S */
	uint64_t x;			/* the identity of the page that leaves S */
	uint64_t y;			/* and of the one that comes in */
	atomic_ulong *turns;		/* bumped at each turn of the process on R2's CPU */
	atomic_bool stop;
	atomic_bool in_call;		/* the compaction is under way */
	atomic_bool ready;		/* R1 has read X at S */
	atomic_uint_least64_t published;	/* Y, once R2 read it at S */
	/* R1's counts */
	unsigned long violations;	/* X read after Y was published */
	unsigned long strange;		/* neither X nor Y read */
	unsigned long checks;		/* reads after Y was published, during the call */
	/* R2's */
	unsigned long seen;		/* reads of Y during the call */
};

static void *coherence_r1(void *arg)
{
	struct coherence *c = arg;
	bool ready = false;
	uint64_t pub, v;

	while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
		pub = atomic_load_explicit(&c->published, memory_order_acquire);
		v = first_word(c->slot);
		if (v == c->x) {
			c->violations += pub == c->y;
			if (!ready)
				atomic_store_explicit(&c->ready, true, memory_order_release);
			ready = true;
		} else if (v != c->y) {
			c->strange++;
		}
		c->checks += pub == c->y && atomic_load_explicit(&c->in_call, memory_order_relaxed);
	}
	return NULL;
}

static void *coherence_r2(void *arg)
{
	struct coherence *c = arg;
	unsigned long turn;
	uint64_t v;

	while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
		/* The other process runs on this CPU in between: a switch of mm, a flush. */
		turn = atomic_load_explicit(c->turns, memory_order_acquire);
		while (atomic_load_explicit(c->turns, memory_order_acquire) == turn) {
			if (atomic_load_explicit(&c->stop, memory_order_acquire))
				return NULL;
			sched_yield();
		}
		v = first_word(c->slot);
		if (v == c->y) {
			atomic_store_explicit(&c->published, v, memory_order_release);
			c->seen += atomic_load_explicit(&c->in_call, memory_order_relaxed);
		}
	}
	return NULL;
}

/*
 * A process with an mm of its own that takes turns on cpu with whoever runs
 * there, counting its turns in *turns (shared memory). Killed with its
 * parent.
 */
static pid_t start_yielder(int cpu, atomic_ulong *turns)
{
	pid_t parent = getpid(), pid = fork();

	if (pid)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent || pin_to_cpu(cpu))
		_exit(1);
	for (;;) {
		atomic_fetch_add_explicit(turns, 1, memory_order_release);
		sched_yield();
	}
}

/*
 * Pages faulted on one CPU, compacted from another: the last ones faulted
 * are still in the first CPU's LRU cache, which the compacting CPU's own
 * drain does not reach, and which fail a collapse until drained. The front
 * becomes a huge page all the same (every CPU's caches are drained for the
 * ranges that failed on a page in one), with the right data and table.
 */
TEST_F(compact, front_faulted_on_another_cpu)
{
	const size_t n = 2 * HPAGE_NR;
	struct entry *t = calloc(n, sizeof(*t));
	char *p = map_aligned(n * PG);
	int cpu, first = -1, second = -1;
	cpu_set_t all;
	size_t i;

	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, p);
	ASSERT_EQ(0, sched_getaffinity(0, sizeof(all), &all));
	for (cpu = 0; cpu < CPU_SETSIZE && second < 0; cpu++) {
		if (!CPU_ISSET(cpu, &all))
			continue;
		if (first < 0)
			first = cpu;
		else
			second = cpu;
	}
	if (second < 0)
		SKIP(return, "one CPU");
	ASSERT_EQ(0, pin_to_cpu(first));
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 21);
	ASSERT_EQ(0, pin_to_cpu(second));
	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t));
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(all), &all));

	EXPECT_TRUE(cs614_is_thp(p));
	EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));
	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;

		ASSERT_EQ((uintptr_t)(p + (i % 2 ? n / 2 : 0) * PG + i / 2 * PG), t[i].new)
			TH_LOG("entry %zu", i);
		if (i % 2) {
			ASSERT_TRUE(hole_faults(new)) TH_LOG("entry %zu", i);
			continue;
		}
		ASSERT_TRUE(cs614_stamped(new, i, 21)) TH_LOG("entry %zu", i);
	}
	munmap(p, n * PG);
	free(t);
}

/*
 * Coherence: a page moved into a slot is never reachable there while
 * another CPU may still reach the page that left it through a stale TLB
 * entry. Page 1 (X) leaves slot 1 and page 3 (Y) comes in at the start of a
 * long run of moves. R1 (see struct coherence) keeps slot 1 in its CPU's
 * TLB; R2 reads it on the other CPU with no TLB entry of ours, and
 * publishes Y when it sees it. The compaction runs on R2's CPU, so that R2
 * runs whenever the call is preempted in the middle of its work. Reading X
 * after Y was published is a violation: a flush deferred past the refill.
 */
TEST_F_TIMEOUT(compact, coherence, 300)
{
	const size_t table_len = SPARSE_PAGES * sizeof(struct entry);
	unsigned long checks = 0, seen = 0;
	struct timespec start, c0, c1;
	int cpu_r1, cpu_r2, rounds = 0, status, i;
	double ms, slowest = 0;
	atomic_ulong *turns;
	struct entry *t;
	cpu_set_t all;
	pid_t yielder;

	if (!cs614_two_cpus(&cpu_r1, &cpu_r2))
		SKIP(return, "one CPU only");
	t = mmap(NULL, table_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	turns = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, t);
	ASSERT_NE(MAP_FAILED, turns);
	ASSERT_EQ(0, sched_getaffinity(0, sizeof(all), &all));
	atomic_init(turns, 0);
	/* Forked before the range exists: it shares none of its pages. */
	yielder = start_yielder(cpu_r2, turns);
	ASSERT_LT(0, yielder) TH_LOG("fork: %s", strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		const uint64_t seed = 0xc0e7e9ce00ULL + rounds;
		struct coherence c = { .x = 1 ^ seed, .y = 3 ^ seed, .turns = turns };
		char *p = sparse_build(seed);
		pthread_t r1, r2;
		int ret, err;

		ASSERT_NE(NULL, p);
		c.slot = p + PG;
		atomic_init(&c.stop, false);
		atomic_init(&c.in_call, false);
		atomic_init(&c.ready, false);
		atomic_init(&c.published, 0);
		ASSERT_EQ(0, start_on_cpu(&r1, cpu_r1, coherence_r1, &c));
		ASSERT_EQ(0, start_on_cpu(&r2, cpu_r2, coherence_r2, &c));
		/* X in R1's TLB before the call. */
		for (i = 0; i < 10000 && !atomic_load_explicit(&c.ready, memory_order_acquire); i++)
			usleep(1000);
		ASSERT_GT(10000, i) TH_LOG("R1 never read page 1 at slot 1");

		ASSERT_EQ(0, pin_to_cpu(cpu_r2));
		clock_gettime(CLOCK_MONOTONIC, &c0);
		atomic_store_explicit(&c.in_call, true, memory_order_release);
		ret = cs614_compact(self->fd, p, SPARSE_PAGES, t);
		err = errno;
		atomic_store_explicit(&c.in_call, false, memory_order_release);
		clock_gettime(CLOCK_MONOTONIC, &c1);
		atomic_store_explicit(&c.stop, true, memory_order_release);
		pthread_join(r1, NULL);
		pthread_join(r2, NULL);
		ASSERT_EQ(0, sched_setaffinity(0, sizeof(all), &all));

		ASSERT_EQ(0, ret) TH_LOG("round %d: %s", rounds, strerror(err));
		ASSERT_EQ(0UL, c.violations)
			TH_LOG("round %d: R1 read page 1 at slot 1 %lu times after R2 read 3",
			       rounds, c.violations);
		ASSERT_EQ(0UL, c.strange) TH_LOG("round %d: slot 1 read %lu times as neither page",
						 rounds, c.strange);
		ASSERT_TRUE(sparse_table_ok(_metadata, p, t, seed)) TH_LOG("round %d", rounds);
		ASSERT_EQ(0, munmap(p, SPARSE_PAGES * PG));
		ms = (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6;
		slowest = ms > slowest ? ms : slowest;
		checks += c.checks;
		seen += c.seen;
		rounds++;
	} while (seconds_since(&start) < 15 && rounds < 64);
	ASSERT_EQ(0, kill(yielder, SIGKILL));
	ASSERT_EQ(yielder, waitpid(yielder, &status, 0));
	/* No read of Y during a call: no round could have seen a violation. */
	TH_LOG("%d rounds, slowest call %.0f ms", rounds, slowest);
	TH_LOG("during the calls: page 3 read at slot 1 by R2 %lu times, slot 1 by R1 %lu after",
	       seen, checks);
	munmap(t, table_len);
	munmap(turns, PG);
}

/* The child of clone_vm_killed_midway: one compaction of the sparse range. */
struct clone_compaction {
	int fd;
	char *p;
	struct entry *t;
	int ready;	/* written just before the call */
};

static int clone_compact(void *arg)
{
	struct clone_compaction *c = arg;

	if (write(c->ready, "r", 1) != 1)
		_exit(2);
	_exit(cs614_compact(c->fd, c->p, SPARSE_PAGES, c->t) ? 3 : 0);
}

/*
 * A process that shares the mm but is not a thread (clone(CLONE_VM))
 * compacts the sparse range, and is killed at varying points of the call:
 * the fatal-signal exception leaves the range partly compacted, but the
 * parent, for which the mm lives on, finds every page in it exactly once
 * and nothing else. A call that ended before the kill wrote its table.
 */
TEST_F_TIMEOUT(compact, clone_vm_killed_midway, 300)
{
	static const unsigned int delay_us[] = { 0, 500, 1000, 2000, 5000, 10000, 20000, 50000 };
	const size_t table_len = SPARSE_PAGES * sizeof(struct entry), stack_len = 256 * KB;
	struct entry *t = mmap(NULL, table_len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *stack = mmap(NULL, stack_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	unsigned int d, midway = 0, whole = 0;

	ASSERT_NE(MAP_FAILED, t);
	ASSERT_NE(MAP_FAILED, stack);
	for (d = 0; d < ARRAY_SIZE(delay_us); d++) {
		const uint64_t seed = 0xc10e0000ULL + d;
		struct clone_compaction c;
		int ready[2], status;
		size_t moved;
		char ch, *p;
		pid_t pid;

		p = sparse_build(seed);
		ASSERT_NE(NULL, p);
		ASSERT_EQ(0, pipe(ready));
		c = (struct clone_compaction){ self->fd, p, t, ready[1] };
		pid = clone(clone_compact, stack + stack_len, CLONE_VM | SIGCHLD, &c);
		ASSERT_LT(0, pid) TH_LOG("clone: %s", strerror(errno));
		ASSERT_EQ(1, read(ready[0], &ch, 1));
		close(ready[0]);
		close(ready[1]);
		usleep(delay_us[d]);
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status) ? WTERMSIG(status) == SIGKILL :
			    WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("killed after %u us: status %#x", delay_us[d], status);

		ASSERT_TRUE(sparse_each_once(_metadata, p, seed, &moved))
			TH_LOG("killed after %u us", delay_us[d]);
		if (WIFEXITED(status)) {
			ASSERT_TRUE(sparse_table_ok(_metadata, p, t, seed))
				TH_LOG("done before the kill after %u us", delay_us[d]);
			whole++;
		} else {
			midway += moved > 0;
		}
		TH_LOG("kill after %u us: %s, %zu of %zu pages moved", delay_us[d],
		       WIFEXITED(status) ? "too late" : "killed", moved, (size_t)SPARSE_K);
		ASSERT_EQ(0, munmap(p, SPARSE_PAGES * PG));
	}
	TH_LOG("%u kills landed after the first move, %u calls ended first", midway, whole);
	munmap(stack, stack_len);
	munmap(t, table_len);
}

/*
 * The table is pinned before anything moves. Here it lies in the first
 * pages of a THP whose other pages begin the range (same VMA, the table not
 * overlapping the range), and the range goes on into the next 2 MiB, in
 * small pages, every third populated: the table's pin is compaction's own,
 * not a reason to refuse the pages of the THP (they are in place and stay
 * there), and the pages after them move.
 */
TEST_F(compact, table_shares_huge_page_with_range)
{
	const size_t tpages = 4, n = 2 * HPAGE_NR - tpages, huge_part = HPAGE_NR - tpages;
	char *p = map_aligned(2 * HPAGE), *r;
	size_t i, k = 0, rank = 0, h = 0;
	struct entry *t;
	long kb;

	ASSERT_NE(NULL, p);
	t = (struct entry *)p;
	r = p + tpages * PG;
	ASSERT_GE(tpages * PG, n * sizeof(*t));
	ASSERT_EQ(0, madvise(p, 2 * HPAGE, MADV_HUGEPAGE));
	if (cs614_thp_set("madvise"))
		SKIP(munmap(p, 2 * HPAGE); return, "cannot set " CS614_THP_PATH);
	/* One fault: the first 2 MiB become a THP, if one can be had. */
	p[0] = 1;
	kb = cs614_anon_huge_kb(p);
	if (kb < HPAGE_KB || !cs614_is_thp(p))
		SKIP(munmap(p, 2 * HPAGE); return, "no huge page (AnonHugePages: %ld kB)", kb);
	/* The second 2 MiB in small pages. */
	ASSERT_EQ(0, cs614_thp_set("never"));
	for (i = 0; i < n; i++) {
		if (i < huge_part || (i - huge_part) % 3 == 0) {
			cs614_stamp(r, i, 15);
			k++;
		}
	}
	ASSERT_TRUE(cs614_is_thp(p));
	ASSERT_EQ(HPAGE_KB, cs614_anon_huge_kb(p));

	ASSERT_EQ(0, cs614_compact(self->fd, r, n, t))
		TH_LOG("errno %d (%s)", errno, strerror(errno));

	for (i = 0; i < n; i++) {
		bool populated = i < huge_part || (i - huge_part) % 3 == 0;
		char *want = populated ? r + rank++ * PG : r + (k + h++) * PG;

		ASSERT_EQ((uintptr_t)(r + i * PG), t[i].old) TH_LOG("entry %zu", i);
		ASSERT_EQ((uintptr_t)want, t[i].new) TH_LOG("entry %zu", i);
	}
	for (i = 0; i < n; i++) {
		char *new = (char *)(uintptr_t)t[i].new;

		if (i >= huge_part && (i - huge_part) % 3) {
			ASSERT_TRUE(hole_faults(new)) TH_LOG("entry %zu (a hole)", i);
			continue;
		}
		ASSERT_TRUE(cs614_stamped(new, i, 15)) TH_LOG("entry %zu", i);
	}
	munmap(p, 2 * HPAGE);
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
		k += !!(cs614_pagemap(p + i * PG) & PM_SWAP);
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
		ASSERT_EQ(i % 2 ? 0 : PM_SWAP, before[i] & (PM_PRESENT | PM_SWAP))
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
		want = i % 2 ? 0 : i < n / 2 ? PM_SWAP : PM_PRESENT;
		ASSERT_EQ(want, before[i] & (PM_PRESENT | PM_SWAP))
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

/*
 * Compaction racing reclaim, in a memory cgroup of the test's own: cgroup2
 * with the memory controller (mounted at /sys/fs/cgroup if it is mounted
 * nowhere), a child of its root, the test process moved into it and back
 * out at the end. memory.reclaim discards lazyfree pages (MADV_FREE, clean)
 * through the rmap, without the mmap lock: also between the walk of a
 * compaction that found a page and the page's move.
 */
#define CGROUP2_MNT	"/sys/fs/cgroup"

/* The thread that writes memory.reclaim while a compaction runs. */
struct reclaimer {
	int fd;			/* memory.reclaim of the test's cgroup */
	atomic_bool stop;
	atomic_uint go;		/* bumped just before each call */
	atomic_bool in_call;
	unsigned long writes;
};

FIXTURE(memcg)
{
	int fd;
	bool mounted;		/* cgroup2 mounted by the test: unmounted at the end */
	bool enabled;		/* +memory written to the root's subtree_control by the test */
	bool created;		/* the test's cgroup made: removed at the end */
	bool moved;		/* the process moved into it: moved back at the end */
	char mnt[256];		/* where cgroup2 is mounted */
	char home[768];		/* cgroup.procs of the cgroup the process came from */
	char dir[512];		/* the test's cgroup */
	bool reclaiming;	/* the reclaimer runs */
	pthread_t thread;
	struct reclaimer rc;
};

/* Where cgroup2 is mounted, into mnt; false if nowhere. */
static bool cgroup2_mount_point(char *mnt, size_t size)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char line[1024], dev[256], dir[512], type[64];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s %511s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "cgroup2") && strlen(dir) < size) {
			snprintf(mnt, size, "%s", dir);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Whether word is one of the space-separated words of the file at path. */
static bool file_has_word(const char *path, const char *word)
{
	char buf[1024], *tok, *save;
	bool found = false;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (tok = strtok_r(buf, "\n ", &save); tok && !found; tok = strtok_r(NULL, "\n ", &save))
		found = !strcmp(tok, word);
	return found;
}

/* The cgroup2 path of the process ("/..."), into path; false if it has none. */
static bool own_cgroup(char *path, size_t size)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[1024];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "0::/", 4) && strlen(line + 3) < size) {
			snprintf(path, size, "%s", line + 3);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Writes the pid of the process to the cgroup.procs file at path. */
static int write_pid(const char *path)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_str(path, pid);
}

/* Undoes what the setup did: the move, the cgroup, the controller, the mount. */
static void memcg_undo(FIXTURE_DATA(memcg) *self)
{
	char path[600];
	int i;

	snprintf(path, sizeof(path), "%s/cgroup.procs", self->mnt);
	if (self->moved && write_pid(self->home) && write_pid(path))
		perror("moving out of the test's cgroup");
	self->moved = false;
	/* Empty once the process is out; the memory still charged to it does not keep it. */
	for (i = 0; self->created && rmdir(self->dir) && errno == EBUSY && i < 100; i++)
		usleep(10000);
	if (self->created && !access(self->dir, F_OK))
		fprintf(stderr, "# cannot remove %s\n", self->dir);
	self->created = false;
	/* Others may use it by now: then it stays. */
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", self->mnt);
	if (self->enabled)
		write_str(path, "-memory");
	self->enabled = false;
	if (self->mounted && syscall(__NR_umount2, self->mnt, 0))
		perror("umount " CGROUP2_MNT);
	self->mounted = false;
}

FIXTURE_SETUP(memcg)
{
	char path[600], own[384];
	const char *why;
	int err;

	self->rc.fd = -1;
	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	why = cs614_page_not_4k();
	if (why)
		SKIP(return, "%s", why);
	if (!cgroup2_mount_point(self->mnt, sizeof(self->mnt))) {
		/* No <sys/mount.h>: its macros clash with those of <linux/fs.h>. */
		if (syscall(__NR_mount, "cgroup2", CGROUP2_MNT, "cgroup2", 0, NULL))
			SKIP(return, "no cgroup2, and mounting it at " CGROUP2_MNT ": %s",
			     strerror(errno));
		self->mounted = true;
		snprintf(self->mnt, sizeof(self->mnt), "%s", CGROUP2_MNT);
	}

	/* From here on, a setup that gives up undoes what it did: no teardown follows. */
	snprintf(path, sizeof(path), "%s/cgroup.controllers", self->mnt);
	if (!file_has_word(path, "memory")) {
		memcg_undo(self);
		SKIP(return, "no memory controller in %s (CONFIG_MEMCG?)", path);
	}
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", self->mnt);
	if (!file_has_word(path, "memory")) {
		if (write_str(path, "+memory")) {
			err = errno;
			memcg_undo(self);
			SKIP(return, "cannot enable the memory controller in %s: %s", path,
			     strerror(err));
		}
		self->enabled = true;
	}
	if (!own_cgroup(own, sizeof(own))) {
		memcg_undo(self);
		SKIP(return, "the process is in no cgroup2 cgroup");
	}
	snprintf(self->home, sizeof(self->home), "%s%s%s", self->mnt, own,
		 strcmp(own, "/") ? "/cgroup.procs" : "cgroup.procs");
	snprintf(self->dir, sizeof(self->dir), "%s/cs614-compact-%d", self->mnt, getpid());
	if (mkdir(self->dir, 0755)) {
		err = errno;
		memcg_undo(self);
		SKIP(return, "mkdir %s: %s", self->dir, strerror(err));
	}
	self->created = true;
	snprintf(path, sizeof(path), "%s/memory.reclaim", self->dir);
	self->rc.fd = open(path, O_WRONLY);
	if (self->rc.fd < 0) {
		err = errno;
		memcg_undo(self);
		SKIP(return, "%s: %s", path, strerror(err));
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", self->dir);
	if (write_pid(path)) {
		err = errno;
		close(self->rc.fd);
		memcg_undo(self);
		SKIP(return, "cannot move into %s: %s", self->dir, strerror(err));
	}
	self->moved = true;
	if (cs614_thp_set("never")) {
		close(self->rc.fd);
		memcg_undo(self);
		SKIP(return, "cannot set " CS614_THP_PATH);
	}
}

FIXTURE_TEARDOWN(memcg)
{
	if (self->reclaiming) {
		atomic_store_explicit(&self->rc.stop, true, memory_order_release);
		pthread_join(self->thread, NULL);
		self->reclaiming = false;
	}
	close(self->rc.fd);
	cs614_thp_restore();
	memcg_undo(self);
	close(self->fd);
}

/*
 * From a little after each call starts (a different delay each time) to its
 * end, asks for 1 MiB of the cgroup to be reclaimed, again and again.
 */
static void *reclaim_thread(void *arg)
{
	struct reclaimer *r = arg;
	unsigned int seen = 0, go;

	while (!atomic_load_explicit(&r->stop, memory_order_acquire)) {
		go = atomic_load_explicit(&r->go, memory_order_acquire);
		if (go == seen) {
			usleep(200);
			continue;
		}
		seen = go;
		usleep(go % 5 * 300);
		do {
			/* EAGAIN: less could be reclaimed than asked. */
			if (pwrite(r->fd, "1M", 2, 0) == 2 || errno == EAGAIN)
				r->writes++;
		} while (atomic_load_explicit(&r->in_call, memory_order_acquire) &&
			 !atomic_load_explicit(&r->stop, memory_order_acquire));
	}
	return NULL;
}

/*
 * The range of lazyfree_under_reclaim: three pages in four populated, and
 * those of every other block of 16 pages MADV_FREE'd (lazyfree).
 */
#define LAZY_PAGES	(32 * MB / PG)

static bool lazy_populated(size_t i)
{
	return i % 4 != 3;
}

static bool lazy_free(size_t i)
{
	return lazy_populated(i) && i / 16 % 2;
}

/* Whether the page reads as zeros where a stamp would be: a hole, or a discarded page. */
static bool stamp_zero(const char *page)
{
	const uint64_t *w = (const uint64_t *)page;

	return !w[0] && !w[PG / 8 - 1];
}

/* What lazy_after_ok() found at an entry's new address. */
enum lazy_kind { LAZY_PAGE, LAZY_GONE, LAZY_HOLE };

/*
 * After a compaction of the lazyfree range at p that succeeded: the table a
 * permutation of the range; each page not MADV_FREE'd at its entry's new
 * address; a lazyfree page there too, or gone (zeros: discarded before its
 * move, a hole then, or after it); the holes that never were pages read as
 * zeros. The pages found are in ascending order, and in the front, which
 * holds them and at most the lazyfree pages discarded after their move; the
 * holes come after the pages found, in ascending order. *gone counts the
 * lazyfree pages that are gone.
 */
static bool lazy_after_ok(struct __test_metadata *_metadata, char *p, const struct entry *t,
			  uint64_t seed, size_t *gone)
{
	const size_t n = LAZY_PAGES;
	unsigned char *kind = malloc(n), *used = calloc(n, 1);
	size_t i, s, found = 0, last_page = 0, last_hole = 0;
	bool ok = false, page_before = false, hole_before = false;
	char *new;

	*gone = 0;
	if (!kind || !used)
		goto out;
	for (i = 0; i < n; i++) {
		s = (t[i].new - (uintptr_t)p) / PG;
		if (t[i].old != (uintptr_t)(p + i * PG) || t[i].new < (uintptr_t)p ||
		    t[i].new % PG || s >= n || used[s]) {
			TH_LOG("entry %zu: { %#lx, %#lx }%s", i, (unsigned long)t[i].old,
			       (unsigned long)t[i].new,
			       s < n && used[s] ? ", a slot given before" : "");
			goto out;
		}
		used[s] = 1;
		new = p + s * PG;
		if (lazy_populated(i) && cs614_stamped(new, i, seed)) {
			if (page_before && s <= last_page) {
				TH_LOG("page %zu at slot %zu, after slot %zu", i, s, last_page);
				goto out;
			}
			page_before = true;
			last_page = s;
			kind[i] = LAZY_PAGE;
			found++;
		} else if (lazy_populated(i) && !lazy_free(i)) {
			TH_LOG("page %zu lost: slot %zu holds %#lx", i, s,
			       (unsigned long)first_word(new));
			goto out;
		} else if (!stamp_zero(new)) {
			TH_LOG("entry %zu: slot %zu holds %#lx", i, s,
			       (unsigned long)first_word(new));
			goto out;
		} else if (lazy_populated(i)) {
			kind[i] = LAZY_GONE;
			(*gone)++;
		} else {
			if (hole_before && s <= last_hole) {
				TH_LOG("hole %zu at slot %zu, after slot %zu", i, s, last_hole);
				goto out;
			}
			hole_before = true;
			last_hole = s;
			kind[i] = LAZY_HOLE;
		}
	}
	for (i = 0; i < n; i++) {
		s = (t[i].new - (uintptr_t)p) / PG;
		if ((kind[i] == LAZY_PAGE && s >= found + *gone) ||
		    (kind[i] == LAZY_HOLE && s < found)) {
			TH_LOG("%s %zu at slot %zu: %zu pages found, %zu gone",
			       kind[i] == LAZY_PAGE ? "page" : "hole", i, s, found, *gone);
			goto out;
		}
	}
	ok = true;
out:
	free(kind);
	free(used);
	return ok;
}

/* After a compaction of the lazyfree range at p that failed: nothing moved or written. */
static bool lazy_unchanged(struct __test_metadata *_metadata, char *p, const struct entry *t,
			   uint64_t seed)
{
	size_t i;

	for (i = 0; i < LAZY_PAGES; i++) {
		if (lazy_populated(i) && cs614_stamped(p + i * PG, i, seed))
			continue;
		if ((lazy_populated(i) && !lazy_free(i)) || !stamp_zero(p + i * PG)) {
			TH_LOG("slot %zu holds %#lx", i, (unsigned long)first_word(p + i * PG));
			return false;
		}
	}
	return table_untouched(t, LAZY_PAGES);
}

/*
 * Lazyfree pages that reclaim discards between the walk that finds them and
 * their move become holes: the call still succeeds and moves every other
 * page; a page that was not MADV_FREE'd is never lost. A call that fails
 * (for no fatal signal: none comes) changes nothing. Rounds for up to 20 s:
 * a fresh range, populated, partly MADV_FREE'd, compacted while a thread
 * has the cgroup reclaimed.
 */
TEST_F_TIMEOUT(memcg, lazyfree_under_reclaim, 300)
{
	const size_t n = LAZY_PAGES;
	struct entry *t = calloc(n, sizeof(*t));
	uint64_t *pm = calloc(n, sizeof(*pm));
	unsigned long done = 0, refused = 0, gone_before = 0, gone_during = 0;
	size_t i, lazy = 0;
	struct timespec start;
	int rounds = 0, last_err = 0;

	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, pm);
	for (i = 0; i < n; i++)
		lazy += lazy_free(i);
	ASSERT_EQ(0, pthread_create(&self->thread, NULL, reclaim_thread, &self->rc));
	self->reclaiming = true;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		const uint64_t seed = 0x1a2f0000ULL + rounds;
		char *p = map_aligned(n * PG);
		size_t present = 0, gone;
		int ret, err;

		ASSERT_NE(NULL, p);
		ASSERT_EQ(0, madvise(p, n * PG, MADV_NOHUGEPAGE));
		for (i = 0; i < n; i++)
			if (lazy_populated(i))
				cs614_stamp(p, i, seed);
		for (i = 0; i < n; i += 16)
			if (lazy_free(i))
				ASSERT_EQ(0, madvise(p + i * PG, 16 * PG, MADV_FREE));
		ASSERT_EQ(0, cs614_pagemap_range(p, n, pm));
		for (i = 0; i < n; i++)
			present += lazy_free(i) && (pm[i] & PM_PRESENT);
		fill_table(t, n);

		atomic_store_explicit(&self->rc.in_call, true, memory_order_release);
		atomic_fetch_add_explicit(&self->rc.go, 1, memory_order_release);
		ret = cs614_compact(self->fd, p, n, t);
		err = errno;
		atomic_store_explicit(&self->rc.in_call, false, memory_order_release);

		if (ret) {
			ASSERT_EQ(-1, ret);
			ASSERT_TRUE(err == EBUSY || err == ENOMEM)
				TH_LOG("round %d: errno %d (%s)", rounds, err, strerror(err));
			ASSERT_TRUE(lazy_unchanged(_metadata, p, t, seed))
				TH_LOG("round %d: failed (%s), and changed something", rounds,
				       strerror(err));
			refused++;
			last_err = err;
		} else {
			ASSERT_TRUE(lazy_after_ok(_metadata, p, t, seed, &gone))
				TH_LOG("round %d", rounds);
			done++;
			gone_before += lazy - present;
			gone_during += gone > lazy - present ? gone - (lazy - present) : 0;
		}
		ASSERT_EQ(0, munmap(p, n * PG));
		rounds++;
	} while (seconds_since(&start) < 20 && rounds < 200);
	atomic_store_explicit(&self->rc.stop, true, memory_order_release);
	pthread_join(self->thread, NULL);
	self->reclaiming = false;
	TH_LOG("%d rounds: %lu compactions, %lu refused (last: %s), %lu writes to memory.reclaim",
	       rounds, done, refused, refused ? strerror(last_err) : "none", self->rc.writes);
	TH_LOG("lazyfree pages discarded before a call: %lu, during or after it: %lu",
	       gone_before, gone_during);
	ASSERT_LT(0UL, done);
	free(pm);
	free(t);
}

/*
 * O_DIRECT I/O pins the user pages it reads or writes (FOLL_PIN, through
 * GUP-fast) while it runs. Its device: a zram device of the test's own
 * (hot_add), or zram0 if nothing uses it.
 */
#define ZRAM_CONTROL	"/sys/class/zram-control"
#define DIO_SIZE	(16 * MB)

/* The thread that writes a page of the range to the device with O_DIRECT, again and again. */
struct dio_writer {
	int dev;
	const char *page;
	atomic_bool stop;
	atomic_bool in_call;	/* a compaction is under way */
	unsigned long writes, during, failed;
	int err;
};

FIXTURE(dio)
{
	int fd;
	int dev;		/* the zram device, open with O_DIRECT */
	int id;			/* its number */
	bool loaded;		/* zram loaded by the test: unloaded at the end */
	bool added;		/* the device hot-added by the test: removed at the end */
	bool sized;		/* its disksize set by the test: reset at the end */
	bool writing;		/* the writer runs */
	pthread_t thread;
	struct dio_writer w;
};

static void dio_undo(FIXTURE_DATA(dio) *self)
{
	char path[64];

	if (self->dev >= 0)
		close(self->dev);
	self->dev = -1;
	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", self->id);
	if (self->sized && write_str(path, "1"))
		perror(path);
	self->sized = false;
	snprintf(path, sizeof(path), "%d", self->id);
	if (self->added && write_str(ZRAM_CONTROL "/hot_remove", path))
		perror(ZRAM_CONTROL "/hot_remove");
	self->added = false;
	if (self->loaded && system("modprobe -r zram >/dev/null 2>&1"))
		fprintf(stderr, "# modprobe -r zram failed\n");
	self->loaded = false;
}

/* The number of a zram device for the test: a new one, else zram0 if unused; -1 if none. */
static int dio_zram(FIXTURE_DATA(dio) *self)
{
	char buf[16];
	ssize_t n;
	int fd;

	fd = open(ZRAM_CONTROL "/hot_add", O_RDONLY);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			self->added = true;
			return atoi(buf);
		}
	}
	if (!access(ZRAM, F_OK) && cs614_read_long(ZRAM "/disksize") == 0 &&
	    !zram_listed("/proc/swaps") && !zram_listed("/proc/mounts"))
		return 0;
	return -1;
}

FIXTURE_SETUP(dio)
{
	const char *why;
	char path[64];
	ssize_t n;
	char *buf;
	int i, err;

	self->dev = -1;
	self->id = -1;
	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	why = cs614_page_not_4k();
	if (why)
		SKIP(return, "%s", why);
	if (access(ZRAM_CONTROL, F_OK) && access(ZRAM, F_OK)) {
		if (system("modprobe zram >/dev/null 2>&1"))
			SKIP(return, "no zram (CONFIG_ZRAM), and modprobe zram failed");
		self->loaded = true;
	}

	/* From here on, a setup that gives up undoes what it did: no teardown follows. */
	self->id = dio_zram(self);
	if (self->id < 0) {
		dio_undo(self);
		SKIP(return, "no zram device to spare for O_DIRECT");
	}
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", self->id);
	if (write_str(path, "16M")) {
		dio_undo(self);
		SKIP(return, "cannot set %s", path);
	}
	self->sized = true;
	/* devtmpfs makes the node: give it a moment. */
	snprintf(path, sizeof(path), "/dev/zram%d", self->id);
	for (i = 0; i < 100; i++) {
		self->dev = open(path, O_RDWR | O_DIRECT);
		if (self->dev >= 0 || errno != ENOENT)
			break;
		usleep(10000);
	}
	if (self->dev < 0) {
		err = errno;
		dio_undo(self);
		SKIP(return, "open %s with O_DIRECT: %s", path, strerror(err));
	}
	buf = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 1, PG);
	n = pwrite(self->dev, buf, PG, 0);
	err = errno;
	munmap(buf, PG);
	if (n != (ssize_t)PG) {
		dio_undo(self);
		SKIP(return, "O_DIRECT write to %s: %s", path, n < 0 ? strerror(err) : "short");
	}
	if (cs614_thp_set("never")) {
		dio_undo(self);
		SKIP(return, "cannot set " CS614_THP_PATH);
	}
}

FIXTURE_TEARDOWN(dio)
{
	if (self->writing) {
		atomic_store_explicit(&self->w.stop, true, memory_order_release);
		pthread_join(self->thread, NULL);
		self->writing = false;
	}
	cs614_thp_restore();
	dio_undo(self);
	close(self->fd);
}

static void *dio_write_loop(void *arg)
{
	struct dio_writer *w = arg;
	bool during;
	off_t off = 0;

	while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
		during = atomic_load_explicit(&w->in_call, memory_order_relaxed);
		if (pwrite(w->dev, w->page, PG, off) == (ssize_t)PG) {
			w->writes++;
			w->during += during;
		} else {
			w->failed++;
			w->err = errno;
		}
		off = (off + PG) % DIO_SIZE;
	}
	return NULL;
}

/*
 * Pins in flight are waited out, not refused: a thread writes page 256 of
 * the range to the device with O_DIRECT, on the other CPU, again and again,
 * while the range (every other page populated) is compacted again and
 * again, for 10 s. Every call succeeds, with the table and the pages as
 * they must be. Slot 256 stays populated (page 512 moves in), so that the
 * writer never faults a zero page into a hole. A page pinned long-term is
 * still refused.
 */
TEST_F_TIMEOUT(dio, transient_pins_waited_out, 300)
{
	const size_t n = 1024, b = 256;
	struct entry *t = calloc(n, sizeof(*t));
	char *p = map_aligned(n * PG);
	struct io_uring_params params = {};
	struct timespec start;
	int cpu_a, cpu_b, rounds = 0, ring, ret, err;
	struct iovec iov;
	size_t i;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, madvise(p, n * PG, MADV_NOHUGEPAGE));
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 0);
	self->w.dev = self->dev;
	self->w.page = p + b * PG;
	if (cs614_two_cpus(&cpu_a, &cpu_b)) {
		ASSERT_EQ(0, start_on_cpu(&self->thread, cpu_b, dio_write_loop, &self->w));
		ASSERT_EQ(0, pin_to_cpu(cpu_a));
	} else {
		ASSERT_EQ(0, pthread_create(&self->thread, NULL, dio_write_loop, &self->w));
	}
	self->writing = true;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		ASSERT_EQ(0, madvise(p, n * PG, MADV_DONTNEED));
		for (i = 0; i < n; i += 2)
			cs614_stamp(p, i, rounds);
		atomic_store_explicit(&self->w.in_call, true, memory_order_release);
		ret = cs614_compact(self->fd, p, n, t);
		err = errno;
		atomic_store_explicit(&self->w.in_call, false, memory_order_release);
		ASSERT_EQ(0, ret) TH_LOG("round %d: %s, O_DIRECT writes from slot %zu going on",
					 rounds, strerror(err), b);
		for (i = 0; i < n; i++) {
			char *want = p + (i % 2 ? n / 2 + i / 2 : i / 2) * PG;

			ASSERT_EQ((uintptr_t)(p + i * PG), t[i].old);
			ASSERT_EQ((uintptr_t)want, t[i].new)
				TH_LOG("round %d, entry %zu", rounds, i);
			if (i % 2 == 0)
				ASSERT_TRUE(cs614_stamped(want, i, rounds))
					TH_LOG("round %d, page %zu", rounds, i);
		}
		ASSERT_EQ(0U, cs614_present_pages(p + n / 2 * PG, n / 2 * PG))
			TH_LOG("round %d: holes populated", rounds);
		rounds++;
	} while (seconds_since(&start) < 10 && rounds < 1000);
	atomic_store_explicit(&self->w.stop, true, memory_order_release);
	pthread_join(self->thread, NULL);
	self->writing = false;
	TH_LOG("%d compactions; %lu O_DIRECT writes, %lu of them begun during one",
	       rounds, self->w.writes, self->w.during);
	ASSERT_EQ(0UL, self->w.failed) TH_LOG("last error: %s", strerror(self->w.err));
	ASSERT_LT(0UL, self->w.writes);

	/* Pinned for good (io_uring's registered buffers: FOLL_LONGTERM), page 2 stays. */
	ASSERT_EQ(0, madvise(p, n * PG, MADV_DONTNEED));
	for (i = 0; i < n; i += 2)
		cs614_stamp(p, i, 99);
	ring = syscall(__NR_io_uring_setup, 4, &params);
	if (ring < 0) {
		TH_LOG("io_uring: %s: long-term pins not checked", strerror(errno));
		goto out;
	}
	iov.iov_base = p + 2 * PG;
	iov.iov_len = PG;
	ASSERT_EQ(0, syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1))
		TH_LOG("IORING_REGISTER_BUFFERS: %s", strerror(errno));
	fill_table(t, n);
	errno = 0;
	EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t));
	EXPECT_EQ(EBUSY, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
	EXPECT_TRUE(table_untouched(t, n));
	for (i = 0; i < n; i += 2)
		ASSERT_TRUE(cs614_stamped(p + i * PG, i, 99)) TH_LOG("page %zu moved", i);
	ASSERT_EQ(0, syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0));
	close(ring);
out:
	munmap(p, n * PG);
	free(t);
}

TEST_HARNESS_MAIN
