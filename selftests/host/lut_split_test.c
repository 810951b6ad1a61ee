// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host unit test of the LUT split (kmod/fpgastream_lut.c). Prints TAP.
 *
 * cc -std=gnu11 -O2 -Wall -Wextra -Werror -Ikmod \
 *	selftests/host/lut_split_test.c kmod/fpgastream_lut.c
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fpgastream_hw.h"
#include "fpgastream_lut.h"
#include "tap.h"

#define BS		((uint64_t)FSTR_BLOCK_SIZE)
#define KIB		1024ULL
#define MIB		(1024 * KIB)
#define GIB		(1024 * MIB)
#define MAX_BLOCKS	65536
#define LONG_BITS	(8 * sizeof(unsigned long))

struct seg {
	uint64_t addr;
	uint64_t len;
};

static __u64 entries[MAX_BLOCKS];
static unsigned long split_map[MAX_BLOCKS / LONG_BITS];
static struct fpgastream_lut_split st;

static int is_split(uint32_t i)
{
	return !!(split_map[i / LONG_BITS] & (1UL << (i % LONG_BITS)));
}

/* Run a split over @n segments; return the first error or 0. */
static int run(const struct seg *segs, size_t n, uint32_t capacity,
	       unsigned int bits)
{
	size_t i;
	int ret;

	memset(entries, 0xa5, sizeof(entries));
	memset(split_map, 0, sizeof(split_map));
	fpgastream_lut_split_init(&st, entries, split_map, capacity, bits);
	for (i = 0; i < n; i++) {
		ret = fpgastream_lut_split_add(&st, segs[i].addr, segs[i].len);
		if (ret)
			return ret;
	}
	return fpgastream_lut_split_finish(&st);
}

/* Check entry i == base + i * BS for all nr blocks, with VALID set. */
static int check_linear(uint64_t base, uint32_t nr)
{
	uint32_t i;

	if (st.nr_entries != nr) {
		diag("nr_entries %u, expected %u", st.nr_entries, nr);
		return 0;
	}
	for (i = 0; i < nr; i++) {
		if (entries[i] != ((base + i * BS) | 1)) {
			diag("entry %u = %#llx, expected %#llx", i,
			     (unsigned long long)entries[i],
			     (unsigned long long)((base + i * BS) | 1));
			return 0;
		}
	}
	return 1;
}

static int entries_well_formed(uint32_t nr)
{
	uint32_t i;

	for (i = 0; i < nr; i++) {
		if (!(entries[i] & FSTR_LUT_VALID))
			return 0;
		if (entries[i] & 0xfffeULL)	/* reserved bits 15..1 */
			return 0;
	}
	return 1;
}

static void test_one_big_segment(void)
{
	struct seg s = { 0x100000000ULL, 4 * GIB };
	int ret = run(&s, 1, MAX_BLOCKS, 64);

	report(ret == 0 && check_linear(s.addr, MAX_BLOCKS) &&
	       entries_well_formed(MAX_BLOCKS),
	       "one 4 GiB aligned segment gives 65536 linear entries");
}

static void test_many_64k_segments(void)
{
	static struct seg segs[1024];
	int ret, ok = 1;
	uint32_t i;

	/* scattered 64 KiB segments, in reverse bus order */
	for (i = 0; i < 1024; i++) {
		segs[i].addr = 0x80000000ULL - (uint64_t)i * 3 * BS;
		segs[i].len = BS;
	}
	ret = run(segs, 1024, 1024, 64);
	for (i = 0; ret == 0 && i < 1024; i++)
		if (entries[i] != (segs[i].addr | 1) || is_split(i))
			ok = 0;
	report(ret == 0 && ok && st.nr_entries == 1024,
	       "1024 scattered 64 KiB segments, one entry each");
}

static void test_hugepage_segments(void)
{
	static struct seg segs[64];
	int ret, ok = 1;
	uint32_t i;

	/* one 2 MiB hugepage per segment, not contiguous with each other */
	for (i = 0; i < 64; i++) {
		segs[i].addr = 0x200000000ULL + (uint64_t)(i ^ 5) * 8 * MIB;
		segs[i].len = 2 * MIB;
	}
	ret = run(segs, 64, 64 * 32, 64);
	for (i = 0; ret == 0 && i < 64 * 32; i++) {
		uint64_t want = segs[i / 32].addr + (i % 32) * BS;

		if (entries[i] != (want | 1) || is_split(i))
			ok = 0;
	}
	report(ret == 0 && ok && st.nr_entries == 2048 &&
	       entries_well_formed(2048),
	       "64 hugepages of 2 MiB give 32 entries each");
}

static void test_not_aligned(void)
{
	struct seg a = { 0x10001000ULL, 16 * BS };
	struct seg b[2] = { { 0x10000000ULL, BS }, { 0x20008000ULL, BS } };
	int ret1 = run(&a, 1, 16, 64);
	int ret2 = run(b, 2, 2, 64);

	report(ret1 == -EINVAL && ret2 == -EINVAL && st.nr_entries == 1,
	       "segment not block-aligned on the bus is EINVAL");
}

static void test_straddle_non_contiguous(void)
{
	/* block 1 is split 32 KiB + 32 KiB over two distant segments */
	struct seg segs[2] = {
		{ 0x10000000ULL, BS + 32 * KIB },
		{ 0x30008000ULL, 32 * KIB + BS },
	};
	int ret = run(segs, 2, 3, 64);

	report(ret == -EINVAL && st.nr_entries == 1 &&
	       st.bad_addr == 0x30008000ULL,
	       "block straddling two non-contiguous segments is EINVAL");
}

static void test_adjacent_contiguous(void)
{
	/* 4 KiB pages, each its own segment, but contiguous on the bus */
	static struct seg segs[64];
	struct seg mid[3] = {
		{ 0x40000000ULL, BS + 4 * KIB },
		{ 0x40011000ULL, 60 * KIB },	/* finishes block 1 */
		{ 0x40020000ULL, BS },
	};
	int ret, ret2, ok;
	uint32_t i;

	for (i = 0; i < 64; i++) {
		segs[i].addr = 0x40000000ULL + i * 4 * KIB;
		segs[i].len = 4 * KIB;
	}
	ret = run(segs, 64, 4, 64);
	ok = ret == 0 && check_linear(0x40000000ULL, 4) && is_split(0) &&
	     is_split(3);
	ret2 = run(mid, 3, 3, 64);
	ok = ok && ret2 == 0 && check_linear(0x40000000ULL, 3) &&
	     !is_split(0) && is_split(1) && !is_split(2);
	report(ok, "adjacent bus-contiguous segments form blocks (marked split)");
}

static void test_wide_address(void)
{
	struct seg lo = { 0xffff0000ULL, BS };
	struct seg hi = { 0x100000000ULL, BS };
	struct seg top = { 0xffffffffffff0000ULL, BS };
	int r_lo = run(&lo, 1, 1, 32);
	int ok_lo = r_lo == 0 && check_linear(lo.addr, 1);
	int r_hi = run(&hi, 1, 1, 32);
	int r_top = run(&top, 1, 1, 64);
	int ok_top = r_top == 0 && check_linear(top.addr, 1);
	int r_48 = run(&top, 1, 1, 48);

	report(ok_lo && r_hi == -ERANGE && ok_top && r_48 == -ERANGE,
	       "address wider than dma_addr_bits is ERANGE (32 and 48 bits)");
}

static void test_wide_before_misaligned(void)
{
	struct seg s = { 0x100001000ULL, BS };

	report(run(&s, 1, 1, 32) == -ERANGE,
	       "a wide and misaligned block reports ERANGE");
}

static void test_valid_and_reserved(void)
{
	struct seg s = { 0x0000fedcba980000ULL, 8 * BS };
	int ret = run(&s, 1, 8, 64);

	report(ret == 0 && entries_well_formed(8) &&
	       FSTR_LUT_ENTRY_ADDR(entries[3]) == s.addr + 3 * BS &&
	       entries[0] == 0x0000fedcba980001ULL,
	       "entries carry VALID (bit 0) and zero reserved bits 15..1");
}

static void test_zero_length(void)
{
	struct seg segs[4] = {
		{ 0x50000000ULL, 0 },
		{ 0x50000000ULL, 32 * KIB },
		{ 0x12345678ULL, 0 },	/* ignored, even mid-block */
		{ 0x50008000ULL, 32 * KIB },
	};
	int ret = run(segs, 4, 1, 64);
	int ok = ret == 0 && check_linear(0x50000000ULL, 1);
	int ret_none = run(segs, 1, 1, 64);

	report(ok && ret_none == 0 && st.nr_entries == 0,
	       "zero-length segments are ignored");
}

static void test_partial_tail(void)
{
	struct seg s = { 0x60000000ULL, BS + 4 * KIB };

	report(run(&s, 1, 2, 64) == -EINVAL && st.nr_entries == 1,
	       "segments ending mid-block is EINVAL at finish");
}

static void test_overflow(void)
{
	struct seg s = { 0x70000000ULL, 3 * BS };
	struct seg wrap = { 0xffffffffffff0000ULL, 2 * BS };
	int r_cap = run(&s, 1, 2, 64);
	int n_cap = st.nr_entries;
	int r_wrap = run(&wrap, 1, 4, 64);
	int r_zero = run(&s, 1, 0, 64);

	report(r_cap == -EOVERFLOW && n_cap == 2 && r_wrap == -EINVAL &&
	       r_zero == -EOVERFLOW,
	       "more blocks than capacity is EOVERFLOW, wrapping segment EINVAL");
}

static void test_segment_spanning_blocks_mid(void)
{
	/* 96 KiB + 32 KiB + 64 KiB, all contiguous except the last */
	struct seg segs[3] = {
		{ 0x80000000ULL, 96 * KIB },
		{ 0x80018000ULL, 32 * KIB },
		{ 0x90000000ULL, BS },
	};
	int ret = run(segs, 3, 3, 64);

	report(ret == 0 && st.nr_entries == 3 &&
	       entries[0] == (0x80000000ULL | 1) &&
	       entries[1] == (0x80010000ULL | 1) &&
	       entries[2] == (0x90000000ULL | 1) &&
	       !is_split(0) && is_split(1) && !is_split(2),
	       "segments starting and ending mid-block");
}

int main(void)
{
	printf("1..13\n");
	test_one_big_segment();
	test_many_64k_segments();
	test_hugepage_segments();
	test_not_aligned();
	test_straddle_non_contiguous();
	test_adjacent_contiguous();
	test_wide_address();
	test_wide_before_misaligned();
	test_valid_and_reserved();
	test_zero_length();
	test_partial_tail();
	test_overflow();
	test_segment_spanning_blocks_mid();
	return failed ? 1 : 0;
}
