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

#define MB		(1024UL * 1024)
#define LEN		(1024 * MB)
#define PG		4096UL
#define NR_PAGES	(LEN / PG)
#define REPS		3

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

int main(void)
{
	double (*const fn[3])(char *) = { by_ioctl, by_uffd_move, by_copy };
	static const char *const name[3] = { "IOCTL_COMPACT_VMA", "UFFDIO_MOVE", "memcpy" };
	double samples[3][REPS], med[3], with_promotion[REPS], mp;
	int i, r;

	ksft_print_header();
	ksft_set_plan(2);
	fd = open("/dev/cs614", O_RDWR);
	if (fd < 0)
		ksft_exit_skip("/dev/cs614: %s\n", strerror(errno));
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
	ksft_finished();
}
