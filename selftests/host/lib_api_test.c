// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host unit tests of libfpgastream: what needs no board.  The library's
 * source is compiled into this program (included below, found through
 * -I lib), so this program's ioctl(), poll() and read() stand in for the
 * driver on one fake file descriptor (/dev/null) and every other
 * descriptor goes to the kernel.  Prints TAP; exits non-zero when a test
 * failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fpgastream.c"

/* ---- TAP ---- */

static int ntest, nfail;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++ntest);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		nfail++;
}

#define CHECK_EQ(a, b, name) do {					\
	long long _a = (long long)(a), _b = (long long)(b);		\
	check(_a == _b, "%s", name);					\
	if (_a != _b)							\
		printf("#   got %lld, want %lld\n", _a, _b);		\
} while (0)

/* ---- the fake driver ---- */

static int fake_fd = -1;
static struct fpgastream_info fake_info;
static int fake_map_errno;		/* MAP fails with this, if set */
static int nr_map_calls, nr_start_calls, nr_release_calls;
static struct fpgastream_start last_start;
static __u64 last_release;
/* What poll/read deliver next. */
static struct fpgastream_block fake_recs[8];
static int fake_nrecs;
static int fake_read_errno;		/* read fails with it after the records */
static int fake_eof;			/* read returns 0 when no records */

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd != fake_fd)
		return (int)syscall(SYS_ioctl, fd, req, arg);

	switch (req) {
	case FPGASTREAM_IOC_INFO:
		memcpy(arg, &fake_info, sizeof(fake_info));
		return 0;
	case FPGASTREAM_IOC_MAP: {
		struct fpgastream_map *m = arg;

		nr_map_calls++;
		if (fake_map_errno) {
			errno = fake_map_errno;
			return -1;
		}
		m->nr_blocks = m->length / fake_info.block_size;
		m->nr_segments = 1;
		m->mapped_flags = 0;
		return 0;
	}
	case FPGASTREAM_IOC_UNMAP:
	case FPGASTREAM_IOC_STOP:
		return 0;
	case FPGASTREAM_IOC_START:
		nr_start_calls++;
		memcpy(&last_start, arg, sizeof(last_start));
		return 0;
	case FPGASTREAM_IOC_RELEASE:
		nr_release_calls++;
		last_release = *(__u64 *)arg;
		return 0;
	case FPGASTREAM_IOC_STATS:
		memset(arg, 0, sizeof(struct fpgastream_stats));
		((struct fpgastream_stats *)arg)->read_calls = 7;
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

/* glibc declares poll's array write-only; here it is read too. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (n != 1 || fds[0].fd != fake_fd)
		return (int)syscall(SYS_poll, fds, n, timeout);
	fds[0].revents = 0;
	if (fake_nrecs)
		fds[0].revents |= POLLIN;
	if (fake_read_errno)
		fds[0].revents |= POLLERR;
	if (fake_eof)
		fds[0].revents |= POLLHUP;
	return fds[0].revents ? 1 : 0;	/* "timeout" without sleeping */
}
#pragma GCC diagnostic pop

ssize_t read(int fd, void *buf, size_t len)
{
	size_t n;

	if (fd != fake_fd)
		return syscall(SYS_read, fd, buf, len);
	if (len < sizeof(fake_recs[0])) {
		errno = EINVAL;
		return -1;
	}
	if (fake_nrecs) {
		n = len / sizeof(fake_recs[0]);
		if (n > (size_t)fake_nrecs)
			n = fake_nrecs;
		memcpy(buf, fake_recs, n * sizeof(fake_recs[0]));
		memmove(fake_recs, fake_recs + n, (fake_nrecs - n) * sizeof(fake_recs[0]));
		fake_nrecs -= n;
		return n * sizeof(fake_recs[0]);
	}
	if (fake_read_errno) {
		errno = fake_read_errno;
		return -1;
	}
	if (fake_eof)
		return 0;
	errno = EAGAIN;
	return -1;
}

/* Open /dev/null as a board described by fake_info. */
static struct fpgastream *fake_open(unsigned int info_flags)
{
	struct fpgastream *h = NULL;
	int err;

	memset(&fake_info, 0, sizeof(fake_info));
	fake_info.abi_version = 1;
	fake_info.hw_version = 0x10000;
	fake_info.block_size = 65536;
	fake_info.lut_capacity = 1024;		/* 64 MiB */
	fake_info.dma_addr_bits = 64;
	fake_info.flags = info_flags;
	fake_info.max_buffer_size = 1024ull * 65536;
	/* The library opens the path itself: find which fd it gets by
	 * making it the lowest free one. */
	fake_fd = open("/dev/null", O_RDONLY);
	close(fake_fd);
	err = fpgastream_open_path("/dev/null", &h);
	if (err || fpgastream_fd(h) != fake_fd) {
		printf("# fake_open: err %d, fd %d (want %d)\n", err,
		       h ? fpgastream_fd(h) : -1, fake_fd);
		fpgastream_close(h);
		return NULL;
	}
	fake_map_errno = fake_read_errno = fake_eof = fake_nrecs = 0;
	nr_map_calls = nr_start_calls = nr_release_calls = 0;
	return h;
}

static int contains(const char *s, const char *what)
{
	return s && strstr(s, what) != NULL;
}

/* ---- tests ---- */

static void test_strerror(void)
{
	static const int errs[] = {
		ENOENT, EACCES, EPERM, EINVAL, ENOMEM, EBUSY, EFAULT, ERANGE,
		ENOTTY, EIO, ENODEV, ENODATA, EINTR, EPROTO, EOVERFLOW, EBADF,
	};
	static const struct { int err; const char *hint; } hints[] = {
		{ ENOENT, "modprobe" }, { EACCES, "group fpgastream" },
		{ ENOMEM, "ulimit -l" }, { ENOMEM, "hugepages" },
		{ ERANGE, "IOMMU" }, { ENODATA, "end of stream" },
		{ EIO, "fault" }, { ENODEV, "gone" }, { EBUSY, "busy" },
	};
	size_t i;
	int all = 1;

	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *m = fpgastream_strerror(-errs[i]);

		if (!m || !*m || strcmp(m, fpgastream_strerror(errs[i])) ||
		    !strcmp(m, strerror(errs[i]))) {
			printf("# errno %d: '%s'\n", errs[i], m ? m : "(null)");
			all = 0;
		}
	}
	check(all, "strerror has its own text for every errno the API returns, sign-blind");
	for (i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		check(contains(fpgastream_strerror(-hints[i].err), hints[i].hint),
		      "strerror(-%s) says '%s'", strerrorname_np(hints[i].err), hints[i].hint);
	check(!strcmp(fpgastream_strerror(0), "success"), "strerror(0) is success");
	check(contains(fpgastream_strerror(-ENOSPC), strerror(ENOSPC)),
	      "strerror of another errno falls back to the C library's text");
}

static void test_parse_size(void)
{
	static const struct { const char *s; int err; uint64_t v; } cases[] = {
		{ "0", 0, 0 }, { "65536", 0, 65536 }, { "64K", 0, 65536 },
		{ "64k", 0, 65536 }, { "2M", 0, 2u << 20 }, { "2MiB", 0, 2u << 20 },
		{ "1G", 0, 1u << 30 }, { "1gb", 0, 1u << 30 }, { "3T", 0, 3ull << 40 },
		{ "10B", 0, 10 }, { "18446744073709551615", 0, UINT64_MAX },
		{ "", -EINVAL, 0 }, { "K", -EINVAL, 0 }, { "12X", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 }, { " 1", -EINVAL, 0 }, { "1 G", -EINVAL, 0 },
		{ "1.5G", -EINVAL, 0 }, { "1Gx", -EINVAL, 0 },
		{ "18446744073709551616", -ERANGE, 0 }, { "17179869184G", -ERANGE, 0 },
	};
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err;

		v = 12345;
		err = fpgastream_parse_size(cases[i].s, &v);
		check(err == cases[i].err && (err || v == cases[i].v),
		      "parse_size(\"%s\") = %d, %llu", cases[i].s, cases[i].err,
		      (unsigned long long)cases[i].v);
		if (err != cases[i].err || (!err && v != cases[i].v))
			printf("#   got %d, %llu\n", err, (unsigned long long)v);
	}
	CHECK_EQ(fpgastream_parse_size(NULL, &v), -EINVAL, "parse_size(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_parse_size("1", NULL), -EINVAL, "parse_size(s, NULL) is -EINVAL");
}

static void test_null_args(void)
{
	struct fpgastream *h = (struct fpgastream *)1;
	struct fpgastream_record r;
	struct fpgastream_info info;
	struct fpgastream_stats st;
	char x;

	CHECK_EQ(fpgastream_open_path(NULL, &h), -EINVAL, "open_path(NULL) is -EINVAL");
	check(h == NULL, "a failed open sets *hp to NULL");
	CHECK_EQ(fpgastream_open_path("", &h), -EINVAL, "open_path(\"\") is -EINVAL");
	CHECK_EQ(fpgastream_open_path("/dev/null", NULL), -EINVAL, "open_path(path, NULL) is -EINVAL");
	CHECK_EQ(fpgastream_open(0, NULL), -EINVAL, "open(0, NULL) is -EINVAL");
	CHECK_EQ(fpgastream_info(NULL, &info), -EINVAL, "info(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_map(NULL, &x, 65536, 0, NULL), -EINVAL, "map(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_unmap(NULL), -EINVAL, "unmap(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_start(NULL, 0, 0, 0), -EINVAL, "start(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_stop(NULL), -EINVAL, "stop(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_wait(NULL, &r, 1, 0), -EINVAL, "wait(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_release(NULL, 1), -EINVAL, "release(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_stats(NULL, &st), -EINVAL, "stats(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_fd(NULL), -EINVAL, "fd(NULL) is -EINVAL");
	check(fpgastream_last_error(NULL) != NULL, "last_error(NULL) is a string");
	fpgastream_close(NULL);
	fpgastream_buffer_free(NULL);
	check(1, "close(NULL) and buffer_free(NULL) do nothing");
}

static void test_open_errors(void)
{
	struct fpgastream *h = NULL;
	char path[] = "/tmp/lib_api_test.XXXXXX";
	int fd;

	CHECK_EQ(fpgastream_open_path("/nonexistent/fpgastream0", &h), -ENOENT,
		 "opening a missing path is -ENOENT");
	CHECK_EQ(fpgastream_open(4000000000u, &h), -ENOENT,
		 "opening a missing board index is -ENOENT");
	fd = mkstemp(path);
	if (fd >= 0)
		close(fd);
	CHECK_EQ(fpgastream_open_path(path, &h), -ENOTTY,
		 "opening a regular file is -ENOTTY (not an fpgastream device)");
	unlink(path);
	check(h == NULL, "no handle after failed opens");
}

static void test_map_checks(void)
{
	struct fpgastream *h = fake_open(0);
	struct fpgastream_map m;
	char *buf;

	check(h != NULL, "fake board opens");
	if (!h)
		return;
	buf = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = (char *)(((uintptr_t)buf + 65535) & ~(uintptr_t)65535);

	CHECK_EQ(fpgastream_map(h, NULL, 65536, 0, NULL), -EINVAL, "map of NULL is -EINVAL");
	CHECK_EQ(fpgastream_map(h, buf + 4096, 65536, 0, NULL), -EINVAL,
		 "map of a misaligned address is -EINVAL");
	check(contains(fpgastream_last_error(h), "aligned"), "... and says 'aligned'");
	CHECK_EQ(fpgastream_map(h, buf, 0, 0, NULL), -EINVAL, "map of length 0 is -EINVAL");
	CHECK_EQ(fpgastream_map(h, buf, 65536 + 4096, 0, NULL), -EINVAL,
		 "map of a length not a multiple of the block is -EINVAL");
	CHECK_EQ(fpgastream_map(h, buf, 1025ull * 65536, 0, NULL), -EINVAL,
		 "map longer than max_buffer_size is -EINVAL");
	check(contains(fpgastream_last_error(h), "maximum"), "... and says 'maximum'");
	CHECK_EQ(fpgastream_map(h, buf, 65536, 0x80, NULL), -EINVAL, "map with unknown flags is -EINVAL");
	CHECK_EQ(nr_map_calls, 0, "none of the bad maps reached the ioctl");
	CHECK_EQ(fpgastream_start(h, FPGASTREAM_START_FLOW_CONTROL, 0, 0), -EINVAL,
		 "start before map is -EINVAL");
	check(contains(fpgastream_last_error(h), "map"), "... and says to map first");
	CHECK_EQ(nr_start_calls, 0, "... without reaching the ioctl");

	fake_map_errno = ENOMEM;
	{
		struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct cap[2], saved[2];
		struct rlimit rl, low = { 0, 0 }, high;
		int have_caps = syscall(SYS_capget, &hdr, saved) == 0;

		getrlimit(RLIMIT_MEMLOCK, &rl);
		/* Without CAP_IPC_LOCK and under a low limit: the limit's fault. */
		if (have_caps) {
			memcpy(cap, saved, sizeof(cap));
			cap[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
			syscall(SYS_capset, &hdr, cap);
		}
		low.rlim_max = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &low);
		CHECK_EQ(fpgastream_map(h, buf, 65536, 0, NULL), -ENOMEM, "MAP's ENOMEM comes back");
		check(contains(fpgastream_last_error(h), "ulimit -l"),
		      "... and under a low RLIMIT_MEMLOCK the message says ulimit -l");
		/* Under a limit far above the buffer, it is not the limit. */
		high.rlim_cur = high.rlim_max = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &high);
		if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 1u << 20) {
			CHECK_EQ(fpgastream_map(h, buf, 65536, 0, NULL), -ENOMEM, "MAP's ENOMEM under a high limit");
			check(!contains(fpgastream_last_error(h), "ulimit") &&
			      contains(fpgastream_last_error(h), "DMA-map"),
			      "... says the kernel could not map it, not ulimit");
		} else {
			printf("ok %d - high limit # SKIP hard RLIMIT_MEMLOCK is low\n", ++ntest);
			printf("ok %d - high limit message # SKIP hard RLIMIT_MEMLOCK is low\n", ++ntest);
			nr_map_calls++;
		}
		setrlimit(RLIMIT_MEMLOCK, &rl);
		if (have_caps)
			syscall(SYS_capset, &hdr, saved);
	}
	fake_map_errno = EINVAL;
	CHECK_EQ(fpgastream_map(h, buf, 65536, 0, NULL), -EINVAL, "MAP's EINVAL comes back");
	check(contains(fpgastream_last_error(h), "hugepages"),
	      "... and without an IOMMU the message says to use hugepages");
	fake_map_errno = ERANGE;
	CHECK_EQ(fpgastream_map(h, buf, 65536, FPGASTREAM_MAP_NO_BOUNCE, NULL), -ERANGE,
		 "MAP's ERANGE comes back");
	check(contains(fpgastream_last_error(h), "reach") && contains(fpgastream_last_error(h), "bounce"),
	      "... and the message says out of reach / bounced");
	fake_map_errno = EBUSY;
	CHECK_EQ(fpgastream_map(h, buf, 65536, 0, NULL), -EBUSY, "MAP's EBUSY comes back");
	check(contains(fpgastream_last_error(h), "already"), "... and says the board is taken");
	CHECK_EQ(nr_map_calls, 5, "each of those reached the ioctl once");

	fake_map_errno = 0;
	memset(&m, 0, sizeof(m));
	CHECK_EQ(fpgastream_map(h, buf, 2 * 65536, 0, &m), 0, "a good map succeeds");
	CHECK_EQ(m.nr_blocks, 2, "... and returns the kernel's answer");
	CHECK_EQ(fpgastream_map(h, buf, 65536, 0, NULL), -EBUSY, "a second map on the handle is -EBUSY");
	CHECK_EQ(fpgastream_start(h, FPGASTREAM_START_FLOW_CONTROL, 8, 100), 0, "start succeeds");
	check(last_start.flags == FPGASTREAM_START_FLOW_CONTROL && last_start.irq_coalesce_count == 8 &&
	      last_start.irq_coalesce_usec == 100, "start passes flags and coalescing");
	CHECK_EQ(fpgastream_start(h, 0x10, 0, 0), -EINVAL, "start with unknown flags is -EINVAL");
	CHECK_EQ(fpgastream_release(h, 0), 0, "release(0) is a no-op");
	CHECK_EQ(nr_release_calls, 0, "... that does not reach the ioctl");
	CHECK_EQ(fpgastream_release(h, 3), 0, "release(3) succeeds");
	CHECK_EQ(last_release, 3, "... and passes the count");
	CHECK_EQ(fpgastream_unmap(h), 0, "unmap succeeds");
	CHECK_EQ(fpgastream_unmap(h), -EINVAL, "a second unmap is -EINVAL");

	fpgastream_close(h);

	h = fake_open(FPGASTREAM_INFO_IOMMU);
	if (h) {
		fake_map_errno = EINVAL;
		CHECK_EQ(fpgastream_map(h, buf, 65536, 0, NULL), -EINVAL, "MAP's EINVAL behind an IOMMU");
		check(contains(fpgastream_last_error(h), "kernel log"),
		      "... points at the kernel log rather than hugepages");
		fpgastream_close(h);
	}
}

static void test_wait(void)
{
	struct fpgastream *h = fake_open(0);
	struct fpgastream_record r[4];
	struct fpgastream_stats st;
	char *buf;
	int n;

	if (!h) {
		check(0, "fake board opens for wait");
		return;
	}
	buf = aligned_alloc(65536, 4 * 65536);
	fpgastream_map(h, buf, 4 * 65536, 0, NULL);

	CHECK_EQ(fpgastream_wait(h, NULL, 4, 0), -EINVAL, "wait with NULL records is -EINVAL");
	CHECK_EQ(fpgastream_wait(h, r, 0, 0), -EINVAL, "wait with room for 0 is -EINVAL");
	CHECK_EQ(fpgastream_wait(h, r, 4, 0), 0, "wait with nothing ready times out with 0");

	memset(fake_recs, 0, sizeof(fake_recs));
	for (int i = 0; i < 3; i++) {
		fake_recs[i].seq = 10 + i;
		fake_recs[i].offset = (uint64_t)(i + 1) % 4 * 65536;
		fake_recs[i].length = 65536;
		fake_recs[i].lost = i == 1 ? 5 : 0;
		fake_recs[i].flags = i == 1 ? FPGASTREAM_BLOCK_OVERRUN : 0;
		fake_recs[i].timestamp_ns = 1000 + i;
	}
	fake_nrecs = 3;
	n = fpgastream_wait(h, r, 2, 10);
	CHECK_EQ(n, 2, "wait returns at most max records");
	check(n == 2 && r[0].data == buf + 65536 && r[1].data == buf + 2 * 65536,
	      "record.data is base + offset");
	check(n == 2 && r[0].seq == 10 && r[1].lost == 5 && r[1].flags == FPGASTREAM_BLOCK_OVERRUN &&
	      r[1].timestamp_ns == 1001 && r[1].length == 65536, "records carry seq, lost, flags, time");
	n = fpgastream_wait(h, r, 4, 10);
	check(n == 1 && r[0].seq == 12 && r[0].data == buf + 3 * 65536, "the next wait gets the rest");

	fake_eof = 1;
	CHECK_EQ(fpgastream_wait(h, r, 4, 10), -ENODATA, "end of stream is -ENODATA");
	fake_eof = 0;
	fake_read_errno = EIO;
	CHECK_EQ(fpgastream_wait(h, r, 4, 10), -EIO, "a board fault is -EIO");
	check(contains(fpgastream_last_error(h), "fault"), "... and the message says fault");
	fake_read_errno = ENODEV;
	CHECK_EQ(fpgastream_wait(h, r, 4, 10), -ENODEV, "a removed board is -ENODEV");
	fake_read_errno = 0;

	fake_recs[0].offset = 4 * 65536;
	fake_nrecs = 1;
	CHECK_EQ(fpgastream_wait(h, r, 4, 10), -EPROTO, "a record outside the mapping is -EPROTO");

	CHECK_EQ(fpgastream_stats(h, &st), 0, "stats succeeds");
	CHECK_EQ(st.read_calls, 7, "... and returns the driver's counters");
	CHECK_EQ(fpgastream_stats(h, NULL), -EINVAL, "stats(h, NULL) is -EINVAL");
	fpgastream_close(h);
	free(buf);
}

/* Free 2 MiB and 1 GiB hugepages on this host. */
static long free_huge(const char *kb)
{
	char path[128];
	long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%skB/free_hugepages", kb);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static void test_buffer_alloc(void)
{
	struct fpgastream_buffer b;
	size_t len = 8u << 20;		/* 4 hugepages */
	long f2m = free_huge("2048"), f1g = free_huge("1048576");
	int err;

	printf("# host has %ld free 2 MiB and %ld free 1 GiB hugepages\n", f2m, f1g);
	CHECK_EQ(fpgastream_buffer_alloc(NULL, len, 0), -EINVAL, "buffer_alloc(NULL) is -EINVAL");
	CHECK_EQ(fpgastream_buffer_alloc(&b, 0, 0), -EINVAL, "buffer of 0 bytes is -EINVAL");
	CHECK_EQ(fpgastream_buffer_alloc(&b, 65536 + 4096, 0), -EINVAL,
		 "buffer not a multiple of 64 KiB is -EINVAL");
	CHECK_EQ(fpgastream_buffer_alloc(&b, len, FPGASTREAM_ALLOC_1G | FPGASTREAM_ALLOC_4K), -EINVAL,
		 "1G and 4K together are -EINVAL");
	CHECK_EQ(fpgastream_buffer_alloc(&b, len, 0x100), -EINVAL, "unknown flags are -EINVAL");

	err = fpgastream_buffer_alloc(&b, len, 0);
	CHECK_EQ(err, 0, "default buffer allocates");
	if (!err) {
		if (f2m >= 4) {
			CHECK_EQ(b.page_size, 2u << 20, "with free hugepages it gets 2 MiB pages");
			check(b.note[0] == 0, "... and no fallback note");
		} else {
			CHECK_EQ(b.page_size, 4096, "without hugepages it falls back to 4 KiB pages");
			check(contains(b.note, "fell back") && contains(b.note, "2 MiB") &&
			      contains(b.note, "4 KiB") && contains(b.note, "IOMMU"),
			      "... and the note says so: '%s'", b.note);
		}
		check(((uintptr_t)b.base & 65535) == 0, "the buffer is 64 KiB aligned");
		check(b.length == len, "the buffer has the asked length");
		memset(b.base, 0xa5, b.length);
		check(((unsigned char *)b.base)[len - 1] == 0xa5, "the buffer is writable to its end");
		fpgastream_buffer_free(&b);
		check(b.base == NULL && b.length == 0, "buffer_free zeroes the descriptor");
		fpgastream_buffer_free(&b);
	}

	err = fpgastream_buffer_alloc(&b, len, FPGASTREAM_ALLOC_1G);
	CHECK_EQ(err, 0, "1 GiB request allocates");
	if (!err) {
		size_t want = f1g >= 1 ? 1u << 30 : f2m >= 4 ? 2u << 20 : 4096;

		CHECK_EQ(b.page_size, want, "1 GiB request gets 1G, else 2M, else 4K pages");
		if (want != 1u << 30)
			check(contains(b.note, "1 GiB") && contains(b.note, "fell back"),
			      "... and the note says it fell back from 1 GiB: '%s'", b.note);
		fpgastream_buffer_free(&b);
	}

	err = fpgastream_buffer_alloc(&b, len, FPGASTREAM_ALLOC_4K);
	check(!err && b.page_size == 4096 && b.note[0] == 0 && ((uintptr_t)b.base & 65535) == 0,
	      "4K request gets aligned 4 KiB pages without a note");
	fpgastream_buffer_free(&b);

	if (f2m < 4) {
		err = fpgastream_buffer_alloc(&b, len, FPGASTREAM_ALLOC_STRICT);
		CHECK_EQ(err, -ENOMEM, "strict 2 MiB request without hugepages is -ENOMEM");
		check(contains(b.note, "nr_hugepages"), "... and the note says how to reserve them");
	} else {
		printf("ok %d - strict 2 MiB request without hugepages # SKIP host has hugepages\n", ++ntest);
		printf("ok %d - strict note # SKIP host has hugepages\n", ++ntest);
	}
}

int main(void)
{
	printf("TAP version 13\n");
	test_strerror();
	test_parse_size();
	test_null_args();
	test_open_errors();
	test_map_checks();
	test_wait();
	test_buffer_alloc();
	check(!strcmp(fpgastream_version(), FPGASTREAM_LIB_VERSION), "version matches the header");
	printf("1..%d\n", ntest);
	return nfail ? 1 : 0;
}
