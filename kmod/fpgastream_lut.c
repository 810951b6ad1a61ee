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
 *
 * fpgastream_block_sync_ranges() answers the other question a block asks
 * of its mapping: which bus ranges to hand to the DMA API's single-range
 * syncs so that exactly the memory behind the block is synced.
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

/**
 * fpgastream_block_sync_ranges() - the bus ranges to sync for one block
 * @pfn: page frame numbers of the block's CPU pages, in buffer order
 *	(FSTR_BLOCK_SIZE >> @page_shift of them, at least one)
 * @page_shift: log2 of the CPU page size, at most FSTR_BLOCK_SHIFT
 * @pieces: the pieces of DMA segments that make up the block, in buffer
 *	order: a block within one segment is one piece; they add up to
 *	FSTR_BLOCK_SIZE
 * @nr_pieces: entries in @pieces
 * @sync: called for each range, in buffer order
 * @ctx: passed to @sync
 *
 * The DMA API syncs a range of bus addresses by translating its first
 * address only and then syncing that many bytes of CPU memory from there
 * (the IOMMU DMA ops do exactly that; swiotlb copies from the bounce
 * buffer to the original memory the same way). A range handed to it must
 * therefore be contiguous both on the bus and in CPU memory: a 64 KiB
 * IOVA range behind an IOMMU may cover 16 scattered 4 KiB pages. So a
 * range ends where the block's pages stop being physically contiguous,
 * and where one DMA segment piece ends (the next piece is another mapping
 * for the DMA layer, even where it continues on the bus).
 *
 * Return: the number of ranges passed to @sync.
 */
unsigned int fpgastream_block_sync_ranges(const __u64 *pfn, unsigned int page_shift,
					  const struct fpgastream_bus_range *pieces,
					  unsigned int nr_pieces,
					  fpgastream_sync_fn sync, void *ctx)
{
	__u64 page_mask = (1ULL << page_shift) - 1;
	__u64 off = 0, piece_off = 0, phys_end = 0;
	__u64 cur_bus = 0, cur_len = 0;
	unsigned int p = 0, nr = 0;

	while (off < FSTR_BLOCK_SIZE && p < nr_pieces) {
		__u64 phys = (pfn[off >> page_shift] << page_shift) + (off & page_mask);
		__u64 n = (page_mask + 1) - (off & page_mask);

		if (!pieces[p].len) {
			p++;
			continue;
		}

		if (n > pieces[p].len - piece_off)
			n = pieces[p].len - piece_off;
		if (n > FSTR_BLOCK_SIZE - off)
			n = FSTR_BLOCK_SIZE - off;

		/* Same piece and physically contiguous: the range grows. */
		if (cur_len && piece_off && phys == phys_end) {
			cur_len += n;
		} else {
			if (cur_len) {
				sync(ctx, cur_bus, cur_len);
				nr++;
			}
			cur_bus = pieces[p].bus + piece_off;
			cur_len = n;
		}
		phys_end = phys + n;
		off += n;
		piece_off += n;
		if (piece_off == pieces[p].len) {
			p++;
			piece_off = 0;
		}
	}
	if (cur_len) {
		sync(ctx, cur_bus, cur_len);
		nr++;
	}
	return nr;
}
