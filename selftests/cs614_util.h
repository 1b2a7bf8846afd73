/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the cs614 selftests: fault probing, data patterns,
 * /proc/self/maps and smaps parsing, THP mode switching, pagemap and
 * kpageflags, vmstat, promotion rounds, huge page-aligned mappings, the
 * page and huge page sizes, the top of the user address space and the hole
 * search of IOCTL_MVE_VMA, and skipping what the system cannot test.
 *
 * What ../mm/vm_util.h already has is taken from there (FORCE_READ(), the
 * PM_* and KPF_* bits, the page and PMD sizes, kpageflags, uffd_register());
 * the programs that include this header link ../mm/vm_util.c.
 */
#ifndef CS614_UTIL_H
#define CS614_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include <linux/cs614.h>

#include "../mm/vm_util.h"

#define CS614_DEV		"/dev/cs614"
#define CS614_PROMOTE_PATH	"/sys/kernel/kobject_cs614/promote"
#define CS614_REGISTRY_PATH	"/sys/kernel/debug/cs614/registry"

/* The base page size. */
static inline size_t cs614_page_size(void)
{
	return psize();
}

/*
 * The size of a PMD-mapped huge page, from sysfs; 2 MiB if it cannot be read
 * (read_pmd_pagesize() returns 0) or is not a power of two above the page
 * size. read_pmd_pagesize() uses open()/read(), so that this allocates nothing.
 */
static inline size_t cs614_hpage_size(void)
{
	static size_t hpage;
	uint64_t v;

	if (hpage)
		return hpage;
	hpage = 2UL << 20;
	v = read_pmd_pagesize();
	if (v > cs614_page_size() && !(v & (v - 1)))
		hpage = v;
	return hpage;
}

/* Whether errno err from open(CS614_DEV) means that there is no cs614 device. */
static inline bool cs614_dev_missing(int err)
{
	return err == ENOENT || err == ENODEV || err == ENXIO;
}

/*
 * What the tests need of the system, each check returning NULL, or why the
 * test is to be skipped (KSFT_SKIP), for the caller's SKIP() in a test or a
 * fixture setup: a kernel without cs614 or a missing privilege or facility
 * is a skip, not a failure. The device first:
 *
 *	why = cs614_open_dev(&self->fd);
 *	if (why)
 *		SKIP(return, "%s", why);
 *	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
 */
#define CS614_NO_DEV	CS614_DEV " is missing (a kernel without CONFIG_CS614?)"

/*
 * Opens /dev/cs614 read-write into *fd. A skip when there is no such device
 * or no permission to open it; on any other error *fd is negative and errno
 * says why, for the caller to fail.
 */
static inline const char *cs614_open_dev(int *fd)
{
	static char why[128];

	*fd = open(CS614_DEV, O_RDWR);
	if (*fd >= 0)
		return NULL;
	if (cs614_dev_missing(errno))
		return CS614_NO_DEV;
	if (errno == EACCES || errno == EPERM) {
		snprintf(why, sizeof(why), "open " CS614_DEV ": %s", strerror(errno));
		return why;
	}
	return NULL;
}

/* Whether the kernel has cs614 at all: a skip without the device node. */
static inline const char *cs614_dev_absent(void)
{
	struct stat st;

	return stat(CS614_DEV, &st) && cs614_dev_missing(errno) ? CS614_NO_DEV : NULL;
}

/*
 * The promote flag: a skip unless it exists and can be written (a round is
 * requested by writing it: root).
 */
static inline const char *cs614_promote_flag_unusable(void)
{
	static char why[128];

	if (access(CS614_PROMOTE_PATH, F_OK))
		snprintf(why, sizeof(why), CS614_PROMOTE_PATH ": %s", strerror(errno));
	else if (access(CS614_PROMOTE_PATH, W_OK))
		snprintf(why, sizeof(why), "cannot write " CS614_PROMOTE_PATH ": %s (not root?)",
			 strerror(errno));
	else
		return NULL;
	return why;
}

/* The ABI of IOCTL_COMPACT_VMA counts 4 KiB pages: a skip for another page size. */
static inline const char *cs614_page_not_4k(void)
{
	static char why[96];

	if (cs614_page_size() == 4096)
		return NULL;
	snprintf(why, sizeof(why), "IOCTL_COMPACT_VMA counts 4 KiB pages; the page size is %zu",
		 cs614_page_size());
	return why;
}

/*
 * cs614_probing is for the SIGSEGV handler, hence volatile sig_atomic_t, not
 * an atomic: it is only ever shared with a signal handler, never between
 * threads. Both are per thread, as SIGSEGV goes to the thread that faulted:
 * a fault in another thread must not jump into this thread's probe.
 */
static __thread sigjmp_buf cs614_jmp;
static __thread volatile sig_atomic_t cs614_probing;

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
		FORCE_READ(*(const char *)addr);
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
 *
 * Not vm_util.h's check_huge_anon(): that one finds the VMA that starts at
 * addr, only says whether AnonHugePages matches a count (a failed check
 * would not show how many kB there were), and exits the process when smaps
 * cannot be read. The tests look at other fields too, and at VMAs by any
 * address inside them.
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

/* Reads the current THP mode (the word in brackets) into mode; -1 on error. */
static inline int cs614_thp_get(char *mode, size_t size)
{
	char buf[128], *l, *r;

	/* vm_util.h's read_file(): 0 if nothing could be read, else NUL-terminated. */
	if (!read_file(CS614_THP_PATH, buf, sizeof(buf)))
		return -1;
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!r || r - l - 1 >= (long)size)
		return -1;
	memcpy(mode, l + 1, r - l - 1);
	mode[r - l - 1] = '\0';
	return 0;
}

/* Not vm_util.h's write_file(): it exits on an error, which must be a skip here. */
static inline int cs614_thp_write(const char *mode)
{
	int fd = open(CS614_THP_PATH, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, mode, strlen(mode));
	close(fd);
	return n == (ssize_t)strlen(mode) ? 0 : -1;
}

/*
 * Sets the THP mode ("always", "madvise", "never"), remembering the mode it
 * replaces until cs614_thp_restore(): a second call before the restore keeps
 * the first mode saved. Call cs614_thp_restore() from a FIXTURE_TEARDOWN, so
 * that it runs after a failed assertion too.
 */
static inline int cs614_thp_set(const char *mode)
{
	bool first = !cs614_thp_saved[0];

	if (first && cs614_thp_get(cs614_thp_saved, sizeof(cs614_thp_saved)))
		return -1;
	if (cs614_thp_write(mode)) {
		if (first)
			cs614_thp_saved[0] = '\0';
		return -1;
	}
	return 0;
}

/* Puts back the mode cs614_thp_set() replaced, if any. */
static inline void cs614_thp_restore(void)
{
	if (!cs614_thp_saved[0])
		return;
	if (cs614_thp_write(cs614_thp_saved))
		perror("restoring " CS614_THP_PATH);
	cs614_thp_saved[0] = '\0';
}

/*
 * A safety net under the teardowns: the THP mode the program started with is
 * put back when its main process exits (exit(), ksft_exit*(), the end of
 * main()), even if a test was killed by the harness' timeout before its
 * teardown could run. The harness' test processes leave with _exit() or
 * abort(), and the handler checks the pid, so only the main process restores.
 */
static char cs614_thp_initial[32];
static pid_t cs614_main_pid;

static void cs614_thp_at_exit(void)
{
	char now[sizeof(cs614_thp_initial)];

	if (getpid() != cs614_main_pid || !cs614_thp_initial[0])
		return;
	if (!cs614_thp_get(now, sizeof(now)) && strcmp(now, cs614_thp_initial) &&
	    cs614_thp_write(cs614_thp_initial))
		perror("restoring " CS614_THP_PATH " at exit");
}

static void __attribute__((constructor)) cs614_thp_guard(void)
{
	cs614_main_pid = getpid();
	if (!cs614_thp_get(cs614_thp_initial, sizeof(cs614_thp_initial)))
		atexit(cs614_thp_at_exit);
}

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

/* Reads the promote flag into buf (NUL-terminated); the bytes read, or -1. */
static inline ssize_t cs614_read_promote_flag(char *buf, size_t size)
{
	int fd = open(CS614_PROMOTE_PATH, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/*
 * /proc/self/pagemap, kept open per process: opened by a parent it would
 * still describe the parent. -1 on error.
 *
 * Not vm_util.h's pagemap_get_entry() and pagemap_get_pfn(): they exit the
 * process on a short read (here, as in cs614_pfns_visible(), an error must
 * be able to end in a skip, and racing threads read pagemap too), and
 * pagemap_get_pfn() returns -1 for no page where the tests use pfn 0;
 * pagemap_is_populated() adds a PAGEMAP_SCAN ioctl per page to each read.
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

/*
 * What identifies where a page lives: present or swapped, and its pfn or swap
 * slot (PM_PRESENT, PM_SWAP and PAGEMAP_PFN() are vm_util.h's).
 */
#define CS614_PM_WHERE		(PM_PRESENT | PM_SWAP | PAGEMAP_PFN(~0ULL))

/* The /proc/kpageflags word of pfn (KPF_* of vm_util.h); 0 on error. */
static inline uint64_t cs614_kpageflags(uint64_t pfn)
{
	static int fd = -1;
	uint64_t flags;

	if (fd < 0)
		fd = open("/proc/kpageflags", O_RDONLY);
	if (fd < 0 || pageflags_get(pfn, fd, &flags))
		return 0;
	return flags;
}

/*
 * Whether pagemap shows pfns and /proc/kpageflags can be read, which
 * cs614_is_thp() and every zero-copy check need: CAP_SYS_ADMIN (root) and
 * CONFIG_PROC_PAGE_MONITOR. Maps, writes and unmaps one page to find out.
 */
static inline bool cs614_pfns_visible(void)
{
	size_t pg = cs614_page_size();
	char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t ent, flags;
	bool ok = false;
	int fd;

	if (p == MAP_FAILED)
		return false;
	/* munmap() receives p: the store cannot be left out. */
	p[0] = 1;
	ent = cs614_pagemap(p);
	fd = open("/proc/kpageflags", O_RDONLY);
	if (fd >= 0 && (ent & PM_PRESENT) && PAGEMAP_PFN(ent))
		ok = !pageflags_get(PAGEMAP_PFN(ent), fd, &flags);
	if (fd >= 0)
		close(fd);
	munmap(p, pg);
	return ok;
}

/* pfns and kpageflags: a skip unless cs614_pfns_visible(). */
static inline const char *cs614_pfns_unavailable(void)
{
	if (cs614_pfns_visible())
		return NULL;
	return "no pfns in pagemap or no /proc/kpageflags (not root?)";
}

/*
 * For tests that run promotion rounds and read their result from kpageflags:
 * opens /dev/cs614 into *fd and registers the process. Returns why the test
 * must skip, or NULL; then *fd < 0 is a failure (errno tells), whether of the
 * open or of the registration.
 */
static inline const char *cs614_open_for_rounds(int *fd)
{
	const char *why = cs614_open_dev(fd);
	int err;

	if (why || *fd < 0)
		return why;
	if (ioctl(*fd, IOCTL_PROMOTE_VMA, NULL)) {
		err = errno;
		close(*fd);
		*fd = -1;
		errno = err;
		return NULL;
	}
	why = cs614_promote_flag_unusable();
	return why ? why : cs614_pfns_unavailable();
}

/*
 * Whether the huge page-sized range at addr (aligned) is one transparent huge
 * page: every base page present, backed by consecutive pfns starting at the
 * head of a THP whose pfn is aligned to the huge page size.
 */
static inline bool cs614_is_thp(const void *addr)
{
	const size_t nr = cs614_hpage_size() / getpagesize();
	uint64_t head = cs614_pagemap(addr), ent;
	size_t i;

	if (!(head & PM_PRESENT))
		return false;
	head = PAGEMAP_PFN(head);
	if (head % nr || !(cs614_kpageflags(head) & KPF_THP) ||
	    !(cs614_kpageflags(head) & KPF_COMPOUND_HEAD))
		return false;
	for (i = 1; i < nr; i++) {
		ent = cs614_pagemap((const char *)addr + i * getpagesize());
		if (!(ent & PM_PRESENT) || PAGEMAP_PFN(ent) != head + i)
			return false;
	}
	return true;
}

/* The number of huge page ranges in [addr, addr + len) that are THPs; addr aligned. */
static inline size_t cs614_count_thp(const void *addr, size_t len)
{
	const size_t hpage = cs614_hpage_size();
	size_t off, n = 0;

	for (off = 0; off + hpage <= len; off += hpage)
		n += cs614_is_thp((const char *)addr + off);
	return n;
}

/*
 * The number of the n pfns that belong to a large folio (compound head or
 * tail in kpageflags): of the pages a huge page had, those a split has not
 * made base pages yet. pfns of 0 are not counted.
 */
static inline size_t cs614_compound_pfns(const uint64_t *pfns, size_t n)
{
	const uint64_t compound = KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL;
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += pfns[i] && (cs614_kpageflags(pfns[i]) & compound);
	return k;
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

/*
 * Give back what the kernel keeps at will, so that free memory measured
 * before and after says what was leaked: clean page cache and the dentry
 * and inode caches (drop_caches), then the empty slabs of every slab cache
 * (its sysfs "shrink", kmem_cache_shrink(), which in a KASAN kernel first
 * frees the cache's objects held in the quarantine). The number of
 * caches shrunk, or -1 if drop_caches could not be written.
 */
static inline int cs614_settle_memory(void)
{
	char path[sizeof(((struct dirent *)0)->d_name) + 32];
	struct dirent *de;
	int fd, n = 0;
	DIR *d;

	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0)
		return -1;
	if (write(fd, "3", 1) != 1) {
		close(fd);
		return -1;
	}
	close(fd);
	d = opendir("/sys/kernel/slab");
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", de->d_name);
		fd = open(path, O_WRONLY);
		if (fd < 0)
			continue;
		/* An alias of a cache shrinks it again: harmless. */
		n += write(fd, "1", 1) == 1;
		close(fd);
	}
	closedir(d);
	return n;
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

/*
 * The number a sysfs file such as path holds, or -1. Not vm_util.h's
 * read_num() or read_sysfs(): for a file that may be absent (a statistic
 * of a newer kernel) they exit or print an error.
 */
static inline long cs614_read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/* The number of partially mapped anonymous 2 MiB folios (deferred split queue). */
static inline long cs614_partially_mapped_thps(void)
{
	return cs614_read_long(CS614_THP_STATS "nr_anon_partially_mapped");
}

/*
 * A huge page-aligned private anonymous VMA of len bytes with nothing mapped
 * right around it; NULL on error.
 */
static inline char *cs614_map_aligned(size_t len)
{
	const size_t huge = cs614_hpage_size();
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
		n += !!(cs614_pagemap((const char *)addr + off) & PM_PRESENT);
	return n;
}

/*
 * Whether one page at addr could be mapped: free and inside the user
 * address range, or already mapped. Maps and unmaps a PROT_NONE page there.
 */
static inline bool cs614_page_in_range(uintptr_t addr)
{
	size_t pg = cs614_page_size();
	void *p = mmap((void *)addr, pg, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return errno == EEXIST;
	munmap(p, pg);
	return p == (void *)addr;
}

/*
 * The end of the user address space (the mm's task_size: 128 TiB - 4 KiB
 * with 4-level page tables on x86-64, 64 PiB - 4 KiB with 5-level ones), found
 * at run time: a fixed mapping of a page at addr is accepted (or refused with
 * EEXIST) iff addr + page <= task_size, so bisect between a page of our stack
 * and the last page of the address space. 0 on error.
 */
static inline uintptr_t cs614_user_top(void)
{
	const uintptr_t pg = cs614_page_size();
	uintptr_t lo, hi, mid;
	int here;

	lo = (uintptr_t)&here / pg;
	hi = UINTPTR_MAX / pg;
	if (!cs614_page_in_range(lo * pg) || cs614_page_in_range(hi * pg))
		return 0;
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (cs614_page_in_range(mid * pg))
			lo = mid;
		else
			hi = mid;
	}
	return hi * pg;
}

/* The kernel's stack_guard_gap: stack_guard_gap= on the command line (pages), else 256 pages. */
static inline uintptr_t cs614_stack_guard_gap(void)
{
	char buf[4096], *p;
	unsigned long pages = 256;
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		for (p = strstr(buf, "stack_guard_gap="); p; p = strstr(p + 1, "stack_guard_gap="))
			if (p == buf || p[-1] == ' ')
				pages = strtoul(p + strlen("stack_guard_gap="), NULL, 10);
	}
	return pages * cs614_page_size();
}

struct cs614_vma {
	uintptr_t start, end;
	uintptr_t start_gap;	/* vm_start_gap(): start, less the guard gap below a stack */
};

#define CS614_SMAPS_SIZE	(4 << 20)

/*
 * The VMAs of the process that lie below top, in address order, from
 * /proc/self/smaps, with their start gap as vm_start_gap() computes it:
 * stack_guard_gap below a VM_GROWSDOWN VMA ("gd" in VmFlags), a page below a
 * shadow stack ("ss"). smaps is read into a static buffer with read(), so
 * that taking the list allocates nothing and does not change the address
 * space. The number of VMAs, or -1 on error (or more than max).
 */
static inline int cs614_vmas(struct cs614_vma *v, int max, uintptr_t top)
{
	static char buf[CS614_SMAPS_SIZE];
	const uintptr_t guard = cs614_stack_guard_gap();
	unsigned long start, end;
	char *line, *next;
	size_t len = 0;
	ssize_t r;
	int fd, n = 0, cur = -1;

	fd = open("/proc/self/smaps", O_RDONLY);
	if (fd < 0)
		return -1;
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += r;
	close(fd);
	if (len == sizeof(buf) - 1)
		return -1;
	buf[len] = '\0';
	for (line = buf; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		/* A VMA's header: "start-end perms ...", the only lines with a '-' before a ' '. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			cur = -1;
			if (start >= top)
				continue;
			if (n == max || (n && start < v[n - 1].end))
				return -1;
			v[n].start = start;
			v[n].end = end;
			v[n].start_gap = start;
			cur = n++;
			continue;
		}
		if (cur >= 0 && !strncmp(line, "VmFlags:", 8)) {
			char *eol = strchr(line, '\n'), *gd, *ss;
			uintptr_t gap = 0;

			if (eol)
				*eol = '\0';
			gd = strstr(line, " gd");
			ss = strstr(line, " ss");
			if (gd && (gd[3] == ' ' || !gd[3]))
				gap = guard;
			else if (ss && (ss[3] == ' ' || !ss[3]))
				gap = cs614_page_size();
			if (eol)
				*eol = '\n';
			/* As vm_start_gap(): no wrap below 0. */
			v[cur].start_gap = v[cur].start > gap ? v[cur].start - gap : 0;
			cur = -1;
		}
	}
	return n;
}

#define CS614_MAX_VMAS		4096

/*
 * cs614_vma_bounds() that allocates nothing (no stdio): the bounds of the VMA
 * containing addr, from cs614_vmas(); false if there is none.
 */
static inline bool cs614_vma_at(const void *addr, uintptr_t *start, uintptr_t *end)
{
	static struct cs614_vma v[CS614_MAX_VMAS];
	int i, n = cs614_vmas(v, CS614_MAX_VMAS, UINTPTR_MAX);

	for (i = 0; i < n; i++) {
		if (v[i].start <= (uintptr_t)addr && (uintptr_t)addr < v[i].end) {
			*start = v[i].start;
			*end = v[i].end;
			return true;
		}
	}
	return false;
}

/*
 * The hole IOCTL_MVE_VMA picks for a VMA of size bytes that ends at end: the
 * lowest address at or above end where [addr, addr + size) ends at or below
 * the next VMA's start gap and at or below top, computed as the kernel does
 * from the VMAs of /proc/self/smaps. False if none fits (ENOMEM) or smaps
 * cannot be read.
 */
static inline bool cs614_first_hole_after(uintptr_t end, size_t size, uintptr_t top,
					  uintptr_t *hole)
{
	static struct cs614_vma v[CS614_MAX_VMAS];
	uintptr_t candidate = end;
	int i, n = cs614_vmas(v, CS614_MAX_VMAS, top);

	if (n < 0)
		return false;
	for (i = 0; i < n; i++) {
		if (v[i].end <= end)
			continue;
		if (candidate + size >= candidate && candidate + size <= v[i].start_gap) {
			*hole = candidate;
			return true;
		}
		if (v[i].end > candidate)
			candidate = v[i].end;
	}
	if (candidate + size < candidate || candidate + size > top)
		return false;
	*hole = candidate;
	return true;
}

/* The pfn of the page at addr, 0 if none is present (or pfns are hidden). */
static inline uint64_t cs614_pfn(const void *addr)
{
	uint64_t ent = cs614_pagemap(addr);

	return ent & PM_PRESENT ? PAGEMAP_PFN(ent) : 0;
}

/* Where the n pages at p live (present or swapped, pfn or swap slot), from pagemap. */
static inline int cs614_where(const char *p, size_t n, uint64_t *pm)
{
	size_t i;

	if (cs614_pagemap_range(p, n, pm))
		return -1;
	for (i = 0; i < n; i++)
		pm[i] &= CS614_PM_WHERE;
	return 0;
}

/*
 * Writes count bytes of buf to the promote flag through a file of its own;
 * returns write()'s result, -2 if the flag cannot be opened.
 */
static inline ssize_t cs614_write_flag(const void *buf, size_t count)
{
	ssize_t n;
	int fd;

	fd = open(CS614_PROMOTE_PATH, O_WRONLY);
	if (fd < 0)
		return -2;
	n = write(fd, buf, count);
	close(fd);
	return n;
}

/* IOCTL_COMPACT_VMA of the `pages` 4 KiB pages at addr, its table at table. */
static inline int cs614_compact(int fd, void *addr, unsigned int pages, void *table)
{
	struct cs614_compact_vma arg = {
		.addr = (uintptr_t)addr,
		.length = pages,
		.buff = (uintptr_t)table,
	};

	return ioctl(fd, IOCTL_COMPACT_VMA, &arg);
}

/* Stamps 4 KiB page i of p with its index and seed, in its first and last words. */
static inline void cs614_stamp(char *p, size_t i, uint64_t seed)
{
	uint64_t *w = (uint64_t *)(p + i * 4096);

	w[0] = i ^ seed;
	w[4096 / 8 - 1] = ~(i ^ seed);
}

/* Whether the 4 KiB page at page holds the stamp of page i and seed. */
static inline bool cs614_stamped(const char *page, size_t i, uint64_t seed)
{
	const uint64_t *w = (const uint64_t *)page;

	return w[0] == (i ^ seed) && w[4096 / 8 - 1] == ~(i ^ seed);
}

/* Whether the directory at path has no entries (an unmounted debugfs). */
static inline bool cs614_dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

/* The first two CPUs the process may run on; false if it may run on one only. */
static inline bool cs614_two_cpus(int *first, int *second)
{
	cpu_set_t set;
	int cpu, k = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return false;
	for (cpu = 0; cpu < CPU_SETSIZE && k < 2; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		if (k++)
			*second = cpu;
		else
			*first = cpu;
	}
	return k == 2;
}

#endif /* CS614_UTIL_H */
