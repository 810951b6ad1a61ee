// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream inspect: print the index of a capture (FILE.idx,
 * docs/capture-format.md): its header, one row per block and how the file
 * ended.  Text, or JSON: the records as { "index": [...] }, the header with
 * --header as { "header": [ {...} ] }.  The index is read record by record:
 * as text, one of millions of records prints in constant memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "capfile.h"
#include "common.h"

static const char inspect_help[] =
"usage: fpgastream inspect FILE [--header] [--from I] [-n COUNT] [-J]\n"
"\n"
"Print the index of the capture FILE (FILE.idx; FILE may also be the index\n"
"itself): the header (board, PCI address, hardware version, block size,\n"
"start time, seed, tool version), then one row per block: its stream\n"
"sequence number, blocks lost before it, flags, the driver's timestamp\n"
"(seconds after the start) and its offset in the data file, and how the\n"
"file ended.\n"
"\n"
"      --header           the header only (with what the records hold)\n"
"      --from I           the records from number I (0: the first)\n"
"  -n, --count COUNT      at most COUNT records\n"
HELP_JSON
"                         (the records as {\"index\": [...]}; with --header the\n"
"                         header as {\"header\": [{...}]})\n"
"Exit status: 0 good (a torn last record, as a crash leaves, is only noted);\n"
"1 damaged records; 2 usage error; 3 it cannot be read.\n";

static const char *reason_name(uint32_t r)
{
	static const char *const names[] = {
		[CAPIDX_DONE] = "done", [CAPIDX_SIGNAL] = "signal", [CAPIDX_ROTATED] = "rotated",
		[CAPIDX_FULL] = "full", [CAPIDX_IOERR] = "write error", [CAPIDX_BOARD] = "board error",
	};

	return r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

/* The header; with @counts (after a pass over the records) what they
 * hold and how the file ended. */
static int print_header(const struct capidx_reader *x, const char *idx, bool json, bool counts)
{
	const struct capidx_header *h = &x->h;
	struct out_kv *o = kv_new("header", json);
	time_t t = (time_t)(h->start_realtime_ns / 1000000000u);
	char when[64];
	struct tm tm;

	if (!o)
		return EX_RUNTIME;
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(when, sizeof(when), "-");
	kv(o, "index", OUT_STR, "index", "%s", idx);
	kv(o, "version", OUT_NUM, "format version", "%u", h->version);
	kv(o, "data_file", OUT_STR, "data file", "%s", h->data_file);
	kv(o, "board", OUT_STR, "board", "%s", h->board);
	kv(o, "pci", OUT_STR, "pci", "%s", h->pci);
	kv(o, "hw_version", OUT_STR, "hw version", "%u.%u", h->hw_version >> 16, h->hw_version & 0xffff);
	kv(o, "block_size", OUT_NUM, "block size", "%u", h->block_size);
	kv_text(o, "start", "%s (%" PRIu64 " ns; monotonic %" PRIu64 " ns)", when,
		h->start_realtime_ns, h->start_monotonic_ns);
	kv(o, "start_realtime_ns", OUT_NUM, NULL, "%" PRIu64, h->start_realtime_ns);
	kv(o, "start_monotonic_ns", OUT_NUM, NULL, "%" PRIu64, h->start_monotonic_ns);
	if (h->flags & CAPIDX_F_SEED) {
		kv(o, "seed", OUT_NUM, "seed", "%" PRIu64, h->seed);
	} else {
		kv_text(o, "seed", "unknown");
		kv_json(o, "seed", OUT_NUM, NULL);
	}
	kv(o, "mode", OUT_STR, "mode", "%s", h->flags & CAPIDX_F_OVERWRITE ? "overwrite" : "flow control");
	kv(o, "direct", OUT_BOOL, "O_DIRECT", "%s", h->flags & CAPIDX_F_DIRECT ? "yes" : "no");
	kv(o, "file_number", OUT_NUM, "file number", "%u", h->file_number);
	kv_text(o, "stripe", "%u of %u", h->stripe_index, h->stripe_count);
	kv(o, "stripe_index", OUT_NUM, NULL, "%u", h->stripe_index);
	kv(o, "stripe_count", OUT_NUM, NULL, "%u", h->stripe_count);
	kv(o, "blocks_before", OUT_NUM, "blocks before", "%" PRIu64, h->blocks_before);
	kv(o, "tool", OUT_STR, "tool", "%s", h->tool);
	if (counts) {
		kv(o, "records", OUT_NUM, "records", "%" PRIu64, x->n);
		if (x->has_end) {
			kv(o, "end", OUT_STR, "end", "%s", reason_name(x->end.flags));
		} else {
			kv_text(o, "end", "none: cut short (crash, power loss or SIGKILL)");
			kv_json(o, "end", OUT_STR, NULL);
		}
		kv(o, "torn", OUT_NUM, "torn records", "%zu", x->torn);
		kv(o, "damaged", OUT_NUM, "damaged records", "%zu", x->damaged);
	}
	return kv_print(o);
}

/* How the file ended, after the records (text). */
static void print_trailer(const struct capidx_reader *x)
{
	printf("\nrecords:         %" PRIu64 "\n", x->n);
	if (x->has_end)
		printf("end:             %s, %" PRIu64 " blocks, %" PRIu64 " bytes, driver dropped %" PRIu64 "\n",
		       reason_name(x->end.flags), x->end.seq, x->end.offset, x->end.lost);
	else
		printf("end:             none: cut short (crash, power loss or SIGKILL)\n");
	printf("torn records:    %zu\n", x->torn);
	printf("damaged records: %zu\n", x->damaged);
}

/* The cells of one record; TIME in text is seconds after the start, which
 * a person reads, in JSON the driver's CLOCK_MONOTONIC nanoseconds. */
static void cells_of(const struct capidx_reader *x, const struct capidx_rec *r, bool json,
		     char cells[6][32])
{
	snprintf(cells[0], 32, "%" PRIu64, r->seq);
	snprintf(cells[1], 32, "%" PRIu64, r->lost);
	snprintf(cells[2], 32, "%u", r->flags);
	if (json)
		snprintf(cells[3], 32, "%" PRIu64, r->timestamp_ns);
	else
		snprintf(cells[3], 32, "%.6f",
			 ((double)r->timestamp_ns - (double)x->h.start_monotonic_ns) / 1e9);
	snprintf(cells[4], 32, "%" PRIu64, r->offset);
	snprintf(cells[5], 32, "%u", r->length);
}

/*
 * The records from number @from, at most @count: as text they are printed
 * as they are read (an index of hours has millions); as JSON they go
 * through libsmartcols, which holds the table until it prints it.
 */
static int print_records(struct capidx_reader *x, bool json, uint64_t from, uint64_t count)
{
	static const struct out_col cols[] = {
		{ "SEQ", "seq", OUT_NUM, "-" },
		{ "LOST", "lost", OUT_NUM, "-" },
		{ "FLAGS", "flags", OUT_NUM, "-" },
		{ "TIME", "timestamp_ns", OUT_NUM, "-" },
		{ "OFFSET", "offset", OUT_NUM, "-" },
		{ "LENGTH", "length", OUT_NUM, "-" },
	};
	struct out_table *t = NULL;
	struct capidx_rec r;
	char cells[6][32], why[256];
	const char *row[6];
	uint64_t shown = 0;
	int rc;

	for (int i = 0; i < 6; i++)
		row[i] = cells[i];
	if (json) {
		t = table_new("index", true, cols, sizeof(cols) / sizeof(cols[0]));
		if (!t)
			return EX_RUNTIME;
	} else {
		printf("%20s %10s %5s %14s %16s %8s\n", "SEQ", "LOST", "FLAGS", "TIME", "OFFSET", "LENGTH");
	}
	while ((rc = capidx_next(x, &r, why, sizeof(why))) > 0) {
		if (x->n - 1 < from || shown >= count)
			continue;	/* read on: the end record and the torn tail */
		shown++;
		cells_of(x, &r, json, cells);
		if (json) {
			if (table_row(t, row)) {
				table_free(t);
				return EX_RUNTIME;
			}
		} else {
			printf("%20s %10s %5s %14s %16s %8s\n", cells[0], cells[1], cells[2], cells[3],
			       cells[4], cells[5]);
		}
	}
	if (rc < 0) {
		msg("%s", why);
		if (t)
			table_free(t);
		return EX_RUNTIME;
	}
	if (json)
		return table_print(t);
	if (fflush(stdout) || ferror(stdout)) {
		msg("standard output: %s", strerror(errno));
		return EX_RUNTIME;
	}
	return EX_GOOD;
}

int do_inspect(int argc, char **argv)
{
	enum { O_FROM = 256 };
	static const struct option opts[] = {
		{ "header", no_argument, NULL, 'H' },
		{ "from", required_argument, NULL, O_FROM },
		{ "count", required_argument, NULL, 'n' },
		OPT_JSON,
		OPT_HELP,
		{ 0 }
	};
	bool header_only = false, json = false;
	uint64_t from = 0, count = UINT64_MAX;
	char idx[PATH_MAX], why[256];
	struct capidx_reader x;
	struct capidx_rec r;
	const char *file;
	size_t l;
	int c, rc;

	while ((c = getopt_long(argc, argv, "n:Jh", opts, NULL)) != -1) {
		switch (c) {
		case 'H': header_only = true; break;
		case O_FROM:
			if (arg_number("--from", optarg, 0, UINT64_MAX, &from))
				return EX_USAGE;
			break;
		case 'n':
			if (arg_number("-n", optarg, 0, UINT64_MAX, &count))
				return EX_USAGE;
			break;
		case 'J': json = true; break;
		case 'h':
			fputs(inspect_help, stdout);
			return EX_GOOD;
		default:
			return bad_option(argv);
		}
	}
	if (argc - optind != 1)
		return usage_error(argc == optind ? "no FILE given" : "one FILE only");
	file = argv[optind];
	l = strlen(file);
	if (l > strlen(CAPIDX_SUFFIX) && !strcmp(file + l - strlen(CAPIDX_SUFFIX), CAPIDX_SUFFIX))
		snprintf(idx, sizeof(idx), "%s", file);
	else
		capidx_path(file, idx, sizeof(idx));
	if (capidx_open(&x, idx, why, sizeof(why))) {
		msg("%s: %s", idx, why);
		return EX_RUNTIME;
	}
	if (header_only) {
		/* the counts need a pass over the records */
		while ((rc = capidx_next(&x, &r, why, sizeof(why))) > 0)
			;
		rc = rc < 0 ? (msg("%s: %s", idx, why), EX_RUNTIME) : print_header(&x, idx, json, true);
	} else if (json) {
		rc = print_records(&x, true, from, count);
	} else {
		rc = print_header(&x, idx, false, false);
		if (!rc) {
			putchar('\n');
			rc = print_records(&x, false, from, count);
		}
		if (!rc)
			print_trailer(&x);
	}
	/* A torn last record is what a crash leaves: said, not an error. */
	if (!rc && x.torn)
		msg("note: %s: the last %zu record(s) are torn (cut short by a crash): ignored",
		    idx, x.torn);
	if (!rc && x.damaged) {
		msg("%s: %zu damaged records (CRC mismatch) ignored", idx, x.damaged);
		rc = EX_LOSS;
	}
	capidx_close(&x);
	return rc;
}
