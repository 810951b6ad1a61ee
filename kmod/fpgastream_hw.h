/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * FSTR stream engine: register map and every register access.
 *
 * This is the only file that knows register offsets and bit positions
 * (datasheet revision 1.1). A board whose register map differs needs only
 * this file changed.
 *
 * The first half (constants and the LUT entry format) is plain C so that
 * the host unit test of the LUT split can include it; the accessors below
 * are kernel-only.
 */
#ifndef FPGASTREAM_HW_H
#define FPGASTREAM_HW_H

/* PCI identity of the reference device (emulator) */
#define FSTR_PCI_VENDOR_ID		0x1234
#define FSTR_PCI_DEVICE_ID		0xf5a0

#define FSTR_BAR_REGS			0	/* control registers */
#define FSTR_BAR_LUT			2	/* LUT_CAPACITY 64-bit entries */
#define FSTR_REGS_MIN_LEN		0x40	/* registers this driver uses */

/* Control registers, BAR0, 32-bit access */
#define FSTR_REG_ID			0x000
#define FSTR_REG_VERSION		0x004
#define FSTR_REG_LUT_CAPACITY		0x008
#define FSTR_REG_BLOCK_SHIFT		0x00c
#define FSTR_REG_DMA_ADDR_BITS		0x010
#define FSTR_REG_CTRL			0x014
#define FSTR_REG_STATUS			0x018
#define FSTR_REG_RING_SIZE		0x01c
#define FSTR_REG_WR_COUNT		0x020
#define FSTR_REG_RD_COUNT		0x024
#define FSTR_REG_DROP_COUNT		0x028
#define FSTR_REG_IRQ_STATUS		0x02c
#define FSTR_REG_IRQ_COALESCE_COUNT	0x030
#define FSTR_REG_IRQ_COALESCE_USEC	0x034
#define FSTR_REG_SCRATCH		0x038

#define FSTR_ID_MAGIC			0x46535452	/* "FSTR" */
#define FSTR_VERSION_MAJOR(v)		((v) >> 16)
#define FSTR_VERSION_MINOR(v)		((v) & 0xffff)
#define FSTR_VERSION_MAJOR_SUPPORTED	1

#define FSTR_CTRL_ENABLE		0x00000001
#define FSTR_CTRL_SOFT_RESET		0x00000002	/* self-clearing */
#define FSTR_CTRL_IRQ_ENABLE		0x00000004
#define FSTR_CTRL_FLOW_CONTROL		0x00000008

#define FSTR_STATUS_RUNNING		0x00000001
#define FSTR_STATUS_IDLE		0x00000002
#define FSTR_STATUS_OVERRUN		0x00000100	/* W1C */
#define FSTR_STATUS_LUT_FAULT		0x00000200	/* W1C */
#define FSTR_STATUS_DMA_ERROR		0x00000400	/* W1C */
#define FSTR_STATUS_FAULTS		(FSTR_STATUS_LUT_FAULT | \
					 FSTR_STATUS_DMA_ERROR)

#define FSTR_IRQ_BLOCKS_DONE		0x00000001
#define FSTR_IRQ_ERROR			0x00000002
#define FSTR_IRQ_ALL			(FSTR_IRQ_BLOCKS_DONE | FSTR_IRQ_ERROR)

/* A block is 1 << FSTR_BLOCK_SHIFT bytes; the driver refuses other sizes. */
#define FSTR_BLOCK_SHIFT		16
#define FSTR_BLOCK_SIZE			0x10000U

/*
 * LUT entry, BAR2 offset 8 * i, little-endian 64 bits: bits 63..16 are the
 * bus address of a block-aligned block, bit 0 VALID, bits 15..1 reserved 0.
 */
#define FSTR_LUT_ENTRY_SIZE		8
#define FSTR_LUT_VALID			0x1ULL
#define FSTR_LUT_ADDR_MASK		0xffffffffffff0000ULL

/* Bus address -> LUT entry; @bus must be block-aligned. */
#define FSTR_LUT_ENTRY(bus)		(((bus) & FSTR_LUT_ADDR_MASK) | \
					 FSTR_LUT_VALID)
/* LUT entry -> bus address of its block */
#define FSTR_LUT_ENTRY_ADDR(entry)	((entry) & FSTR_LUT_ADDR_MASK)

#ifdef __KERNEL__

#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/iopoll.h>
#include <linux/types.h>

/**
 * struct fpgastream_hw - the mapped BARs of one board
 * @regs: BAR0, the control registers
 * @lut: BAR2, the LUT
 */
struct fpgastream_hw {
	void __iomem *regs;
	void __iomem *lut;
};

/* Counters sampled together by fpgastream_hw_read_counters(). */
struct fpgastream_hw_counters {
	u32 wr_count;
	u32 drop_count;
};

static inline u32 fpgastream_hw_rd(const struct fpgastream_hw *hw, unsigned int reg)
{
	return readl(hw->regs + reg);
}

static inline void fpgastream_hw_wr(const struct fpgastream_hw *hw, unsigned int reg,
				    u32 val)
{
	writel(val, hw->regs + reg);
}

static inline u32 fpgastream_hw_id(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_ID);
}

static inline u32 fpgastream_hw_version(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_VERSION);
}

static inline u32 fpgastream_hw_lut_capacity(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_LUT_CAPACITY);
}

static inline u32 fpgastream_hw_block_shift(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_BLOCK_SHIFT);
}

static inline u32 fpgastream_hw_dma_addr_bits(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_DMA_ADDR_BITS);
}

/* All ones: the board no longer answers (surprise removal, dead link). */
static inline bool fpgastream_hw_absent(u32 val)
{
	return val == 0xffffffff;
}

static inline bool fpgastream_hw_status_faulted(u32 status)
{
	return !fpgastream_hw_absent(status) && (status & FSTR_STATUS_FAULTS);
}

static inline bool fpgastream_hw_status_lut_fault(u32 status)
{
	return status & FSTR_STATUS_LUT_FAULT;
}

/**
 * fpgastream_hw_soft_reset() - zero the counters and sticky bits, keep the LUT
 * @hw: the board
 *
 * Only with ENABLE clear.
 *
 * Return: 0, or -ETIMEDOUT if SOFT_RESET did not clear itself within 10 ms.
 */
static inline int fpgastream_hw_soft_reset(const struct fpgastream_hw *hw)
{
	u32 ctrl;

	fpgastream_hw_wr(hw, FSTR_REG_CTRL, FSTR_CTRL_SOFT_RESET);
	return readl_poll_timeout(hw->regs + FSTR_REG_CTRL, ctrl,
				  !(ctrl & FSTR_CTRL_SOFT_RESET) ||
				  fpgastream_hw_absent(ctrl), 10, 10000);
}

static inline void fpgastream_hw_set_coalesce(const struct fpgastream_hw *hw, u32 count,
					      u32 usec)
{
	fpgastream_hw_wr(hw, FSTR_REG_IRQ_COALESCE_COUNT, count);
	fpgastream_hw_wr(hw, FSTR_REG_IRQ_COALESCE_USEC, usec);
}

static inline void fpgastream_hw_start(const struct fpgastream_hw *hw, bool flow_control)
{
	u32 ctrl = FSTR_CTRL_ENABLE | FSTR_CTRL_IRQ_ENABLE;

	if (flow_control)
		ctrl |= FSTR_CTRL_FLOW_CONTROL;
	fpgastream_hw_wr(hw, FSTR_REG_CTRL, ctrl);
}

/**
 * fpgastream_hw_stop() - clear ENABLE and IRQ_ENABLE, keep FLOW_CONTROL
 * @hw: the board
 *
 * The stop takes effect up to 10 ms later, and until then the engine may
 * start blocks (datasheet 1.1): FLOW_CONTROL must stay as it was, or the
 * engine would overwrite unreleased blocks meanwhile. The counters are
 * read once the engine has stopped, so no interrupt is wanted.
 */
static inline void fpgastream_hw_stop(const struct fpgastream_hw *hw)
{
	u32 ctrl = fpgastream_hw_rd(hw, FSTR_REG_CTRL);

	if (fpgastream_hw_absent(ctrl))
		ctrl = 0;
	fpgastream_hw_wr(hw, FSTR_REG_CTRL, ctrl & FSTR_CTRL_FLOW_CONTROL);
}

/* One STATUS value shows the engine stopped: RUNNING 0 and IDLE 1 together. */
static inline bool fpgastream_hw_status_stopped(u32 status)
{
	return (status & (FSTR_STATUS_RUNNING | FSTR_STATUS_IDLE)) == FSTR_STATUS_IDLE;
}

/**
 * fpgastream_hw_wait_idle() - wait until the engine can no longer write memory
 * @hw: the board, ENABLE cleared (fpgastream_hw_stop())
 * @timeout_us: how long to wait
 *
 * IDLE alone also reads 1 between blocks while the engine still runs
 * (datasheet 1.1): only one read showing RUNNING 0 and IDLE 1 together
 * means no block can start any more.
 *
 * Return: 0 when stopped, -ENODEV when the board reads all ones (it is
 * gone and can no longer write memory), -ETIMEDOUT otherwise.
 */
static inline int fpgastream_hw_wait_idle(const struct fpgastream_hw *hw,
					  unsigned long timeout_us)
{
	u32 status;
	int ret;

	ret = readl_poll_timeout(hw->regs + FSTR_REG_STATUS, status,
				 fpgastream_hw_status_stopped(status) ||
				 fpgastream_hw_absent(status), 100, timeout_us);
	if (fpgastream_hw_absent(status))
		return -ENODEV;
	return ret;
}

static inline u32 fpgastream_hw_irq_status(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_IRQ_STATUS);
}

/*
 * Clear IRQ_STATUS bits, and read the register back: the write is posted,
 * and a level-triggered INTx line stays asserted until it reaches the
 * board, so without the read the same event could interrupt again.
 */
static inline void fpgastream_hw_irq_ack(const struct fpgastream_hw *hw, u32 bits)
{
	fpgastream_hw_wr(hw, FSTR_REG_IRQ_STATUS, bits);
	fpgastream_hw_rd(hw, FSTR_REG_IRQ_STATUS);
}

/* Is this IRQ_STATUS value ours (not 0, not all ones)? */
static inline bool fpgastream_hw_irq_pending(u32 irq_status)
{
	return !fpgastream_hw_absent(irq_status) && (irq_status & FSTR_IRQ_ALL);
}

/* Did this IRQ_STATUS value signal a fault (LUT_FAULT or DMA_ERROR)? */
static inline bool fpgastream_hw_irq_error(u32 irq_status)
{
	return irq_status & FSTR_IRQ_ERROR;
}

static inline u32 fpgastream_hw_drop_count(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_DROP_COUNT);
}

/*
 * DROP_COUNT is read before WR_COUNT: every drop counted then happened
 * before any block that completes after the WR_COUNT read.
 */
static inline void fpgastream_hw_read_counters(const struct fpgastream_hw *hw,
					       struct fpgastream_hw_counters *c)
{
	c->drop_count = fpgastream_hw_drop_count(hw);
	c->wr_count = fpgastream_hw_rd(hw, FSTR_REG_WR_COUNT);
}

static inline u32 fpgastream_hw_status(const struct fpgastream_hw *hw)
{
	return fpgastream_hw_rd(hw, FSTR_REG_STATUS);
}

/* Only while not RUNNING; 0 takes the LUT out of use. */
static inline void fpgastream_hw_set_ring_size(const struct fpgastream_hw *hw, u32 n)
{
	fpgastream_hw_wr(hw, FSTR_REG_RING_SIZE, n);
}

static inline void fpgastream_hw_set_rd_count(const struct fpgastream_hw *hw, u32 n)
{
	fpgastream_hw_wr(hw, FSTR_REG_RD_COUNT, n);
}

/*
 * One entry in one 64-bit write (a 32-bit kernel splits it low half first,
 * which the board also accepts). Relaxed: LUT writes stay ordered among
 * themselves and before the writel() of RING_SIZE that puts them in use.
 */
static inline void fpgastream_hw_lut_write(const struct fpgastream_hw *hw, u32 index,
					   u64 entry)
{
	writeq_relaxed(entry, hw->lut + (size_t)index * FSTR_LUT_ENTRY_SIZE);
}

static inline u64 fpgastream_hw_lut_bar_len(u32 capacity)
{
	return (u64)capacity * FSTR_LUT_ENTRY_SIZE;
}

#endif /* __KERNEL__ */

#endif /* FPGASTREAM_HW_H */
