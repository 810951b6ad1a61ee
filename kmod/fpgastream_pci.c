// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: stream a FSTR FPGA into a buffer the user program allocated.
 *
 * The PCI glue: the id table and ids=, probe, remove and shutdown, the
 * BARs, the interrupt vector and the DMA mask, the PCI core's reset, AER
 * and PM callbacks, and the module's init and exit. The char device is in
 * fpgastream_cdev.c, the stream in fpgastream_stream.c, what resets and
 * link loss do to it in fpgastream_faults.c, the buffer in
 * fpgastream_dma.c, and every register access in fpgastream_hw.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pm.h>
#include <linux/slab.h>

#include "fpgastream_compat.h"
#include "fpgastream_drv.h"

/* Largest DMA segment: the biggest block multiple that fits the field. */
#define FSTR_MAX_SEG_SIZE	(UINT_MAX & ~(FSTR_BLOCK_SIZE - 1))

static char ids[1024] __initdata;
module_param_string(ids, ids, sizeof(ids), 0);
MODULE_PARM_DESC(ids, "More PCI IDs to bind: \"vendor:device[,vendor:device...]\", hex");

/* Read and check the identity and geometry registers. */
static int fpgastream_check_board(struct fpgastream_dev *fdev)
{
	struct pci_dev *pdev = fdev->pdev;
	struct device *dev = &pdev->dev;
	u32 id, shift;

	id = fpgastream_hw_id(&fdev->hw);
	if (id != FSTR_ID_MAGIC) {
		dev_err(dev, "not a FSTR engine (ID %#x)\n", id);
		return -ENODEV;
	}
	fdev->hw_version = fpgastream_hw_version(&fdev->hw);
	if (FSTR_VERSION_MAJOR(fdev->hw_version) !=
	    FSTR_VERSION_MAJOR_SUPPORTED) {
		dev_err(dev, "unsupported FSTR version %u.%u\n",
			FSTR_VERSION_MAJOR(fdev->hw_version),
			FSTR_VERSION_MINOR(fdev->hw_version));
		return -ENODEV;
	}
	shift = fpgastream_hw_block_shift(&fdev->hw);
	if (shift != FSTR_BLOCK_SHIFT) {
		dev_err(dev, "block shift %u is not supported (only %u)\n",
			shift, FSTR_BLOCK_SHIFT);
		return -ENODEV;
	}
	fdev->lut_capacity = fpgastream_hw_lut_capacity(&fdev->hw);
	if (!fdev->lut_capacity ||
	    pci_resource_len(pdev, FSTR_BAR_LUT) <
	    fpgastream_hw_lut_bar_len(fdev->lut_capacity)) {
		dev_err(dev, "LUT of %u entries does not fit BAR%d (%llu bytes)\n",
			fdev->lut_capacity, FSTR_BAR_LUT,
			(u64)pci_resource_len(pdev, FSTR_BAR_LUT));
		return -ENODEV;
	}
	fdev->dma_addr_bits = fpgastream_hw_dma_addr_bits(&fdev->hw);
	if (fdev->dma_addr_bits < 32 || fdev->dma_addr_bits > 64) {
		dev_err(dev, "DMA address width %u is not supported\n",
			fdev->dma_addr_bits);
		return -ENODEV;
	}
	return 0;
}

static int fpgastream_setup_dma(struct fpgastream_dev *fdev)
{
	struct device *dev = &fdev->pdev->dev;
	int ret;

	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(fdev->dma_addr_bits));
	if (ret && fdev->dma_addr_bits > 32) {
		dev_warn(dev, "%u-bit DMA refused, falling back to 32 bits\n",
			 fdev->dma_addr_bits);
		ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(32));
	}
	if (ret) {
		dev_err(dev, "no usable DMA mask\n");
		return ret;
	}
	/*
	 * Let the DMA layer merge segments, never splitting one mid-block,
	 * across any address boundary (the LUT has none), and keep bounce
	 * buffers block-aligned (swiotlb honours it since 5.12). None can
	 * fail on a PCI device, which has dma_parms; since 6.11 the first
	 * two return void.
	 */
	dma_set_max_seg_size(dev, FSTR_MAX_SEG_SIZE);
	dma_set_min_align_mask(dev, FSTR_BLOCK_SIZE - 1);
	dma_set_seg_boundary(dev, ULONG_MAX);
	fdev->translated = fpgastream_dma_translated(dev);
	fpgastream_bounce_probe(fdev);
	return 0;
}

/* Map both BARs, managed: they go with the driver's binding. */
static int fpgastream_map_bars(struct fpgastream_dev *fdev)
{
	struct pci_dev *pdev = fdev->pdev;

	if (pci_resource_len(pdev, FSTR_BAR_REGS) < FSTR_REGS_MIN_LEN) {
		dev_err(&pdev->dev, "BAR%d too small\n", FSTR_BAR_REGS);
		return -ENODEV;
	}
	fdev->hw.regs = fpgastream_pcim_iomap_region(pdev, FSTR_BAR_REGS,
						     FPGASTREAM_DRV_NAME);
	if (IS_ERR(fdev->hw.regs))
		return PTR_ERR(fdev->hw.regs);
	fdev->hw.lut = fpgastream_pcim_iomap_region(pdev, FSTR_BAR_LUT,
						    FPGASTREAM_DRV_NAME);
	return PTR_ERR_OR_ZERO(fdev->hw.lut);
}

static int fpgastream_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct fpgastream_dev *fdev;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;

	/* From here on, fdev is freed by the last put_device(). */
	fdev = fpgastream_cdev_alloc(dev);
	if (IS_ERR(fdev))
		return PTR_ERR(fdev);
	fdev->pdev = pdev;

	ret = fpgastream_map_bars(fdev);
	if (ret)
		goto put_dev;
	ret = fpgastream_check_board(fdev);
	if (ret)
		goto put_dev;
	ret = fpgastream_setup_dma(fdev);
	if (ret)
		goto put_dev;

	/* Firmware or a kexec'ed kernel may have left the engine running. */
	pci_clear_master(pdev);
	if (fpgastream_quiesce(fdev)) {
		dev_err(dev, "engine still running at probe: reset the board (echo 1 > /sys/bus/pci/devices/%s/reset) and bind it again\n",
			pci_name(pdev));
		ret = -EBUSY;
		goto put_dev;
	}
	pci_set_master(pdev);

	ret = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI | PCI_IRQ_INTX);
	if (ret < 0) {
		dev_err(dev, "no interrupt (%d)\n", ret);
		goto clear_master;
	}
	fdev->irq = pci_irq_vector(pdev, 0);
	ret = request_irq(fdev->irq, fpgastream_irq, IRQF_SHARED,
			  dev_name(&fdev->dev), fdev);
	if (ret)
		goto free_vectors;

	/* What a reset the PCI core did not save for restores (slot_reset). */
	pci_save_state(pdev);
	fdev->pci_state = pci_store_saved_state(pdev);
	if (!fdev->pci_state) {
		ret = -ENOMEM;
		goto free_irq;
	}

	ret = fpgastream_cdev_add(fdev);
	if (ret)
		goto free_state;
	fpgastream_debugfs_add(fdev);

	pci_set_drvdata(pdev, fdev);
	dev_info(dev, "%s: FSTR %u.%u, %u LUT entries, %u-bit DMA%s, %s\n",
		 dev_name(&fdev->dev), FSTR_VERSION_MAJOR(fdev->hw_version),
		 FSTR_VERSION_MINOR(fdev->hw_version), fdev->lut_capacity,
		 fdev->dma_addr_bits, fdev->translated ? " via IOMMU" : "",
		 pdev->msi_enabled ? "MSI" : "INTx");
	return 0;

free_state:
	kfree(fdev->pci_state);
free_irq:
	free_irq(fdev->irq, fdev);
free_vectors:
	pci_free_irq_vectors(pdev);
clear_master:
	pci_clear_master(pdev);
put_dev:
	put_device(&fdev->dev);
	return ret;
}

/*
 * Removal while in use: stop the board and release the mapping now, while
 * the DMA API still has the device bound; later calls on open files fail
 * with -ENODEV and close() releases the rest.
 */
static void fpgastream_remove(struct pci_dev *pdev)
{
	struct fpgastream_dev *fdev = pci_get_drvdata(pdev);

	/* No new opens, no sysfs or debugfs readers (they take fdev->lock). */
	fpgastream_debugfs_remove(fdev);
	fpgastream_cdev_del(fdev);

	mutex_lock(&fdev->lock);
	fpgastream_teardown(fdev);
	fpgastream_hw_stop(&fdev->hw);
	WRITE_ONCE(fdev->gone, true);
	fpgastream_new_epoch(fdev);
	mutex_unlock(&fdev->lock);
	/* Once it sees fdev->gone, the health check no longer queues itself. */
	cancel_delayed_work_sync(&fdev->health_work);
	kfree(fdev->pci_state);

	free_irq(fdev->irq, fdev);
	pci_free_irq_vectors(pdev);
	pci_clear_master(pdev);
	fpgastream_wake(fdev);
	flush_work(&fdev->missed_work);
	put_device(&fdev->dev);
}

static void fpgastream_shutdown(struct pci_dev *pdev)
{
	struct fpgastream_dev *fdev = pci_get_drvdata(pdev);

	/* No DMA into memory the next kernel owns. */
	mutex_lock(&fdev->lock);
	if (!fdev->gone && fdev->running)
		fpgastream_stop_engine(fdev);
	fpgastream_set_resetting(fdev, true);
	mutex_unlock(&fdev->lock);
	cancel_delayed_work_sync(&fdev->health_work);
	pci_clear_master(pdev);
}

/*
 * A reset of the function or of its port (sysfs reset, FLR, a bus reset):
 * the board loses its registers and its LUT. The engine is stopped while
 * it still answers; the memory stays mapped throughout.
 */
static void fpgastream_going_down(struct fpgastream_dev *fdev)
{
	mutex_lock(&fdev->lock);
	fpgastream_set_resetting(fdev, true);
	fpgastream_stream_interrupt(fdev, true);
	mutex_unlock(&fdev->lock);
}

/* The reset or the resume is over; the PCI core restored config space. */
static void fpgastream_coming_up(struct fpgastream_dev *fdev)
{
	mutex_lock(&fdev->lock);
	fpgastream_recover(fdev, false);
	mutex_unlock(&fdev->lock);
}

static void fpgastream_reset_prepare(struct pci_dev *pdev)
{
	fpgastream_going_down(pci_get_drvdata(pdev));
}

static void fpgastream_reset_done(struct pci_dev *pdev)
{
	fpgastream_coming_up(pci_get_drvdata(pdev));
}

/**
 * fpgastream_error_detected() - AER: the board or its link reported an error
 * @pdev: the board
 * @state: pci_channel_io_normal for a non-fatal error (the engine stopped
 *	as on DMA_ERROR; MMIO still works), _frozen for a fatal one (the link
 *	is down until the reset that recovery does), _perm_failure if gone
 *
 * Return: what recovery should do next: a board the health check gave up
 * on asks for the reset that may bring it back.
 */
static pci_ers_result_t fpgastream_error_detected(struct pci_dev *pdev,
						  pci_channel_state_t state)
{
	struct fpgastream_dev *fdev = pci_get_drvdata(pdev);
	bool normal = state == pci_channel_io_normal;
	pci_ers_result_t result;

	mutex_lock(&fdev->lock);
	if (state == pci_channel_io_perm_failure) {
		fpgastream_board_lost(fdev);
		result = PCI_ERS_RESULT_DISCONNECT;
	} else if (fdev->lost) {
		fpgastream_set_resetting(fdev, true);
		result = PCI_ERS_RESULT_NEED_RESET;
	} else {
		dev_err(&pdev->dev, "%s PCIe error%s; recovering the board\n",
			normal ? "non-fatal" : "fatal",
			fdev->running ? ": stream ended" : "");
		fpgastream_set_resetting(fdev, true);
		fpgastream_stream_interrupt(fdev, normal);
		result = normal ? PCI_ERS_RESULT_CAN_RECOVER : PCI_ERS_RESULT_NEED_RESET;
	}
	mutex_unlock(&fdev->lock);
	return result;
}

static pci_ers_result_t fpgastream_mmio_enabled(struct pci_dev *pdev)
{
	/* Nothing was lost: fpgastream_error_resume() quiesces the engine. */
	return PCI_ERS_RESULT_RECOVERED;
}

/*
 * Recovery reset the link (and since 7.x may reset the bus after a
 * sibling's non-fatal error): config space from the probe's snapshot,
 * then the board.
 */
static pci_ers_result_t fpgastream_slot_reset(struct pci_dev *pdev)
{
	struct fpgastream_dev *fdev = pci_get_drvdata(pdev);
	int ret;

	mutex_lock(&fdev->lock);
	ret = fpgastream_recover(fdev, true);
	/* Until resume: the other devices are not recovered yet. */
	if (!ret)
		fpgastream_set_resetting(fdev, true);
	mutex_unlock(&fdev->lock);
	return ret ? PCI_ERS_RESULT_DISCONNECT : PCI_ERS_RESULT_RECOVERED;
}

static void fpgastream_error_resume(struct pci_dev *pdev)
{
	struct fpgastream_dev *fdev = pci_get_drvdata(pdev);

	mutex_lock(&fdev->lock);
	/* After a non-fatal error no reset came: quiesce the engine here. */
	if (fdev->lut_lost && !fdev->gone && fpgastream_board_restore(fdev))
		fpgastream_board_lost(fdev);
	fpgastream_set_resetting(fdev, false);
	if (!fdev->gone)
		dev_info(&pdev->dev, "recovered from the PCIe error; START begins a new stream\n");
	mutex_unlock(&fdev->lock);
}

static const struct pci_error_handlers fpgastream_err_handlers = {
	.error_detected = fpgastream_error_detected,
	.mmio_enabled = fpgastream_mmio_enabled,
	.slot_reset = fpgastream_slot_reset,
	.resume = fpgastream_error_resume,
	.reset_prepare = fpgastream_reset_prepare,
	.reset_done = fpgastream_reset_done,
};

/*
 * System sleep and hibernation: the stream ends, since the board may lose
 * power (D3cold, S3) and with it its registers and LUT; on resume they are
 * programmed again. The PCI core saves and restores config space.
 */
static int fpgastream_suspend(struct device *dev)
{
	fpgastream_going_down(dev_get_drvdata(dev));
	return 0;
}

static int fpgastream_resume(struct device *dev)
{
	fpgastream_coming_up(dev_get_drvdata(dev));
	return 0;
}

static DEFINE_SIMPLE_DEV_PM_OPS(fpgastream_pm_ops, fpgastream_suspend,
				fpgastream_resume);

static const struct pci_device_id fpgastream_pci_ids[] = {
	{ PCI_DEVICE(FSTR_PCI_VENDOR_ID, FSTR_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, fpgastream_pci_ids);

static struct pci_driver fpgastream_pci_driver = {
	.name = FPGASTREAM_DRV_NAME,
	.id_table = fpgastream_pci_ids,
	.probe = fpgastream_probe,
	.remove = fpgastream_remove,
	.shutdown = fpgastream_shutdown,
	.err_handler = &fpgastream_err_handlers,
	.driver.pm = pm_sleep_ptr(&fpgastream_pm_ops),
};

/* Bind the boards named by ids=, as vfio-pci does. */
static void __init fpgastream_add_ids(void)
{
	char *p = ids, *id;

	while ((id = strsep(&p, ","))) {
		unsigned int vendor, device;
		int ret;

		if (!*id)
			continue;
		if (sscanf(id, "%x:%x", &vendor, &device) != 2 ||
		    vendor > 0xffff || device > 0xffff) {
			pr_warn("ignoring invalid id \"%s\"\n", id);
			continue;
		}
		ret = pci_add_dynid(&fpgastream_pci_driver, vendor, device,
				    PCI_ANY_ID, PCI_ANY_ID, 0, 0, 0);
		if (ret)
			pr_warn("cannot add id %04x:%04x (%d)\n", vendor,
				device, ret);
		else
			pr_info("added id %04x:%04x\n", vendor, device);
	}
}

static int __init fpgastream_init(void)
{
	int ret;

	ret = fpgastream_cdev_init();
	if (ret)
		return ret;
	fpgastream_debugfs_init();
	ret = pci_register_driver(&fpgastream_pci_driver);
	if (ret)
		goto exit_debugfs;
	fpgastream_add_ids();
	return 0;

exit_debugfs:
	fpgastream_debugfs_exit();
	fpgastream_cdev_exit();
	return ret;
}

static void __exit fpgastream_exit(void)
{
	pci_unregister_driver(&fpgastream_pci_driver);
	fpgastream_debugfs_exit();
	fpgastream_cdev_exit();
}

module_init(fpgastream_init);
module_exit(fpgastream_exit);

MODULE_DESCRIPTION("Stream a FSTR FPGA into a user-allocated buffer");
MODULE_LICENSE("GPL");
