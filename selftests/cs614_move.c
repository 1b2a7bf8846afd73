// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 part 1: IOCTL_MVE_VMA_TO and IOCTL_MVE_VMA move a whole VMA.
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
#include <unistd.h>

#include <linux/cs614.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#define KB		1024UL
#define MB		(1024 * KB)
#define GB		(1024 * MB)
#define HPAGE		cs614_hpage_size()

/* Reserves a free, aligned range of len bytes and returns it, unmapped. */
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

static int move_to(int fd, void *vma, void *to)
{
	struct cs614_move_vma arg = {
		.vma_addr = (uintptr_t)vma,
		.to_addr = (uintptr_t)to,
	};

	return ioctl(fd, IOCTL_MVE_VMA_TO, &arg);
}

FIXTURE(move)
{
	int fd;
	long page;
};

FIXTURE_SETUP(move)
{
	const char *why;

	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	self->page = cs614_page_size();
	ASSERT_EQ(0, cs614_install_segv_handler());
}

FIXTURE_TEARDOWN(move)
{
	/* The thp test changes the THP mode: put back here, even after a failed assertion. */
	cs614_thp_restore();
	close(self->fd);
}

/* The course's scenario (a): MVE_VMA_TO the middle one of three mappings. */
TEST_F(move, course_move_to)
{
	char *ptr1, *ptr2, *ptr3, *to, *start, *hint;
	uintptr_t vstart, vend;
	size_t len;

	/*
	 * The course's program assumes ptr2 + 2 MiB is free; in the harness
	 * process it may not be, so hint the three mappings into a free area.
	 */
	hint = free_range(4 * MB + 3 * self->page, self->page);
	ASSERT_NE(NULL, hint);
	ptr1 = mmap(hint, self->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ptr2 = mmap(hint + self->page, self->page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ptr3 = mmap(hint + 2 * self->page, self->page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ptr1);
	ASSERT_NE(MAP_FAILED, ptr2);
	ASSERT_NE(MAP_FAILED, ptr3);
	ptr2[0] = 'A';
	/*
	 * Adjacent anonymous mappings merge, so the VMA that moves may hold
	 * all three pages: 'A' keeps its offset within it.
	 */
	ASSERT_TRUE(cs614_vma_bounds(ptr2, &vstart, &vend));
	start = (char *)vstart;
	len = vend - vstart;
	to = ptr2 + 2 * MB;
	ASSERT_FALSE(cs614_any_mapped(to, len));

	ASSERT_EQ(0, move_to(self->fd, ptr2, to)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ('A', to[ptr2 - start]);
	EXPECT_TRUE(cs614_faults(ptr2));
	EXPECT_TRUE(cs614_all_mapped(to, len));
	munmap(to, len);
	munmap(ptr1, self->page);
	munmap(ptr3, self->page);
}

/* The course's scenario (b): MVE_VMA and read at the returned address. */
TEST_F(move, course_move_first_hole)
{
	const size_t pg = self->page;
	struct cs614_move_vma arg = { 0 };
	char *ptr1, *ptr2, *ptr3, *to, *start, *end;
	uintptr_t vstart, vend, top, want;
	size_t len;

	ptr1 = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ptr2 = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ptr3 = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ptr1);
	ASSERT_NE(MAP_FAILED, ptr2);
	ASSERT_NE(MAP_FAILED, ptr3);
	ptr2[0] = 'A';
	ASSERT_TRUE(cs614_vma_bounds(ptr2, &vstart, &vend));
	start = (char *)vstart;
	end = (char *)vend;
	len = end - start;
	arg.vma_addr = (uintptr_t)ptr2;
	top = cs614_user_top();
	ASSERT_NE(0UL, top) TH_LOG("cannot find the top of the address space");
	/*
	 * The hole the ioctl must pick, from the VMAs as they are now: nothing
	 * maps or unmaps between here and the call (no allocation either).
	 */
	ASSERT_TRUE(cs614_first_hole_after(vend, len, top, &want))
		TH_LOG("no hole above %#lx fits %zu bytes", (unsigned long)vend, len);

	ASSERT_EQ(0, ioctl(self->fd, IOCTL_MVE_VMA, &arg)) TH_LOG("%s", strerror(errno));
	to = (char *)(uintptr_t)arg.to_addr;
	EXPECT_LE((uintptr_t)end, (uintptr_t)to);
	/* The first hole at or above the VMA's end that fits it, wherever that is. */
	EXPECT_EQ(want, (uintptr_t)to);
	EXPECT_EQ('A', to[ptr2 - start]);
	EXPECT_TRUE(cs614_faults(ptr2));
	EXPECT_TRUE(cs614_all_mapped(to, len));
	munmap(to, len);
	munmap(ptr1, pg);
	munmap(ptr3, pg);
}

/* The hole search picks exactly the first gap that fits, skipping smaller ones. */
TEST_F(move, first_hole_is_lowest_fit)
{
	struct cs614_move_vma arg = { 0 };
	size_t pg = self->page;
	char *base, *vma;

	/* [vma: 4 pages][hole: 3 pages][blocker: 1 page][hole: 8 pages][blocker] */
	base = free_range(32 * pg, pg);
	ASSERT_NE(NULL, base);
	vma = mmap(base, 4 * pg, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ(base, vma);
	ASSERT_EQ(base + 7 * pg, mmap(base + 7 * pg, pg, PROT_READ,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	ASSERT_EQ(base + 16 * pg, mmap(base + 16 * pg, pg, PROT_READ,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	memset(vma, 'v', 4 * pg);

	arg.vma_addr = (uintptr_t)(vma + pg);
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_MVE_VMA, &arg)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ((uintptr_t)(base + 8 * pg), arg.to_addr);
	EXPECT_TRUE(cs614_all_bytes(base + 8 * pg, 4 * pg, 'v'));
	EXPECT_TRUE(cs614_faults(base));
	munmap(base, 32 * pg);
}

/* A multi-page VMA with a pattern, old range faults afterwards. */
TEST_F(move, multi_page)
{
	size_t len = 64 * self->page;
	char *src, *to;
	long rss, anon;

	/* Unmapped pages around source and destination: no VMA merges with ours. */
	src = free_range(len + 2 * self->page, self->page);
	ASSERT_NE(NULL, src);
	src += self->page;
	ASSERT_EQ(src, mmap(src, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	cs614_fill_pattern(src, len, 1);
	to = free_range(len + 2 * self->page, self->page);
	ASSERT_NE(NULL, to);
	to += self->page;

	rss = cs614_smaps_kb(src, "Rss");
	anon = cs614_smaps_kb(src, "Anonymous");
	EXPECT_EQ((long)(len / 1024), rss);
	EXPECT_EQ((long)(len / 1024), anon);

	ASSERT_EQ(0, move_to(self->fd, src + 5 * self->page, to)) TH_LOG("%s", strerror(errno));
	/* The same accounting at the new place. */
	EXPECT_EQ(rss, cs614_smaps_kb(to, "Rss"));
	EXPECT_EQ(anon, cs614_smaps_kb(to, "Anonymous"));
	EXPECT_TRUE(cs614_check_pattern(to, len, 1));
	EXPECT_TRUE(cs614_faults(src));
	EXPECT_TRUE(cs614_faults(src + len - 1));
	munmap(to, len);
}

/* A sparsely populated 1 GiB VMA: populated bytes move, holes stay zero. */
TEST_F(move, sparse_1g)
{
	size_t len = 1 * GB, step = 4 * MB + 3 * self->page, off;
	char *src, *to;

	src = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	ASSERT_EQ(0, madvise(src, len, MADV_NOHUGEPAGE));
	for (off = 0; off < len; off += step)
		cs614_fill_pattern(src + off, self->page, off);
	to = free_range(len, self->page);
	ASSERT_NE(NULL, to);

	ASSERT_EQ(0, move_to(self->fd, src, to)) TH_LOG("%s", strerror(errno));
	for (off = 0; off < len; off += step) {
		ASSERT_TRUE(cs614_check_pattern(to + off, self->page, off))
			TH_LOG("page at offset %zu", off);
		ASSERT_TRUE(cs614_all_bytes(to + off + self->page, self->page, 0));
	}
	EXPECT_TRUE(cs614_faults(src));
	EXPECT_TRUE(cs614_faults(src + len / 2));
	EXPECT_TRUE(cs614_faults(src + len - 1));
	munmap(to, len);
}

/*
 * A THP stays huge when moved to an address aligned to the huge page size,
 * splits otherwise. The THP mode is put back by the teardown.
 */
TEST_F(move, thp)
{
	const size_t hpage = HPAGE;
	const long hpage_kb = hpage / KB;
	char *src, *to, *unaligned;

	if (cs614_thp_set("madvise"))
		SKIP(return, "cannot set THP to madvise");
	src = free_range(hpage, hpage);
	ASSERT_NE(NULL, src);
	ASSERT_EQ(src, mmap(src, hpage, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	ASSERT_EQ(0, madvise(src, hpage, MADV_HUGEPAGE));
	cs614_fill_pattern(src, hpage, 7);
	ASSERT_EQ(hpage_kb, cs614_anon_huge_kb(src)) TH_LOG("no THP to start with");

	to = free_range(hpage, hpage);
	ASSERT_NE(NULL, to);
	ASSERT_EQ(0, move_to(self->fd, src, to)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(hpage_kb, cs614_anon_huge_kb(to));
	EXPECT_TRUE(cs614_check_pattern(to, hpage, 7));
	EXPECT_TRUE(cs614_faults(src));

	unaligned = free_range(2 * hpage, hpage);
	ASSERT_NE(NULL, unaligned);
	unaligned += self->page;
	ASSERT_EQ(0, move_to(self->fd, to, unaligned)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0, cs614_anon_huge_kb(unaligned));
	EXPECT_TRUE(cs614_check_pattern(unaligned, hpage, 7));
	munmap(unaligned, hpage);
}

/* Moves the VMA at src (len bytes) and checks contents and protections. */
static void move_and_check(struct __test_metadata *_metadata, int fd, char *src,
			   size_t len, bool readable)
{
	char perms_before[8], perms_after[8];
	char *to = free_range(len, cs614_page_size());

	ASSERT_NE(NULL, to);
	ASSERT_EQ(0, cs614_perms(src, perms_before));
	ASSERT_EQ(0, move_to(fd, src, to)) TH_LOG("%s", strerror(errno));
	ASSERT_EQ(0, cs614_perms(to, perms_after));
	EXPECT_STREQ(perms_before, perms_after);
	EXPECT_TRUE(cs614_faults(src));
	if (!readable) {
		EXPECT_TRUE(cs614_faults(to));
		ASSERT_EQ(0, mprotect(to, len, PROT_READ));
	}
	EXPECT_TRUE(cs614_check_pattern(to, len, 3));
	munmap(to, len);
}

TEST_F(move, memfd_shared)
{
	size_t len = 16 * self->page;
	int mfd = memfd_create("cs614", 0);
	char *src, *other;

	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ftruncate(mfd, len));
	src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, src);
	cs614_fill_pattern(src, len, 3);
	move_and_check(_metadata, self->fd, src, len, true);
	/* The file still holds the data. */
	other = mmap(NULL, len, PROT_READ, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, other);
	EXPECT_TRUE(cs614_check_pattern(other, len, 3));
	munmap(other, len);
	close(mfd);
}

/* Private, shared, read-only and PROT_NONE anonymous VMAs keep contents and protections. */
FIXTURE(kinds)
{
	int fd;
};

FIXTURE_VARIANT(kinds)
{
	int map_flags;
	int prot;	/* set after filling */
	bool readable;
};

FIXTURE_VARIANT_ADD(kinds, shared_anonymous)
{
	.map_flags = MAP_SHARED | MAP_ANONYMOUS,
	.prot = PROT_READ | PROT_WRITE,
	.readable = true,
};

FIXTURE_VARIANT_ADD(kinds, read_only)
{
	.map_flags = MAP_PRIVATE | MAP_ANONYMOUS,
	.prot = PROT_READ,
	.readable = true,
};

FIXTURE_VARIANT_ADD(kinds, prot_none)
{
	.map_flags = MAP_PRIVATE | MAP_ANONYMOUS,
	.prot = PROT_NONE,
	.readable = false,
};

FIXTURE_SETUP(kinds)
{
	const char *why;

	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	ASSERT_EQ(0, cs614_install_segv_handler());
}

FIXTURE_TEARDOWN(kinds)
{
	close(self->fd);
}

TEST_F(kinds, contents_and_protection)
{
	size_t len = 16 * cs614_page_size();
	char *src = mmap(NULL, len, PROT_READ | PROT_WRITE, variant->map_flags, -1, 0);

	ASSERT_NE(MAP_FAILED, src);
	cs614_fill_pattern(src, len, 3);
	ASSERT_EQ(0, mprotect(src, len, variant->prot));
	move_and_check(_metadata, self->fd, src, len, variant->readable);
}

/* Failures return -1 with errno and leave /proc/self/maps byte-identical. */
FIXTURE(fail)
{
	int fd;
	long page;
	uintptr_t top;	/* the end of the user address space */
	long old_min_addr;	/* vm.mmap_min_addr to put back, or -1 */
	char *base;	/* [src: 4 pages][hole: 3 pages][other: 2 pages] */
	char *src;
	char *other;
};

static char maps_before[CS614_MAPS_SIZE], maps_after[CS614_MAPS_SIZE];

/* Sets vm.mmap_min_addr to value; returns the old value, or -1. */
static long set_mmap_min_addr(long value)
{
	FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r+");
	long old = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &old) != 1 || fseek(f, 0, SEEK_SET) ||
	    fprintf(f, "%ld\n", value) < 0)
		old = -1;
	if (fclose(f))
		old = -1;
	return old;
}

FIXTURE_SETUP(fail)
{
	const char *why;
	long pg = cs614_page_size();

	self->page = pg;
	self->old_min_addr = -1;
	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	/* Found before the snapshot: the search maps and unmaps pages. */
	self->top = cs614_user_top();
	ASSERT_NE(0UL, self->top) TH_LOG("cannot find the top of the address space");
	self->base = free_range(16 * pg, pg);
	ASSERT_NE(NULL, self->base);
	self->src = mmap(self->base, 4 * pg, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ(self->base, self->src);
	self->other = mmap(self->base + 7 * pg, 2 * pg, PROT_READ,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ(self->base + 7 * pg, self->other);
	memset(self->src, 's', 4 * pg);
	ASSERT_NE(NULL, cs614_read_maps_into(maps_before));
}

FIXTURE_TEARDOWN(fail)
{
	/* Put back first: the assertions below end the teardown when they fail. */
	if (self->old_min_addr >= 0)
		set_mmap_min_addr(self->old_min_addr);
	ASSERT_NE(NULL, cs614_read_maps_into(maps_after));
	EXPECT_STREQ(maps_before, maps_after);
	EXPECT_TRUE(cs614_all_bytes(self->src, 4 * self->page, 's'));
	munmap(self->base, 16 * self->page);
	close(self->fd);
}

#define EXPECT_MOVE_FAILS(err, vma, to) do {				\
	errno = 0;							\
	EXPECT_EQ(-1, move_to(self->fd, (void *)(vma), (void *)(to)));	\
	EXPECT_EQ(err, errno) TH_LOG("errno %d (%s)", errno, strerror(errno)); \
} while (0)

TEST_F(fail, overlaps_other_vma)
{
	EXPECT_MOVE_FAILS(EEXIST, self->src, self->other - self->page);
	EXPECT_MOVE_FAILS(EEXIST, self->src, self->other + self->page);
}

TEST_F(fail, overlaps_itself)
{
	EXPECT_MOVE_FAILS(EEXIST, self->src, self->src);
	EXPECT_MOVE_FAILS(EEXIST, self->src, self->src + self->page);
	EXPECT_MOVE_FAILS(EEXIST, self->src + self->page, self->src + 3 * self->page);
}

TEST_F(fail, hole_one_page_too_small)
{
	/* The hole [base + 4, base + 7) is three pages; src is four. */
	EXPECT_MOVE_FAILS(EEXIST, self->src, self->base + 4 * self->page);
}

TEST_F(fail, unaligned_destination)
{
	EXPECT_MOVE_FAILS(EINVAL, self->src, self->base + 10 * self->page + 1);
}

/*
 * Below vm.mmap_min_addr, at or beyond the end of the user address space
 * (found at run time: 4- and 5-level page tables differ), or running over it.
 * vm.mmap_min_addr is put back by the teardown.
 */
TEST_F(fail, destination_out_of_range)
{
	self->old_min_addr = set_mmap_min_addr(16 * self->page);

	EXPECT_MOVE_FAILS(EINVAL, self->src, 0);
	if (self->old_min_addr >= 0) {
		EXPECT_MOVE_FAILS(EINVAL, self->src, self->page);
		EXPECT_MOVE_FAILS(EINVAL, self->src, 15 * self->page);
	}
	/* At the end of the address space, and 4 pages ending 2 pages past it. */
	EXPECT_MOVE_FAILS(EINVAL, self->src, self->top);
	EXPECT_MOVE_FAILS(EINVAL, self->src, self->top - 2 * self->page);
	EXPECT_MOVE_FAILS(EINVAL, self->src, -(unsigned long)self->page);
	/* Far beyond any user address space (non-canonical on x86-64). */
	EXPECT_MOVE_FAILS(EINVAL, self->src, 1UL << 63);
}

TEST_F(fail, vma_addr_unmapped)
{
	EXPECT_MOVE_FAILS(EINVAL, self->base + 5 * self->page, self->base + 10 * self->page);
	EXPECT_MOVE_FAILS(EINVAL, 0, self->base + 10 * self->page);
}

TEST_F(fail, bad_argument_pointer)
{
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA_TO, NULL));
	EXPECT_EQ(EFAULT, errno);
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, self->base + 5 * self->page));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(fail, result_not_writable)
{
	struct cs614_move_vma *arg = (void *)self->other;

	/*
	 * A valid argument on a read-only page (other, made writable only to
	 * write it): it reads, but the result cannot be written.
	 */
	ASSERT_EQ(0, mprotect(self->other, 2 * self->page, PROT_READ | PROT_WRITE));
	arg->vma_addr = (uintptr_t)self->src;
	arg->to_addr = 0;
	ASSERT_EQ(0, mprotect(self->other, 2 * self->page, PROT_READ));
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, arg));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(0U, arg->to_addr);
}

/*
 * The largest free gap of the address space below top (the highest of equal
 * ones), not below floor, the gaps below the VMAs' start gaps: every gap
 * above it is smaller. False on error.
 */
static bool largest_gap(uintptr_t floor, uintptr_t top, uintptr_t *start, uintptr_t *end)
{
	static struct cs614_vma v[CS614_MAX_VMAS];
	int i, n = cs614_vmas(v, CS614_MAX_VMAS, top);
	uintptr_t prev = floor, gs, ge;

	if (n < 0)
		return false;
	*start = *end = 0;
	for (i = 0; i <= n; i++) {
		gs = prev;
		ge = i < n ? v[i].start_gap : top;
		if (ge > gs && ge - gs >= *end - *start) {
			*start = gs;
			*end = ge;
		}
		if (i < n && v[i].end > prev)
			prev = v[i].end;
	}
	return *end > *start;
}

/*
 * A VMA larger than every hole above it: ENOMEM, nothing moved. It fills the
 * largest gap of the address space, whatever its size (128 TiB or 64 PiB of
 * user space), so that every gap above it is smaller.
 */
TEST_F(fail, no_fitting_hole)
{
	struct cs614_move_vma arg = { 0 };
	static char with_huge[CS614_MAPS_SIZE], now[CS614_MAPS_SIZE];
	uintptr_t floor = 1UL << 30, gs, ge, vs, ve, hole = 0;
	size_t len;
	char *huge;

	ASSERT_TRUE(largest_gap(floor, self->top, &gs, &ge));
	len = ge - gs;
	huge = mmap((void *)gs, len, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ((void *)gs, huge) TH_LOG("mmap of %#lx-%#lx: %s", (unsigned long)gs,
					   (unsigned long)ge, strerror(errno));
	/*
	 * It may have merged with a neighbour: then the VMA to move is larger
	 * still. No stdio from here to the munmap(): a heap that cannot grow
	 * into the gap any more would have malloc() map memory of its own.
	 */
	ASSERT_TRUE(cs614_vma_at(huge, &vs, &ve));
	ASSERT_FALSE(cs614_first_hole_after(ve, ve - vs, self->top, &hole))
		TH_LOG("a hole at %#lx fits %zu bytes", (unsigned long)hole, len);
	ASSERT_NE(NULL, cs614_read_maps_into(with_huge));
	arg.vma_addr = (uintptr_t)huge;
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, &arg));
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_EQ(0U, arg.to_addr);
	ASSERT_NE(NULL, cs614_read_maps_into(now));
	EXPECT_STREQ(with_huge, now);
	munmap(huge, len);
}

TEST_F(fail, special_mapping)
{
	char *vdso = cs614_find_mapping("[vdso]");

	if (!vdso)
		SKIP(return, "no [vdso]");
	EXPECT_MOVE_FAILS(EINVAL, vdso, self->base + 10 * self->page);
}

/* Other threads churn the address space while the main thread moves. */
#define CHURN_THREADS	8
#define MOVES		1000

static atomic_bool churn_stop;

static void *churn(void *arg)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned long n = 0;

	(void)arg;
	while (!atomic_load_explicit(&churn_stop, memory_order_acquire) && n < 1000000) {
		size_t len = (1 + n % 8) * pg;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			return (void *)1;
		memset(p, (int)n, len);
		if (p[len - 1] != (char)n)
			return (void *)2;
		munmap(p, len);
		n++;
	}
	return NULL;
}

TEST_F(move, concurrent_churn)
{
	/* Far below where mmap() places things top-down, so churn never lands here. */
	char *a = (char *)0x200000000UL, *b = (char *)0x300000000UL;
	size_t len = 16 * self->page;
	pthread_t threads[CHURN_THREADS];
	void *ret;
	int i;

	ASSERT_EQ(a, mmap(a, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0));
	ASSERT_FALSE(cs614_any_mapped(b, len));
	cs614_fill_pattern(a, len, 11);
	atomic_store_explicit(&churn_stop, false, memory_order_release);
	for (i = 0; i < CHURN_THREADS; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, churn, NULL));
	for (i = 0; i < MOVES; i++) {
		char *from = i % 2 ? b : a, *to = i % 2 ? a : b;

		if (move_to(self->fd, from, to)) {
			TH_LOG("move %d: %s", i, strerror(errno));
			break;
		}
	}
	atomic_store_explicit(&churn_stop, true, memory_order_release);
	for (int t = 0; t < CHURN_THREADS; t++) {
		ASSERT_EQ(0, pthread_join(threads[t], &ret));
		EXPECT_EQ(NULL, ret);
	}
	EXPECT_EQ(MOVES, i);
	EXPECT_TRUE(cs614_check_pattern(a, len, 11));
	EXPECT_TRUE(cs614_all_mapped(a, len));
	EXPECT_FALSE(cs614_any_mapped(b, len));
	munmap(a, len);
}

TEST_HARNESS_MAIN
