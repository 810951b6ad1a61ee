/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * fpgastream user ABI, version 1: stream a FSTR FPGA into a user buffer.
 *
 * The names in this file are a contract with programs outside this tree:
 * fields are only ever added into reserved space, ioctls are only added,
 * nothing is renumbered.
 */
#ifndef _UAPI_LINUX_FPGASTREAM_H
#define _UAPI_LINUX_FPGASTREAM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define FPGASTREAM_ABI_VERSION		1

/* struct fpgastream_info.flags */
#define FPGASTREAM_INFO_IOMMU		(1U << 0)	/* DMA is translated */

/* struct fpgastream_map.flags */
#define FPGASTREAM_MAP_NO_BOUNCE	(1U << 0)	/* fail rather than bounce */

/* struct fpgastream_map.mapped_flags */
#define FPGASTREAM_MAPPED_IOMMU		(1U << 0)	/* bus addresses are IOVAs */
#define FPGASTREAM_MAPPED_BOUNCED	(1U << 1)	/* swiotlb copies the data */

/* struct fpgastream_start.flags */
#define FPGASTREAM_START_FLOW_CONTROL	(1U << 0)	/* lossless to host */

/* struct fpgastream_block.flags */
#define FPGASTREAM_BLOCK_OVERRUN	(1U << 0)	/* blocks before this one were lost */

struct fpgastream_info {
	__u32 abi_version;	/* FPGASTREAM_ABI_VERSION */
	__u32 hw_version;	/* VERSION register */
	__u32 block_size;	/* bytes: 65536 */
	__u32 lut_capacity;	/* entries */
	__u32 dma_addr_bits;	/* DMA_ADDR_BITS register */
	__u32 flags;		/* FPGASTREAM_INFO_* */
	__u64 max_buffer_size;	/* lut_capacity * block_size */
	__u64 reserved[4];
};

struct fpgastream_map {
	__u64 addr;		/* in: user address, block_size aligned */
	__u64 length;		/* in: multiple of block_size, <= max_buffer_size */
	__u32 flags;		/* in: FPGASTREAM_MAP_* */
	__u32 nr_blocks;	/* out: LUT entries programmed */
	__u32 nr_segments;	/* out: DMA segments the kernel produced */
	__u32 mapped_flags;	/* out: FPGASTREAM_MAPPED_* */
	__u64 reserved[2];
};

struct fpgastream_start {
	__u32 flags;		/* FPGASTREAM_START_* */
	__u32 irq_coalesce_count;
	__u32 irq_coalesce_usec;
	__u32 reserved[5];
};

/* read() fills the caller's buffer with whole records, oldest first. */
struct fpgastream_block {
	__u64 seq;		/* stream sequence number, from 0 at START */
	__u64 offset;		/* byte offset of the block in the mapped buffer */
	__u32 length;		/* bytes of data: block_size */
	__u32 flags;		/* FPGASTREAM_BLOCK_* */
	__u64 lost;		/* blocks lost between the previous record and this one */
	__u64 timestamp_ns;	/* CLOCK_MONOTONIC when the driver saw it complete */
};

struct fpgastream_stats {
	__u64 blocks_completed;		/* by the board */
	__u64 blocks_announced;		/* to user space */
	__u64 blocks_released;
	__u64 blocks_overwritten;
	__u64 blocks_dropped;		/* DROP_COUNT */
	__u64 interrupts;
	__u64 read_calls;
	__u64 reserved[9];
};

#define FPGASTREAM_IOC_MAGIC		0xF5

#define FPGASTREAM_IOC_INFO	_IOR(FPGASTREAM_IOC_MAGIC, 0x00, struct fpgastream_info)
#define FPGASTREAM_IOC_MAP	_IOWR(FPGASTREAM_IOC_MAGIC, 0x01, struct fpgastream_map)
#define FPGASTREAM_IOC_UNMAP	_IO(FPGASTREAM_IOC_MAGIC, 0x02)
#define FPGASTREAM_IOC_START	_IOW(FPGASTREAM_IOC_MAGIC, 0x03, struct fpgastream_start)
#define FPGASTREAM_IOC_STOP	_IO(FPGASTREAM_IOC_MAGIC, 0x04)
#define FPGASTREAM_IOC_RELEASE	_IOW(FPGASTREAM_IOC_MAGIC, 0x05, __u64)
#define FPGASTREAM_IOC_STATS	_IOR(FPGASTREAM_IOC_MAGIC, 0x06, struct fpgastream_stats)

#endif /* _UAPI_LINUX_FPGASTREAM_H */
