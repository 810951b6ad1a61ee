// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream stats: the driver's counters for a board (STATS ioctl), as
 * "label: value" lines or with --json as { "stats": [ { ... } ] }.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>

#include "common.h"

static const char stats_help[] =
"usage: fpgastream stats [-d DEV | DEV] [-J] [--help]\n"
"\n"
"Show the driver's counters for a board: blocks completed by the board,\n"
"announced to programs, released by them, overwritten and dropped at the\n"
"source, interrupts and read calls.\n"
"\n"
HELP_DEVICE_IS
"                         default 0; or DEV alone, as the argument\n"
HELP_JSON;

int do_stats(int argc, char **argv)
{
	struct fpgastream *h;
	struct fpgastream_stats st;
	struct out_kv *o;
	int rc;

	rc = query_open(argc, argv, stats_help, "stats", &h, &o);
	if (rc)
		return rc < 0 ? EX_GOOD : rc;
	if (fpgastream_stats(h, &st)) {
		msg("%s", fpgastream_last_error(h));
		fpgastream_close(h);
		kv_free(o);
		return EX_RUNTIME;
	}
	kv(o, "device", OUT_STR, NULL, "%s", fpgastream_path(h));
	kv(o, "blocks_completed", OUT_NUM, "blocks completed", "%" PRIu64, (uint64_t)st.blocks_completed);
	kv(o, "blocks_announced", OUT_NUM, "blocks announced", "%" PRIu64, (uint64_t)st.blocks_announced);
	kv(o, "blocks_released", OUT_NUM, "blocks released", "%" PRIu64, (uint64_t)st.blocks_released);
	kv(o, "blocks_overwritten", OUT_NUM, "blocks overwritten", "%" PRIu64,
	   (uint64_t)st.blocks_overwritten);
	kv(o, "blocks_dropped", OUT_NUM, "blocks dropped", "%" PRIu64, (uint64_t)st.blocks_dropped);
	kv(o, "interrupts", OUT_NUM, "interrupts", "%" PRIu64, (uint64_t)st.interrupts);
	kv(o, "read_calls", OUT_NUM, "read calls", "%" PRIu64, (uint64_t)st.read_calls);
	fpgastream_close(h);
	return kv_print(o);
}
