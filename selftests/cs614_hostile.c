// SPDX-License-Identifier: GPL-2.0
/*
 * cs614: hostile arguments and races.
 *
 * IOCTL_MVE_VMA with its argument inside the VMA it moves, on a read-only
 * page, or unmapped by another thread while the VMA moves: never "failed but
 * moved". IOCTL_COMPACT_VMA with its table inside the range, read-only,
 * overlapping its own argument, or unmapped and mapped again by another
 * thread: never "failed but compacted", and nothing written to the table on
 * an error. And a compaction racing faults, MADV_DONTNEED and a second
 * compaction of the same range, checked page by page against its table.
 *
 * Pages carry tokens: (index of the page they were written at << 32) |
 * a serial number unique in the process, so that where a token is found
 * says where it came from.
 *
 * The compaction tests skip unless the page size is the ABI's 4 KiB and
 * pagemap shows pfns (root); the move tests work with any page size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#define PG		cs614_page_size()
#define SENTINEL	0x5a5a5a5a5a5a5a5aULL
#define TABLE_FILL	0xa5

struct entry {
	uint64_t old;
	uint64_t new;
};

FIXTURE(hostile)
{
	int fd;
};

FIXTURE_SETUP(hostile)
{
	const char *why;

	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	ASSERT_EQ(0, cs614_install_segv_handler());
	/* Last: the teardown restores it, but does not run after a failed setup. */
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN(hostile)
{
	cs614_thp_restore();
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * Rounds of work for helper threads: the main thread starts a round, ends
 * it, and waits until every thread is done with it and paused.
 */
struct rounds {
	unsigned int gen;	/* bumped to start a round */
	int started;		/* threads working on it */
	int stop;		/* set to end it */
	int paused;		/* threads done with it */
	int quit;		/* threads return */
};

static bool round_stopped(struct rounds *r)
{
	return __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE);
}

/* A thread waits for the round after *gen; false when told to quit. */
static bool round_wait(struct rounds *r, unsigned int *gen)
{
	while (__atomic_load_n(&r->gen, __ATOMIC_ACQUIRE) == *gen) {
		if (__atomic_load_n(&r->quit, __ATOMIC_ACQUIRE))
			return false;
		/* Not faster: idle threads would steal time from the main one under TCG. */
		usleep(1000);
	}
	*gen = __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE);
	__atomic_add_fetch(&r->started, 1, __ATOMIC_ACQ_REL);
	return true;
}

static void round_done(struct rounds *r)
{
	__atomic_add_fetch(&r->paused, 1, __ATOMIC_ACQ_REL);
}

/* Spins up to n times, less if the round ends. */
static void round_spin(struct rounds *r, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (round_stopped(r))
			break;
}

/* Starts a round, and waits until the threads work on it. */
static void round_start(struct rounds *r, int threads)
{
	__atomic_store_n(&r->stop, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&r->started, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&r->paused, 0, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&r->gen, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&r->started, __ATOMIC_ACQUIRE) < threads)
		sched_yield();
}

/* Ends the round, and waits until the threads are done with it. */
static void round_end(struct rounds *r, int threads)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&r->paused, __ATOMIC_ACQUIRE) < threads)
		usleep(100);
}

static void rounds_quit(struct rounds *r, pthread_t *threads, int n)
{
	int i;

	__atomic_store_n(&r->quit, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A free range of len bytes, aligned to align, left unmapped. */
static char *free_range(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *start;

	if (p == MAP_FAILED)
		return NULL;
	start = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));
	munmap(p, len + align);
	return start;
}

static char *map_fixed(char *at, size_t len, int flags)
{
	char *p = mmap(at, len, PROT_READ | PROT_WRITE, flags | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != MAP_FAILED && p != at)
		munmap(p, len);
	return p == at ? p : NULL;
}

/*
 * The VMAs to move are stamped in words 1 and 2 of each page, so that an
 * argument may sit in word 0 of the first page or the last word of the last.
 */
static void vstamp(char *v, size_t pages, uint64_t cookie)
{
	size_t i;

	for (i = 0; i < pages; i++) {
		((uint64_t *)(v + i * PG))[1] = cookie + i;
		((uint64_t *)(v + i * PG))[2] = ~(cookie + i);
	}
}

static bool vstamped(const char *v, size_t pages, uint64_t cookie)
{
	size_t i;

	for (i = 0; i < pages; i++)
		if (((const uint64_t *)(v + i * PG))[1] != cookie + i ||
		    ((const uint64_t *)(v + i * PG))[2] != ~(cookie + i))
			return false;
	return true;
}

/* Whether the VMA containing v is exactly [v, v + len). */
static bool vma_is(const char *v, size_t len)
{
	uintptr_t start, end;

	return cs614_vma_bounds(v, &start, &end) && start == (uintptr_t)v &&
	       end == (uintptr_t)v + len;
}

static char maps_before[CS614_MAPS_SIZE], maps_after[CS614_MAPS_SIZE];

#define VPAGES	7
#define VLEN	(VPAGES * PG)

/*
 * IOCTL_MVE_VMA with its argument inside the VMA it would move: EINVAL, and
 * nothing moved or written.
 */
TEST_F(hostile, move_arg_inside_vma)
{
	char *base = free_range(VLEN + 2 * PG, PG), *v;
	struct cs614_move_vma *arg;

	ASSERT_NE(NULL, base);
	v = map_fixed(base + PG, VLEN, MAP_PRIVATE | MAP_ANONYMOUS);
	ASSERT_NE(NULL, v);
	vstamp(v, VPAGES, 0x1000);
	arg = (struct cs614_move_vma *)(v + 3 * PG + 64);
	arg->vma_addr = (uintptr_t)(v + 5 * PG);
	arg->to_addr = SENTINEL;
	ASSERT_NE(NULL, cs614_read_maps_into(maps_before));

	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, arg));
	EXPECT_EQ(EINVAL, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));

	ASSERT_NE(NULL, cs614_read_maps_into(maps_after));
	EXPECT_STREQ(maps_before, maps_after);
	ASSERT_TRUE(vma_is(v, VLEN)) TH_LOG("the VMA moved");
	EXPECT_TRUE(vstamped(v, VPAGES, 0x1000));
	EXPECT_EQ((uintptr_t)(v + 5 * PG), arg->vma_addr);
	EXPECT_EQ(SENTINEL, arg->to_addr);
	munmap(v, VLEN);
}

/*
 * The argument straddles an edge of the VMA, the other half in a shared
 * mapping next to it (which does not merge with it): EINVAL, nothing moved.
 */
static void move_arg_straddles(struct __test_metadata *_metadata, int fd, bool at_start)
{
	char *base = free_range(VLEN + 4 * PG, PG), *v, *other;
	struct cs614_move_vma *arg;

	ASSERT_NE(NULL, base);
	v = map_fixed(base + 2 * PG, VLEN, MAP_PRIVATE | MAP_ANONYMOUS);
	ASSERT_NE(NULL, v);
	other = map_fixed(at_start ? v - PG : v + VLEN, PG, MAP_SHARED | MAP_ANONYMOUS);
	ASSERT_NE(NULL, other);
	vstamp(v, VPAGES, 0x2000);
	/* At the start, to_addr is the VMA's first word; at the end, vma_addr its last. */
	arg = (struct cs614_move_vma *)(at_start ? v - 8 : v + VLEN - 8);
	arg->vma_addr = (uintptr_t)v;
	arg->to_addr = SENTINEL;
	ASSERT_TRUE(vma_is(v, VLEN));
	ASSERT_NE(NULL, cs614_read_maps_into(maps_before));

	errno = 0;
	EXPECT_EQ(-1, ioctl(fd, IOCTL_MVE_VMA, arg));
	EXPECT_EQ(EINVAL, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));

	ASSERT_NE(NULL, cs614_read_maps_into(maps_after));
	EXPECT_STREQ(maps_before, maps_after);
	ASSERT_TRUE(vma_is(v, VLEN)) TH_LOG("the VMA moved");
	EXPECT_TRUE(vstamped(v, VPAGES, 0x2000));
	EXPECT_EQ((uintptr_t)v, arg->vma_addr);
	EXPECT_EQ(SENTINEL, arg->to_addr);
	munmap(v, VLEN);
	munmap(other, PG);
}

TEST_F(hostile, move_arg_straddles_vma_start)
{
	move_arg_straddles(_metadata, self->fd, true);
}

TEST_F(hostile, move_arg_straddles_vma_end)
{
	move_arg_straddles(_metadata, self->fd, false);
}

/*
 * The result cannot be written: the argument on a read-only page, or only
 * to_addr on one (the argument straddles a writable and a read-only page).
 * EFAULT, and nothing moved.
 */
TEST_F(hostile, move_result_read_only)
{
	char *args = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct cs614_move_vma *ro_arg, *split_arg;
	char *base, *v;

	ASSERT_NE(MAP_FAILED, args);
	base = free_range(4 * VLEN, PG);
	ASSERT_NE(NULL, base);
	v = map_fixed(base + PG, VLEN, MAP_PRIVATE | MAP_ANONYMOUS);
	ASSERT_NE(NULL, v);
	vstamp(v, VPAGES, 0x3000);
	ro_arg = (struct cs614_move_vma *)(args + PG + 128);
	split_arg = (struct cs614_move_vma *)(args + PG - 8);
	ro_arg->vma_addr = (uintptr_t)v;
	ro_arg->to_addr = SENTINEL;
	split_arg->vma_addr = (uintptr_t)v;
	split_arg->to_addr = SENTINEL;
	ASSERT_EQ(0, mprotect(args + PG, PG, PROT_READ));
	ASSERT_NE(NULL, cs614_read_maps_into(maps_before));

	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, ro_arg));
	EXPECT_EQ(EFAULT, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, split_arg));
	EXPECT_EQ(EFAULT, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));

	ASSERT_NE(NULL, cs614_read_maps_into(maps_after));
	EXPECT_STREQ(maps_before, maps_after);
	ASSERT_TRUE(vma_is(v, VLEN)) TH_LOG("the VMA moved");
	EXPECT_TRUE(vstamped(v, VPAGES, 0x3000));
	EXPECT_EQ(SENTINEL, ro_arg->to_addr);
	EXPECT_EQ(SENTINEL, split_arg->to_addr);
	munmap(v, VLEN);
	munmap(args, 2 * PG);
}

/*
 * Finds the private anonymous VMA of len bytes, other than at not, that
 * holds the VMA stamped with cookie; NULL if there is none, or more than one.
 */
static char *find_moved(size_t len, const char *not, uint64_t cookie)
{
	static char maps[CS614_MAPS_SIZE];
	unsigned long start, end, inode;
	char perms[8], *line, *next, *found = NULL;
	int n, nfound = 0;

	if (!cs614_read_maps_into(maps))
		return NULL;
	for (line = maps; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		n = 0;
		if (sscanf(line, "%lx-%lx %7s %*x %*x:%*x %lu%n", &start, &end, perms, &inode,
			   &n) != 4 || !n)
			continue;
		/* No name: the rest of the line is blank. */
		while (line[n] == ' ')
			n++;
		if (end - start != len || (char *)start == not || strcmp(perms, "rw-p") || inode ||
		    (line[n] != '\n' && line[n] != '\0'))
			continue;
		if (vstamped((char *)start, len / PG, cookie)) {
			found = (char *)start;
			nfound++;
		}
	}
	return nfound == 1 ? found : NULL;
}

/* Unmaps the argument's page, then grabs the VMA's old range whenever it is free. */
struct move_race {
	struct rounds sync;
	char *old;
	char *page;
	unsigned int delay;
	int unmapped;		/* page unmapped in this round */
	unsigned long grabs;	/* the old range mapped by the racer */
};

static void *move_racer(void *arg)
{
	struct move_race *r = arg;
	unsigned int gen = 0;
	char *q;

	while (round_wait(&r->sync, &gen)) {
		round_spin(&r->sync, r->delay);
		if (!round_stopped(&r->sync)) {
			munmap(r->page, PG);
			__atomic_store_n(&r->unmapped, 1, __ATOMIC_RELEASE);
		}
		while (!round_stopped(&r->sync)) {
			q = mmap(r->old, VLEN, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (q == MAP_FAILED)
				continue;
			r->grabs += q == r->old;
			munmap(q, VLEN);
		}
		round_done(&r->sync);
	}
	return NULL;
}

/*
 * Another thread unmaps the page holding the argument while the VMA moves,
 * then maps the VMA's old range as soon as it is free. The move either
 * fails, the VMA where it was with its bytes, or succeeds, the VMA at the
 * address reported (if the argument is still there to say it) and nowhere
 * else.
 */
TEST_F_TIMEOUT(hostile, move_result_unmapped_race, 300)
{
	int it, ret, err, failed = 0, moved = 0, bad = 0;
	struct move_race race = {};
	struct cs614_move_vma *arg;
	const char *why;
	pthread_t thread;
	char *v, *found;

	ASSERT_EQ(0, pthread_create(&thread, NULL, move_racer, &race));
	for (it = 0; it < 200; it++) {
		uint64_t cookie = 0x5eed00000000ULL + (uint64_t)it * 0x10000;
		char *page = mmap(NULL, PG, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *base = free_range(4 * VLEN, PG);

		ASSERT_NE(MAP_FAILED, page);
		ASSERT_NE(NULL, base);
		v = map_fixed(base + PG, VLEN, MAP_PRIVATE | MAP_ANONYMOUS);
		ASSERT_NE(NULL, v);
		vstamp(v, VPAGES, cookie);
		arg = (struct cs614_move_vma *)page;
		arg->vma_addr = (uintptr_t)v;
		arg->to_addr = 0;
		race.old = v;
		race.page = page;
		race.unmapped = 0;
		/* Unmap at varied times; one time in four, only once the move is over. */
		race.delay = it % 4 == 3 ? UINT_MAX : (it * 7919U) % 20000;

		round_start(&race.sync, 1);
		ret = ioctl(self->fd, IOCTL_MVE_VMA, arg);
		err = errno;
		round_end(&race.sync, 1);

		found = find_moved(VLEN, v, cookie);
		why = NULL;
		if (ret) {
			failed++;
			if (err != EFAULT)
				why = strerror(err);
			else if (!race.unmapped)
				why = "EFAULT, the argument mapped throughout";
			else if (!vma_is(v, VLEN) || !vstamped(v, VPAGES, cookie))
				why = "failed, but the VMA is not where it was";
			else if (found)
				why = "failed, but the VMA is also elsewhere";
		} else {
			moved++;
			if (!found)
				why = "succeeded, but the VMA is nowhere";
			else if (!race.unmapped && arg->to_addr != (uintptr_t)found)
				why = "succeeded, but to_addr is not where the VMA is";
			else if (cs614_any_mapped(v, VLEN))
				why = "succeeded, but the old range is still mapped";
		}
		if (why && bad++ < 10)
			TH_LOG("move %d: %s", it, why);
		if (found)
			munmap(found, VLEN);
		if (ret && vma_is(v, VLEN))
			munmap(v, VLEN);
		if (!race.unmapped)
			munmap(page, PG);
	}
	rounds_quit(&race.sync, &thread, 1);
	TH_LOG("%d moves failed, %d succeeded, the old range was taken %lu times", failed, moved,
	       race.grabs);
	EXPECT_EQ(0, bad);
}

/* Compaction. */

/*
 * Why the compaction tests cannot run here, or NULL: the ABI counts 4 KiB
 * pages, and the checks read pfns.
 */
static const char *compaction_unsupported(void)
{
	const char *why = cs614_page_not_4k();

	return why ? why : cs614_pfns_unavailable();
}

static void pfns_of(const char *p, size_t n, uint64_t *pfns)
{
	size_t i;

	for (i = 0; i < n; i++)
		pfns[i] = cs614_pfn(p + i * PG);
}

static bool same_where(const char *p, size_t n, const uint64_t *pm)
{
	uint64_t *now = calloc(n, sizeof(*now));
	bool same;

	same = now && !cs614_where(p, n, now) && !memcmp(now, pm, n * sizeof(*now));
	free(now);
	return same;
}

/*
 * Checks a compaction of the n pages at p, stamped with seed where pfns[i]
 * (the pfns before) is not 0: the populated pages at the front, in order,
 * with their pfn and stamp, the other slots not populated, and, given t, the
 * table that says so. Returns the number of wrong entries.
 */
static size_t compacted_wrong(struct __test_metadata *_metadata, char *p, size_t n,
			      const uint64_t *pfns, const struct entry *t, uint64_t seed)
{
	size_t i, k = 0, r = 0, h = 0, wrong = 0;
	char *want;

	for (i = 0; i < n; i++)
		k += !!pfns[i];
	for (i = 0; i < n; i++) {
		want = pfns[i] ? p + r++ * PG : p + (k + h++) * PG;
		if (t && (t[i].old != (uintptr_t)(p + i * PG) || t[i].new != (uintptr_t)want)) {
			if (!wrong++)
				TH_LOG("entry %zu: { %#llx, %#llx }, want { %p, %p }", i,
				       (unsigned long long)t[i].old, (unsigned long long)t[i].new,
				       p + i * PG, want);
			continue;
		}
		if (pfns[i] ? cs614_pfn(want) != pfns[i] || !cs614_stamped(want, i, seed) :
			      !!(cs614_pagemap(want) & (PM_PRESENT | PM_SWAP))) {
			if (!wrong++)
				TH_LOG("page %zu: wrong at %p", i, want);
		}
	}
	return wrong;
}

static bool table_untouched(const void *t, size_t bytes)
{
	return cs614_all_bytes(t, bytes, (char)TABLE_FILL);
}

#define TPAGES	64

/*
 * A range of TPAGES pages at page off of a VMA of 2 * TPAGES pages, every
 * even page of which is stamped, compacted with its table at byte offset
 * toff of the VMA (TPAGES entries): EINVAL if the table overlaps the
 * range, with nothing changed or written, else 0 and the right table.
 */
static void table_case(struct __test_metadata *_metadata, int fd, size_t off, size_t toff,
		       bool overlaps)
{
	const size_t vma_pages = 2 * TPAGES;
	char *vma = cs614_map_aligned(vma_pages * PG), *p;
	uint64_t pm[2 * TPAGES], pfns[TPAGES];
	struct entry *t;
	size_t i;

	ASSERT_NE(NULL, vma);
	ASSERT_EQ(0, madvise(vma, vma_pages * PG, MADV_NOHUGEPAGE));
	p = vma + off * PG;
	t = (struct entry *)(vma + toff);
	for (i = 0; i < TPAGES; i += 2)
		cs614_stamp(p, i, 0x77);
	memset(t, TABLE_FILL, TPAGES * sizeof(*t));
	ASSERT_EQ(0, cs614_where(vma, vma_pages, pm));
	pfns_of(p, TPAGES, pfns);

	errno = 0;
	if (overlaps) {
		EXPECT_EQ(-1, cs614_compact(fd, p, TPAGES, t));
		EXPECT_EQ(EINVAL, errno) TH_LOG("errno %d (%s)", errno, strerror(errno));
		EXPECT_TRUE(same_where(vma, vma_pages, pm)) TH_LOG("pages moved");
		EXPECT_TRUE(table_untouched(t, TPAGES * sizeof(*t))) TH_LOG("table written");
	} else {
		ASSERT_EQ(0, cs614_compact(fd, p, TPAGES, t)) TH_LOG("%s", strerror(errno));
		EXPECT_EQ(0U, compacted_wrong(_metadata, p, TPAGES, pfns, t, 0x77));
		/* The pages outside the range, the table's among them, stay. */
		EXPECT_TRUE(off ? same_where(vma, off, pm) :
				  same_where(vma + TPAGES * PG, TPAGES, pm + TPAGES));
	}
	munmap(vma, vma_pages * PG);
}

TEST_F(hostile, compact_table_inside_range)
{
	const char *why;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	table_case(_metadata, self->fd, 0, 2 * PG + 128, true);
}

TEST_F(hostile, compact_table_overlaps_range_start)
{
	const char *why;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	/* The table's last 8 entries are the range's first 128 bytes. */
	table_case(_metadata, self->fd, TPAGES, TPAGES * PG - (TPAGES - 8) * sizeof(struct entry),
		   true);
	/* By one byte (an unaligned table). */
	table_case(_metadata, self->fd, TPAGES, TPAGES * PG - TPAGES * sizeof(struct entry) + 1,
		   true);
}

TEST_F(hostile, compact_table_overlaps_range_end)
{
	const char *why;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	table_case(_metadata, self->fd, 0, TPAGES * PG - 128, true);
	table_case(_metadata, self->fd, 0, TPAGES * PG - 1, true);
}

TEST_F(hostile, compact_table_next_to_range)
{
	const char *why;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	/* Ending where the range starts, then starting where it ends. */
	table_case(_metadata, self->fd, TPAGES, TPAGES * PG - TPAGES * sizeof(struct entry),
		   false);
	table_case(_metadata, self->fd, 0, TPAGES * PG, false);
}

/*
 * A table that is not writable, in whole or in part: EFAULT before anything
 * changes, and nothing written to the part that is writable.
 */
TEST_F(hostile, compact_table_read_only)
{
	const char *why;
	const size_t n = 512;	/* a table of two pages */
	uint64_t pfns[512];
	char *p = cs614_map_aligned(n * PG);
	char *t = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static const struct {
		int first, second;
	} prot[] = {
		{ PROT_READ, PROT_READ },
		{ PROT_READ | PROT_WRITE, PROT_READ },
		{ PROT_READ, PROT_READ | PROT_WRITE },
		{ PROT_NONE, PROT_READ | PROT_WRITE },
		{ PROT_READ | PROT_WRITE, PROT_NONE },
	};
	size_t i, j;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_NE(NULL, p);
	ASSERT_NE(MAP_FAILED, t);
	ASSERT_EQ(0, madvise(p, n * PG, MADV_NOHUGEPAGE));
	for (i = 1; i < n; i += 3)
		cs614_stamp(p, i, 0x55);
	pfns_of(p, n, pfns);
	memset(t, TABLE_FILL, 2 * PG);

	for (i = 0; i < ARRAY_SIZE(prot); i++) {
		ASSERT_EQ(0, mprotect(t, PG, prot[i].first));
		ASSERT_EQ(0, mprotect(t + PG, PG, prot[i].second));
		errno = 0;
		EXPECT_EQ(-1, cs614_compact(self->fd, p, n, t)) TH_LOG("case %zu", i);
		EXPECT_EQ(EFAULT, errno)
			TH_LOG("case %zu: errno %d (%s)", i, errno, strerror(errno));
		ASSERT_EQ(0, mprotect(t, 2 * PG, PROT_READ));
		EXPECT_TRUE(table_untouched(t, 2 * PG)) TH_LOG("case %zu: table written", i);
		for (j = 0; j < n; j++)
			ASSERT_EQ(pfns[j], cs614_pfn(p + j * PG))
				TH_LOG("case %zu: page %zu moved", i, j);
	}

	/* Writable again, it works. */
	ASSERT_EQ(0, mprotect(t, 2 * PG, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, cs614_compact(self->fd, p, n, t)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0U, compacted_wrong(_metadata, p, n, pfns, (struct entry *)t, 0x55));
	munmap(t, 2 * PG);
	munmap(p, n * PG);
}

/*
 * The argument lies inside the table: read before the table is written, so
 * the call succeeds and the table is complete.
 */
TEST_F(hostile, compact_arg_inside_table)
{
	const char *why;
	const size_t n = 256;
	/* At the start, inside, and at the end of the table. */
	const size_t offs[] = {
		0, 40, n * sizeof(struct entry) - sizeof(struct cs614_compact_vma),
	};
	struct entry *t = calloc(n, sizeof(*t));
	uint64_t pfns[256];
	size_t c, i;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_NE(NULL, t);
	for (c = 0; c < ARRAY_SIZE(offs); c++) {
		char *p = cs614_map_aligned(n * PG);
		struct cs614_compact_vma *arg = (void *)((char *)t + offs[c]);

		ASSERT_NE(NULL, p);
		ASSERT_EQ(0, madvise(p, n * PG, MADV_NOHUGEPAGE));
		for (i = c; i < n; i += 3)
			cs614_stamp(p, i, 0x66);
		pfns_of(p, n, pfns);
		memset(t, TABLE_FILL, n * sizeof(*t));
		arg->addr = (uintptr_t)p;
		arg->length = n;
		arg->pad = 0;
		arg->buff = (uintptr_t)t;

		ASSERT_EQ(0, ioctl(self->fd, IOCTL_COMPACT_VMA, arg))
			TH_LOG("argument at byte %zu: %s", offs[c], strerror(errno));
		EXPECT_EQ(0U, compacted_wrong(_metadata, p, n, pfns, t, 0x66))
			TH_LOG("argument at byte %zu", offs[c]);
		munmap(p, n * PG);
	}
	free(t);
}

/* Unmaps the table and maps it again, over and over. */
struct table_race {
	struct rounds sync;
	char *t;
	size_t bytes;
	unsigned int delay;
	unsigned int unmaps;	/* bumped before each munmap */
	int broken;		/* the table could not be mapped again */
};

static void *table_racer(void *arg)
{
	struct table_race *r = arg;
	unsigned int gen = 0;

	while (round_wait(&r->sync, &gen)) {
		round_spin(&r->sync, r->delay);
		while (!round_stopped(&r->sync) && !r->broken) {
			__atomic_add_fetch(&r->unmaps, 1, __ATOMIC_SEQ_CST);
			munmap(r->t, r->bytes);
			if (!map_fixed(r->t, r->bytes, MAP_PRIVATE | MAP_ANONYMOUS))
				r->broken = 1;
		}
		round_done(&r->sync);
	}
	return NULL;
}

/*
 * Compactions of fresh ranges while another thread unmaps the table and maps
 * it again: each fails with EFAULT, nothing moved, or succeeds, everything
 * moved (checked through pagemap: the table may be a new mapping by then).
 */
TEST_F_TIMEOUT(hostile, compact_table_unmapped_race, 300)
{
	const size_t n = 512;
	struct table_race race = { .bytes = 512 * sizeof(struct entry) };
	int it, ret, err, failed = 0, done = 0, bad = 0;
	unsigned int unmaps;
	uint64_t pfns[512];
	const char *why;
	pthread_t thread;
	struct entry *t;
	bool unmapped;
	size_t i;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	race.t = mmap(NULL, race.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, race.t);
	ASSERT_EQ(0, pthread_create(&thread, NULL, table_racer, &race));
	for (it = 0; it < 100; it++) {
		char *p = cs614_map_aligned(n * PG);

		ASSERT_NE(NULL, p);
		ASSERT_EQ(0, madvise(p, n * PG, MADV_NOHUGEPAGE));
		for (i = it % 3; i < n; i += 2 + it % 3)
			cs614_stamp(p, i, it);
		pfns_of(p, n, pfns);
		/* Unmap at varied times; one time in four, only once the compaction is over. */
		race.delay = it % 4 == 3 ? UINT_MAX : (it * 7919U) % 50000;
		unmaps = __atomic_load_n(&race.unmaps, __ATOMIC_ACQUIRE);

		round_start(&race.sync, 1);
		ret = cs614_compact(self->fd, p, n, race.t);
		err = errno;
		round_end(&race.sync, 1);
		ASSERT_FALSE(race.broken) TH_LOG("cannot map the table again");

		unmapped = __atomic_load_n(&race.unmaps, __ATOMIC_ACQUIRE) != unmaps;
		why = NULL;
		if (ret) {
			failed++;
			for (i = 0; i < n; i++)
				if (cs614_pfn(p + i * PG) != pfns[i])
					break;
			if (err != EFAULT)
				why = strerror(err);
			else if (!unmapped)
				why = "EFAULT, the table mapped throughout";
			else if (i < n)
				why = "failed, but pages moved";
		} else {
			done++;
			/* The table is ours to check if it was never unmapped meanwhile. */
			t = unmapped ? NULL : (struct entry *)race.t;
			if (compacted_wrong(_metadata, p, n, pfns, t, it))
				why = "succeeded, but the range is not compacted as it should";
		}
		if (why && bad++ < 10)
			TH_LOG("compaction %d: %s", it, why);
		munmap(p, n * PG);
	}
	rounds_quit(&race.sync, &thread, 1);
	TH_LOG("%d compactions failed (EFAULT), %d succeeded, %u unmaps", failed, done,
	       race.unmaps);
	EXPECT_EQ(0, bad);
	munmap(race.t, race.bytes);
}

/*
 * The race: one range of RACE_PAGES pages, a random part of it populated
 * with tokens; racers read-fault, write-fault (a new token with the index of
 * the page written), MADV_DONTNEED random pages, and a second compactor
 * compacts the same range into its own table, while the main thread
 * compacts it. Once all are paused, every page must be explained by the
 * tables: see token_explained().
 */
#define RACE_PAGES	8192
#define RACE_ROUNDS	20
#define RACE_MS		5000

enum { R_COMPACT, R_READ, R_WRITE, R_DONTNEED, NR_RACERS };

static const char *const racer_names[] = { "compactions", "reads", "writes", "DONTNEEDs" };

static uint32_t token_serial;

static uint64_t token(size_t i)
{
	return (uint64_t)i << 32 | __atomic_add_fetch(&token_serial, 1, __ATOMIC_RELAXED);
}

struct compact_race {
	struct rounds sync;
	int fd;
	char *p;
	struct entry *t2;	/* the second compactor's table */
	int ret2, err2;
	uint32_t serial2;	/* the last serial handed out when it returned */
	unsigned long ops[NR_RACERS];
};

struct racer {
	struct compact_race *race;
	int kind;
};

static void *compact_racer(void *arg)
{
	struct racer *me = arg;
	struct compact_race *r = me->race;
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (me->kind + 1);
	unsigned int gen = 0;
	size_t i;
	char *p;

	while (round_wait(&r->sync, &gen)) {
		p = r->p;
		if (me->kind == R_COMPACT) {
			usleep(xorshift(&rng) % 2000);
			r->ret2 = cs614_compact(r->fd, p, RACE_PAGES, r->t2);
			r->err2 = errno;
			r->serial2 = __atomic_load_n(&token_serial, __ATOMIC_SEQ_CST);
			r->ops[R_COMPACT]++;
		}
		while (!round_stopped(&r->sync)) {
			i = xorshift(&rng) % RACE_PAGES;
			switch (me->kind) {
			case R_READ:
				(void)__atomic_load_n((uint64_t *)(p + i * PG), __ATOMIC_RELAXED);
				break;
			case R_WRITE:
				/* Tokens of the page written only: where they are says when. */
				__atomic_store_n((uint64_t *)(p + i * PG), token(i),
						 __ATOMIC_RELAXED);
				break;
			case R_DONTNEED:
				madvise(p + i * PG, PG, MADV_DONTNEED);
				break;
			default:
				usleep(200);
				continue;
			}
			r->ops[me->kind]++;
		}
		round_done(&r->sync);
	}
	return NULL;
}

/* What a table says: where entry i went, and whether it was populated. */
struct layout {
	uint32_t dest[RACE_PAGES];
	bool populated[RACE_PAGES];
};

/*
 * Parses a table of the n pages at p: entry i's old is p + i pages; its new
 * is the next front slot (a populated page: they keep their order) or
 * k + the number of holes before it (a hole), for one k, the number of
 * populated pages. A tail of holes already in place reads as populated:
 * the same slots either way.
 */
static bool parse_table(struct __test_metadata *_metadata, const struct entry *t, char *p,
			size_t n, struct layout *l)
{
	size_t i, rank = 0, holes = 0;
	long k = -1, j;

	for (i = 0; i < n; i++) {
		if (t[i].old != (uintptr_t)(p + i * PG) || t[i].new < (uintptr_t)p ||
		    (t[i].new - (uintptr_t)p) % PG || (t[i].new - (uintptr_t)p) / PG >= n) {
			TH_LOG("entry %zu: { %#llx, %#llx } for a range at %p", i,
			       (unsigned long long)t[i].old, (unsigned long long)t[i].new, p);
			return false;
		}
		j = (t[i].new - (uintptr_t)p) / PG;
		l->dest[i] = j;
		l->populated[i] = (size_t)j == rank;
		if (l->populated[i]) {
			rank++;
			continue;
		}
		if (k < 0)
			k = j - (long)holes;
		if (j != k + (long)holes) {
			TH_LOG("entry %zu: hole %zu to slot %ld, the first hole went to %ld", i,
			       holes, j, k);
			return false;
		}
		holes++;
	}
	if (k >= 0 && (size_t)k != rank) {
		TH_LOG("%zu populated entries, but the holes start at slot %ld", rank, k);
		return false;
	}
	return true;
}

/*
 * Whether a token of page x may be found at slot f after the compaction a,
 * then b (b NULL: a only). It was written at f after the last compaction;
 * or at x before b, and b moved it to f; or at x before a, and a then b
 * moved it to f. A racer writes tokens of the page it writes only.
 */
static bool token_explained(size_t x, size_t f, const struct layout *a, const struct layout *b)
{
	if (x == f)
		return true;
	if (!b)
		return a->populated[x] && a->dest[x] == f;
	if (b->populated[x] && b->dest[x] == f)
		return true;
	return a->populated[x] && b->populated[a->dest[x]] && b->dest[a->dest[x]] == f;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Counts the pages of the range that the compactions a then b (b may be
 * NULL) do not explain; logs the first few if log. A token whose serial was
 * handed out after both compactions returned (above last) was written after
 * them: it must be where it was written, whatever the tables say.
 */
static size_t unexplained(struct __test_metadata *_metadata, const char *p, const uint64_t *pm,
			  const struct layout *a, const struct layout *b, uint32_t last, bool log)
{
	size_t f, x, wrong = 0;
	uint64_t v;

	for (f = 0; f < RACE_PAGES; f++) {
		if (!(pm[f] & (PM_PRESENT | PM_SWAP)))
			continue;	/* a hole */
		v = *(const uint64_t *)(p + f * PG);
		if (!v)
			continue;	/* the zero page, or a page never written */
		x = v >> 32;
		if (x == f || (x < RACE_PAGES && (uint32_t)v <= last &&
			       token_explained(x, f, a, b)))
			continue;
		if (log && wrong < 5)
			TH_LOG("slot %zu holds a token of page %zu (serial %u)", f, x, (uint32_t)v);
		wrong++;
	}
	return wrong;
}

/* Counts the tokens found twice: a page mapped twice, or copied. */
static size_t duplicated(const char *p, const uint64_t *pm, uint64_t *tokens)
{
	size_t f, n = 0, dups = 0;

	for (f = 0; f < RACE_PAGES; f++)
		if ((pm[f] & (PM_PRESENT | PM_SWAP)) && *(const uint64_t *)(p + f * PG))
			tokens[n++] = *(const uint64_t *)(p + f * PG);
	qsort(tokens, n, sizeof(*tokens), cmp_u64);
	for (f = 1; f < n; f++)
		dups += tokens[f] == tokens[f - 1];
	return dups;
}

TEST_F_TIMEOUT(hostile, compact_race, 300)
{
	const char *why;
	static struct entry t1[RACE_PAGES], t2[RACE_PAGES];
	static struct layout main_layout, second_layout;
	static uint64_t pm[RACE_PAGES], tokens[RACE_PAGES];
	struct compact_race race = { .fd = self->fd, .t2 = t2 };
	const size_t len = RACE_PAGES * PG;
	struct racer racers[NR_RACERS];
	pthread_t threads[NR_RACERS];
	uint64_t rng = 0x12345678;
	struct timespec t0, now;
	int round, i, ret, err;
	uint32_t last;
	size_t wrong = 0, w, w2, dups = 0, populated;
	const struct layout *second, *first, *then;

	why = compaction_unsupported();
	if (why)
		SKIP(return, "%s", why);
	for (i = 0; i < NR_RACERS; i++) {
		racers[i] = (struct racer){ .race = &race, .kind = i };
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, compact_racer, &racers[i]));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (round = 0; round < RACE_ROUNDS; round++) {
		char *p = cs614_map_aligned(len);

		ASSERT_NE(NULL, p);
		ASSERT_EQ(0, madvise(p, len, MADV_NOHUGEPAGE));
		/* From a quarter to three quarters populated. */
		populated = 0;
		for (i = 0; i < RACE_PAGES; i++) {
			if (xorshift(&rng) % 8 >= 2 + (unsigned int)round % 5)
				continue;
			*(uint64_t *)(p + i * PG) = token(i);
			populated++;
		}
		race.p = p;
		race.ret2 = -2;

		round_start(&race.sync, NR_RACERS);
		usleep(xorshift(&rng) % 2000);
		ret = cs614_compact(self->fd, p, RACE_PAGES, t1);
		err = errno;
		last = __atomic_load_n(&token_serial, __ATOMIC_SEQ_CST);
		round_end(&race.sync, NR_RACERS);

		ASSERT_EQ(0, ret) TH_LOG("round %d (%zu pages populated): errno %d (%s)", round,
					 populated, err, strerror(err));
		EXPECT_TRUE(race.ret2 == 0 || race.err2 == ENOENT)
			TH_LOG("round %d: the second compaction: %d, errno %d (%s)", round,
			       race.ret2, race.err2, strerror(race.err2));
		ASSERT_TRUE(parse_table(_metadata, t1, p, RACE_PAGES, &main_layout))
			TH_LOG("round %d: the main table", round);
		second = NULL;
		if (race.ret2 == 0) {
			ASSERT_TRUE(parse_table(_metadata, t2, p, RACE_PAGES, &second_layout))
				TH_LOG("round %d: the second table", round);
			second = &second_layout;
			if (race.serial2 > last)
				last = race.serial2;
		}

		ASSERT_EQ(0, cs614_pagemap_range(p, RACE_PAGES, pm));
		/*
		 * The two compactions ran in some order, each atomically: one
		 * of the two orders must explain every page.
		 */
		first = second ? second : &main_layout;
		then = second ? &main_layout : NULL;
		w = unexplained(_metadata, p, pm, first, then, last, false);
		if (w && second) {
			w2 = unexplained(_metadata, p, pm, &main_layout, second, last, false);
			if (w2 < w) {
				w = w2;
				first = &main_layout;
				then = second;
			}
		}
		if (w) {
			TH_LOG("round %d: %zu pages unexplained by the table(s)", round, w);
			unexplained(_metadata, p, pm, first, then, last, true);
			wrong += w;
		}
		dups += duplicated(p, pm, tokens);
		munmap(p, len);

		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >
		    RACE_MS)
			break;
	}
	rounds_quit(&race.sync, threads, NR_RACERS);
	TH_LOG("%d rounds; racers: %lu %s, %lu %s, %lu %s, %lu %s", round + (round < RACE_ROUNDS),
	       race.ops[0], racer_names[0], race.ops[1], racer_names[1], race.ops[2],
	       racer_names[2], race.ops[3], racer_names[3]);
	EXPECT_EQ(0U, wrong);
	EXPECT_EQ(0U, dups) TH_LOG("%zu tokens found twice", dups);
}

TEST_HARNESS_MAIN
