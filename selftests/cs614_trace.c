// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 trace events (tracefs, system "cs614") and counters
 * (/sys/kernel/debug/cs614/stats).
 *
 * Every test works in a window: the counters are read, the trace buffer is
 * cleared, the operation runs, then the counters and the trace are read
 * again. The events of the window are checked field by field (each line is
 * printed again with the event's printk format and must come out identical),
 * and every counter must have moved by exactly what the window's events say,
 * whoever caused them: other registered mms may show up in a round.
 *
 * The events are recorded in a trace instance of our own, so that the top
 * level buffer and its settings are left alone; without instances, the top
 * level is used. THP is "never" so that every huge page is cs614's. What a
 * test changes (THP mode, the instance, debugfs or tracefs mounted by it) is
 * undone by its teardown. The compaction tests skip unless the page size is
 * the ABI's 4 KiB; the others use the system's page and huge page sizes.
 *
 * Nothing here allocates from the heap with mmap() while a test runs (the
 * trace is read into a static buffer), so that no mapping of the C library
 * appears next to, or merges with, the VMAs whose bounds the events report.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cs614.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#define KB		1024UL
#define MB		(1024 * KB)
#define HPAGE		cs614_hpage_size()
#define PG		cs614_page_size()
/* Base pages in a huge page (512), and its order (9). */
#define HPAGE_NR	(HPAGE / PG)
#define HPAGE_ORDER	((unsigned int)__builtin_ctzl(HPAGE_NR))
#define ROUND_MS	20000
/* How long the counters and the trace get to agree once an operation is over. */
#define SETTLE_MS	2000

#define DEBUGFS		"/sys/kernel/debug"
#define STATS_PATH	DEBUGFS "/cs614/stats"

/* ---------------------------------------------------------------------- */
/* Counters                                                                */
/* ---------------------------------------------------------------------- */

/* The promotion results, in the order of their counters below. */
static const char *const results[] = {
	"promoted", "already_huge", "pte_none", "pte_zero_page", "pte_swap",
	"pte_other", "page_shared", "page_pinned", "page_busy", "vma_nohugepage",
	"vma_userfaultfd", "vma_changed", "thp_disabled", "alloc_failed", "other",
};

#define NR_RESULTS	((int)ARRAY_SIZE(results))

enum {
	R_PROMOTED, R_ALREADY_HUGE, R_PTE_NONE, R_PTE_ZERO_PAGE, R_PTE_SWAP,
	R_PTE_OTHER, R_PAGE_SHARED, R_PAGE_PINNED, R_PAGE_BUSY, R_VMA_NOHUGEPAGE,
	R_VMA_USERFAULTFD, R_VMA_CHANGED, R_THP_DISABLED, R_ALLOC_FAILED, R_OTHER,
};

static const char *const counters[] = {
	"moves", "moves_failed", "rounds", "round_mms", "ranges_examined",
	"promote_promoted", "promote_already_huge", "promote_pte_none",
	"promote_pte_zero_page", "promote_pte_swap", "promote_pte_other",
	"promote_page_shared", "promote_page_pinned", "promote_page_busy",
	"promote_vma_nohugepage", "promote_vma_userfaultfd", "promote_vma_changed",
	"promote_thp_disabled", "promote_alloc_failed", "promote_other",
	"demotions", "compactions", "compactions_failed", "compacted_batched",
	"compacted_alone", "compaction_promoted",
};

#define NC	((int)ARRAY_SIZE(counters))

enum {
	C_MOVES, C_MOVES_FAILED, C_ROUNDS, C_ROUND_MMS, C_RANGES_EXAMINED,
	C_PROMOTE,	/* + result */
	C_DEMOTIONS = C_PROMOTE + 15, C_COMPACTIONS, C_COMPACTIONS_FAILED,
	C_COMPACTED_BATCHED, C_COMPACTED_ALONE, C_COMPACTION_PROMOTED,
};

struct stats {
	unsigned long long v[ARRAY_SIZE(counters)];
};

static char stats_text[64 * 1024];

/* Reads path into stats_text; -1 on error. */
static int read_stats_text(const char *path)
{
	int fd = open(path, O_RDONLY);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return -1;
	while (n < sizeof(stats_text) - 1 &&
	       (r = read(fd, stats_text + n, sizeof(stats_text) - 1 - n)) > 0)
		n += r;
	close(fd);
	stats_text[n] = '\0';
	return n < sizeof(stats_text) - 1 ? 0 : -1;
}

/* Whether s is a non-empty string of decimal digits that fits 64 bits. */
static bool parse_unsigned(const char *s, unsigned long long *v)
{
	char *end;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return !errno && !*end;
}

/* The index of name in the n names of names, -1 if absent. */
static int name_index(const char *name, const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

static int counter_index(const char *name)
{
	return name_index(name, counters, NC);
}

/*
 * Reads every counter; -1 unless each known one appears exactly once with
 * an unsigned value.
 */
static int read_stats(struct stats *s)
{
	int seen[ARRAY_SIZE(counters)] = { 0 };
	char *line, *save, *sp;
	unsigned long long v;
	int i;

	if (read_stats_text(STATS_PATH))
		return -1;
	for (line = strtok_r(stats_text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		i = counter_index(line);
		if (i < 0)
			continue;
		if (!parse_unsigned(sp + 1, &v))
			return -1;
		s->v[i] = v;
		seen[i]++;
	}
	for (i = 0; i < NC; i++)
		if (seen[i] != 1)
			return -1;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Trace                                                                   */
/* ---------------------------------------------------------------------- */

enum ev_kind { EV_MOVE, EV_ROUND_START, EV_ROUND_END, EV_PROMOTE, EV_DEMOTE, EV_COMPACT, EV_NR };

static const char *const ev_names[] = {
	"cs614_move", "cs614_round_start", "cs614_round_end",
	"cs614_promote_range", "cs614_demote", "cs614_compact",
};

struct ev {
	enum ev_kind kind;
	int pid;
	int ret;
	/* move */
	unsigned long old_start, old_end, new_start;
	/* round_start, round_end */
	unsigned int mms;
	unsigned long examined, promoted, skipped;
	unsigned long long duration_ns;
	/* promote_range, demote */
	unsigned long addr;
	int result;
	/* demote */
	unsigned int order;
	unsigned long vma_lo, vma_split, vma_hi;
	/* compact */
	unsigned long start, pages, populated, batched, alone, cpromoted;
};

#define MAX_EVENTS	8192

struct trace {
	struct ev ev[MAX_EVENTS];
	int n;
	int bad;	/* cs614 lines that do not parse or do not print back the same */
	int lost;	/* lost or overwritten events */
	int unknown;	/* events of the system we do not know */
};

static struct trace tr;
static char trace_text[8 << 20];

static int result_index(const char *name)
{
	return name_index(name, results, NR_RESULTS);
}

/*
 * Parses the body (what follows "cs614_<event>: ") of one event and prints
 * it again with the kernel's format: true if both are identical.
 */
static bool parse_body(enum ev_kind kind, const char *body, struct ev *e)
{
	char again[512], res[64];
	int n;

	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->pid = -1;
	switch (kind) {
	case EV_MOVE:
		if (sscanf(body, "pid=%d old=0x%lx-0x%lx new=0x%lx ret=%d", &e->pid,
			   &e->old_start, &e->old_end, &e->new_start, &e->ret) != 5)
			return false;
		n = snprintf(again, sizeof(again), "pid=%d old=0x%lx-0x%lx new=0x%lx ret=%d",
			     e->pid, e->old_start, e->old_end, e->new_start, e->ret);
		break;
	case EV_ROUND_START:
		if (sscanf(body, "mms=%u", &e->mms) != 1)
			return false;
		n = snprintf(again, sizeof(again), "mms=%u", e->mms);
		break;
	case EV_ROUND_END:
		if (sscanf(body, "mms=%u examined=%lu promoted=%lu skipped=%lu duration_ns=%llu",
			   &e->mms, &e->examined, &e->promoted, &e->skipped,
			   &e->duration_ns) != 5)
			return false;
		n = snprintf(again, sizeof(again),
			     "mms=%u examined=%lu promoted=%lu skipped=%lu duration_ns=%llu",
			     e->mms, e->examined, e->promoted, e->skipped, e->duration_ns);
		break;
	case EV_PROMOTE:
		if (sscanf(body, "pid=%d addr=0x%lx result=%63s", &e->pid, &e->addr, res) != 3)
			return false;
		e->result = result_index(res);
		if (e->result < 0)
			return false;
		n = snprintf(again, sizeof(again), "pid=%d addr=0x%lx result=%s", e->pid,
			     e->addr, res);
		break;
	case EV_DEMOTE:
		if (sscanf(body, "addr=0x%lx order=%u vma=0x%lx-0x%lx-0x%lx ret=%d", &e->addr,
			   &e->order, &e->vma_lo, &e->vma_split, &e->vma_hi, &e->ret) != 6)
			return false;
		n = snprintf(again, sizeof(again),
			     "addr=0x%lx order=%u vma=0x%lx-0x%lx-0x%lx ret=%d", e->addr,
			     e->order, e->vma_lo, e->vma_split, e->vma_hi, e->ret);
		break;
	case EV_COMPACT:
		if (sscanf(body,
			   "pid=%d start=0x%lx pages=%lu populated=%lu batched=%lu alone=%lu promoted=%lu ret=%d",
			   &e->pid, &e->start, &e->pages, &e->populated, &e->batched, &e->alone,
			   &e->cpromoted, &e->ret) != 8)
			return false;
		n = snprintf(again, sizeof(again),
			     "pid=%d start=0x%lx pages=%lu populated=%lu batched=%lu alone=%lu promoted=%lu ret=%d",
			     e->pid, e->start, e->pages, e->populated, e->batched, e->alone,
			     e->cpromoted, e->ret);
		break;
	default:
		return false;
	}
	return n > 0 && (size_t)n < sizeof(again) && !strcmp(again, body);
}

/* Parses one line of the trace file into t. */
static void parse_line(struct __test_metadata *_metadata, char *line, struct trace *t)
{
	unsigned long in, written;
	char *p, *colon;
	size_t len;
	int k;

	len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (line[0] == '#') {
		/* Overwritten events show as entries < written. */
		p = strstr(line, "entries-in-buffer/entries-written:");
		if (p && sscanf(p, "entries-in-buffer/entries-written: %lu/%lu", &in,
				&written) == 2 && in != written) {
			TH_LOG("trace: %s", line);
			t->lost++;
		}
		return;
	}
	if (strstr(line, "[LOST ")) {
		TH_LOG("trace: %s", line);
		t->lost++;
		return;
	}
	/* "<task>-<pid> [cpu] flags ts: cs614_<event>: <body>" */
	p = strstr(line, ": cs614_");
	if (!p)
		return;
	p += 2;
	colon = strstr(p, ": ");
	if (!colon) {
		TH_LOG("unparsed trace line: %s", line);
		t->bad++;
		return;
	}
	*colon = '\0';
	for (k = 0; k < EV_NR; k++)
		if (!strcmp(p, ev_names[k]))
			break;
	if (k == EV_NR) {
		t->unknown++;
		return;
	}
	if (t->n == MAX_EVENTS) {
		TH_LOG("more than %d cs614 events", MAX_EVENTS);
		t->lost++;
		return;
	}
	if (!parse_body(k, colon + 2, &t->ev[t->n])) {
		TH_LOG("malformed %s event: '%s'", ev_names[k], colon + 2);
		t->bad++;
		return;
	}
	t->n++;
}

/* Reads and parses the trace file of dir; -1 if it cannot be read whole. */
static int read_trace(struct __test_metadata *_metadata, const char *dir, struct trace *t)
{
	char path[PATH_MAX], *line, *save;
	size_t n = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/trace", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	while (n < sizeof(trace_text) - 1 &&
	       (r = read(fd, trace_text + n, sizeof(trace_text) - 1 - n)) > 0)
		n += r;
	close(fd);
	trace_text[n] = '\0';
	if (n == sizeof(trace_text) - 1) {
		TH_LOG("trace larger than %zu bytes", sizeof(trace_text));
		return -1;
	}
	t->n = 0;
	t->bad = 0;
	t->lost = 0;
	t->unknown = 0;
	for (line = strtok_r(trace_text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		parse_line(_metadata, line, t);
	return 0;
}

static int count_kind(const struct trace *t, enum ev_kind kind)
{
	int i, n = 0;

	for (i = 0; i < t->n; i++)
		n += t->ev[i].kind == kind;
	return n;
}

/* The only event of kind (of pid, if pid >= 0) with ret; NULL unless exactly one. */
static const struct ev *only_event(const struct trace *t, enum ev_kind kind, int pid, int ret)
{
	const struct ev *found = NULL;
	int i;

	for (i = 0; i < t->n; i++) {
		const struct ev *e = &t->ev[i];

		if (e->kind != kind || (pid >= 0 && e->pid != pid) || e->ret != ret)
			continue;
		if (found)
			return NULL;
		found = e;
	}
	return found;
}

/* The number of promote_range events of pid at addr; *last gets the last one. */
static int promote_events_at(const struct trace *t, int pid, unsigned long addr,
			     const struct ev **last)
{
	int i, n = 0;

	for (i = 0; i < t->n; i++) {
		const struct ev *e = &t->ev[i];

		if (e->kind == EV_PROMOTE && e->pid == pid && e->addr == addr) {
			*last = e;
			n++;
		}
	}
	return n;
}

/* The number of promote_range events of pid in [lo, hi). */
static int promote_events_in(const struct trace *t, int pid, unsigned long lo, unsigned long hi)
{
	int i, n = 0;

	for (i = 0; i < t->n; i++) {
		const struct ev *e = &t->ev[i];

		n += e->kind == EV_PROMOTE && e->pid == pid && e->addr >= lo && e->addr < hi;
	}
	return n;
}

/* What the counters must have moved by, from the events of t. */
static void expected_deltas(const struct trace *t, long long *d)
{
	int i;

	memset(d, 0, sizeof(*d) * NC);
	for (i = 0; i < t->n; i++) {
		const struct ev *e = &t->ev[i];

		switch (e->kind) {
		case EV_MOVE:
			d[e->ret ? C_MOVES_FAILED : C_MOVES]++;
			break;
		case EV_ROUND_START:
			break;
		case EV_ROUND_END:
			d[C_ROUNDS]++;
			d[C_ROUND_MMS] += e->mms;
			d[C_RANGES_EXAMINED] += e->examined;
			break;
		case EV_PROMOTE:
			d[C_PROMOTE + e->result]++;
			break;
		case EV_DEMOTE:
			if (!e->ret)
				d[C_DEMOTIONS]++;
			break;
		case EV_COMPACT:
			d[e->ret ? C_COMPACTIONS_FAILED : C_COMPACTIONS]++;
			d[C_COMPACTED_BATCHED] += e->batched;
			d[C_COMPACTED_ALONE] += e->alone;
			d[C_COMPACTION_PROMOTED] += e->cpromoted;
			break;
		default:
			break;
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Mounts and files                                                        */
/* ---------------------------------------------------------------------- */

static bool is_dir(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode);
}

#define TRACEFS		"/sys/kernel/tracing"

/*
 * Mounts debugfs if nothing is mounted there, setting *mounted, so that the
 * caller unmounts it (unmount_if()); true if the stats file exists.
 */
static bool stats_available(bool *mounted)
{
	if (!is_file(STATS_PATH) && is_dir(DEBUGFS) && cs614_dir_empty(DEBUGFS))
		*mounted = !mount("debugfs", DEBUGFS, "debugfs", 0, NULL);
	return is_file(STATS_PATH);
}

/*
 * The root of tracefs, mounted if need be (setting *mounted, so that the
 * caller unmounts it); false if there is none.
 */
static bool find_tracefs(char *root, size_t size, bool *mounted)
{
	static const char *const roots[] = { TRACEFS, DEBUGFS "/tracing" };
	char path[PATH_MAX];
	unsigned int i;

	if (!is_dir(TRACEFS "/events") && is_dir(TRACEFS))
		*mounted = !mount("tracefs", TRACEFS, "tracefs", 0, NULL);
	for (i = 0; i < ARRAY_SIZE(roots); i++) {
		snprintf(path, sizeof(path), "%s/events", roots[i]);
		if (is_dir(path)) {
			snprintf(root, size, "%s", roots[i]);
			return true;
		}
	}
	return false;
}

/*
 * Unmounts path if *mounted (by us), and clears it. Lazily: tracefs may be
 * automounted under a debugfs we mounted.
 */
static void unmount_if(const char *path, bool *mounted)
{
	if (*mounted && umount2(path, MNT_DETACH))
		perror(path);
	*mounted = false;
}

static int write_str(const char *dir, const char *file, const char *s, int flags)
{
	char path[PATH_MAX];
	ssize_t len = strlen(s);
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | flags);
	if (fd < 0)
		return -1;
	if (len && write(fd, s, len) != len)
		ret = -1;
	close(fd);
	return ret;
}

static int read_char(const char *dir, const char *file)
{
	char path[PATH_MAX], c;
	int fd, ret = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	if (read(fd, &c, 1) == 1)
		ret = c;
	close(fd);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Memory                                                                  */
/* ---------------------------------------------------------------------- */

/* pages of private anonymous memory with a free page on each side; NULL on error. */
static char *map_isolated(size_t pages, int prot)
{
	size_t span = (pages + 2) * PG;
	char *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *p;

	if (r == MAP_FAILED)
		return NULL;
	munmap(r, span);
	p = mmap(r + PG, pages * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	if (p != MAP_FAILED && p != r + PG)
		munmap(p, pages * PG);
	return p == r + PG ? p : NULL;
}

/* The start of pages free pages with a free page on each side; NULL on error. */
static char *free_area(size_t pages)
{
	size_t span = (pages + 2) * PG;
	char *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (r == MAP_FAILED)
		return NULL;
	munmap(r, span);
	return r + PG;
}

/* Writes every page of [p, p + len), so that each is populated. */
static void touch(char *p, size_t len, uint64_t seed)
{
	size_t off;

	for (off = 0; off < len; off += PG)
		*(uint64_t *)(p + off) = cs614_pattern_word(off, seed);
}

static int compact(int fd, void *addr, unsigned int pages, struct cs614_compact_entry *table)
{
	struct cs614_compact_vma arg = {
		.addr = (uintptr_t)addr,
		.length = pages,
		.buff = (uintptr_t)table,
	};

	return ioctl(fd, IOCTL_COMPACT_VMA, &arg);
}

static int move_to(int fd, void *vma, void *to)
{
	struct cs614_move_vma arg = {
		.vma_addr = (uintptr_t)vma,
		.to_addr = (uintptr_t)to,
	};

	return ioctl(fd, IOCTL_MVE_VMA_TO, &arg);
}

/* ---------------------------------------------------------------------- */
/* Fixture                                                                 */
/* ---------------------------------------------------------------------- */

FIXTURE(trace)
{
	int fd;			/* /dev/cs614, registered for promotion */
	pid_t child;		/* a child sharing pages, killed in teardown */
	char root[64];		/* tracefs */
	char dir[128];		/* where we trace: our instance, or root */
	bool instance;		/* dir is an instance we made */
	bool enabled;		/* the cs614 events are enabled in dir */
	bool tracing_was_off;	/* root's tracing_on was 0 and we set it */
	bool thp_set;		/* the THP mode was changed */
	bool debugfs_mounted;	/* by us: unmounted by the teardown */
	bool tracefs_mounted;	/* by us: unmounted by the teardown */
};

/* Undoes what setup did; safe on a partly set up fixture. */
static void trace_cleanup(FIXTURE_DATA(trace) *self)
{
	int status;

	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, &status, 0);
		self->child = 0;
	}
	if (self->enabled) {
		write_str(self->dir, "events/cs614/enable", "0", 0);
		self->enabled = false;
	}
	if (self->tracing_was_off) {
		write_str(self->dir, "tracing_on", "0", 0);
		self->tracing_was_off = false;
	}
	if (self->instance) {
		if (rmdir(self->dir))
			perror("removing the trace instance");
		self->instance = false;
	}
	if (self->thp_set) {
		cs614_thp_restore();
		self->thp_set = false;
	}
	if (self->fd >= 0) {
		close(self->fd);
		self->fd = -1;
	}
	unmount_if(TRACEFS, &self->tracefs_mounted);
	unmount_if(DEBUGFS, &self->debugfs_mounted);
}

FIXTURE_SETUP(trace)
{
	char path[PATH_MAX];
	const char *why = NULL;

	self->fd = -1;
	self->child = 0;
	/* Nothing to undo if these skip. */
	/* Whether a round ran is read from kpageflags. */
	why = cs614_open_for_rounds(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));

	/* From here on, a setup that gives up undoes what it did: no teardown follows. */
	if (!stats_available(&self->debugfs_mounted)) {
		trace_cleanup(self);
		SKIP(return, "no %s", STATS_PATH);
	}
	if (!find_tracefs(self->root, sizeof(self->root), &self->tracefs_mounted)) {
		trace_cleanup(self);
		SKIP(return, "no tracefs");
	}
	snprintf(path, sizeof(path), "%s/events/cs614", self->root);
	if (!is_dir(path)) {
		trace_cleanup(self);
		SKIP(return, "no cs614 trace events in %s", self->root);
	}
	if (cs614_thp_set("never")) {
		trace_cleanup(self);
		SKIP(return, "cannot set " CS614_THP_PATH);
	}
	self->thp_set = true;

	/* An instance of our own: its buffer, its enable files. */
	snprintf(self->dir, sizeof(self->dir), "%s/instances/cs614_trace.%d", self->root,
		 getpid());
	if (!mkdir(self->dir, 0755)) {
		self->instance = true;
	} else if (errno != EEXIST) {
		snprintf(self->dir, sizeof(self->dir), "%s", self->root);
		if (read_char(self->dir, "tracing_on") == '0') {
			if (write_str(self->dir, "tracing_on", "1", 0)) {
				why = "turning tracing on";
				goto fail;
			}
			self->tracing_was_off = true;
		}
	}
	self->enabled = true;
	if (write_str(self->dir, "events/cs614/enable", "1", 0)) {
		why = "enabling the cs614 events";
		goto fail;
	}
	if (write_str(self->dir, "trace", "", O_TRUNC)) {
		why = "clearing the trace";
		goto fail;
	}
	return;
fail:
	/* The teardown does not run after a failed setup. */
	TH_LOG("%s: %s", why, strerror(errno));
	trace_cleanup(self);
	ASSERT_TRUE(false);
}

FIXTURE_TEARDOWN(trace)
{
	trace_cleanup(self);
}

struct window {
	struct stats before, after;
};

/* Reads the counters and clears the trace. */
static void window_begin(struct __test_metadata *_metadata, FIXTURE_DATA(trace) *self,
			 struct window *w)
{
	ASSERT_EQ(0, read_stats(&w->before)) TH_LOG("reading " STATS_PATH);
	ASSERT_EQ(0, write_str(self->dir, "trace", "", O_TRUNC)) TH_LOG("clearing the trace");
}

static long long delta(const struct window *w, int c)
{
	return (long long)(w->after.v[c] - w->before.v[c]);
}

/*
 * Reads the counters and the trace once the expected number of rounds have
 * ended and the counters agree with the events (or after SETTLE_MS), and
 * checks that every counter moved by exactly what the events say.
 */
static void window_end(struct __test_metadata *_metadata, FIXTURE_DATA(trace) *self,
		       struct window *w, int rounds)
{
	long long want[ARRAY_SIZE(counters)];
	struct timespec t0, now;
	bool agree = false;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		ASSERT_EQ(0, read_stats(&w->after)) TH_LOG("reading " STATS_PATH);
		ASSERT_EQ(0, read_trace(_metadata, self->dir, &tr)) TH_LOG("reading the trace");
		expected_deltas(&tr, want);
		agree = count_kind(&tr, EV_ROUND_END) >= rounds;
		for (i = 0; i < NC && agree; i++)
			agree = want[i] == delta(w, i);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (agree || (now.tv_sec - t0.tv_sec) * 1000 +
			     (now.tv_nsec - t0.tv_nsec) / 1000000 > SETTLE_MS)
			break;
		usleep(2000);
	}
	EXPECT_EQ(0, tr.bad);
	EXPECT_EQ(0, tr.lost);
	EXPECT_EQ(rounds, count_kind(&tr, EV_ROUND_START));
	EXPECT_EQ(rounds, count_kind(&tr, EV_ROUND_END));
	for (i = 0; i < NC; i++) {
		const unsigned long long before = w->before.v[i], after = w->after.v[i];
		const char *name = counters[i];

		EXPECT_EQ(want[i], (long long)(after - before))
			TH_LOG("counter %s: %llu -> %llu", name, before, after);
	}
}

/* Runs one promotion round in its own window. */
static void round_window(struct __test_metadata *_metadata, FIXTURE_DATA(trace) *self,
			 struct window *w)
{
	window_begin(_metadata, self, w);
	ASSERT_EQ(0, cs614_promote_round(ROUND_MS)) TH_LOG("promotion round");
	window_end(_metadata, self, w, 1);
}

/*
 * Checks the round of tr (the only one) against its promote_range events,
 * all pids included: examined, promoted and skipped are their counts, and
 * the mms visited are no more than those registered at the start, and at
 * least as many as the pids seen.
 */
static void check_round(struct __test_metadata *_metadata)
{
	const struct ev *start = only_event(&tr, EV_ROUND_START, -1, 0);
	const struct ev *end = only_event(&tr, EV_ROUND_END, -1, 0);
	int pids[MAX_EVENTS], npids = 0, examined = 0, promoted = 0, i, j;

	ASSERT_NE(NULL, start);
	ASSERT_NE(NULL, end);
	for (i = 0; i < tr.n; i++) {
		const struct ev *e = &tr.ev[i];

		if (e->kind != EV_PROMOTE)
			continue;
		examined++;
		promoted += e->result == R_PROMOTED;
		for (j = 0; j < npids && pids[j] != e->pid; j++)
			;
		if (j == npids)
			pids[npids++] = e->pid;
	}
	EXPECT_EQ((unsigned long)examined, end->examined);
	EXPECT_EQ((unsigned long)promoted, end->promoted);
	EXPECT_EQ(end->examined - end->promoted, end->skipped);
	EXPECT_LE(1U, start->mms);
	EXPECT_LE(1U, end->mms);
	EXPECT_GE(start->mms, end->mms);
	EXPECT_GE(end->mms, (unsigned int)npids);
}

/* Exactly one promote_range event of ours at addr, with result. */
static void expect_range(struct __test_metadata *_metadata, const void *addr, int result)
{
	const struct ev *e = NULL;

	ASSERT_EQ(1, promote_events_at(&tr, getpid(), (uintptr_t)addr, &e))
		TH_LOG("promote_range events at %p (want result=%s)", addr, results[result]);
	EXPECT_STREQ(results[result], results[e->result]) TH_LOG("range %p", addr);
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */
/* ---------------------------------------------------------------------- */

/*
 * IOCTL_MVE_VMA_TO to a free address, then to one overlapping a mapping:
 * one event each, with the VMA's bounds, the new start (0 on failure) and
 * the result; moves and moves_failed move by one each.
 */
TEST_F(trace, move_to)
{
	char *src = map_isolated(4, PROT_READ | PROT_WRITE);
	char *blocker = map_isolated(1, PROT_READ);
	char *dst = free_area(4);
	const struct ev *ok, *bad;
	uintptr_t s, e, ds, de;
	struct window w;
	int pid = getpid();

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, blocker);
	ASSERT_NE(NULL, dst);
	memset(src, 'm', 4 * PG);
	ASSERT_TRUE(cs614_vma_bounds(src, &s, &e));
	ASSERT_EQ((uintptr_t)src, s);
	ASSERT_EQ((uintptr_t)src + 4 * PG, e);

	window_begin(_metadata, self, &w);
	ASSERT_EQ(0, move_to(self->fd, src + PG, dst)) TH_LOG("%s", strerror(errno));
	ASSERT_TRUE(cs614_vma_bounds(dst, &ds, &de));
	EXPECT_EQ(-1, move_to(self->fd, dst, blocker - 2 * PG));
	EXPECT_EQ(EEXIST, errno);
	window_end(_metadata, self, &w, 0);

	EXPECT_EQ(2, count_kind(&tr, EV_MOVE));
	ok = only_event(&tr, EV_MOVE, pid, 0);
	ASSERT_NE(NULL, ok);
	EXPECT_EQ(s, ok->old_start);
	EXPECT_EQ(e, ok->old_end);
	EXPECT_EQ((uintptr_t)dst, ok->new_start);
	bad = only_event(&tr, EV_MOVE, pid, -EEXIST);
	ASSERT_NE(NULL, bad);
	EXPECT_EQ(ds, bad->old_start);
	EXPECT_EQ(de, bad->old_end);
	EXPECT_EQ(0UL, bad->new_start);
	EXPECT_EQ(1, delta(&w, C_MOVES));
	EXPECT_EQ(1, delta(&w, C_MOVES_FAILED));
	EXPECT_TRUE(cs614_all_bytes(dst, 4 * PG, 'm'));
	munmap(dst, 4 * PG);
	munmap(blocker, PG);
}

/*
 * IOCTL_MVE_VMA reports the start it chose; it refuses an argument inside
 * the VMA it would move (EINVAL, the VMA's bounds reported); IOCTL_MVE_VMA_TO
 * of an address without a VMA reports 0x0-0x0.
 */
TEST_F(trace, move_first_hole_and_refusals)
{
	char *src = map_isolated(4, PROT_READ | PROT_WRITE);
	char *self_arg = map_isolated(2, PROT_READ | PROT_WRITE);
	struct cs614_move_vma arg = { 0 }, *inside;
	uintptr_t s, e, is, ie;
	char *nothing, *to;
	const struct ev *ev;
	struct window w;
	int pid = getpid(), i, nomap = 0, inval = 0;

	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, self_arg);
	memset(src, 'h', 4 * PG);
	ASSERT_TRUE(cs614_vma_bounds(src, &s, &e));
	ASSERT_TRUE(cs614_vma_bounds(self_arg, &is, &ie));
	inside = (struct cs614_move_vma *)self_arg;
	inside->vma_addr = (uintptr_t)self_arg + PG;
	inside->to_addr = 0;

	window_begin(_metadata, self, &w);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, inside));
	EXPECT_EQ(EINVAL, errno);
	arg.vma_addr = (uintptr_t)src;
	ASSERT_EQ(0, ioctl(self->fd, IOCTL_MVE_VMA, &arg)) TH_LOG("%s", strerror(errno));
	/* Chosen after the move, which may have taken any hole above src. */
	nothing = free_area(4);
	to = free_area(4);
	ASSERT_NE(NULL, nothing);
	ASSERT_NE(NULL, to);
	EXPECT_EQ(-1, move_to(self->fd, nothing + PG, to));
	EXPECT_EQ(EINVAL, errno);
	window_end(_metadata, self, &w, 0);

	EXPECT_EQ(3, count_kind(&tr, EV_MOVE));
	ev = only_event(&tr, EV_MOVE, pid, 0);
	ASSERT_NE(NULL, ev);
	EXPECT_EQ(s, ev->old_start);
	EXPECT_EQ(e, ev->old_end);
	EXPECT_EQ(arg.to_addr, ev->new_start);
	EXPECT_LE(e, ev->new_start);
	for (i = 0; i < tr.n; i++) {
		ev = &tr.ev[i];
		if (ev->kind != EV_MOVE || ev->ret != -EINVAL)
			continue;
		EXPECT_EQ(pid, ev->pid);
		EXPECT_EQ(0UL, ev->new_start);
		inval++;
		if (!ev->old_start && !ev->old_end) {
			nomap++;
			continue;
		}
		EXPECT_EQ(is, ev->old_start);
		EXPECT_EQ(ie, ev->old_end);
	}
	EXPECT_EQ(2, inval);
	EXPECT_EQ(1, nomap) TH_LOG("the event of a missing VMA reports old=0x0-0x0");
	EXPECT_EQ(1, delta(&w, C_MOVES));
	EXPECT_EQ(2, delta(&w, C_MOVES_FAILED));
	EXPECT_TRUE(cs614_all_bytes((void *)(uintptr_t)arg.to_addr, 4 * PG, 'h'));
	munmap((void *)(uintptr_t)arg.to_addr, 4 * PG);
	munmap(self_arg, 2 * PG);
}

/* An argument that cannot be read: EFAULT, no event, no counter moves. */
TEST_F(trace, unreadable_argument)
{
	char *hole = free_area(1);
	struct window w;

	ASSERT_NE(NULL, hole);
	window_begin(_metadata, self, &w);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA_TO, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, hole));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_COMPACT_VMA, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_COMPACT_VMA, hole));
	EXPECT_EQ(EFAULT, errno);
	window_end(_metadata, self, &w, 0);

	EXPECT_EQ(0, tr.n);
	EXPECT_EQ(0, delta(&w, C_MOVES_FAILED));
	EXPECT_EQ(0, delta(&w, C_COMPACTIONS_FAILED));
}

/*
 * One process, six 2 MiB ranges, each with its reason:
 *   e: shared with a forked child that stays alive  -> page_shared (twice)
 *   f: full                                         -> promoted, then already_huge
 *   a: full                                         -> promoted
 *   b: one page MADV_DONTNEED                       -> pte_none
 *   c: one page MADV_DONTNEED, then read (zero page) -> pte_zero_page
 *   d: full, in an MADV_NOHUGEPAGE VMA              -> vma_nohugepage
 * Round 1 sees e and f, round 2 all six. a, b, c and f share one VMA, two
 * ranges apart; the ranges between them have no page table, hence no event.
 */
TEST_F_TIMEOUT(trace, round_reasons, 60)
{
	char *e_r = cs614_map_aligned(HPAGE), *big, *a, *b, *c, *d, *f;
	int pid = getpid(), r;
	struct window w;

	ASSERT_NE(NULL, e_r);
	touch(e_r, HPAGE, 1);
	/* Only e exists in the child: what is mapped later is not shared. */
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (self->child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(self->fd);
		if (getppid() != pid)
			_exit(0);
		for (;;)
			pause();
	}

	big = cs614_map_aligned(7 * HPAGE);
	ASSERT_NE(NULL, big);
	a = big;
	b = big + 2 * HPAGE;
	c = big + 4 * HPAGE;
	f = big + 6 * HPAGE;
	touch(f, HPAGE, 2);

	/* Round 1. */
	round_window(_metadata, self, &w);
	check_round(_metadata);
	expect_range(_metadata, e_r, R_PAGE_SHARED);
	expect_range(_metadata, f, R_PROMOTED);
	EXPECT_EQ(1, promote_events_in(&tr, pid, (uintptr_t)e_r, (uintptr_t)e_r + HPAGE));
	EXPECT_EQ(1, promote_events_in(&tr, pid, (uintptr_t)big, (uintptr_t)big + 7 * HPAGE));
	EXPECT_EQ(1, delta(&w, C_ROUNDS));
	EXPECT_LE(1, delta(&w, C_PROMOTE + R_PROMOTED));
	EXPECT_LE(1, delta(&w, C_PROMOTE + R_PAGE_SHARED));
	ASSERT_TRUE(cs614_is_thp(f));
	ASSERT_FALSE(cs614_is_thp(e_r));

	/* The other four. */
	d = cs614_map_aligned(HPAGE);
	ASSERT_NE(NULL, d);
	ASSERT_EQ(0, madvise(d, HPAGE, MADV_NOHUGEPAGE));
	touch(d, HPAGE, 3);
	touch(a, HPAGE, 4);
	touch(b, HPAGE, 5);
	ASSERT_EQ(0, madvise(b + 100 * PG, PG, MADV_DONTNEED));
	touch(c, HPAGE, 6);
	ASSERT_EQ(0, madvise(c + 7 * PG, PG, MADV_DONTNEED));
	/* A read fault maps the zero page. */
	EXPECT_EQ(0, c[7 * PG]);
	ASSERT_EQ(HPAGE_NR - 1, cs614_present_pages(b, HPAGE));
	ASSERT_EQ(HPAGE_NR, cs614_present_pages(c, HPAGE));

	/* Round 2. */
	round_window(_metadata, self, &w);
	check_round(_metadata);
	expect_range(_metadata, a, R_PROMOTED);
	expect_range(_metadata, b, R_PTE_NONE);
	expect_range(_metadata, c, R_PTE_ZERO_PAGE);
	expect_range(_metadata, d, R_VMA_NOHUGEPAGE);
	expect_range(_metadata, e_r, R_PAGE_SHARED);
	expect_range(_metadata, f, R_ALREADY_HUGE);
	EXPECT_EQ(4, promote_events_in(&tr, pid, (uintptr_t)big, (uintptr_t)big + 7 * HPAGE));
	EXPECT_EQ(1, promote_events_in(&tr, pid, (uintptr_t)d, (uintptr_t)d + HPAGE));
	EXPECT_EQ(1, promote_events_in(&tr, pid, (uintptr_t)e_r, (uintptr_t)e_r + HPAGE));
	EXPECT_EQ(1, delta(&w, C_ROUNDS));
	/* window_end checked every promote_<result> against all events; ours are there. */
	for (r = 0; r < NR_RESULTS; r++) {
		int ours = (r == R_PROMOTED) + (r == R_PTE_NONE) + (r == R_PTE_ZERO_PAGE) +
			   (r == R_VMA_NOHUGEPAGE) + (r == R_PAGE_SHARED) + (r == R_ALREADY_HUGE);

		EXPECT_LE(ours, delta(&w, C_PROMOTE + r)) TH_LOG("promote_%s", results[r]);
	}
	EXPECT_LE(6, delta(&w, C_RANGES_EXAMINED));

	EXPECT_TRUE(cs614_is_thp(a));
	EXPECT_TRUE(cs614_is_thp(f));
	EXPECT_FALSE(cs614_is_thp(b));
	EXPECT_FALSE(cs614_is_thp(c));
	EXPECT_FALSE(cs614_is_thp(d));
	EXPECT_FALSE(cs614_is_thp(e_r));

	kill(self->child, SIGKILL);
	waitpid(self->child, NULL, 0);
	self->child = 0;
	munmap(big, 7 * HPAGE);
	munmap(d, HPAGE);
	munmap(e_r, HPAGE);
}

/*
 * munmap() of the first 4 KiB of a promoted range splits its VMA at
 * start + 4 KiB, cutting the huge page: one cs614_demote event, order 9 (of 2 MiB),
 * the split address and the two VMAs around it; demotions + 1.
 */
TEST_F(trace, demote)
{
	char *p = cs614_map_aligned(HPAGE);
	uintptr_t s, e;
	const struct ev *ev;
	struct window w;

	ASSERT_NE(NULL, p);
	touch(p, HPAGE, 7);
	round_window(_metadata, self, &w);
	expect_range(_metadata, p, R_PROMOTED);
	ASSERT_TRUE(cs614_is_thp(p));
	ASSERT_TRUE(cs614_vma_bounds(p, &s, &e));

	window_begin(_metadata, self, &w);
	ASSERT_EQ(0, munmap(p, PG));
	window_end(_metadata, self, &w, 0);

	EXPECT_EQ(1, count_kind(&tr, EV_DEMOTE));
	ev = only_event(&tr, EV_DEMOTE, -1, 0);
	ASSERT_NE(NULL, ev);
	EXPECT_EQ((uintptr_t)p + PG, ev->addr);
	EXPECT_EQ(HPAGE_ORDER, ev->order);
	/* The lower VMA starts where munmap() starts, whatever was merged below. */
	EXPECT_EQ((uintptr_t)p, ev->vma_lo);
	EXPECT_EQ((uintptr_t)p + PG, ev->vma_split);
	EXPECT_EQ(e, ev->vma_hi);
	EXPECT_EQ(1, delta(&w, C_DEMOTIONS));
	/* Split, not left on the deferred split queue: the rest stays mapped as pages. */
	EXPECT_EQ(HPAGE_NR - 1, cs614_present_pages(p + PG, HPAGE - PG));
	EXPECT_EQ(0, cs614_anon_huge_kb(p + PG));
	munmap(p + PG, HPAGE - PG);
}

/*
 * 16 pages, every other one populated: populated=8, 7 moved (page 0 is in
 * place), nothing promoted. Then 16 pages none populated: ENOENT, reported
 * with populated=0 and nothing moved.
 */
TEST_F(trace, compact)
{
	const char *why;
	struct cs614_compact_entry t[16];
	char *p = cs614_map_aligned(16 * PG), *q = cs614_map_aligned(16 * PG);
	const struct ev *ok, *bad;
	int pid = getpid();
	struct window w;
	size_t i;

	why = cs614_page_not_4k();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, q);
	for (i = 0; i < 16; i += 2)
		touch(p + i * PG, PG, i);

	window_begin(_metadata, self, &w);
	ASSERT_EQ(0, compact(self->fd, p, 16, t)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(-1, compact(self->fd, q, 16, t));
	EXPECT_EQ(ENOENT, errno);
	window_end(_metadata, self, &w, 0);

	EXPECT_EQ(2, count_kind(&tr, EV_COMPACT));
	ok = only_event(&tr, EV_COMPACT, pid, 0);
	ASSERT_NE(NULL, ok);
	EXPECT_EQ((uintptr_t)p, ok->start);
	EXPECT_EQ(16UL, ok->pages);
	EXPECT_EQ(8UL, ok->populated);
	EXPECT_EQ(7UL, ok->batched + ok->alone);
	EXPECT_EQ(0UL, ok->cpromoted);
	bad = only_event(&tr, EV_COMPACT, pid, -ENOENT);
	ASSERT_NE(NULL, bad);
	EXPECT_EQ((uintptr_t)q, bad->start);
	EXPECT_EQ(16UL, bad->pages);
	EXPECT_EQ(0UL, bad->populated);
	EXPECT_EQ(0UL, bad->batched);
	EXPECT_EQ(0UL, bad->alone);
	EXPECT_EQ(0UL, bad->cpromoted);
	EXPECT_EQ(1, delta(&w, C_COMPACTIONS));
	EXPECT_EQ(1, delta(&w, C_COMPACTIONS_FAILED));
	EXPECT_EQ(7, delta(&w, C_COMPACTED_BATCHED) + delta(&w, C_COMPACTED_ALONE));
	EXPECT_EQ(0, delta(&w, C_COMPACTION_PROMOTED));
	EXPECT_EQ(8U, cs614_present_pages(p, 8 * PG));
	EXPECT_EQ(0U, cs614_present_pages(p + 8 * PG, 8 * PG));
	munmap(p, 16 * PG);
	munmap(q, 16 * PG);
}

/*
 * Refusals before the walk, with populated pages in the range: length 0
 * (EINVAL) and a userfaultfd-registered VMA (EBUSY), both reported with
 * populated=0 and nothing moved.
 */
TEST_F(trace, compact_refusals)
{
	const char *why;
	struct uffdio_api api = { .api = UFFD_API };
	struct cs614_compact_entry t[16];
	char *p = cs614_map_aligned(16 * PG);
	const struct ev *ev;
	int pid = getpid(), uffd, k;
	static const int errs[] = { EINVAL, EBUSY };
	static const unsigned long lens[] = { 0, 16 };
	struct window w;
	size_t i;

	why = cs614_page_not_4k();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_NE(NULL, p);
	for (i = 0; i < 16; i += 2)
		touch(p + i * PG, PG, i);
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		SKIP(munmap(p, 16 * PG); return, "userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	ASSERT_EQ(0, uffd_register(uffd, p, 16 * PG, true, false, false));

	window_begin(_metadata, self, &w);
	EXPECT_EQ(-1, compact(self->fd, p, 0, t));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, compact(self->fd, p, 16, t));
	EXPECT_EQ(EBUSY, errno);
	window_end(_metadata, self, &w, 0);

	EXPECT_EQ(2, count_kind(&tr, EV_COMPACT));
	for (k = 0; k < 2; k++) {
		ev = only_event(&tr, EV_COMPACT, pid, -errs[k]);
		ASSERT_NE(NULL, ev) TH_LOG("compact event with ret=-%d", errs[k]);
		EXPECT_EQ((uintptr_t)p, ev->start);
		EXPECT_EQ(lens[k], ev->pages);
		EXPECT_EQ(0UL, ev->populated);
		EXPECT_EQ(0UL, ev->batched);
		EXPECT_EQ(0UL, ev->alone);
		EXPECT_EQ(0UL, ev->cpromoted);
	}
	EXPECT_EQ(0, delta(&w, C_COMPACTIONS));
	EXPECT_EQ(2, delta(&w, C_COMPACTIONS_FAILED));
	EXPECT_EQ(8U, cs614_present_pages(p, 16 * PG));
	close(uffd);
	munmap(p, 16 * PG);
}

/*
 * 4 MiB (two huge pages), every other page populated: the 512 populated
 * pages fill the first 2 MiB, which is promoted: populated=512, 511 moved,
 * promoted=1.
 */
TEST_F(trace, compact_promotes)
{
	const char *why;
	const size_t n = 2 * HPAGE_NR;
	struct cs614_compact_entry *t = calloc(n, sizeof(*t));
	char *p = cs614_map_aligned(n * PG);
	const struct ev *ev;
	struct window w;
	size_t i;

	why = cs614_page_not_4k();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_NE(NULL, t);
	ASSERT_NE(NULL, p);
	for (i = 0; i < n; i += 2)
		touch(p + i * PG, PG, i);

	window_begin(_metadata, self, &w);
	ASSERT_EQ(0, compact(self->fd, p, n, t)) TH_LOG("%s", strerror(errno));
	window_end(_metadata, self, &w, 0);

	EXPECT_EQ(1, count_kind(&tr, EV_COMPACT));
	ev = only_event(&tr, EV_COMPACT, getpid(), 0);
	ASSERT_NE(NULL, ev);
	EXPECT_EQ((uintptr_t)p, ev->start);
	EXPECT_EQ(n, ev->pages);
	EXPECT_EQ(n / 2, ev->populated);
	EXPECT_EQ(n / 2 - 1, ev->batched + ev->alone);
	EXPECT_EQ(1UL, ev->cpromoted);
	EXPECT_EQ(1, delta(&w, C_COMPACTIONS));
	EXPECT_EQ((long long)(n / 2 - 1),
		  delta(&w, C_COMPACTED_BATCHED) + delta(&w, C_COMPACTED_ALONE));
	EXPECT_EQ(1, delta(&w, C_COMPACTION_PROMOTED));
	EXPECT_TRUE(cs614_is_thp(p));
	munmap(p, n * PG);
	free(t);
}

/* The stats file alone: debugfs, mounted by the setup if need be, unmounted by the teardown. */
FIXTURE(stats)
{
	int fd;
	bool debugfs_mounted;
};

FIXTURE_SETUP(stats)
{
	const char *why;

	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	if (!stats_available(&self->debugfs_mounted)) {
		unmount_if(DEBUGFS, &self->debugfs_mounted);
		SKIP(return, "no %s", STATS_PATH);
	}
}

FIXTURE_TEARDOWN(stats)
{
	unmount_if(DEBUGFS, &self->debugfs_mounted);
	close(self->fd);
}

/*
 * The stats file: one "name value" per line, every counter exactly once,
 * each value an unsigned decimal number.
 */
TEST_F(stats, stats_file)
{
	int seen[ARRAY_SIZE(counters)] = { 0 };
	char *line, *save, *sp;
	unsigned long long v;
	int i, lines = 0;

	ASSERT_EQ(0, read_stats_text(STATS_PATH));
	for (line = strtok_r(stats_text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		lines++;
		sp = strchr(line, ' ');
		ASSERT_NE(NULL, sp) TH_LOG("line '%s'", line);
		*sp = '\0';
		EXPECT_EQ(strlen(line), strspn(line, "abcdefghijklmnopqrstuvwxyz_"))
			TH_LOG("name '%s'", line);
		EXPECT_TRUE(parse_unsigned(sp + 1, &v)) TH_LOG("%s: value '%s'", line, sp + 1);
		i = counter_index(line);
		if (i < 0) {
			TH_LOG("unknown counter %s", line);
			continue;
		}
		seen[i]++;
	}
	for (i = 0; i < NC; i++) {
		const char *name = counters[i];

		EXPECT_EQ(1, seen[i]) TH_LOG("counter %s", name);
	}
	EXPECT_LE(NC, lines);
}

TEST_HARNESS_MAIN
