// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: the user buffer. Pin it, charge it to RLIMIT_MEMLOCK, build
 * an sg table, DMA-map it, split the DMA segments into LUT entries, sync
 * blocks between the board and the CPU, and undo all of that in reverse
 * order. Only the public DMA API (linux/dma-mapping.h, swiotlb's exported
 * calls) is used: kmod/README.md says what it cannot tell and what the
 * driver does instead.
 */
#include <linux/bitmap.h>
#include <linux/dma-mapping.h>
#include <linux/gfp.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include <uapi/fpgastream.h>

#include "fpgastream_compat.h"
#include "fpgastream_drv.h"
#include "fpgastream_lut.h"

/* Pages pinned per pin_user_pages_fast() call: 256 MiB of 4 KiB pages. */
#define FPGASTREAM_PIN_CHUNK		65536UL

/**
 * fpgastream_dma_translated() - is the device's DMA translated by an IOMMU?
 * @dev: the device
 *
 * Only the IOMMU DMA ops merge segments on a boundary of their own (the
 * IOVA granule); dma-direct, including behind an identity domain, has none.
 *
 * Return: true when bus addresses are IOVAs.
 */
bool fpgastream_dma_translated(struct device *dev)
{
	return dma_get_merge_boundary(dev) != 0;
}

/*
 * Longest sg entry to build: the DMA layer must neither split an entry
 * (max_seg_size) nor fail to bounce it (a swiotlb slot run holds
 * dma_max_mapping_size() bytes), and entries should end on block
 * boundaries so that blocks are not split between segments.
 */
static unsigned int fpgastream_max_segment(struct device *dev)
{
	size_t max = min_t(size_t, dma_get_max_seg_size(dev),
			   dma_max_mapping_size(dev));

	max = min_t(size_t, max, UINT_MAX);
	if (max >= FSTR_BLOCK_SIZE)
		return round_down(max, FSTR_BLOCK_SIZE);
	return max_t(size_t, round_down(max, PAGE_SIZE), PAGE_SIZE);
}

/* Pin @map->npages pages from @map->uaddr, in chunks. */
static int fpgastream_pin(struct fpgastream_mapping *map)
{
	unsigned long pinned = 0;
	int ret;

	while (pinned < map->npages) {
		unsigned long n = min(map->npages - pinned, FPGASTREAM_PIN_CHUNK);

		ret = pin_user_pages_fast(map->uaddr + pinned * PAGE_SIZE, n,
					  FOLL_WRITE | FOLL_LONGTERM,
					  map->pages + pinned);
		if (ret <= 0) {
			ret = ret ? ret : -EFAULT;
			goto unpin_pages;
		}
		pinned += ret;
		cond_resched();
	}
	return 0;

unpin_pages:
	unpin_user_pages(map->pages, pinned);
	return ret;
}

/* Unpin @npages of @pages, marking them dirty: the device wrote them. */
static void fpgastream_unpin_dirty(struct page **pages, unsigned long npages)
{
	unsigned long done, n;

	for (done = 0; done < npages; done += n) {
		n = min(npages - done, FPGASTREAM_PIN_CHUNK);
		unpin_user_pages_dirty_lock(pages + done, n, true);
		cond_resched();
	}
}

/* Split the mapped segments into map->lut; messages say what to do. */
static int fpgastream_split(struct fpgastream_dev *fdev, struct fpgastream_mapping *map)
{
	struct device *dev = &fdev->pdev->dev;
	struct fpgastream_lut_split split;
	struct scatterlist *sg;
	int ret = 0;
	unsigned int i;

	fpgastream_lut_split_init(&split, map->lut, map->split_map, map->nr_blocks,
				  fdev->dma_addr_bits);
	for_each_sgtable_dma_sg(&map->sgt, sg, i) {
		ret = fpgastream_lut_split_add(&split, sg_dma_address(sg),
					       sg_dma_len(sg));
		if (ret)
			break;
	}
	if (!ret)
		ret = fpgastream_lut_split_finish(&split);
	if (!ret && split.nr_entries != map->nr_blocks)
		ret = -EINVAL;

	if (ret == -ERANGE)
		dev_err_ratelimited(dev, "buffer block %u at bus address %#llx is beyond the %u-bit DMA engine\n",
				    split.nr_entries, split.bad_addr,
				    fdev->dma_addr_bits);
	else if (ret)
		dev_err_ratelimited(dev, "buffer block %u is not 64 KiB bus-contiguous and aligned: back the buffer with hugepages or enable the IOMMU\n",
				    split.nr_entries);
	return ret == -ERANGE ? -ERANGE : ret ? -EINVAL : 0;
}

/* Does the DMA API want any segment of the buffer synced? */
static bool fpgastream_map_need_sync(struct device *dev,
				     const struct fpgastream_mapping *map)
{
	struct scatterlist *sg;
	unsigned int i;

	for_each_sgtable_dma_sg(&map->sgt, sg, i)
		if (dma_need_sync(dev, sg_dma_address(sg)))
			return true;
	return false;
}

/*
 * Mark the blocks whose pages are not physically contiguous: those an sg
 * entry boundary cuts, since sg_alloc_table_from_pages_segment() merges
 * every physically contiguous run (and caps entries at block multiples).
 */
static void fpgastream_mark_scattered(struct fpgastream_mapping *map)
{
	struct scatterlist *sg;
	unsigned int i;
	u64 off = 0;

	for_each_sgtable_sg(&map->sgt, sg, i) {
		if (off & (FSTR_BLOCK_SIZE - 1))
			__set_bit(off >> FSTR_BLOCK_SHIFT, map->scattered_map);
		off += sg->length;
	}
}

/**
 * fpgastream_map_pin() - charge and pin a user buffer
 * @uaddr: user address, block-aligned (checked by the caller)
 * @length: bytes, a non-zero multiple of the block size within the LUT
 * @mapp: out: the mapping, pinned but not DMA-mapped
 *
 * Charges RLIMIT_MEMLOCK of current->mm (CAP_IPC_LOCK bypasses it) and
 * keeps that mm to uncharge it later, whoever does it. Touches neither
 * the board nor the device: the caller holds no lock of the board, since
 * pinning may wait for a fault for as long as the memory's owner likes.
 *
 * Return: 0, -ENOMEM (memory, RLIMIT_MEMLOCK) or -EFAULT (memory not
 * mapped or not writable).
 */
int fpgastream_map_pin(u64 uaddr, u64 length, struct fpgastream_mapping **mapp)
{
	struct fpgastream_mapping *map;
	u64 t0;
	int ret;

	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return -ENOMEM;
	map->uaddr = uaddr;
	map->length = length;
	map->npages = length >> PAGE_SHIFT;
	map->nr_blocks = length >> FSTR_BLOCK_SHIFT;

	t0 = ktime_get_ns();
	map->mm = current->mm;
	mmgrab(map->mm);
	ret = account_locked_vm(map->mm, map->npages, true);
	if (ret)
		goto drop_mm;

	map->pages = kvmalloc_array(map->npages, sizeof(*map->pages),
				    GFP_KERNEL);
	if (!map->pages) {
		ret = -ENOMEM;
		goto uncharge;
	}

	ret = fpgastream_pin(map);
	if (ret)
		goto free_pages;

	map->pin_ns = ktime_get_ns() - t0;
	*mapp = map;
	return 0;

free_pages:
	kvfree(map->pages);
uncharge:
	account_locked_vm(map->mm, map->npages, false);
drop_mm:
	mmdrop(map->mm);
	kfree(map);
	return ret;
}

/**
 * fpgastream_map_unpin() - undo fpgastream_map_pin()
 * @map: a mapping that was never DMA-mapped; freed
 */
void fpgastream_map_unpin(struct fpgastream_mapping *map)
{
	unpin_user_pages(map->pages, map->npages);
	kvfree(map->pages);
	account_locked_vm(map->mm, map->npages, false);
	mmdrop(map->mm);
	kfree(map);
}

/**
 * fpgastream_map_dma() - DMA-map a pinned buffer and split it into LUT entries
 * @fdev: the board, still bound; caller holds fdev->lock
 * @map: from fpgastream_map_pin(); on failure it is unpinned and freed
 * @flags: FPGASTREAM_MAP_* (checked by the caller)
 *
 * Does not touch the board: see fpgastream_map_program().
 *
 * Return: 0, -ENOMEM (memory, swiotlb space), -EINVAL (a block is not
 * bus-contiguous and aligned), -ERANGE (beyond DMA_ADDR_BITS, or bounced
 * with FPGASTREAM_MAP_NO_BOUNCE).
 */
int fpgastream_map_dma(struct fpgastream_dev *fdev, struct fpgastream_mapping *map,
		       u32 flags)
{
	struct device *dev = &fdev->pdev->dev;
	u64 length = map->length;
	unsigned int bounced;
	u64 misfit;
	u64 t0, t1;
	int ret;

	t1 = ktime_get_ns();
	ret = sg_alloc_table_from_pages_segment(&map->sgt, map->pages,
						map->npages, 0, length,
						fpgastream_max_segment(dev),
						GFP_KERNEL);
	if (ret)
		goto unpin;

	map->bounce_segs = fpgastream_predict_bounce(fdev, &map->sgt, &misfit);
	if (map->bounce_segs && (flags & FPGASTREAM_MAP_NO_BOUNCE)) {
		dev_dbg(dev, "buffer would bounce through swiotlb\n");
		ret = -ERANGE;
		goto free_sgt;
	}
	if (misfit != U64_MAX) {
		dev_err_ratelimited(dev, "buffer block %llu is not 64 KiB bus-contiguous and aligned: back the buffer with hugepages or enable the IOMMU\n",
				    misfit >> FSTR_BLOCK_SHIFT);
		ret = -EINVAL;
		goto free_sgt;
	}
	ret = fpgastream_bounce_reserve(dev, length, map->bounce_segs);
	if (ret)
		goto free_sgt;

	ret = dma_map_sgtable(dev, &map->sgt, DMA_FROM_DEVICE,
			      DMA_ATTR_NO_WARN);
	if (ret && fpgastream_may_bounce(fdev)) {
		dev_err_ratelimited(dev, "cannot DMA-map a %llu-byte buffer (%d): swiotlb full? use a larger swiotlb=, hugepages the board can reach, or an IOMMU\n",
				    length, ret);
	} else if (ret) {
		dev_err_ratelimited(dev, "cannot DMA-map a %llu-byte buffer (%d)\n",
				    length, ret);
	}
	if (ret) {
		ret = ret == -EINVAL ? -EINVAL : -ENOMEM;
		goto unreserve;
	}
	map->nr_segments = map->sgt.nents;
	if (fdev->translated)
		map->mapped_flags |= FPGASTREAM_MAPPED_IOMMU;

	bounced = fpgastream_count_bounced(fdev, &map->sgt);
	if (bounced)
		map->mapped_flags |= FPGASTREAM_MAPPED_BOUNCED;
	if ((flags & FPGASTREAM_MAP_NO_BOUNCE) && bounced) {
		dev_dbg(dev, "buffer would bounce through swiotlb\n");
		ret = -ERANGE;
		goto dma_unmap;
	}
	if (bounced > map->bounce_segs) {
		/* More than predicted (see fpgastream_sg_reachable()): hold them too. */
		ret = fpgastream_bounce_reserve(dev, length, bounced - map->bounce_segs);
		if (ret)
			goto dma_unmap;
		map->bounce_segs = bounced;
	}
	map->need_sync = fpgastream_map_need_sync(dev, map);

	map->lut = kvmalloc_array(map->nr_blocks, sizeof(*map->lut),
				  GFP_KERNEL);
	map->samples = kvmalloc_array(map->nr_blocks, sizeof(*map->samples),
				      GFP_KERNEL);
	map->split_map = bitmap_zalloc(map->nr_blocks, GFP_KERNEL);
	map->scattered_map = bitmap_zalloc(map->nr_blocks, GFP_KERNEL);
	if (!map->lut || !map->samples || !map->split_map ||
	    !map->scattered_map) {
		ret = -ENOMEM;
		goto free_arrays;
	}
	if (map->need_sync)
		fpgastream_mark_scattered(map);

	t0 = ktime_get_ns();
	map->dma_ns = t0 - t1;
	ret = fpgastream_split(fdev, map);
	if (ret)
		goto free_arrays;

	map->lut_ns = ktime_get_ns() - t0;
	return 0;

free_arrays:
	bitmap_free(map->scattered_map);
	bitmap_free(map->split_map);
	kvfree(map->samples);
	kvfree(map->lut);
dma_unmap:
	dma_unmap_sgtable(dev, &map->sgt, DMA_FROM_DEVICE, 0);
unreserve:
	fpgastream_bounce_unreserve(dev, map->bounce_segs);
free_sgt:
	sg_free_table(&map->sgt);
unpin:
	fpgastream_map_unpin(map);
	return ret;
}

/**
 * fpgastream_lut_fill() - write the first @nr LUT entries (engine stopped)
 * @fdev: the board
 * @entries: the entries, or NULL to write zeroes
 * @nr: how many
 *
 * One 64-bit write per entry and no read-back: a 2 GiB buffer has 32768
 * entries, and the LUT needs no ordering against normal memory.
 */
static void fpgastream_lut_fill(struct fpgastream_dev *fdev, const u64 *entries, u32 nr)
{
	u32 i;

	for (i = 0; i < nr; i++)
		fpgastream_hw_lut_write(&fdev->hw, i, entries ? entries[i] : 0);
}

/**
 * fpgastream_map_program() - write the LUT and RING_SIZE (engine stopped)
 * @fdev: the board
 * @map: the mapping
 */
void fpgastream_map_program(struct fpgastream_dev *fdev,
			    struct fpgastream_mapping *map)
{
	u64 t0 = ktime_get_ns();

	fpgastream_lut_fill(fdev, map->lut, map->nr_blocks);
	fpgastream_hw_set_ring_size(&fdev->hw, map->nr_blocks);
	map->lut_ns += ktime_get_ns() - t0;
}

/**
 * fpgastream_map_clear() - take the mapping out of the LUT; the engine is idle
 * @fdev: the board
 * @map: the mapping
 */
void fpgastream_map_clear(struct fpgastream_dev *fdev, const struct fpgastream_mapping *map)
{
	fpgastream_hw_set_ring_size(&fdev->hw, 0);
	fpgastream_map_invalidate(fdev, map);
}

/**
 * fpgastream_map_invalidate() - mark the mapping's LUT entries not VALID
 * @fdev: the board
 * @map: the mapping
 *
 * Alone, for an engine that does not stop: RING_SIZE may not be written
 * while it runs, and a block it starts on an invalid entry is a LUT fault.
 */
void fpgastream_map_invalidate(struct fpgastream_dev *fdev,
			       const struct fpgastream_mapping *map)
{
	fpgastream_lut_fill(fdev, NULL, map->nr_blocks);
}

/**
 * fpgastream_map_destroy() - unmap, unpin (dirty), uncharge and free a mapping
 * @fdev: the board, still bound to the driver
 * @map: the mapping; the board must no longer be able to write it
 */
void fpgastream_map_destroy(struct fpgastream_dev *fdev, struct fpgastream_mapping *map)
{
	struct device *dev = &fdev->pdev->dev;

	bitmap_free(map->scattered_map);
	bitmap_free(map->split_map);
	kvfree(map->samples);
	kvfree(map->lut);
	dma_unmap_sgtable(dev, &map->sgt, DMA_FROM_DEVICE, 0);
	fpgastream_bounce_unreserve(dev, map->bounce_segs);
	sg_free_table(&map->sgt);
	fpgastream_unpin_dirty(map->pages, map->npages);
	kvfree(map->pages);
	account_locked_vm(map->mm, map->npages, false);
	mmdrop(map->mm);
	kfree(map);
}

/* What fpgastream_sync_range() needs to know. */
struct fpgastream_sync_ctx {
	struct device *dev;
	bool for_cpu;
};

static void fpgastream_sync_range(void *data, u64 bus, u64 len)
{
	struct fpgastream_sync_ctx *ctx = data;

	if (ctx->for_cpu)
		dma_sync_single_for_cpu(ctx->dev, bus, len, DMA_FROM_DEVICE);
	else
		dma_sync_single_for_device(ctx->dev, bus, len, DMA_FROM_DEVICE);
}

/* CPU pages in one block, and so the most DMA segment pieces it can have. */
#define FPGASTREAM_PAGES_PER_BLOCK	(FSTR_BLOCK_SIZE >> PAGE_SHIFT)

/**
 * fpgastream_block_pieces() - the pieces of DMA segments that make up a block
 * @map: the mapping
 * @blk: a block that spans several segments (see fpgastream_lut.c)
 * @pieces: out: room for FPGASTREAM_PAGES_PER_BLOCK pieces
 *
 * Segments hold whole pages, so a block has at most one piece per page.
 *
 * Return: the number of pieces.
 */
static unsigned int fpgastream_block_pieces(const struct fpgastream_mapping *map, u32 blk,
					    struct fpgastream_bus_range *pieces)
{
	u64 start = (u64)blk << FSTR_BLOCK_SHIFT;
	u64 end = start + FSTR_BLOCK_SIZE;
	struct scatterlist *sg;
	unsigned int i, nr = 0;
	u64 off = 0;

	for_each_sgtable_dma_sg(&map->sgt, sg, i) {
		u64 len = sg_dma_len(sg);
		u64 lo = max(start, off);
		u64 hi = min(end, off + len);

		if (lo < hi) {
			if (WARN_ON_ONCE(nr == FPGASTREAM_PAGES_PER_BLOCK))
				break;
			pieces[nr].bus = sg_dma_address(sg) + (lo - off);
			pieces[nr].len = hi - lo;
			nr++;
		}
		off += len;
		if (off >= end)
			break;
	}
	return nr;
}

/**
 * fpgastream_map_sync_block() - sync one block for the CPU or for the device
 * @fdev: the board
 * @map: the mapping
 * @blk: block index (ring slot)
 * @for_cpu: true before the CPU reads the block, false before the device
 *	may write it again
 *
 * Syncs the memory behind the block, whatever the DMA layer merged: the
 * DMA API's single-range syncs translate a range's first bus address only,
 * so each range handed to them is contiguous on the bus and in CPU memory
 * (fpgastream_block_sync_ranges()). A block of one physically contiguous
 * run inside one DMA segment, the usual case with hugepages, is one call;
 * a block of scattered 4 KiB pages behind an IOMMU is one call per page.
 * Under swiotlb this is the copy out of (or the handing back of) the
 * bounce buffer. Nothing is done unless the DMA API said the mapping needs
 * syncing (@map->need_sync).
 */
void fpgastream_map_sync_block(struct fpgastream_dev *fdev, const struct fpgastream_mapping *map,
			       u32 blk, bool for_cpu)
{
	struct fpgastream_bus_range pieces[FPGASTREAM_PAGES_PER_BLOCK];
	u64 pfn[FPGASTREAM_PAGES_PER_BLOCK];
	struct fpgastream_sync_ctx ctx = {
		.dev = &fdev->pdev->dev,
		.for_cpu = for_cpu,
	};
	struct page **pages;
	unsigned int i, nr;
	bool split;

	if (!map->need_sync)
		return;
	split = test_bit(blk, map->split_map);
	if (!split && !test_bit(blk, map->scattered_map)) {
		fpgastream_sync_range(&ctx, FSTR_LUT_ENTRY_ADDR(map->lut[blk]),
				      FSTR_BLOCK_SIZE);
		return;
	}

	pages = map->pages + (size_t)blk * FPGASTREAM_PAGES_PER_BLOCK;
	for (i = 0; i < FPGASTREAM_PAGES_PER_BLOCK; i++)
		pfn[i] = page_to_pfn(pages[i]);
	if (split) {
		nr = fpgastream_block_pieces(map, blk, pieces);
	} else {
		pieces[0].bus = FSTR_LUT_ENTRY_ADDR(map->lut[blk]);
		pieces[0].len = FSTR_BLOCK_SIZE;
		nr = 1;
	}
	fpgastream_block_sync_ranges(pfn, PAGE_SHIFT, pieces, nr,
				     fpgastream_sync_range, &ctx);
}
