// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libfpgastream: a thin, checked layer over /dev/fpgastreamN.
 * No global state, no printing, no exit: errors are -errno plus a message
 * kept in the handle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <time.h>
#include <unistd.h>

#include "fpgastream.h"

#define API __attribute__((visibility("default")))

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif

#define SZ_4K	4096UL
#define SZ_64K	65536UL
#define SZ_2M	(2UL << 20)
#define SZ_1G	(1UL << 30)

/* Records read per read(); a wait() returns at most this many. */
#define REC_BATCH 1024

struct fpgastream {
	int fd;
	char path[PATH_MAX];
	struct fpgastream_info info;
	char *map_addr;		/* NULL while nothing is mapped */
	uint64_t map_length;
	struct fpgastream_block recbuf[REC_BATCH];
	char errmsg[512];
};

/* Keep the message for the handle's last error and return -err. */
static int fail(struct fpgastream *h, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct fpgastream *h, int err, const char *fmt, ...)
{
	va_list ap;

	if (h) {
		va_start(ap, fmt);
		vsnprintf(h->errmsg, sizeof(h->errmsg), fmt, ap);
		va_end(ap);
	}
	return -err;
}

API const char *fpgastream_version(void)
{
	return FPGASTREAM_LIB_VERSION;
}

API const char *fpgastream_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return "success";
	case ENOENT:
		return "no such board: is the fpgastream module loaded (modprobe fpgastream) and a board present (fpgastream list)?";
	case EACCES:
	case EPERM:
		return "permission denied: add yourself to group fpgastream (then log in again), or run as root";
	case EINVAL:
		return "invalid argument: sizes and addresses must be multiples of the 64 KiB block, within the board's reach; see fpgastream_last_error() for the call's reason";
	case ENOMEM:
		return "out of memory: for a mapping, the buffer exceeds the locked-memory limit (raise it: ulimit -l); for a buffer, no hugepages are free (reserve them: sysctl vm.nr_hugepages=N)";
	case EBUSY:
		return "busy: the board already has a buffer mapped or is already streaming (another program may be using it)";
	case EFAULT:
		return "bad address: the buffer is not mapped or not writable";
	case ERANGE:
		return "buffer out of the board's DMA reach: it would be bounced or is above what the board can address; use an IOMMU or memory the board reaches";
	case ENOTTY:
		return "not an fpgastream device, or the driver is too old for this call";
	case EIO:
		return "board fault (LUT fault or DMA error): the stream stopped; unmap and map again";
	case ENODEV:
	case ENXIO:
		return "the board is gone (removed or driver unbound)";
	case ENODATA:
		return "end of stream: the stream stopped and every block was delivered";
	case EINTR:
		return "interrupted by a signal";
	case EPROTO:
		return "the driver answered something this library does not understand (ABI mismatch?)";
	case EBADF:
		return "the device file is not open";
	case EMFILE:
	case ENFILE:
		return "too many open files";
	case EOVERFLOW:
		return "size too large for this system";
	default:
		return strerror(err < 0 ? -err : err);
	}
}

API const char *fpgastream_last_error(const struct fpgastream *h)
{
	return h ? h->errmsg : "no handle";
}

API int fpgastream_fd(const struct fpgastream *h)
{
	return h ? h->fd : -EINVAL;
}

API const char *fpgastream_path(const struct fpgastream *h)
{
	return h ? h->path : NULL;
}

API int fpgastream_open(unsigned int index, struct fpgastream **hp)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/fpgastream%u", index);
	return fpgastream_open_path(path, hp);
}

API int fpgastream_open_path(const char *path, struct fpgastream **hp)
{
	struct fpgastream *h;
	int err;

	if (!hp)
		return -EINVAL;
	*hp = NULL;
	if (!path || !*path || strlen(path) >= PATH_MAX)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	snprintf(h->path, sizeof(h->path), "%s", path);
	/* Non-blocking so that fpgastream_wait() can never hang in read(). */
	h->fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (h->fd < 0) {
		err = -errno;
		free(h);
		return err;
	}
	if (ioctl(h->fd, FPGASTREAM_IOC_INFO, &h->info) < 0) {
		err = -errno;
		close(h->fd);
		free(h);
		return err == -EINVAL ? -ENOTTY : err;
	}
	if (h->info.abi_version < 1 || h->info.block_size == 0 ||
	    (h->info.block_size & (h->info.block_size - 1))) {
		close(h->fd);
		free(h);
		return -EPROTO;
	}
	*hp = h;
	return 0;
}

API void fpgastream_close(struct fpgastream *h)
{
	if (!h)
		return;
	/* Closing the file unmaps in the driver too; doing it here first
	 * keeps the order explicit. */
	if (h->map_addr)
		ioctl(h->fd, FPGASTREAM_IOC_UNMAP);
	close(h->fd);
	free(h);
}

API int fpgastream_info(struct fpgastream *h, struct fpgastream_info *info)
{
	if (!h)
		return -EINVAL;
	if (!info)
		return fail(h, EINVAL, "info: NULL argument");
	*info = h->info;
	return 0;
}

/* ---- buffers ---- */

static void *try_mmap(size_t len, int extra)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

/* Hugepages of `page` bytes, populated now so that a shortage shows here
 * and not as SIGBUS later. */
static int alloc_huge(struct fpgastream_buffer *buf, size_t length, size_t page)
{
	size_t len = round_up(length, page);
	int huge = page == SZ_1G ? MAP_HUGE_1GB : MAP_HUGE_2MB;
	void *p;

	if (len < length)
		return -EOVERFLOW;
	p = try_mmap(len, MAP_HUGETLB | huge | MAP_POPULATE);
	if (!p)
		return -errno;
	buf->base = buf->map_base = p;
	buf->map_length = len;
	buf->page_size = page;
	return 0;
}

/* 4 KiB pages, with the start rounded up to a block boundary. */
static int alloc_small(struct fpgastream_buffer *buf, size_t length)
{
	size_t len = length + SZ_64K;
	char *p;

	if (len < length)
		return -EOVERFLOW;
	p = try_mmap(len, MAP_NORESERVE);
	if (!p)
		return -errno;
	buf->map_base = p;
	buf->map_length = len;
	buf->base = (void *)(((uintptr_t)p + SZ_64K - 1) & ~(uintptr_t)(SZ_64K - 1));
	/* Keep them 4 KiB pages, as page_size says: a transparent hugepage
	 * would make the board's view depend on luck. */
	madvise(p, len, MADV_NOHUGEPAGE);
	buf->page_size = SZ_4K;
	return 0;
}

static const char *page_name(size_t page)
{
	return page == SZ_1G ? "1 GiB" : page == SZ_2M ? "2 MiB" : "4 KiB";
}

API int fpgastream_buffer_alloc(struct fpgastream_buffer *buf, size_t length,
				unsigned int flags)
{
	size_t order[3];
	int n = 0, i, err = -ENOMEM, first_err = 0;
	char why[96] = "";

	if (!buf)
		return -EINVAL;
	memset(buf, 0, sizeof(*buf));
	if (length == 0 || length % SZ_64K ||
	    (flags & ~(FPGASTREAM_ALLOC_1G | FPGASTREAM_ALLOC_4K | FPGASTREAM_ALLOC_STRICT)) ||
	    ((flags & FPGASTREAM_ALLOC_1G) && (flags & FPGASTREAM_ALLOC_4K)))
		return -EINVAL;

	if (flags & FPGASTREAM_ALLOC_4K) {
		order[n++] = SZ_4K;
	} else {
		if (flags & FPGASTREAM_ALLOC_1G)
			order[n++] = SZ_1G;
		order[n++] = SZ_2M;
		order[n++] = SZ_4K;
	}
	if (flags & FPGASTREAM_ALLOC_STRICT)
		n = 1;

	for (i = 0; i < n; i++) {
		err = order[i] == SZ_4K ? alloc_small(buf, length)
					: alloc_huge(buf, length, order[i]);
		if (!err)
			break;
		if (!first_err) {
			first_err = err;
			snprintf(why, sizeof(why), "%s", strerror(-err));
		}
	}
	if (err) {
		memset(buf, 0, sizeof(*buf));
		snprintf(buf->note, sizeof(buf->note),
			 "no %s pages for %zu bytes (%s)%s", page_name(order[0]),
			 length, why,
			 order[0] == SZ_4K ? "" : ": reserve hugepages (sysctl vm.nr_hugepages=N)");
		return err == -EOVERFLOW ? err : -ENOMEM;
	}
	buf->length = length;
	if (i > 0)
		snprintf(buf->note, sizeof(buf->note),
			 "no %s hugepages free for %zu bytes (%s): fell back to %s pages%s",
			 page_name(order[0]), length, why, page_name(buf->page_size),
			 buf->page_size == SZ_4K ? " (they work only behind an IOMMU)" : "");
	return 0;
}

API void fpgastream_buffer_free(struct fpgastream_buffer *buf)
{
	if (!buf)
		return;
	if (buf->map_base)
		munmap(buf->map_base, buf->map_length);
	memset(buf, 0, sizeof(*buf));
}

/* ---- mapping and streaming ---- */

/* Whether the locked-memory limit can be what refused `length` bytes: not
 * with CAP_IPC_LOCK or a limit above it (then the kernel ran out of memory
 * or DMA mapping space, e.g. swiotlb's bounce buffers). */
static int memlock_may_refuse(size_t length)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct cap[2];
	struct rlimit rl;

	if (syscall(SYS_capget, &hdr, cap) == 0 &&
	    (cap[CAP_IPC_LOCK / 32].effective & (1U << (CAP_IPC_LOCK % 32))))
		return 0;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
	    (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)length * 2))
		return 0;
	return 1;
}

API int fpgastream_map(struct fpgastream *h, void *addr, size_t length,
		       unsigned int flags, struct fpgastream_map *result)
{
	struct fpgastream_map m;
	uint64_t bs;
	int err;

	if (!h)
		return -EINVAL;
	bs = h->info.block_size;
	if (!addr)
		return fail(h, EINVAL, "map: NULL buffer address");
	if ((uintptr_t)addr % bs)
		return fail(h, EINVAL, "map: buffer address %p is not aligned to the %llu-byte block",
			    addr, (unsigned long long)bs);
	if (length == 0 || length % bs)
		return fail(h, EINVAL, "map: length %zu is not a non-zero multiple of the %llu-byte block",
			    length, (unsigned long long)bs);
	if (length > h->info.max_buffer_size)
		return fail(h, EINVAL, "map: length %zu exceeds the board's maximum of %llu bytes (%u LUT entries)",
			    length, (unsigned long long)h->info.max_buffer_size,
			    h->info.lut_capacity);
	if (flags & ~FPGASTREAM_MAP_NO_BOUNCE)
		return fail(h, EINVAL, "map: unknown flags 0x%x", flags);
	if (h->map_addr)
		return fail(h, EBUSY, "map: this handle already has a buffer mapped; unmap it first");

	memset(&m, 0, sizeof(m));
	m.addr = (uintptr_t)addr;
	m.length = length;
	m.flags = flags;
	if (ioctl(h->fd, FPGASTREAM_IOC_MAP, &m) < 0) {
		err = errno;
		switch (err) {
		case ENOMEM:
			if (!memlock_may_refuse(length))
				return fail(h, err, "map: the kernel could not pin or DMA-map %zu bytes (out of memory%s): map less, see the kernel log (dmesg)",
					    length, (h->info.flags & FPGASTREAM_INFO_IOMMU) ? "" : ", or of swiotlb bounce buffers");
			return fail(h, err, "map: %zu bytes exceed the locked-memory limit (RLIMIT_MEMLOCK): raise it (ulimit -l unlimited, or memlock in /etc/security/limits.conf) or map less",
				    length);
		case EINVAL:
			if (!(h->info.flags & FPGASTREAM_INFO_IOMMU))
				return fail(h, err, "map: without an IOMMU the board needs each 64 KiB block physically contiguous: use hugepages (reserve them: sysctl vm.nr_hugepages=N) or enable the IOMMU");
			return fail(h, err, "map: the driver refused the buffer (see the kernel log: dmesg)");
		case EBUSY:
			return fail(h, err, "map: the board already has a buffer mapped by another program (or this file)");
		case EFAULT:
			return fail(h, err, "map: the buffer is not fully mapped and writable");
		case ERANGE:
			return fail(h, err, "map: the buffer is out of the board's reach (%u-bit DMA)%s: use an IOMMU, memory below the limit, or map without FPGASTREAM_MAP_NO_BOUNCE to allow bouncing",
				    h->info.dma_addr_bits,
				    (flags & FPGASTREAM_MAP_NO_BOUNCE) ? " or would be bounced by swiotlb" : "");
		default:
			return fail(h, err, "map: %s", fpgastream_strerror(err));
		}
	}
	h->map_addr = addr;
	h->map_length = length;
	if (result)
		*result = m;
	return 0;
}

API int fpgastream_unmap(struct fpgastream *h)
{
	if (!h)
		return -EINVAL;
	if (!h->map_addr)
		return fail(h, EINVAL, "unmap: nothing is mapped");
	if (ioctl(h->fd, FPGASTREAM_IOC_UNMAP) < 0)
		return fail(h, errno, "unmap: %s", fpgastream_strerror(errno));
	h->map_addr = NULL;
	h->map_length = 0;
	return 0;
}

API int fpgastream_start(struct fpgastream *h, unsigned int flags,
			 unsigned int coalesce_count, unsigned int coalesce_usec)
{
	struct fpgastream_start s;

	if (!h)
		return -EINVAL;
	if (flags & ~FPGASTREAM_START_FLOW_CONTROL)
		return fail(h, EINVAL, "start: unknown flags 0x%x", flags);
	if (!h->map_addr)
		return fail(h, EINVAL, "start: no buffer is mapped: call fpgastream_map() first");
	memset(&s, 0, sizeof(s));
	s.flags = flags;
	s.irq_coalesce_count = coalesce_count;
	s.irq_coalesce_usec = coalesce_usec;
	if (ioctl(h->fd, FPGASTREAM_IOC_START, &s) < 0) {
		if (errno == EBUSY)
			return fail(h, EBUSY, "start: the stream is already running: stop it first");
		return fail(h, errno, "start: %s", fpgastream_strerror(errno));
	}
	return 0;
}

API int fpgastream_stop(struct fpgastream *h)
{
	if (!h)
		return -EINVAL;
	if (ioctl(h->fd, FPGASTREAM_IOC_STOP) < 0)
		return fail(h, errno, "stop: %s", fpgastream_strerror(errno));
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_error(struct fpgastream *h, int err)
{
	switch (err) {
	case EIO:
		return fail(h, EIO, "wait: the board reported a fault (LUT fault or DMA error) and stopped: see the kernel log, unmap and map again");
	case ENODEV:
		return fail(h, ENODEV, "wait: the board is gone");
	case EINTR:
		return fail(h, EINTR, "wait: interrupted by a signal");
	default:
		return fail(h, err, "wait: %s", fpgastream_strerror(err));
	}
}

API int fpgastream_wait(struct fpgastream *h, struct fpgastream_record *recs,
			unsigned int max, int timeout_ms)
{
	int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
	struct pollfd pfd;
	ssize_t n;
	int i, left = timeout_ms, rc;

	if (!h)
		return -EINVAL;
	if (!recs || max == 0)
		return fail(h, EINVAL, "wait: no room for records");
	if (!h->map_addr)
		return fail(h, EINVAL, "wait: no buffer is mapped");
	if (max > REC_BATCH)
		max = REC_BATCH;

	for (;;) {
		pfd.fd = h->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		rc = poll(&pfd, 1, left);
		if (rc < 0)
			return wait_error(h, errno);
		if (rc == 0)
			return 0;
		if (pfd.revents & POLLNVAL)
			return fail(h, EBADF, "wait: the device file is closed");
		/* POLLIN, POLLERR and POLLHUP all mean read() has news. */
		n = read(h->fd, h->recbuf, max * sizeof(h->recbuf[0]));
		if (n > 0)
			break;
		if (n == 0)
			return fail(h, ENODATA, "wait: end of stream");
		if (errno != EAGAIN)
			return wait_error(h, errno);
		/* A wakeup with nothing for us: wait out the rest. */
		if (timeout_ms > 0) {
			left = (int)(deadline - now_ms());
			if (left <= 0)
				return 0;
		} else if (timeout_ms == 0) {
			return 0;
		}
	}

	if (n % sizeof(h->recbuf[0]))
		return fail(h, EPROTO, "wait: the driver returned %zd bytes, not whole records", n);
	n /= sizeof(h->recbuf[0]);
	for (i = 0; i < n; i++) {
		const struct fpgastream_block *b = &h->recbuf[i];

		if (b->offset > h->map_length || b->length > h->map_length - b->offset)
			return fail(h, EPROTO, "wait: the driver returned a block at offset %llu (+%u) outside the %llu-byte mapping",
				    (unsigned long long)b->offset, b->length,
				    (unsigned long long)h->map_length);
		recs[i].data = h->map_addr + b->offset;
		recs[i].seq = b->seq;
		recs[i].offset = b->offset;
		recs[i].length = b->length;
		recs[i].flags = b->flags;
		recs[i].lost = b->lost;
		recs[i].timestamp_ns = b->timestamp_ns;
	}
	return (int)n;
}

API int fpgastream_release(struct fpgastream *h, uint64_t count)
{
	uint64_t c = count;

	if (!h)
		return -EINVAL;
	if (count == 0)
		return 0;
	if (ioctl(h->fd, FPGASTREAM_IOC_RELEASE, &c) < 0) {
		if (errno == EINVAL)
			return fail(h, EINVAL, "release: %llu blocks is more than were received and not yet released",
				    (unsigned long long)count);
		return fail(h, errno, "release: %s", fpgastream_strerror(errno));
	}
	return 0;
}

API int fpgastream_stats(struct fpgastream *h, struct fpgastream_stats *st)
{
	if (!h)
		return -EINVAL;
	if (!st)
		return fail(h, EINVAL, "stats: NULL argument");
	if (ioctl(h->fd, FPGASTREAM_IOC_STATS, st) < 0)
		return fail(h, errno, "stats: %s", fpgastream_strerror(errno));
	return 0;
}

/* ---- sizes ---- */

API int fpgastream_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v = 0;
	unsigned int shift = 0;
	const char *p = s;

	if (!s || !out)
		return -EINVAL;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (ULLONG_MAX - (unsigned)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned)(*p - '0');
	}
	switch (*p) {
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	default: break;
	}
	if (shift && (*p == 'i' || *p == 'I') && (p[1] == 'B' || p[1] == 'b'))
		p += 2;
	else if (*p == 'B' || *p == 'b')
		p++;
	if (*p)
		return -EINVAL;
	if (shift && v > (ULLONG_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}
