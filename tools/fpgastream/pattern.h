/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The reference device's data pattern (docs/hardware.md): checking one
 * block (verify, offline), and following a stream of records while it is
 * captured (capture --verify).
 */
#ifndef FPGASTREAM_TOOL_PATTERN_H
#define FPGASTREAM_TOOL_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fpgastream.h"

#define MAX_REPORTS 10	/* detail lines printed, per command */

/* Index of the first word of a block that does not match the pattern for
 * source sequence s, or -1 when the whole block matches. */
long check_block(const void *data, size_t len, uint64_t seed, uint64_t s);

struct verifier {
	uint64_t seed;
	uint64_t blocks;	/* checked */
	uint64_t bad;		/* blocks with wrong contents or out of sequence */
	uint64_t reported;	/* drops at the source the records reported */
	uint64_t seen;		/* drops at the source the data shows */
	uint64_t misplaced;	/* records where s != seq + reported so far */
	uint64_t prev_seq;
	uint64_t prev_s;
	bool have_prev;
	unsigned lines;		/* detail lines printed */
};

void verify_record(struct verifier *v, const struct fpgastream_record *r);
/* After the last block, with the driver's final count of drops: the summary. */
void verify_done(struct verifier *v, uint64_t driver_dropped);

#endif /* FPGASTREAM_TOOL_PATTERN_H */
