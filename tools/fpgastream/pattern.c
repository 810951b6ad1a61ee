// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream tool: the reference device's data pattern.  Block s of its
 * source holds s, ~s, then splitmix64(seed ^ (s << 13) ^ i) for word i
 * (docs/hardware.md).  Used by verify (files) and capture --verify (the
 * stream, following the records' sequence numbers and drops).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <inttypes.h>

#include "common.h"
#include "pattern.h"

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Index of the first word of a block that does not match the pattern for
 * source sequence s, or -1 when the whole block matches. */
long check_block(const void *data, size_t len, uint64_t seed, uint64_t s)
{
	const uint64_t *w = data;
	size_t i, n = len / 8;

	if (n < 2)
		return 0;
	if (le64toh(w[0]) != s)
		return 0;
	if (le64toh(w[1]) != ~s)
		return 1;
	for (i = 2; i < n; i++)
		if (le64toh(w[i]) != splitmix64(seed ^ (s << 13) ^ i))
			return (long)i;
	return -1;
}

/*
 * Check one captured block.  Its word 0 is the source sequence s; the
 * block must match the pattern for s, s must grow at least as fast as seq
 * (it grows faster by the blocks dropped at the source: record.lost minus
 * the gap in seq).  s is expected to be seq + drops reported so far, but
 * a driver learns of drops from a counter read at interrupt time, so it
 * may report them a few records early or late: that is only counted
 * (misplaced); verify_done() fails when the data shows more drops than
 * the driver ever counted.
 */
void verify_record(struct verifier *v, const struct fpgastream_record *r)
{
	uint64_t seq_gap = v->have_prev ? r->seq - v->prev_seq - 1 : r->seq;
	uint64_t s, s_gap;
	long bad;

	if (r->lost > seq_gap)
		v->reported += r->lost - seq_gap;
	s = r->length >= 8 ? le64toh(*(const uint64_t *)r->data) : 0;
	bad = check_block(r->data, r->length, v->seed, s);
	v->blocks++;
	if (bad >= 0) {
		v->bad++;
		if (v->lines++ < MAX_REPORTS)
			msg("verify: block seq %" PRIu64 " (s %" PRIu64 "): word %ld is wrong%s",
			    r->seq, s, bad, bad >= 2 ? " (wrong seed?)" : "");
		/* Keep following the sequence from what was expected. */
		s = v->have_prev ? v->prev_s + (r->seq - v->prev_seq) : r->seq;
	} else {
		s_gap = v->have_prev ? s - v->prev_s - 1 : s;
		if (v->have_prev && (s <= v->prev_s || s_gap < seq_gap)) {
			v->bad++;
			if (v->lines++ < MAX_REPORTS)
				msg("verify: block seq %" PRIu64 " holds source sequence %" PRIu64 " after %" PRIu64 " (stale or reordered data)",
				    r->seq, s, v->prev_s);
		} else {
			v->seen += s_gap - seq_gap;
			if (s != r->seq + v->reported)
				v->misplaced++;
		}
	}
	v->prev_seq = r->seq;
	v->prev_s = s;
	v->have_prev = true;
}

/* After the last block: drops the data shows that the driver never
 * counted are bad.  The records may report drops late (the driver reads a
 * counter), so the driver's final count is the bound, when known. */
void verify_done(struct verifier *v, uint64_t driver_dropped)
{
	uint64_t known = v->reported > driver_dropped ? v->reported : driver_dropped;

	msg("verify (seed %" PRIu64 "): %" PRIu64 " blocks checked, %" PRIu64 " bad",
	    v->seed, v->blocks, v->bad + (v->seen > known));
	if (v->seen > known) {
		msg("verify: the data shows %" PRIu64 " blocks dropped at the source, the driver counted %" PRIu64,
		    v->seen, known);
		v->bad++;
	} else if (v->seen || v->reported) {
		msg("verify: %" PRIu64 " blocks dropped at the source in the data (%" PRIu64 " reported in records, %" PRIu64 " counted by the driver)%s",
		    v->seen, v->reported, driver_dropped,
		    v->misplaced ? "; some reported on a nearby record rather than where the gap is" : "");
	}
}
