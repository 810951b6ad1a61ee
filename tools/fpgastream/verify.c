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
"usage: fpgastream verify FILE... [--seed S] [--index IDX | --no-index] [-J]\n"
"\n"
"Check a capture of the reference device block by block: word 0 is the\n"
"source sequence number s, word 1 is ~s, and every other word must match the\n"
"pattern for seed S (default: the seed in the index header, else 0; decimal,\n"
"or hexadecimal after 0x).\n"
"With an index (FILE.idx, or --index IDX) every block it names is checked\n"
"against its index entry, losses are reported where the driver saw them, and\n"
"a capture cut short (no end record, data after the last synced entry) is\n"
"checked up to its last synced block.  Several FILEs (the stripes of -o a -o b,\n"
"the files of a rotation) are merged through their indexes into one stream.\n"
"Without an index, s must increase and a gap in it is reported as lost\n"
"blocks.  FILE - reads standard input (no index).\n"
"\n"
"  -S, --seed S           the seed of the data pattern\n"
"      --index IDX        the index is IDX, not FILE.idx\n"
"      --no-index         ignore the index: follow word 0 of the blocks\n"
HELP_JSON
"Exit status: 0 all good; 1 lost or bad blocks; 2 usage error; 3 I/O error.\n";

struct verify_result {
	const char *file;
	unsigned int nfiles;
	bool indexed, complete;
	uint64_t blocks, bad, lost, first, last, seed, unindexed;
	uint64_t missing;	/* blocks of the stream in none of the files */
	uint64_t clobbered, clobbered_bad;	/* flagged CAPIDX_F_CLOBBERED; of them, bad */
};

static int print_result(const struct verify_result *r, bool json)
{
	struct out_kv *o;

	if (!json) {
		char more[32] = "", missing[48] = "";

		if (r->nfiles > 1)
			snprintf(more, sizeof(more), " and %u more", r->nfiles - 1);
		if (r->missing)
			snprintf(missing, sizeof(missing), ", %" PRIu64 " missing", r->missing);
		printf("%s%s: %" PRIu64 " blocks, sequence %" PRIu64 "..%" PRIu64 ", %" PRIu64 " lost, %" PRIu64 " bad%s (seed %" PRIu64 ")\n",
		       r->file, more, r->blocks, r->first, r->last, r->lost, r->bad, missing, r->seed);
		return fflush(stdout) ? EX_RUNTIME : EX_GOOD;
	}
	o = kv_new("verify", true);
	if (!o)
		return EX_RUNTIME;
	kv_json(o, "file", OUT_STR, r->file);
	kv(o, "files", OUT_NUM, NULL, "%u", r->nfiles ? r->nfiles : 1);
	kv_json(o, "indexed", OUT_BOOL, r->indexed ? "yes" : "no");
	kv_json(o, "complete", OUT_BOOL, !r->indexed ? NULL : r->complete ? "yes" : "no");
	kv(o, "blocks", OUT_NUM, NULL, "%" PRIu64, r->blocks);
	kv(o, "bad", OUT_NUM, NULL, "%" PRIu64, r->bad);
	kv(o, "lost", OUT_NUM, NULL, "%" PRIu64, r->lost);
	kv(o, "missing", OUT_NUM, NULL, "%" PRIu64, r->missing);
	kv(o, "clobbered", OUT_NUM, NULL, "%" PRIu64, r->clobbered);
	kv(o, "clobbered_bad", OUT_NUM, NULL, "%" PRIu64, r->clobbered_bad);
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

/* One indexed file of a capture, read record by record. */
struct vfile {
	const char *path;
	const char *idxpath;
	struct capidx_reader r;
	int fd;
	uint64_t size;		/* of the data (0 for a device: not checked) */
	uint64_t end;		/* of its last indexed block so far */
	struct capidx_rec cur;	/* its next record, when have */
	bool have;
	unsigned int lines;
};

/* Open one file and its index.  0 or EX_RUNTIME, said. */
static int vfile_open(struct vfile *vf)
{
	struct stat st;
	char why[256];

	if (capidx_open(&vf->r, vf->idxpath, why, sizeof(why))) {
		msg("%s: %s", vf->idxpath, why);
		return EX_RUNTIME;
	}
	vf->fd = open(vf->path, O_RDONLY | O_CLOEXEC);
	if (vf->fd < 0 || fstat(vf->fd, &st)) {
		msg("%s: %s", vf->path, strerror(errno));
		return EX_RUNTIME;
	}
	vf->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	if (!vf->r.h.block_size || vf->r.h.block_size > (64u << 20)) {
		msg("%s: a block size of %u bytes", vf->idxpath, vf->r.h.block_size);
		return EX_RUNTIME;
	}
	return 0;
}

/* Its next record into vf->cur: 0, or EX_RUNTIME.  The data file is a
 * plain run of blocks: each record must name the next one. */
static int vfile_advance(struct vfile *vf, struct verify_result *res)
{
	char why[256];
	int rc = capidx_next(&vf->r, &vf->cur, why, sizeof(why));

	if (rc < 0) {
		msg("%s: %s", vf->idxpath, why);
		return EX_RUNTIME;
	}
	vf->have = rc > 0;
	if (!vf->have)
		return 0;
	if (vf->cur.length != vf->r.h.block_size || vf->cur.offset != vf->end) {
		if (vf->lines++ < MAX_REPORTS)
			msg("%s: index record %" PRIu64 " names %u bytes at offset %" PRIu64 ", not the next block at %" PRIu64,
			    vf->idxpath, vf->r.n - 1, vf->cur.length, vf->cur.offset, vf->end);
		res->bad++;
	}
	vf->end = vf->cur.offset + vf->cur.length;
	return 0;
}

/* After its last record: what the index says of how it ended. */
static void vfile_done(struct vfile *vf, struct verify_result *res)
{
	struct capidx_reader *x = &vf->r;

	if (x->torn)
		msg("%s: the last %zu index record%s torn (a crash mid-write): ignored", vf->idxpath,
		    x->torn, x->torn == 1 ? " is" : "s are");
	if (x->damaged) {
		msg("%s: %zu index records are damaged (CRC mismatch)", vf->idxpath, x->damaged);
		res->bad += x->damaged;
	}
	if (x->after_end)
		msg("%s: %zu records after the end record: ignored", vf->idxpath, x->after_end);
	if (vf->size > vf->end) {
		res->unindexed += vf->size - vf->end;
		msg("note: %s: %" PRIu64 " bytes after the last indexed block were not synced and indexed when the capture stopped: not checked",
		    vf->path, vf->size - vf->end);
	}
	if (!x->has_end)
		msg("note: %s: the index has no end record: the capture was cut short (a crash, power loss or SIGKILL); checked up to its last synced block",
		    vf->idxpath);
	else if (x->end.flags != CAPIDX_DONE && x->end.flags != CAPIDX_SIGNAL && x->end.flags != CAPIDX_ROTATED)
		msg("note: %s: the capture stopped because %s", vf->idxpath, reason_text(x->end.flags));
	if (x->has_end && x->end.seq != x->n) {
		msg("%s: the end record counts %" PRIu64 " blocks, the index holds %" PRIu64, vf->idxpath,
		    x->end.seq, x->n);
		res->bad++;
	}
	res->complete &= x->has_end;
}

/*
 * Check @nfiles data files with their indexes as one capture: a file of its
 * own, or the files of a striped (-o a -o b) or rotated (-C, -G) capture,
 * whose records merge by sequence number into the stream.  Each index is
 * read record by record, so that a capture of hours takes no more memory
 * than one of seconds.
 */
static int verify_indexed(const char *const *files, const char *const *idxpaths, unsigned int nfiles,
			  bool seed_given, uint64_t seed, bool json)
{
	struct verify_result res = { .file = files[0], .indexed = true, .complete = true,
				     .nfiles = nfiles };
	struct verifier v = { 0 };
	struct vfile *vf = calloc(nfiles, sizeof(*vf));
	uint64_t driver_dropped = 0, stripes = 0, prev_seq = 0;
	unsigned int lines = 0;
	uint8_t *block = NULL;
	bool whole, have_prev = false;
	int rc = EX_RUNTIME;

	if (!vf) {
		msg("out of memory");
		return EX_RUNTIME;
	}
	for (unsigned int i = 0; i < nfiles; i++) {
		vf[i].fd = vf[i].r.fd = -1;
		vf[i].path = files[i];
		vf[i].idxpath = idxpaths[i];
	}
	for (unsigned int i = 0; i < nfiles; i++) {
		if (vfile_open(&vf[i]))
			goto out;
		if (vf[i].r.h.stripe_count > 1 && vf[i].r.h.stripe_index < 64)
			stripes |= 1ull << vf[i].r.h.stripe_index;
		if (vf[i].r.h.block_size != vf[0].r.h.block_size) {
			msg("%s: blocks of %u bytes, %s's are %u: not one capture", files[i],
			    vf[i].r.h.block_size, files[0], vf[0].r.h.block_size);
			goto out;
		}
		if (vfile_advance(&vf[i], &res))
			goto out;
	}
	res.seed = v.seed = seed_given ? seed : (vf[0].r.h.flags & CAPIDX_F_SEED) ? vf[0].r.h.seed : 0;
	block = malloc(vf[0].r.h.block_size);
	if (!block) {
		msg("out of memory");
		goto out;
	}
	/* One stripe alone has the others' blocks missing by design; with
	 * every stripe (or none), a gap in seq that no record's lost
	 * explains is blocks of the stream in none of these files. */
	whole = !stripes || stripes == (vf[0].r.h.stripe_count >= 64 ? ~0ull :
					 (1ull << vf[0].r.h.stripe_count) - 1);

	for (;;) {
		struct vfile *f = NULL;
		const struct capidx_rec *e;
		struct fpgastream_record r;
		int err;

		for (unsigned int i = 0; i < nfiles; i++)
			if (vf[i].have && (!f || vf[i].cur.seq < f->cur.seq))
				f = &vf[i];
		if (!f)
			break;
		e = &f->cur;
		r = (struct fpgastream_record){
			.data = block, .seq = e->seq, .offset = e->offset, .length = e->length,
			.flags = e->flags, .lost = e->lost, .timestamp_ns = e->timestamp_ns,
		};
		if (e->lost) {
			if (lines++ < MAX_REPORTS)
				msg("%s: %" PRIu64 " blocks lost before seq %" PRIu64 " (data offset %" PRIu64 ")",
				    f->path, e->lost, e->seq, e->offset);
			res.lost += e->lost;
		}
		if (have_prev && e->seq == prev_seq) {
			msg("%s: seq %" PRIu64 " is indexed twice", f->path, e->seq);
			res.bad++;
			goto next;
		}
		/* A damaged index may go back: the gap below would wrap. */
		if (have_prev && e->seq < prev_seq) {
			msg("%s: seq %" PRIu64 " is indexed after seq %" PRIu64 ": out of order",
			    f->path, e->seq, prev_seq);
			res.bad++;
			goto next;
		}
		if (whole && have_prev && e->seq - prev_seq - 1 > e->lost) {
			uint64_t gap = e->seq - prev_seq - 1 - e->lost;

			msg("%s: %" PRIu64 " blocks before seq %" PRIu64 " are in none of the files given (a file of the rotation, or a stripe, left out?)",
			    f->path, gap, e->seq);
			res.missing += gap;
		}
		prev_seq = e->seq;
		have_prev = true;
		if (e->length != f->r.h.block_size)
			goto next;	/* said by vfile_advance() */
		err = read_at(f->fd, block, e->length, e->offset);
		if (err) {
			msg("%s: the index names data at offset %" PRIu64 " beyond the end of the file (%s)",
			    f->path, e->offset, err < 0 ? strerror(-err) : "missing");
			res.bad++;
			goto next;
		}
		if (e->flags & CAPIDX_F_CLOBBERED) {
			/* The board may have written over it: unless it is
			 * exactly the block its record names (no tolerance
			 * for drops seen a record early or late), it is bad,
			 * and its contents (a newer block, or parts of one)
			 * say nothing of the sequence. */
			struct verifier saved = v;

			res.clobbered++;
			verify_record(&v, &r);
			if (v.bad > saved.bad || v.misplaced > saved.misplaced || v.seen > saved.seen) {
				unsigned int said = v.lines;

				v = saved;
				v.lines = said;
				res.clobbered_bad++;
				res.bad++;
			}
		} else {
			verify_record(&v, &r);
		}
		if (!res.blocks)
			res.first = le64toh(*(uint64_t *)block);
		res.last = le64toh(*(uint64_t *)block);
		res.blocks++;
next:
		if (vfile_advance(f, &res))
			goto out;
	}
	if (res.clobbered)
		msg("note: %s: %" PRIu64 " blocks are flagged as written over by the board before their write was done (overwrite mode); %" PRIu64 " of them do not verify",
		    files[0], res.clobbered, res.clobbered_bad);
	for (unsigned int i = 0; i < nfiles; i++) {
		vfile_done(&vf[i], &res);
		if (vf[i].r.has_end && vf[i].r.end.lost > driver_dropped)
			driver_dropped = vf[i].r.end.lost;
	}
	res.bad += v.bad;
	/* Drops the data shows that no record reported: the driver's final
	 * count (in the end record) is the bound, as in capture --verify. */
	if (v.seen > (driver_dropped > v.reported ? driver_dropped : v.reported)) {
		msg("%s: the data shows %" PRIu64 " blocks dropped at the source that no record reported",
		    files[0], v.seen - v.reported);
		res.bad++;
	}
	if (res.blocks == 0 && !res.bad) {
		msg("%s: empty", files[0]);
		if (json)
			print_result(&res, json);
		rc = EX_LOSS;
		goto out;
	}
	rc = print_result(&res, json);
	if (!rc)
		rc = res.lost || res.bad || res.missing ? EX_LOSS : EX_GOOD;
out:
	for (unsigned int i = 0; i < nfiles; i++) {
		if (vf[i].fd >= 0)
			close(vf[i].fd);
		capidx_close(&vf[i].r);
	}
	free(vf);
	free(block);
	return rc;
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
				if (fd != STDIN_FILENO)
					close(fd);
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
	const char *index = NULL;
	char (*idxbuf)[PATH_MAX];
	const char **idx;
	unsigned int nfiles;
	int c, rc;

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
	if (argc == optind)
		return usage_error("no FILE given");
	nfiles = (unsigned int)(argc - optind);
	if (index && no_index)
		return usage_error("--index and --no-index exclude each other");
	if (index && nfiles > 1)
		return usage_error("--index names the index of one FILE");
	if (nfiles > 1 && no_index)
		return usage_error("several FILEs are merged through their indexes: not with --no-index");
	for (unsigned int i = 0; i < nfiles; i++)
		if (!strcmp(argv[optind + i], "-") && (index || nfiles > 1))
			return usage_error("standard input is read alone, without an index");
	if (index)
		return verify_indexed((const char *const *)argv + optind, &index, 1, seed_given, seed, json);

	idxbuf = calloc(nfiles, sizeof(*idxbuf));
	idx = calloc(nfiles, sizeof(*idx));
	if (!idxbuf || !idx) {
		free(idxbuf);
		free(idx);
		msg("out of memory");
		return EX_RUNTIME;
	}
	for (unsigned int i = 0; i < nfiles; i++) {
		capidx_path(argv[optind + i], idxbuf[i], sizeof(idxbuf[i]));
		idx[i] = idxbuf[i];
	}
	if (nfiles == 1 && (no_index || !strcmp(argv[optind], "-") || access(idx[0], F_OK))) {
		rc = verify_plain(argv[optind], seed, json);
	} else {
		for (unsigned int i = 0; i < nfiles; i++) {
			if (access(idx[i], F_OK)) {
				msg("%s: no index %s: several FILEs are merged through their indexes",
				    argv[optind + i], idx[i]);
				free(idxbuf);
				free(idx);
				return EX_RUNTIME;
			}
		}
		rc = verify_indexed((const char *const *)argv + optind, idx, nfiles, seed_given, seed, json);
	}
	free(idxbuf);
	free(idx);
	return rc;
}
