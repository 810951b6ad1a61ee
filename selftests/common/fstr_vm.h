/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the robustness suites (selftests/hostile, fuzz,
 * pressure): find the FSTR board and its device node, drive its test block
 * through resource0, the ioctl wrappers, hugepage buffers, and the two
 * cleanup measures every test ends with: the global FOLL_PIN balance
 * (/proc/vmstat) and this process's locked-memory charge (VmLck + VmPin).
 *
 * Everything is static inline, so a test uses what it needs without
 * -Wunused-function; nothing here depends on the kselftest harness.
 * It lives in selftests/common, on every VM test's include path.
 */
#ifndef FSTR_VM_H
#define FSTR_VM_H

#include <dirent.h>
#include <linux/capability.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "uapi/fpgastream.h"

#define BLOCK		65536ULL
#define HUGE_2M		(2ULL << 20)
#define WORDS		(BLOCK / 8)
#define REC		sizeof(struct fpgastream_block)

/* BAR0 registers (datasheet sections 3 and 4). */
#define R_ID		0x000
#define R_DMA_BITS	0x010
#define R_STATUS	0x018
#define R_WR_COUNT	0x020
#define R_EMU_RATE	0x1000
#define R_EMU_SEED	0x1004
#define R_EMU_BURST	0x1008
#define R_EMU_INJECT	0x100c
#define R_EMU_FIFO	0x1010
#define ID_FSTR		0x46535452
#define INJECT_DMA_ERROR 1
#define INJECT_LUT_FAULT 2
#define INJECT_IDLE_STALL 4
#define INJECT_LINK_DOWN 8	/* at once: all reads all ones until a reset */
#define INJECT_AER_NONFATAL 16	/* next block: completer abort, stops as DMA_ERROR */
#define INJECT_AER_FATAL 32	/* at once: fatal AER error, then link down */

/* How long a test waits for something the board must do before failing. */
#define WAIT_MS		20000

static inline uint64_t fv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static inline void fv_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline int fv_read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* Write @s to a sysfs, procfs or debugfs file; 0 or -errno. */
static inline int fv_write_text(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

static inline bool fv_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static inline unsigned long fv_read_hex(const char *path)
{
	char buf[64];

	if (fv_read_text(path, buf, sizeof(buf)))
		return ~0UL;
	return strtoul(buf, NULL, 0);
}

/* Value of a "Key:   N kB" line of @path (/proc/meminfo, /proc/self/status). */
static inline long long fv_proc_kb(const char *path, const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	long long v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = atoll(line + kl + 1);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Locked-memory charge of this process: mlock-style (VmLck) plus pinned. */
static inline long long fv_locked_kb(void)
{
	long long lck = fv_proc_kb("/proc/self/status", "VmLck");
	long long pin = fv_proc_kb("/proc/self/status", "VmPin");

	return (lck < 0 ? 0 : lck) + (pin < 0 ? 0 : pin);
}

struct fv_pins {
	long long acquired, released;
};

/*
 * Global FOLL_PIN counters.  /proc/vmstat does not fold the per-CPU deltas,
 * so fold them first through vm.stat_refresh.
 */
static inline struct fv_pins fv_pin_counts(void)
{
	struct fv_pins p = { -1, -1 };
	char line[128];
	FILE *f;

	fv_write_text("/proc/sys/vm/stat_refresh", "1");
	f = fopen("/proc/vmstat", "re");
	if (!f)
		return p;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "nr_foll_pin_acquired ", 21))
			p.acquired = atoll(line + 21);
		else if (!strncmp(line, "nr_foll_pin_released ", 21))
			p.released = atoll(line + 21);
	}
	fclose(f);
	return p;
}

/*
 * Wait (up to @ms) until nothing pins or unpins any more: a test program
 * killed on a timeout may still be letting go of its buffer when the next
 * test starts (the 6.1 harness does not wait for it), and a baseline taken
 * then would be wrong.  True when quiet.
 */
static inline bool fv_pins_quiet(unsigned int ms)
{
	struct fv_pins a = fv_pin_counts(), b;
	struct timespec ts = { 0, 200 * 1000000L };

	for (; ms; ms = ms > 200 ? ms - 200 : 0) {
		nanosleep(&ts, NULL);
		b = fv_pin_counts();
		if (a.acquired == b.acquired && a.released == b.released)
			return true;
		a = b;
	}
	return false;
}

/* Pages pinned since @p0 and not released yet (0 when balanced). */
static inline long long fv_pins_held(struct fv_pins p0)
{
	struct fv_pins p = fv_pin_counts();

	return (p.acquired - p0.acquired) - (p.released - p0.released);
}

/* --------------------------------------------------------------- board */

struct fv_dev {
	char bdf[32];
	char node[96];
	char driver[64];
	volatile uint32_t *bar0;
	struct fpgastream_info info;
	bool swiotlb, dma32, iommu;
	uint32_t seed;
};

static inline uint32_t fv_rd(struct fv_dev *d, unsigned int off)
{
	return d->bar0[off / 4];
}

static inline void fv_wr(struct fv_dev *d, unsigned int off, uint32_t v)
{
	d->bar0[off / 4] = v;
	(void)d->bar0[R_ID / 4];	/* flush the posted write */
}

static inline int fv_find_bdf(char *bdf, size_t len)
{
	const char *env = getenv("FPGASTREAM_BDF");
	char path[PATH_MAX];
	struct dirent *e;
	DIR *dir;
	int found = -ENODEV;

	if (env) {
		snprintf(bdf, len, "%s", env);
		return 0;
	}
	dir = opendir("/sys/bus/pci/devices");
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", e->d_name);
		if (fv_read_hex(path) != 0x1234)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", e->d_name);
		if (fv_read_hex(path) != 0xf5a0)
			continue;
		found = snprintf(bdf, len, "%s", e->d_name) < (int)len ? 0 : -ENAMETOOLONG;
		break;
	}
	closedir(dir);
	return found;
}

/*
 * /dev/fpgastream<N> of the board: a sysfs directory fpgastream<N> with a
 * "dev" file below the PCI device (directly or in the class glue directory).
 */
static inline int fv_find_node(const char *bdf, char *node, size_t len)
{
	char base[PATH_MAX], sub[PATH_MAX + 300], dev[PATH_MAX + 600];
	struct dirent *e, *e2;
	DIR *dir, *dir2;

	snprintf(base, sizeof(base), "/sys/bus/pci/devices/%s", bdf);
	dir = opendir(base);
	if (!dir)
		return -errno;
	node[0] = 0;
	while (!node[0] && (e = readdir(dir))) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", base, e->d_name);
		if (!strncmp(e->d_name, "fpgastream", 10)) {
			snprintf(dev, sizeof(dev), "%s/dev", sub);
			if (fv_exists(dev)) {
				if (snprintf(node, len, "/dev/%s", e->d_name) >= (int)len)
					node[0] = 0;
				break;
			}
		}
		dir2 = opendir(sub);
		if (!dir2)
			continue;
		while ((e2 = readdir(dir2))) {
			if (strncmp(e2->d_name, "fpgastream", 10))
				continue;
			snprintf(dev, sizeof(dev), "%s/%s/dev", sub, e2->d_name);
			if (fv_exists(dev)) {
				if (snprintf(node, len, "/dev/%s", e2->d_name) >= (int)len)
					node[0] = 0;
				break;
			}
		}
		closedir(dir2);
	}
	closedir(dir);
	if (!node[0] && fv_exists("/dev/fpgastream0"))
		snprintf(node, len, "/dev/fpgastream0");
	return node[0] ? 0 : -ENOENT;
}

static inline void fv_driver_name(const char *bdf, char *out, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		out[0] = 0;
		return;
	}
	link[n] = 0;
	snprintf(out, len, "%s", strrchr(link, '/') + 1);
}

static inline int fv_ioc(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) ? -errno : 0;
}

/* Put the test block in a known state: a previous test may have left a
 * rate, a burst or a small FIFO behind.  (Writing EMU_INJECT only arms
 * faults: an armed one stays until a block or a stop consumes it, see
 * fv_disarm().) */
static inline void fv_quiet(struct fv_dev *d)
{
	fv_wr(d, R_EMU_RATE, 0);
	fv_wr(d, R_EMU_SEED, d->seed);
	fv_wr(d, R_EMU_BURST, 0);
	fv_wr(d, R_EMU_FIFO, 16);
}

static inline int fv_map(int fd, const void *addr, uint64_t len, uint32_t flags);
static inline int fv_start(int fd, uint32_t flags);
static inline short fv_poll_now(int fd);

/*
 * Consume the faults still armed in EMU_INJECT (DMA_ERROR and LUT_FAULT
 * fire on the next block, the IDLE stall on the next stop) by streaming a
 * few blocks through a file of our own.  0 when nothing is armed any more.
 */
static inline int fv_disarm(struct fv_dev *d)
{
	void *b;
	int fd, i, k, err = 0;

	if (!(fv_rd(d, R_EMU_INJECT) & 7))
		return 0;
	fd = open(d->node, O_RDWR | O_CLOEXEC);
	b = mmap(NULL, HUGE_2M, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (fd < 0 || b == MAP_FAILED || fv_map(fd, b, HUGE_2M, 0)) {
		err = -1;
		goto out;
	}
	for (i = 0; i < 8 && (fv_rd(d, R_EMU_INJECT) & 7); i++) {
		fv_wr(d, R_EMU_BURST, 2);
		if (fv_start(fd, 0)) {
			err = -2;
			break;
		}
		/* Until a block completed or the fault stopped the engine. */
		for (k = 0; k < 2000 && !(fv_poll_now(fd) & (POLLIN | POLLERR)); k++)
			fv_sleep_ms(5);
		ioctl(fd, FPGASTREAM_IOC_STOP, NULL);
	}
	fv_wr(d, R_EMU_BURST, 0);
out:
	if (fd >= 0)
		close(fd);
	if (b != MAP_FAILED)
		munmap(b, HUGE_2M);
	return err ? err : (fv_rd(d, R_EMU_INJECT) & 7) ? -3 : 0;
}

/*
 * Find the bound board, its node and BAR0; read INFO.  NULL when ready,
 * else why the suite cannot run (the caller skips or fails with it).
 */
static inline const char *fv_setup(struct fv_dev *d)
{
	static char why[512];
	char path[PATH_MAX], cmdline[4096];
	int fd;

	memset(d, 0, sizeof(*d));
	if (fv_find_bdf(d->bdf, sizeof(d->bdf)))
		return "no FSTR board (PCI 1234:f5a0) in this machine";
	if (!fv_exists("/sys/module/fpgastream"))
		return "the fpgastream module is not loaded";
	fv_driver_name(d->bdf, d->driver, sizeof(d->driver));
	if (strcmp(d->driver, "fpgastream"))
		return "the board is not bound to fpgastream";
	if (fv_find_node(d->bdf, d->node, sizeof(d->node)))
		return "no /dev/fpgastream<N> for the board";
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", d->bdf);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, sizeof(why), "open %.300s: %.100s", path, strerror(errno));
		return why;
	}
	d->bar0 = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (d->bar0 == MAP_FAILED) {
		d->bar0 = NULL;
		return "mmap resource0 failed (boot with iomem=relaxed)";
	}
	if (fv_rd(d, R_ID) != ID_FSTR)
		return "BAR0 ID is not FSTR";
	fd = open(d->node, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fv_ioc(fd, FPGASTREAM_IOC_INFO, &d->info)) {
		snprintf(why, sizeof(why), "INFO on %s: %.100s", d->node, strerror(errno));
		if (fd >= 0)
			close(fd);
		return why;
	}
	close(fd);
	d->iommu = d->info.flags & FPGASTREAM_INFO_IOMMU;
	d->swiotlb = !fv_read_text("/proc/cmdline", cmdline, sizeof(cmdline)) &&
		     strstr(cmdline, "swiotlb=force");
	d->dma32 = !d->iommu && fv_rd(d, R_DMA_BITS) < 64;
	d->seed = 0x5eed0000u ^ (uint32_t)getpid();
	fv_quiet(d);
	return NULL;
}

static inline void fv_teardown(struct fv_dev *d)
{
	if (!d->bar0)
		return;
	fv_disarm(d);
	fv_quiet(d);
	munmap((void *)d->bar0, 0x2000);
	d->bar0 = NULL;
}

static inline int fv_open(struct fv_dev *d, int flags)
{
	return open(d->node, O_RDWR | O_CLOEXEC | flags);
}

static inline int fv_map(int fd, const void *addr, uint64_t len, uint32_t flags)
{
	struct fpgastream_map m = {
		.addr = (uintptr_t)addr, .length = len, .flags = flags,
	};

	return fv_ioc(fd, FPGASTREAM_IOC_MAP, &m);
}

static inline int fv_start(int fd, uint32_t flags)
{
	struct fpgastream_start s = { .flags = flags };

	return fv_ioc(fd, FPGASTREAM_IOC_START, &s);
}

static inline int fv_release(int fd, uint64_t n)
{
	return fv_ioc(fd, FPGASTREAM_IOC_RELEASE, &n);
}

/*
 * Wait up to @ms for records (poll), then read up to @max of them.
 * Returns the count, 0 at end of stream, or -errno; -ETIME if nothing came.
 * A byte count that is not whole records breaks the contract: -EPROTO.
 */
static inline long fv_records(int fd, struct fpgastream_block *r, size_t max, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int ret;

	ret = poll(&p, 1, ms);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return -ETIME;
	n = read(fd, r, max * REC);
	if (n < 0)
		return -errno;
	if (n % REC)
		return -EPROTO;
	return n / REC;
}

/* Drop CAP_IPC_LOCK from this process: RLIMIT_MEMLOCK then applies. */
static inline int fv_drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct c[2];

	if (syscall(SYS_capget, &h, c))
		return -errno;
	c[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	c[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
	c[CAP_IPC_LOCK / 32].inheritable &= ~(1u << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &h, c) ? -errno : 0;
}

static inline short fv_poll_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

/* Wait until WR_COUNT reaches @n (the board completed @n blocks). */
static inline bool fv_wait_wr_count(struct fv_dev *d, uint32_t n)
{
	uint64_t end = fv_now_ns() + WAIT_MS * 1000000ULL;

	while (fv_rd(d, R_WR_COUNT) < n) {
		if (fv_now_ns() > end)
			return false;
		fv_sleep_ms(2);
	}
	return true;
}

/* ------------------------------------------------------------- buffers */

/* @len bytes of 2 MiB hugepages (MAP_SHARED unless @private), poisoned. */
static inline void *fv_huge(size_t len, bool private)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       (private ? MAP_PRIVATE : MAP_SHARED) | MAP_ANONYMOUS | MAP_HUGETLB,
		       -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, len);
	return p;
}

/* First 8-byte word of [p, p+len) that is not the 0x5a poison, or len. */
static inline size_t fv_first_written(const uint8_t *p, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += 8)
		if (*(const uint64_t *)(p + off) != 0x5a5a5a5a5a5a5a5aULL)
			return off;
	return len;
}

static inline uint64_t fv_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * Does the block at @w hold the reference pattern of source sequence @s
 * (words 0, 1, 2 and the last; datasheet "Data pattern")?
 */
static inline bool fv_block_ok(const void *w_, uint64_t s, uint64_t seed)
{
	const uint64_t *w = w_;

	return w[0] == s && w[1] == ~s &&
	       w[2] == fv_splitmix64(seed ^ (s << 13) ^ 2) &&
	       w[WORDS - 1] == fv_splitmix64(seed ^ (s << 13) ^ (WORDS - 1));
}

/*
 * The board still works: a fresh file maps 2 MiB, streams @n blocks under
 * flow control with sequence numbers 0.. and the right data, and lets go.
 * 0, or a negative step number with errno-ish detail in @why.
 */
static inline int fv_board_works(struct fv_dev *d, unsigned int n, char *why, size_t whylen)
{
	struct fpgastream_block r[16];
	unsigned int got = 0;
	long k, i;
	uint8_t *b;
	int fd, err = 0;

	fv_quiet(d);
	if (fv_disarm(d)) {
		snprintf(why, whylen, "faults still armed: EMU_INJECT %#x", fv_rd(d, R_EMU_INJECT));
		return -7;
	}
	fd = fv_open(d, 0);
	if (fd < 0) {
		snprintf(why, whylen, "open %s: %s", d->node, strerror(errno));
		return -1;
	}
	b = fv_huge(HUGE_2M, false);
	if (!b) {
		snprintf(why, whylen, "2 MiB hugepage: %s", strerror(errno));
		close(fd);
		return -2;
	}
	fv_wr(d, R_EMU_BURST, n);
	err = fv_map(fd, b, HUGE_2M, 0);
	if (err) {
		snprintf(why, whylen, "MAP: %s", strerror(-err));
		goto out;
	}
	err = fv_start(fd, FPGASTREAM_START_FLOW_CONTROL);
	if (err) {
		snprintf(why, whylen, "START: %s", strerror(-err));
		goto out;
	}
	while (got < n) {
		k = fv_records(fd, r, n - got < 16 ? n - got : 16, WAIT_MS);
		if (k <= 0) {
			snprintf(why, whylen, "after %u records: %s", got,
				 k == 0 ? "end of stream" : strerror(-k));
			err = -3;
			goto out;
		}
		for (i = 0; i < k; i++, got++) {
			if (r[i].seq != got || r[i].offset != (got % 32) * BLOCK ||
			    !fv_block_ok(b + r[i].offset, got, d->seed)) {
				snprintf(why, whylen, "record %u: seq %llu offset %#llx word0 %#llx",
					 got, (unsigned long long)r[i].seq,
					 (unsigned long long)r[i].offset,
					 (unsigned long long)*(uint64_t *)(b + r[i].offset % HUGE_2M));
				err = -4;
				goto out;
			}
		}
		if (fv_release(fd, k)) {
			snprintf(why, whylen, "RELEASE: %s", strerror(errno));
			err = -5;
			goto out;
		}
	}
	if (fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL)) {
		snprintf(why, whylen, "STOP: %s", strerror(errno));
		err = -6;
	}
out:
	close(fd);
	munmap(b, HUGE_2M);
	fv_quiet(d);
	return err;
}

#endif /* FSTR_VM_H */
