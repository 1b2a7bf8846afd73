// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 part 1 benchmark: a fully populated 1 GiB anonymous VMA moved by
 * IOCTL_MVE_VMA_TO and by mremap(MREMAP_MAYMOVE | MREMAP_FIXED) to the same
 * destinations, 2 MiB aligned and not, in one boot. Prints the medians and
 * the ratio ioctl / mremap. Not run by default: 'make bench'.
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
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>

#include "../kselftest.h"
#include "cs614_bench.h"
#include "cs614_util.h"

#define MB		(1024UL * 1024)
#define LEN		(1024 * MB)
#define REPS		5
/* The system's page and huge page sizes (4 KiB and 2 MiB on x86-64). */
#define PG		cs614_page_size()
#define HPAGE		cs614_hpage_size()

static int fd;

/* Moves the VMA at "from" to "to"; returns the time it took in microseconds. */
static double move(int by_ioctl, char *from, char *to)
{
	struct cs614_move_vma arg = { (uintptr_t)from, (uintptr_t)to };
	double t = cs614_now_us();

	if (by_ioctl) {
		if (ioctl(fd, IOCTL_MVE_VMA_TO, &arg))
			ksft_exit_fail_msg("IOCTL_MVE_VMA_TO: %s\n", strerror(errno));
	} else if (mremap(from, LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
		ksft_exit_fail_msg("mremap: %s\n", strerror(errno));
	}
	return cs614_now_us() - t;
}

static void check(const char *p)
{
	size_t off;

	for (off = 0; off < LEN; off += PG)
		if (p[off] != (char)(off >> 12))
			ksft_exit_fail_msg("byte at offset %zu lost\n", off);
}

/* Both primitives move between home and dest, each direction equally often. */
static void bench(const char *name, char *home, char *dest)
{
	double by_ioctl[2 * REPS], by_mremap[2 * REPS], mi, mm;
	int i;

	for (i = 0; i < REPS; i++) {
		/* Alternate which primitive goes first, so neither inherits the other's state. */
		int first = i % 2;

		(first ? by_ioctl : by_mremap)[2 * i] = move(first, home, dest);
		(first ? by_mremap : by_ioctl)[2 * i] = move(!first, dest, home);
		(first ? by_mremap : by_ioctl)[2 * i + 1] = move(!first, home, dest);
		(first ? by_ioctl : by_mremap)[2 * i + 1] = move(first, dest, home);
	}
	for (i = 0; i < 2 * REPS; i++)
		ksft_print_msg("  sample %d: ioctl %.0f us, mremap %.0f us\n", i, by_ioctl[i],
			       by_mremap[i]);
	check(home);
	mi = cs614_median(by_ioctl, 2 * REPS);
	mm = cs614_median(by_mremap, 2 * REPS);
	ksft_print_msg("%s: IOCTL_MVE_VMA_TO median %.0f us, mremap median %.0f us, ratio %.3f\n",
		       name, mi, mm, mi / mm);
	ksft_test_result_pass("%s\n", name);
}

int main(void)
{
	char *res, *home, *aligned, *unaligned;
	size_t off;

	ksft_print_header();
	ksft_set_plan(2);
	fd = open(CS614_DEV, O_RDWR);
	if (fd < 0)
		ksft_exit_skip(CS614_DEV ": %s\n", strerror(errno));

	/* One reservation, huge page aligned, holding home and both destinations. */
	res = mmap(NULL, 3 * LEN + 3 * HPAGE, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	home = (char *)(((uintptr_t)res + HPAGE - 1) & ~(HPAGE - 1));
	aligned = home + LEN + HPAGE;
	unaligned = aligned + LEN + PG;
	munmap(res, 3 * LEN + 3 * HPAGE);

	if (mmap(home, LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != home)
		ksft_exit_fail_msg("mmap home: %s\n", strerror(errno));
	/* Base pages: the PTE moves are what is measured. */
	madvise(home, LEN, MADV_NOHUGEPAGE);
	for (off = 0; off < LEN; off += PG)
		memset(home + off, (char)(off >> 12), PG);

	bench("1 GiB, 2 MiB-aligned source and destination", home, aligned);
	bench("1 GiB, unaligned destination", home, unaligned);
	munmap(home, LEN);
	ksft_finished();
}
