// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: stream a FSTR FPGA into a buffer the user program allocated.
 *
 * PCI driver, char device /dev/fpgastream<N>, ioctls, read/poll and the
 * interrupt handler. The buffer itself (pinning, DMA mapping, LUT split)
 * is in fpgastream_dma.c; every register access in fpgastream_hw.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <uapi/fpgastream.h>

#include "fpgastream_compat.h"
#include "fpgastream_drv.h"

#define FPGASTREAM_MAX_DEVICES	256
/* STATUS.IDLE is due within 10 ms; allow for stalls (the emulator: 50 ms). */
#define FSTR_IDLE_TIMEOUT_US	(100 * USEC_PER_MSEC)
/* Largest DMA segment: the biggest block multiple that fits the field. */
#define FSTR_MAX_SEG_SIZE	(UINT_MAX & ~(FSTR_BLOCK_SIZE - 1))

static char ids[1024] __initdata;
module_param_string(ids, ids, sizeof(ids), 0);
MODULE_PARM_DESC(ids, "More PCI IDs to bind: \"vendor:device[,vendor:device...]\", hex");

static struct class fpgastream_class = {
	.name = FPGASTREAM_DRV_NAME,
};

static dev_t fpgastream_devt;
static DEFINE_IDA(fpgastream_minor_ida);

static const char * const fpgastream_state_names[] = {
	"idle", "mapped", "running", "stopped", "fault", "gone",
};

enum fpgastream_state {
	FPGASTREAM_STATE_IDLE,
	FPGASTREAM_STATE_MAPPED,
	FPGASTREAM_STATE_RUNNING,
	FPGASTREAM_STATE_STOPPED,
	FPGASTREAM_STATE_FAULT,
	FPGASTREAM_STATE_GONE,
};

/* Caller holds fdev->lock. */
static enum fpgastream_state fpgastream_state(struct fpgastream_dev *fdev)
{
	u32 fault;

	if (fdev->gone)
		return FPGASTREAM_STATE_GONE;
	if (!fdev->map)
		return FPGASTREAM_STATE_IDLE;
	spin_lock_irq(&fdev->irq_lock);
	fault = fdev->s.fault;
	spin_unlock_irq(&fdev->irq_lock);
	if (fault || fdev->wedged)
		return FPGASTREAM_STATE_FAULT;
	if (fdev->running)
		return FPGASTREAM_STATE_RUNNING;
	if (fdev->started)
		return FPGASTREAM_STATE_STOPPED;
	return FPGASTREAM_STATE_MAPPED;
}

/* Tell readers and pollers that something changed. */
static void fpgastream_wake(struct fpgastream_dev *fdev)
{
	unsigned long flags;

	spin_lock_irqsave(&fdev->irq_lock, flags);
	fdev->gen++;
	spin_unlock_irqrestore(&fdev->irq_lock, flags);
	wake_up_interruptible_all(&fdev->wq);
}

/**
 * fpgastream_refresh_locked() - fold the board's counters into the stream
 * @fdev: the board
 * @check_status: read STATUS for faults even if WR_COUNT moved on
 *
 * Extends WR_COUNT and DROP_COUNT to 64 bits, stamps newly completed
 * blocks and latches faults. Caller holds fdev->irq_lock. Only while the
 * stream is active, which implies fdev->map is set and the counters are
 * not reset under us.
 *
 * STATUS is a third bus read, and each one stalls the CPU (under emulation
 * it also stalls the emulated engine), so it is read only when a fault or
 * a removal may be what it would show: when asked (an ERROR interrupt, the
 * stop), when WR_COUNT did not move (a fault stops the engine, so the first
 * sample after one always sees it stand still), and when WR_COUNT reads
 * all ones (a removed board; the counter also wraps through that value).
 *
 * Return: true if anything changed (readers should be woken).
 */
static bool fpgastream_refresh_locked(struct fpgastream_dev *fdev, bool check_status)
{
	struct fpgastream_stream *s = &fdev->s;
	struct fpgastream_hw_counters c;
	bool changed = false;
	u32 status = 0;
	u32 delta;

	if (!s->active)
		return false;
	fpgastream_hw_read_counters(&fdev->hw, &c);
	if (check_status || c.wr_count == s->last_wr ||
	    fpgastream_hw_absent(c.wr_count)) {
		status = fpgastream_hw_status(&fdev->hw);
		if (fpgastream_hw_absent(status))
			return false;
	}

	delta = c.wr_count - s->last_wr;
	if (delta) {
		struct fpgastream_slot *slots = fdev->map->slots;
		u32 nr = fdev->map->nr_blocks;
		u64 now = ktime_get_ns();
		u32 n = min(delta, nr);
		u32 slot;

		s->last_wr = c.wr_count;
		s->completed += delta;
		/* Only the newest ring's worth can still be in the ring. */
		slot = (s->completed - n) % nr;
		/* s->dropped is still the previous sample: see fpgastream_slot */
		while (n--) {
			slots[slot].ts = now;
			slots[slot].dropped = s->dropped;
			if (++slot == nr)
				slot = 0;
		}
		changed = true;
	}

	delta = c.drop_count - s->last_drop;
	if (delta) {
		s->last_drop = c.drop_count;
		s->dropped += delta;
		changed = true;
	}

	if (fpgastream_hw_status_faulted(status) && !s->fault) {
		s->fault = status & FSTR_STATUS_FAULTS;
		dev_err_ratelimited(&fdev->pdev->dev, "stream stopped by a %s (STATUS %#x)\n",
				    fpgastream_hw_status_lut_fault(status) ?
				    "LUT fault" : "DMA error", status);
		changed = true;
	}
	if (changed)
		fdev->gen++;
	return changed;
}

/**
 * fpgastream_refresh_drops_locked() - sample DROP_COUNT, and WR_COUNT if it moved
 * @fdev: the board; caller holds fdev->irq_lock
 *
 * A flow-controlled board drops at the source while it waits for a
 * RELEASE: the drops must be charged to the blocks that follow the stall,
 * which takes a sample of both counters before those blocks complete.
 * While DROP_COUNT stands still there is nothing to charge, and WR_COUNT
 * need not be read: blocks that complete meanwhile get the same count
 * when a later sample stamps them.
 *
 * Return: true if anything changed (readers should be woken).
 */
static bool fpgastream_refresh_drops_locked(struct fpgastream_dev *fdev)
{
	if (!fdev->s.active ||
	    fpgastream_hw_drop_count(&fdev->hw) == fdev->s.last_drop)
		return false;
	return fpgastream_refresh_locked(fdev, false);
}

static irqreturn_t fpgastream_irq(int irq, void *data)
{
	struct fpgastream_dev *fdev = data;
	u32 status;

	status = fpgastream_hw_irq_status(&fdev->hw);
	if (!fpgastream_hw_irq_pending(status))
		return IRQ_NONE;
	fpgastream_hw_irq_ack(&fdev->hw, status);

	spin_lock(&fdev->irq_lock);
	fdev->s.interrupts++;
	fpgastream_refresh_locked(fdev, fpgastream_hw_irq_error(status));
	fdev->s.signalled = fdev->s.completed;
	spin_unlock(&fdev->irq_lock);

	wake_up_interruptible_all(&fdev->wq);
	return IRQ_HANDLED;
}

/**
 * fpgastream_stop_engine() - stop the engine and wait until it can no longer write
 * @fdev: the board; caller holds fdev->lock
 *
 * Clears ENABLE and waits for IDLE; on timeout soft-resets and waits again.
 * The counters are read one last time before any reset, so that read()
 * still returns every block completed before the stop.
 *
 * Return: 0 when idle (or the board is gone), -EIO when it never went idle;
 * the device is then wedged and its buffer must stay pinned.
 */
static int fpgastream_stop_engine(struct fpgastream_dev *fdev)
{
	struct device *dev = &fdev->pdev->dev;
	int ret;

	fpgastream_hw_stop(&fdev->hw);
	ret = fpgastream_hw_wait_idle(&fdev->hw, FSTR_IDLE_TIMEOUT_US);

	spin_lock_irq(&fdev->irq_lock);
	fpgastream_refresh_locked(fdev, true);
	fdev->s.signalled = fdev->s.completed;
	fdev->s.active = false;
	spin_unlock_irq(&fdev->irq_lock);
	fdev->running = false;

	if (ret == -ETIMEDOUT) {
		dev_warn(dev, "engine not idle %lu ms after stop, resetting it\n",
			 FSTR_IDLE_TIMEOUT_US / USEC_PER_MSEC);
		fpgastream_hw_soft_reset(&fdev->hw);
		ret = fpgastream_hw_wait_idle(&fdev->hw, FSTR_IDLE_TIMEOUT_US);
	}
	fpgastream_wake(fdev);
	/* Once seen idle again, the board may be used again. */
	fdev->wedged = ret == -ETIMEDOUT;
	return fdev->wedged ? -EIO : 0;
}

/**
 * fpgastream_teardown() - stop the board and release the mapping
 * @fdev: the board, still bound; caller holds fdev->lock
 *
 * In this order: stop, wait for IDLE, clear the LUT and RING_SIZE, DMA
 * unmap, unpin (dirty), uncharge. If the engine never goes idle, the
 * mapping is leaked on purpose: freeing memory the board may still write
 * would be worse.
 */
static void fpgastream_teardown(struct fpgastream_dev *fdev)
{
	struct fpgastream_mapping *map = fdev->map;

	if (!map)
		return;
	if (fpgastream_stop_engine(fdev)) {
		dev_err(&fdev->pdev->dev, "engine never went idle: leaving the %llu-byte buffer pinned forever\n",
			map->length);
	} else {
		fpgastream_map_clear(fdev, map);
		fpgastream_map_destroy(fdev, map);
	}
	fdev->map = NULL;
	fdev->owner = NULL;
	fdev->started = false;
	fpgastream_wake(fdev);
}

/* Caller holds fdev->lock. */
static void fpgastream_get_stats(struct fpgastream_dev *fdev, struct fpgastream_stats *st)
{
	struct fpgastream_stream *s = &fdev->s;

	memset(st, 0, sizeof(*st));
	spin_lock_irq(&fdev->irq_lock);
	st->blocks_completed = s->completed;
	st->blocks_dropped = s->dropped;
	st->interrupts = s->interrupts;
	spin_unlock_irq(&fdev->irq_lock);
	st->blocks_announced = s->announced;
	st->blocks_released = s->released;
	st->blocks_overwritten = s->overwritten;
	st->read_calls = s->read_calls;
}

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

static int fpgastream_ioc_map(struct fpgastream_dev *fdev, struct file *file,
			      void __user *arg)
{
	struct fpgastream_map m;
	struct fpgastream_mapping *map;
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
	if (fdev->gone) {
		ret = -ENODEV;
		goto unlock;
	}
	if (fdev->map) {
		ret = -EBUSY;
		goto unlock;
	}
	if (fdev->wedged && fpgastream_stop_engine(fdev)) {
		ret = -EIO;
		goto unlock;
	}
	ret = fpgastream_map_create(fdev, m.addr, m.length, m.flags, &map);
	if (ret)
		goto unlock;

	m.nr_blocks = map->nr_blocks;
	m.nr_segments = map->nr_segments;
	m.mapped_flags = map->mapped_flags;
	if (copy_to_user(arg, &m, sizeof(m))) {
		fpgastream_map_destroy(fdev, map);
		ret = -EFAULT;
		goto unlock;
	}
	fpgastream_map_program(fdev, map);
	/* A new mapping starts clean: no fault, no counters of the last one. */
	spin_lock_irq(&fdev->irq_lock);
	memset(&fdev->s, 0, sizeof(fdev->s));
	spin_unlock_irq(&fdev->irq_lock);
	fdev->map = map;
	fdev->owner = file;
	fdev->started = false;
unlock:
	mutex_unlock(&fdev->lock);
	return ret;
}

/* Caller holds fdev->lock: -ENODEV, -EINVAL (no mapping here) or 0. */
static int fpgastream_check_owner(struct fpgastream_dev *fdev, struct file *file)
{
	if (fdev->gone)
		return -ENODEV;
	if (!fdev->map || fdev->owner != file)
		return -EINVAL;
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
	struct fpgastream_stream *s = &fdev->s;
	int ret;

	if (copy_from_user(&st, arg, sizeof(st)))
		return -EFAULT;
	if ((st.flags & ~FPGASTREAM_START_FLOW_CONTROL) ||
	    !fpgastream_reserved_clear(st.reserved, sizeof(st.reserved)))
		return -EINVAL;

	mutex_lock(&fdev->lock);
	ret = fpgastream_check_owner(fdev, file);
	if (ret)
		goto unlock;
	if (fdev->wedged && fpgastream_stop_engine(fdev)) {
		ret = -EIO;
		goto unlock;
	}
	if (fdev->running) {
		spin_lock_irq(&fdev->irq_lock);
		fpgastream_refresh_locked(fdev, true);
		ret = s->fault ? 0 : -EBUSY;
		spin_unlock_irq(&fdev->irq_lock);
		if (ret)
			goto unlock;
		/* The engine stopped on a fault: quiesce it properly. */
		ret = fpgastream_stop_engine(fdev);
		if (ret)
			goto unlock;
	}

	ret = fpgastream_hw_soft_reset(&fdev->hw);
	if (ret) {
		dev_err_ratelimited(&fdev->pdev->dev, "soft reset did not complete\n");
		ret = -EIO;
		goto unlock;
	}
	fpgastream_hw_set_coalesce(&fdev->hw, st.irq_coalesce_count,
				   st.irq_coalesce_usec);

	spin_lock_irq(&fdev->irq_lock);
	memset(s, 0, sizeof(*s));
	s->flow_control = st.flags & FPGASTREAM_START_FLOW_CONTROL;
	s->coalesce_count = max(st.irq_coalesce_count, 1U);
	s->coalesce_usec = st.irq_coalesce_usec;
	s->active = true;
	spin_unlock_irq(&fdev->irq_lock);
	fdev->running = true;
	fdev->started = true;

	fpgastream_hw_start(&fdev->hw, s->flow_control);
	fpgastream_wake(fdev);
unlock:
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
	struct fpgastream_stream *s = &fdev->s;
	u64 count, live, i;
	bool changed;
	int ret;

	if (get_user(count, arg))
		return -EFAULT;

	mutex_lock(&fdev->lock);
	ret = fpgastream_check_owner(fdev, file);
	if (ret)
		goto unlock;
	if (count > s->announced - s->released) {
		ret = -EINVAL;
		goto unlock;
	}

	/* Records older than an overrun gap first: their blocks are gone. */
	live = count - min(count, s->dead);
	s->dead -= count - live;
	for (i = 0; fdev->map->need_sync && i < live; i++)
		fpgastream_map_sync_block(fdev, fdev->map,
					  (s->rel_seq + i) % fdev->map->nr_blocks,
					  false);
	s->rel_seq += live;
	s->released += count;
	if (fdev->running && live) {
		/*
		 * A flow-controlled board drops while it waits for this: sample
		 * DROP_COUNT now, so the drops are charged to the blocks that
		 * follow the stall, not to those before it.
		 */
		spin_lock_irq(&fdev->irq_lock);
		changed = fpgastream_refresh_drops_locked(fdev);
		spin_unlock_irq(&fdev->irq_lock);
		fpgastream_hw_set_rd_count(&fdev->hw, lower_32_bits(s->rel_seq));
		if (changed)
			wake_up_interruptible_all(&fdev->wq);
	}
unlock:
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

/*
 * Records fpgastream_collect() writes per user-access window; it may
 * reschedule between windows.
 */
#define FPGASTREAM_COPY_BATCH	16

/**
 * fpgastream_put_records() - write the records of the next blocks to user space
 * @s: the stream; its next @n blocks are complete
 * @map: the mapping
 * @ubuf: room for @n records
 * @n: records to write
 * @slotp: ring slot of @s->next_seq; advanced past the records written
 *
 * Stores the records field by field with unsafe_put_user(): no staging
 * copy on the stack, and no string copy, which costs an iteration per byte
 * on CPUs (and emulators) without fast string moves. Blocks dropped at the
 * source since the previous record are charged to the next one, as the
 * slots recorded them. A record is announced once all its fields are
 * stored, so after a fault the stream stands at the first record not
 * written, which comes again with the next read().
 *
 * Return: records written, fewer than @n only after a fault.
 */
static size_t fpgastream_put_records(struct fpgastream_stream *s,
				     const struct fpgastream_mapping *map,
				     struct fpgastream_block __user *ubuf, size_t n,
				     u32 *slotp)
{
	u32 slot = *slotp;
	size_t i = 0;

	if (!user_write_access_begin(ubuf, n * sizeof(*ubuf)))
		return 0;
	for (; i < n; i++) {
		u64 dropped = READ_ONCE(map->slots[slot].dropped);
		u64 lost = s->pending_lost;

		if (dropped > s->dropped_reported)
			lost += dropped - s->dropped_reported;
		unsafe_put_user(s->next_seq, &ubuf[i].seq, fault);
		unsafe_put_user((u64)slot << FSTR_BLOCK_SHIFT, &ubuf[i].offset, fault);
		unsafe_put_user(FSTR_BLOCK_SIZE, &ubuf[i].length, fault);
		unsafe_put_user(lost ? FPGASTREAM_BLOCK_OVERRUN : 0, &ubuf[i].flags,
				fault);
		unsafe_put_user(lost, &ubuf[i].lost, fault);
		unsafe_put_user(READ_ONCE(map->slots[slot].ts), &ubuf[i].timestamp_ns,
				fault);
		s->dropped_reported = max(dropped, s->dropped_reported);
		s->pending_lost = 0;
		s->next_seq++;
		s->announced++;
		if (++slot == map->nr_blocks)
			slot = 0;
	}
fault:
	user_write_access_end();
	*slotp = slot;
	return i;
}

/**
 * fpgastream_collect() - turn completed blocks into records in the user buffer
 * @fdev: the board; caller holds fdev->lock and owns the mapping
 * @buf: user buffer
 * @nr: records that fit in @buf (at least 1)
 * @gen: out: fdev->gen as it was when the counters were sampled
 *
 * In overwrite mode a reader more than a ring behind skips to the oldest
 * block still intact; the first record after the gap carries
 * FPGASTREAM_BLOCK_OVERRUN and the count in @lost, as do blocks dropped at
 * the source. Each block is synced for the CPU before its record is
 * written (when the mapping needs it).
 *
 * Return: bytes copied, 0 at the end of a stopped stream, -EIO after a
 * fault, -EFAULT, or -EAGAIN when nothing is ready yet.
 */
static ssize_t fpgastream_collect(struct fpgastream_dev *fdev, char __user *buf,
				  size_t nr, u64 *gen)
{
	struct fpgastream_block __user *ubuf = (struct fpgastream_block __user *)buf;
	struct fpgastream_stream *s = &fdev->s;
	struct fpgastream_mapping *map = fdev->map;
	size_t done = 0;
	u64 completed;
	u32 fault, slot;

	spin_lock_irq(&fdev->irq_lock);
	/*
	 * After an interrupt, read() returns the batch the interrupt sampled
	 * without asking the board again: a flow-controlled board cannot
	 * overwrite those blocks, and the reader comes back for the rest.
	 * In overwrite mode only a fresh count tells which blocks survive.
	 */
	if (!s->flow_control || s->signalled <= s->next_seq)
		fpgastream_refresh_locked(fdev, false);
	completed = s->completed;
	fault = s->fault;
	*gen = fdev->gen;
	spin_unlock_irq(&fdev->irq_lock);

	if (completed - s->next_seq > map->nr_blocks) {
		u64 skip = completed - map->nr_blocks - s->next_seq;

		s->next_seq += skip;
		s->pending_lost += skip;
		s->overwritten += skip;
		s->dead = s->announced - s->released;
		s->rel_seq = s->next_seq;
	}
	slot = s->next_seq % map->nr_blocks;

	while (done < nr && s->next_seq < completed) {
		size_t n = min_t(u64, min(nr - done, FPGASTREAM_COPY_BATCH),
				 completed - s->next_seq);
		size_t put;

		if (map->need_sync) {
			u32 blk = slot;
			size_t i;

			for (i = 0; i < n; i++) {
				fpgastream_map_sync_block(fdev, map, blk, true);
				if (++blk == map->nr_blocks)
					blk = 0;
			}
		}
		put = fpgastream_put_records(s, map, ubuf + done, n, &slot);
		done += put;
		if (put < n)
			return done ? done * sizeof(*ubuf) : -EFAULT;
		cond_resched();
	}

	s->more = s->next_seq < completed;
	if (done)
		return done * sizeof(*ubuf);
	if (fault)
		return -EIO;
	if (fdev->started && !fdev->running)
		return 0;
	return -EAGAIN;
}

static ssize_t fpgastream_read(struct file *file, char __user *buf, size_t count,
			       loff_t *ppos)
{
	struct fpgastream_dev *fdev = file->private_data;
	bool counted = false;
	u64 gen = 0;
	ssize_t ret;

	if (READ_ONCE(fdev->gone))
		return -ENODEV;
	if (count < sizeof(struct fpgastream_block))
		return -EINVAL;

	for (;;) {
		if (mutex_lock_interruptible(&fdev->lock))
			return -EINTR;
		ret = fpgastream_check_owner(fdev, file);
		if (!ret) {
			if (!counted)
				fdev->s.read_calls++;
			counted = true;
			ret = fpgastream_collect(fdev, buf,
						 count / sizeof(struct fpgastream_block),
						 &gen);
		}
		mutex_unlock(&fdev->lock);

		if (ret != -EAGAIN)
			return ret;
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		if (wait_event_interruptible(fdev->wq,
					     READ_ONCE(fdev->gen) != gen))
			return -EINTR;
	}
}

/**
 * fpgastream_batch_ready() - is there a batch of records for poll() to report?
 * @fdev: the board; caller holds fdev->lock and owns the mapping
 * @completed: fpgastream_stream.completed, sampled under irq_lock
 * @signalled: fpgastream_stream.signalled, sampled with @completed
 *
 * A record is pending once its block completed, but poll() reports them in
 * the batches the board's interrupt coalescing makes: when an interrupt
 * (or the stop) covered a record not yet read, or a whole coalescing count
 * is pending anyway. Blocks that RELEASE or a draining read() merely saw
 * complete wait for the next interrupt, at most the coalescing time the
 * program chose, so a reader wakes once per batch instead of returning a
 * few records at a time. Ready at once as before: without a coalescing
 * timer (the board may never signal the last blocks), after a read() that
 * left records for want of room, and when no interrupt can come until the
 * reader acts (stream stopped, flow-controlled ring full of unreleased
 * blocks).
 *
 * Return: true if read() has records for poll() to report.
 */
static bool fpgastream_batch_ready(struct fpgastream_dev *fdev, u64 completed,
				   u64 signalled)
{
	struct fpgastream_stream *s = &fdev->s;

	if (completed <= s->next_seq)
		return false;
	return signalled > s->next_seq || !s->coalesce_usec || s->more ||
	       completed - s->next_seq >= s->coalesce_count ||
	       !fdev->running ||
	       completed - s->rel_seq >= fdev->map->nr_blocks;
}

static __poll_t fpgastream_poll(struct file *file, poll_table *wait)
{
	struct fpgastream_dev *fdev = file->private_data;
	__poll_t mask = 0;
	u64 completed, signalled;
	u32 fault;

	poll_wait(file, &fdev->wq, wait);

	mutex_lock(&fdev->lock);
	if (fdev->gone) {
		mask = EPOLLHUP;
		goto unlock;
	}
	if (!fdev->map || fdev->owner != file) {
		mask = EPOLLERR;
		goto unlock;
	}
	spin_lock_irq(&fdev->irq_lock);
	completed = fdev->s.completed;
	signalled = fdev->s.signalled;
	fault = fdev->s.fault;
	spin_unlock_irq(&fdev->irq_lock);

	if (fpgastream_batch_ready(fdev, completed, signalled))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (fault)
		mask |= EPOLLERR;
	if (!mask && fdev->started && !fdev->running)
		mask |= EPOLLHUP;
	if (fault && !(mask & EPOLLIN))
		mask |= EPOLLHUP;
unlock:
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
	return stream_open(inode, file);
}

static int fpgastream_release(struct inode *inode, struct file *file)
{
	struct fpgastream_dev *fdev = file->private_data;

	mutex_lock(&fdev->lock);
	if (fdev->owner == file && !fdev->gone)
		fpgastream_teardown(fdev);
	mutex_unlock(&fdev->lock);
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

/* sysfs: /sys/class/fpgastream/fpgastream<N>/ */

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

/* A mapping property, 0 without a mapping. */
static ssize_t fpgastream_show_map(struct device *dev, char *buf,
				   u64 (*get)(const struct fpgastream_mapping *map))
{
	struct fpgastream_dev *fdev = fpgastream_from_dev(dev);
	u64 val = 0;

	mutex_lock(&fdev->lock);
	if (fdev->map)
		val = get(fdev->map);
	mutex_unlock(&fdev->lock);
	return sysfs_emit(buf, "%llu\n", val);
}

static u64 fpgastream_map_length(const struct fpgastream_mapping *map)
{
	return map->length;
}

static u64 fpgastream_map_nr_blocks(const struct fpgastream_mapping *map)
{
	return map->nr_blocks;
}

static u64 fpgastream_map_bounced(const struct fpgastream_mapping *map)
{
	return !!(map->mapped_flags & FPGASTREAM_MAPPED_BOUNCED);
}

static ssize_t buffer_size_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return fpgastream_show_map(dev, buf, fpgastream_map_length);
}
static DEVICE_ATTR_RO(buffer_size);

static ssize_t nr_blocks_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return fpgastream_show_map(dev, buf, fpgastream_map_nr_blocks);
}
static DEVICE_ATTR_RO(nr_blocks);

static ssize_t bounced_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return fpgastream_show_map(dev, buf, fpgastream_map_bounced);
}
static DEVICE_ATTR_RO(bounced);

/* A u64 field of the current mapping, 0 without a mapping. */
struct fpgastream_map_attr {
	struct device_attribute attr;
	size_t offset;		/* of a u64 in struct fpgastream_mapping */
};

static ssize_t fpgastream_map_u64_show(struct device *dev,
				       struct device_attribute *attr, char *buf)
{
	struct fpgastream_map_attr *ma =
		container_of(attr, struct fpgastream_map_attr, attr);
	struct fpgastream_dev *fdev = fpgastream_from_dev(dev);
	u64 val = 0;

	mutex_lock(&fdev->lock);
	if (fdev->map)
		val = *(u64 *)((char *)fdev->map + ma->offset);
	mutex_unlock(&fdev->lock);
	return sysfs_emit(buf, "%llu\n", val);
}

#define FPGASTREAM_MAP_ATTR(_name, _field)				\
static struct fpgastream_map_attr fpgastream_map_attr_##_name = {	\
	.attr = {							\
		.attr = { .name = __stringify(_name), .mode = 0444 },	\
		.show = fpgastream_map_u64_show,			\
	},								\
	.offset = offsetof(struct fpgastream_mapping, _field),		\
}

/* How long the current mapping's MAP took, by phase, for benchmarks. */
FPGASTREAM_MAP_ATTR(map_pin_ns, pin_ns);
FPGASTREAM_MAP_ATTR(map_dma_ns, dma_ns);
FPGASTREAM_MAP_ATTR(map_lut_ns, lut_ns);

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
	&fpgastream_map_attr_map_pin_ns.attr.attr,
	&fpgastream_map_attr_map_dma_ns.attr.attr,
	&fpgastream_map_attr_map_lut_ns.attr.attr,
	&fpgastream_stat_attr_blocks_completed.attr.attr,
	&fpgastream_stat_attr_blocks_announced.attr.attr,
	&fpgastream_stat_attr_blocks_released.attr.attr,
	&fpgastream_stat_attr_blocks_overwritten.attr.attr,
	&fpgastream_stat_attr_blocks_dropped.attr.attr,
	&fpgastream_stat_attr_interrupts.attr.attr,
	&fpgastream_stat_attr_read_calls.attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(fpgastream);

/* PCI driver */

/* Last reference to the char device dropped: no file, no board. */
static void fpgastream_dev_release(struct device *dev)
{
	struct fpgastream_dev *fdev = fpgastream_from_dev(dev);

	ida_free(&fpgastream_minor_ida, fdev->minor);
	mutex_destroy(&fdev->lock);
	kfree(fdev);
}

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
	 * Let the DMA layer merge segments, never splitting one mid-block, and
	 * keep bounce buffers block-aligned (swiotlb honours it since 5.12).
	 * Neither can fail on a PCI device, which has dma_parms; since 6.11
	 * they return void.
	 */
	dma_set_max_seg_size(dev, FSTR_MAX_SEG_SIZE);
	dma_set_min_align_mask(dev, FSTR_BLOCK_SIZE - 1);
	fdev->translated = fpgastream_dma_translated(dev);
	return 0;
}

/* Quiesce the engine left by whoever had it before us. */
static void fpgastream_quiesce(struct fpgastream_dev *fdev)
{
	fpgastream_hw_stop(&fdev->hw);
	if (fpgastream_hw_wait_idle(&fdev->hw, FSTR_IDLE_TIMEOUT_US))
		dev_warn(&fdev->pdev->dev, "engine not idle at probe\n");
	fpgastream_hw_soft_reset(&fdev->hw);
	fpgastream_hw_set_ring_size(&fdev->hw, 0);
	fpgastream_hw_irq_ack(&fdev->hw, FSTR_IRQ_ALL);
}

static int fpgastream_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct fpgastream_dev *fdev;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	if (pci_resource_len(pdev, FSTR_BAR_REGS) < FSTR_REGS_MIN_LEN) {
		dev_err(dev, "BAR%d too small\n", FSTR_BAR_REGS);
		return -ENODEV;
	}
	ret = pcim_iomap_regions(pdev, BIT(FSTR_BAR_REGS) | BIT(FSTR_BAR_LUT),
				 FPGASTREAM_DRV_NAME);
	if (ret)
		return ret;

	fdev = kzalloc(sizeof(*fdev), GFP_KERNEL);
	if (!fdev)
		return -ENOMEM;
	fdev->pdev = pdev;
	fdev->hw.regs = pcim_iomap_table(pdev)[FSTR_BAR_REGS];
	fdev->hw.lut = pcim_iomap_table(pdev)[FSTR_BAR_LUT];
	mutex_init(&fdev->lock);
	spin_lock_init(&fdev->irq_lock);
	init_waitqueue_head(&fdev->wq);

	ret = fpgastream_check_board(fdev);
	if (ret)
		goto free_fdev;
	ret = fpgastream_setup_dma(fdev);
	if (ret)
		goto free_fdev;

	ret = ida_alloc_max(&fpgastream_minor_ida, FPGASTREAM_MAX_DEVICES - 1, GFP_KERNEL);
	if (ret < 0)
		goto free_fdev;
	fdev->minor = ret;

	/* From here on, fdev is freed by fpgastream_dev_release(). */
	device_initialize(&fdev->dev);
	fdev->dev.class = &fpgastream_class;
	fdev->dev.parent = dev;
	fdev->dev.groups = fpgastream_groups;
	fdev->dev.devt = MKDEV(MAJOR(fpgastream_devt), fdev->minor);
	fdev->dev.release = fpgastream_dev_release;
	ret = dev_set_name(&fdev->dev, FPGASTREAM_DRV_NAME "%d", fdev->minor);
	if (ret)
		goto put_dev;

	fpgastream_quiesce(fdev);
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

	cdev_init(&fdev->cdev, &fpgastream_fops);
	fdev->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&fdev->cdev, &fdev->dev);
	if (ret)
		goto free_irq;

	pci_set_drvdata(pdev, fdev);
	dev_info(dev, "%s: FSTR %u.%u, %u LUT entries, %u-bit DMA%s, %s\n",
		 dev_name(&fdev->dev), FSTR_VERSION_MAJOR(fdev->hw_version),
		 FSTR_VERSION_MINOR(fdev->hw_version), fdev->lut_capacity,
		 fdev->dma_addr_bits, fdev->translated ? " via IOMMU" : "",
		 pdev->msi_enabled ? "MSI" : "INTx");
	return 0;

free_irq:
	free_irq(fdev->irq, fdev);
free_vectors:
	pci_free_irq_vectors(pdev);
clear_master:
	pci_clear_master(pdev);
put_dev:
	put_device(&fdev->dev);
	return ret;

free_fdev:
	mutex_destroy(&fdev->lock);
	kfree(fdev);
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

	/* No new opens, no sysfs readers (they take fdev->lock). */
	cdev_device_del(&fdev->cdev, &fdev->dev);

	mutex_lock(&fdev->lock);
	fpgastream_teardown(fdev);
	fpgastream_hw_stop(&fdev->hw);
	WRITE_ONCE(fdev->gone, true);
	mutex_unlock(&fdev->lock);

	free_irq(fdev->irq, fdev);
	pci_free_irq_vectors(pdev);
	pci_clear_master(pdev);
	fpgastream_wake(fdev);
	put_device(&fdev->dev);
}

static void fpgastream_shutdown(struct pci_dev *pdev)
{
	struct fpgastream_dev *fdev = pci_get_drvdata(pdev);

	/* No DMA into memory the next kernel owns. */
	mutex_lock(&fdev->lock);
	if (!fdev->gone && fdev->running)
		fpgastream_stop_engine(fdev);
	mutex_unlock(&fdev->lock);
}

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

	ret = alloc_chrdev_region(&fpgastream_devt, 0, FPGASTREAM_MAX_DEVICES,
				  FPGASTREAM_DRV_NAME);
	if (ret)
		return ret;
	ret = class_register(&fpgastream_class);
	if (ret)
		goto unregister_region;
	ret = pci_register_driver(&fpgastream_pci_driver);
	if (ret)
		goto unregister_class;
	fpgastream_add_ids();
	return 0;

unregister_class:
	class_unregister(&fpgastream_class);
unregister_region:
	unregister_chrdev_region(fpgastream_devt, FPGASTREAM_MAX_DEVICES);
	return ret;
}

static void __exit fpgastream_exit(void)
{
	pci_unregister_driver(&fpgastream_pci_driver);
	class_unregister(&fpgastream_class);
	unregister_chrdev_region(fpgastream_devt, FPGASTREAM_MAX_DEVICES);
	ida_destroy(&fpgastream_minor_ida);
}

module_init(fpgastream_init);
module_exit(fpgastream_exit);

MODULE_DESCRIPTION("Stream a FSTR FPGA into a user-allocated buffer");
MODULE_LICENSE("GPL");
