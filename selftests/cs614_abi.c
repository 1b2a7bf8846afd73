// SPDX-License-Identifier: GPL-2.0
/*
 * cs614 ABI tests: the device node, the ioctl numbers and their dispatch,
 * and the /sys/kernel/kobject_cs614/promote flag. Without cs614 (no
 * /dev/cs614, no promote flag) every test skips.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/cs614.h>

#include "../kselftest_harness.h"
#include "cs614_util.h"

#define PROMOTE_PATH	CS614_PROMOTE_PATH

TEST(device_node)
{
	const char *why;
	struct stat st;

	why = cs614_dev_absent();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, stat(CS614_DEV, &st)) TH_LOG("stat " CS614_DEV ": %s", strerror(errno));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0666U, st.st_mode & 07777);
}

TEST(ioctl_numbers)
{
	const char *why;

	/* The ABI of a component this kernel does not have is not checked. */
	why = cs614_dev_absent();
	if (why)
		SKIP(return, "%s", why);
	/* Byte compatible with the course ABI: type 100, size of a pointer. */
	EXPECT_EQ(0x80086400UL, (unsigned long)IOCTL_MVE_VMA_TO);
	EXPECT_EQ(0xc0086401UL, (unsigned long)IOCTL_MVE_VMA);
	EXPECT_EQ(0x80086402UL, (unsigned long)IOCTL_PROMOTE_VMA);
	EXPECT_EQ(0xc0086403UL, (unsigned long)IOCTL_COMPACT_VMA);
	EXPECT_EQ(16U, sizeof(struct cs614_move_vma));
	EXPECT_EQ(24U, sizeof(struct cs614_compact_vma));
	EXPECT_EQ(16U, sizeof(struct cs614_compact_entry));
}

FIXTURE(dev)
{
	int fd;
};

FIXTURE_SETUP(dev)
{
	const char *why;

	why = cs614_open_dev(&self->fd);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_LE(0, self->fd) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
}

FIXTURE_TEARDOWN(dev)
{
	close(self->fd);
}

TEST_F(dev, unknown_ioctl)
{
	struct cs614_move_vma arg = { 0 };

	/* A number that is not ours, and ours with a wrong size or direction. */
	EXPECT_EQ(-1, ioctl(self->fd, _IO(CS614_IOCTL_TYPE, 9), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOR(CS614_IOCTL_TYPE, 0, int), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOW(CS614_IOCTL_TYPE, 1, char *), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->fd, _IOR(CS614_IOCTL_TYPE + 1, 0, char *), &arg));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(dev, faulting_argument)
{
	/* Commands that read a structure must report an unreadable one. */
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA_TO, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_MVE_VMA, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, IOCTL_COMPACT_VMA, NULL));
	EXPECT_EQ(EFAULT, errno);
}

/* Reads the promote flag into buf; returns the number of bytes read. */
static ssize_t read_flag(char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(PROMOTE_PATH, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* Polls the flag until it reads "0\n"; false after timeout_ms. */
static bool flag_clears(int timeout_ms)
{
	char buf[8];
	int i;

	for (i = 0; i < timeout_ms; i++) {
		if (read_flag(buf, sizeof(buf)) == 2 && !strcmp(buf, "0\n"))
			return true;
		usleep(1000);
	}
	return false;
}

FIXTURE(promote)
{
	char buf[64];
	int dev;
};

FIXTURE_VARIANT(promote)
{
	/* Whether an mm is registered, so that the promotion thread runs. */
	bool registered;
};

FIXTURE_VARIANT_ADD(promote, idle)
{
	.registered = false,
};

FIXTURE_VARIANT_ADD(promote, registered)
{
	.registered = true,
};

FIXTURE_SETUP(promote)
{
	const char *why;
	struct stat st;

	self->dev = -1;
	if (stat(PROMOTE_PATH, &st) && errno == ENOENT)
		SKIP(return, PROMOTE_PATH " is missing (a kernel without CONFIG_CS614?)");
	ASSERT_EQ(0, stat(PROMOTE_PATH, &st));
	ASSERT_EQ(0644U, st.st_mode & 07777);
	/* Every test writes the flag: root only. */
	why = cs614_promote_flag_unusable();
	if (why)
		SKIP(return, "%s", why);
	if (variant->registered) {
		why = cs614_open_dev(&self->dev);
		if (why)
			SKIP(return, "%s", why);
		ASSERT_LE(0, self->dev) TH_LOG("open " CS614_DEV ": %s", strerror(errno));
		ASSERT_EQ(0, ioctl(self->dev, IOCTL_PROMOTE_VMA, NULL));
	}
	ASSERT_TRUE(flag_clears(10000));
}

FIXTURE_TEARDOWN(promote)
{
	if (self->dev >= 0)
		close(self->dev);
}

TEST_F(promote, round_trip)
{
	ASSERT_EQ(2, read_flag(self->buf, sizeof(self->buf)));
	EXPECT_STREQ("0\n", self->buf);
	/*
	 * "1" requests a round; the flag reads 1 until it is over, at once
	 * when no mm is registered. "0" is accepted and changes nothing.
	 */
	ASSERT_EQ(1, cs614_write_flag("1", 1));
	EXPECT_TRUE(flag_clears(10000));
	ASSERT_EQ(2, cs614_write_flag("0\n", 2));
	ASSERT_EQ(2, read_flag(self->buf, sizeof(self->buf)));
	EXPECT_STREQ("0\n", self->buf);
}

/*
 * A write of exactly sizeof(int) bytes is a native int, as the course's
 * programs write it: nonzero requests a round, zero changes nothing.
 * cs614_sysfs checks through huge pages which of these ran a round.
 */
TEST_F(promote, nul_padded_write)
{
	static const char *const rounds[] = {
		/* sprintf(buf, "%d", 1) into a zeroed buf, or onto stack garbage */
		"1\0\0\0", "1\0\xaa\x55",
		/* the int 1 */
		"\x01\0\0\0",
		/* "0\n" read back into buf and written again: a nonzero int */
		"0\n\0\xaa", "0\n\0\0",
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(rounds); i++) {
		errno = 0;
		EXPECT_EQ(4, cs614_write_flag(rounds[i], 4))
			TH_LOG("write %u: %s", i, strerror(errno));
		EXPECT_TRUE(flag_clears(10000)) TH_LOG("write %u", i);
	}

	/* The int 0: accepted, no round, so the flag reads 0 at once. */
	ASSERT_EQ(4, cs614_write_flag("\0\0\0\0", 4));
	ASSERT_EQ(2, read_flag(self->buf, sizeof(self->buf)));
	EXPECT_STREQ("0\n", self->buf);
}

/* Any other length is text: up to the first NUL, one optional newline. */
TEST_F(promote, text_writes)
{
	static const struct {
		const char *text;
		size_t len;
	} ok[] = {
		{ "1", 1 }, { "1\n", 2 }, { "1\n\0", 3 }, { "1\0xyz", 5 }, { "1\n\0\0\0", 5 },
	}, zero[] = {
		{ "0", 1 }, { "0\n", 2 }, { "0\0", 2 }, { "0\n\0", 3 }, { "0\0xyz", 5 },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		errno = 0;
		EXPECT_EQ((ssize_t)ok[i].len, cs614_write_flag(ok[i].text, ok[i].len))
			TH_LOG("write %u: %s", i, strerror(errno));
		EXPECT_TRUE(flag_clears(10000)) TH_LOG("write %u", i);
	}
	/* "0" requests nothing: the flag reads 0 at once. */
	for (i = 0; i < ARRAY_SIZE(zero); i++) {
		errno = 0;
		EXPECT_EQ((ssize_t)zero[i].len, cs614_write_flag(zero[i].text, zero[i].len))
			TH_LOG("write %u: %s", i, strerror(errno));
		ASSERT_EQ(2, read_flag(self->buf, sizeof(self->buf)));
		EXPECT_STREQ("0\n", self->buf) TH_LOG("write %u", i);
	}
}

TEST_F(promote, bad_writes)
{
	/* None is 4 bytes long: those are ints, never EINVAL. */
	static const struct {
		const char *text;
		size_t len;
	} bad[] = {
		{ "2", 1 }, { "-1", 2 }, { "abc", 3 }, { "\n", 1 }, { "01", 2 }, { "1 ", 2 },
		{ "10\n", 3 }, { "0\n\n", 3 }, { "1\n\n", 3 }, { "\0", 1 }, { "\n\0", 2 },
		{ " 1", 2 }, { "11111", 5 }, { "1\r\n", 3 },
	};
	static char junk[4096];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		errno = 0;
		EXPECT_EQ(-1, cs614_write_flag(bad[i].text, bad[i].len))
			TH_LOG("write %u (%zu bytes) was accepted", i, bad[i].len);
		EXPECT_EQ(EINVAL, errno) TH_LOG("write %u", i);
		ASSERT_EQ(2, read_flag(self->buf, sizeof(self->buf)));
		EXPECT_STREQ("0\n", self->buf);
	}

	memset(junk, 'x', sizeof(junk));
	errno = 0;
	EXPECT_EQ(-1, cs614_write_flag(junk, sizeof(junk)));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(2, read_flag(self->buf, sizeof(self->buf)));
	EXPECT_STREQ("0\n", self->buf);
}

TEST_HARNESS_MAIN
