// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: records. Turn the blocks the stream saw complete into
 * struct fpgastream_block records in the reader's buffer (with the loss
 * and timestamp of each), skip what overwrite mode lost, and decide what
 * poll() reports. Called from the char device's read() and poll(); user
 * memory is written with no lock held.
 */
#include <linux/jiffies.h>
#include <linux/minmax.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "fpgastream_drv.h"
#include "fpgastream_trace.h"

/* Records staged per round: read() copies them with no lock held. */
#define FPGASTREAM_STAGE_RECORDS	64

/**
 * struct fpgastream_staging - records computed under fdev->lock, to copy out
 * @rec: the records, oldest first
 * @dropped: per record, the drops at the source it accounts for up to
 *	(while staging: the drops its sample saw)
 * @nr: records staged
 * @sample_next: the sample cursor after the last record
 * @sample_idx: its ring index
 * @epoch: fpgastream_dev.epoch when staged: the commit is void if it moved
 * @claim: fpgastream_dev.read_claim taken for this round: void if taken over
 * @completed: fpgastream_stream.completed as staged
 */
struct fpgastream_staging {
	struct fpgastream_block rec[FPGASTREAM_STAGE_RECORDS];
	u64 dropped[FPGASTREAM_STAGE_RECORDS];
	unsigned int nr;
	u64 sample_next;
	u32 sample_idx;
	u64 epoch;
	u64 claim;
	u64 completed;
};

/**
 * fpgastream_sample_of() - the sample that covers block @seq
 * @map: the mapping
 * @seq: a completed block not yet announced, at or after the last one asked
 * @nr_samples: fpgastream_stream.nr_samples, sampled with the completed count
 * @next: the cursor: number of the oldest sample that may cover @seq
 * @idx: its ring index
 *
 * Walks the cursor forward to the first sample whose end lies beyond @seq:
 * amortised constant time per record. Caller holds fdev->irq_lock, so the
 * handler cannot overwrite the ring meanwhile.
 *
 * Return: the sample.
 */
static const struct fpgastream_sample *
fpgastream_sample_of(const struct fpgastream_mapping *map, u64 seq, u64 nr_samples,
		     u64 *next, u32 *idx)
{
	while (*next + 1 < nr_samples && map->samples[*idx].end <= seq) {
		++*next;
		if (++*idx == map->nr_blocks)
			*idx = 0;
	}
	return &map->samples[*idx];
}

/**
 * fpgastream_sample_seek() - move the sample cursor to the sample of next_seq
 * @map: the mapping
 * @s: the stream; caller holds fdev->irq_lock and fdev->lock
 * @nr_samples: fpgastream_stream.nr_samples
 *
 * A binary search over the samples from the cursor on, whose ends rise
 * with their number: after an overwrite skip the cursor may be a ring's
 * worth of samples behind, too many to walk with interrupts off.
 */
static void fpgastream_sample_seek(const struct fpgastream_mapping *map,
				   struct fpgastream_stream *s, u64 nr_samples)
{
	u64 lo = s->sample_next, hi = nr_samples - 1;

	if (nr_samples <= lo + 1 || map->samples[s->sample_idx].end > s->next_seq)
		return;
	/* The first sample whose end lies beyond next_seq, in (lo, hi]. */
	while (hi - lo > 1) {
		u64 mid = lo + ((hi - lo) >> 1);

		if (map->samples[fpgastream_ring_slot(mid, map->nr_blocks)].end > s->next_seq)
			hi = mid;
		else
			lo = mid;
	}
	s->sample_next = hi;
	s->sample_idx = fpgastream_ring_slot(hi, map->nr_blocks);
}

/**
 * fpgastream_stage() - compute the records of the next completed blocks
 * @fdev: the board; caller holds fdev->lock and owns the mapping
 * @st: out: the records and what committing them changes
 * @nr: room for at most this many (at most FPGASTREAM_STAGE_RECORDS)
 * @refresh: sample the board first (the first round of a read())
 * @gen: out: fdev->gen as it was when the counters were sampled
 *
 * In overwrite mode a reader a ring behind skips to the oldest block the
 * board cannot be writing: the slot after the one the next block goes to.
 * The skip is taken at once, and the first record after the gap carries
 * FPGASTREAM_BLOCK_OVERRUN and the count in @lost, as do blocks dropped at
 * the source. Each block is synced for the CPU before its record is
 * staged (when the mapping needs it). The skip and the sample cursor's
 * seek take effect at once (the loss is real whatever the copy does);
 * the records are announced by fpgastream_commit() once they reached the
 * reader.
 *
 * Return: records staged, 0 at the end of a stopped stream, -EIO after a
 * fault, or -EAGAIN when nothing is ready yet.
 */
static int fpgastream_stage(struct fpgastream_dev *fdev, struct fpgastream_staging *st,
			    unsigned int nr, bool refresh, u64 *gen)
{
	struct fpgastream_stream *s = &fdev->s;
	struct fpgastream_mapping *map = fdev->map;
	u64 completed, nr_samples, seq, dropped_reported, pending_lost;
	/* In flow control the board never writes an unreleased slot. */
	u32 intact = s->flow_control ? map->nr_blocks : map->nr_blocks - 1;
	u32 fault, slot;
	unsigned int i;

	spin_lock_irq(&fdev->irq_lock);
	/*
	 * After an interrupt, read() returns the batch the interrupt sampled
	 * without asking the board again: a flow-controlled board cannot
	 * overwrite those blocks, and the reader comes back for the rest.
	 * In overwrite mode only a fresh count tells which blocks survive.
	 */
	if (refresh && (!s->flow_control || s->signalled <= s->next_seq))
		fpgastream_refresh_locked(fdev, false);
	completed = s->completed;
	nr_samples = s->nr_samples;
	fault = s->fault;
	*gen = fdev->gen;

	if (completed - s->next_seq > intact) {
		u64 skip = completed - intact - s->next_seq;

		s->next_seq += skip;
		s->pending_lost += skip;
		s->overwritten += skip;
		s->dead = s->announced - s->released;
		s->rel_seq = s->next_seq;
	}
	/* The samples older than the newest ring's worth cover nothing live. */
	if (nr_samples - s->sample_next > map->nr_blocks) {
		s->sample_next = nr_samples - map->nr_blocks;
		s->sample_idx = fpgastream_ring_slot(s->sample_next, map->nr_blocks);
	}
	st->nr = min_t(u64, nr, completed - s->next_seq);
	st->completed = completed;
	fpgastream_sample_seek(map, s, nr_samples);
	st->sample_next = s->sample_next;
	st->sample_idx = s->sample_idx;
	/*
	 * The samples are read here, under irq_lock: the handler writes the
	 * ring's oldest slot next, which may be the one the first record
	 * needs.
	 */
	for (i = 0, seq = s->next_seq; i < st->nr; i++, seq++) {
		const struct fpgastream_sample *smp =
			fpgastream_sample_of(map, seq, nr_samples, &st->sample_next,
					     &st->sample_idx);

		st->rec[i].timestamp_ns = smp->ts;
		st->dropped[i] = smp->dropped;
	}
	spin_unlock_irq(&fdev->irq_lock);

	if (!st->nr) {
		s->more = false;
		if (fault)
			return -EIO;
		if (fdev->started && !fdev->running)
			return 0;
		return -EAGAIN;
	}

	st->epoch = fdev->epoch;
	seq = s->next_seq;
	slot = fpgastream_ring_slot(seq, map->nr_blocks);
	dropped_reported = s->dropped_reported;
	pending_lost = s->pending_lost;
	for (i = 0; i < st->nr; i++, seq++) {
		u64 dropped = st->dropped[i];
		u64 lost = pending_lost;

		if (dropped > dropped_reported)
			lost += dropped - dropped_reported;
		dropped_reported = max(dropped, dropped_reported);
		pending_lost = 0;

		fpgastream_map_sync_block(fdev, map, slot, true);
		st->rec[i].seq = seq;
		st->rec[i].offset = (u64)slot << FSTR_BLOCK_SHIFT;
		st->rec[i].length = FSTR_BLOCK_SIZE;
		st->rec[i].flags = lost ? FPGASTREAM_BLOCK_OVERRUN : 0;
		st->rec[i].lost = lost;
		st->dropped[i] = dropped_reported;
		if (++slot == map->nr_blocks)
			slot = 0;
	}
	return st->nr;
}

/**
 * fpgastream_commit() - announce the first @n staged records
 * @fdev: the board; caller holds fdev->lock, the epoch is the staging's
 * @st: the staging
 * @n: records that reached the reader, at most @st->nr
 */
static void fpgastream_commit(struct fpgastream_dev *fdev,
			      const struct fpgastream_staging *st, unsigned int n)
{
	struct fpgastream_stream *s = &fdev->s;

	if (!n)
		return;
	s->next_seq += n;
	s->announced += n;
	s->pending_lost = 0;
	s->dropped_reported = st->dropped[n - 1];
	/* A partial commit keeps the old cursor: walking on from it is right. */
	if (n == st->nr) {
		s->sample_next = st->sample_next;
		s->sample_idx = st->sample_idx;
	}
	/* The reader's buffer ran out before the blocks seen complete did. */
	s->more = s->next_seq < st->completed;
}

/**
 * fpgastream_put_records() - write staged records to the reader's buffer
 * @ubuf: room for @n records
 * @rec: the records
 * @n: how many
 *
 * Field by field with unsafe_put_user(), with no lock held: the buffer may
 * fault for as long as its owner likes (userfaultfd, FUSE). No string
 * copy either, which costs an iteration per byte on CPUs (and emulators)
 * without fast string moves.
 *
 * Return: whole records written, fewer than @n only after a fault.
 */
static unsigned int fpgastream_put_records(struct fpgastream_block __user *ubuf,
					   const struct fpgastream_block *rec,
					   unsigned int n)
{
	unsigned int i = 0;

	if (!user_write_access_begin(ubuf, n * sizeof(*ubuf)))
		return 0;
	for (; i < n; i++) {
		unsafe_put_user(rec[i].seq, &ubuf[i].seq, fault);
		unsafe_put_user(rec[i].offset, &ubuf[i].offset, fault);
		unsafe_put_user(rec[i].length, &ubuf[i].length, fault);
		unsafe_put_user(rec[i].flags, &ubuf[i].flags, fault);
		unsafe_put_user(rec[i].lost, &ubuf[i].lost, fault);
		unsafe_put_user(rec[i].timestamp_ns, &ubuf[i].timestamp_ns, fault);
	}
fault:
	user_write_access_end();
	return i;
}

/**
 * fpgastream_missed_work() - wake pollers once fdev->lock is free again
 * @work: fpgastream_dev.missed_work
 *
 * An O_NONBLOCK read() that found the lock taken returned -EAGAIN with
 * records perhaps ready; an edge-triggered poller would wait for an edge
 * that may never come. This worker waits for the lock in its place, then
 * wakes pollers so that they look again. It holds a reference to the
 * board from fpgastream_read_lock().
 */
void fpgastream_missed_work(struct work_struct *work)
{
	struct fpgastream_dev *fdev = container_of(work, struct fpgastream_dev, missed_work);

	mutex_lock(&fdev->lock);
	mutex_unlock(&fdev->lock);
	fpgastream_wake(fdev);
	put_device(&fdev->dev);
}

/* Take fdev->lock as read() may: never sleeping on it with O_NONBLOCK. */
static int fpgastream_read_lock(struct fpgastream_dev *fdev, bool nonblock)
{
	if (!nonblock)
		return mutex_lock_interruptible(&fdev->lock) ? -ERESTARTSYS : 0;
	if (mutex_trylock(&fdev->lock))
		return 0;
	get_device(&fdev->dev);
	if (!schedule_work(&fdev->missed_work))
		put_device(&fdev->dev);
	return -EAGAIN;
}

/* How long a reader waits for another one's copy before taking over. */
#define FPGASTREAM_READ_TAKEOVER_MS	10

/**
 * fpgastream_records_read() - read(): records of completed blocks
 * @fdev: the board
 * @file: the reader's file, which must own the mapping
 * @buf: the reader's buffer
 * @nr: records that fit in @buf (at least 1)
 * @nonblock: O_NONBLOCK: never sleep, not even on a lock
 *
 * Rounds of: stage records under fdev->lock, copy them out with no lock
 * held, commit what was copied under the lock again, if the round still
 * holds the read claim and the stream did not change (fdev->epoch). So a
 * buffer that faults for ever stalls only this reader: poll(), sysfs, the
 * other ioctls and remove() go on, and another reader of the mapping waits
 * for it at most FPGASTREAM_READ_TAKEOVER_MS, then takes the claim over;
 * the stalled round is then void and staged again. Only committed records
 * are returned. Blocks until a record is ready unless @nonblock; a signal
 * gives -ERESTARTSYS unless records were gathered already. With @nonblock
 * the only wait is the commit's, behind a call that holds the lock on the
 * same board at that moment.
 *
 * Return: bytes of records, 0 at the end of a stopped stream, or -EIO,
 * -EFAULT, -EAGAIN, -EINVAL, -ENODEV, -ENOMEM, -ERESTARTSYS.
 */
ssize_t fpgastream_records_read(struct fpgastream_dev *fdev, struct file *file,
				char __user *buf, size_t nr, bool nonblock)
{
	struct fpgastream_block __user *ubuf = (struct fpgastream_block __user *)buf;
	struct fpgastream_staging *st;
	u64 first = 0, lost = 0, gen = 0;
	bool counted = false, takeover = false;
	size_t done = 0;
	int ret;

	/* O_NONBLOCK must not wait for reclaim either. */
	st = kmalloc(sizeof(*st), nonblock ? GFP_NOWAIT | __GFP_NOWARN : GFP_KERNEL);
	if (!st)
		return nonblock ? -EAGAIN : -ENOMEM;
	for (;;) {
		unsigned int put, i;
		bool committed;

		ret = fpgastream_read_lock(fdev, nonblock);
		if (ret)
			break;
		ret = fpgastream_check_owner(fdev, file);
		if (!ret && fdev->reading && !takeover)
			ret = -EBUSY;
		if (!ret) {
			/* Overwrite mode: only a fresh count says what survives. */
			bool refresh = !counted || !fdev->s.flow_control;

			if (!counted)
				fdev->s.read_calls++;
			counted = true;
			takeover = false;
			ret = fpgastream_stage(fdev, st,
					       min_t(size_t, nr - done,
						     FPGASTREAM_STAGE_RECORDS),
					       refresh, &gen);
			if (ret > 0) {
				fdev->reading = true;
				st->claim = ++fdev->read_claim;
			}
		}
		mutex_unlock(&fdev->lock);

		if (ret > 0) {
			put = fpgastream_put_records(ubuf + done, st->rec, st->nr);
			mutex_lock(&fdev->lock);
			committed = !fdev->gone && fdev->epoch == st->epoch &&
				    fdev->read_claim == st->claim;
			if (committed) {
				fdev->reading = false;
				fpgastream_commit(fdev, st, put);
			}
			ret = fdev->gone ? -ENODEV : 0;
			mutex_unlock(&fdev->lock);
			/* Readers waiting for @reading, and pollers: fewer records. */
			if (wq_has_sleeper(&fdev->wq))
				wake_up_interruptible_all(&fdev->wq);

			if (!committed) {
				/* Void: removed, restarted, or taken over. */
				if (ret)
					break;
				cond_resched();
				continue;
			}
			if (put && !done)
				first = st->rec[0].seq;
			for (i = 0; i < put; i++)
				lost += st->rec[i].lost;
			done += put;
			if (put < st->nr) {
				ret = -EFAULT;
				break;
			}
			if (done == nr || st->nr < FPGASTREAM_STAGE_RECORDS)
				break;
			cond_resched();
			continue;
		}
		if (done)
			break;
		if (ret == -EBUSY) {
			long left;

			/* Another reader of the mapping is copying out. */
			if (nonblock) {
				ret = -EAGAIN;
				break;
			}
			left = msecs_to_jiffies(FPGASTREAM_READ_TAKEOVER_MS);
			left = wait_event_interruptible_timeout(fdev->wq,
								!READ_ONCE(fdev->reading) ||
								READ_ONCE(fdev->gone), left);
			if (left < 0) {
				ret = -ERESTARTSYS;
				break;
			}
			takeover = !left;
			continue;
		}
		if (ret != -EAGAIN || nonblock)
			break;
		if (wait_event_interruptible(fdev->wq, READ_ONCE(fdev->gen) != gen)) {
			ret = -ERESTARTSYS;
			break;
		}
	}
	kfree(st);
	if (!done)
		return ret;
	trace_fpgastream_read(fdev->minor, first, done, lost);
	return done * sizeof(*ubuf);
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

/**
 * fpgastream_stream_poll() - what poll() reports for the owner of the mapping
 * @fdev: the board; caller holds fdev->lock and owns the mapping
 *
 * Return: EPOLLIN | EPOLLRDNORM for a batch of records, EPOLLERR after a
 * fault (with EPOLLHUP once nothing is left to read), EPOLLHUP when the
 * stream stopped and drained.
 */
__poll_t fpgastream_stream_poll(struct fpgastream_dev *fdev)
{
	u64 completed, signalled;
	__poll_t mask = 0;
	u32 fault;

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
	return mask;
}
