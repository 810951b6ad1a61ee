// SPDX-License-Identifier: GPL-2.0-only
/*
 * fstr-bench - the measurements behind `make bench` (docs/performance.md),
 * each against what a user would pick instead, in the same guest.
 *
 *   fstr-bench map RUNS SIZE 2M|4K        fpgastream MAP + UNMAP, by phase
 *   fstr-bench vfio RUNS SIZE 2M|4K BDF   VFIO type1 MAP_DMA + UNMAP_DMA
 *   fstr-bench device-rate RUNS SECONDS BDF [BUFSIZE]  the bare board
 *   fstr-bench announce RUNS SECONDS      blocks/s announced by the driver
 *   fstr-bench write-loop RUNS FILE BYTES write() of a memory buffer to FILE
 *   fstr-bench capture RUNS FILE BYTES    `fpgastream capture -o FILE`, timed
 *
 * Every run prints one line "BENCH key value..." that bench/run.sh collects
 * from the console; everything else is commentary for a human.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/vfio.h>

#include <fpgastream.h>

#define BLOCK_SIZE	(64u * 1024)
#define HPAGE_SIZE	(2u << 20)
/*
 * The driver's timing of the current MAP (map_pin_ns, map_dma_ns,
 * map_lut_ns) is in debugfs; modules from before that move had it in
 * sysfs, which `map` still reads for them (bench/ab.sh loads old modules).
 */
#define DEBUGFS_MNT	"/sys/kernel/debug"
#define DEBUGFS_DEV	DEBUGFS_MNT "/fpgastream/fpgastream0"
#define SYSFS_DEV	"/sys/class/fpgastream/fpgastream0"
#ifndef DEBUGFS_MAGIC
#define DEBUGFS_MAGIC	0x64626720
#endif

/* Datasheet section 3 and 4. */
#define REG_CTRL		0x014
#define REG_STATUS		0x018
#define REG_RING_SIZE		0x01c
#define REG_WR_COUNT		0x020
#define REG_EMU_RATE		0x1000
#define REG_EMU_HOLDS		0x1014
#define CTRL_ENABLE		(1u << 0)
#define CTRL_SOFT_RESET		(1u << 1)
#define STATUS_IDLE		(1u << 1)
#define STATUS_FAULTS		(3u << 9)
#define LUT_VALID		1ull
#define PCI_COMMAND		4
#define PCI_COMMAND_MEMORY	(1u << 1)
#define PCI_COMMAND_MASTER	(1u << 2)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fstr-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t parse_size(const char *s)
{
	uint64_t v;

	if (fpgastream_parse_size(s, &v) || !v)
		die("bad size '%s'", s);
	return v;
}

static unsigned int parse_runs(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end || v == 0 || v > 100)
		die("RUNS must be 1..100, not '%s'", s);
	return v;
}

static unsigned int page_flags(const char *s)
{
	if (!strcmp(s, "2M"))
		return FPGASTREAM_ALLOC_STRICT;
	if (!strcmp(s, "4K"))
		return FPGASTREAM_ALLOC_4K | FPGASTREAM_ALLOC_STRICT;
	die("page size must be 2M or 4K, not '%s'", s);
}

static uint64_t read_u64(const char *path)
{
	char v[64] = "";
	FILE *f = fopen(path, "r");

	if (!f)
		die("%s: %s", path, strerror(errno));
	if (!fgets(v, sizeof(v), f))
		v[0] = 0;
	fclose(f);
	return strtoull(v, NULL, 10);
}

/* The directory with the board's map_*_ns files, or die saying why not. */
static const char *map_phases_dir(void)
{
	struct statfs sf;
	bool debugfs = !statfs(DEBUGFS_MNT, &sf) && sf.f_type == DEBUGFS_MAGIC;
	int err = 0;

	if (debugfs) {
		if (!access(DEBUGFS_DEV "/map_pin_ns", R_OK))
			return DEBUGFS_DEV;
		err = errno;
	}
	if (!access(SYSFS_DEV "/map_pin_ns", R_OK))
		return SYSFS_DEV;	/* a module from before the move */
	if (!debugfs)
		die("debugfs is not mounted on " DEBUGFS_MNT ", where the driver's MAP timing is (mount -t debugfs none " DEBUGFS_MNT ")");
	die(DEBUGFS_DEV "/map_pin_ns: %s (a module without its MAP timing?)", strerror(err));
}

static uint64_t read_ns(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return read_u64(path);
}

static void alloc_buffer(struct fpgastream_buffer *buf, uint64_t size, const char *pages)
{
	int err = fpgastream_buffer_alloc(buf, size, page_flags(pages));

	if (err)
		die("cannot allocate %" PRIu64 " bytes of %s pages: %s (reserve hugepages?)",
		    size, pages, strerror(-err));
	/* Fault in every page, as the peers see it too. */
	for (size_t off = 0; off < buf->length; off += 4096)
		((volatile char *)buf->base)[off] = 0;
}

static struct fpgastream *open_board(void)
{
	struct fpgastream *h;
	int err = fpgastream_open(0, &h);

	if (err)
		die("cannot open fpgastream0: %s", strerror(-err));
	return h;
}

/* ---- P1: fpgastream MAP + UNMAP ---- */

static int cmd_map(int argc, char **argv)
{
	struct fpgastream_buffer buf;
	struct fpgastream *h;
	const char *phases;
	unsigned int runs;
	uint64_t size;

	if (argc != 4)
		die("usage: map RUNS SIZE 2M|4K");
	runs = parse_runs(argv[1]);
	size = parse_size(argv[2]);
	h = open_board();
	phases = map_phases_dir();
	alloc_buffer(&buf, size, argv[3]);
	/* A first MAP outside the measurement: page tables, allocator caches. */
	if (fpgastream_map(h, buf.base, buf.length, 0, NULL))
		die("map: %s", fpgastream_last_error(h));
	fpgastream_unmap(h);
	for (unsigned int r = 0; r < runs; r++) {
		double t0 = now_s(), t1, t2;
		double pin, dma, lut;

		if (fpgastream_map(h, buf.base, buf.length, 0, NULL))
			die("map: %s", fpgastream_last_error(h));
		t1 = now_s();
		pin = read_ns(phases, "map_pin_ns") / 1e6;
		dma = read_ns(phases, "map_dma_ns") / 1e6;
		lut = read_ns(phases, "map_lut_ns") / 1e6;
		t2 = now_s();
		if (fpgastream_unmap(h))
			die("unmap: %s", fpgastream_last_error(h));
		printf("BENCH map_%s total_ms %.3f map_ms %.3f pin_ms %.3f dma_ms %.3f lut_ms %.3f unmap_ms %.3f\n",
		       argv[3], (t1 - t0 + now_s() - t2) * 1e3, (t1 - t0) * 1e3,
		       pin, dma, lut, (now_s() - t2) * 1e3);
		fflush(stdout);
	}
	fpgastream_buffer_free(&buf);
	fpgastream_close(h);
	return 0;
}

/* ---- P1 peer: VFIO type1 ---- */

static int cmd_vfio(int argc, char **argv)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct fpgastream_buffer buf;
	char path[PATH_MAX], link[PATH_MAX];
	const char *group;
	unsigned int runs;
	uint64_t size;
	int container, gfd;
	ssize_t n;

	if (argc != 5)
		die("usage: vfio RUNS SIZE 2M|4K BDF (bound to vfio-pci)");
	runs = parse_runs(argv[1]);
	size = parse_size(argv[2]);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", argv[4]);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		die("%s: %s (VFIO type1 needs an IOMMU)", path, strerror(errno));
	link[n] = 0;
	group = strrchr(link, '/') + 1;

	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		die("/dev/vfio/vfio: %s", strerror(errno));
	if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    !ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU))
		die("no VFIO type1 IOMMU");
	snprintf(path, sizeof(path), "/dev/vfio/%s", group);
	gfd = open(path, O_RDWR);
	if (gfd < 0)
		die("%s: %s", path, strerror(errno));
	if (ioctl(gfd, VFIO_GROUP_GET_STATUS, &gs) || !(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
		die("group %s is not viable: bind every device in it to vfio-pci", group);
	if (ioctl(gfd, VFIO_GROUP_SET_CONTAINER, &container))
		die("VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU))
		die("VFIO_SET_IOMMU: %s", strerror(errno));

	alloc_buffer(&buf, size, argv[3]);
	for (unsigned int r = 0; r <= runs; r++) {
		struct vfio_iommu_type1_dma_map map = {
			.argsz = sizeof(map),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uintptr_t)buf.base,
			.iova = 0,
			.size = buf.length,
		};
		struct vfio_iommu_type1_dma_unmap unmap = {
			.argsz = sizeof(unmap),
			.iova = 0,
			.size = buf.length,
		};
		double t0 = now_s(), t1, t2;

		if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map))
			die("VFIO_IOMMU_MAP_DMA: %s", strerror(errno));
		t1 = now_s();
		if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) || unmap.size != buf.length)
			die("VFIO_IOMMU_UNMAP_DMA: %s", strerror(errno));
		t2 = now_s();
		/* Run 0 warms up, as for fpgastream. */
		if (r)
			printf("BENCH vfio_%s total_ms %.3f map_ms %.3f unmap_ms %.3f\n", argv[3],
			       (t2 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3);
		fflush(stdout);
	}
	fpgastream_buffer_free(&buf);
	close(gfd);
	close(container);
	return 0;
}

/* ---- P2 peer: the bare board through resource0 ---- */

struct bare {
	volatile uint8_t *bar0, *bar2;
	int cfg;
	uint16_t cmd;
};

static volatile uint8_t *map_resource(const char *bdf, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, name);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0 || fstat(fd, &st))
		die("%s: %s", path, strerror(errno));
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		die("mmap %s: %s", path, strerror(errno));
	return p;
}

static uint32_t rd32(struct bare *b, uint32_t off)
{
	uint32_t v;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	v = *(volatile uint32_t *)(b->bar0 + off);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return v;
}

static void wr32(struct bare *b, uint32_t off, uint32_t v)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*(volatile uint32_t *)(b->bar0 + off) = v;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void bare_stop(struct bare *b)
{
	double t0 = now_s();

	wr32(b, REG_CTRL, 0);
	while (!(rd32(b, REG_STATUS) & STATUS_IDLE) && now_s() - t0 < 2)
		sleep_s(1e-4);
	if (!(rd32(b, REG_STATUS) & STATUS_IDLE))
		die("the board does not go idle");
}

static uint64_t phys_of(int pagemap, const void *va)
{
	uint64_t e;

	if (pread(pagemap, &e, sizeof(e), (uintptr_t)va / 4096 * sizeof(e)) != sizeof(e) ||
	    !(e >> 63) || !(e & ((1ull << 55) - 1)))
		die("no physical address for %p (root, no IOMMU?)", va);
	return (e & ((1ull << 55) - 1)) * 4096;
}

/*
 * The board at rate 0 in overwrite mode, with nobody consuming: the fastest
 * it can write blocks in this guest.  Needs the board unbound and no IOMMU
 * (bus addresses are physical addresses from pagemap).
 */
static int cmd_device_rate(int argc, char **argv)
{
	unsigned int nblk = (256u << 20) / BLOCK_SIZE;
	struct fpgastream_buffer buf;
	struct bare b;
	unsigned int runs;
	uint32_t saved_rate;
	double secs;
	char path[PATH_MAX];
	int pagemap;

	if (argc != 4 && argc != 5)
		die("usage: device-rate RUNS SECONDS BDF [BUFSIZE] (unbound)");
	runs = parse_runs(argv[1]);
	secs = atof(argv[2]);
	/* The same ring as the driver gets in `announce`: same memory traffic. */
	if (argc == 5)
		nblk = parse_size(argv[4]) / BLOCK_SIZE;
	if (!nblk || nblk > 65536)
		die("BUFSIZE: 64K to 4G");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", argv[3]);
	if (!access(path, F_OK))
		die("%s is bound to a driver: unbind it first", argv[3]);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", argv[3]);
	b.cfg = open(path, O_RDWR);
	if (b.cfg < 0 || pread(b.cfg, &b.cmd, 2, PCI_COMMAND) != 2)
		die("%s: %s", path, strerror(errno));
	{
		uint16_t cmd = b.cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;

		if (pwrite(b.cfg, &cmd, 2, PCI_COMMAND) != 2)
			die("enable bus mastering: %s", strerror(errno));
	}
	b.bar0 = map_resource(argv[3], "resource0");
	b.bar2 = map_resource(argv[3], "resource2");

	alloc_buffer(&buf, (uint64_t)nblk * BLOCK_SIZE, "2M");
	if (mlock(buf.base, buf.length))
		die("mlock: %s", strerror(errno));
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap < 0)
		die("/proc/self/pagemap: %s", strerror(errno));
	bare_stop(&b);
	for (unsigned int i = 0; i < nblk; i++) {
		uint8_t *va = (uint8_t *)buf.base + (size_t)i * BLOCK_SIZE;

		*(volatile uint64_t *)(b.bar2 + 8ull * i) = phys_of(pagemap, va) | LUT_VALID;
	}
	wr32(&b, REG_RING_SIZE, nblk);
	saved_rate = rd32(&b, REG_EMU_RATE);
	wr32(&b, REG_EMU_RATE, 0);

	for (unsigned int r = 0; r < runs; r++) {
		uint32_t w0, w1;
		double t0, t1;

		wr32(&b, REG_CTRL, CTRL_SOFT_RESET);
		wr32(&b, REG_CTRL, CTRL_ENABLE);	/* overwrite, no interrupt */
		sleep_s(0.1);
		w0 = rd32(&b, REG_WR_COUNT);
		t0 = now_s();
		sleep_s(secs);
		w1 = rd32(&b, REG_WR_COUNT);
		t1 = now_s();
		if (rd32(&b, REG_STATUS) & STATUS_FAULTS)
			die("the board faulted: STATUS %#x", rd32(&b, REG_STATUS));
		bare_stop(&b);
		printf("BENCH device blocks_per_s %.0f\n", (w1 - w0) / (t1 - t0));
		fflush(stdout);
	}
	wr32(&b, REG_EMU_RATE, saved_rate);
	wr32(&b, REG_RING_SIZE, 0);
	for (unsigned int i = 0; i < nblk; i++)
		*(volatile uint64_t *)(b.bar2 + 8ull * i) = 0;
	if (pwrite(b.cfg, &b.cmd, 2, PCI_COMMAND) != 2)
		die("restore PCI_COMMAND: %s", strerror(errno));
	close(pagemap);
	fpgastream_buffer_free(&buf);
	return 0;
}

/* ---- P2: blocks announced by the driver ---- */

/* This board's interrupts so far, summed over CPUs, from /proc/interrupts. */
static uint64_t board_interrupts(void)
{
	char line[1024];
	uint64_t total = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p, *end;

		if (!strstr(line, "fpgastream0"))
			continue;
		p = strchr(line, ':');
		if (!p)
			continue;
		for (p++;; p = end) {
			uint64_t v = strtoull(p, &end, 10);

			if (end == p)
				break;
			total += v;
		}
	}
	fclose(f);
	return total;
}

/*
 * The bound board's BAR0 through resource0, to read the reference device's
 * test block (EMU_HOLDS) next to the driver; no register the driver uses.
 */
static struct bare board_bar0(void)
{
	char link[PATH_MAX];
	struct bare b = { .cfg = -1 };
	ssize_t n = readlink(SYSFS_DEV "/device", link, sizeof(link) - 1);

	if (n <= 0)
		die(SYSFS_DEV "/device: %s", strerror(errno));
	link[n] = '\0';
	b.bar0 = map_resource(strrchr(link, '/') ? strrchr(link, '/') + 1 : link, "resource0");
	return b;
}

/* Busy and total jiffies of all CPUs so far, from /proc/stat. */
static void cpu_jiffies(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4];	/* not idle, not iowait */
	}
	fclose(f);
}

/*
 * One wait for up to 1024 records: each must come in sequence (@next), its
 * losses add to @lost, then all are released.  Returns the number taken.
 */
static int take_batch(struct fpgastream *h, struct fpgastream_record *recs,
		      uint64_t *next, uint64_t *lost)
{
	int n = fpgastream_wait(h, recs, 1024, 100);

	if (n < 0 && n != -EINTR)
		die("wait: %s", fpgastream_last_error(h));
	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		*lost += recs[i].lost;
		if (recs[i].seq != *next)
			die("sequence %" PRIu64 " where %" PRIu64 " was due", recs[i].seq, *next);
		(*next)++;
	}
	if (fpgastream_release(h, n))
		die("release: %s", fpgastream_last_error(h));
	return n;
}

static int cmd_announce(int argc, char **argv)
{
	static struct fpgastream_record recs[1024];
	struct fpgastream_buffer buf;
	struct fpgastream *h;
	struct bare bar0;
	unsigned int runs, coal = 64, coal_us = 1000;
	uint64_t size = 256ull << 20;
	double secs;

	if (argc < 3 || argc > 6)
		die("usage: announce RUNS SECONDS [BUFSIZE [COALESCE [COALESCE_USEC]]]");
	runs = parse_runs(argv[1]);
	secs = atof(argv[2]);
	if (argc > 3)
		size = parse_size(argv[3]);
	if (argc > 4)
		coal = strtoul(argv[4], NULL, 10);
	if (argc > 5)
		coal_us = strtoul(argv[5], NULL, 10);
	h = open_board();
	bar0 = board_bar0();
	alloc_buffer(&buf, size, "2M");
	if (fpgastream_map(h, buf.base, buf.length, 0, NULL))
		die("map: %s", fpgastream_last_error(h));
	for (unsigned int r = 0; r < runs; r++) {
		struct fpgastream_stats s0, s1;
		uint32_t holds0, holds1;
		uint64_t blocks = 0, lost = 0, waits = 0, irq0, irq1, next = 0;
		uint64_t busy0, busy1, total0, total1;
		double t0, dt;
		int n;

		if (fpgastream_start(h, FPGASTREAM_START_FLOW_CONTROL, coal, coal_us))
			die("start: %s", fpgastream_last_error(h));
		/*
		 * Steady state only, as device-rate measures the bare board
		 * after 0.1 s: the first batch needs a whole coalescing count.
		 */
		for (t0 = now_s(); now_s() - t0 < 0.1; )
			take_batch(h, recs, &next, &lost);
		fpgastream_stats(h, &s0);
		irq0 = board_interrupts();
		cpu_jiffies(&busy0, &total0);
		holds0 = rd32(&bar0, REG_EMU_HOLDS);
		t0 = now_s();
		while ((dt = now_s() - t0) < secs) {
			n = take_batch(h, recs, &next, &lost);
			waits += n > 0;
			blocks += n;
		}
		holds1 = rd32(&bar0, REG_EMU_HOLDS);
		irq1 = board_interrupts();
		cpu_jiffies(&busy1, &total1);
		fpgastream_stats(h, &s1);
		fpgastream_stop(h);
		while ((n = fpgastream_wait(h, recs, 1024, 100)) > 0)
			fpgastream_release(h, n);
		{
			uint64_t reads = s1.read_calls - s0.read_calls;
			uint64_t ann = s1.blocks_announced - s0.blocks_announced;

			/* Guest CPU time (all vCPUs) per block, from USER_HZ jiffies. */
			double cpu_us = blocks ? (busy1 - busy0) * 1e6 /
					 sysconf(_SC_CLK_TCK) / blocks : 0;

			printf("BENCH announce blocks_per_s %.0f records_per_read %.2f irq_per_block %.4f reads_per_block %.4f cpu_us_per_block %.2f cpu_busy %.3f lost %" PRIu64 " dropped %" PRIu64 " waits %" PRIu64 " driver_irqs %" PRIu64 " board_holds %" PRIu32 "\n",
			       blocks / dt, reads ? (double)ann / reads : 0,
			       ann ? (double)(irq1 - irq0) / ann : 0,
			       ann ? (double)reads / ann : 0, cpu_us,
			       total1 > total0 ? (double)(busy1 - busy0) / (total1 - total0) : 0,
			       lost,
			       (uint64_t)(s1.blocks_dropped - s0.blocks_dropped), waits,
			       (uint64_t)(s1.interrupts - s0.interrupts), holds1 - holds0);
			fflush(stdout);
		}
	}
	fpgastream_unmap(h);
	fpgastream_buffer_free(&buf);
	fpgastream_close(h);
	return 0;
}

/* ---- P3: capture into tmpfs, and its peer ---- */

/*
 * The peer: write() the same bytes from a preallocated, pre-faulted memory
 * buffer to FILE, in 1 MiB writes, like `dd bs=1M` from memory.  The buffer
 * (64 MiB, reused) is ordinary memory: the data is already there.
 */
static int cmd_write_loop(int argc, char **argv)
{
	const size_t chunk = 1u << 20, bufsize = 64u << 20;
	unsigned int runs;
	uint64_t bytes;
	char *mem;

	if (argc != 4)
		die("usage: write-loop RUNS FILE BYTES");
	runs = parse_runs(argv[1]);
	bytes = parse_size(argv[3]);
	mem = mmap(NULL, bufsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	memset(mem, 0x5a, bufsize);
	for (unsigned int r = 0; r < runs; r++) {
		uint64_t done = 0;
		double t0;
		int fd;

		unlink(argv[2]);
		t0 = now_s();
		fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("%s: %s", argv[2], strerror(errno));
		while (done < bytes) {
			size_t n = bytes - done < chunk ? bytes - done : chunk;
			ssize_t w = write(fd, mem + done % bufsize, n);

			if (w <= 0)
				die("write %s: %s", argv[2], strerror(errno));
			done += w;
		}
		close(fd);
		printf("BENCH write_loop mib_per_s %.1f seconds %.3f\n",
		       bytes / (now_s() - t0) / (1 << 20), now_s() - t0);
		fflush(stdout);
		unlink(argv[2]);
	}
	munmap(mem, bufsize);
	return 0;
}

/*
 * `fpgastream capture -q -s BYTES -o FILE`.  Two times: the tool's own, from
 * START to the last write (what the peer's open-to-close compares with: both
 * leave out setting up their memory), and from exec to exit, setup included.
 */
static int cmd_capture(int argc, char **argv)
{
	unsigned int runs;
	uint64_t bytes;

	if (argc < 4)
		die("usage: capture RUNS FILE BYTES [CAPTURE OPTIONS]");
	runs = parse_runs(argv[1]);
	bytes = parse_size(argv[3]);
	for (unsigned int r = 0; r < runs; r++) {
		char size[32], msg[4096] = "";
		char *args[32] = { "fpgastream", "capture", "-q", "-s", size,
				   "-o", argv[2] };
		int nargs = 7, status, pfd[2];
		double t0, dt, stream_s = 0;
		size_t len = 0;
		ssize_t n;
		struct stat st;
		const char *p;
		pid_t pid;

		for (int i = 4; i < argc && nargs < 31; i++)
			args[nargs++] = argv[i];
		args[nargs] = NULL;
		snprintf(size, sizeof(size), "%" PRIu64, bytes);
		unlink(argv[2]);
		if (pipe(pfd))
			die("pipe: %s", strerror(errno));
		t0 = now_s();
		pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			dup2(pfd[1], STDERR_FILENO);
			close(pfd[0]);
			close(pfd[1]);
			execvp(args[0], args);
			_exit(127);
		}
		close(pfd[1]);
		while (len < sizeof(msg) - 1 &&
		       (n = read(pfd[0], msg + len, sizeof(msg) - 1 - len)) > 0)
			len += n;
		msg[len] = 0;
		close(pfd[0]);
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			die("fpgastream capture failed (status %#x): %s", status, msg);
		dt = now_s() - t0;
		fputs(msg, stdout);
		p = strstr(msg, ") in ");
		if (!p || sscanf(p, ") in %lf s", &stream_s) != 1 || stream_s <= 0)
			die("no time in the capture summary: %s", msg);
		if (stat(argv[2], &st) || (uint64_t)st.st_size != bytes)
			die("%s: not %" PRIu64 " bytes", argv[2], bytes);
		printf("BENCH capture mib_per_s %.1f seconds %.3f exec_mib_per_s %.1f exec_seconds %.3f\n",
		       bytes / stream_s / (1 << 20), stream_s, bytes / dt / (1 << 20), dt);
		fflush(stdout);
		unlink(argv[2]);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "map", cmd_map }, { "vfio", cmd_vfio },
		{ "device-rate", cmd_device_rate }, { "announce", cmd_announce },
		{ "write-loop", cmd_write_loop }, { "capture", cmd_capture },
	};

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		puts("usage: fstr-bench map|vfio|device-rate|announce|write-loop|capture ARGS\n"
		     "The measurements of `make bench`; see bench/README.md.");
		return argc < 2;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	die("unknown command '%s' (--help)", argv[1]);
}
