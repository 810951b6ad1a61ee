// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: records. Turn the blocks the stream saw complete into
 * struct fpgastream_block records in the reader's buffer (with the loss
 * and timestamp of each), skip what overwrite mode lost, and decide what
 * poll() reports. Called from the char device's read() and poll() with
 * fdev->lock held and the caller's ownership of the mapping checked.
 */
#include <linux/minmax.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/uaccess.h>

#include "fpgastream_drv.h"
#include "fpgastream_trace.h"

/*
 * Records fpgastream_stream_collect() writes per user-access window; it
 * may reschedule between windows.
 */
#define FPGASTREAM_COPY_BATCH	16

/**
 * fpgastream_sample_of() - the sample that covers block @seq
 * @s: the stream; caller holds fdev->lock
 * @map: the mapping
 * @seq: a completed block not yet announced, at or after the last one asked
 * @nr_samples: fpgastream_stream.nr_samples, sampled with the completed count
 *
 * Walks forward from the last answer to the first sample whose end lies
 * beyond @seq: amortised constant time per record. @nr_samples bounds the
 * walk even if the ring was overwritten meanwhile (overwrite mode, a
 * reader a ring behind).
 *
 * Return: the sample.
 */
static const struct fpgastream_sample *
fpgastream_sample_of(struct fpgastream_stream *s, const struct fpgastream_mapping *map,
		     u64 seq, u64 nr_samples)
{
	while (s->sample_next + 1 < nr_samples &&
	       READ_ONCE(map->samples[s->sample_idx].end) <= seq) {
		s->sample_next++;
		if (++s->sample_idx == map->nr_blocks)
			s->sample_idx = 0;
	}
	return &map->samples[s->sample_idx];
}

/**
 * fpgastream_put_records() - write the records of the next blocks to user space
 * @s: the stream; its next @n blocks are complete
 * @map: the mapping
 * @ubuf: room for @n records
 * @n: records to write
 * @nr_samples: fpgastream_stream.nr_samples, sampled with the completed count
 * @slotp: ring slot of @s->next_seq; advanced past the records written
 * @lostp: out: the records' lost fields are added to it
 *
 * Stores the records field by field with unsafe_put_user(): no staging
 * copy on the stack, and no string copy, which costs an iteration per byte
 * on CPUs (and emulators) without fast string moves. Blocks dropped at the
 * source since the previous record are charged to the next one, as the
 * samples recorded them. A record is announced once all its fields are
 * stored, so after a fault the stream stands at the first record not
 * written, which comes again with the next read().
 *
 * Return: records written, fewer than @n only after a fault.
 */
static size_t fpgastream_put_records(struct fpgastream_stream *s,
				     const struct fpgastream_mapping *map,
				     struct fpgastream_block __user *ubuf, size_t n,
				     u64 nr_samples, u32 *slotp, u64 *lostp)
{
	u32 slot = *slotp;
	size_t i = 0;

	if (!user_write_access_begin(ubuf, n * sizeof(*ubuf)))
		return 0;
	for (; i < n; i++) {
		const struct fpgastream_sample *smp =
			fpgastream_sample_of(s, map, s->next_seq, nr_samples);
		u64 dropped = READ_ONCE(smp->dropped);
		u64 lost = s->pending_lost;

		if (dropped > s->dropped_reported)
			lost += dropped - s->dropped_reported;
		unsafe_put_user(s->next_seq, &ubuf[i].seq, fault);
		unsafe_put_user((u64)slot << FSTR_BLOCK_SHIFT, &ubuf[i].offset, fault);
		unsafe_put_user(FSTR_BLOCK_SIZE, &ubuf[i].length, fault);
		unsafe_put_user(lost ? FPGASTREAM_BLOCK_OVERRUN : 0, &ubuf[i].flags,
				fault);
		unsafe_put_user(lost, &ubuf[i].lost, fault);
		unsafe_put_user(READ_ONCE(smp->ts), &ubuf[i].timestamp_ns, fault);
		s->dropped_reported = max(dropped, s->dropped_reported);
		s->pending_lost = 0;
		s->next_seq++;
		s->announced++;
		*lostp += lost;
		if (++slot == map->nr_blocks)
			slot = 0;
	}
fault:
	user_write_access_end();
	*slotp = slot;
	return i;
}

/**
 * fpgastream_stream_collect() - turn completed blocks into records in the user buffer
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
ssize_t fpgastream_stream_collect(struct fpgastream_dev *fdev, char __user *buf,
				  size_t nr, u64 *gen)
{
	struct fpgastream_block __user *ubuf = (struct fpgastream_block __user *)buf;
	struct fpgastream_stream *s = &fdev->s;
	struct fpgastream_mapping *map = fdev->map;
	u64 completed, nr_samples, first, lost = 0;
	size_t done = 0;
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
	nr_samples = s->nr_samples;
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
	/* The samples older than the newest ring's worth cover nothing live. */
	if (nr_samples - s->sample_next > map->nr_blocks) {
		s->sample_next = nr_samples - map->nr_blocks;
		s->sample_idx = fpgastream_ring_slot(s->sample_next, map->nr_blocks);
	}
	slot = fpgastream_ring_slot(s->next_seq, map->nr_blocks);
	first = s->next_seq;

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
		put = fpgastream_put_records(s, map, ubuf + done, n, nr_samples,
					     &slot, &lost);
		done += put;
		if (put < n)
			break;
		cond_resched();
	}

	s->more = s->next_seq < completed;
	if (done) {
		trace_fpgastream_read(fdev->minor, first, done, lost);
		return done * sizeof(*ubuf);
	}
	if (s->next_seq < completed)
		return -EFAULT;
	if (fault)
		return -EIO;
	if (fdev->started && !fdev->running)
		return 0;
	return -EAGAIN;
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
