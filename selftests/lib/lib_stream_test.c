// SPDX-License-Identifier: GPL-2.0-only
/*
 * libfpgastream against the module and the reference device (runs in the
 * VM, linked with libfpgastream.a).  The test sets the emulator's seed,
 * burst and fault injection through the PCI sysfs file resource0; the
 * library never touches them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fpgastream.h"

/* The 6.1 harness is written for -Wall, not -Wextra: unused parameters in
 * its macros, and EXPECT_EQ(constant, unsigned) by design. */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"
#include "fstr_harness.h"

#define BLOCK		65536u
#define EMU_RATE	0x1000
#define EMU_SEED	0x1004
#define EMU_BURST	0x1008
#define EMU_INJECT	0x100c
#define SEED		0x5eed1234u

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* 1 when the block holds source sequence s of the pattern with `seed`. */
static int block_ok(const void *data, uint64_t seed, uint64_t s)
{
	const uint64_t *w = data;

	if (w[0] != s || w[1] != ~s)
		return 0;
	for (unsigned int i = 2; i < BLOCK / 8; i++)
		if (w[i] != splitmix64(seed ^ (s << 13) ^ i))
			return 0;
	return 1;
}

/* BAR0 of board 0 through resource0, or NULL. */
static volatile uint32_t *emu_regs(void)
{
	char link[PATH_MAX], path[PATH_MAX + 64];
	const char *bdf;
	ssize_t n;
	void *p;
	int fd;

	n = readlink("/sys/class/fpgastream/fpgastream0/device", link, sizeof(link) - 1);
	if (n <= 0)
		return NULL;
	link[n] = 0;
	bdf = strrchr(link, '/');
	bdf = bdf ? bdf + 1 : link;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0)
		return NULL;
	p = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static void emu_write(volatile uint32_t *r, unsigned int off, uint32_t v)
{
	r[off / 4] = v;
}

FIXTURE(lib) {
	struct fpgastream *h;
	struct fpgastream_buffer buf;
	struct fpgastream_info info;
	volatile uint32_t *emu;
};

FIXTURE_SETUP(lib)
{
	int err = fpgastream_open(0, &self->h);

	ASSERT_EQ(0, err) TH_LOG("open board 0: %s", fpgastream_strerror(err));
	ASSERT_EQ(0, fpgastream_info(self->h, &self->info));
	self->emu = emu_regs();
	ASSERT_NE(NULL, self->emu) TH_LOG("cannot map the test block (resource0)");
	emu_write(self->emu, EMU_SEED, SEED);
	emu_write(self->emu, EMU_RATE, 0);
	emu_write(self->emu, EMU_BURST, 0);
	memset(&self->buf, 0, sizeof(self->buf));
}

FIXTURE_TEARDOWN(lib)
{
	if (self->emu) {
		emu_write(self->emu, EMU_BURST, 0);
		emu_write(self->emu, EMU_RATE, 0);
	}
	fpgastream_close(self->h);
	fpgastream_buffer_free(&self->buf);
}

TEST_F(lib, info)
{
	EXPECT_EQ(FPGASTREAM_ABI_VERSION, self->info.abi_version);
	EXPECT_EQ(BLOCK, self->info.block_size);
	EXPECT_EQ((uint64_t)self->info.lut_capacity * BLOCK, self->info.max_buffer_size);
	EXPECT_STREQ("/dev/fpgastream0", fpgastream_path(self->h));
	EXPECT_LE(0, fpgastream_fd(self->h));
}

/* The whole API: alloc, map, start, wait, check data through the record's
 * pointer, release, stop, drain to -ENODATA, stats, unmap. */
TEST_F(lib, stream_and_verify)
{
	struct fpgastream_record r[64];
	struct fpgastream_map m;
	struct fpgastream_stats st;
	uint64_t got = 0, next = 0, bad = 0, drained = 0;
	int n, err;

	ASSERT_EQ(0, fpgastream_buffer_alloc(&self->buf, 8u << 20, 0));
	TH_LOG("buffer in %zu-byte pages %s", self->buf.page_size, self->buf.note);
	err = fpgastream_map(self->h, self->buf.base, self->buf.length, 0, &m);
	ASSERT_EQ(0, err) TH_LOG("%s", fpgastream_last_error(self->h));
	EXPECT_EQ(128, m.nr_blocks);
	ASSERT_EQ(0, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 4, 1000));

	while (got < 400) {
		n = fpgastream_wait(self->h, r, 64, 5000);
		ASSERT_LT(0, n) TH_LOG("wait: %d %s", n, fpgastream_last_error(self->h));
		for (int i = 0; i < n; i++) {
			EXPECT_EQ(next, r[i].seq);
			EXPECT_EQ(0, r[i].lost);
			EXPECT_EQ(BLOCK, r[i].length);
			EXPECT_EQ((char *)self->buf.base + r[i].offset, r[i].data);
			if (!block_ok(r[i].data, SEED, r[i].seq))
				bad++;
			next = r[i].seq + 1;
		}
		got += n;
		ASSERT_EQ(0, fpgastream_release(self->h, n));
	}
	EXPECT_EQ(0, bad);

	ASSERT_EQ(0, fpgastream_stop(self->h));
	for (;;) {
		n = fpgastream_wait(self->h, r, 64, 2000);
		if (n <= 0)
			break;
		drained += n;
		ASSERT_EQ(0, fpgastream_release(self->h, n));
	}
	EXPECT_EQ(-ENODATA, n) TH_LOG("after stop and drain: %d", n);
	/* Flow control holds the board at one ring of unreleased blocks. */
	EXPECT_GE(128, drained);
	ASSERT_EQ(0, fpgastream_stats(self->h, &st));
	EXPECT_EQ(got + drained, st.blocks_announced);
	EXPECT_EQ(got + drained, st.blocks_released);
	EXPECT_EQ(0, fpgastream_unmap(self->h));
}

TEST_F(lib, wait_times_out_when_source_stops)
{
	struct fpgastream_record r[16];
	uint64_t got = 0;
	struct timespec t0, t1;
	int n;

	emu_write(self->emu, EMU_BURST, 10);
	ASSERT_EQ(0, fpgastream_buffer_alloc(&self->buf, 2u << 20, 0));
	ASSERT_EQ(0, fpgastream_map(self->h, self->buf.base, self->buf.length, 0, NULL));
	ASSERT_EQ(0, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	while (got < 10) {
		n = fpgastream_wait(self->h, r, 16, 5000);
		ASSERT_LT(0, n);
		got += n;
		fpgastream_release(self->h, n);
	}
	EXPECT_EQ(10, got);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(0, fpgastream_wait(self->h, r, 16, 300));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Slept, did not return at once (no busy loop, no early return). */
	EXPECT_LE(250, (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	EXPECT_EQ(0, fpgastream_wait(self->h, r, 16, 0));
	EXPECT_EQ(0, fpgastream_stop(self->h));
	EXPECT_EQ(-ENODATA, fpgastream_wait(self->h, r, 16, 1000));
}

TEST_F(lib, overwrite_reports_loss)
{
	struct fpgastream_record r[64];
	uint64_t lost = 0, overruns = 0;
	int n;

	ASSERT_EQ(0, fpgastream_buffer_alloc(&self->buf, 1u << 20, 0));
	ASSERT_EQ(0, fpgastream_map(self->h, self->buf.base, self->buf.length, 0, NULL));
	ASSERT_EQ(0, fpgastream_start(self->h, 0, 1, 0));
	usleep(300 * 1000);	/* let the board lap the 16-block ring */
	for (int k = 0; k < 10; k++) {
		n = fpgastream_wait(self->h, r, 64, 2000);
		ASSERT_LT(0, n) TH_LOG("wait: %d %s", n, fpgastream_last_error(self->h));
		for (int i = 0; i < n; i++) {
			lost += r[i].lost;
			overruns += !!(r[i].flags & FPGASTREAM_BLOCK_OVERRUN);
		}
		fpgastream_release(self->h, n);
	}
	EXPECT_LT(0, lost);
	EXPECT_LT(0, overruns);
	EXPECT_EQ(0, fpgastream_stop(self->h));
}

TEST_F(lib, fault_is_eio)
{
	struct fpgastream_record r[64];
	int n, records = 0;

	ASSERT_EQ(0, fpgastream_buffer_alloc(&self->buf, 2u << 20, 0));
	ASSERT_EQ(0, fpgastream_map(self->h, self->buf.base, self->buf.length, 0, NULL));
	emu_write(self->emu, EMU_BURST, 5);
	ASSERT_EQ(0, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	while (records < 5) {
		n = fpgastream_wait(self->h, r, 64, 5000);
		ASSERT_LT(0, n);
		records += n;
		fpgastream_release(self->h, n);
	}
	emu_write(self->emu, EMU_INJECT, 1);	/* the next block: DMA_ERROR */
	emu_write(self->emu, EMU_BURST, 0);
	for (;;) {
		n = fpgastream_wait(self->h, r, 64, 5000);
		if (n <= 0)
			break;
		fpgastream_release(self->h, n);
	}
	EXPECT_EQ(-EIO, n) TH_LOG("wait after an injected DMA error: %d", n);
	EXPECT_NE(NULL, strstr(fpgastream_last_error(self->h), "fault"));
	EXPECT_EQ(0, fpgastream_unmap(self->h));
	/* And it recovers. */
	ASSERT_EQ(0, fpgastream_map(self->h, self->buf.base, self->buf.length, 0, NULL));
	ASSERT_EQ(0, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	n = fpgastream_wait(self->h, r, 64, 5000);
	EXPECT_LT(0, n);
	EXPECT_EQ(0, fpgastream_unmap(self->h));
}

TEST_F(lib, argument_and_state_errors)
{
	struct fpgastream *h2;
	int err;

	ASSERT_EQ(0, fpgastream_buffer_alloc(&self->buf, 2u << 20, 0));
	EXPECT_EQ(-EINVAL, fpgastream_map(self->h, (char *)self->buf.base + 4096, BLOCK, 0, NULL));
	EXPECT_NE(NULL, strstr(fpgastream_last_error(self->h), "aligned"));
	EXPECT_EQ(-EINVAL, fpgastream_map(self->h, self->buf.base, BLOCK + 4096, 0, NULL));
	EXPECT_EQ(-EINVAL, fpgastream_map(self->h, self->buf.base, self->info.max_buffer_size + BLOCK, 0, NULL));
	EXPECT_EQ(-EINVAL, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 0, 0));

	ASSERT_EQ(0, fpgastream_map(self->h, self->buf.base, self->buf.length, 0, NULL));
	/* The board takes one mapping: a second file gets -EBUSY on MAP. */
	ASSERT_EQ(0, fpgastream_open(0, &h2));
	err = fpgastream_map(h2, self->buf.base, self->buf.length, 0, NULL);
	EXPECT_EQ(-EBUSY, err);
	EXPECT_NE(NULL, strstr(fpgastream_last_error(h2), "already"));
	fpgastream_close(h2);

	ASSERT_EQ(0, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	EXPECT_EQ(-EBUSY, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	EXPECT_EQ(-EINVAL, fpgastream_release(self->h, 1000000));
	EXPECT_NE(NULL, strstr(fpgastream_last_error(self->h), "more than"));
	EXPECT_EQ(0, fpgastream_stop(self->h));
	EXPECT_EQ(0, fpgastream_unmap(self->h));
}

/* Beyond RLIMIT_MEMLOCK without CAP_IPC_LOCK: -ENOMEM saying ulimit -l. */
TEST_F(lib, memlock_message)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct cap[2];
	struct rlimit rl = { 1u << 20, 1u << 20 };
	int err;

	ASSERT_EQ(0, fpgastream_buffer_alloc(&self->buf, 4u << 20, 0));
	/* The harness runs each test in its own child: changes stay here. */
	ASSERT_EQ(0, syscall(SYS_capget, &hdr, cap));
	cap[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	ASSERT_EQ(0, syscall(SYS_capset, &hdr, cap));
	ASSERT_EQ(0, setrlimit(RLIMIT_MEMLOCK, &rl));
	err = fpgastream_map(self->h, self->buf.base, self->buf.length, 0, NULL);
	EXPECT_EQ(-ENOMEM, err);
	EXPECT_NE(NULL, strstr(fpgastream_last_error(self->h), "ulimit -l"))
		TH_LOG("%s", fpgastream_last_error(self->h));
}

/* 4 KiB pages: without an IOMMU either refused with a message naming
 * hugepages, or (where the kernel bounces every block anyway, swiotlb=force)
 * streaming right; behind an IOMMU streaming. */
TEST_F(lib, small_pages)
{
	struct fpgastream_record r[8];
	int err, n;

	ASSERT_EQ(0, fpgastream_buffer_alloc(&self->buf, 2u << 20, FPGASTREAM_ALLOC_4K));
	EXPECT_EQ(4096, self->buf.page_size);
	err = fpgastream_map(self->h, self->buf.base, self->buf.length, 0, NULL);
	if (!(self->info.flags & FPGASTREAM_INFO_IOMMU) && err) {
		EXPECT_EQ(-EINVAL, err);
		EXPECT_NE(NULL, strstr(fpgastream_last_error(self->h), "hugepages"))
			TH_LOG("%s", fpgastream_last_error(self->h));
		return;
	}
	ASSERT_EQ(0, err) TH_LOG("%s", fpgastream_last_error(self->h));
	ASSERT_EQ(0, fpgastream_start(self->h, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	for (uint64_t got = 0; got < 100; got += n) {
		n = fpgastream_wait(self->h, r, 8, 5000);
		ASSERT_LT(0, n);
		for (int i = 0; i < n; i++) {
			ASSERT_TRUE(block_ok(r[i].data, SEED, r[i].seq))
				TH_LOG("block seq %llu is wrong", (unsigned long long)r[i].seq);
		}
		fpgastream_release(self->h, n);
	}
	EXPECT_EQ(0, fpgastream_unmap(self->h));
}

TEST(open_missing)
{
	struct fpgastream *h = (struct fpgastream *)1;

	EXPECT_EQ(-ENOENT, fpgastream_open(99, &h));
	EXPECT_EQ(NULL, h);
}

FSTR_HARNESS_MAIN
