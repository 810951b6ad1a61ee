/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Split the DMA segments of a buffer mapping into FSTR LUT entries, and
 * work out which bus ranges to sync for one block.
 *
 * Pure code: no kernel-only includes, so that the host unit tests
 * (selftests/host/lut_split_test.c, selftests/host/sync_ranges_test.c)
 * compile it with a plain C compiler against the linux-libc-dev headers.
 */
#ifndef FPGASTREAM_LUT_H
#define FPGASTREAM_LUT_H

#include <linux/errno.h>
#include <linux/types.h>

/**
 * struct fpgastream_lut_split - state of one split, fed segment by segment
 * @entries: out: LUT entries, entry i covers buffer offset i * block size
 * @split_map: out, optional: bitmap (bit i in word i / BITS_PER_LONG) of
 *	the blocks that span more than one DMA segment
 * @capacity: room in @entries
 * @nr_entries: entries written so far
 * @addr_bits: width of the bus addresses the device emits (16 < n <= 64)
 * @cur_start: bus address of the block being assembled
 * @cur_fill: bytes of that block seen so far; 0 between blocks
 * @cur_pieces: DMA segments that contributed to that block
 * @bad_addr: on error, the offending bus address
 */
struct fpgastream_lut_split {
	__u64 *entries;
	unsigned long *split_map;
	__u32 capacity;
	__u32 nr_entries;
	unsigned int addr_bits;
	__u64 cur_start;
	__u64 cur_fill;
	unsigned int cur_pieces;
	__u64 bad_addr;
};

void fpgastream_lut_split_init(struct fpgastream_lut_split *s, __u64 *entries,
			       unsigned long *split_map, __u32 capacity,
			       unsigned int addr_bits);
int fpgastream_lut_split_add(struct fpgastream_lut_split *s, __u64 addr, __u64 len);
int fpgastream_lut_split_finish(struct fpgastream_lut_split *s);

/**
 * struct fpgastream_bus_range - bytes at a bus address
 * @bus: bus (DMA) address
 * @len: bytes
 */
struct fpgastream_bus_range {
	__u64 bus;
	__u64 len;
};

/* Called by fpgastream_block_sync_ranges() once per range to sync. */
typedef void (*fpgastream_sync_fn)(void *ctx, __u64 bus, __u64 len);

unsigned int fpgastream_block_sync_ranges(const __u64 *pfn, unsigned int page_shift,
					  const struct fpgastream_bus_range *pieces,
					  unsigned int nr_pieces,
					  fpgastream_sync_fn sync, void *ctx);

#endif /* FPGASTREAM_LUT_H */
