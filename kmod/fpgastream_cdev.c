// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: the char device /dev/fpgastream<N>. The class, the minors,
 * open and release, ioctl dispatch (the user ABI of
 * include/uapi/fpgastream.h: argument checks and file ownership), and the
 * read() and poll() entry points. What the ioctls do to the board is in
 * fpgastream_stream.c and fpgastream_dma.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "fpgastream_drv.h"
#include "fpgastream_trace.h"

#define FPGASTREAM_MAX_DEVICES	256

static struct class fpgastream_class = {
	.name = FPGASTREAM_DRV_NAME,
};

static dev_t fpgastream_devt;
static DEFINE_IDA(fpgastream_minor_ida);

static bool fpgastream_reserved_clear(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

static int fpgastream_ioc_info(struct fpgastream_dev *fdev, void __user *arg)
{
	struct fpgastream_info info = {
		.abi_version = FPGASTREAM_ABI_VERSION,
		.hw_version = fdev->hw_version,
		.block_size = FSTR_BLOCK_SIZE,
		.lut_capacity = fdev->lut_capacity,
		.dma_addr_bits = fdev->dma_addr_bits,
		.flags = fdev->translated ? FPGASTREAM_INFO_IOMMU : 0,
		.max_buffer_size = fpgastream_max_buffer_size(fdev),
	};

	/* No lock: these never change while the device exists. */
	if (READ_ONCE(fdev->gone))
		return -ENODEV;
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

/**
 * fpgastream_ioc_map() - FPGASTREAM_IOC_MAP
 * @fdev: the board
 * @file: the file the mapping will belong to
 * @arg: struct fpgastream_map in user memory
 *
 * Pins with fdev->lock dropped, the device claimed by @map_pending, so
 * that a buffer whose faults never resolve stalls only this call; the
 * result is copied out with the lock dropped too, and the mapping torn
 * down again if that faults.
 *
 * Return: 0 or the contract's errno.
 */
static int fpgastream_ioc_map(struct fpgastream_dev *fdev, struct file *file,
			      void __user *arg)
{
	struct fpgastream_map m;
	struct fpgastream_mapping *map;
	u64 epoch = 0;
	int ret;

	if (copy_from_user(&m, arg, sizeof(m)))
		return -EFAULT;
	if ((m.flags & ~FPGASTREAM_MAP_NO_BOUNCE) ||
	    !fpgastream_reserved_clear(m.reserved, sizeof(m.reserved)))
		return -EINVAL;
	if (!m.length || (m.addr | m.length) & (FSTR_BLOCK_SIZE - 1) ||
	    m.length > fpgastream_max_buffer_size(fdev) ||
	    m.addr + m.length < m.addr || m.addr != (unsigned long)m.addr)
		return -EINVAL;
	if (!access_ok((void __user *)(unsigned long)m.addr, m.length))
		return -EFAULT;

	mutex_lock(&fdev->lock);
	if (fdev->gone)
		ret = -ENODEV;
	else if (fdev->map || fdev->map_pending || fdev->resetting)
		ret = -EBUSY;
	else if (fdev->wedged && fpgastream_stop_engine(fdev))
		ret = -EIO;
	else
		ret = 0;
	if (!ret)
		fdev->map_pending = true;
	mutex_unlock(&fdev->lock);
	if (ret)
		return ret;

	ret = fpgastream_map_pin(m.addr, m.length, &map);

	mutex_lock(&fdev->lock);
	fdev->map_pending = false;
	if (!ret && (fdev->gone || fdev->resetting || WARN_ON_ONCE(fdev->map))) {
		fpgastream_map_unpin(map);
		ret = fdev->gone ? -ENODEV : -EBUSY;
	}
	if (!ret)
		ret = fpgastream_map_dma(fdev, map, m.flags);
	if (!ret) {
		fpgastream_map_program(fdev, map);
		trace_fpgastream_map(fdev->minor, map->length, map->nr_blocks,
				     map->nr_segments, m.flags, map->mapped_flags,
				     map->pin_ns, map->dma_ns, map->lut_ns);
		/* A new mapping starts clean: no fault, no counters of the last one. */
		fpgastream_stream_reset(fdev);
		fdev->map = map;
		fdev->owner = file;
		fdev->started = false;
		m.nr_blocks = map->nr_blocks;
		m.nr_segments = map->nr_segments;
		m.mapped_flags = map->mapped_flags;
		epoch = fdev->epoch;
	}
	mutex_unlock(&fdev->lock);
	if (ret)
		return ret;

	if (copy_to_user(arg, &m, sizeof(m))) {
		/* Undo it, unless the mapping was used or replaced meanwhile. */
		mutex_lock(&fdev->lock);
		if (fdev->epoch == epoch && fdev->owner == file && !fdev->gone)
			fpgastream_teardown(fdev);
		mutex_unlock(&fdev->lock);
		return -EFAULT;
	}
	return 0;
}

static int fpgastream_ioc_unmap(struct fpgastream_dev *fdev, struct file *file)
{
	int ret;

	mutex_lock(&fdev->lock);
	ret = fpgastream_check_owner(fdev, file);
	if (!ret)
		fpgastream_teardown(fdev);
	mutex_unlock(&fdev->lock);
	return ret;
}

static int fpgastream_ioc_start(struct fpgastream_dev *fdev, struct file *file,
				void __user *arg)
{
	struct fpgastream_start st;
	int ret;

	if (copy_from_user(&st, arg, sizeof(st)))
		return -EFAULT;
	if ((st.flags & ~FPGASTREAM_START_FLOW_CONTROL) ||
	    !fpgastream_reserved_clear(st.reserved, sizeof(st.reserved)))
		return -EINVAL;

	mutex_lock(&fdev->lock);
	ret = fpgastream_check_owner(fdev, file);
	if (!ret)
		ret = fpgastream_stream_start(fdev, st.flags, st.irq_coalesce_count,
					      st.irq_coalesce_usec);
	mutex_unlock(&fdev->lock);
	return ret;
}

static int fpgastream_ioc_stop(struct fpgastream_dev *fdev, struct file *file)
{
	int ret;

	mutex_lock(&fdev->lock);
	ret = fpgastream_check_owner(fdev, file);
	if (!ret && fdev->running) {
		ret = fpgastream_stop_engine(fdev);
		if (ret)
			dev_err(&fdev->pdev->dev, "engine never went idle after stop\n");
	}
	mutex_unlock(&fdev->lock);
	return ret;
}

static int fpgastream_ioc_release(struct fpgastream_dev *fdev, struct file *file,
				  u64 __user *arg)
{
	u64 count;
	int ret;

	if (get_user(count, arg))
		return -EFAULT;

	mutex_lock(&fdev->lock);
	ret = fpgastream_check_owner(fdev, file);
	if (!ret)
		ret = fpgastream_stream_release(fdev, count);
	mutex_unlock(&fdev->lock);
	return ret;
}

static int fpgastream_ioc_stats(struct fpgastream_dev *fdev, void __user *arg)
{
	struct fpgastream_stats st;

	mutex_lock(&fdev->lock);
	if (fdev->gone) {
		mutex_unlock(&fdev->lock);
		return -ENODEV;
	}
	fpgastream_get_stats(fdev, &st);
	mutex_unlock(&fdev->lock);
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

static long fpgastream_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct fpgastream_dev *fdev = file->private_data;
	void __user *uarg = (void __user *)arg;

	/* Checked again under fdev->lock where it matters. */
	if (READ_ONCE(fdev->gone))
		return -ENODEV;

	switch (cmd) {
	case FPGASTREAM_IOC_INFO:
		return fpgastream_ioc_info(fdev, uarg);
	case FPGASTREAM_IOC_MAP:
		return fpgastream_ioc_map(fdev, file, uarg);
	case FPGASTREAM_IOC_UNMAP:
		return fpgastream_ioc_unmap(fdev, file);
	case FPGASTREAM_IOC_START:
		return fpgastream_ioc_start(fdev, file, uarg);
	case FPGASTREAM_IOC_STOP:
		return fpgastream_ioc_stop(fdev, file);
	case FPGASTREAM_IOC_RELEASE:
		return fpgastream_ioc_release(fdev, file, uarg);
	case FPGASTREAM_IOC_STATS:
		return fpgastream_ioc_stats(fdev, uarg);
	default:
		return -ENOTTY;
	}
}

static ssize_t fpgastream_read(struct file *file, char __user *buf, size_t count,
			       loff_t *ppos)
{
	struct fpgastream_dev *fdev = file->private_data;

	if (READ_ONCE(fdev->gone))
		return -ENODEV;
	if (count < sizeof(struct fpgastream_block))
		return -EINVAL;
	return fpgastream_records_read(fdev, file, buf,
				       count / sizeof(struct fpgastream_block),
				       file->f_flags & O_NONBLOCK);
}

static __poll_t fpgastream_poll(struct file *file, poll_table *wait)
{
	struct fpgastream_dev *fdev = file->private_data;
	__poll_t mask;

	poll_wait(file, &fdev->wq, wait);

	mutex_lock(&fdev->lock);
	if (fdev->gone)
		mask = EPOLLHUP;
	else if (!fdev->map || fdev->owner != file)
		mask = EPOLLERR;
	else
		mask = fpgastream_stream_poll(fdev);
	mutex_unlock(&fdev->lock);
	return mask;
}

static int fpgastream_open(struct inode *inode, struct file *file)
{
	struct fpgastream_dev *fdev =
		container_of(inode->i_cdev, struct fpgastream_dev, cdev);

	/* Keep fdev alive until release(), even past the board's removal. */
	get_device(&fdev->dev);
	file->private_data = fdev;
	mutex_lock(&fdev->lock);
	if (!fdev->open_count++)
		fpgastream_health_start(fdev);
	mutex_unlock(&fdev->lock);
	return stream_open(inode, file);
}

static int fpgastream_release(struct inode *inode, struct file *file)
{
	struct fpgastream_dev *fdev = file->private_data;

	mutex_lock(&fdev->lock);
	if (fdev->owner == file && !fdev->gone)
		fpgastream_teardown(fdev);
	fdev->open_count--;
	mutex_unlock(&fdev->lock);
	/* The module may go once the last file is closed: no work left. */
	flush_work(&fdev->missed_work);
	put_device(&fdev->dev);
	return 0;
}

static const struct file_operations fpgastream_fops = {
	.owner = THIS_MODULE,
	.open = fpgastream_open,
	.release = fpgastream_release,
	.read = fpgastream_read,
	.poll = fpgastream_poll,
	.unlocked_ioctl = fpgastream_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

/* Last reference to the char device dropped: no file, no board. */
static void fpgastream_dev_release(struct device *dev)
{
	struct fpgastream_dev *fdev = container_of(dev, struct fpgastream_dev, dev);

	ida_free(&fpgastream_minor_ida, fdev->minor);
	mutex_destroy(&fdev->lock);
	kfree(fdev);
}

/**
 * fpgastream_cdev_alloc() - a new board's structure, minor and struct device
 * @parent: the PCI device
 *
 * The structure belongs to its struct device from the start: the caller
 * drops it with put_device(&fdev->dev) on any later error, and the last
 * put (remove, or the close of the last open file) frees it and the minor.
 *
 * Return: the board, or an ERR_PTR().
 */
struct fpgastream_dev *fpgastream_cdev_alloc(struct device *parent)
{
	struct fpgastream_dev *fdev;
	int ret;

	fdev = kzalloc(sizeof(*fdev), GFP_KERNEL);
	if (!fdev)
		return ERR_PTR(-ENOMEM);
	ret = ida_alloc_max(&fpgastream_minor_ida, FPGASTREAM_MAX_DEVICES - 1,
			    GFP_KERNEL);
	if (ret < 0) {
		kfree(fdev);
		return ERR_PTR(ret);
	}
	fdev->minor = ret;
	mutex_init(&fdev->lock);
	spin_lock_init(&fdev->irq_lock);
	init_waitqueue_head(&fdev->wq);
	INIT_WORK(&fdev->missed_work, fpgastream_missed_work);
	INIT_DELAYED_WORK(&fdev->health_work, fpgastream_health_work);

	device_initialize(&fdev->dev);
	fdev->dev.class = &fpgastream_class;
	fdev->dev.parent = parent;
	fdev->dev.groups = fpgastream_groups;
	fdev->dev.devt = MKDEV(MAJOR(fpgastream_devt), fdev->minor);
	fdev->dev.release = fpgastream_dev_release;
	ret = dev_set_name(&fdev->dev, FPGASTREAM_DRV_NAME "%d", fdev->minor);
	if (ret) {
		put_device(&fdev->dev);
		return ERR_PTR(ret);
	}
	return fdev;
}

/* Make /dev/fpgastream<minor> and its sysfs directory appear. */
int fpgastream_cdev_add(struct fpgastream_dev *fdev)
{
	cdev_init(&fdev->cdev, &fpgastream_fops);
	fdev->cdev.owner = THIS_MODULE;
	return cdev_device_add(&fdev->cdev, &fdev->dev);
}

/* No new opens and no sysfs readers once this returns; open files stay. */
void fpgastream_cdev_del(struct fpgastream_dev *fdev)
{
	cdev_device_del(&fdev->cdev, &fdev->dev);
}

int fpgastream_cdev_init(void)
{
	int ret;

	ret = alloc_chrdev_region(&fpgastream_devt, 0, FPGASTREAM_MAX_DEVICES,
				  FPGASTREAM_DRV_NAME);
	if (ret)
		return ret;
	ret = class_register(&fpgastream_class);
	if (ret)
		unregister_chrdev_region(fpgastream_devt, FPGASTREAM_MAX_DEVICES);
	return ret;
}

void fpgastream_cdev_exit(void)
{
	class_unregister(&fpgastream_class);
	unregister_chrdev_region(fpgastream_devt, FPGASTREAM_MAX_DEVICES);
	ida_destroy(&fpgastream_minor_ida);
}
