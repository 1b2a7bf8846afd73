/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the cs614 selftests: fault probing, data patterns,
 * /proc/self/maps and smaps parsing, THP mode switching.
 */
#ifndef CS614_UTIL_H
#define CS614_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf cs614_jmp;
static volatile sig_atomic_t cs614_probing;

static void cs614_segv(int sig)
{
	if (cs614_probing)
		siglongjmp(cs614_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline int cs614_install_segv_handler(void)
{
	struct sigaction sa = { .sa_handler = cs614_segv };

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSEGV, &sa, NULL);
}

/* Returns true if reading the byte at addr raises SIGSEGV. */
static inline bool cs614_faults(const void *addr)
{
	bool faulted = false;

	cs614_probing = 1;
	if (sigsetjmp(cs614_jmp, 1))
		faulted = true;
	else
		(void)*(const volatile char *)addr;
	cs614_probing = 0;
	return faulted;
}

/* How many pages of [addr, addr + len) are mapped? mincore() fails on unmapped ones. */
static inline size_t cs614_mapped_pages(const void *addr, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t p = (uintptr_t)addr & ~(pg - 1);
	unsigned char vec;
	size_t n = 0;

	for (; p < (uintptr_t)addr + len; p += pg)
		n += !mincore((void *)p, pg, &vec);
	return n;
}

static inline bool cs614_any_mapped(const void *addr, size_t len)
{
	return cs614_mapped_pages(addr, len) > 0;
}

static inline bool cs614_all_mapped(const void *addr, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t first = (uintptr_t)addr & ~(pg - 1);

	return cs614_mapped_pages(addr, len) == ((uintptr_t)addr + len - first + pg - 1) / pg;
}

/* The 64-bit word that the pattern with seed has at byte offset off. */
static inline uint64_t cs614_pattern_word(size_t off, uint64_t seed)
{
	uint64_t x = (off / 8) * 0x9e3779b97f4a7c15ULL + seed * 0xbf58476d1ce4e5b9ULL + 1;

	return x ^ (x >> 31);
}

static inline void cs614_fill_pattern(void *buf, size_t len, uint64_t seed)
{
	uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = cs614_pattern_word(i * 8, seed);
}

static inline bool cs614_check_pattern(const void *buf, size_t len, uint64_t seed)
{
	const uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != cs614_pattern_word(i * 8, seed))
			return false;
	return true;
}

static inline bool cs614_all_bytes(const void *buf, size_t len, char c)
{
	const char *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != c)
			return false;
	return true;
}

/*
 * Reads /proc/self/maps into a static buffer, so that taking a snapshot does
 * not itself change the address space (no malloc, no heap growth).
 */
#define CS614_MAPS_SIZE (256 * 1024)
static inline const char *cs614_read_maps_into(char *buf)
{
	int fd = open("/proc/self/maps", O_RDONLY);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return NULL;
	while (n < CS614_MAPS_SIZE - 1 && (r = read(fd, buf + n, CS614_MAPS_SIZE - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = '\0';
	return buf;
}

/* Finds the maps line of the VMA containing addr; copies it into line. */
static inline bool cs614_maps_line(const void *addr, char *line, size_t size)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long start, end;
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, size, f)) {
		if (sscanf(line, "%lx-%lx", &start, &end) == 2 &&
		    start <= (uintptr_t)addr && (uintptr_t)addr < end) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

/* The bounds of the VMA containing addr; false if there is none. */
static inline bool cs614_vma_bounds(const void *addr, uintptr_t *start, uintptr_t *end)
{
	char line[512];
	unsigned long s, e;

	if (!cs614_maps_line(addr, line, sizeof(line)) || sscanf(line, "%lx-%lx", &s, &e) != 2)
		return false;
	*start = s;
	*end = e;
	return true;
}

/* The permissions ("rw-p") of the VMA containing addr. */
static inline int cs614_perms(const void *addr, char perms[8])
{
	char line[512];

	if (!cs614_maps_line(addr, line, sizeof(line)) ||
	    sscanf(line, "%*lx-%*lx %7s", perms) != 1)
		return -1;
	return 0;
}

/* The start of the mapping named name (e.g. "[vdso]"), or NULL. */
static inline void *cs614_find_mapping(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long start;
	void *found = NULL;

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strlen(line) >= strlen(name) &&
		    !strcmp(line + strlen(line) - strlen(name), name) &&
		    sscanf(line, "%lx-", &start) == 1) {
			found = (void *)start;
			break;
		}
	}
	fclose(f);
	return found;
}

/*
 * The value in kB of field ("Rss", "Anonymous", "AnonHugePages", ...) of the
 * VMA containing addr, from /proc/self/smaps; -1 on error.
 */
static inline long cs614_smaps_kb(const void *addr, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	size_t flen = strlen(field);
	unsigned long start, end;
	char line[512];
	bool in = false;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = start <= (uintptr_t)addr && (uintptr_t)addr < end;
			continue;
		}
		if (in && !strncmp(line, field, flen) && line[flen] == ':' &&
		    sscanf(line + flen + 1, "%ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static inline long cs614_anon_huge_kb(const void *addr)
{
	return cs614_smaps_kb(addr, "AnonHugePages");
}

#define CS614_THP_PATH "/sys/kernel/mm/transparent_hugepage/enabled"
static char cs614_thp_saved[32];

/* Sets the THP mode ("always", "madvise", "never"), remembering the old one. */
static inline int cs614_thp_set(const char *mode)
{
	char buf[128], *l, *r;
	int fd = open(CS614_THP_PATH, O_RDWR);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		goto fail;
	buf[n] = '\0';
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!r || r - l - 1 >= (long)sizeof(cs614_thp_saved))
		goto fail;
	memcpy(cs614_thp_saved, l + 1, r - l - 1);
	cs614_thp_saved[r - l - 1] = '\0';
	if (pwrite(fd, mode, strlen(mode), 0) != (ssize_t)strlen(mode))
		goto fail;
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

static inline void cs614_thp_restore(void)
{
	int fd;

	if (!cs614_thp_saved[0])
		return;
	fd = open(CS614_THP_PATH, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, cs614_thp_saved, strlen(cs614_thp_saved)) < 0)
			perror("restoring " CS614_THP_PATH);
		close(fd);
	}
}

#endif /* CS614_UTIL_H */
