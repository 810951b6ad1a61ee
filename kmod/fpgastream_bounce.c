// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: swiotlb bouncing, from the public DMA API alone. Predict
 * which sg entries of a buffer will bounce before anything is mapped (so
 * that NO_BOUNCE and unaligned bounced memory are refused before swiotlb
 * is touched), tell what really bounced after mapping, and hold the
 * pre-6.6 budget that keeps swiotlb from hanging (fpgastream_compat.h).
 * kmod/README.md says what the public API cannot tell.
 */
#include <linux/atomic.h>
#include <linux/dma-mapping.h>
#include <linux/gfp.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>

#include "fpgastream_compat.h"
#include "fpgastream_drv.h"

/* swiotlb bounce segments held by the mappings of all boards */
static atomic_long_t fpgastream_bounce_segs_held = ATOMIC_LONG_INIT(0);

/**
 * fpgastream_may_bounce() - may the DMA layer bounce the board's mappings?
 * @fdev: the board
 *
 * Behind an IOMMU DMA domain it never bounces whole pages, which is all
 * the driver maps. Otherwise dma_max_mapping_size() is limited exactly
 * when swiotlb is active and the board either cannot reach all memory or
 * is made to bounce everything.
 *
 * Return: true if streaming mappings may go through swiotlb.
 */
bool fpgastream_may_bounce(struct fpgastream_dev *fdev)
{
	return !fdev->translated &&
	       dma_max_mapping_size(&fdev->pdev->dev) != SIZE_MAX;
}

/*
 * Was the segment at @addr, mapped from @phys, bounced? The DMA API says a
 * bounced segment needs syncing, but so does any segment on a platform
 * that is not coherent; a bounced one also sits elsewhere than its memory
 * (bus address equal to physical address: see fpgastream_sg_reachable()).
 */
static bool fpgastream_dma_bounced(struct device *dev, dma_addr_t addr, phys_addr_t phys)
{
	return dma_need_sync(dev, addr) && addr != phys;
}

/**
 * fpgastream_bounce_probe() - learn at probe whether all memory bounces
 * @fdev: the board, its DMA mask set
 *
 * A board that can address all memory bounces only when everything does
 * (swiotlb=force, a confidential guest). A board that cannot is asked once
 * by mapping one page of the zone the kernel keeps for its mask: if even
 * that bounces, everything does. Where the answer cannot be had the answer
 * is yes, the safe side for NO_BOUNCE and for the swiotlb budget. Sets
 * @fdev->bounce_all.
 */
void fpgastream_bounce_probe(struct fpgastream_dev *fdev)
{
	struct device *dev = &fdev->pdev->dev;
	struct page *page;
	dma_addr_t addr;

	fdev->bounce_all = true;
	if (!fpgastream_may_bounce(fdev))
		return;
	if (!dma_addressing_limited(dev))
		return;
	/*
	 * Limited although the mask covers all memory: a bus limit of the
	 * platform the driver cannot see, so it cannot tell which entries
	 * bounce. Say all do.
	 */
	if (dma_get_mask(dev) >= dma_get_required_mask(dev))
		return;
	page = alloc_page(GFP_KERNEL | GFP_DMA32 | __GFP_ZERO);
	if (!page)
		return;
	addr = dma_map_page(dev, page, 0, PAGE_SIZE, DMA_FROM_DEVICE);
	if (!dma_mapping_error(dev, addr)) {
		fdev->bounce_all = fpgastream_dma_bounced(dev, addr, page_to_phys(page));
		dma_unmap_page(dev, addr, PAGE_SIZE, DMA_FROM_DEVICE);
	}
	__free_page(page);
}

/**
 * fpgastream_sg_reachable() - can the board reach an sg entry unbounced?
 * @dev: the device
 * @sg: the entry, not yet mapped
 *
 * dma-direct gives the board the physical address as bus address on the
 * platforms the driver is tested on; where a platform offsets or limits
 * bus addresses the guess can be wrong, and fpgastream_map_dma() checks
 * what really bounced after mapping (kmod/README.md).
 *
 * Return: true if the entry lies within the DMA mask.
 */
static bool fpgastream_sg_reachable(struct device *dev, struct scatterlist *sg)
{
	return sg_phys(sg) + sg->length - 1 <= dma_get_mask(dev);
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
 * Return: the number of entries the DMA layer will bounce through swiotlb.
 */
unsigned int fpgastream_predict_bounce(struct fpgastream_dev *fdev,
				       struct sg_table *sgt, u64 *misfit)
{
	struct device *dev = &fdev->pdev->dev;
	struct scatterlist *sg;
	unsigned int i, nr = 0;
	bool all;
	u64 off = 0;

	*misfit = U64_MAX;
	if (!fpgastream_may_bounce(fdev))
		return 0;
	all = fdev->bounce_all;
	for_each_sgtable_sg(sgt, sg, i) {
		if (all || !fpgastream_sg_reachable(dev, sg)) {
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
 * fpgastream_count_bounced() - the DMA segments that were bounced
 * @fdev: the board
 * @sgt: the mapped sg table
 *
 * A segment of a board that may bounce was bounced if the DMA API wants
 * it synced and it does not sit at its memory's address.
 *
 * Return: the number of bounced segments.
 */
unsigned int fpgastream_count_bounced(struct fpgastream_dev *fdev,
				      struct sg_table *sgt)
{
	struct device *dev = &fdev->pdev->dev;
	struct scatterlist *sg;
	unsigned int i, nr = 0;

	if (!fpgastream_may_bounce(fdev))
		return 0;
	/* dma-direct maps each sg entry to one segment: sg_phys() is its memory. */
	for_each_sgtable_dma_sg(sgt, sg, i)
		if (fpgastream_dma_bounced(dev, sg_dma_address(sg), sg_phys(sg)))
			nr++;
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
int fpgastream_bounce_reserve(struct device *dev, u64 length,
			      unsigned int segs)
{
	unsigned long limit = fpgastream_swiotlb_area_segments(dev) / 2;

	if (!limit)
		return 0;
	if (atomic_long_add_return(segs, &fpgastream_bounce_segs_held) > limit) {
		atomic_long_sub(segs, &fpgastream_bounce_segs_held);
		dev_err_ratelimited(dev, "a %llu-byte buffer needs %u swiotlb bounce buffers, more than this kernel handles safely (%lu in all): use a smaller buffer, hugepages the board can reach, an IOMMU, or a larger swiotlb=\n",
				    length, segs, limit);
		return -ENOMEM;
	}
	return 0;
}

void fpgastream_bounce_unreserve(struct device *dev, unsigned int segs)
{
	if (fpgastream_swiotlb_area_segments(dev) / 2)
		atomic_long_sub(segs, &fpgastream_bounce_segs_held);
}
