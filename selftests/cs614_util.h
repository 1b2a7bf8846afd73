/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the cs614 selftests: fault probing, data patterns,
 * /proc/self/maps and smaps parsing, THP mode switching, pagemap and
 * kpageflags, vmstat, promotion rounds, 2 MiB-aligned mappings.
 */
#ifndef CS614_UTIL_H
#define CS614_UTIL_H

#include <dirent.h>
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
	    sscanf(line, "%*[0-9a-f]-%*[0-9a-f] %7s", perms) != 1)
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
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
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

#define CS614_PROMOTE_PATH "/sys/kernel/kobject_cs614/promote"

/*
 * Requests a promotion round and waits until the flag reads 0 again;
 * returns 0, or -1 on error or after timeout_ms.
 */
static inline int cs614_promote_round(int timeout_ms)
{
	char buf[8];
	int fd, i;
	ssize_t n;

	fd = open(CS614_PROMOTE_PATH, O_RDWR);
	if (fd < 0)
		return -1;
	if (pwrite(fd, "1", 1, 0) != 1)
		goto fail;
	/* Every millisecond: faster polling steals time from the thread under TCG. */
	for (i = 0; i < timeout_ms; i++) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			goto fail;
		buf[n] = '\0';
		if (!strcmp(buf, "0\n")) {
			close(fd);
			return 0;
		}
		usleep(1000);
	}
fail:
	close(fd);
	return -1;
}

/*
 * /proc/self/pagemap, kept open per process: opened by a parent it would
 * still describe the parent. -1 on error.
 */
static inline int cs614_pagemap_fd(void)
{
	static pid_t pid;
	static int fd = -1;

	if (fd < 0 || pid != getpid()) {
		if (fd >= 0)
			close(fd);
		fd = open("/proc/self/pagemap", O_RDONLY);
		pid = getpid();
	}
	return fd;
}

/* The /proc/self/pagemap entry of addr; 0 on error. */
static inline uint64_t cs614_pagemap(const void *addr)
{
	int fd = cs614_pagemap_fd();
	uint64_t ent = 0;

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, sizeof(ent), (uintptr_t)addr / getpagesize() * sizeof(ent)) !=
	    sizeof(ent))
		ent = 0;
	return ent;
}

/* The pagemap entries of the n pages at addr, in one read; -1 on error. */
static inline int cs614_pagemap_range(const void *addr, size_t n, uint64_t *ents)
{
	size_t want = n * sizeof(*ents), done = 0;
	off_t off = (uintptr_t)addr / getpagesize() * sizeof(*ents);
	int fd = cs614_pagemap_fd();
	ssize_t r;

	if (fd < 0)
		return -1;
	while (done < want) {
		r = pread(fd, (char *)ents + done, want - done, off + done);
		if (r <= 0)
			return -1;
		done += r;
	}
	return 0;
}

#define CS614_PM_PRESENT	(1ULL << 63)
#define CS614_PM_SWAP		(1ULL << 62)
/* What identifies where a page lives: present or swapped, and its pfn or swap slot. */
#define CS614_PM_WHERE		(CS614_PM_PRESENT | CS614_PM_SWAP | CS614_PM_PFN_MASK)
#define CS614_PM_PFN_MASK	((1ULL << 55) - 1)
#define CS614_KPF_COMPOUND_HEAD	15
#define CS614_KPF_THP		22

/* The /proc/kpageflags word of pfn; 0 on error. */
static inline uint64_t cs614_kpageflags(uint64_t pfn)
{
	static int fd = -1;
	uint64_t flags = 0;

	if (fd < 0)
		fd = open("/proc/kpageflags", O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) != sizeof(flags))
		flags = 0;
	return flags;
}

/*
 * Whether the 2 MiB range at addr (2 MiB aligned) is one transparent huge
 * page: every 4 KiB page present, backed by consecutive pfns starting at the
 * head of a THP whose pfn is 2 MiB aligned.
 */
static inline bool cs614_is_thp(const void *addr)
{
	const size_t nr = (2UL << 20) / getpagesize();
	uint64_t head = cs614_pagemap(addr), ent;
	size_t i;

	if (!(head & CS614_PM_PRESENT))
		return false;
	head &= CS614_PM_PFN_MASK;
	if (head % nr || !(cs614_kpageflags(head) & (1ULL << CS614_KPF_THP)) ||
	    !(cs614_kpageflags(head) & (1ULL << CS614_KPF_COMPOUND_HEAD)))
		return false;
	for (i = 1; i < nr; i++) {
		ent = cs614_pagemap((const char *)addr + i * getpagesize());
		if (!(ent & CS614_PM_PRESENT) || (ent & CS614_PM_PFN_MASK) != head + i)
			return false;
	}
	return true;
}

/* The number of 2 MiB ranges in [addr, addr + len) that are THPs; addr aligned. */
static inline size_t cs614_count_thp(const void *addr, size_t len)
{
	size_t off, n = 0;

	for (off = 0; off + (2UL << 20) <= len; off += 2UL << 20)
		n += cs614_is_thp((const char *)addr + off);
	return n;
}

/* The value of counter name in /proc/vmstat; -1 if absent. */
static inline long cs614_vmstat(const char *name)
{
	FILE *f = fopen("/proc/vmstat", "r");
	size_t len = strlen(name);
	char line[128];
	long val = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, len) && line[len] == ' ') {
			val = strtol(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/*
 * Free pages, including those cached on per-CPU lists (the "count" of every
 * pageset in /proc/zoneinfo), which nr_free_pages leaves out and which the
 * kernel grows and shrinks at will; -1 on error.
 */
static inline long cs614_free_pages(void)
{
	long free = cs614_vmstat("nr_free_pages"), n;
	FILE *f = fopen("/proc/zoneinfo", "r");
	char line[256];

	if (!f || free < 0) {
		if (f)
			fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " count: %ld", &n) == 1)
			free += n;
	fclose(f);
	return free;
}

/* The number of kernel threads named name. */
static inline int cs614_count_kthreads(const char *name)
{
	struct dirent *de;
	char path[sizeof(de->d_name) + 16], stat[512], *p;
	unsigned long flags;
	int n = 0, i;
	DIR *d = opendir("/proc");
	FILE *f;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		p = fgets(stat, sizeof(stat), f);
		fclose(f);
		/* pid (comm) state ppid pgrp session tty_nr tpgid flags ... */
		if (!p)
			continue;
		p = strchr(stat, '(');
		if (!p || strncmp(p + 1, name, strlen(name)) || p[1 + strlen(name)] != ')')
			continue;
		p += 2 + strlen(name);
		for (i = 0; i < 6 && p; i++)
			p = strchr(p + 1, ' ');
		if (p && sscanf(p, " %lu", &flags) == 1 && (flags & 0x00200000 /* PF_KTHREAD */))
			n++;
	}
	closedir(d);
	return n;
}

#define CS614_THP_STATS "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/stats/"

/* The number of partially mapped anonymous 2 MiB folios (deferred split queue). */
static inline long cs614_partially_mapped_thps(void)
{
	FILE *f = fopen(CS614_THP_STATS "nr_anon_partially_mapped", "r");
	long n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/*
 * A 2 MiB-aligned private anonymous VMA of len bytes with nothing mapped
 * right around it; NULL on error.
 */
static inline char *cs614_map_aligned(size_t len)
{
	const size_t huge = 2UL << 20;
	size_t span = len + 2 * huge;
	char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *start;

	if (p == MAP_FAILED)
		return NULL;
	start = (char *)(((uintptr_t)p + huge) & ~(huge - 1));
	munmap(p, span);
	p = mmap(start, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != MAP_FAILED && p != start)
		munmap(p, len);
	return p == start ? p : NULL;
}

/* The number of pages of [addr, addr + len) present in memory, from pagemap. */
static inline size_t cs614_present_pages(const void *addr, size_t len)
{
	size_t off, n = 0;

	for (off = 0; off < len; off += getpagesize())
		n += !!(cs614_pagemap((const char *)addr + off) & CS614_PM_PRESENT);
	return n;
}

#endif /* CS614_UTIL_H */
