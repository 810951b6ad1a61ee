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

#include <linux/cpumask.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/io.h>
#include <linux/log2.h>
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

/*
 * 6.12 exported pcim_iomap_region() and deprecated the pcim_iomap_table()
 * it replaces.
 */
#if FPGASTREAM_KERNEL_AT_LEAST(6, 12)
#define fpgastream_pcim_iomap_region	pcim_iomap_region
#else
static inline void __iomem *
fpgastream_pcim_iomap_region(struct pci_dev *pdev, int bar, const char *name)
{
	int ret = pcim_iomap_regions(pdev, BIT(bar), name);

	return ret ? IOMEM_ERR_PTR(ret) : pcim_iomap_table(pdev)[bar];
}
#endif

/*
 * Before 6.6, swiotlb's slot search can spin forever, its area lock held,
 * when a request with a min_align_mask finds no fitting slot run in the
 * area it searches (seen on 6.1.192). The driver therefore keeps its
 * bounce buffers well inside one area: fpgastream_swiotlb_area_segments()
 * is the number of IO_TLB_SEGSIZE slot segments in one area, 0 when no
 * limit is needed.
 *
 * swiotlb does not export its pool's size, so this assumes the default
 * pool (IO_TLB_DEFAULT_SIZE) split into one area per possible CPU rounded
 * up to a power of two, as 6.1 does unless told otherwise: a swiotlb= on
 * the command line that makes the pool smaller or the areas more than
 * that is not safe with bounced buffers on these kernels (kmod/README.md).
 */
#if defined(CONFIG_SWIOTLB) && !FPGASTREAM_KERNEL_AT_LEAST(6, 6)
static inline unsigned long fpgastream_swiotlb_area_segments(struct device *dev)
{
	unsigned long segs = IO_TLB_DEFAULT_SIZE / (IO_TLB_SEGSIZE << IO_TLB_SHIFT);

	if (!is_swiotlb_active(dev))
		return 0;
	return max_t(unsigned long,
		     segs / roundup_pow_of_two(num_possible_cpus()), 1);
}
#else
static inline unsigned long fpgastream_swiotlb_area_segments(struct device *dev)
{
	return 0;
}
#endif

#endif /* FPGASTREAM_COMPAT_H */
