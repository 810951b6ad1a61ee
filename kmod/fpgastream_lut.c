// SPDX-License-Identifier: GPL-2.0-only
/*
 * Split the DMA segments of a buffer mapping into FSTR LUT entries.
 *
 * The device reads its buffer as a ring of blocks (64 KiB), each of which
 * must be bus-contiguous and block-aligned on the bus. The DMA API hands us
 * the mapping as a list of (bus address, length) segments in buffer order;
 * they may start or end in the middle of a block. A block may be assembled
 * from pieces of several segments as long as the pieces are bus-contiguous:
 * two adjacent segments that happen to continue each other on the bus form
 * one contiguous block, which the device cannot tell from a single segment.
 * Such blocks are marked in the optional split map, because syncing them
 * for the CPU must be done segment by segment.
 *
 * Errors, checked when a block starts and as it grows:
 *  -ERANGE	the block lies above what addr_bits can address (checked
 *		first: no alignment could fix it);
 *  -EINVAL	the block does not start block-aligned on the bus, or a
 *		piece of it is not bus-contiguous with the previous piece,
 *		or the segments end in the middle of a block, or a segment
 *		wraps around the top of the address space;
 *  -EOVERFLOW	more blocks than @capacity.
 * Zero-length segments are ignored.
 */
#include "fpgastream_lut.h"
#include "fpgastream_hw.h"

#define FSTR_LUT_BITS_PER_LONG	(8 * sizeof(unsigned long))

/**
 * fpgastream_lut_split_init() - start a split
 * @s: state to initialise
 * @entries: output array of @capacity LUT entries
 * @split_map: optional zeroed bitmap of @capacity bits, or NULL
 * @capacity: number of blocks the buffer holds (and room in @entries)
 * @addr_bits: DMA_ADDR_BITS of the board
 */
void fpgastream_lut_split_init(struct fpgastream_lut_split *s, __u64 *entries,
			       unsigned long *split_map, __u32 capacity,
			       unsigned int addr_bits)
{
	s->entries = entries;
	s->split_map = split_map;
	s->capacity = capacity;
	s->nr_entries = 0;
	s->addr_bits = addr_bits;
	s->cur_start = 0;
	s->cur_fill = 0;
	s->cur_pieces = 0;
	s->bad_addr = 0;
}

/* Does the block-aligned window around @addr reach above addr_bits? */
static int fpgastream_lut_too_wide(const struct fpgastream_lut_split *s, __u64 addr)
{
	__u64 last = addr | (FSTR_BLOCK_SIZE - 1);

	return s->addr_bits < 64 && (last >> s->addr_bits) != 0;
}

static void fpgastream_lut_emit(struct fpgastream_lut_split *s)
{
	__u32 i = s->nr_entries;

	s->entries[i] = FSTR_LUT_ENTRY(s->cur_start);
	if (s->split_map && s->cur_pieces > 1)
		s->split_map[i / FSTR_LUT_BITS_PER_LONG] |=
			1UL << (i % FSTR_LUT_BITS_PER_LONG);
	s->nr_entries++;
	s->cur_fill = 0;
	s->cur_pieces = 0;
}

/**
 * fpgastream_lut_split_add() - feed the next DMA segment, in buffer order
 * @s: split state
 * @addr: bus address of the segment
 * @len: length of the segment in bytes
 *
 * Return: 0, or a negative errno (see the top of this file); on error
 * @s->nr_entries is the index of the offending block and @s->bad_addr the
 * bus address that broke it.
 */
int fpgastream_lut_split_add(struct fpgastream_lut_split *s, __u64 addr, __u64 len)
{
	if (!len)
		return 0;
	if (addr + (len - 1) < addr) {
		s->bad_addr = addr;
		return -EINVAL;
	}

	while (len) {
		__u64 take;

		if (!s->cur_fill) {
			if (s->nr_entries >= s->capacity) {
				s->bad_addr = addr;
				return -EOVERFLOW;
			}
			if (fpgastream_lut_too_wide(s, addr)) {
				s->bad_addr = addr;
				return -ERANGE;
			}
			if (addr & (FSTR_BLOCK_SIZE - 1)) {
				s->bad_addr = addr;
				return -EINVAL;
			}
			s->cur_start = addr;
		} else if (addr != s->cur_start + s->cur_fill) {
			s->bad_addr = addr;
			return -EINVAL;
		}

		take = FSTR_BLOCK_SIZE - s->cur_fill;
		if (take > len)
			take = len;
		s->cur_fill += take;
		s->cur_pieces++;
		addr += take;
		len -= take;

		if (s->cur_fill == FSTR_BLOCK_SIZE)
			fpgastream_lut_emit(s);
	}
	return 0;
}

/**
 * fpgastream_lut_split_finish() - end a split
 * @s: split state
 *
 * Return: 0 if the segments ended on a block boundary, else -EINVAL.
 */
int fpgastream_lut_split_finish(struct fpgastream_lut_split *s)
{
	if (s->cur_fill) {
		s->bad_addr = s->cur_start + s->cur_fill;
		return -EINVAL;
	}
	return 0;
}
