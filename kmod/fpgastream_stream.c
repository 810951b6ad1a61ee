// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: the stream. Start, stop and quiesce the engine, fold its
 * counters into 64-bit stream state (the interrupt handler and the
 * refresh), RELEASE and flow control. Turning completed blocks into
 * records, and what poll() reports, is in fpgastream_records.c. The char
 * device's entry points (fpgastream_cdev.c) call in here with fdev->lock
 * held and the caller's ownership of the mapping checked.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/interrupt.h>
#include <linux/lockdep.h>
#include <linux/ktime.h>
#include <linux/minmax.h>
#include <linux/sched.h>
#include <linux/string.h>

#include "fpgastream_drv.h"

#define CREATE_TRACE_POINTS
#include "fpgastream_trace.h"

/*
 * The longest a completed block may go unsignalled when the program asked
 * for no coalescing time (the contract: irq_coalesce_usec or 10 ms,
 * whichever is longer).
 */
#define FPGASTREAM_MAX_SILENCE_USEC	10000

/* STATUS.IDLE is due within 10 ms; allow for stalls (the emulator: 50 ms). */
#define FSTR_IDLE_TIMEOUT_US	(100 * USEC_PER_MSEC)

/**
 * fpgastream_state() - the board's state as sysfs names it
 * @fdev: the board; caller holds fdev->lock
 *
 * Return: the state.
 */
enum fpgastream_state fpgastream_state(struct fpgastream_dev *fdev)
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
void fpgastream_wake(struct fpgastream_dev *fdev)
{
	unsigned long flags;

	spin_lock_irqsave(&fdev->irq_lock, flags);
	fdev->gen++;
	spin_unlock_irqrestore(&fdev->irq_lock, flags);
	wake_up_interruptible_all(&fdev->wq);
}

/**
 * fpgastream_sample_add() - note when newly completed blocks were seen
 * @s: the stream, its @completed just advanced; caller holds irq_lock
 * @map: the mapping
 * @now: ktime_get_ns()
 *
 * One entry however many blocks completed, written over the oldest.
 */
static void fpgastream_sample_add(struct fpgastream_stream *s,
				  struct fpgastream_mapping *map, u64 now)
{
	struct fpgastream_sample *smp = &map->samples[s->sample_head];

	smp->end = s->completed;
	smp->ts = now;
	smp->dropped = s->dropped;
	if (++s->sample_head == map->nr_blocks)
		s->sample_head = 0;
	s->nr_samples++;
}

/* Extend DROP_COUNT @drop into the stream; true if it moved. */
static bool fpgastream_take_drops(struct fpgastream_stream *s, u32 drop)
{
	u32 delta = drop - s->last_drop;

	if (!delta)
		return false;
	s->last_drop = drop;
	s->dropped += delta;
	return true;
}

/**
 * fpgastream_refresh_locked() - fold the board's counters into the stream
 * @fdev: the board
 * @check_status: read STATUS for faults even if WR_COUNT moved on
 *
 * Extends WR_COUNT and DROP_COUNT to 64 bits, notes when newly completed
 * blocks were seen (one sample, whatever their number) and latches faults.
 * Caller holds fdev->irq_lock. Only while the stream is active, which
 * implies fdev->map is set and the counters are not reset under us.
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
bool fpgastream_refresh_locked(struct fpgastream_dev *fdev, bool check_status)
{
	struct fpgastream_stream *s = &fdev->s;
	struct fpgastream_hw_counters c;
	bool changed = false, stalled;
	u32 status = 0;
	u32 delta;

	lockdep_assert_held(&fdev->irq_lock);
	if (!s->active)
		return false;
	fpgastream_hw_read_counters(&fdev->hw, &c);
	if (check_status || c.wr_count == s->last_wr ||
	    fpgastream_hw_absent(c.wr_count)) {
		status = fpgastream_hw_status(&fdev->hw);
		if (fpgastream_hw_absent(status))
			return false;
	}

	/*
	 * WR_COUNT went backwards: the board was reset under the stream, and
	 * its counters started again from 0 (2^31 blocks do not complete
	 * between two looks). Nothing it says now belongs to this stream,
	 * which ends; the health check sets the board up again.
	 */
	if (c.wr_count - s->last_wr > S32_MAX) {
		if (s->fault)
			return false;
		s->fault = FPGASTREAM_FAULT_INTERRUPTED;
		trace_fpgastream_fault(fdev->minor, status, FPGASTREAM_FAULT_RESET);
		fdev->gen++;
		return true;
	}

	/*
	 * Drops read now are the new blocks' if the board has not stalled
	 * since they began: a flow-controlled board drops only while it waits
	 * for a RELEASE, and RELEASE samples at the stall, so a sample starts
	 * at the block after it. With the ring full now the board may be
	 * stalled, dropping on behalf of the next block: those drops must
	 * wait, as must a running source's in overwrite mode.
	 */
	stalled = !s->flow_control ||
		  s->completed + (u32)(c.wr_count - s->last_wr) - READ_ONCE(s->rd_written) >=
		  fdev->map->nr_blocks;
	if (!stalled)
		changed |= fpgastream_take_drops(s, c.drop_count);

	delta = c.wr_count - s->last_wr;
	if (delta) {
		s->last_wr = c.wr_count;
		s->completed += delta;
		/* s->dropped: see struct fpgastream_sample */
		fpgastream_sample_add(s, fdev->map, ktime_get_ns());
		changed = true;
	}

	changed |= fpgastream_take_drops(s, c.drop_count);

	if (fpgastream_hw_status_faulted(status) && !s->fault) {
		bool lut = fpgastream_hw_status_lut_fault(status);

		s->fault = status & FSTR_STATUS_FAULTS;
		trace_fpgastream_fault(fdev->minor, status,
				       lut ? FPGASTREAM_FAULT_LUT : FPGASTREAM_FAULT_DMA);
		dev_err_ratelimited(&fdev->pdev->dev, "stream stopped by a %s (STATUS %#x)\n",
				    lut ? "LUT fault" : "DMA error", status);
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
 * when a later sample covers them.
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

/**
 * fpgastream_fold_drops_locked() - take DROP_COUNT in, without a sample
 * @fdev: the board; caller holds fdev->irq_lock
 *
 * The drops read here go to the blocks the next sample covers, whatever
 * WR_COUNT says now: for the drops of a stall, the block after it.
 *
 * Return: true if DROP_COUNT moved.
 */
static bool fpgastream_fold_drops_locked(struct fpgastream_dev *fdev)
{
	struct fpgastream_stream *s = &fdev->s;
	u32 drop;

	if (!s->active)
		return false;
	drop = fpgastream_hw_drop_count(&fdev->hw);
	if (fpgastream_hw_absent(drop) || !fpgastream_take_drops(s, drop))
		return false;
	fdev->gen++;
	return true;
}

/**
 * fpgastream_irq() - the board's interrupt handler
 * @irq: the Linux IRQ
 * @data: the board
 *
 * Acknowledges the interrupt (the acknowledge is read back, so that a
 * level-triggered INTx line is low again before we return), folds the
 * counters in and wakes readers: a constant number of register accesses
 * and no loop over the ring, however many blocks the interrupt covers.
 *
 * Return: IRQ_HANDLED, or IRQ_NONE if the board did not interrupt.
 */
irqreturn_t fpgastream_irq(int irq, void *data)
{
	struct fpgastream_dev *fdev = data;
	struct fpgastream_stream *s = &fdev->s;
	u64 before;
	u32 status;

	/* The board is being reset, or its link is frozen: hands off. */
	if (READ_ONCE(fdev->resetting))
		return IRQ_NONE;
	status = fpgastream_hw_irq_status(&fdev->hw);
	if (!fpgastream_hw_irq_pending(status))
		return IRQ_NONE;
	fpgastream_hw_irq_ack(&fdev->hw, status);

	spin_lock(&fdev->irq_lock);
	before = s->completed;
	s->interrupts++;
	fpgastream_refresh_locked(fdev, fpgastream_hw_irq_error(status));
	s->signalled = s->completed;
	trace_fpgastream_irq(fdev->minor, status, s->last_wr, s->last_drop,
			     s->completed - before);
	spin_unlock(&fdev->irq_lock);

	wake_up_interruptible_all(&fdev->wq);
	return IRQ_HANDLED;
}

/**
 * fpgastream_quiesce() - stop whatever engine the board runs and zero it
 * @fdev: the board: at probe, before bus mastering is enabled, or after a
 *	reset or a power loss; caller holds fdev->lock unless at probe
 *
 * Return: 0, -ETIMEDOUT if the engine did not go idle, -ENODEV if the
 * board reads all ones.
 */
int fpgastream_quiesce(struct fpgastream_dev *fdev)
{
	int ret;

	fpgastream_hw_stop(&fdev->hw);
	ret = fpgastream_hw_wait_idle(&fdev->hw, FSTR_IDLE_TIMEOUT_US);
	fpgastream_hw_soft_reset(&fdev->hw);
	fpgastream_hw_set_ring_size(&fdev->hw, 0);
	fpgastream_hw_irq_ack(&fdev->hw, FSTR_IRQ_ALL);
	return ret;
}

/*
 * Wait until the engine can no longer write memory. All ones from STATUS
 * proves that only if the board is really gone: a completion timeout or a
 * recovery in progress reads the same while the link is up, so config
 * space must not answer either.
 */
static int fpgastream_stop_wait(struct fpgastream_dev *fdev)
{
	int ret = fpgastream_hw_wait_idle(&fdev->hw, FSTR_IDLE_TIMEOUT_US);

	if (ret == -ENODEV && pci_device_is_present(fdev->pdev))
		ret = -ETIMEDOUT;
	return ret;
}

/**
 * fpgastream_stop_engine() - stop the engine and wait until it can no longer write
 * @fdev: the board; caller holds fdev->lock
 *
 * Clears ENABLE and waits for IDLE; on timeout soft-resets and waits again.
 * The counters are read one last time before any reset, so that read()
 * still returns every block completed before the stop.
 *
 * Return: 0 when idle (or the board is gone), -EIO when it never went idle:
 * the device is then wedged, with bus mastering off.
 */
int fpgastream_stop_engine(struct fpgastream_dev *fdev)
{
	struct device *dev = &fdev->pdev->dev;
	struct fpgastream_stream *s = &fdev->s;
	bool master_cut = false;
	int ret;

	lockdep_assert_held(&fdev->lock);
	fpgastream_hw_stop(&fdev->hw);
	ret = fpgastream_stop_wait(fdev);

	spin_lock_irq(&fdev->irq_lock);
	fpgastream_refresh_locked(fdev, true);
	s->signalled = s->completed;
	s->active = false;
	spin_unlock_irq(&fdev->irq_lock);
	fdev->running = false;

	if (ret == -ETIMEDOUT) {
		/*
		 * SOFT_RESET zeroes RD_COUNT and clears FLOW_CONTROL: an
		 * engine still running would then overwrite unreleased
		 * blocks. With bus mastering off none of it reaches memory.
		 */
		fpgastream_cut_bus_master(fdev);
		master_cut = true;
		fpgastream_hw_soft_reset(&fdev->hw);
		ret = fpgastream_stop_wait(fdev);
		/* Still running: the caller says so, in one line. */
		if (ret != -ETIMEDOUT && !fdev->gone)
			dev_warn(dev, "engine not idle %lu ms after stop; a soft reset stopped it\n",
				 FSTR_IDLE_TIMEOUT_US / USEC_PER_MSEC);
	}
	if (ret == -ETIMEDOUT && trace_fpgastream_fault_enabled())
		trace_fpgastream_fault(fdev->minor, fpgastream_hw_status(&fdev->hw),
				       FPGASTREAM_FAULT_NOT_IDLE);
	else if (ret == -ENODEV)
		trace_fpgastream_fault(fdev->minor, U32_MAX, FPGASTREAM_FAULT_ABSENT);
	trace_fpgastream_stop(fdev->minor, s->completed, s->dropped, s->announced,
			      s->released, ret);
	fpgastream_wake(fdev);
	/* Once seen idle again, the board may write memory again. */
	if ((master_cut || fdev->wedged) && ret != -ETIMEDOUT && !fdev->gone)
		pci_set_master(fdev->pdev);
	fdev->wedged = ret == -ETIMEDOUT;
	return fdev->wedged ? -EIO : 0;
}

/**
 * fpgastream_teardown() - stop the board and release the mapping
 * @fdev: the board, still bound; caller holds fdev->lock
 *
 * In this order: stop, wait for IDLE, clear the LUT and RING_SIZE, DMA
 * unmap, unpin (dirty), uncharge. If the engine never goes idle, bus
 * mastering is switched off first, and stays off until it is idle again.
 */
void fpgastream_teardown(struct fpgastream_dev *fdev)
{
	struct fpgastream_mapping *map = fdev->map;

	lockdep_assert_held(&fdev->lock);
	if (!map)
		return;
	if (fdev->resetting) {
		/*
		 * A reset or a recovery is under way: the engine was stopped
		 * before it, or the link is frozen. Leave the registers
		 * alone; bus mastering off covers an engine that was not.
		 */
		fpgastream_cut_bus_master(fdev);
	} else if (fpgastream_stop_engine(fdev)) {
		/* Invalid entries make a stray block a LUT fault, at worst. */
		fpgastream_map_invalidate(fdev, map);
		dev_err(&fdev->pdev->dev, "engine never went idle: bus mastering switched off, buffer released; reset the board (echo 1 > /sys/bus/pci/devices/%s/reset)\n",
			pci_name(fdev->pdev));
	} else {
		fpgastream_map_clear(fdev, map);
	}
	fpgastream_map_destroy(fdev, map);
	fdev->map = NULL;
	fdev->owner = NULL;
	fdev->started = false;
	fpgastream_new_epoch(fdev);
	fpgastream_wake(fdev);
}

/**
 * fpgastream_stream_reset() - forget the last stream's state and counters
 * @fdev: the board; caller holds fdev->lock, the engine is stopped
 */
void fpgastream_stream_reset(struct fpgastream_dev *fdev)
{
	fpgastream_new_epoch(fdev);
	spin_lock_irq(&fdev->irq_lock);
	memset(&fdev->s, 0, sizeof(fdev->s));
	spin_unlock_irq(&fdev->irq_lock);
}

/**
 * fpgastream_get_stats() - the STATS counters of the current stream
 * @fdev: the board; caller holds fdev->lock
 * @st: out
 */
void fpgastream_get_stats(struct fpgastream_dev *fdev, struct fpgastream_stats *st)
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

/*
 * A new stream lets the board write every slot again: blocks the last one
 * synced for the CPU (announced and not released, or staged by a read()
 * whose round came to nothing) must be handed back to the device first
 * (non-coherent platforms). Every slot once: cheaper to know than which.
 */
static void fpgastream_sync_all_for_device(struct fpgastream_dev *fdev)
{
	struct fpgastream_mapping *map = fdev->map;
	u32 blk;

	if (!map->need_sync || !fdev->started)
		return;
	for (blk = 0; blk < map->nr_blocks; blk++) {
		fpgastream_map_sync_block(fdev, map, blk, false);
		if (!(blk % 64))
			cond_resched();
	}
}

/**
 * fpgastream_stream_start() - soft-reset the counters and start streaming
 * @fdev: the board; caller holds fdev->lock and owns the mapping
 * @flags: FPGASTREAM_START_* (checked by the caller)
 * @coalesce_count: IRQ_COALESCE_COUNT
 * @coalesce_usec: IRQ_COALESCE_USEC
 *
 * Return: 0, -EBUSY while running (unless the engine stopped on a fault,
 * which is then quiesced first) or while the board is being reset, -EINVAL
 * for overwrite mode on a ring of one block (the only slot is always the
 * one the board may be writing), -EIO if the board does not reset or never
 * went idle.
 */
int fpgastream_stream_start(struct fpgastream_dev *fdev, u32 flags,
			    u32 coalesce_count, u32 coalesce_usec)
{
	struct fpgastream_stream *s = &fdev->s;
	int ret;

	lockdep_assert_held(&fdev->lock);
	if (!(flags & FPGASTREAM_START_FLOW_CONTROL) && fdev->map->nr_blocks < 2)
		return -EINVAL;
	if (fdev->resetting)
		return -EBUSY;
	if (fdev->lut_lost && !fdev->running && fpgastream_board_restore(fdev))
		return -EIO;
	if (fdev->wedged && fpgastream_stop_engine(fdev))
		return -EIO;
	if (fdev->running) {
		spin_lock_irq(&fdev->irq_lock);
		fpgastream_refresh_locked(fdev, true);
		ret = s->fault ? 0 : -EBUSY;
		spin_unlock_irq(&fdev->irq_lock);
		if (ret)
			return ret;
		/* The engine stopped on a fault: quiesce it properly. */
		ret = fpgastream_stop_engine(fdev);
		if (ret)
			return ret;
	}

	if (fpgastream_hw_soft_reset(&fdev->hw)) {
		dev_err_ratelimited(&fdev->pdev->dev, "soft reset did not complete\n");
		return -EIO;
	}
	/*
	 * Without a coalescing time the board signals only every
	 * coalesce_count blocks, which a flow-controlled ring (or a program
	 * holding blocks back) may never reach: a reader would sleep for
	 * ever on completed blocks. The board's own timer bounds that at
	 * FPGASTREAM_MAX_SILENCE_USEC, for free.
	 */
	if (!coalesce_usec && coalesce_count > 1)
		coalesce_usec = FPGASTREAM_MAX_SILENCE_USEC;
	fpgastream_hw_set_coalesce(&fdev->hw, coalesce_count, coalesce_usec);

	fpgastream_sync_all_for_device(fdev);
	fpgastream_new_epoch(fdev);
	spin_lock_irq(&fdev->irq_lock);
	memset(s, 0, sizeof(*s));
	s->flow_control = flags & FPGASTREAM_START_FLOW_CONTROL;
	s->coalesce_count = max(coalesce_count, 1U);
	s->coalesce_usec = coalesce_usec;
	s->active = true;
	spin_unlock_irq(&fdev->irq_lock);
	fdev->running = true;
	fdev->started = true;

	fpgastream_hw_start(&fdev->hw, s->flow_control);
	trace_fpgastream_start(fdev->minor, flags, coalesce_count, coalesce_usec,
			       fdev->map->nr_blocks);
	fpgastream_wake(fdev);
	return 0;
}

/**
 * fpgastream_stream_release() - hand the oldest @count records back
 * @fdev: the board; caller holds fdev->lock and owns the mapping
 * @count: records to release
 *
 * Syncs the blocks for the device, then moves RD_COUNT on, which lets a
 * flow-controlled board write them again.
 *
 * Return: 0, or -EINVAL for more than are announced and unreleased.
 */
int fpgastream_stream_release(struct fpgastream_dev *fdev, u64 count)
{
	struct fpgastream_stream *s = &fdev->s;
	struct fpgastream_mapping *map = fdev->map;
	bool changed;
	u64 live, i;

	lockdep_assert_held(&fdev->lock);
	if (count > s->announced - s->released)
		return -EINVAL;

	/* Records older than an overrun gap first: their blocks are gone. */
	live = count - min(count, s->dead);
	s->dead -= count - live;
	if (map->need_sync && live) {
		u32 blk = fpgastream_ring_slot(s->rel_seq, map->nr_blocks);

		for (i = 0; i < live; i++) {
			fpgastream_map_sync_block(fdev, map, blk, false);
			if (++blk == map->nr_blocks)
				blk = 0;
			if (!(i % 64))
				cond_resched();
		}
	}
	s->rel_seq += live;
	s->released += count;
	if (fdev->running && live) {
		/*
		 * A flow-controlled board drops while it waits for this, and
		 * those drops belong to the first block after the stall. So
		 * the blocks before it are sampled first, with the drops seen
		 * so far; and DROP_COUNT is read once more after RD_COUNT
		 * lets the board go on, without a sample, so that the next
		 * sample (the block after the stall) carries the drops up to
		 * the moment the board took it.
		 */
		spin_lock_irq(&fdev->irq_lock);
		changed = s->flow_control ? fpgastream_refresh_locked(fdev, false) :
					    fpgastream_refresh_drops_locked(fdev);
		spin_unlock_irq(&fdev->irq_lock);
		fpgastream_hw_set_rd_count(&fdev->hw, lower_32_bits(s->rel_seq));
		/* What the board goes by: the ring is full against this. */
		WRITE_ONCE(s->rd_written, s->rel_seq);
		if (s->flow_control) {
			spin_lock_irq(&fdev->irq_lock);
			changed |= fpgastream_fold_drops_locked(fdev);
			spin_unlock_irq(&fdev->irq_lock);
		}
		if (changed)
			wake_up_interruptible_all(&fdev->wq);
	}
	trace_fpgastream_release(fdev->minor, count, lower_32_bits(s->rel_seq));
	return 0;
}
