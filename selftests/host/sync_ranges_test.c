// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host unit test of the sync ranges (fpgastream_block_sync_ranges() in
 * kmod/fpgastream_lut.c): the bus ranges the driver hands to the DMA API's
 * single-range syncs for one block. The DMA API translates a range's first
 * bus address only, so every range must be contiguous both on the bus
 * (inside one DMA segment piece) and in CPU memory; together they must
 * cover the block exactly, in order. x86 under QEMU cannot show a wrong
 * range (its syncs are no-ops behind an IOMMU), so this is where it shows.
 * Prints TAP.
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
#define MAX_PAGES	64
#define MAX_RANGES	256

struct range {
	uint64_t bus;
	uint64_t len;
};

static struct range got[MAX_RANGES];
static unsigned int nr_got;

static void collect(void *ctx, __u64 bus, __u64 len)
{
	(void)ctx;
	if (nr_got < MAX_RANGES)
		got[nr_got] = (struct range){ bus, len };
	nr_got++;
}

static unsigned int run(const __u64 *pfn, unsigned int shift,
			const struct fpgastream_bus_range *pieces, unsigned int n)
{
	unsigned int ret;

	nr_got = 0;
	ret = fpgastream_block_sync_ranges(pfn, shift, pieces, n, collect, NULL);
	return ret == nr_got ? ret : ~0U;
}

static int same(const struct range *want, unsigned int n)
{
	unsigned int i;

	if (nr_got != n)
		return 0;
	for (i = 0; i < n; i++)
		if (got[i].bus != want[i].bus || got[i].len != want[i].len)
			return 0;
	return 1;
}

/* Bus address of block offset @off through @pieces; ~0 if past the end. */
static uint64_t bus_of(const struct fpgastream_bus_range *pieces, unsigned int n,
		       uint64_t off, unsigned int *piece)
{
	unsigned int p;

	for (p = 0; p < n; p++) {
		if (off < pieces[p].len) {
			*piece = p;
			return pieces[p].bus + off;
		}
		off -= pieces[p].len;
	}
	return ~0ULL;
}

/*
 * Check the ranges against the definition: in order, covering the block
 * once; each inside one piece and one physically contiguous run, with
 * the bus address the pieces give; and as few as that allows (two
 * neighbours could not have been one range).
 */
static int valid(const __u64 *pfn, unsigned int shift,
		 const struct fpgastream_bus_range *pieces, unsigned int n,
		 char *why, size_t whylen)
{
	uint64_t pmask = (1ULL << shift) - 1;
	uint64_t off = 0;
	unsigned int i;

	for (i = 0; i < nr_got; i++) {
		unsigned int p0 = 0, p1 = 0;
		uint64_t o;

		if (!got[i].len) {
			snprintf(why, whylen, "range %u is empty", i);
			return 0;
		}
		if (bus_of(pieces, n, off, &p0) != got[i].bus) {
			snprintf(why, whylen, "range %u at offset %llu has bus %#llx", i,
				 (unsigned long long)off, (unsigned long long)got[i].bus);
			return 0;
		}
		for (o = off; o < off + got[i].len; o++) {
			uint64_t phys = (pfn[o >> shift] << shift) + (o & pmask);
			uint64_t phys0 = (pfn[off >> shift] << shift) + (off & pmask);

			if (bus_of(pieces, n, o, &p1) == ~0ULL || p1 != p0) {
				snprintf(why, whylen, "range %u crosses a piece", i);
				return 0;
			}
			if (phys != phys0 + (o - off)) {
				snprintf(why, whylen, "range %u is not contiguous in CPU memory", i);
				return 0;
			}
			/* Checking each page's first byte is enough. */
			o |= pmask;
		}
		if (i) {
			uint64_t prev_last = off - 1;
			uint64_t prev_phys = (pfn[prev_last >> shift] << shift) + (prev_last & pmask);
			uint64_t phys = (pfn[off >> shift] << shift) + (off & pmask);
			unsigned int pp = 0;

			bus_of(pieces, n, prev_last, &pp);
			if (pp == p0 && phys == prev_phys + 1) {
				snprintf(why, whylen, "ranges %u and %u could be one", i - 1, i);
				return 0;
			}
		}
		off += got[i].len;
	}
	if (off != BS) {
		snprintf(why, whylen, "the ranges cover %llu bytes", (unsigned long long)off);
		return 0;
	}
	return 1;
}

static void contiguous(__u64 *pfn, unsigned int npages, __u64 first)
{
	unsigned int i;

	for (i = 0; i < npages; i++)
		pfn[i] = first + i;
}

int main(void)
{
	const unsigned int shift = 12, npages = BS >> 12;
	struct fpgastream_bus_range pieces[MAX_PAGES];
	__u64 pfn[MAX_PAGES];
	char why[128];
	unsigned int i, n, iter;
	int ok;

	printf("TAP version 13\n1..10\n");

	/* A block of a hugepage inside one segment: one sync of 64 KiB. */
	contiguous(pfn, npages, 0x80000);
	pieces[0] = (struct fpgastream_bus_range){ 0xfff00000, BS };
	n = run(pfn, shift, pieces, 1);
	report(n == 1 && same((struct range[]){ { 0xfff00000, BS } }, 1),
	       "hugepage block in one segment: one range of 64 KiB");

	/* 16 scattered 4 KiB pages behind one 64 KiB IOVA range. */
	for (i = 0; i < npages; i++)
		pfn[i] = 0x1000 + 7 * (npages - i);
	n = run(pfn, shift, pieces, 1);
	ok = n == npages;
	for (i = 0; ok && i < npages; i++)
		ok = got[i].bus == 0xfff00000 + i * 4096ULL && got[i].len == 4096;
	report(ok, "scattered pages behind an IOMMU: one 4 KiB range per page at its IOVA");

	/* Two physically contiguous halves: two ranges. */
	contiguous(pfn, 8, 0x2000);
	contiguous(pfn + 8, 8, 0x9000);
	n = run(pfn, shift, pieces, 1);
	report(n == 2 && same((struct range[]){ { 0xfff00000, BS / 2 },
						{ 0xfff00000 + BS / 2, BS / 2 } }, 2),
	       "two contiguous runs: two ranges of 32 KiB");

	/* Contiguous memory, but two DMA segments: split where they meet. */
	contiguous(pfn, npages, 0x3000);
	pieces[0] = (struct fpgastream_bus_range){ 0x40000, 24576 };
	pieces[1] = (struct fpgastream_bus_range){ 0x40000 + 24576, BS - 24576 };
	n = run(pfn, shift, pieces, 2);
	report(n == 2 && same((struct range[]){ { 0x40000, 24576 },
						{ 0x40000 + 24576, BS - 24576 } }, 2),
	       "block split over two segments: one range per segment");

	/* Both: a segment boundary inside a physically contiguous run. */
	contiguous(pfn, 4, 0x5000);
	contiguous(pfn + 4, 12, 0x7000);
	pieces[0] = (struct fpgastream_bus_range){ 0x100000, 8192 };
	pieces[1] = (struct fpgastream_bus_range){ 0x100000 + 8192, BS - 8192 };
	n = run(pfn, shift, pieces, 2);
	report(n == 3 && same((struct range[]){ { 0x100000, 8192 },
						{ 0x100000 + 8192, 8192 },
						{ 0x100000 + 16384, BS - 16384 } }, 3),
	       "segment boundary and page discontinuity: three ranges");

	/* 64 KiB pages (arm64, ppc64): one page is the whole block. */
	pfn[0] = 0x42;
	pieces[0] = (struct fpgastream_bus_range){ 0x420000, BS };
	n = run(pfn, 16, pieces, 1);
	report(n == 1 && same((struct range[]){ { 0x420000, BS } }, 1),
	       "64 KiB pages: one range");

	/* Zero-length pieces are skipped, not looped on. */
	contiguous(pfn, npages, 0x6000);
	pieces[0] = (struct fpgastream_bus_range){ 0x200000, 0 };
	pieces[1] = (struct fpgastream_bus_range){ 0x200000, BS };
	pieces[2] = (struct fpgastream_bus_range){ 0x300000, 0 };
	n = run(pfn, shift, pieces, 3);
	report(n == 1 && same((struct range[]){ { 0x200000, BS } }, 1),
	       "zero-length pieces are ignored");

	/* Pieces that end early: only what they cover is synced. */
	pieces[0] = (struct fpgastream_bus_range){ 0x200000, BS / 2 };
	n = run(pfn, shift, pieces, 1);
	report(n == 1 && same((struct range[]){ { 0x200000, BS / 2 } }, 1),
	       "pieces short of the block: nothing beyond them is synced");

	/* Random layouts against the definition. */
	srand(1);
	ok = 1;
	for (iter = 0; ok && iter < 20000; iter++) {
		unsigned int np = 0;
		uint64_t left = BS;
		__u64 base = 0x10000 + (rand() % 1000) * 64;

		for (i = 0; i < npages; i++) {
			/* Mostly contiguous, sometimes a jump, sometimes backwards. */
			switch (rand() % 4) {
			case 0:
				base += 1 + rand() % 100;
				break;
			case 1:
				base -= base > 50 ? 1 + rand() % 40 : 0;
				break;
			default:
				base++;
			}
			pfn[i] = base;
		}
		while (left) {
			uint64_t len = 4096ULL * (1 + rand() % 16);

			if (len > left)
				len = left;
			pieces[np].bus = 0x1000000ULL * (1 + rand() % 64) + 4096ULL * (rand() % 256);
			pieces[np].len = len;
			left -= len;
			np++;
		}
		n = run(pfn, shift, pieces, np);
		ok = n != ~0U && valid(pfn, shift, pieces, np, why, sizeof(why));
	}
	report(ok, "20000 random layouts: ranges exact, contiguous and fewest%s%s",
	       ok ? "" : ": ", ok ? "" : why);

	/* The same at byte granularity of piece ends (not page multiples). */
	ok = 1;
	for (iter = 0; ok && iter < 5000; iter++) {
		unsigned int np = 0;
		uint64_t left = BS;

		for (i = 0; i < npages; i++)
			pfn[i] = (rand() % 3) ? (i ? pfn[i - 1] + 1 : 0x777) : 0x100 + (__u64)(rand() % 5000);
		while (left) {
			uint64_t len = 1 + rand() % 20000;

			if (len > left)
				len = left;
			pieces[np].bus = 0x1000000ULL * (1 + rand() % 64) + rand() % 4096;
			pieces[np].len = len;
			left -= len;
			np++;
		}
		n = run(pfn, shift, pieces, np);
		ok = n != ~0U && valid(pfn, shift, pieces, np, why, sizeof(why));
	}
	report(ok, "5000 random layouts with pieces ending mid-page%s%s",
	       ok ? "" : ": ", ok ? "" : why);

	return failed ? 1 : 0;
}
