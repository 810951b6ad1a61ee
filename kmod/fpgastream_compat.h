/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kernel API differences across the versions fpgastream builds against.
 * The driver is written against 6.1. Where a later kernel changed an API,
 * the driver either uses a form that did not change (noted here) or gets
 * a shim keyed on a feature test where one exists, else on the kernel's
 * version (FPGASTREAM_KERNEL_AT_LEAST).  Each shim says what changed when,
 * in one line.  Tested: Debian's 6.1, 6.12 and 7.2 (tools/kernels/).
 *
 * class_create() lost its owner argument in 6.4: the driver registers a
 * static struct class with class_register(), the same in both.
 *
 * pin_user_pages() lost its vmas argument in 6.5: the driver pins with
 * pin_user_pages_fast(), the same in both.
 *
 * dma_set_max_seg_size() and dma_set_min_align_mask() return void since
 * 6.11: the driver ignores their 6.1 int, which is never an error for PCI.
 */
#ifndef FPGASTREAM_COMPAT_H
#define FPGASTREAM_COMPAT_H

#include <linux/device.h>
#include <linux/pci.h>
#include <linux/swiotlb.h>
#include <linux/version.h>

/* Kernel MAJOR.MINOR or later (version.h's parts, as checkpatch prefers). */
#define FPGASTREAM_KERNEL_AT_LEAST(major, minor)			\
	(LINUX_VERSION_MAJOR * 256 + LINUX_VERSION_PATCHLEVEL >=	\
	 (major) * 256 + (minor))

/* 6.8 renamed PCI_IRQ_LEGACY to PCI_IRQ_INTX (and 6.11 dropped the old name). */
#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX	PCI_IRQ_LEGACY
#endif

/* 6.12 replaced is_swiotlb_buffer() by swiotlb_find_pool(). */
static inline bool fpgastream_is_swiotlb_buffer(struct device *dev, phys_addr_t paddr)
{
#if FPGASTREAM_KERNEL_AT_LEAST(6, 12)
	return swiotlb_find_pool(dev, paddr);
#else
	return is_swiotlb_buffer(dev, paddr);
#endif
}

/*
 * Before 6.6, swiotlb's slot search can spin forever, its area lock held,
 * when a request with a min_align_mask finds no fitting slot run in the
 * area it searches (seen on 6.1.192). fpgastream_swiotlb_area_segments() is the
 * number of IO_TLB_SEGSIZE slot segments in one area, so that the driver
 * keeps its bounce buffers well inside one area; 0: no limit needed.
 */
#if defined(CONFIG_SWIOTLB) && !FPGASTREAM_KERNEL_AT_LEAST(6, 6)
static inline unsigned long fpgastream_swiotlb_area_segments(struct device *dev)
{
	struct io_tlb_mem *mem = dev->dma_io_tlb_mem;

	if (!mem || !mem->nslabs)
		return 0;
	return max_t(unsigned long, mem->area_nslabs / IO_TLB_SEGSIZE, 1);
}
#else
static inline unsigned long fpgastream_swiotlb_area_segments(struct device *dev)
{
	return 0;
}
#endif

#endif /* FPGASTREAM_COMPAT_H */
