/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * fpgastream: the driver's own structures and the calls between its files:
 * fpgastream_pci.c (PCI glue), fpgastream_cdev.c (the char device),
 * fpgastream_stream.c (the stream), fpgastream_records.c (records for
 * read() and poll()), fpgastream_faults.c (resets, recovery, link loss,
 * a wedged engine), fpgastream_dma.c (the buffer),
 * fpgastream_bounce.c (swiotlb bouncing),
 * fpgastream_sysfs.c (sysfs and debugfs). The locks are documented at
 * struct fpgastream_dev.
 */
#ifndef FPGASTREAM_DRV_H
#define FPGASTREAM_DRV_H

#include <linux/bitops.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/interrupt.h>
#include <linux/math64.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/poll.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include <uapi/fpgastream.h>

#include "fpgastream_hw.h"

#define FPGASTREAM_DRV_NAME		"fpgastream"

/**
 * struct fpgastream_sample - one look at WR_COUNT that found new blocks
 * @end: fpgastream_stream.completed after it: the sample covers the blocks
 *	from the previous sample's @end up to this one
 * @ts: ktime_get_ns() when the driver saw those blocks complete
 * @dropped: blocks dropped at the source before those blocks were
 *	written, as far as the driver can tell: in flow control, DROP_COUNT
 *	read with this sample unless the ring was full then (the board may
 *	be stalled, dropping for the block after), else as of the previous
 *	refresh: exact for the drops of a stall, which belong to the block
 *	after it; a lower bound for drops while the engine runs
 *
 * One entry per sample rather than per block keeps the interrupt handler's
 * work constant however many blocks one interrupt covers. Each sample
 * covers at least one block, so the newest nr_blocks samples cover every
 * block still in the ring: a ring of nr_blocks samples is enough.
 */
struct fpgastream_sample {
	u64 end;
	u64 ts;
	u64 dropped;
};

/**
 * struct fpgastream_mapping - one user buffer, pinned and mapped for the device
 * @mm: the mm charged for the pinned pages (mmgrab'ed at MAP time)
 * @uaddr: user address of the buffer
 * @length: bytes
 * @npages: PAGE_SIZE pages pinned
 * @pages: the pinned pages
 * @sgt: the pages as an sg table, DMA-mapped DMA_FROM_DEVICE
 * @lut: LUT entries as programmed, one per block
 * @split_map: blocks that span more than one DMA segment
 * @scattered_map: blocks whose pages are not physically contiguous
 * @samples: ring of nr_blocks samples, see struct fpgastream_sample;
 *	written under fpgastream_dev.irq_lock
 * @bounce_segs: DMA segments expected to bounce through swiotlb, held
 *	against the limit of fpgastream_bounce_reserve()
 * @nr_blocks: entries in @lut, RING_SIZE
 * @nr_segments: DMA segments of @sgt
 * @mapped_flags: FPGASTREAM_MAPPED_*
 * @need_sync: the DMA API says the buffer needs syncing (dma_need_sync()
 *	of a segment): blocks are synced before read() returns them and
 *	before RELEASE gives them back; otherwise syncing is skipped
 * @pin_ns: time MAP spent charging and pinning the pages
 * @dma_ns: time MAP spent building the sg table and DMA-mapping it
 * @lut_ns: time MAP spent splitting segments and writing the LUT
 */
struct fpgastream_mapping {
	struct mm_struct *mm;
	u64 uaddr;
	u64 length;
	unsigned long npages;
	struct page **pages;
	struct sg_table sgt;
	u64 *lut;
	unsigned long *split_map;
	unsigned long *scattered_map;
	struct fpgastream_sample *samples;
	unsigned int bounce_segs;
	u32 nr_blocks;
	u32 nr_segments;
	u32 mapped_flags;
	bool need_sync;
	u64 pin_ns;
	u64 dma_ns;
	u64 lut_ns;
};

/*
 * fpgastream_stream.fault without a STATUS bit: a reset, an error recovery
 * or a suspend ended the stream; read() returns -EIO after the pending
 * records, as after a fault the board reported.
 */
#define FPGASTREAM_FAULT_INTERRUPTED	BIT(31)

/* How often an open board is checked for a link that went down. */
#define FPGASTREAM_HEALTH_MS		200
/* The longest a reset or a recovery may keep the health check away. */
#define FPGASTREAM_RESET_MAX_MS		10000

/**
 * struct fpgastream_stream - sequence state of the stream, zeroed by START
 * @active: the counters follow the board (between START and STOP)
 * @completed: blocks completed by the board, WR_COUNT extended to 64 bits
 * @last_wr: WR_COUNT when last read
 * @dropped: DROP_COUNT extended to 64 bits
 * @last_drop: DROP_COUNT when last read
 * @fault: STATUS fault bits (LUT_FAULT, DMA_ERROR) once seen, or
 *	FPGASTREAM_FAULT_INTERRUPTED, else 0
 * @interrupts: interrupts handled
 * @nr_samples: samples taken (see struct fpgastream_sample)
 * @sample_head: ring index of the next sample to write
 * @signalled: @completed as of the last interrupt or stop: poll() reports
 *	a batch when the board signalled one, as its coalescing decides, not
 *	each block that read() or RELEASE happened to see complete
 * @coalesce_count: IRQ_COALESCE_COUNT of this stream, at least 1
 * @coalesce_usec: IRQ_COALESCE_USEC of this stream; 0: the board may
 *	never signal the last blocks of a batch, so poll() does not wait for it
 * @next_seq: ring position of the next record to announce
 * @sample_next: number of the oldest sample that may cover @next_seq
 * @sample_idx: its ring index
 * @announced: records returned by read()
 * @released: records given back by RELEASE
 * @rel_seq: ring position of the oldest unreleased live record
 * @rd_written: RD_COUNT as last written, extended: the board is stalled
 *	when @completed reaches it plus the ring (read by the IRQ handler)
 * @dead: unreleased records older than an overrun gap; their blocks were
 *	overwritten, releasing them needs neither a sync nor RD_COUNT
 * @pending_lost: blocks lost since the last record, for the next one
 * @dropped_reported: @dropped already reported in records
 * @overwritten: blocks skipped because the board overwrote them
 * @read_calls: read() calls
 * @more: the last read() filled its buffer and left records behind
 * @flow_control: started with FPGASTREAM_START_FLOW_CONTROL
 *
 * @active through @coalesce_usec are shared with the IRQ handler and
 * protected by fpgastream_dev.irq_lock; the rest by fpgastream_dev.lock.
 */
struct fpgastream_stream {
	bool active;
	u64 completed;
	u32 last_wr;
	u64 dropped;
	u32 last_drop;
	u32 fault;
	u64 interrupts;
	u64 nr_samples;
	u32 sample_head;
	u64 signalled;
	u32 coalesce_count;
	u32 coalesce_usec;

	u64 next_seq;
	u64 sample_next;
	u32 sample_idx;
	u64 announced;
	u64 released;
	u64 rel_seq;
	u64 rd_written;
	u64 dead;
	u64 pending_lost;
	u64 dropped_reported;
	u64 overwritten;
	u64 read_calls;
	bool more;
	bool flow_control;
};

/**
 * struct fpgastream_dev - one board
 * @pdev: the PCI device; only used while bound (!@gone)
 * @hw: its mapped BARs; only used while bound (!@gone)
 * @dev: the char device's struct device, /dev/fpgastream<minor>; its
 *	refcount keeps this structure alive (open files hold a reference)
 * @cdev: the char device
 * @minor: from fpgastream_minor_ida
 * @irq: the Linux IRQ number of the one vector
 * @hw_version: VERSION register
 * @lut_capacity: LUT_CAPACITY register
 * @dma_addr_bits: DMA_ADDR_BITS register
 * @translated: the device's DMA goes through a DMA-API IOMMU domain
 * @bounce_all: the DMA layer bounces even memory the board can reach
 *	(fpgastream_bounce_probe())
 * @debugfs: its debugfs directory, or NULL
 * @lock: see the comment at the member
 * @irq_lock: see the comment at the member
 * @gen: bumped under @irq_lock whenever readers may have something new
 * @wq: readers and pollers wait here for @gen to change
 * @map: the buffer mapping, or NULL
 * @owner: the file that created @map, or NULL
 * @running: the engine was started and not stopped
 * @started: a stream was started on @map (read can drain it)
 * @gone: the board was removed, or is @lost; everything but close fails
 *	with -ENODEV
 * @lost: the board stopped answering (link down): its buffer was
 *	released; a reset that brings it back clears @lost and @gone
 * @wedged: the engine never went idle, even after a soft reset; bus
 *	mastering is switched off before its buffer is freed, and stays off
 *	until the engine is seen idle again
 * @lut_lost: a reset or a power loss may have put every register and LUT
 *	entry back to its power-on value: fpgastream_board_restore() runs
 *	before the board is used again
 * @resetting: a reset, an error recovery or a suspend is under way since
 *	@reset_since (jiffies): MAP and START get -EBUSY, the registers are
 *	left alone, and so is the board by the health check, for
 *	FPGASTREAM_RESET_MAX_MS at most (a failed recovery tells no driver)
 * @reset_since: see @resetting
 * @pci_state: config space as probe left it, restored after a reset the
 *	PCI core did not save it for (error recovery, a board that was lost)
 * @open_count: open files; the health check runs while there are any
 * @absent_strikes: health checks in a row that found the board absent
 * @health_work: the health check, every FPGASTREAM_HEALTH_MS: a board
 *	whose link went down raises no interrupt, so nothing else would wake
 *	its readers
 * @map_pending: a MAP is pinning its buffer (with @lock dropped); another
 *	MAP gets -EBUSY meanwhile
 * @reading: a reader is copying staged records out (with @lock dropped);
 *	other readers of the mapping wait for it on @wq
 * @epoch: bumped whenever the mapping or the stream is replaced or torn
 *	down (MAP, START, UNMAP, removal): a reader's staged records are
 *	committed only if it did not move meanwhile
 * @read_claim: bumped by each read() round that stages records; a round
 *	commits only if it still holds the claim (another reader took it
 *	over after FPGASTREAM_READ_TAKEOVER_MS otherwise)
 * @missed_work: wakes pollers once @lock is free again, after an
 *	O_NONBLOCK read() found it taken (fpgastream_records.c)
 * @s: the stream
 */
struct fpgastream_dev {
	struct pci_dev *pdev;
	struct fpgastream_hw hw;
	struct device dev;
	struct cdev cdev;
	int minor;
	int irq;
	u32 hw_version;
	u32 lut_capacity;
	u32 dma_addr_bits;
	bool translated;
	bool bounce_all;
	struct dentry *debugfs;

	/*
	 * Protects @map, @owner, @running, @started, @gone (written; read
	 * locklessly only to fail fast), @wedged, @lut_lost, @lost,
	 * @resetting (read locklessly by the IRQ handler), @reset_since,
	 * @open_count, @absent_strikes, @map_pending, @reading, @epoch, the
	 * stream's non-IRQ fields and every register access but the IRQ
	 * handler's.
	 * Lock order: @lock, then @irq_lock. Never held across a user memory
	 * access that can fault or across pinning: a buffer whose faults
	 * never resolve (userfaultfd, FUSE) must not stall poll(), sysfs or
	 * remove(). The DMA mapping and the RLIMIT_MEMLOCK charge nest
	 * mmap_lock inside @lock; nothing takes @lock under mmap_lock (the
	 * driver has no mmap). remove() deletes the char device and its
	 * sysfs files, and cancels @health_work, before taking @lock, since
	 * those take it. The PCI core calls the reset, error and PM
	 * callbacks with the device lock held, which is taken before @lock.
	 */
	struct mutex lock;
	/*
	 * Protects what the IRQ handler touches: the stream's counters
	 * (fpgastream_stream.active .. .coalesce_usec), @gen and @map->samples. Taken
	 * inside @lock, never the other way round; never held across sleep.
	 */
	spinlock_t irq_lock;
	u64 gen;
	wait_queue_head_t wq;

	struct fpgastream_mapping *map;
	struct file *owner;
	bool running;
	bool started;
	bool gone;
	bool wedged;
	bool lut_lost;
	bool lost;
	bool resetting;
	unsigned long reset_since;
	struct pci_saved_state *pci_state;
	bool map_pending;
	bool reading;
	u64 epoch;
	u64 read_claim;
	struct work_struct missed_work;
	unsigned int open_count;
	unsigned int absent_strikes;
	struct delayed_work health_work;
	struct fpgastream_stream s;
};

enum fpgastream_state {
	FPGASTREAM_STATE_IDLE,
	FPGASTREAM_STATE_MAPPED,
	FPGASTREAM_STATE_RUNNING,
	FPGASTREAM_STATE_STOPPED,
	FPGASTREAM_STATE_FAULT,
	FPGASTREAM_STATE_GONE,
};

static inline u64 fpgastream_max_buffer_size(const struct fpgastream_dev *fdev)
{
	return (u64)fdev->lut_capacity << FSTR_BLOCK_SHIFT;
}

/* Ring slot of stream position @seq: a 32-bit remainder, no 64-bit '%'. */
static inline u32 fpgastream_ring_slot(u64 seq, u32 nr_blocks)
{
	u32 slot;

	div_u64_rem(seq, nr_blocks, &slot);
	return slot;
}

/* Caller holds fdev->lock: -ENODEV, -EINVAL (no mapping here) or 0. */
static inline int fpgastream_check_owner(struct fpgastream_dev *fdev,
					 struct file *file)
{
	if (fdev->gone)
		return -ENODEV;
	if (!fdev->map || fdev->owner != file)
		return -EINVAL;
	return 0;
}

void fpgastream_wake(struct fpgastream_dev *fdev);

/*
 * The mapping or the stream is being replaced or torn down: a reader's
 * staged records no longer apply. Caller holds fdev->lock.
 */
static inline void fpgastream_new_epoch(struct fpgastream_dev *fdev)
{
	fdev->epoch++;
	fdev->reading = false;
}

/* fpgastream_cdev.c */
int fpgastream_cdev_init(void);
void fpgastream_cdev_exit(void);
struct fpgastream_dev *fpgastream_cdev_alloc(struct device *parent);
int fpgastream_cdev_add(struct fpgastream_dev *fdev);
void fpgastream_cdev_del(struct fpgastream_dev *fdev);

/* fpgastream_stream.c */
enum fpgastream_state fpgastream_state(struct fpgastream_dev *fdev);
irqreturn_t fpgastream_irq(int irq, void *data);
int fpgastream_quiesce(struct fpgastream_dev *fdev);
int fpgastream_stop_engine(struct fpgastream_dev *fdev);

/* fpgastream_faults.c */
void fpgastream_cut_bus_master(struct fpgastream_dev *fdev);
void fpgastream_stream_interrupt(struct fpgastream_dev *fdev, bool reachable);
int fpgastream_board_restore(struct fpgastream_dev *fdev);
void fpgastream_board_lost(struct fpgastream_dev *fdev);
void fpgastream_set_resetting(struct fpgastream_dev *fdev, bool on);
int fpgastream_recover(struct fpgastream_dev *fdev, bool pci_state);
void fpgastream_health_work(struct work_struct *work);
void fpgastream_health_start(struct fpgastream_dev *fdev);
void fpgastream_teardown(struct fpgastream_dev *fdev);
void fpgastream_stream_reset(struct fpgastream_dev *fdev);
int fpgastream_stream_start(struct fpgastream_dev *fdev, u32 flags,
			    u32 coalesce_count, u32 coalesce_usec);
int fpgastream_stream_release(struct fpgastream_dev *fdev, u64 count);
bool fpgastream_refresh_locked(struct fpgastream_dev *fdev, bool check_status);
void fpgastream_get_stats(struct fpgastream_dev *fdev, struct fpgastream_stats *st);

/* fpgastream_records.c */
void fpgastream_missed_work(struct work_struct *work);
ssize_t fpgastream_records_read(struct fpgastream_dev *fdev, struct file *file,
				char __user *buf, size_t nr, bool nonblock);
__poll_t fpgastream_stream_poll(struct fpgastream_dev *fdev);

/* fpgastream_sysfs.c */
extern const struct attribute_group *fpgastream_groups[];
void fpgastream_debugfs_init(void);
void fpgastream_debugfs_exit(void);
void fpgastream_debugfs_add(struct fpgastream_dev *fdev);
void fpgastream_debugfs_remove(struct fpgastream_dev *fdev);

/* fpgastream_bounce.c */
bool fpgastream_may_bounce(struct fpgastream_dev *fdev);
void fpgastream_bounce_probe(struct fpgastream_dev *fdev);
unsigned int fpgastream_predict_bounce(struct fpgastream_dev *fdev,
				       struct sg_table *sgt, u64 *misfit);
unsigned int fpgastream_count_bounced(struct fpgastream_dev *fdev,
				      struct sg_table *sgt);
int fpgastream_bounce_reserve(struct device *dev, u64 length, unsigned int segs);
void fpgastream_bounce_unreserve(struct device *dev, unsigned int segs);

/* fpgastream_dma.c */
bool fpgastream_dma_translated(struct device *dev);
int fpgastream_map_pin(u64 uaddr, u64 length, struct fpgastream_mapping **mapp);
void fpgastream_map_unpin(struct fpgastream_mapping *map);
int fpgastream_map_dma(struct fpgastream_dev *fdev, struct fpgastream_mapping *map,
		       u32 flags);
void fpgastream_map_program(struct fpgastream_dev *fdev,
			    struct fpgastream_mapping *map);
void fpgastream_map_clear(struct fpgastream_dev *fdev, const struct fpgastream_mapping *map);
void fpgastream_map_invalidate(struct fpgastream_dev *fdev,
			       const struct fpgastream_mapping *map);
void fpgastream_map_destroy(struct fpgastream_dev *fdev, struct fpgastream_mapping *map);
void fpgastream_map_sync_block(struct fpgastream_dev *fdev, const struct fpgastream_mapping *map,
			       u32 blk, bool for_cpu);

#endif /* FPGASTREAM_DRV_H */
