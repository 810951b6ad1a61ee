// SPDX-License-Identifier: GPL-2.0-only
/*
 * VM selftests of the fpgastream kernel module against the reference device
 * (QEMU "fstr", 1234:f5a0).  They check the user ABI of
 * include/uapi/fpgastream.h as the contract (docs: shared spec uapi.md)
 * states it: contents of every reply, exact errnos, the data the board wrote,
 * and that every pin and every byte of locked-memory charge comes back.
 *
 * The device's test block (BAR0 0x1000..) is driven through the PCI sysfs
 * file resource0, which the VM allows while the driver is bound
 * (iomem=relaxed).  See README.md in this directory for what each fixture
 * needs and how to run a subset (-f FIXTURE, -t TEST, -v VARIANT, -l).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/fpgastream.h"
#include "fstr_vm.h"

/*
 * The 6.1 harness is written for -Wall, not -Wextra: its timeout handler has
 * an unused parameter, and its EXPECT_EQ(constant, unsigned field) compares
 * int with unsigned by design.  Silence exactly those two for this file.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "fstr_harness.h"
#pragma GCC diagnostic ignored "-Wsign-compare"

#define BLOCK		65536ULL
#define HUGE_2M		(2ULL << 20)
#define WORDS		(BLOCK / 8)
#define PCI_VENDOR	0x1234
#define PCI_DEVICE	0xf5a0
#define MODULE_NAME	"fpgastream"
#define DEFAULT_KO	"/lib/modules/fpgastream.ko"

/* BAR0 registers beyond those of fstr_vm.h (datasheet sections 3 and 4). */
#define R_VERSION	0x004
#define R_LUT_CAP	0x008
#define R_BLOCK_SHIFT	0x00c
#define R_DROP_COUNT	0x028

/* Seconds.  TCG is slow: streaming tests get room, none of them time data. */
#define T_SHORT		60
#define T_STREAM	300
#define T_HUGE		900

/* A SKIP in FIXTURE_SETUP must not fall through to the test body (the 6.1
 * harness would run it): report it and leave the test child at once. */
#define SETUP_SKIP(fmt, ...) \
	SKIP({ fflush(NULL); _exit(255); }, fmt, ##__VA_ARGS__)

/* ---------------------------------------------------------------- helpers */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * Index of the first word of the block at @w that does not match the
 * reference pattern for source sequence @s, or -1 when all match.  @full
 * false checks words 0, 1, 2 and the last one only (for the 2 GiB ring).
 */
static long bad_word(const uint64_t *w, uint64_t s, uint64_t seed, bool full)
{
	uint64_t i;

	if (w[0] != s)
		return 0;
	if (w[1] != ~s)
		return 1;
	if (!full) {
		if (w[2] != splitmix64(seed ^ (s << 13) ^ 2))
			return 2;
		if (w[WORDS - 1] != splitmix64(seed ^ (s << 13) ^ (WORDS - 1)))
			return WORDS - 1;
		return -1;
	}
	for (i = 2; i < WORDS; i++)
		if (w[i] != splitmix64(seed ^ (s << 13) ^ i))
			return i;
	return -1;
}

static bool cmdline_has(const char *word)
{
	char buf[4096];

	if (fv_read_text("/proc/cmdline", buf, sizeof(buf)))
		return false;
	return strstr(buf, word) != NULL;
}

/* Physical address of @p (root reads PFNs from pagemap); ~0 if not present. */
static uint64_t phys_of(const void *p)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return ~0ULL;
	if (pread(fd, &ent, 8, ((uintptr_t)p / 4096) * 8) != 8)
		ent = 0;
	close(fd);
	if (!(ent >> 63) || !(ent & ((1ULL << 55) - 1)))
		return ~0ULL;
	return (ent & ((1ULL << 55) - 1)) * 4096 + ((uintptr_t)p & 4095);
}

/* Highest physical byte address + 1 behind [p, p+len), page by page. */
static uint64_t phys_top(const uint8_t *p, size_t len, size_t step)
{
	uint64_t top = 0, a;
	size_t off;

	for (off = 0; off < len; off += step) {
		a = phys_of(p + off);
		if (a == ~0ULL)
			return ~0ULL;
		if (a + step > top)
			top = a + step;
	}
	return top;
}

/* ------------------------------------------------------------ the device */

struct dev {
	char bdf[32];
	char node[96];
	char driver[64];
	volatile uint32_t *bar0;
	struct fpgastream_info info;
	bool translated;	/* IOMMU group with a DMA (translating) domain */
	bool swiotlb;		/* swiotlb=force on the kernel command line */
	bool dma32;		/* board emits 32-bit addresses, no IOMMU */
	uint32_t seed;
};

static uint32_t reg_rd(struct dev *d, unsigned int off)
{
	return d->bar0[off / 4];
}

static void reg_wr(struct dev *d, unsigned int off, uint32_t v)
{
	d->bar0[off / 4] = v;
	(void)d->bar0[R_ID / 4];	/* flush the posted write */
}

/* Is the device behind an IOMMU that translates (not identity/passthrough)? */
static bool iommu_translates(const char *bdf)
{
	char path[PATH_MAX], link[PATH_MAX], type[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%s/type",
		 strrchr(link, '/') + 1);
	if (fv_read_text(path, type, sizeof(type)))
		return true;	/* a group without a type file: old kernels translate */
	return !strncmp(type, "DMA", 3);
}

/*
 * Find the board, map BAR0 for the test block and put the data source in a
 * known state: the test block is not reset by SOFT_RESET, so a previous test
 * may have left a rate, a burst or an injection behind.
 * Returns NULL or a reason to skip.
 */
static const char *dev_setup(struct __test_metadata *_metadata, struct dev *d)
{
	char path[PATH_MAX];
	int fd;

	memset(d, 0, sizeof(*d));
	if (fv_find_bdf(d->bdf, sizeof(d->bdf)))
		return "no FSTR board (PCI 1234:f5a0) in this machine";
	if (!fv_exists("/sys/module/" MODULE_NAME))
		return "the fpgastream module is not loaded";
	fv_driver_name(d->bdf, d->driver, sizeof(d->driver));
	ASSERT_STREQ(MODULE_NAME, d->driver) {
		TH_LOG("board %s is not bound to the module", d->bdf);
	}
	ASSERT_EQ(0, fv_find_node(d->bdf, d->node, sizeof(d->node))) {
		TH_LOG("no /dev/fpgastream<N> for %s", d->bdf);
	}

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", d->bdf);
	fd = open(path, O_RDWR | O_SYNC);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", path, strerror(errno));
	d->bar0 = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	ASSERT_NE(MAP_FAILED, d->bar0) {
		TH_LOG("mmap resource0: %s (is the VM booted with iomem=relaxed?)",
		       strerror(errno));
	}
	ASSERT_EQ(ID_FSTR, reg_rd(d, R_ID));

	d->translated = iommu_translates(d->bdf);
	d->swiotlb = cmdline_has("swiotlb=force");
	d->dma32 = !d->translated && reg_rd(d, R_DMA_BITS) < 64;
	d->seed = 0x5eed0000u ^ (uint32_t)getpid();
	reg_wr(d, R_EMU_RATE, 0);
	reg_wr(d, R_EMU_SEED, d->seed);
	reg_wr(d, R_EMU_BURST, 0);
	reg_wr(d, R_EMU_INJECT, 0);
	reg_wr(d, R_EMU_FIFO, 16);
	return NULL;
}

static void dev_teardown(struct dev *d)
{
	if (!d->bar0)
		return;
	reg_wr(d, R_EMU_RATE, 0);
	reg_wr(d, R_EMU_BURST, 0);
	reg_wr(d, R_EMU_INJECT, 0);
	reg_wr(d, R_EMU_FIFO, 16);
	munmap((void *)d->bar0, 0x2000);
	d->bar0 = NULL;
}

static int dev_open(struct dev *d, int flags)
{
	return open(d->node, O_RDWR | O_CLOEXEC | flags);
}

static const char *config_name(struct dev *d)
{
	if (d->translated)
		return "iommu";
	if (d->swiotlb)
		return "swiotlb";
	if (d->dma32)
		return "dma32";
	return "plain";
}

/* ---------------------------------------------------------- ioctl wrappers */

static int do_map(int fd, const void *addr, uint64_t len, uint32_t flags,
		  struct fpgastream_map *out)
{
	struct fpgastream_map m = {
		.addr = (uintptr_t)addr, .length = len, .flags = flags,
	};
	int err = fv_ioc(fd, FPGASTREAM_IOC_MAP, &m);

	if (out)
		*out = m;
	return err;
}

static int do_start(int fd, uint32_t flags, uint32_t count, uint32_t usec)
{
	struct fpgastream_start s = {
		.flags = flags, .irq_coalesce_count = count,
		.irq_coalesce_usec = usec,
	};

	return fv_ioc(fd, FPGASTREAM_IOC_START, &s);
}

static int do_release(int fd, uint64_t n)
{
	return fv_ioc(fd, FPGASTREAM_IOC_RELEASE, &n);
}

static int do_stats(int fd, struct fpgastream_stats *st)
{
	memset(st, 0xff, sizeof(*st));
	return fv_ioc(fd, FPGASTREAM_IOC_STATS, st);
}


/* ------------------------------------------------------------ buffers */

struct buf {
	uint8_t *base;		/* what mmap returned */
	size_t base_len;
	uint8_t *p;		/* the part handed to MAP */
	size_t len;
};

/*
 * A hugetlb buffer (MAP_SHARED, so fork never copies pinned pages), poisoned
 * so that a block the board never wrote cannot pass verification.  Under
 * dma32 we prefer pages above 4 GiB when @want_high, to make the kernel bounce.
 */
static int huge_alloc(struct buf *b, size_t len, bool want_high)
{
	size_t pool = len, off;

	if (want_high)
		pool = len < (64ULL << 20) ? (64ULL << 20) : len;
	memset(b, 0, sizeof(*b));
	b->base = mmap(NULL, pool, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (b->base == MAP_FAILED && pool != len) {
		pool = len;
		b->base = mmap(NULL, pool, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	}
	if (b->base == MAP_FAILED) {
		b->base = NULL;
		return -errno;
	}
	b->base_len = pool;
	b->p = b->base;
	b->len = len;
	memset(b->base, 0x5a, pool);
	if (want_high && pool > len) {
		for (off = 0; off + len <= pool; off += HUGE_2M) {
			uint64_t lo = phys_of(b->base + off);
			uint64_t top = phys_top(b->base + off, len, HUGE_2M);

			if (lo != ~0ULL && lo >= (1ULL << 32) && top != ~0ULL) {
				b->p = b->base + off;
				break;
			}
		}
	}
	return 0;
}

static void buf_free(struct buf *b)
{
	if (b->base)
		munmap(b->base, b->base_len);
	memset(b, 0, sizeof(*b));
}

static long long huge_free_pages(void)
{
	return fv_proc_kb("/proc/meminfo", "HugePages_Free");
}

/* ------------------------------------------------------- record checking */

enum loss { LOSS_NONE, LOSS_OVERWRITE, LOSS_DROP };

struct checker {
	const uint8_t *buf;
	uint64_t nr_blocks, seed;
	enum loss loss;
	bool full;		/* verify all 8192 words of every block */
	uint64_t next_seq;	/* expected seq of the next record */
	uint64_t records;
	uint64_t lost;		/* sum of the records' lost */
	uint64_t lossy_records;
	uint64_t overrun_records;
	uint64_t t_start, last_ts;
};

static void checker_init(struct checker *c, struct dev *d, const struct buf *b,
			 uint64_t nr_blocks, enum loss loss)
{
	memset(c, 0, sizeof(*c));
	c->buf = b->p;
	c->nr_blocks = nr_blocks;
	c->seed = d->seed;
	c->loss = loss;
	c->full = true;
	c->t_start = fv_now_ns();
}

/*
 * Check one record against the stream so far and the block it names against
 * the pattern.  Source sequence s = seq + blocks dropped at the source so far;
 * an overwritten block keeps its seq, so there seq jumps by lost instead.
 */
static void check_record(struct __test_metadata *_metadata, struct checker *c,
			 const struct fpgastream_block *r)
{
	uint64_t s;
	long bad;

	if (c->loss == LOSS_OVERWRITE) {
		ASSERT_EQ(c->next_seq + r->lost, r->seq) {
			TH_LOG("record %ju: seq %ju, expected %ju + lost %ju",
			       (uintmax_t)c->records, (uintmax_t)r->seq,
			       (uintmax_t)c->next_seq, (uintmax_t)r->lost);
		}
	} else {
		ASSERT_EQ(c->next_seq, r->seq) {
			TH_LOG("record %ju: seq %ju, expected %ju", (uintmax_t)c->records,
			       (uintmax_t)r->seq, (uintmax_t)c->next_seq);
		}
	}
	if (c->loss == LOSS_NONE)
		ASSERT_EQ(0, r->lost) TH_LOG("seq %ju lost blocks", (uintmax_t)r->seq);
	ASSERT_EQ((r->seq % c->nr_blocks) * BLOCK, r->offset) {
		TH_LOG("seq %ju: offset %#jx", (uintmax_t)r->seq, (uintmax_t)r->offset);
	}
	ASSERT_EQ(BLOCK, r->length);
	if (r->lost == 0)
		ASSERT_EQ(0, r->flags) TH_LOG("seq %ju: flags %#x without loss",
					      (uintmax_t)r->seq, r->flags);
	if (c->loss == LOSS_OVERWRITE && r->lost)
		ASSERT_EQ(FPGASTREAM_BLOCK_OVERRUN, r->flags) {
			TH_LOG("seq %ju lost %ju overwritten blocks without OVERRUN",
			       (uintmax_t)r->seq, (uintmax_t)r->lost);
		}
	ASSERT_LE(c->last_ts, r->timestamp_ns) {
		TH_LOG("seq %ju: timestamp goes back", (uintmax_t)r->seq);
	}
	ASSERT_LE(c->t_start, r->timestamp_ns) {
		TH_LOG("seq %ju: timestamp %ju before START (%ju): not CLOCK_MONOTONIC?",
		       (uintmax_t)r->seq, (uintmax_t)r->timestamp_ns,
		       (uintmax_t)c->t_start);
	}
	ASSERT_GE(fv_now_ns(), r->timestamp_ns);

	c->lost += r->lost;
	if (r->lost)
		c->lossy_records++;
	if (r->flags & FPGASTREAM_BLOCK_OVERRUN)
		c->overrun_records++;
	s = c->loss == LOSS_DROP ? r->seq + c->lost : r->seq;
	bad = bad_word((const uint64_t *)(c->buf + r->offset), s, c->seed, c->full);
	ASSERT_EQ(-1, bad) {
		const uint64_t *w = (const uint64_t *)(c->buf + r->offset);

		TH_LOG("seq %ju (s %ju) at offset %#jx: word %ld is %#jx (word0 %#jx)",
		       (uintmax_t)r->seq, (uintmax_t)s, (uintmax_t)r->offset,
		       bad, (uintmax_t)w[bad], (uintmax_t)w[0]);
	}
	c->last_ts = r->timestamp_ns;
	c->next_seq = r->seq + 1;
	c->records++;
}

/*
 * One read() of up to @max records (waiting up to @wait_ms), each checked,
 * then all released.  Returns what the read returned: the number of
 * records, 0 at the end of the stream, or -errno.
 */
static long take_checked(struct __test_metadata *_metadata, int fd,
			 struct checker *c, size_t max, int wait_ms)
{
	struct fpgastream_block recs[1024];
	long n, i;

	if (max > 1024)
		max = 1024;
	n = fv_records(fd, recs, max, wait_ms);
	for (i = 0; i < n; i++) {
		if (recs[i].lost)
			ksft_print_msg("seq %ju: lost %ju flags %#x\n", (uintmax_t)recs[i].seq,
				       (uintmax_t)recs[i].lost, recs[i].flags);
		check_record(_metadata, c, &recs[i]);
	}
	if (n > 0)
		ASSERT_EQ(0, do_release(fd, n));
	return n;
}

/*
 * Consume records until @want have been seen in total, checking each and
 * releasing each batch after checking it.  Returns the number of read()s.
 */
static uint64_t consume(struct __test_metadata *_metadata, int fd,
			struct checker *c, uint64_t want, size_t batch)
{
	uint64_t reads = 0;
	long n;

	if (batch > 256)
		batch = 256;
	while (c->records < want) {
		n = take_checked(_metadata, fd, c, batch, WAIT_MS);
		ASSERT_LT(0, n) {
			TH_LOG("after %ju of %ju records: %s", (uintmax_t)c->records,
			       (uintmax_t)want, n == 0 ? "end of stream" : strerror(-n));
		}
		reads++;
	}
	return reads;
}

/* Wait until WR_COUNT reaches @n (the board completed @n blocks). */
static bool wait_wr_count(struct dev *d, uint32_t n)
{
	uint64_t end = fv_now_ns() + WAIT_MS * 1000000ULL;

	while (reg_rd(d, R_WR_COUNT) < n) {
		if (fv_now_ns() > end)
			return false;
		fv_sleep_ms(2);
	}
	return true;
}

/* read() after STOP and drain must be end of stream: 0, at once. */
#define ASSERT_EOF(fd) do { \
	struct fpgastream_block __r; \
	ASSERT_EQ(0, fv_records(fd, &__r, 1, WAIT_MS)) \
		TH_LOG("read after STOP and drain is not end of stream"); \
} while (0)

static bool dev_is_translated_info(const struct fpgastream_info *i)
{
	return i->flags & FPGASTREAM_INFO_IOMMU;
}

/* ============================================================ ioctl: ABI */

FIXTURE(ioctl) {
	struct dev d;
	int fd;
	struct buf b;		/* 4 MiB of hugepages */
};

FIXTURE_SETUP(ioctl)
{
	const char *why = dev_setup(_metadata, &self->d);

	if (why)
		SETUP_SKIP("%s", why);
	self->fd = dev_open(&self->d, 0);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", self->d.node, strerror(errno));
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_INFO, &self->d.info));
	ASSERT_EQ(0, huge_alloc(&self->b, 4 << 20, false)) {
		TH_LOG("4 MiB of 2 MiB hugepages: %s", strerror(errno));
	}
}

FIXTURE_TEARDOWN(ioctl)
{
	if (self->fd >= 0)
		close(self->fd);
	buf_free(&self->b);
	dev_teardown(&self->d);
}

TEST_F(ioctl, info_contents)
{
	struct fpgastream_info *i = &self->d.info, again;
	unsigned int k;
	char path[PATH_MAX];
	bool group;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", self->d.bdf);
	group = fv_exists(path);
	ksft_print_msg("board %s node %s config %s: hw %#x lut %u dma_bits %u flags %#x%s\n",
		       self->d.bdf, self->d.node, config_name(&self->d), i->hw_version,
		       i->lut_capacity, i->dma_addr_bits, i->flags,
		       group ? " (iommu_group)" : "");

	EXPECT_EQ(FPGASTREAM_ABI_VERSION, i->abi_version);
	EXPECT_EQ(1, i->abi_version);
	EXPECT_EQ(reg_rd(&self->d, R_VERSION), i->hw_version);
	EXPECT_EQ(0x00010000, i->hw_version);
	EXPECT_EQ(65536, i->block_size);
	EXPECT_EQ(1u << reg_rd(&self->d, R_BLOCK_SHIFT), i->block_size);
	EXPECT_EQ(reg_rd(&self->d, R_LUT_CAP), i->lut_capacity);
	EXPECT_EQ(reg_rd(&self->d, R_DMA_BITS), i->dma_addr_bits);
	EXPECT_EQ((uint64_t)i->lut_capacity * i->block_size, i->max_buffer_size);
	/* IOMMU iff the board sits in a translating IOMMU group. */
	EXPECT_EQ(group && self->d.translated, dev_is_translated_info(i));
	EXPECT_EQ(0, i->flags & ~FPGASTREAM_INFO_IOMMU);
	for (k = 0; k < 4; k++)
		EXPECT_EQ(0, i->reserved[k]);

	/* Stable, and a bad pointer is a fault, not a crash. */
	memset(&again, 0xa5, sizeof(again));
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_INFO, &again));
	EXPECT_EQ(0, memcmp(i, &again, sizeof(again)));
	EXPECT_EQ(-EFAULT, fv_ioc(self->fd, FPGASTREAM_IOC_INFO, NULL));
}

TEST_F(ioctl, map_einval)
{
	struct fpgastream_map m;
	uint8_t *p = self->b.p;
	struct fv_pins p0 = fv_pin_counts(), p1;
	long long lk0 = fv_locked_kb();

	EXPECT_EQ(-EINVAL, do_map(self->fd, p + 4096, BLOCK, 0, NULL))
		TH_LOG("addr not block aligned");
	EXPECT_EQ(-EINVAL, do_map(self->fd, p + BLOCK / 2, BLOCK, 0, NULL))
		TH_LOG("addr half a block off");
	EXPECT_EQ(-EINVAL, do_map(self->fd, p, BLOCK + 4096, 0, NULL))
		TH_LOG("length not a multiple of the block");
	EXPECT_EQ(-EINVAL, do_map(self->fd, p, 4096, 0, NULL))
		TH_LOG("length below a block");
	EXPECT_EQ(-EINVAL, do_map(self->fd, p, 0, 0, NULL)) TH_LOG("length 0");
	EXPECT_EQ(-EINVAL, do_map(self->fd, p, self->d.info.max_buffer_size + BLOCK, 0, NULL))
		TH_LOG("length > max_buffer_size");
	EXPECT_EQ(-EINVAL, do_map(self->fd, p, 1ULL << 62, 0, NULL))
		TH_LOG("absurd length");

	/* None of that left state, pins or charge behind. */
	p1 = fv_pin_counts();
	EXPECT_EQ(p1.acquired - p0.acquired, p1.released - p0.released);
	EXPECT_EQ(lk0, fv_locked_kb());
	ASSERT_EQ(0, do_map(self->fd, p, 4 << 20, 0, &m));
	EXPECT_EQ(64, m.nr_blocks);
}

TEST_F(ioctl, map_out_fields)
{
	struct fpgastream_map m;
	bool high;
	uint64_t top;

	ASSERT_EQ(0, do_map(self->fd, self->b.p, 4 << 20, 0, &m));
	top = phys_top(self->b.p, 4 << 20, HUGE_2M);
	high = top != ~0ULL && top > (1ULL << 32);
	ksft_print_msg("config %s: nr_blocks %u nr_segments %u mapped_flags %#x (phys top %#jx)\n",
		       config_name(&self->d), m.nr_blocks, m.nr_segments,
		       m.mapped_flags, (uintmax_t)top);
	EXPECT_EQ(64, m.nr_blocks);
	EXPECT_LE(1, m.nr_segments);
	EXPECT_GE(64, m.nr_segments);
	EXPECT_EQ((uintptr_t)self->b.p, m.addr);
	EXPECT_EQ(4 << 20, m.length);
	EXPECT_EQ(self->d.translated, !!(m.mapped_flags & FPGASTREAM_MAPPED_IOMMU));
	if (self->d.swiotlb && !self->d.translated) {
		EXPECT_TRUE(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED)
			TH_LOG("swiotlb=force bounces every mapping");
	} else if (self->d.dma32) {
		EXPECT_EQ(high, !!(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED))
			TH_LOG("dma32: BOUNCED iff a page is above 4 GiB");
	} else {
		EXPECT_EQ(0, m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED);
	}
	EXPECT_EQ(0, m.mapped_flags & ~(FPGASTREAM_MAPPED_IOMMU | FPGASTREAM_MAPPED_BOUNCED));
}

TEST_F(ioctl, map_ebusy)
{
	struct fpgastream_map m;
	struct fpgastream_info info;
	int fd2;

	ASSERT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, &m));
	/* Second MAP on the same file, even of other memory. */
	EXPECT_EQ(-EBUSY, do_map(self->fd, self->b.p, 2 << 20, 0, NULL));
	EXPECT_EQ(-EBUSY, do_map(self->fd, self->b.p + (2 << 20), 2 << 20, 0, NULL));

	/* A second file opens fine, reads INFO, but cannot MAP. */
	fd2 = dev_open(&self->d, 0);
	ASSERT_LE(0, fd2) TH_LOG("second open: %s", strerror(errno));
	ASSERT_EQ(0, fv_ioc(fd2, FPGASTREAM_IOC_INFO, &info));
	EXPECT_EQ(0, memcmp(&info, &self->d.info, sizeof(info)));
	EXPECT_EQ(-EBUSY, do_map(fd2, self->b.p + (2 << 20), 2 << 20, 0, NULL));

	/* After UNMAP the other file may map. */
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(0, do_map(fd2, self->b.p + (2 << 20), 2 << 20, 0, NULL));
	EXPECT_EQ(-EBUSY, do_map(self->fd, self->b.p, 2 << 20, 0, NULL));
	EXPECT_EQ(0, close(fd2));
	/* ...and closing it frees the device for the first again. */
	EXPECT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, NULL));
}

TEST_F(ioctl, map_efault)
{
	struct fv_pins p0 = fv_pin_counts(), p1;
	long long lk0 = fv_locked_kb();
	uint8_t *hole, *ro;

	/* A range with nothing mapped. */
	hole = mmap(NULL, 8 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hole);
	hole = (uint8_t *)(((uintptr_t)hole + (2 << 20) - 1) & ~((uintptr_t)(2 << 20) - 1));
	ASSERT_EQ(0, munmap(hole, 4 << 20));
	EXPECT_EQ(-EFAULT, do_map(self->fd, hole, 4 << 20, 0, NULL)) TH_LOG("unmapped");

	/* PROT_NONE memory is mapped but not accessible. */
	EXPECT_EQ(-EFAULT, do_map(self->fd, hole + (4 << 20), 1 << 20, 0, NULL))
		TH_LOG("PROT_NONE");

	/* Read-only hugepages: the board would write them. */
	ro = mmap(NULL, 2 << 20, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-EFAULT, do_map(self->fd, ro, 2 << 20, 0, NULL)) TH_LOG("read-only");
	munmap(ro, 2 << 20);

	/* Half mapped: the pages pinned before the hole must be unpinned. */
	ASSERT_EQ(0, munmap(self->b.p + (2 << 20), 2 << 20));
	EXPECT_EQ(-EFAULT, do_map(self->fd, self->b.p, 4 << 20, 0, NULL)) TH_LOG("half");

	p1 = fv_pin_counts();
	EXPECT_EQ(p1.acquired - p0.acquired, p1.released - p0.released)
		TH_LOG("failed MAPs leaked %lld pins",
		       (p1.acquired - p0.acquired) - (p1.released - p0.released));
	EXPECT_EQ(lk0, fv_locked_kb()) TH_LOG("failed MAPs left a locked-memory charge");
	/* The file is still free to map. */
	EXPECT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, NULL));
}

TEST_F(ioctl, map_enomem_memlock)
{
	int status, res[4] = { 1, 1, 1, 1 }, pfd[2];
	pid_t pid;

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* The fd is already open: the child keeps access to the node. */
		struct rlimit rl = { 2 << 20, 2 << 20 };
		long long lk0;

		close(pfd[0]);
		res[0] = setrlimit(RLIMIT_MEMLOCK, &rl) ? -errno : 0;
		res[1] = fv_drop_ipc_lock();
		lk0 = fv_locked_kb();
		/* 4 MiB over a 2 MiB limit: refused like mlock refuses. */
		res[2] = do_map(self->fd, self->b.p, 4 << 20, 0, NULL);
		/* 2 MiB is within the limit: the limit, not the cap, decided. */
		res[3] = do_map(self->fd, self->b.p, 2 << 20, 0, NULL);
		if (res[3] == 0 && fv_locked_kb() - lk0 != 2048)
			res[3] = -ERANGE;	/* mapped, but not charged */
		if (write(pfd[1], res, sizeof(res)) != sizeof(res))
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	ASSERT_EQ(sizeof(res), read(pfd[0], res, sizeof(res)));
	close(pfd[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, res[0]) TH_LOG("setrlimit: %s", strerror(-res[0]));
	ASSERT_EQ(0, res[1]) TH_LOG("capset: %s", strerror(-res[1]));
	EXPECT_EQ(-ENOMEM, res[2]) TH_LOG("MAP of 4 MiB with RLIMIT_MEMLOCK 2 MiB, no CAP_IPC_LOCK");
	EXPECT_EQ(0, res[3]) {
		TH_LOG("MAP of 2 MiB within RLIMIT_MEMLOCK 2 MiB: %s",
		       res[3] == -ERANGE ? "not charged to VmLck/VmPin" : strerror(-res[3]));
	}
}

/*
 * 4 KiB pages: a 64 KiB block is bus-contiguous only through an IOMMU.
 * Without one the contract says EINVAL plus a kernel message naming the fix;
 * swiotlb bounces page by page, so that holds for swiotlb and dma32 too.
 */
TEST_F_TIMEOUT(ioctl, map_small_pages, T_STREAM)
{
	size_t len = 4 << 20, off;
	uint8_t *raw, *p;
	struct fpgastream_map m;
	struct fv_pins p0, p1;
	bool scattered = false;
	int err, kmsg;

	raw = mmap(NULL, len + BLOCK, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	p = (uint8_t *)(((uintptr_t)raw + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1));
	/* No THP, and fault the pages in odd ones first, then even ones, both
	 * from the top down, so that virtual neighbours are not physical ones. */
	madvise(raw, len + BLOCK, MADV_NOHUGEPAGE);
	for (off = len; off > 0; off -= 8192)
		p[off - 4096] = 0x5a;
	for (off = len; off > 0; off -= 8192)
		p[off - 8192] = 0x5a;
	memset(p, 0x5a, len);
	for (off = 0; off + 4096 < BLOCK && !scattered; off += 4096)
		scattered = phys_of(p + off) + 4096 != phys_of(p + off + 4096);
	ksft_print_msg("first block's 4 KiB pages are %s\n",
		       scattered ? "scattered" : "physically contiguous");
	/* Contiguous pages would be fine for the board: nothing to refuse. */
	if (!scattered && !self->d.translated)
		SKIP(return, "could not get physically scattered 4 KiB pages");

	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	p0 = fv_pin_counts();
	err = do_map(self->fd, p, len, 0, &m);
	if (self->d.translated) {
		struct checker c;
		struct buf b = { .base = NULL, .p = p, .len = len };

		ASSERT_EQ(0, err) TH_LOG("4 KiB pages behind an IOMMU must map");
		EXPECT_EQ(64, m.nr_blocks);
		EXPECT_TRUE(m.mapped_flags & FPGASTREAM_MAPPED_IOMMU);
		ksft_print_msg("4 KiB pages: %u segments\n", m.nr_segments);
		/* And the board really writes the scattered pages. */
		reg_wr(&self->d, R_EMU_BURST, 64 + 5);
		checker_init(&c, &self->d, &b, 64, LOSS_NONE);
		ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
		consume(_metadata, self->fd, &c, 64 + 5, 16);
		ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
		ASSERT_EOF(self->fd);
	} else {
		char line[1024];
		ssize_t n;
		bool named = false;

		EXPECT_EQ(-EINVAL, err) TH_LOG("4 KiB pages without an IOMMU (%s)",
					      config_name(&self->d));
		while (kmsg >= 0 && (n = read(kmsg, line, sizeof(line) - 1)) > 0) {
			line[n] = 0;
			if (strchr(line, '\n'))	/* the text, not the dict */
				*strchr(line, '\n') = 0;
			if (strcasestr(line, "hugepage") || strcasestr(line, "iommu")) {
				named = true;
				ksft_print_msg("kernel says: %s\n", strchr(line, ';') ?
					       strchr(line, ';') + 1 : line);
			}
		}
		if (kmsg >= 0)
			EXPECT_TRUE(named) TH_LOG("no kernel message naming hugepages or an IOMMU");
		p1 = fv_pin_counts();
		EXPECT_EQ(p1.acquired - p0.acquired, p1.released - p0.released)
			TH_LOG("the refused MAP leaked pins");
	}
	if (kmsg >= 0)
		close(kmsg);
	if (self->d.translated)
		ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_UNMAP, NULL));
	munmap(raw, len + BLOCK);
}

/*
 * NO_BOUNCE: ERANGE where the kernel would bounce (swiotlb=force always;
 * dma32 for pages above 4 GiB), success elsewhere.
 */
TEST_F(ioctl, map_no_bounce)
{
	struct fpgastream_map m;
	struct buf pool;
	struct fv_pins p0, p1;
	size_t off;
	uint8_t *low = NULL, *high = NULL;

	if (self->d.translated || (!self->d.swiotlb && !self->d.dma32)) {
		ASSERT_EQ(0, do_map(self->fd, self->b.p, 4 << 20,
				    FPGASTREAM_MAP_NO_BOUNCE, &m))
			TH_LOG("%s config does not bounce", config_name(&self->d));
		EXPECT_EQ(0, m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED);
		return;
	}
	if (self->d.swiotlb) {
		p0 = fv_pin_counts();
		EXPECT_EQ(-ERANGE, do_map(self->fd, self->b.p, 4 << 20,
					  FPGASTREAM_MAP_NO_BOUNCE, NULL));
		p1 = fv_pin_counts();
		EXPECT_EQ(p1.acquired - p0.acquired, p1.released - p0.released);
		ASSERT_EQ(0, do_map(self->fd, self->b.p, 4 << 20, 0, &m));
		EXPECT_TRUE(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED);
		return;
	}
	/* dma32: find one hugepage below and one above 4 GiB. */
	ASSERT_EQ(0, huge_alloc(&pool, 64 << 20, false));
	for (off = 0; off < pool.len; off += HUGE_2M) {
		uint64_t a = phys_of(pool.p + off);

		if (a == ~0ULL)
			continue;
		if (a + HUGE_2M <= (1ULL << 32) && !low)
			low = pool.p + off;
		if (a >= (1ULL << 32) && !high)
			high = pool.p + off;
	}
	ksft_print_msg("dma32: hugepage below 4 GiB %s, above %s\n",
		       low ? "found" : "none", high ? "found" : "none");
	if (high) {
		p0 = fv_pin_counts();
		EXPECT_EQ(-ERANGE, do_map(self->fd, high, 2 << 20,
					  FPGASTREAM_MAP_NO_BOUNCE, NULL));
		p1 = fv_pin_counts();
		EXPECT_EQ(p1.acquired - p0.acquired, p1.released - p0.released);
		ASSERT_EQ(0, do_map(self->fd, high, 2 << 20, 0, &m));
		EXPECT_TRUE(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED);
		ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_UNMAP, NULL));
	}
	if (low) {
		ASSERT_EQ(0, do_map(self->fd, low, 2 << 20, FPGASTREAM_MAP_NO_BOUNCE, &m));
		EXPECT_EQ(0, m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED);
	}
	buf_free(&pool);
	/* One side untried is worth saying, not failing: the guest decides. */
	if (!high && !low)
		SKIP(return, "dma32: no hugepage whose address could be read");
}

TEST_F(ioctl, start_stop_release_errors)
{
	struct fpgastream_block r[4];
	struct fpgastream_start bad = { .flags = 0 };

	EXPECT_EQ(-EINVAL, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0))
		TH_LOG("START without a mapping");
	EXPECT_EQ(-EINVAL, do_start(self->fd, 0, 0, 0)) TH_LOG("START without a mapping");
	EXPECT_EQ(-EINVAL, do_release(self->fd, 1)) TH_LOG("RELEASE with nothing announced");

	ASSERT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, NULL));
	reg_wr(&self->d, R_EMU_BURST, 4);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	EXPECT_EQ(-EBUSY, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	EXPECT_EQ(-EBUSY, fv_ioc(self->fd, FPGASTREAM_IOC_START, &bad));

	ASSERT_TRUE(wait_wr_count(&self->d, 4));
	/* Exactly 2 announced (room for 2), none released. */
	ASSERT_EQ(2, fv_records(self->fd, r, 2, WAIT_MS));
	EXPECT_EQ(0, r[0].seq);
	EXPECT_EQ(1, r[1].seq);
	EXPECT_EQ(-EINVAL, do_release(self->fd, 3)) TH_LOG("3 of 2 announced");
	EXPECT_EQ(-EINVAL, do_release(self->fd, UINT64_MAX));
	EXPECT_EQ(0, do_release(self->fd, 1));
	EXPECT_EQ(-EINVAL, do_release(self->fd, 2)) TH_LOG("2 of 1 unreleased");
	EXPECT_EQ(0, do_release(self->fd, 1));
	EXPECT_EQ(-EINVAL, do_release(self->fd, 1)) TH_LOG("all released already");
	EXPECT_EQ(-EFAULT, fv_ioc(self->fd, FPGASTREAM_IOC_RELEASE, NULL));

	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	/* Stopped: START again is fine (it restarts from seq 0). */
	reg_wr(&self->d, R_EMU_BURST, 2);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_EQ(1, fv_records(self->fd, r, 1, WAIT_MS));
	EXPECT_EQ(0, r[0].seq);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(-EINVAL, do_start(self->fd, 0, 0, 0)) TH_LOG("START after UNMAP");
}

TEST_F(ioctl, unknown_ioctl)
{
	struct fpgastream_stats st;
	uint64_t big[32] = { 0 };

	EXPECT_EQ(-ENOTTY, fv_ioc(self->fd, _IO(FPGASTREAM_IOC_MAGIC, 0x7f), NULL));
	EXPECT_EQ(-ENOTTY, fv_ioc(self->fd, _IOR(FPGASTREAM_IOC_MAGIC, 0x20, uint64_t), big));
	EXPECT_EQ(-ENOTTY, fv_ioc(self->fd, _IO('x', 0x00), NULL));
	/* The right number with another size is another ioctl. */
	EXPECT_EQ(-ENOTTY, fv_ioc(self->fd, _IOR(FPGASTREAM_IOC_MAGIC, 0x00, uint64_t), big));
	EXPECT_EQ(-ENOTTY, fv_ioc(self->fd, TCGETS, big)) TH_LOG("not a tty");
	/* The file still works. */
	EXPECT_EQ(0, do_stats(self->fd, &st));
}

static volatile sig_atomic_t got_alarm;

static void on_alarm(int sig)
{
	(void)sig;
	got_alarm = 1;
}

TEST_F(ioctl, read_errors)
{
	struct fpgastream_block r[2];
	struct sigaction sa = { .sa_handler = on_alarm }, old;

	/* Smaller than one record: EINVAL, whatever the state. */
	EXPECT_EQ(-1, read(self->fd, r, REC - 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, read(self->fd, r, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, read(self->fd, r, 0));
	EXPECT_EQ(EINVAL, errno);

	ASSERT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, NULL));
	reg_wr(&self->d, R_EMU_BURST, 2);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, 2));
	EXPECT_EQ(-1, read(self->fd, r, REC - 1));
	EXPECT_EQ(EINVAL, errno) TH_LOG("short read with records ready");
	ASSERT_EQ(1, fv_records(self->fd, r, 1, WAIT_MS));
	ASSERT_EQ(1, fv_records(self->fd, r + 1, 1, WAIT_MS));
	EXPECT_EQ(1, r[1].seq);
	ASSERT_EQ(0, do_release(self->fd, 2));

	/* Running, nothing ready: O_NONBLOCK says EAGAIN. */
	ASSERT_EQ(0, fcntl(self->fd, F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-1, read(self->fd, r, sizeof(r)));
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ(0, fcntl(self->fd, F_SETFL, 0));

	/* A blocking read with nothing coming is interrupted by a signal. */
	sigaction(SIGALRM, &sa, &old);	/* no SA_RESTART */
	got_alarm = 0;
	alarm(1);
	EXPECT_EQ(-1, read(self->fd, r, sizeof(r)));
	EXPECT_EQ(EINTR, errno);
	EXPECT_TRUE(got_alarm);
	alarm(0);
	sigaction(SIGALRM, &old, NULL);

	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
}

TEST_F(ioctl, several_files)
{
	struct fpgastream_info info;
	struct fpgastream_stats st;
	int fds[4], k;

	for (k = 0; k < 4; k++) {
		fds[k] = dev_open(&self->d, 0);
		ASSERT_LE(0, fds[k]) TH_LOG("open #%d: %s", k, strerror(errno));
		ASSERT_EQ(0, fv_ioc(fds[k], FPGASTREAM_IOC_INFO, &info));
		EXPECT_EQ(0, memcmp(&info, &self->d.info, sizeof(info)));
	}
	ASSERT_EQ(0, do_map(fds[2], self->b.p, 2 << 20, 0, NULL));
	for (k = 0; k < 4; k++)
		if (k != 2)
			EXPECT_EQ(-EBUSY, do_map(fds[k], self->b.p + (2 << 20), 2 << 20, 0, NULL));
	EXPECT_EQ(-EBUSY, do_map(self->fd, self->b.p + (2 << 20), 2 << 20, 0, NULL));
	/* Streaming on one file, the others still answer INFO and STATS. */
	reg_wr(&self->d, R_EMU_BURST, 3);
	ASSERT_EQ(0, do_start(fds[2], FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, 3));
	EXPECT_EQ(0, fv_ioc(fds[0], FPGASTREAM_IOC_INFO, &info));
	EXPECT_EQ(0, do_stats(fds[1], &st));
	for (k = 0; k < 4; k++)
		if (k != 2)
			EXPECT_EQ(0, close(fds[k]));
	/* Closing the mapping file (while streaming) frees the device. */
	EXPECT_EQ(0, close(fds[2]));
	EXPECT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, NULL));
}

/* =========================================================== streaming */

FIXTURE(stream) {
	struct dev d;
	int fd;
	struct buf b;
	uint64_t nr_blocks;
};

FIXTURE_SETUP(stream)
{
	const char *why = dev_setup(_metadata, &self->d);

	if (why)
		SETUP_SKIP("%s", why);
	self->fd = dev_open(&self->d, 0);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", self->d.node, strerror(errno));
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_INFO, &self->d.info));
}

FIXTURE_TEARDOWN(stream)
{
	if (self->fd >= 0)
		close(self->fd);
	buf_free(&self->b);
	dev_teardown(&self->d);
}

/* Allocate @len of hugepages in self->b and MAP @map_len of it. */
static void stream_map(struct __test_metadata *_metadata,
		       FIXTURE_DATA(stream) *self, size_t len, size_t map_len,
		       struct fpgastream_map *m)
{
	ASSERT_EQ(0, huge_alloc(&self->b, len, self->d.dma32)) {
		TH_LOG("%zu MiB of hugepages: %s", len >> 20, strerror(errno));
	}
	ASSERT_EQ(0, do_map(self->fd, self->b.p, map_len, 0, m));
	self->nr_blocks = map_len / BLOCK;
	ASSERT_EQ(self->nr_blocks, m->nr_blocks);
}

/*
 * Map 2 MiB, start a flow-controlled burst of @n blocks (at most a ring) and
 * wait until all are complete and signalled, so that read() finds them all.
 */
static void stream_burst_done(struct __test_metadata *_metadata,
			      FIXTURE_DATA(stream) *self, uint32_t n, struct checker *c)
{
	struct fpgastream_map m;

	stream_map(_metadata, self, 2 << 20, 2 << 20, &m);
	reg_wr(&self->d, R_EMU_BURST, n);
	checker_init(c, &self->d, &self->b, self->nr_blocks, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, n));
	fv_sleep_ms(200);
}

/* The end of a stream_burst_done() test: check the @n records, release, stop. */
static void stream_burst_finish(struct __test_metadata *_metadata,
				FIXTURE_DATA(stream) *self, struct checker *c,
				const struct fpgastream_block *r, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		check_record(_metadata, c, &r[i]);
	ASSERT_EQ(0, do_release(self->fd, n));
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
}

/*
 * The main data test: four times around the ring and a bit, every record and
 * every word of every block checked, under flow control.
 */
TEST_F_TIMEOUT(stream, data_four_rings, T_STREAM)
{
	/* Small enough to bounce through the 64 MiB swiotlb pool. */
	size_t len = (self->d.swiotlb || self->d.dma32) ? 8 << 20 : 16 << 20;
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct checker c;
	uint64_t burst, reads, top;
	bool bounce_expected;

	stream_map(_metadata, self, len, len, &m);
	top = phys_top(self->b.p, len, HUGE_2M);
	bounce_expected = (self->d.swiotlb && !self->d.translated) ||
			  (self->d.dma32 && top > (1ULL << 32));
	ksft_print_msg("config %s: %zu MiB, %u blocks, %u segments, mapped_flags %#x, phys top %#jx\n",
		       config_name(&self->d), len >> 20, m.nr_blocks, m.nr_segments,
		       m.mapped_flags, (uintmax_t)top);
	EXPECT_EQ(bounce_expected, !!(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED));

	burst = 4 * self->nr_blocks + 3;
	reg_wr(&self->d, R_EMU_BURST, burst);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	reads = consume(_metadata, self->fd, &c, burst, 64);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);

	ASSERT_EQ(0, do_stats(self->fd, &st));
	ksft_print_msg("completed %ju announced %ju released %ju interrupts %ju read_calls %ju (we read %ju times)\n",
		       (uintmax_t)st.blocks_completed, (uintmax_t)st.blocks_announced,
		       (uintmax_t)st.blocks_released, (uintmax_t)st.interrupts,
		       (uintmax_t)st.read_calls, (uintmax_t)reads);
	EXPECT_EQ(burst, st.blocks_completed);
	EXPECT_EQ(burst, st.blocks_announced);
	EXPECT_EQ(burst, st.blocks_released);
	EXPECT_EQ(0, st.blocks_dropped);
	EXPECT_EQ(0, st.blocks_overwritten);
	EXPECT_LE(reads, st.read_calls);
	EXPECT_LT(0, st.interrupts);
	EXPECT_EQ(burst, reg_rd(&self->d, R_WR_COUNT));
	EXPECT_EQ(0, reg_rd(&self->d, R_DROP_COUNT));
}

TEST_F_TIMEOUT(stream, batching, T_SHORT)
{
	struct fpgastream_block r[64];
	struct checker c;
	long n;

	/* The whole burst is complete (and signalled) before the first read. */
	stream_burst_done(_metadata, self, 20, &c);

	/* Room for exactly 3: exactly 3. */
	n = fv_records(self->fd, r, 3, WAIT_MS);
	ASSERT_EQ(3, n);
	/* Room for 3 and a half: whole records only. */
	n = read(self->fd, r + 3, 3 * REC + REC / 2);
	ASSERT_EQ(3 * REC, n);
	/* Room for many: everything still ready, in one go. */
	n = fv_records(self->fd, r + 6, 58, WAIT_MS);
	ksft_print_msg("one read returned %ld records\n", n);
	ASSERT_EQ(14, n);
	stream_burst_finish(_metadata, self, &c, r, 20);
}

/*
 * A read() whose buffer runs into an inaccessible page returns the whole
 * records written before the fault; the record that faulted and those
 * after it come with the next read(), none lost and none twice.
 */
TEST_F_TIMEOUT(stream, read_fault_mid_buffer, T_SHORT)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct fpgastream_block r[20];
	struct checker c;
	uint8_t *area;
	long n;

	stream_burst_done(_metadata, self, 20, &c);

	area = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	ASSERT_EQ(0, mprotect(area + pg, pg, PROT_NONE));

	/* Room for 3 and a half records before the guard page: 3 come. */
	n = read(self->fd, area + pg - 3 * REC - REC / 2, 10 * REC);
	ASSERT_EQ(3 * REC, n) TH_LOG("read: %s", n < 0 ? strerror(errno) : "short");
	memcpy(r, area + pg - 3 * REC - REC / 2, 3 * REC);
	/* Nothing writable at all: EFAULT, and nothing is lost. */
	EXPECT_EQ(-1, read(self->fd, area + pg, 4 * REC));
	EXPECT_EQ(EFAULT, errno);
	n = fv_records(self->fd, r + 3, 17, WAIT_MS);
	ASSERT_EQ(17, n);
	stream_burst_finish(_metadata, self, &c, r, 20);
	munmap(area, 2 * pg);
}

TEST_F_TIMEOUT(stream, slow_consumer_flow_control, T_STREAM)
{
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct fpgastream_block r;
	struct checker c;
	uint64_t burst;

	/* 16 blocks, so the board waits on the consumer many times. */
	stream_map(_metadata, self, 2 << 20, 16 * BLOCK, &m);
	burst = 3 * self->nr_blocks + 5;
	reg_wr(&self->d, R_EMU_BURST, burst);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	while (c.records < burst) {
		fv_sleep_ms(20);
		ASSERT_EQ(1, fv_records(self->fd, &r, 1, WAIT_MS));
		check_record(_metadata, &c, &r);
		ASSERT_EQ(0, do_release(self->fd, 1));
	}
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
	ASSERT_EQ(0, do_stats(self->fd, &st));
	EXPECT_EQ(0, c.lost);
	EXPECT_EQ(0, c.overrun_records);
	EXPECT_EQ(burst, st.blocks_completed);
	EXPECT_EQ(0, st.blocks_dropped);
	EXPECT_EQ(0, st.blocks_overwritten);
	EXPECT_EQ(0, reg_rd(&self->d, R_DROP_COUNT));
}

/*
 * Source faster than the host while the consumer holds every block: the
 * board drops at the source, and each record says how many went missing
 * before it, which the data's own sequence numbers confirm.
 */
TEST_F_TIMEOUT(stream, drop_at_source, T_STREAM)
{
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct checker c;
	uint32_t wr, drop, prev_wr = ~0u, prev_drop = ~0u;
	uint64_t deadline;
	long n;

	stream_map(_metadata, self, 2 << 20, 16 * BLOCK, &m);
	reg_wr(&self->d, R_EMU_FIFO, 4);
	reg_wr(&self->d, R_EMU_RATE, 20000);
	reg_wr(&self->d, R_EMU_BURST, 400);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_DROP);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	/* Hold: read nothing for a while, the ring and the FIFO fill up. */
	fv_sleep_ms(500);
	ksft_print_msg("after holding: WR_COUNT %u DROP_COUNT %u\n",
		       reg_rd(&self->d, R_WR_COUNT), reg_rd(&self->d, R_DROP_COUNT));

	/* Then consume until the board is quiet and everything is read. */
	deadline = fv_now_ns() + 60 * 1000000000ULL;
	for (;;) {
		ASSERT_GT(deadline, fv_now_ns()) TH_LOG("the stream never settled");
		n = take_checked(_metadata, self->fd, &c, 64, 1000);
		if (n == -ETIME) {
			wr = reg_rd(&self->d, R_WR_COUNT);
			drop = reg_rd(&self->d, R_DROP_COUNT);
			if (wr == c.records && wr == prev_wr && drop == prev_drop)
				break;
			prev_wr = wr;
			prev_drop = drop;
			continue;
		}
		ASSERT_LT(0, n) TH_LOG("read: %s", n ? strerror(-n) : "end of stream");
	}
	drop = reg_rd(&self->d, R_DROP_COUNT);
	ASSERT_EQ(0, do_stats(self->fd, &st));
	ksft_print_msg("records %ju, lost in records %ju, DROP_COUNT %u, STATS dropped %ju\n",
		       (uintmax_t)c.records, (uintmax_t)c.lost, drop,
		       (uintmax_t)st.blocks_dropped);
	EXPECT_LT(0, c.lossy_records) TH_LOG("nothing was dropped: the test proved nothing");
	EXPECT_EQ(drop, st.blocks_dropped);
	EXPECT_EQ(drop, c.lost);
	EXPECT_EQ(c.records, st.blocks_announced);
	EXPECT_EQ(c.records, st.blocks_completed);
	EXPECT_EQ(0, st.blocks_overwritten);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
}

/*
 * Overwrite mode: nobody reads while the board goes three times around the
 * ring; the survivors are announced with the gap before the first of them.
 */
TEST_F_TIMEOUT(stream, overwrite, T_STREAM)
{
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct checker c;
	uint64_t burst;
	long n;

	stream_map(_metadata, self, 2 << 20, 2 << 20, &m);
	burst = 3 * self->nr_blocks + 7;
	reg_wr(&self->d, R_EMU_BURST, burst);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_OVERWRITE);
	ASSERT_EQ(0, do_start(self->fd, 0, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, burst));
	fv_sleep_ms(200);

	while (c.next_seq < burst) {
		n = take_checked(_metadata, self->fd, &c, 64, WAIT_MS);
		ASSERT_LT(0, n) TH_LOG("after seq %ju: %s", (uintmax_t)c.next_seq,
				       n ? strerror(-n) : "end of stream");
	}
	ASSERT_EQ(0, do_stats(self->fd, &st));
	ksft_print_msg("announced %ju lost %ju completed %ju overwritten %ju\n",
		       (uintmax_t)c.records, (uintmax_t)c.lost,
		       (uintmax_t)st.blocks_completed, (uintmax_t)st.blocks_overwritten);
	EXPECT_EQ(1, c.lossy_records) TH_LOG("one gap, before the first survivor");
	EXPECT_EQ(1, c.overrun_records);
	EXPECT_LE(c.records, self->nr_blocks);
	EXPECT_LE(self->nr_blocks - 1, c.records) TH_LOG("survivors not announced");
	EXPECT_EQ(burst, c.records + c.lost);
	EXPECT_EQ(burst, st.blocks_completed);
	EXPECT_EQ(c.records, st.blocks_announced);
	EXPECT_EQ(c.lost, st.blocks_overwritten);
	EXPECT_EQ(0, st.blocks_dropped);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
}

/*
 * Under flow control an announced block is the program's until RELEASE:
 * the board does not write it again, however long it is held, and each
 * RELEASE frees exactly that many slots, oldest first.
 */
TEST_F_TIMEOUT(stream, unreleased_blocks_kept, T_SHORT)
{
	struct fpgastream_map m;
	struct fpgastream_block r[32];
	struct checker c;
	long n, i;

	stream_map(_metadata, self, 2 << 20, 2 << 20, &m);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, 32));
	fv_sleep_ms(100);
	for (n = 0; n < 32; n += i) {
		i = fv_records(self->fd, r + n, 32 - n, WAIT_MS);
		ASSERT_LT(0, i);
	}
	for (i = 0; i < 32; i++)
		check_record(_metadata, &c, &r[i]);
	/* Held, with the source endless: nothing moves. */
	fv_sleep_ms(300);
	EXPECT_EQ(32, reg_rd(&self->d, R_WR_COUNT)) TH_LOG("the board went past unreleased blocks");
	for (i = 0; i < 32; i++)
		ASSERT_EQ(-1, bad_word((const uint64_t *)(self->b.p + i * BLOCK), i,
				       self->d.seed, true)) TH_LOG("held block %ld rewritten", i);
	/* Give back 8: exactly 8 more blocks, into slots 0..7. */
	ASSERT_EQ(0, do_release(self->fd, 8));
	ASSERT_TRUE(wait_wr_count(&self->d, 40));
	fv_sleep_ms(300);
	EXPECT_EQ(40, reg_rd(&self->d, R_WR_COUNT));
	for (n = 0; n < 8; n += i) {
		i = fv_records(self->fd, r + n, 8 - n, WAIT_MS);
		ASSERT_LT(0, i);
	}
	for (i = 0; i < 8; i++)
		check_record(_metadata, &c, &r[i]);
	for (i = 8; i < 32; i++)
		ASSERT_EQ(-1, bad_word((const uint64_t *)(self->b.p + i * BLOCK), i,
				       self->d.seed, true)) TH_LOG("held block %ld rewritten", i);
	EXPECT_EQ(-EINVAL, do_release(self->fd, 33));
	ASSERT_EQ(0, do_release(self->fd, 32));
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
}

/*
 * Overwrite mode with records still held when the board laps them: those
 * records can still be released (their blocks are gone, not the accounting),
 * and RELEASE counts stay exact across the gap.
 */
TEST_F_TIMEOUT(stream, overwrite_release_across_gap, T_STREAM)
{
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct fpgastream_block r[64];
	struct checker c;
	uint64_t burst, held;
	long n, i;

	stream_map(_metadata, self, 2 << 20, 2 << 20, &m);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_OVERWRITE);
	reg_wr(&self->d, R_EMU_BURST, 8);
	ASSERT_EQ(0, do_start(self->fd, 0, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, 8));
	fv_sleep_ms(100);
	for (held = 0; held < 8; held += n) {
		n = fv_records(self->fd, r, 8 - held, WAIT_MS);
		ASSERT_LT(0, n);
		for (i = 0; i < n; i++)
			check_record(_metadata, &c, &r[i]);
	}
	/* More source, nobody reading: the board laps the held blocks. */
	burst = 3 * self->nr_blocks + 8;
	reg_wr(&self->d, R_EMU_BURST, burst);
	ASSERT_TRUE(wait_wr_count(&self->d, burst));
	fv_sleep_ms(200);
	while (c.next_seq < burst) {
		n = fv_records(self->fd, r, 64, WAIT_MS);
		ASSERT_LT(0, n);
		for (i = 0; i < n; i++)
			check_record(_metadata, &c, &r[i]);
		held += n;
	}
	ksft_print_msg("held %ju records across a gap of %ju\n", (uintmax_t)held,
		       (uintmax_t)c.lost);
	EXPECT_EQ(burst, c.records + c.lost);
	EXPECT_EQ(-EINVAL, do_release(self->fd, held + 1));
	ASSERT_EQ(0, do_release(self->fd, 8)) TH_LOG("the lapped records");
	ASSERT_EQ(0, do_release(self->fd, held - 8));
	EXPECT_EQ(-EINVAL, do_release(self->fd, 1));
	ASSERT_EQ(0, do_stats(self->fd, &st));
	EXPECT_EQ(held, st.blocks_released);
	EXPECT_EQ(held, st.blocks_announced);
	EXPECT_EQ(c.lost, st.blocks_overwritten);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
}

static short poll_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDNORM };

	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

TEST_F_TIMEOUT(stream, poll_states, T_SHORT)
{
	struct fpgastream_map m;
	struct fpgastream_block r[4];
	struct pollfd p;
	short ev;

	stream_map(_metadata, self, 2 << 20, 2 << 20, &m);
	reg_wr(&self->d, R_EMU_BURST, 3);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));

	p = (struct pollfd){ .fd = self->fd, .events = POLLIN };
	ASSERT_EQ(1, poll(&p, 1, WAIT_MS));
	EXPECT_EQ(POLLIN, p.revents);
	ASSERT_TRUE(wait_wr_count(&self->d, 3));
	fv_sleep_ms(100);
	ev = poll_now(self->fd);
	EXPECT_EQ(POLLIN | POLLRDNORM, ev);
	ASSERT_EQ(3, fv_records(self->fd, r, 4, WAIT_MS));
	ASSERT_EQ(0, do_release(self->fd, 3));

	/* Running and empty: nothing. */
	EXPECT_EQ(0, poll_now(self->fd));

	/* Stopped and drained: hang-up, and no data. */
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ev = poll_now(self->fd);
	EXPECT_TRUE(ev & POLLHUP) TH_LOG("revents %#x", ev);
	EXPECT_FALSE(ev & (POLLIN | POLLERR)) TH_LOG("revents %#x", ev);
	ASSERT_EOF(self->fd);

	/* Stopped with records pending: readable until drained. */
	reg_wr(&self->d, R_EMU_BURST, 3);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, 3));
	fv_sleep_ms(100);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ev = poll_now(self->fd);
	EXPECT_TRUE(ev & POLLIN) TH_LOG("revents %#x: pending records after STOP", ev);
	ASSERT_EQ(3, fv_records(self->fd, r, 4, WAIT_MS));
	EXPECT_EQ(0, r[0].seq);
	ASSERT_EQ(0, do_release(self->fd, 3));
	ev = poll_now(self->fd);
	EXPECT_TRUE(ev & POLLHUP) TH_LOG("revents %#x", ev);
	ASSERT_EOF(self->fd);
}

/* STOP waits for IDLE even when the board takes 50 ms, and loses nothing. */
TEST_F_TIMEOUT(stream, stop_idle_stall, T_STREAM)
{
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct checker c;
	uint64_t t0, t1;
	long n;

	stream_map(_metadata, self, 2 << 20, 2 << 20, &m);
	reg_wr(&self->d, R_EMU_BURST, 1000);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	reg_wr(&self->d, R_EMU_INJECT, INJECT_IDLE_STALL);
	consume(_metadata, self->fd, &c, 40, 8);

	t0 = fv_now_ns();
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	t1 = fv_now_ns();
	ksft_print_msg("STOP with the IDLE stall took %ju ms\n",
		       (uintmax_t)((t1 - t0) / 1000000));
	/* Not a speed check: returning sooner means STOP did not wait for IDLE. */
	EXPECT_LE(40000000ULL, t1 - t0) TH_LOG("STOP returned before the board was idle");

	for (;;) {
		n = take_checked(_metadata, self->fd, &c, 64, WAIT_MS);
		ASSERT_LE(0, n) TH_LOG("draining: %s", strerror(-n));
		if (n == 0)
			break;
	}
	ASSERT_EQ(0, do_stats(self->fd, &st));
	EXPECT_EQ(c.records, st.blocks_completed);
	EXPECT_EQ(c.records, st.blocks_announced);
	EXPECT_EQ(reg_rd(&self->d, R_WR_COUNT), c.records);
	EXPECT_EQ(0, st.blocks_dropped);
	EXPECT_EQ(0, st.blocks_overwritten);
	EXPECT_EQ(0, c.lost);
}

/* Interrupt coalescing: every record still arrives, with fewer interrupts. */
TEST_F_TIMEOUT(stream, irq_coalescing, T_STREAM)
{
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct checker c;
	uint64_t burst;

	stream_map(_metadata, self, 2 << 20, 2 << 20, &m);
	burst = 4 * 8 + 3;	/* the last 3 only the usec timer signals */
	reg_wr(&self->d, R_EMU_BURST, burst);
	checker_init(&c, &self->d, &self->b, self->nr_blocks, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 8, 5000));
	consume(_metadata, self->fd, &c, burst, 64);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
	ASSERT_EQ(0, do_stats(self->fd, &st));
	ksft_print_msg("%ju blocks, %ju interrupts\n", (uintmax_t)st.blocks_completed,
		       (uintmax_t)st.interrupts);
	EXPECT_EQ(burst, st.blocks_completed);
	EXPECT_LT(0, st.interrupts);
	EXPECT_GT(burst, st.interrupts) TH_LOG("coalescing count 8 did not coalesce");
}

/* ================================================================ faults */

FIXTURE(fault) {
	struct dev d;
	int fd;
	struct buf b;
};

FIXTURE_VARIANT(fault) {
	uint32_t inject;
	uint32_t status_bit;
};

FIXTURE_VARIANT_ADD(fault, dma_error) {
	.inject = INJECT_DMA_ERROR, .status_bit = 1u << 10,
};

FIXTURE_VARIANT_ADD(fault, lut_fault) {
	.inject = INJECT_LUT_FAULT, .status_bit = 1u << 9,
};

FIXTURE_SETUP(fault)
{
	const char *why = dev_setup(_metadata, &self->d);

	if (why)
		SETUP_SKIP("%s", why);
	self->fd = dev_open(&self->d, 0);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, huge_alloc(&self->b, 2 << 20, self->d.dma32));
}

FIXTURE_TEARDOWN(fault)
{
	if (self->fd >= 0)
		close(self->fd);
	buf_free(&self->b);
	dev_teardown(&self->d);
}

TEST_F_TIMEOUT(fault, pending_then_eio, T_STREAM)
{
	struct fpgastream_block r[64];
	struct fpgastream_map m;
	struct checker c;
	uint64_t deadline, pending = 0;
	short ev = 0;
	long n, i;

	ASSERT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, &m));
	checker_init(&c, &self->d, &self->b, 32, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	/* Let the ring fill (the source is endless, the board then waits). */
	ASSERT_TRUE(wait_wr_count(&self->d, 32));
	fv_sleep_ms(100);
	ASSERT_EQ(16, fv_records(self->fd, r, 16, WAIT_MS));
	for (i = 0; i < 16; i++)
		check_record(_metadata, &c, &r[i]);
	/* The block after the ring's 32 is the one that fails. */
	reg_wr(&self->d, R_EMU_INJECT, variant->inject);
	ASSERT_EQ(0, do_release(self->fd, 16));

	deadline = fv_now_ns() + WAIT_MS * 1000000ULL;
	while (!(ev & POLLERR) && fv_now_ns() < deadline) {
		ev = poll_now(self->fd);
		fv_sleep_ms(5);
	}
	ksft_print_msg("STATUS %#x, poll revents %#x\n", reg_rd(&self->d, R_STATUS), ev);
	ASSERT_TRUE(ev & POLLERR) TH_LOG("no EPOLLERR after the injected fault");

	/* Records completed before the fault still come, then -EIO. */
	for (;;) {
		n = take_checked(_metadata, self->fd, &c, 64, WAIT_MS);
		if (n < 0)
			break;
		ASSERT_LT(0, n) TH_LOG("end of stream instead of -EIO");
		pending += n;
	}
	ksft_print_msg("%ju records pending at the fault\n", (uintmax_t)pending);
	EXPECT_EQ(-EIO, n);
	EXPECT_LE(16, pending) TH_LOG("records completed before the fault were lost");
	/* It stays failed: blocking, non-blocking, poll. */
	EXPECT_EQ(-1, read(self->fd, r, REC));
	EXPECT_EQ(EIO, errno);
	ASSERT_EQ(0, fcntl(self->fd, F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-1, read(self->fd, r, REC));
	EXPECT_EQ(EIO, errno);
	ASSERT_EQ(0, fcntl(self->fd, F_SETFL, 0));
	EXPECT_TRUE(poll_now(self->fd) & POLLERR);

	/* UNMAP recovers; a new MAP and START stream again from seq 0. */
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_UNMAP, NULL));
	reg_wr(&self->d, R_EMU_INJECT, 0);
	memset(self->b.p, 0x5a, 2 << 20);
	ASSERT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, &m));
	EXPECT_FALSE(poll_now(self->fd) & POLLERR) TH_LOG("fault survived UNMAP/MAP");
	reg_wr(&self->d, R_EMU_BURST, 40);
	checker_init(&c, &self->d, &self->b, 32, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	consume(_metadata, self->fd, &c, 40, 16);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
}

/* A fault on the very first block: no records, straight to -EIO. */
TEST_F_TIMEOUT(fault, first_block, T_SHORT)
{
	struct fpgastream_block r;
	struct fpgastream_map m;

	/* The emulator keeps an armed fault across SOFT_RESET: block 0 fails. */
	ASSERT_EQ(0, do_map(self->fd, self->b.p, 2 << 20, 0, &m));
	reg_wr(&self->d, R_EMU_INJECT, variant->inject);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	EXPECT_EQ(-EIO, fv_records(self->fd, &r, 1, WAIT_MS));
	EXPECT_TRUE(poll_now(self->fd) & POLLERR);
	EXPECT_EQ(-1, read(self->fd, &r, REC));
	EXPECT_EQ(EIO, errno);
	EXPECT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_UNMAP, NULL));
}

/* ============================================================== cleanup */

/*
 * Every way of letting go of a mapping gives back every pin and every byte
 * of locked-memory charge.  Pins are global counters (FOLL_PIN), so compare
 * how much each grew: acquired and released must grow by the same amount.
 */
FIXTURE(cleanup) {
	struct dev d;
	struct buf b;
	struct fv_pins p0;
	long long lk0;
};

FIXTURE_SETUP(cleanup)
{
	const char *why = dev_setup(_metadata, &self->d);

	if (why)
		SETUP_SKIP("%s", why);
	ASSERT_EQ(0, huge_alloc(&self->b, 4 << 20, false));
	self->p0 = fv_pin_counts();
	ASSERT_LE(0, self->p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	self->lk0 = fv_locked_kb();
}

FIXTURE_TEARDOWN(cleanup)
{
	buf_free(&self->b);
	dev_teardown(&self->d);
}

/* While mapped: the pages are pinned and charged. */
static void assert_held(struct __test_metadata *_metadata,
			FIXTURE_DATA(cleanup) *self, size_t len, bool charged)
{
	struct fv_pins p = fv_pin_counts();
	long long held = (p.acquired - self->p0.acquired) - (p.released - self->p0.released);

	ASSERT_LE((long long)(len / 4096), held) {
		TH_LOG("%lld pages pinned for a %zu KiB mapping (FOLL_PIN not used?)",
		       held, len >> 10);
	}
	if (charged)
		ASSERT_EQ((long long)(len >> 10), fv_locked_kb() - self->lk0) {
			TH_LOG("VmLck+VmPin grew by %lld kB for a %zu kB mapping",
			       fv_locked_kb() - self->lk0, len >> 10);
		}
}

static void assert_all_back(struct __test_metadata *_metadata,
			    FIXTURE_DATA(cleanup) *self)
{
	struct fv_pins p = fv_pin_counts();

	EXPECT_EQ(p.acquired - self->p0.acquired, p.released - self->p0.released) {
		TH_LOG("%lld pins not released",
		       (p.acquired - self->p0.acquired) - (p.released - self->p0.released));
	}
	EXPECT_LT(self->p0.acquired, p.acquired) TH_LOG("nothing was ever pinned");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
}

/* Stream a few blocks so that unpinning follows real DMA. */
static void stream_some(struct __test_metadata *_metadata, struct dev *d, int fd,
			struct buf *b, uint64_t nr_blocks, uint32_t burst)
{
	struct checker c;

	reg_wr(d, R_EMU_BURST, burst);
	checker_init(&c, d, b, nr_blocks, LOSS_NONE);
	ASSERT_EQ(0, do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	consume(_metadata, fd, &c, burst / 2, 8);
}

TEST_F_TIMEOUT(cleanup, after_unmap, T_SHORT)
{
	int fd = dev_open(&self->d, 0);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, do_map(fd, self->b.p, 4 << 20, 0, NULL));
	assert_held(_metadata, self, 4 << 20, true);
	stream_some(_metadata, &self->d, fd, &self->b, 64, 20);
	/* UNMAP while running stops the board first. */
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL));
	assert_all_back(_metadata, self);
	/* The same file maps again. */
	ASSERT_EQ(0, do_map(fd, self->b.p, 2 << 20, 0, NULL));
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(0, close(fd));
	assert_all_back(_metadata, self);
}

TEST_F_TIMEOUT(cleanup, close_while_streaming, T_SHORT)
{
	int fd = dev_open(&self->d, 0);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, do_map(fd, self->b.p, 4 << 20, 0, NULL));
	assert_held(_metadata, self, 4 << 20, true);
	stream_some(_metadata, &self->d, fd, &self->b, 64, 200);
	EXPECT_EQ(0, close(fd));
	assert_all_back(_metadata, self);
	/* The device is free: a new file maps at once. */
	fd = dev_open(&self->d, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, do_map(fd, self->b.p, 4 << 20, 0, NULL));
	close(fd);
	assert_all_back(_metadata, self);
}

/*
 * Close while the board overwrites the ring at full speed: when close
 * returns the board must have stopped writing.  The pages stay in our
 * address space after the unpin, so a late DMA would show in them.
 */
TEST_F_TIMEOUT(cleanup, no_dma_after_close, T_SHORT)
{
	int fd = dev_open(&self->d, 0);
	size_t off;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, do_map(fd, self->b.p, 4 << 20, 0, NULL));
	reg_wr(&self->d, R_EMU_BURST, 0);	/* endless */
	ASSERT_EQ(0, do_start(fd, 0, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, 3 * 64));
	EXPECT_EQ(0, close(fd));
	memset(self->b.p, 0x5a, 4 << 20);
	fv_sleep_ms(200);
	for (off = 0; off < (4u << 20); off += 8)
		if (*(uint64_t *)(self->b.p + off) != 0x5a5a5a5a5a5a5a5aULL)
			break;
	EXPECT_EQ(4u << 20, off) TH_LOG("the board wrote at offset %#zx after close", off);
	assert_all_back(_metadata, self);
}

TEST_F_TIMEOUT(cleanup, sigkill_streaming_child, T_SHORT)
{
	int pfd[2], status, fd;
	char ok;
	pid_t pid;

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Own buffer, own file, endless stream, consumed until killed. */
		struct fpgastream_block r[16];
		struct buf b;
		long n;

		close(pfd[0]);
		fd = dev_open(&self->d, 0);
		if (fd < 0 || huge_alloc(&b, 4 << 20, false) ||
		    do_map(fd, b.p, 4 << 20, 0, NULL) ||
		    do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0))
			_exit(1);
		n = fv_records(fd, r, 16, WAIT_MS);
		if (n <= 0 || write(pfd[1], "k", 1) != 1)
			_exit(2);
		for (;;) {
			do_release(fd, n);
			n = fv_records(fd, r, 16, WAIT_MS);
			if (n <= 0)
				_exit(3);
		}
	}
	close(pfd[1]);
	ASSERT_EQ(1, read(pfd[0], &ok, 1)) TH_LOG("the child never streamed");
	fv_sleep_ms(100);
	assert_held(_metadata, self, 4 << 20, false);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(pfd[0]);
	assert_all_back(_metadata, self);
	fd = dev_open(&self->d, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, do_map(fd, self->b.p, 4 << 20, 0, NULL))
		TH_LOG("the killed child's mapping is still there");
	close(fd);
}

/*
 * The parent maps and forks; the child inherits the file; the parent closes.
 * The mapping lives while the child holds the file, and the child's exit
 * unpins the pages and uncharges the *parent's* locked memory.
 */
TEST_F_TIMEOUT(cleanup, fork_child_keeps_file, T_SHORT)
{
	int fd, go[2], status;
	pid_t pid;
	char c;

	fd = dev_open(&self->d, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, do_map(fd, self->b.p, 4 << 20, 0, NULL));
	assert_held(_metadata, self, 4 << 20, true);
	reg_wr(&self->d, R_EMU_BURST, 6);
	ASSERT_EQ(0, do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* The child reads the stream through the inherited file and
		 * checks the data in the shared buffer. */
		struct fpgastream_block r[6];
		struct fpgastream_stats st;
		long n, got = 0, i;

		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		if (do_stats(fd, &st))
			_exit(2);
		while (got < 6) {
			n = fv_records(fd, r + got, 6 - got, WAIT_MS);
			if (n <= 0)
				_exit(3);
			got += n;
		}
		for (i = 0; i < 6; i++)
			if (r[i].seq != (uint64_t)i ||
			    bad_word((const uint64_t *)(self->b.p + r[i].offset),
				     i, self->d.seed, true) != -1)
				_exit(4);
		if (do_release(fd, 6))
			_exit(5);
		_exit(0);
	}
	close(go[0]);
	EXPECT_EQ(0, close(fd));
	/* The child still holds the file: still pinned, still charged. */
	assert_held(_metadata, self, 4 << 20, true);
	ASSERT_EQ(1, write(go[1], "g", 1));
	close(go[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child failed at step %d (1 sync, 2 STATS, 3 read, 4 data, 5 RELEASE)",
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	assert_all_back(_metadata, self);
}

TEST_F_TIMEOUT(cleanup, munmap_then_close, T_SHORT)
{
	int fd = dev_open(&self->d, 0);
	struct fpgastream_block r[8];
	long n;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, do_map(fd, self->b.p, 4 << 20, 0, NULL));
	assert_held(_metadata, self, 4 << 20, true);
	/* Gone from the address space, still pinned: the board may go on. */
	buf_free(&self->b);
	assert_held(_metadata, self, 4 << 20, false);
	reg_wr(&self->d, R_EMU_BURST, 8);
	ASSERT_EQ(0, do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	n = fv_records(fd, r, 8, WAIT_MS);
	ASSERT_LT(0, n);
	EXPECT_EQ(0, r[0].seq);
	EXPECT_EQ(0, close(fd));
	assert_all_back(_metadata, self);
}

/* =============================================================== module */

/*
 * Whole-device lifecycle: module reference and unbind/rebind.  These run
 * last; after them the board is bound again and the module still loaded.
 */
FIXTURE(lifecycle) {
	struct dev d;
};

FIXTURE_SETUP(lifecycle)
{
	const char *why = dev_setup(_metadata, &self->d);

	if (why)
		SETUP_SKIP("%s", why);
}

FIXTURE_TEARDOWN(lifecycle)
{
	char path[PATH_MAX];

	/* Whatever happened, leave the board bound for whoever comes next. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", self->d.bdf);
	if (self->d.bdf[0] && !fv_exists(path))
		fv_write_text("/sys/bus/pci/drivers/" MODULE_NAME "/bind", self->d.bdf);
	dev_teardown(&self->d);
}

static int reload_module(void)
{
	const char *ko = getenv("FPGASTREAM_KO") ?: DEFAULT_KO;
	int fd = open(ko, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (syscall(SYS_finit_module, fd, "", 0))
		err = -errno;
	close(fd);
	return err;
}

TEST_F(lifecycle, rmmod_refused_while_open)
{
	char refcnt[32];
	struct fpgastream_info info;
	struct buf b;
	int fd, err;

	fd = dev_open(&self->d, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fv_read_text("/sys/module/" MODULE_NAME "/refcnt", refcnt, sizeof(refcnt)));
	ksft_print_msg("module refcnt with a file open: %s", refcnt);
	EXPECT_LE(1, atoi(refcnt));

	/* rmmod(8) asks with O_NONBLOCK; a held module answers EWOULDBLOCK. */
	err = syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK) ? errno : 0;
	if (!err) {
		ksft_print_msg("the module was removed while a file was open: reloading\n");
		close(fd);
		EXPECT_EQ(0, reload_module());
		ASSERT_EQ(EWOULDBLOCK, err);
	}
	EXPECT_EQ(EWOULDBLOCK, err) TH_LOG("delete_module: %s", strerror(err));
	/* Still there and still working; also with a live mapping. */
	ASSERT_TRUE(fv_exists("/sys/module/" MODULE_NAME));
	EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_INFO, &info));
	ASSERT_EQ(0, huge_alloc(&b, 2 << 20, false));
	ASSERT_EQ(0, do_map(fd, b.p, 2 << 20, 0, NULL));
	err = syscall(SYS_delete_module, MODULE_NAME, O_NONBLOCK | O_EXCL) ? errno : 0;
	EXPECT_EQ(EWOULDBLOCK, err);
	EXPECT_EQ(0, close(fd));
	buf_free(&b);
	/* Not removed now: other tests follow in this boot. */
}

struct reader {
	int fd;
	volatile int done;
	long ret;
	int err;
};

static void *reader_thread(void *arg)
{
	struct reader *rd = arg;
	struct fpgastream_block r;

	rd->ret = read(rd->fd, &r, REC);
	rd->err = errno;
	rd->done = 1;
	return NULL;
}

struct unbinder {
	const char *path, *bdf;
	volatile int done;
	int err;
};

static void *unbind_thread(void *arg)
{
	struct unbinder *u = arg;

	u->err = fv_write_text(u->path, u->bdf);
	u->done = 1;
	return NULL;
}

static bool wait_flag(volatile int *flag, unsigned int ms)
{
	while (!*flag && ms) {
		fv_sleep_ms(10);
		ms = ms > 10 ? ms - 10 : 0;
	}
	return *flag;
}

TEST_F_TIMEOUT(lifecycle, unbind_rebind_with_blocked_reader, T_SHORT)
{
	char unbind[PATH_MAX], bind[PATH_MAX], node[96];
	struct fpgastream_block r[4];
	struct fpgastream_info info;
	struct fpgastream_stats st;
	struct reader rd = { 0 };
	struct unbinder u = { 0 };
	struct checker c;
	struct fv_pins p0 = fv_pin_counts(), p1;
	long long lk0 = fv_locked_kb();
	pthread_t rt, ut;
	struct buf b;
	struct pollfd pfd;
	uint64_t n = 1;
	int fd, fd2, k;

	snprintf(unbind, sizeof(unbind), "/sys/bus/pci/drivers/%s/unbind", self->d.driver);
	snprintf(bind, sizeof(bind), "/sys/bus/pci/drivers/%s/bind", self->d.driver);
	fd = dev_open(&self->d, 0);
	ASSERT_LE(0, fd);
	fd2 = dev_open(&self->d, 0);	/* a second, idle file */
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, huge_alloc(&b, 2 << 20, false));
	ASSERT_EQ(0, do_map(fd, b.p, 2 << 20, 0, NULL));
	reg_wr(&self->d, R_EMU_BURST, 4);
	ASSERT_EQ(0, do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_TRUE(wait_wr_count(&self->d, 4));
	for (k = 0; k < 4; k += 0) {
		long got = fv_records(fd, r, 4, WAIT_MS);

		ASSERT_LT(0, got);
		ASSERT_EQ(0, do_release(fd, got));
		k += got;
	}

	/* Running, source exhausted: this read blocks. */
	rd.fd = fd;
	ASSERT_EQ(0, pthread_create(&rt, NULL, reader_thread, &rd));
	fv_sleep_ms(300);
	ASSERT_FALSE(rd.done) TH_LOG("read returned %ld (%s) instead of blocking",
				     rd.ret, strerror(rd.err));

	u.path = unbind;
	u.bdf = self->d.bdf;
	ASSERT_EQ(0, pthread_create(&ut, NULL, unbind_thread, &u));
	ASSERT_TRUE(wait_flag(&u.done, 10000))
		TH_LOG("unbind still blocked after 10 s with files open: remove() waits for close?");
	pthread_join(ut, NULL);
	ASSERT_EQ(0, u.err) TH_LOG("unbind: %s", strerror(-u.err));

	ASSERT_TRUE(wait_flag(&rd.done, 5000)) TH_LOG("the blocked reader was not woken");
	pthread_join(rt, NULL);
	EXPECT_EQ(-1, rd.ret);
	EXPECT_EQ(ENODEV, rd.err) TH_LOG("reader woke with %s", strerror(rd.err));

	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_TRUE(pfd.revents & POLLHUP) TH_LOG("revents %#x", pfd.revents);
	pfd = (struct pollfd){ .fd = fd2, .events = POLLIN };
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_TRUE(pfd.revents & POLLHUP) TH_LOG("idle file: revents %#x", pfd.revents);

	EXPECT_EQ(-1, read(fd, r, REC));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, read(fd2, r, REC));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-ENODEV, fv_ioc(fd, FPGASTREAM_IOC_INFO, &info));
	EXPECT_EQ(-ENODEV, fv_ioc(fd2, FPGASTREAM_IOC_INFO, &info));
	EXPECT_EQ(-ENODEV, do_stats(fd, &st));
	EXPECT_EQ(-ENODEV, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	EXPECT_EQ(-ENODEV, do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	EXPECT_EQ(-ENODEV, do_release(fd, n));
	EXPECT_EQ(-ENODEV, fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(-ENODEV, do_map(fd2, b.p, 2 << 20, 0, NULL));
	EXPECT_EQ(0, close(fd));
	EXPECT_EQ(0, close(fd2));

	p1 = fv_pin_counts();
	EXPECT_EQ(p1.acquired - p0.acquired, p1.released - p0.released)
		TH_LOG("pins not released after unbind and close");
	EXPECT_EQ(lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
	buf_free(&b);

	/* Bind again: a working device node comes back. */
	ASSERT_EQ(0, fv_write_text(bind, self->d.bdf));
	for (k = 0; k < 500 && fv_find_node(self->d.bdf, node, sizeof(node)); k++)
		fv_sleep_ms(10);
	ASSERT_EQ(0, fv_find_node(self->d.bdf, node, sizeof(node)));
	ksft_print_msg("rebound as %s\n", node);
	snprintf(self->d.node, sizeof(self->d.node), "%s", node);
	fd = dev_open(&self->d, 0);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", node, strerror(errno));
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_INFO, &info));
	EXPECT_EQ(FPGASTREAM_ABI_VERSION, info.abi_version);
	EXPECT_EQ(65536, info.block_size);
	/* And it streams. */
	ASSERT_EQ(0, huge_alloc(&b, 2 << 20, false));
	ASSERT_EQ(0, do_map(fd, b.p, 2 << 20, 0, NULL));
	reg_wr(&self->d, R_EMU_BURST, 8);
	checker_init(&c, &self->d, &b, 32, LOSS_NONE);
	ASSERT_EQ(0, do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	consume(_metadata, fd, &c, 8, 8);
	EXPECT_EQ(0, close(fd));
	buf_free(&b);
}

struct pump {
	int fd;
	volatile int stop;
	long records;
	int err;
};

/* Consume and release as fast as possible until an error or told to stop. */
static void *pump_thread(void *arg)
{
	struct pump *pu = arg;
	struct fpgastream_block r[64];
	ssize_t n;

	while (!pu->stop) {
		n = read(pu->fd, r, sizeof(r));
		if (n <= 0) {
			pu->err = n ? errno : 0;
			break;
		}
		pu->records += n / REC;
		if (do_release(pu->fd, n / REC)) {
			pu->err = errno;
			break;
		}
	}
	return NULL;
}

/*
 * Unbind while the board is really writing: remove() must stop it before
 * unmapping (under the IOMMU a late write is a DMAR fault, which fails the
 * VM run; without one it would land in pages we still see).
 */
TEST_F_TIMEOUT(lifecycle, unbind_while_streaming, T_SHORT)
{
	char unbind[PATH_MAX], bind[PATH_MAX], node[96];
	struct pump pu = { 0 };
	struct fpgastream_info info;
	struct fv_pins p0 = fv_pin_counts(), p1;
	pthread_t t;
	struct buf b;
	size_t off;
	int fd, k;

	snprintf(unbind, sizeof(unbind), "/sys/bus/pci/drivers/%s/unbind", self->d.driver);
	snprintf(bind, sizeof(bind), "/sys/bus/pci/drivers/%s/bind", self->d.driver);
	fd = dev_open(&self->d, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, huge_alloc(&b, 2 << 20, false));
	ASSERT_EQ(0, do_map(fd, b.p, 2 << 20, 0, NULL));
	ASSERT_EQ(0, do_start(fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	pu.fd = fd;
	ASSERT_EQ(0, pthread_create(&t, NULL, pump_thread, &pu));
	ASSERT_TRUE(wait_wr_count(&self->d, 200)) TH_LOG("%ld records", pu.records);

	ASSERT_EQ(0, fv_write_text(unbind, self->d.bdf));
	pthread_join(t, NULL);
	ksft_print_msg("consumer read %ld records, then: %s\n", pu.records, strerror(pu.err));
	EXPECT_EQ(ENODEV, pu.err);
	EXPECT_EQ(0, close(fd));
	memset(b.p, 0x5a, 2 << 20);
	fv_sleep_ms(200);
	for (off = 0; off < (2u << 20); off += 8)
		if (*(uint64_t *)(b.p + off) != 0x5a5a5a5a5a5a5a5aULL)
			break;
	EXPECT_EQ(2u << 20, off) TH_LOG("the board wrote at offset %#zx after unbind", off);
	p1 = fv_pin_counts();
	EXPECT_EQ(p1.acquired - p0.acquired, p1.released - p0.released);
	buf_free(&b);

	ASSERT_EQ(0, fv_write_text(bind, self->d.bdf));
	for (k = 0; k < 500 && fv_find_node(self->d.bdf, node, sizeof(node)); k++)
		fv_sleep_ms(10);
	ASSERT_EQ(0, fv_find_node(self->d.bdf, node, sizeof(node)));
	fd = open(node, O_RDWR);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_INFO, &info));
	close(fd);
}

/* ============================================================ 2 GiB ring */

FIXTURE(huge) {
	struct dev d;
	int fd;
	struct buf b;
};

FIXTURE_SETUP(huge)
{
	const char *why = dev_setup(_metadata, &self->d);
	long long free_pages;

	if (why)
		SETUP_SKIP("%s", why);
	if (self->d.swiotlb || self->d.dma32)
		SETUP_SKIP("a 2 GiB buffer cannot bounce (%s config): plain or iommu only",
			   config_name(&self->d));
	if (fv_proc_kb("/proc/meminfo", "Hugepagesize") != 2048)
		SETUP_SKIP("default hugepage size is not 2 MiB");
	free_pages = huge_free_pages();
	if (free_pages < 1024)
		SETUP_SKIP("2 GiB buffer needs 1024 free 2 MiB hugepages, HugePages_Free is %lld (boot with --hugepages 1100)",
			   free_pages);
	self->fd = dev_open(&self->d, 0);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, huge_alloc(&self->b, 2ULL << 30, false));
}

FIXTURE_TEARDOWN(huge)
{
	if (self->fd >= 0)
		close(self->fd);
	buf_free(&self->b);
	dev_teardown(&self->d);
}

/*
 * Map 2 GiB (32768 LUT entries) and stream once around and a bit: the first
 * blocks, the last ones and the wrap to entry 0 are verified word by word;
 * every block in between by its sequence words.
 */
TEST_F_TIMEOUT(huge, ring_2g_ends, T_HUGE)
{
	static struct fpgastream_block r[1024];
	struct fpgastream_map m;
	struct fpgastream_stats st;
	struct checker c;
	uint64_t nr, burst;
	long n, i;

	ASSERT_EQ(0, do_map(self->fd, self->b.p, 2ULL << 30, 0, &m));
	nr = m.nr_blocks;
	ksft_print_msg("2 GiB: %u blocks, %u segments, mapped_flags %#x\n",
		       m.nr_blocks, m.nr_segments, m.mapped_flags);
	ASSERT_EQ(32768, nr);
	EXPECT_EQ(self->d.translated, !!(m.mapped_flags & FPGASTREAM_MAPPED_IOMMU));
	EXPECT_EQ(0, m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED);

	burst = nr + 8;
	reg_wr(&self->d, R_EMU_BURST, burst);
	checker_init(&c, &self->d, &self->b, nr, LOSS_NONE);
	ASSERT_EQ(0, do_start(self->fd, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	while (c.records < burst) {
		n = fv_records(self->fd, r, 1024, WAIT_MS);
		ASSERT_LT(0, n) TH_LOG("after %ju records: %s", (uintmax_t)c.records,
				       n ? strerror(-n) : "end of stream");
		for (i = 0; i < n; i++) {
			c.full = r[i].seq < 8 || r[i].seq >= nr - 8;
			check_record(_metadata, &c, &r[i]);
		}
		ASSERT_EQ(0, do_release(self->fd, n));
	}
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_STOP, NULL));
	ASSERT_EOF(self->fd);
	ASSERT_EQ(0, do_stats(self->fd, &st));
	EXPECT_EQ(burst, st.blocks_completed);
	EXPECT_EQ(burst, st.blocks_released);
	ASSERT_EQ(0, fv_ioc(self->fd, FPGASTREAM_IOC_UNMAP, NULL));
}

/* ================================================================= main */

FSTR_HARNESS_MAIN
