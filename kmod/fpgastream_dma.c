// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: the user buffer. Pin it, charge it to RLIMIT_MEMLOCK, build
 * an sg table, DMA-map it, split the DMA segments into LUT entries, and
 * undo all of that in reverse order.
 */
#include <linux/bitmap.h>
#include <linux/dma-direct.h>
#include <linux/dma-map-ops.h>
#include <linux/dma-mapping.h>
#include <linux/iommu.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/swiotlb.h>

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
 * Return: true when the DMA API maps through an IOMMU DMA domain (bus
 * addresses are IOVAs); false for dma-direct, including an identity domain.
 */
bool fpgastream_dma_translated(struct device *dev)
{
	struct iommu_domain *domain = iommu_get_domain_for_dev(dev);

	return domain && iommu_is_dma_domain(domain);
}

/*
 * Was the DMA segment at @addr bounced through swiotlb? Look at the memory
 * the device really writes: the IOMMU's translation of the IOVA, or the
 * dma-direct translation, and see whether it lies in the swiotlb pool.
 */
static bool fpgastream_dma_bounced(struct device *dev, struct iommu_domain *domain,
				   dma_addr_t addr)
{
	phys_addr_t phys;

	if (domain)
		phys = iommu_iova_to_phys(domain, addr);
	else
		phys = dma_to_phys(dev, addr);
	return fpgastream_is_swiotlb_buffer(dev, phys);
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

/* swiotlb bounce segments held by the mappings of all boards */
static atomic_long_t fpgastream_bounce_segs_held = ATOMIC_LONG_INIT(0);

/* Will dma-direct bounce this sg entry through swiotlb? */
static bool fpgastream_will_bounce(struct device *dev, struct scatterlist *sg)
{
	if (is_swiotlb_force_bounce(dev))
		return true;
	return dma_addressing_limited(dev) &&
	       !dma_capable(dev, phys_to_dma(dev, sg_phys(sg)), sg->length,
			    true);
}

/**
 * fpgastream_predict_bounce() - count the sg entries that will bounce
 * @fdev: the board
 * @sgt: the buffer's sg table, not yet mapped
 * @misfit: out: buffer offset of the first bounced entry that cannot hold
 *	whole aligned blocks, or U64_MAX
 *
 * None behind an IOMMU, whose IOVAs fit the mask. Each bounced entry lands
 * in its own swiotlb slot run, block-aligned only if the memory is (the
 * min_align_mask keeps the low 16 bits), so it must hold whole blocks of
 * block-aligned memory: checking that here gives the answer the LUT split
 * would give after mapping, without filling swiotlb first.
 *
 * Return: the number of entries dma-direct will bounce through swiotlb.
 */
static unsigned int fpgastream_predict_bounce(struct fpgastream_dev *fdev,
					      struct sg_table *sgt, u64 *misfit)
{
	struct device *dev = &fdev->pdev->dev;
	struct scatterlist *sg;
	unsigned int i, nr = 0;
	u64 off = 0;

	*misfit = U64_MAX;
	if (fdev->translated)
		return 0;
	for_each_sgtable_sg(sgt, sg, i) {
		if (fpgastream_will_bounce(dev, sg)) {
			if (((off | sg_phys(sg) | sg->length) &
			     (FSTR_BLOCK_SIZE - 1)) && *misfit == U64_MAX)
				*misfit = off;
			nr++;
		}
		off += sg->length;
	}
	return nr;
}

/**
 * fpgastream_bounce_reserve() - account for the swiotlb segments of a mapping
 * @dev: the device
 * @length: buffer bytes, for the message
 * @segs: sg entries that will bounce, each within one swiotlb segment
 *
 * Some kernels hang instead of failing when swiotlb has no room for a
 * min_align_mask request (see fpgastream_compat.h). Keep all boards'
 * bounced segments to half of one swiotlb area, so that an area never
 * fills up because of this driver.
 *
 * Return: 0, or -ENOMEM with one kernel line.
 */
static int fpgastream_bounce_reserve(struct device *dev, u64 length,
				     unsigned int segs)
{
	unsigned long limit = fpgastream_swiotlb_area_segments(dev) / 2;

	if (!limit)
		return 0;
	if (atomic_long_add_return(segs, &fpgastream_bounce_segs_held) > limit) {
		atomic_long_sub(segs, &fpgastream_bounce_segs_held);
		dev_err_ratelimited(dev, "a %llu-byte buffer needs %u swiotlb bounce buffers, more than this kernel handles safely (%lu in all): use a smaller buffer, an IOMMU, or a larger swiotlb=\n",
				    length, segs, limit);
		return -ENOMEM;
	}
	return 0;
}

static void fpgastream_bounce_unreserve(struct device *dev, unsigned int segs)
{
	if (fpgastream_swiotlb_area_segments(dev) / 2)
		atomic_long_sub(segs, &fpgastream_bounce_segs_held);
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

/*
 * Must blocks be synced between the device and the CPU? Only when bounced
 * through swiotlb or on a device that is not cache-coherent: the IOMMU DMA
 * ops sync nothing else, and dma_need_sync() answers for dma-direct. On a
 * coherent board that saves a call per block on read() and on RELEASE.
 */
static bool fpgastream_map_need_sync(struct device *dev,
				     const struct fpgastream_mapping *map)
{
	struct scatterlist *sg;
	unsigned int i;

	if (map->mapped_flags & FPGASTREAM_MAPPED_BOUNCED ||
	    !dev_is_dma_coherent(dev))
		return true;
	if (map->mapped_flags & FPGASTREAM_MAPPED_IOMMU)
		return false;
	for_each_sgtable_dma_sg(&map->sgt, sg, i)
		if (dma_need_sync(dev, sg_dma_address(sg)))
			return true;
	return false;
}

/**
 * fpgastream_map_create() - pin, charge, DMA-map and split a user buffer
 * @fdev: the board
 * @uaddr: user address, block-aligned (checked by the caller)
 * @length: bytes, a non-zero multiple of the block size within the LUT
 * @flags: FPGASTREAM_MAP_* (checked by the caller)
 * @mapp: out: the mapping
 *
 * Charges RLIMIT_MEMLOCK of current->mm (CAP_IPC_LOCK bypasses it) and
 * keeps that mm to uncharge it in fpgastream_map_destroy(), whoever calls it.
 * Does not touch the board: see fpgastream_map_program().
 *
 * Return: 0, -ENOMEM (memory, RLIMIT_MEMLOCK, swiotlb space), -EFAULT
 * (memory not mapped or not writable), -EINVAL (a block is not
 * bus-contiguous and aligned), -ERANGE (beyond DMA_ADDR_BITS, or bounced
 * with FPGASTREAM_MAP_NO_BOUNCE).
 */
int fpgastream_map_create(struct fpgastream_dev *fdev, u64 uaddr, u64 length, u32 flags,
			  struct fpgastream_mapping **mapp)
{
	struct device *dev = &fdev->pdev->dev;
	struct iommu_domain *domain = NULL;
	struct fpgastream_mapping *map;
	struct scatterlist *sg;
	unsigned int i;
	u64 misfit;
	u64 t0, t1;
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

	t1 = ktime_get_ns();
	map->pin_ns = t1 - t0;

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
	if (ret) {
		dev_err_ratelimited(dev, "cannot DMA-map a %llu-byte buffer (%d)%s\n",
				    length, ret,
				    is_swiotlb_force_bounce(dev) ||
				    dma_addressing_limited(dev) ?
				    ": swiotlb full? use a smaller buffer" : "");
		ret = ret == -EINVAL ? -EINVAL : -ENOMEM;
		goto unreserve;
	}
	map->nr_segments = map->sgt.nents;

	if (fpgastream_dma_translated(dev)) {
		domain = iommu_get_domain_for_dev(dev);
		map->mapped_flags |= FPGASTREAM_MAPPED_IOMMU;
	}
	for_each_sgtable_dma_sg(&map->sgt, sg, i) {
		if (fpgastream_dma_bounced(dev, domain, sg_dma_address(sg))) {
			map->mapped_flags |= FPGASTREAM_MAPPED_BOUNCED;
			break;
		}
	}
	map->need_sync = fpgastream_map_need_sync(dev, map);
	if ((flags & FPGASTREAM_MAP_NO_BOUNCE) &&
	    (map->mapped_flags & FPGASTREAM_MAPPED_BOUNCED)) {
		dev_dbg(dev, "buffer would bounce through swiotlb\n");
		ret = -ERANGE;
		goto dma_unmap;
	}

	map->lut = kvmalloc_array(map->nr_blocks, sizeof(*map->lut),
				  GFP_KERNEL);
	map->slots = kvcalloc(map->nr_blocks, sizeof(*map->slots),
			      GFP_KERNEL);
	map->split_map = bitmap_zalloc(map->nr_blocks, GFP_KERNEL);
	if (!map->lut || !map->slots || !map->split_map) {
		ret = -ENOMEM;
		goto free_arrays;
	}

	t0 = ktime_get_ns();
	map->dma_ns = t0 - t1;
	ret = fpgastream_split(fdev, map);
	if (ret)
		goto free_arrays;

	map->lut_ns = ktime_get_ns() - t0;
	*mapp = map;
	return 0;

free_arrays:
	bitmap_free(map->split_map);
	kvfree(map->slots);
	kvfree(map->lut);
dma_unmap:
	dma_unmap_sgtable(dev, &map->sgt, DMA_FROM_DEVICE, 0);
unreserve:
	fpgastream_bounce_unreserve(dev, map->bounce_segs);
free_sgt:
	sg_free_table(&map->sgt);
unpin:
	unpin_user_pages(map->pages, map->npages);
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

	bitmap_free(map->split_map);
	kvfree(map->slots);
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

static void fpgastream_sync(struct device *dev, dma_addr_t addr, size_t len,
			    bool for_cpu)
{
	if (for_cpu)
		dma_sync_single_for_cpu(dev, addr, len, DMA_FROM_DEVICE);
	else
		dma_sync_single_for_device(dev, addr, len, DMA_FROM_DEVICE);
}

/**
 * fpgastream_map_sync_block() - sync one block for the CPU or for the device
 * @fdev: the board
 * @map: the mapping
 * @blk: block index (ring slot)
 * @for_cpu: true before the CPU reads the block, false before the device
 *	may write it again
 *
 * Syncs only this block's bytes: under swiotlb this is the copy out of
 * the bounce buffer. Nothing to do unless @map->need_sync. A block made
 * of pieces of several DMA segments (rare: see fpgastream_lut.c) is synced
 * piece by piece, since each segment is a separate mapping for the DMA
 * layer.
 */
void fpgastream_map_sync_block(struct fpgastream_dev *fdev, const struct fpgastream_mapping *map,
			       u32 blk, bool for_cpu)
{
	struct device *dev = &fdev->pdev->dev;
	u64 start = (u64)blk << FSTR_BLOCK_SHIFT;
	u64 end = start + FSTR_BLOCK_SIZE;
	struct scatterlist *sg;
	u64 off = 0;
	unsigned int i;

	if (!map->need_sync)
		return;
	if (!test_bit(blk, map->split_map)) {
		fpgastream_sync(dev, FSTR_LUT_ENTRY_ADDR(map->lut[blk]),
				FSTR_BLOCK_SIZE, for_cpu);
		return;
	}

	for_each_sgtable_dma_sg(&map->sgt, sg, i) {
		u64 len = sg_dma_len(sg);
		u64 lo = max(start, off);
		u64 hi = min(end, off + len);

		if (lo < hi)
			fpgastream_sync(dev, sg_dma_address(sg) + (lo - off),
					hi - lo, for_cpu);
		off += len;
		if (off >= end)
			break;
	}
}
