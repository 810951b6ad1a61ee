// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream verify: check a capture file of the reference device offline,
 * block by block, against its data pattern and sequence (pattern.c).  With
 * its index (FILE.idx, docs/capture-format.md) it checks each block the
 * index names against what the driver said of it, and reports gaps where
 * the driver saw them; without one it follows word 0 of the blocks.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capfile.h"
#include "common.h"
#include "pattern.h"

static const char verify_help[] =
"usage: fpgastream verify FILE [--seed S] [--index IDX | --no-index] [-J]\n"
"\n"
"Check a capture of the reference device block by block: word 0 is the\n"
"source sequence number s, word 1 is ~s, and every other word must match the\n"
"pattern for seed S (default: the seed in the index header, else 0; decimal,\n"
"or hexadecimal after 0x).\n"
"With an index (FILE.idx, or --index IDX) every block it names is checked\n"
"against its index entry, losses are reported where the driver saw them, and\n"
"a capture cut short (no end record, data after the last synced entry) is\n"
"checked up to its last synced block.  Without one, s must increase and a gap\n"
"in it is reported as lost blocks.  FILE - reads standard input (no index).\n"
"\n"
"  -S, --seed S           the seed of the data pattern\n"
"      --index IDX        the index is IDX, not FILE.idx\n"
"      --no-index         ignore the index: follow word 0 of the blocks\n"
HELP_JSON
"Exit status: 0 all good; 1 lost or bad blocks; 2 usage error; 3 I/O error.\n";

struct verify_result {
	const char *file;
	bool indexed, complete;
	uint64_t blocks, bad, lost, first, last, seed, unindexed;
};

static int print_result(const struct verify_result *r, bool json)
{
	struct out_kv *o;

	if (!json) {
		printf("%s: %" PRIu64 " blocks, sequence %" PRIu64 "..%" PRIu64 ", %" PRIu64 " lost, %" PRIu64 " bad (seed %" PRIu64 ")\n",
		       r->file, r->blocks, r->first, r->last, r->lost, r->bad, r->seed);
		return fflush(stdout) ? EX_RUNTIME : EX_GOOD;
	}
	o = kv_new("verify", true);
	if (!o)
		return EX_RUNTIME;
	kv_json(o, "file", OUT_STR, r->file);
	kv_json(o, "indexed", OUT_BOOL, r->indexed ? "yes" : "no");
	kv_json(o, "complete", OUT_BOOL, !r->indexed ? NULL : r->complete ? "yes" : "no");
	kv(o, "blocks", OUT_NUM, NULL, "%" PRIu64, r->blocks);
	kv(o, "bad", OUT_NUM, NULL, "%" PRIu64, r->bad);
	kv(o, "lost", OUT_NUM, NULL, "%" PRIu64, r->lost);
	kv(o, "first", OUT_NUM, NULL, "%" PRIu64, r->first);
	kv(o, "last", OUT_NUM, NULL, "%" PRIu64, r->last);
	kv(o, "seed", OUT_NUM, NULL, "%" PRIu64, r->seed);
	kv(o, "unindexed_bytes", OUT_NUM, NULL, "%" PRIu64, r->unindexed);
	return kv_print(o);
}

/* Read exactly @len bytes at @off: 0, 1 at the end of the file, or -errno. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 1;
		got += (size_t)n;
	}
	return 0;
}

static const char *reason_text(uint32_t reason)
{
	switch (reason) {
	case CAPIDX_DONE: return "it ended at its limit or the end of the stream";
	case CAPIDX_SIGNAL: return "it was stopped by a signal";
	case CAPIDX_ROTATED: return "the next file of the rotation took over";
	case CAPIDX_FULL: return "the output filled up";
	case CAPIDX_IOERR: return "a write failed";
	case CAPIDX_BOARD: return "the board failed";
	default: return "an unknown reason";
	}
}

/* Check @file with its index @idxpath. */
static int verify_indexed(const char *file, const char *idxpath, bool seed_given, uint64_t seed,
			  bool json)
{
	struct verify_result res = { .file = file, .indexed = true };
	struct verifier v = { 0 };
	struct capidx x;
	struct stat st;
	char why[256];
	uint64_t end = 0;
	unsigned int lines = 0;
	uint8_t *block = NULL;
	int fd, rc;

	if (capidx_load(idxpath, &x, why, sizeof(why))) {
		msg("%s: %s", idxpath, why);
		return EX_RUNTIME;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		msg("%s: %s", file, strerror(errno));
		capidx_free(&x);
		return EX_RUNTIME;
	}
	res.seed = v.seed = seed_given ? seed : (x.h.flags & CAPIDX_F_SEED) ? x.h.seed : 0;
	res.complete = x.has_end;
	if (x.torn)
		msg("%s: the last %zu index record%s torn (a crash mid-write): ignored", idxpath, x.torn,
		    x.torn == 1 ? " is" : "s are");
	if (x.damaged) {
		msg("%s: %zu index records are damaged (CRC mismatch)", idxpath, x.damaged);
		res.bad += x.damaged;
	}
	if (x.after_end)
		msg("%s: %zu records after the end record: ignored", idxpath, x.after_end);
	if (x.h.block_size)
		block = malloc(x.h.block_size);
	if (!block) {
		msg("%s: no block size, or out of memory", idxpath);
		close(fd);
		capidx_free(&x);
		return EX_RUNTIME;
	}
	for (size_t i = 0; i < x.n; i++) {
		const struct capidx_rec *e = &x.recs[i];
		struct fpgastream_record r = {
			.data = block, .seq = e->seq, .offset = e->offset, .length = e->length,
			.flags = e->flags, .lost = e->lost, .timestamp_ns = e->timestamp_ns,
		};

		if (e->lost) {
			if (lines++ < MAX_REPORTS)
				msg("%s: %" PRIu64 " blocks lost before seq %" PRIu64 " (data offset %" PRIu64 ", index record %zu)",
				    file, e->lost, e->seq, e->offset, i);
			res.lost += e->lost;
		}
		if (e->length != x.h.block_size || e->offset != end) {
			if (lines++ < MAX_REPORTS)
				msg("%s: index record %zu names %u bytes at offset %" PRIu64 ", not the next block at %" PRIu64,
				    idxpath, i, e->length, e->offset, end);
			res.bad++;
			end = e->offset + e->length;
			continue;
		}
		end = e->offset + e->length;
		rc = read_at(fd, block, e->length, e->offset);
		if (rc) {
			msg("%s: index record %zu names data at offset %" PRIu64 " beyond the end of the file (%s)",
			    file, i, e->offset, rc < 0 ? strerror(-rc) : "missing");
			res.bad += x.n - i;
			break;
		}
		verify_record(&v, &r);
		if (!res.blocks)
			res.first = le64toh(*(uint64_t *)block);
		res.last = le64toh(*(uint64_t *)block);
		res.blocks++;
	}
	res.bad += v.bad;
	/* Drops the data shows that no record reported: the driver's final
	 * count (in the end record) is the bound, as in capture --verify. */
	if (v.seen > (x.has_end && x.end.lost > v.reported ? x.end.lost : v.reported)) {
		msg("%s: the data shows %" PRIu64 " blocks dropped at the source that no record reported",
		    file, v.seen - v.reported);
		res.bad++;
	}
	if ((uint64_t)st.st_size > end) {
		res.unindexed = (uint64_t)st.st_size - end;
		msg("note: %s: %" PRIu64 " bytes after the last indexed block were not synced and indexed when the capture stopped: not checked",
		    file, res.unindexed);
	}
	if (!x.has_end)
		msg("note: %s: the index has no end record: the capture was cut short (a crash, power loss or SIGKILL); checked up to its last synced block",
		    idxpath);
	else if (x.end.flags != CAPIDX_DONE && x.end.flags != CAPIDX_SIGNAL && x.end.flags != CAPIDX_ROTATED)
		msg("note: %s: the capture stopped because %s", idxpath, reason_text(x.end.flags));
	if (x.has_end && x.end.seq != x.n) {
		msg("%s: the end record counts %" PRIu64 " blocks, the index holds %zu", idxpath, x.end.seq, x.n);
		res.bad++;
	}
	free(block);
	close(fd);
	capidx_free(&x);
	if (res.blocks == 0 && !res.bad) {
		msg("%s: empty", file);
		if (json)
			print_result(&res, json);
		return EX_LOSS;
	}
	rc = print_result(&res, json);
	return rc ? rc : res.lost || res.bad ? EX_LOSS : EX_GOOD;
}

/* Check @file (- for standard input) by word 0 of its blocks alone. */
static int verify_plain(const char *file, uint64_t seed, bool json)
{
	struct verify_result res = { .file = file, .seed = seed };
	uint64_t prev = 0, reported = 0;
	bool have_prev = false;
	static uint64_t block[BLOCK_SIZE / 8];
	int fd, rc;

	fd = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd < 0) {
		msg("%s: %s", file, strerror(errno));
		return EX_RUNTIME;
	}
	for (;;) {
		size_t got = 0;
		uint64_t s;
		long w;

		while (got < BLOCK_SIZE) {
			ssize_t n = read(fd, (char *)block + got, BLOCK_SIZE - got);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				msg("%s: %s", file, strerror(errno));
				return EX_RUNTIME;
			}
			if (n == 0)
				break;
			got += n;
		}
		if (got == 0)
			break;
		if (got < BLOCK_SIZE) {
			msg("%s: ends with a partial block of %zu bytes", file, got);
			res.bad++;
			break;
		}
		s = le64toh(block[0]);
		w = check_block(block, BLOCK_SIZE, seed, s);
		if (have_prev && s <= prev) {
			if (reported++ < MAX_REPORTS)
				msg("block %" PRIu64 ": sequence %" PRIu64 " after %" PRIu64 " (stale or reordered)",
				    res.blocks, s, prev);
			res.bad++;
		} else {
			if (have_prev && s > prev + 1) {
				if (reported++ < MAX_REPORTS)
					msg("block %" PRIu64 ": %" PRIu64 " blocks lost before sequence %" PRIu64,
					    res.blocks, s - prev - 1, s);
				res.lost += s - prev - 1;
			}
			if (w >= 0) {
				if (reported++ < MAX_REPORTS)
					msg("block %" PRIu64 " (sequence %" PRIu64 "): word %ld is wrong%s",
					    res.blocks, s, w, w >= 2 ? " (wrong --seed?)" : "");
				res.bad++;
			}
			if (!have_prev)
				res.first = s;
			prev = s;
			have_prev = true;
		}
		res.blocks++;
	}
	res.last = prev;
	if (fd != STDIN_FILENO)
		close(fd);
	if (res.blocks == 0 && !res.bad) {
		msg("%s: empty", file);
		if (json)
			print_result(&res, json);
		return EX_LOSS;
	}
	rc = print_result(&res, json);
	return rc ? rc : res.lost || res.bad ? EX_LOSS : EX_GOOD;
}

int do_verify(int argc, char **argv)
{
	enum { O_INDEX = 256, O_NO_INDEX };
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 'S' },
		{ "index", required_argument, NULL, O_INDEX },
		{ "no-index", no_argument, NULL, O_NO_INDEX },
		OPT_JSON,
		OPT_HELP,
		{ 0 }
	};
	uint64_t seed = 0;
	bool seed_given = false, no_index = false, json = false;
	const char *file, *index = NULL;
	char idxpath[PATH_MAX];
	int c;

	while ((c = getopt_long(argc, argv, "S:Jh", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			if (arg_number("--seed", optarg, 0, UINT64_MAX, &seed))
				return EX_USAGE;
			seed_given = true;
			break;
		case O_INDEX: index = optarg; break;
		case O_NO_INDEX: no_index = true; break;
		case 'J': json = true; break;
		case 'h':
			fputs(verify_help, stdout);
			return EX_GOOD;
		default:
			return bad_option(argv);
		}
	}
	if (argc - optind != 1)
		return usage_error(argc == optind ? "no FILE given" : "one FILE only");
	file = argv[optind];
	if (index && no_index)
		return usage_error("--index and --no-index exclude each other");
	if (index && !strcmp(file, "-"))
		return usage_error("standard input is read without an index");
	if (index)
		return verify_indexed(file, index, seed_given, seed, json);
	capidx_path(file, idxpath, sizeof(idxpath));
	if (!no_index && strcmp(file, "-") && !access(idxpath, F_OK))
		return verify_indexed(file, idxpath, seed_given, seed, json);
	return verify_plain(file, seed, json);
}
