// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: sysfs and debugfs. /sys/class/fpgastream/fpgastream<N>/
 * shows the board's state, the current mapping and the STATS counters
 * (docs/sysfs-class-fpgastream documents each attribute); debugfs
 * fpgastream/fpgastream<N>/ holds what only benchmarks want, the time each
 * phase of the last MAP took (docs/debugfs-fpgastream).
 */
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/stddef.h>
#include <linux/sysfs.h>

#include "fpgastream_drv.h"

static const char * const fpgastream_state_names[] = {
	[FPGASTREAM_STATE_IDLE] = "idle",
	[FPGASTREAM_STATE_MAPPED] = "mapped",
	[FPGASTREAM_STATE_RUNNING] = "running",
	[FPGASTREAM_STATE_STOPPED] = "stopped",
	[FPGASTREAM_STATE_FAULT] = "fault",
	[FPGASTREAM_STATE_GONE] = "gone",
};

static struct dentry *fpgastream_debugfs_root;

static struct fpgastream_dev *fpgastream_from_dev(struct device *dev)
{
	return container_of(dev, struct fpgastream_dev, dev);
}

static ssize_t state_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	struct fpgastream_dev *fdev = fpgastream_from_dev(dev);
	enum fpgastream_state state;

	mutex_lock(&fdev->lock);
	state = fpgastream_state(fdev);
	mutex_unlock(&fdev->lock);
	return sysfs_emit(buf, "%s\n", fpgastream_state_names[state]);
}
static DEVICE_ATTR_RO(state);

/* A u64 field of the current mapping, 0 without a mapping. */
static u64 fpgastream_map_field(struct fpgastream_dev *fdev, size_t offset)
{
	u64 val = 0;

	mutex_lock(&fdev->lock);
	if (fdev->map)
		val = *(u64 *)((char *)fdev->map + offset);
	mutex_unlock(&fdev->lock);
	return val;
}

static ssize_t buffer_size_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n",
			  fpgastream_map_field(fpgastream_from_dev(dev),
					       offsetof(struct fpgastream_mapping, length)));
}
static DEVICE_ATTR_RO(buffer_size);

static ssize_t nr_blocks_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	struct fpgastream_dev *fdev = fpgastream_from_dev(dev);
	u32 val = 0;

	mutex_lock(&fdev->lock);
	if (fdev->map)
		val = fdev->map->nr_blocks;
	mutex_unlock(&fdev->lock);
	return sysfs_emit(buf, "%u\n", val);
}
static DEVICE_ATTR_RO(nr_blocks);

static ssize_t bounced_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	struct fpgastream_dev *fdev = fpgastream_from_dev(dev);
	bool val = false;

	mutex_lock(&fdev->lock);
	if (fdev->map)
		val = fdev->map->mapped_flags & FPGASTREAM_MAPPED_BOUNCED;
	mutex_unlock(&fdev->lock);
	return sysfs_emit(buf, "%d\n", val);
}
static DEVICE_ATTR_RO(bounced);

static ssize_t iommu_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%d\n", fpgastream_from_dev(dev)->translated);
}
static DEVICE_ATTR_RO(iommu);

/* The STATS counters, one file each, all shown by fpgastream_stat_show(). */
struct fpgastream_stat_attr {
	struct device_attribute attr;
	size_t offset;		/* in struct fpgastream_stats */
};

static ssize_t fpgastream_stat_show(struct device *dev,
				    struct device_attribute *attr, char *buf)
{
	struct fpgastream_dev *fdev = fpgastream_from_dev(dev);
	struct fpgastream_stat_attr *sa =
		container_of(attr, struct fpgastream_stat_attr, attr);
	struct fpgastream_stats st;

	mutex_lock(&fdev->lock);
	fpgastream_get_stats(fdev, &st);
	mutex_unlock(&fdev->lock);
	return sysfs_emit(buf, "%llu\n", *(u64 *)((char *)&st + sa->offset));
}

#define FPGASTREAM_STAT_ATTR(_f)					\
static struct fpgastream_stat_attr fpgastream_stat_attr_##_f = {	\
	.attr = {							\
		.attr = { .name = __stringify(_f), .mode = 0444 },	\
		.show = fpgastream_stat_show,				\
	},								\
	.offset = offsetof(struct fpgastream_stats, _f),		\
}

FPGASTREAM_STAT_ATTR(blocks_completed);
FPGASTREAM_STAT_ATTR(blocks_announced);
FPGASTREAM_STAT_ATTR(blocks_released);
FPGASTREAM_STAT_ATTR(blocks_overwritten);
FPGASTREAM_STAT_ATTR(blocks_dropped);
FPGASTREAM_STAT_ATTR(interrupts);
FPGASTREAM_STAT_ATTR(read_calls);

static struct attribute *fpgastream_attrs[] = {
	&dev_attr_state.attr,
	&dev_attr_buffer_size.attr,
	&dev_attr_nr_blocks.attr,
	&dev_attr_iommu.attr,
	&dev_attr_bounced.attr,
	&fpgastream_stat_attr_blocks_completed.attr.attr,
	&fpgastream_stat_attr_blocks_announced.attr.attr,
	&fpgastream_stat_attr_blocks_released.attr.attr,
	&fpgastream_stat_attr_blocks_overwritten.attr.attr,
	&fpgastream_stat_attr_blocks_dropped.attr.attr,
	&fpgastream_stat_attr_interrupts.attr.attr,
	&fpgastream_stat_attr_read_calls.attr.attr,
	NULL,
};

static const struct attribute_group fpgastream_group = {
	.attrs = fpgastream_attrs,
};

const struct attribute_group *fpgastream_groups[] = {
	&fpgastream_group,
	NULL,
};

/* debugfs: the MAP phase times of the current mapping, in ns (0: none). */

#define FPGASTREAM_DEBUGFS_MAP_ATTR(_name, _field)				\
static int fpgastream_##_name##_get(void *data, u64 *val)			\
{										\
	*val = fpgastream_map_field(data,					\
				    offsetof(struct fpgastream_mapping, _field)); \
	return 0;								\
}										\
DEFINE_DEBUGFS_ATTRIBUTE(fpgastream_##_name##_fops, fpgastream_##_name##_get,	\
			 NULL, "%llu\n")

FPGASTREAM_DEBUGFS_MAP_ATTR(map_pin_ns, pin_ns);
FPGASTREAM_DEBUGFS_MAP_ATTR(map_dma_ns, dma_ns);
FPGASTREAM_DEBUGFS_MAP_ATTR(map_lut_ns, lut_ns);

/**
 * fpgastream_debugfs_add() - the board's debugfs directory
 * @fdev: the board, its name set
 *
 * debugfs is optional: a failure leaves the board without its files, and
 * the debugfs calls accept the error pointers that result.
 */
void fpgastream_debugfs_add(struct fpgastream_dev *fdev)
{
	struct dentry *dir;

	dir = debugfs_create_dir(dev_name(&fdev->dev), fpgastream_debugfs_root);
	debugfs_create_file_unsafe("map_pin_ns", 0444, dir, fdev,
				   &fpgastream_map_pin_ns_fops);
	debugfs_create_file_unsafe("map_dma_ns", 0444, dir, fdev,
				   &fpgastream_map_dma_ns_fops);
	debugfs_create_file_unsafe("map_lut_ns", 0444, dir, fdev,
				   &fpgastream_map_lut_ns_fops);
	fdev->debugfs = dir;
}

/* Waits for readers of the files to leave: fdev may be freed afterwards. */
void fpgastream_debugfs_remove(struct fpgastream_dev *fdev)
{
	debugfs_remove(fdev->debugfs);
	fdev->debugfs = NULL;
}

void fpgastream_debugfs_init(void)
{
	fpgastream_debugfs_root = debugfs_create_dir(FPGASTREAM_DRV_NAME, NULL);
}

void fpgastream_debugfs_exit(void)
{
	debugfs_remove(fpgastream_debugfs_root);
}
