// SPDX-License-Identifier: GPL-2.0
/*
 * Helper of cs614_map_test.sh: builds a known layout of pages in its own
 * address space, for tools/mm/cs614-map to draw, then waits until its
 * standard input is closed.
 *
 * At a fixed, 2 MiB-aligned address A (MAP_FIXED_NOREPLACE, the first of a
 * few candidates that is free):
 *
 *   [A, A + 4 MiB)                     private anonymous, rw-p:
 *     pages    0..511  one PMD-mapped THP (MADV_COLLAPSE)
 *     pages 512..1023  by (page % 4): written, hole, read (zero page), written
 *   [A + 4 MiB, A + 4 MiB + 64 KiB)    unmapped
 *   [A + 4 MiB + 64 KiB, + 16 KiB)     private anonymous, rw-p:
 *     pages 0..3       written, hole, written, hole
 *
 * Prints "pid PID addr A end END" (hex addresses) once the layout is built,
 * or "SKIP reason" and exits 4 (KSFT_SKIP) when the THP cannot be made.
 *
 * Faults happen with THPs disabled for the process (PR_SET_THP_DISABLE), so
 * that under THP "always" they map small pages and the small zero page, and
 * khugepaged leaves the layout alone afterwards; only MADV_COLLAPSE runs
 * with THPs allowed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "../kselftest.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif

#define KB		1024UL
#define MB		(1024 * KB)
#define PAGE		(4 * KB)

#define BIG_LEN		(4 * MB)
#define GAP_LEN		(64 * KB)
#define SMALL_LEN	(16 * KB)

static void *map_at(uintptr_t addr, size_t len)
{
	void *p = mmap((void *)addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (p != (void *)addr) {	/* a kernel without MAP_FIXED_NOREPLACE */
		munmap(p, len);
		return NULL;
	}
	return p;
}

static void skip(const char *why)
{
	printf("SKIP %s\n", why);
	exit(KSFT_SKIP);
}

int main(void)
{
	static const uintptr_t hints[] = {
		0x3fe000000000UL, 0x2fe000000000UL, 0x1fe000000000UL,
		0x7e00000000UL, 0x3e00000000UL,
	};
	char *big = NULL, *small = NULL;
	unsigned long i;
	char buf[64];
	size_t h;

	if (sysconf(_SC_PAGESIZE) != (long)PAGE)
		skip("the page size is not 4 KiB");
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		skip("PR_SET_THP_DISABLE failed");

	for (h = 0; h < ARRAY_SIZE(hints); h++) {
		big = map_at(hints[h], BIG_LEN);
		if (!big)
			continue;
		small = map_at(hints[h] + BIG_LEN + GAP_LEN, SMALL_LEN);
		if (small)
			break;
		munmap(big, BIG_LEN);
		big = NULL;
	}
	if (!big) {
		printf("no free address for the layout: %s\n", strerror(errno));
		return 1;
	}

	/* The first 2 MiB: small pages, collapsed into a THP below. */
	memset(big, 0x5a, 2 * MB);
	/* The second 2 MiB: written, hole, zero page, written, ... */
	for (i = 512; i < 1024; i++) {
		switch (i % 4) {
		case 0:
		case 3:
			big[i * PAGE] = 1;
			break;
		case 2:		/* a read fault maps the zero page */
			if (big[i * PAGE]) {
				printf("page %lu does not read as zero\n", i);
				return 1;
			}
			break;
		}
	}
	small[0] = 1;
	small[2 * PAGE] = 1;

	if (prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0))
		skip("clearing PR_SET_THP_DISABLE failed");
	if (madvise(big, 2 * MB, MADV_COLLAPSE)) {
		snprintf(buf, sizeof(buf), "MADV_COLLAPSE failed: %s", strerror(errno));
		skip(buf);
	}
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		skip("PR_SET_THP_DISABLE failed");

	printf("pid %d addr %lx end %lx\n", getpid(), (unsigned long)big,
	       (unsigned long)small + SMALL_LEN);
	fflush(stdout);

	while (read(0, buf, sizeof(buf)) > 0)
		;
	return 0;
}
