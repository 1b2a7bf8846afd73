// SPDX-License-Identifier: GPL-2.0
/*
 * cs614: what a write to /sys/kernel/kobject_cs614/promote does, judged by
 * whether a promotion round really ran (a fully populated 2 MiB range became
 * a huge page or stayed 4 KiB pages); a course grader's four rounds through
 * one reused 4-byte buffer; and the registry of mms, which must not keep the
 * mms of processes that exited.
 *
 * The write rule: exactly sizeof(int) bytes are a native int, nonzero
 * requests a round, zero changes nothing. Any other length is text: the
 * bytes up to the first NUL, then at most one trailing newline, must be "0"
 * (nothing) or "1" (a round); anything else is EINVAL.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/cs614.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#define MB		(1024 * 1024UL)
/* The base and huge page sizes of the system: 4 KiB and 2 MiB on x86-64. */
#define HPAGE		cs614_hpage_size()
#define PG		cs614_page_size()
#define HPAGE_NR	(HPAGE / PG)
#define HPAGE_KB	((long)(HPAGE / 1024))
#define ROUND_MS	60000

/* Polls the flag until it reads "0\n"; false after timeout_ms. */
static bool flag_clears(int timeout_ms)
{
	char buf[8];
	ssize_t n;
	int fd, i;

	fd = open(CS614_PROMOTE_PATH, O_RDONLY);
	if (fd < 0)
		return false;
	for (i = 0; i < timeout_ms; i++) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n < 0)
			break;
		buf[n] = '\0';
		if (!strcmp(buf, "0\n")) {
			close(fd);
			return true;
		}
		usleep(1000);
	}
	close(fd);
	return false;
}

/* Writes one word into every page of [p, p + len): all populated, base pages. */
static void touch_pages(char *p, size_t len, uint64_t seed)
{
	size_t off;

	for (off = 0; off < len; off += PG)
		*(uint64_t *)(p + off) = cs614_pattern_word(off, seed);
}

static bool pages_intact(const char *p, size_t len, uint64_t seed)
{
	size_t off;

	for (off = 0; off < len; off += PG)
		if (*(const uint64_t *)(p + off) != cs614_pattern_word(off, seed))
			return false;
	return true;
}

/*
 * The mm is registered, so that a requested round runs in the thread, and
 * THP is "never", so that any huge page is the round's.
 */
FIXTURE(flag)
{
	int dev;
	char *region;	/* 2 MiB aligned, one 2 MiB VMA */
};

FIXTURE_VARIANT(flag)
{
	const char *bytes;
	size_t len;
	bool round;	/* the write requests a round */
	bool einval;	/* the write fails with EINVAL */
};

/* echo 1 */
FIXTURE_VARIANT_ADD(flag, text_1_newline) { .bytes = "1\n", .len = 2, .round = true };
FIXTURE_VARIANT_ADD(flag, text_1) { .bytes = "1", .len = 1, .round = true };
/* echo 0 */
FIXTURE_VARIANT_ADD(flag, text_0_newline) { .bytes = "0\n", .len = 2 };
FIXTURE_VARIANT_ADD(flag, text_0) { .bytes = "0", .len = 1 };
/* Text ends at the first NUL, whatever follows. */
FIXTURE_VARIANT_ADD(flag, text_1_nul_tail) { .bytes = "1\0xyz", .len = 5, .round = true };
FIXTURE_VARIANT_ADD(flag, text_1_newline_nul) { .bytes = "1\n\0", .len = 3, .round = true };
FIXTURE_VARIANT_ADD(flag, text_0_nul_tail) { .bytes = "0\0xyz", .len = 5 };
/* Four bytes are an int. */
FIXTURE_VARIANT_ADD(flag, int_1) { .bytes = "\x01\0\0\0", .len = 4, .round = true };
FIXTURE_VARIANT_ADD(flag, int_0) { .bytes = "\0\0\0\0", .len = 4 };
FIXTURE_VARIANT_ADD(flag, int_minus_1) { .bytes = "\xff\xff\xff\xff", .len = 4, .round = true };
/* sprintf(buf, "%d", 1) into an uninitialized char[4], then write(fd, buf, sizeof(int)). */
FIXTURE_VARIANT_ADD(flag, sprintf_1_garbage) { .bytes = "1\0\xaa\x55", .len = 4, .round = true };
/* "0\n" read back into that buffer and written again: a nonzero int. */
FIXTURE_VARIANT_ADD(flag, read_back_0_garbage) { .bytes = "0\n\0\xaa", .len = 4, .round = true };
/* Text that is neither "0" nor "1". */
FIXTURE_VARIANT_ADD(flag, bad_2) { .bytes = "2", .len = 1, .einval = true };
FIXTURE_VARIANT_ADD(flag, bad_01) { .bytes = "01", .len = 2, .einval = true };
FIXTURE_VARIANT_ADD(flag, bad_1_space) { .bytes = "1 ", .len = 2, .einval = true };
FIXTURE_VARIANT_ADD(flag, bad_two_newlines) { .bytes = "1\n\n", .len = 3, .einval = true };
FIXTURE_VARIANT_ADD(flag, bad_empty_text) { .bytes = "\0", .len = 1, .einval = true };
FIXTURE_VARIANT_ADD(flag, bad_newline) { .bytes = "\n", .len = 1, .einval = true };
FIXTURE_VARIANT_ADD(flag, bad_11111) { .bytes = "11111", .len = 5, .einval = true };

FIXTURE_SETUP(flag)
{
	const char *why;

	/* Whether a round ran is read from kpageflags. */
	why = cs614_open_for_rounds(&self->dev);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->dev) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	self->region = cs614_map_aligned(HPAGE);
	ASSERT_NE(NULL, self->region);
	ASSERT_TRUE(flag_clears(ROUND_MS));
	/* Last: the teardown restores it, but does not run after a failed setup. */
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN(flag)
{
	cs614_thp_restore();
	if (self->region)
		munmap(self->region, HPAGE);
	if (self->dev >= 0)
		close(self->dev);
}

TEST_F(flag, round_or_not)
{
	ssize_t n;

	touch_pages(self->region, HPAGE, 1);
	ASSERT_EQ(HPAGE_NR, cs614_present_pages(self->region, HPAGE));
	ASSERT_FALSE(cs614_is_thp(self->region));

	errno = 0;
	n = cs614_write_flag(variant->bytes, variant->len);
	if (variant->einval) {
		EXPECT_EQ(-1, n) TH_LOG("a write of %zu bytes was accepted", variant->len);
		EXPECT_EQ(EINVAL, errno);
	} else {
		EXPECT_EQ((ssize_t)variant->len, n) TH_LOG("%s", strerror(errno));
	}
	/* The flag reads 1 from the write until a requested round is over. */
	ASSERT_TRUE(flag_clears(ROUND_MS));

	if (variant->round) {
		EXPECT_TRUE(cs614_is_thp(self->region)) TH_LOG("no round ran");
		EXPECT_EQ(HPAGE_KB, cs614_anon_huge_kb(self->region));
	} else {
		EXPECT_FALSE(cs614_is_thp(self->region)) TH_LOG("a round ran");
		EXPECT_EQ(0, cs614_anon_huge_kb(self->region));
		EXPECT_EQ(HPAGE_NR, cs614_present_pages(self->region, HPAGE));
		/* The range was eligible: a requested round does promote it. */
		ASSERT_EQ(0, cs614_promote_round(ROUND_MS));
		EXPECT_TRUE(cs614_is_thp(self->region)) TH_LOG("the control round did nothing");
	}
	EXPECT_TRUE(pages_intact(self->region, HPAGE, 1));
}

/*
 * A course grader: one char[4] for everything. sprintf(buf, "%d", 1) and
 * write(fd, buf, sizeof(int)); poll with pread(fd, buf, sizeof(int), 0) into
 * the same buffer until buf[0] is '0'; then write(fd, buf, sizeof(int)) again
 * for each further round, with whatever the reads left in it: "0\n" and two
 * leftover bytes, a nonzero int. Each round must promote the range populated
 * just before it.
 */
FIXTURE(grader)
{
	int dev;
	int flag;
	char *regions;	/* four 2 MiB ranges in one VMA */
};

FIXTURE_VARIANT(grader)
{
	/* What buf holds before the sprintf(): stack garbage. */
	unsigned char garbage[4];
};

FIXTURE_VARIANT_ADD(grader, garbage) { .garbage = { 0xaa, 0x55, 0xaa, 0x55 } };
FIXTURE_VARIANT_ADD(grader, zeroed) { .garbage = { 0, 0, 0, 0 } };

FIXTURE_SETUP(grader)
{
	const char *why;

	self->flag = -1;
	/* Whether a round ran is read from kpageflags. */
	why = cs614_open_for_rounds(&self->dev);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->dev) TH_LOG("open, register " CS614_DEV ": %s", strerror(errno));
	self->regions = cs614_map_aligned(4 * HPAGE);
	ASSERT_NE(NULL, self->regions);
	self->flag = open(CS614_PROMOTE_PATH, O_RDWR);
	ASSERT_LE(0, self->flag);
	ASSERT_TRUE(flag_clears(ROUND_MS));
	if (cs614_thp_set("never"))
		SKIP(return, "cannot set " CS614_THP_PATH);
}

FIXTURE_TEARDOWN(grader)
{
	cs614_thp_restore();
	if (self->flag >= 0)
		close(self->flag);
	if (self->regions)
		munmap(self->regions, 4 * HPAGE);
	if (self->dev >= 0)
		close(self->dev);
}

TEST_F_TIMEOUT(grader, four_rounds, 300)
{
	unsigned char w[4];
	char buf[4];
	int round, i;

	memcpy(buf, variant->garbage, sizeof(buf));
	for (round = 0; round < 4; round++) {
		char *region = self->regions + round * HPAGE;

		touch_pages(region, HPAGE, round + 10);
		ASSERT_EQ(HPAGE_NR, cs614_present_pages(region, HPAGE));
		if (round == 0)
			sprintf(buf, "%d", 1);
		memcpy(w, buf, sizeof(w));
		ASSERT_EQ((ssize_t)sizeof(int), write(self->flag, buf, sizeof(int)))
			TH_LOG("round %d: %s", round + 1, strerror(errno));
		for (i = 0;; i++) {
			ASSERT_LT(i, ROUND_MS) TH_LOG("round %d never ended", round + 1);
			ASSERT_LT(0, pread(self->flag, buf, sizeof(int), 0));
			if (buf[0] == '0')
				break;
			usleep(1000);
		}
		EXPECT_TRUE(cs614_is_thp(region))
			TH_LOG("round %d (wrote %02x %02x %02x %02x) promoted nothing", round + 1,
			       w[0], w[1], w[2], w[3]);
	}
	for (round = 0; round < 4; round++) {
		EXPECT_TRUE(cs614_is_thp(self->regions + round * HPAGE)) TH_LOG("range %d", round);
		EXPECT_TRUE(pages_intact(self->regions + round * HPAGE, HPAGE, round + 10));
	}
	EXPECT_EQ(4 * HPAGE_KB, cs614_anon_huge_kb(self->regions));
}

/*
 * The registry, /sys/kernel/debug/cs614/registry: one line per registered
 * mm, "id=<n> pid=<tgid> files=<n> state=<live|exited>". An mm whose process
 * exited is dropped at the next registration or at the start of the next
 * round, even while the file that registered it stays open.
 */
#define DEBUGFS		"/sys/kernel/debug"
#define REGISTRY	CS614_REGISTRY_PATH
#define CHILDREN	1000
#define BATCH		25

struct reg_line {
	unsigned long id;
	long pid;
	unsigned long files;
	char state[16];
};

/* Parses the registry into lines[max]; the number of lines, or -1 on error. */
static int read_registry(struct reg_line *lines, int max)
{
	FILE *f = fopen(REGISTRY, "r");
	char line[256];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (n == max ||
		    sscanf(line, "id=%lu pid=%ld files=%lu state=%15s", &lines[n].id,
			   &lines[n].pid, &lines[n].files, lines[n].state) != 4) {
			fclose(f);
			return -1;
		}
		n++;
	}
	fclose(f);
	return n;
}

/* Flushes the per-CPU slabs of the mm_struct cache, which count as active; best effort. */
static bool shrink_mm_structs(void)
{
	int fd = open("/sys/kernel/slab/mm_struct/shrink", O_WRONLY);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, "1", 1) == 1;
	close(fd);
	return ok;
}

/* The active objects of the mm_struct cache in /proc/slabinfo; -1 if unknown. */
static long mm_structs(void)
{
	FILE *f;
	char line[512];
	long n = -1;

	shrink_mm_structs();
	f = fopen("/proc/slabinfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "mm_struct ", 10) && sscanf(line + 10, "%ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

FIXTURE(registry)
{
	int dev;
	bool mounted;	/* debugfs mounted by the test */
	pid_t *pids;
};

FIXTURE_SETUP(registry)
{
	const char *why;

	why = cs614_open_dev(&self->dev);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->dev) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
	self->pids = calloc(CHILDREN, sizeof(*self->pids));
	ASSERT_NE(NULL, self->pids);
	/* Last: the teardown unmounts it, and a setup that fails is not torn down. */
	if (access(REGISTRY, F_OK) && cs614_dir_empty(DEBUGFS))
		self->mounted = !mount("none", DEBUGFS, "debugfs", 0, NULL);
}

FIXTURE_TEARDOWN(registry)
{
	if (self->mounted)
		umount(DEBUGFS);
	free(self->pids);
	if (self->dev >= 0)
		close(self->dev);
}

static bool is_child(const pid_t *pids, int n, long pid)
{
	int i;

	for (i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* Counts the lines of children, and of those the ones not "exited"; finds ours. */
static void count_lines(const struct reg_line *lines, int n, const pid_t *pids,
			int *children, int *live_children, const struct reg_line **mine)
{
	int i;

	*children = 0;
	*live_children = 0;
	*mine = NULL;
	for (i = 0; i < n; i++) {
		if (lines[i].pid == getpid())
			*mine = &lines[i];
		if (!is_child(pids, CHILDREN, lines[i].pid))
			continue;
		(*children)++;
		*live_children += !!strcmp(lines[i].state, "exited");
	}
}

/*
 * 1000 children register their mm through the parent's file and exit; the
 * file stays open. They must not stay registered, nor their mm_structs
 * allocated.
 */
TEST_F_TIMEOUT(registry, exited_children_dropped, 300)
{
	static struct reg_line lines[4 * CHILDREN];
	int i, j, status, failed = 0, n, children, live;
	const struct reg_line *mine;
	long before, after = -1;

	if (access(REGISTRY, R_OK))
		SKIP(return, REGISTRY ": %s", strerror(errno));
	before = mm_structs();

	for (i = 0; i < CHILDREN; i += BATCH) {
		for (j = i; j < i + BATCH && j < CHILDREN; j++) {
			self->pids[j] = fork();
			ASSERT_LE(0, self->pids[j]);
			if (self->pids[j] == 0)
				_exit(ioctl(self->dev, IOCTL_PROMOTE_VMA, &status) ? 1 : 0);
		}
		for (j = i; j < i + BATCH && j < CHILDREN; j++) {
			ASSERT_EQ(self->pids[j], waitpid(self->pids[j], &status, 0));
			failed += !WIFEXITED(status) || WEXITSTATUS(status);
		}
	}
	EXPECT_EQ(0, failed) TH_LOG("%d children could not register", failed);

	/* Each registration dropped the children already gone: the last batch may be left. */
	n = read_registry(lines, ARRAY_SIZE(lines));
	ASSERT_LE(0, n) TH_LOG("cannot parse " REGISTRY);
	count_lines(lines, n, self->pids, &children, &live, &mine);
	EXPECT_GE(BATCH, children) TH_LOG("%d of the children still registered", children);
	EXPECT_EQ(0, live) TH_LOG("%d reaped children not shown as exited", live);

	/* Our own registration drops the rest, and gives a round a thread. */
	ASSERT_EQ(0, ioctl(self->dev, IOCTL_PROMOTE_VMA, NULL));
	n = read_registry(lines, ARRAY_SIZE(lines));
	ASSERT_LE(0, n);
	count_lines(lines, n, self->pids, &children, &live, &mine);
	EXPECT_EQ(0, children) TH_LOG("%d children registered after our registration", children);

	ASSERT_EQ(1, cs614_write_flag("1", 1));
	ASSERT_TRUE(flag_clears(ROUND_MS));
	n = read_registry(lines, ARRAY_SIZE(lines));
	ASSERT_LE(0, n);
	count_lines(lines, n, self->pids, &children, &live, &mine);
	EXPECT_EQ(0, children) TH_LOG("%d children registered after a round", children);
	/* Nothing else runs: ours is the only registration left. */
	EXPECT_EQ(1, n) TH_LOG("%d registrations; the first: pid %ld, %s", n,
			       n ? lines[0].pid : 0L, n ? lines[0].state : "-");
	ASSERT_NE(NULL, mine) TH_LOG("our registration is missing");
	EXPECT_EQ(1U, mine->files);
	EXPECT_STREQ("live", mine->state);

	if (before < 0) {
		TH_LOG("no mm_struct cache in /proc/slabinfo: not counted");
		return;
	}
	/* An exited task's mm can be dropped a little later (lazy TLB): settle. */
	for (i = 0; i < 2000; i += 20) {
		after = mm_structs();
		if (after <= before + 64)
			break;
		usleep(20000);
	}
	EXPECT_GE(before + 64, after)
		TH_LOG("mm_struct: %ld active objects before, %ld after", before, after);
}

TEST_HARNESS_MAIN
