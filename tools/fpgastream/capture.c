// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream capture: stream a board into a buffer and write the blocks,
 * in stream order, straight from the buffer to files with an index beside
 * each (docs/capture-format.md).  In four parts: the options
 * (capture_args), setting up (the buffer on the board's NUMA node, the
 * header every index shares), the stream loop (capture_run: records in,
 * writes out through capwrite.c, blocks back to the board once written,
 * status lines) and the summary (capture_summary, as text and JSON).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <numa.h>

#include "capwrite.h"
#include "common.h"
#include "pattern.h"

static const char capture_help[] =
"usage: fpgastream capture [-d DEV] [-b BUFSIZE] [-n BLOCKS | -s BYTES | -t DURATION]\n"
"                          [-o FILE|- [-o FILE...]] [--force]\n"
"                          [-C SIZE] [-G DURATION] [-W N] [--overwrite]\n"
"                          [--hugepages 2M|1G|none] [--numa N|none]\n"
"                          [--verify[=SEED]] [--seed SEED] [--sync DURATION]\n"
"                          [--status-interval DURATION] [-J] [-q] ...\n"
"\n"
"Stream a board into a buffer and write the blocks, in stream order, straight\n"
"from the buffer to FILE (- for standard output; default: write nothing), with\n"
"an index FILE.idx beside a regular file (docs/capture-format.md; see\n"
"'fpgastream inspect').\n"
"\n"
HELP_DEVICE
"  -b, --buffer SIZE      buffer size (default 64M, at most the board's maximum)\n"
"  -n, --blocks N         stop after N blocks\n"
"  -s, --size BYTES       stop after BYTES (rounded up to whole 64 KiB blocks)\n"
"  -t, --time DURATION    stop after DURATION: seconds, or 90s, 5m, 2h\n"
"                         (none of them: run until Ctrl-C, SIGTERM, SIGHUP or end\n"
"                         of stream)\n"
"  -o, --output FILE      write the blocks to FILE, or - for standard output;\n"
"                         several -o stripe the blocks over the files\n"
"      --force            overwrite FILE (and FILE.idx) if it exists\n"
"      --index FILE       write the index to FILE (one output, no rotation)\n"
"      --no-index         write no index\n"
"  -C, --file-size SIZE   start a new file (FILE.0, FILE.1, ...) before one\n"
"                         would grow beyond SIZE\n"
"  -G, --file-time DURATION  ... or when a file is DURATION old\n"
"  -W, --files N          with -C: keep N files, reusing the oldest; with -G\n"
"                         alone: stop after N files\n"
"      --overwrite        overwrite mode: the board never waits, unread blocks are\n"
"                         lost (and reported); default is flow control (lossless\n"
"                         to the host; the source may still drop if the host stalls)\n"
"      --hugepages SIZE   page size of the buffer: 2M (default; falls back to 4 KiB\n"
"                         pages), 1G (falls back to 2M, then 4 KiB), or none (4 KiB\n"
"                         pages, which work only behind an IOMMU)\n"
"      --numa N|none      put the buffer on NUMA node N (default: the board's)\n"
"      --verify[=SEED]    check every block against the reference device's pattern\n"
"                         with SEED (default 0: the tool never reads the device's\n"
"                         seed) and the sequence\n"
"      --seed SEED        the device's seed, for the index header (--verify=SEED\n"
"                         gives it too)\n"
"      --sync DURATION    fdatasync the files and extend the index this often\n"
"                         (default 1s); an index entry never names unsynced data\n"
"      --depth N          writes in flight (default 32)\n"
"      --no-direct        write through the page cache, not with O_DIRECT\n"
"      --no-uring         write synchronously, not through io_uring\n"
"      --status-interval DURATION  when standard error is not a terminal, a\n"
"                         key=value status line this often (default 10s; 0: none)\n"
"      --coalesce N       interrupt after N blocks (default 8)\n"
"      --coalesce-usec US ... or when the oldest block waited US microseconds\n"
"                         (default 1000)\n"
HELP_JSON
"  -q, --quiet            no progress or status lines, no report of the outputs\n"
"\n"
HELP_SIZES
"A summary goes to standard error at the end, also after Ctrl-C, SIGTERM or\n"
"SIGHUP; SIGUSR1 prints the status at once.\n"
"Exit status: 0 all good; 1 blocks were lost or did not verify, or the stream\n"
"ended early; 2 usage error; 3 runtime error (no board, permission, memory,\n"
"hugepages, locked-memory limit, board fault); 4 the output filled up\n"
"(ENOSPC); 5 a write or sync failed (EIO...); 6 a write wrote nothing;\n"
"7 the output exists (see --force).\n";

/* What the command line asked for. */
struct capture_opts {
	const char *dev;
	struct cw_opts w;
	uint64_t bufsize;
	unsigned int aflags;	/* FPGASTREAM_ALLOC_* */
	uint64_t limit;		/* blocks; UINT64_MAX: no limit */
	double seconds;		/* 0: no limit */
	bool overwrite, quiet, verify, json, seed_known;
	uint64_t seed;
	uint64_t coal, coal_us;
	double status_s;
	int numa;		/* -1: the board's; -2: none */
};

/* A capture under way. */
struct capture {
	const struct capture_opts *o;
	struct fpgastream *h;
	struct fpgastream_map m;
	struct capwriter *w;
	struct verifier v;
	uint64_t discarded;	/* drained after stop, not written */
	bool progress, eos, files_done;
	int board_err;		/* the board failed: its errno */
	double t0, t1, last_progress, last_status;
	uint64_t last_status_bytes;
	char classdir[PATH_MAX];
};

static volatile sig_atomic_t stop_signal;	/* the signal that stops us */
static volatile sig_atomic_t status_requested;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static void on_status(int sig)
{
	(void)sig;
	status_requested = 1;
}

static const char *signame(int sig)
{
	switch (sig) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGHUP: return "SIGHUP";
	default: return "a signal";
	}
}

/* ---- options ---- */

/* 0, -1 after --help, or EX_USAGE. */
static int capture_args(int argc, char **argv, struct capture_opts *o)
{
	enum { O_OVERWRITE = 256, O_VERIFY, O_COAL, O_COAL_US, O_FORCE, O_INDEX, O_NO_INDEX,
	       O_SEED, O_SYNC_EVERY, O_DEPTH, O_NO_DIRECT, O_NO_URING, O_STATUS, O_NUMA };
	static const struct option opts[] = {
		OPT_DEVICE,
		OPT_BUFFER,
		{ "blocks", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		OPT_TIME,
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, O_FORCE },
		{ "index", required_argument, NULL, O_INDEX },
		{ "no-index", no_argument, NULL, O_NO_INDEX },
		{ "file-size", required_argument, NULL, 'C' },
		{ "file-time", required_argument, NULL, 'G' },
		{ "files", required_argument, NULL, 'W' },
		{ "overwrite", no_argument, NULL, O_OVERWRITE },
		OPT_HUGEPAGES,
		{ "numa", required_argument, NULL, O_NUMA },
		{ "verify", optional_argument, NULL, O_VERIFY },
		{ "seed", required_argument, NULL, O_SEED },
		{ "sync", required_argument, NULL, O_SYNC_EVERY },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "no-direct", no_argument, NULL, O_NO_DIRECT },
		{ "no-uring", no_argument, NULL, O_NO_URING },
		{ "status-interval", required_argument, NULL, O_STATUS },
		{ "coalesce", required_argument, NULL, O_COAL },
		{ "coalesce-usec", required_argument, NULL, O_COAL_US },
		OPT_JSON,
		{ "quiet", no_argument, NULL, 'q' },
		OPT_HELP,
		{ 0 }
	};
	uint64_t bytes, v;
	int limits = 0, c;
	bool stdout_out = false;

	*o = (struct capture_opts){
		.bufsize = 64ull << 20, .limit = UINT64_MAX, .coal = 8, .coal_us = 1000,
		.status_s = 10, .numa = -1,
		.w = { .depth = 32, .sync_s = 1 },
	};
	while ((c = getopt_long(argc, argv, "d:b:n:s:t:o:C:G:W:Jqh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (set_device(&o->dev, optarg))
				return EX_USAGE;
			break;
		case 'b':
			if (arg_buffer("-b", optarg, &o->bufsize))
				return EX_USAGE;
			break;
		case 'n':
			if (arg_number("-n", optarg, 1, UINT64_MAX - 1, &o->limit))
				return EX_USAGE;
			limits++;
			break;
		case 's':
			if (arg_size("-s", optarg, &bytes))
				return EX_USAGE;
			if (bytes == 0)
				return usage_error("-s: at least one byte");
			o->limit = bytes / BLOCK_SIZE + !!(bytes % BLOCK_SIZE);
			limits++;
			break;
		case 't':
			if (arg_duration("-t", optarg, &o->seconds))
				return EX_USAGE;
			limits++;
			break;
		case 'o':
			if (o->w.noutputs == CW_MAX_OUTPUTS)
				return usage_error("-o: at most %d outputs", CW_MAX_OUTPUTS);
			if (!*optarg)
				return usage_error("-o: an empty file name");
			stdout_out |= !strcmp(optarg, "-");
			o->w.outputs[o->w.noutputs++] = optarg;
			break;
		case O_FORCE: o->w.force = true; break;
		case O_INDEX: o->w.index = optarg; break;
		case O_NO_INDEX: o->w.no_index = true; break;
		case 'C':
			if (arg_size("-C", optarg, &o->w.rotate_size))
				return EX_USAGE;
			if (o->w.rotate_size < BLOCK_SIZE)
				return usage_error("-C: at least one 64 KiB block, not %s", optarg);
			break;
		case 'G':
			if (arg_duration("-G", optarg, &o->w.rotate_s))
				return EX_USAGE;
			break;
		case 'W':
			if (arg_number("-W", optarg, 1, 1000000, &v))
				return EX_USAGE;
			o->w.rotate_files = (unsigned int)v;
			break;
		case O_OVERWRITE: o->overwrite = true; break;
		case 'H':
			if (page_flags(optarg, &o->aflags))
				return EX_USAGE;
			break;
		case O_NUMA:
			if (!strcmp(optarg, "none")) {
				o->numa = -2;
				break;
			}
			if (arg_number("--numa", optarg, 0, 1023, &v))
				return EX_USAGE;
			o->numa = (int)v;
			break;
		case O_VERIFY:
			o->verify = true;
			if (optarg && arg_number("--verify", optarg, 0, UINT64_MAX, &o->seed))
				return EX_USAGE;
			o->seed_known |= optarg != NULL;
			break;
		case O_SEED:
			if (arg_number("--seed", optarg, 0, UINT64_MAX, &v))
				return EX_USAGE;
			if (o->seed_known && v != o->seed)
				return usage_error("--seed %s and --verify=%" PRIu64 " disagree", optarg, o->seed);
			o->seed = v;
			o->seed_known = true;
			break;
		case O_SYNC_EVERY:
			if (!strcmp(optarg, "0")) {
				o->w.sync_s = 0;
				break;
			}
			if (arg_duration("--sync", optarg, &o->w.sync_s))
				return EX_USAGE;
			break;
		case O_DEPTH:
			if (arg_number("--depth", optarg, 1, 1024, &v))
				return EX_USAGE;
			o->w.depth = (unsigned int)v;
			break;
		case O_NO_DIRECT: o->w.no_direct = true; break;
		case O_NO_URING: o->w.no_uring = true; break;
		case O_STATUS:
			if (!strcmp(optarg, "0")) {
				o->status_s = 0;
				break;
			}
			if (arg_duration("--status-interval", optarg, &o->status_s))
				return EX_USAGE;
			break;
		case O_COAL:
			if (arg_number("--coalesce", optarg, 0, UINT32_MAX, &o->coal))
				return EX_USAGE;
			break;
		case O_COAL_US:
			if (arg_number("--coalesce-usec", optarg, 0, UINT32_MAX, &o->coal_us))
				return EX_USAGE;
			break;
		case 'J': o->json = true; break;
		case 'q': o->quiet = true; break;
		case 'h':
			fputs(capture_help, stdout);
			return -1;
		default:
			return bad_option(argv);
		}
	}
	o->w.quiet = o->quiet;
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (limits > 1)
		return usage_error("-n, -s and -t exclude each other");
	if (stdout_out && o->json)
		return usage_error("-o - and --json both want standard output");
	if (stdout_out && o->w.noutputs > 1)
		return usage_error("-o - cannot be striped with other outputs");
	for (unsigned int i = 0; i < o->w.noutputs; i++)
		for (unsigned int j = 0; j < i; j++)
			if (!strcmp(o->w.outputs[i], o->w.outputs[j]))
				return usage_error("-o %s is given twice", o->w.outputs[i]);
	if ((o->w.rotate_size || o->w.rotate_s > 0) && (o->w.noutputs != 1 || stdout_out))
		return usage_error("-C and -G rotate one -o FILE");
	if (o->w.rotate_files && !o->w.rotate_size && !(o->w.rotate_s > 0))
		return usage_error("-W goes with -C or -G");
	if (o->w.index && (o->w.noutputs != 1 || o->w.rotate_size || o->w.rotate_s > 0))
		return usage_error("--index names the index of one output, without rotation");
	if (o->w.index && o->w.no_index)
		return usage_error("--index and --no-index exclude each other");
	return 0;
}

/* ---- setting up ---- */

/*
 * Put the buffer on a NUMA node: the board's (sysfs numa_node) unless
 * --numa says otherwise.  The library allocates (and populates hugepages)
 * in fpgastream_buffer_alloc() and pins 4 KiB pages at map time, so the
 * process's policy is set to prefer the node around both; preferred, not
 * bound, so that a full node falls back instead of failing.
 */
static int numa_want(const struct capture_opts *o, const char *classdir)
{
	int node = o->numa;

	if (node == -2)
		return -1;
	if (node == -1)
		node = numa_node(classdir);
	if (node < 0)
		return -1;
	if (numa_available() < 0) {
		if (o->numa >= 0)
			msg("note: --numa %d: this kernel has no NUMA: ignored", o->numa);
		return -1;
	}
	if (node > numa_max_node()) {
		msg("note: NUMA node %d does not exist (the highest is %d): ignored", node, numa_max_node());
		return -1;
	}
	return node;
}

/* The node the buffer's first page is on, or -1. */
static int buffer_node(void *addr)
{
	int status = -1;

	if (numa_available() < 0 || numa_move_pages(0, 1, &addr, NULL, &status, 0))
		return -1;
	return status;
}

static void header_template(struct capture *c, struct capidx_header *h)
{
	const struct capture_opts *o = c->o;
	struct fpgastream_info info;
	struct timespec rt, mono;
	const char *slash;

	memset(h, 0, sizeof(*h));
	fpgastream_info(c->h, &info);
	h->block_size = info.block_size ? info.block_size : BLOCK_SIZE;
	h->hw_version = info.hw_version;
	h->flags = (o->seed_known ? CAPIDX_F_SEED : 0) | (o->overwrite ? CAPIDX_F_OVERWRITE : 0);
	h->seed = o->seed_known ? o->seed : 0;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	h->start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
	h->start_monotonic_ns = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
	slash = strrchr(c->classdir, '/');
	snprintf(h->board, sizeof(h->board), "%.31s", slash ? slash + 1 : c->classdir);
	pci_addr(c->classdir, h->pci, sizeof(h->pci));
	snprintf(h->tool, sizeof(h->tool), "fpgastream %s", FPGASTREAM_LIB_VERSION);
}

/* ---- the stream ---- */

/* For cw_watch_board(): how far the board has got. */
static int board_completed(void *ctx, uint64_t *completed)
{
	struct fpgastream_stats st;
	int err = fpgastream_stats(ctx, &st);

	if (!err)	/* st is not filled in on failure */
		*completed = st.blocks_completed;
	return err;
}

/* Blocks the board has filled and not had back, as a share of the ring. */
static unsigned int ring_fill(struct capture *c)
{
	struct fpgastream_stats st;
	uint64_t held;

	if (!c->m.nr_blocks || fpgastream_stats(c->h, &st))
		return 0;
	held = st.blocks_completed - st.blocks_released;
	if (held > c->m.nr_blocks)
		held = c->m.nr_blocks;
	return (unsigned int)(held * 100 / c->m.nr_blocks);
}

/* End the progress line before a message. */
static void end_progress(struct capture *c)
{
	if (c->progress && c->last_progress > c->t0) {
		fputc('\n', stderr);
		c->last_progress = c->t0;
	}
}

/*
 * The status: on a terminal a progress line rewritten in place; else (and
 * on SIGUSR1) one line of key=value pairs, which journald and grep take
 * as they are.
 */
static void show_status(struct capture *c, bool line)
{
	double t = now_s(), dt = t - c->t0, since = t - c->last_status;
	struct cw_counts k;
	char b1[32], b2[32], b3[32];
	uint64_t rate, avg;

	cw_counts(c->w, &k);
	avg = dt > 0 ? (uint64_t)(k.bytes / dt) : 0;
	rate = since > 0 ? (uint64_t)((k.bytes - c->last_status_bytes) / since) : 0;
	if (line) {
		end_progress(c);
		msg("status elapsed=%.1fs blocks=%" PRIu64 " bytes=%" PRIu64 " rate=%" PRIu64 "B/s avg=%" PRIu64 "B/s ring=%u%% lost=%" PRIu64 " files=%u",
		    dt, k.blocks, k.bytes, rate, avg, ring_fill(c), k.lost, k.files);
	} else {
		fprintf(stderr, "\r%.1f s  %s  %s/s (avg %s/s)  ring %u%%  %" PRIu64 " lost\033[K",
			dt, human(k.bytes, b1, sizeof(b1)), human(rate, b2, sizeof(b2)),
			human(avg, b3, sizeof(b3)), ring_fill(c), k.lost);
		c->last_progress = t;
	}
	c->last_status = t;
	c->last_status_bytes = k.bytes;
}

static void maybe_status(struct capture *c)
{
	double t = now_s();

	if (status_requested) {
		status_requested = 0;
		show_status(c, true);
	} else if (c->o->quiet) {
		return;
	} else if (c->progress) {
		if (t - c->last_progress >= 0.5)
			show_status(c, false);
	} else if (c->o->status_s > 0 && t - c->last_status >= c->o->status_s) {
		show_status(c, true);
	}
}

/* Hand one batch to the writer; false when the capture must stop. */
static bool capture_batch(struct capture *c, struct fpgastream_record *r, int n)
{
	const struct capture_opts *o = c->o;
	bool go_on = true;

	for (int i = 0; i < n; i++) {
		bool write = go_on && cw_queued(c->w) < o->limit;
		int err;

		if (write && o->verify)
			verify_record(&c->v, &r[i]);
		err = cw_add(c->w, &r[i], write);
		if (err == 1)
			c->files_done = true;
		if (err)
			go_on = false;
	}
	cw_flush(c->w);
	return go_on;
}

static int give_back(struct capture *c)
{
	uint64_t n = cw_take_done(c->w);

	if (n && fpgastream_release(c->h, n)) {
		end_progress(c);
		msg("%s", fpgastream_last_error(c->h));
		return EX_RUNTIME;
	}
	return EX_GOOD;
}

/* Stream until a limit, a signal, the end of the stream or an error;
 * finish the writes; stop the board and drain what it filled.
 * EX_GOOD or EX_RUNTIME (the writer's errors are cw_close()'s). */
static int capture_run(struct capture *c)
{
	const struct capture_opts *o = c->o;
	struct fpgastream_record recs[256];
	double deadline = o->seconds > 0 ? c->t0 + o->seconds : 0;
	int rc = EX_GOOD, n;

	while (!stop_signal) {
		struct pollfd pfd[2];
		int timeout = 250, npfd = 0;
		bool want_blocks = cw_queued(c->w) < o->limit;
		double t = now_s();

		if (cw_failed(c->w) || (!want_blocks && !cw_busy(c->w)))
			break;
		if (deadline) {
			if (t >= deadline)
				break;
			if ((deadline - t) * 1000 < timeout)
				timeout = (int)((deadline - t) * 1000) + 1;
		}
		timeout = cw_timeout_ms(c->w, timeout);
		if (want_blocks)
			pfd[npfd++] = (struct pollfd){ .fd = fpgastream_fd(c->h), .events = POLLIN };
		if (cw_pollfd(c->w) >= 0 && cw_busy(c->w))
			pfd[npfd++] = (struct pollfd){ .fd = cw_pollfd(c->w), .events = POLLIN };
		if (poll(pfd, npfd, timeout) < 0 && errno != EINTR) {
			msg("poll: %s", strerror(errno));
			rc = EX_RUNTIME;
			break;
		}
		if (want_blocks && pfd[0].revents) {
			n = fpgastream_wait(c->h, recs, 256, 0);
			if (n == -ENODATA) {
				c->eos = true;
				break;
			}
			if (n < 0 && n != -EINTR) {
				end_progress(c);
				msg("%s", fpgastream_last_error(c->h));
				c->board_err = -n;
				rc = EX_RUNTIME;
				break;
			}
			if (n > 0 && !capture_batch(c, recs, n)) {
				cw_reap(c->w, false);
				give_back(c);
				break;
			}
		}
		cw_reap(c->w, false);
		cw_poll(c->w);
		if (give_back(c)) {
			rc = EX_RUNTIME;
			break;
		}
		cw_tick(c->w, now_s());
		maybe_status(c);
	}
	/* What was handed to the writer is written (or fails) and counted. */
	cw_drain(c->w);
	if (give_back(c))
		rc = EX_RUNTIME;
	c->t1 = now_s();

	if (!c->eos && !c->board_err) {
		int err = fpgastream_stop(c->h);

		if (err) {
			msg("%s", fpgastream_last_error(c->h));
			return EX_RUNTIME;
		}
		/* What the board filled before it stopped: give it back. */
		for (int tries = 0; tries < 20; tries++) {
			n = fpgastream_wait(c->h, recs, 256, 100);
			if (n == -EINTR || n == 0)
				continue;
			if (n < 0)
				break;
			c->discarded += n;
			fpgastream_release(c->h, n);
		}
	}
	return rc;
}

/* Close the writer and print the summary; @rc is what the run returned,
 * the result is the exit status. */
static int capture_summary(struct capture *c, int rc)
{
	const struct capture_opts *o = c->o;
	struct fpgastream_stats st;
	struct cw_counts k;
	enum capidx_reason reason = CAPIDX_DONE;
	enum cw_error werr;
	double dt = c->t1 - c->t0;
	char b1[32], b2[32];
	const char *stopped = "limit";
	struct out_kv *j;

	if (fpgastream_stats(c->h, &st))
		memset(&st, 0, sizeof(st));
	if (stop_signal)
		reason = CAPIDX_SIGNAL;
	if (c->board_err)
		reason = CAPIDX_BOARD;
	werr = cw_close(c->w, reason, st.blocks_dropped);
	cw_counts(c->w, &k);
	if (!o->quiet && c->progress)
		show_status(c, false);
	end_progress(c);
	msg("captured %" PRIu64 " blocks (%s) in %.2f s: %s/s%s%s%s%s",
	    k.blocks, human(k.bytes, b1, sizeof(b1)), dt,
	    human(dt > 0 ? (uint64_t)(k.bytes / dt) : 0, b2, sizeof(b2)),
	    stop_signal ? ", stopped by signal " : "", stop_signal ? signame(stop_signal) : "",
	    c->eos ? ", end of stream" : "",
	    c->files_done ? ", the last file (-W) is full" : "");
	if (k.files > 1)
		msg("into %u files", k.files);
	msg("lost %" PRIu64 " blocks (driver: %" PRIu64 " overwritten, %" PRIu64 " dropped at the source)%s",
	    k.lost, (uint64_t)st.blocks_overwritten, (uint64_t)st.blocks_dropped,
	    o->overwrite ? "; overwrite mode" : "");
	if (k.clobbered)
		msg("%" PRIu64 " blocks may hold data the board wrote over them before their write was done (overwrite mode, the writer a ring behind): flagged in the index",
		    k.clobbered);
	if (o->verify)
		verify_done(&c->v, st.blocks_dropped);

	if (werr != CW_OK) {
		msg("stopped: %s; what reached the output is counted above", k.where);
		rc = werr == CW_FULL ? EX_FULL : werr == CW_SHORT ? EX_SHORT :
		     werr == CW_OPEN ? (k.err == EEXIST ? EX_EXISTS : EX_RUNTIME) : EX_IOERR;
		stopped = "output error";
	} else if (rc != EX_GOOD) {
		stopped = "error";
	} else if (stop_signal) {
		stopped = "signal";
	} else if (c->eos) {
		stopped = "end of stream";
	} else if (c->files_done) {
		stopped = "files";
	}
	if (rc == EX_GOOD && (k.lost || k.clobbered || (o->verify && c->v.bad)))
		rc = EX_LOSS;
	if (rc == EX_GOOD && o->limit != UINT64_MAX && k.blocks < o->limit && !stop_signal &&
	    !c->files_done) {
		msg("the stream ended after %" PRIu64 " of %" PRIu64 " blocks", k.blocks, o->limit);
		rc = EX_LOSS;
	}
	if (!o->json)
		return rc;
	j = kv_new("capture", true);
	if (!j)
		return rc == EX_GOOD ? EX_RUNTIME : rc;
	kv_json(j, "device", OUT_STR, fpgastream_path(c->h));
	kv(j, "blocks", OUT_NUM, NULL, "%" PRIu64, k.blocks);
	kv(j, "bytes", OUT_NUM, NULL, "%" PRIu64, k.bytes);
	kv(j, "lost", OUT_NUM, NULL, "%" PRIu64, k.lost);
	kv(j, "clobbered", OUT_NUM, NULL, "%" PRIu64, k.clobbered);
	kv(j, "elapsed_ms", OUT_NUM, NULL, "%" PRIu64, (uint64_t)(dt * 1000));
	kv(j, "bytes_per_second", OUT_NUM, NULL, "%" PRIu64, dt > 0 ? (uint64_t)(k.bytes / dt) : 0);
	kv(j, "overwritten", OUT_NUM, NULL, "%" PRIu64, (uint64_t)st.blocks_overwritten);
	kv(j, "dropped", OUT_NUM, NULL, "%" PRIu64, (uint64_t)st.blocks_dropped);
	kv(j, "files", OUT_NUM, NULL, "%u", k.files);
	kv_json(j, "stopped_by", OUT_STR, stopped);
	kv_json(j, "signal", OUT_STR, stop_signal ? signame(stop_signal) : NULL);
	kv_json(j, "error", OUT_STR, werr != CW_OK ? k.where : NULL);
	if (o->verify) {
		kv(j, "verified", OUT_NUM, NULL, "%" PRIu64, c->v.blocks);
		kv(j, "bad", OUT_NUM, NULL, "%" PRIu64, c->v.bad);
	} else {
		kv_json(j, "verified", OUT_NUM, NULL);
		kv_json(j, "bad", OUT_NUM, NULL);
	}
	kv(j, "exit_status", OUT_NUM, NULL, "%d", rc);
	if (kv_print(j) && rc == EX_GOOD)
		rc = EX_RUNTIME;
	return rc;
}

int do_capture(int argc, char **argv)
{
	struct capture_opts o;
	struct capture cap = { .o = &o };
	struct fpgastream_buffer buf;
	struct fpgastream_info info;
	struct capidx_header tmpl;
	struct sigaction sa;
	char b1[32];
	int rc = capture_args(argc, argv, &o), node, got;

	if (rc)
		return rc < 0 ? EX_GOOD : rc;
	cap.v.seed = o.seed;
	/* Refuse an existing file before the board is touched: a missing
	 * board, or one that fails, then leaves it as it was. */
	rc = cw_check(&o.w);
	if (rc)
		return rc;
	if (open_dev(o.dev, &cap.h))
		return EX_RUNTIME;
	board_classdir(cap.h, cap.classdir, sizeof(cap.classdir));
	fpgastream_info(cap.h, &info);
	if (o.bufsize > info.max_buffer_size) {
		msg("note: the board takes at most %s: using that",
		    human(info.max_buffer_size, b1, sizeof(b1)));
		o.bufsize = info.max_buffer_size;
	}
	/* Ctrl-C, SIGTERM and SIGHUP stop cleanly; a second one kills as
	 * usual.  SIGUSR1 asks for the status.
	 * Before the buffer: filling hugepages takes seconds, and a SIGUSR1
	 * then must not kill the process. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_status;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	node = numa_want(&o, cap.classdir);
	if (node >= 0)
		numa_set_preferred(node);
	rc = setup_buffer(cap.h, o.bufsize, o.aflags, &buf, &cap.m, o.quiet);
	if (node >= 0)
		numa_set_localalloc();
	if (rc) {
		fpgastream_close(cap.h);
		return EX_RUNTIME;
	}
	got = node >= 0 ? buffer_node(buf.base) : -1;
	if (node >= 0 && got >= 0 && got != node)
		msg("note: NUMA node %d is full: the buffer is on node %d", node, got);
	else if (node >= 0 && !o.quiet)
		msg("buffer on NUMA node %d (%s)", node, o.numa >= 0 ? "--numa" : "the board's");

	cap.progress = !o.quiet && isatty(STDERR_FILENO);

	/* io_uring and its registration of the buffer before the start, so
	 * that the board (in overwrite mode not waiting) is not kept waiting
	 * for them; the outputs only after it: a board that cannot start
	 * leaves them be. */
	if (cw_new(&cap.w, &o.w, buf.base, buf.length, info.block_size)) {
		rc = EX_RUNTIME;
		goto out;
	}
	rc = fpgastream_start(cap.h, o.overwrite ? 0 : FPGASTREAM_START_FLOW_CONTROL,
			      (unsigned)o.coal, (unsigned)o.coal_us);
	if (rc) {
		msg("%s", fpgastream_last_error(cap.h));
		cw_close(cap.w, CAPIDX_BOARD, 0);
		rc = EX_RUNTIME;
		goto out;
	}
	header_template(&cap, &tmpl);
	rc = cw_open_files(cap.w, &tmpl);
	if (rc) {
		cw_close(cap.w, CAPIDX_IOERR, 0);
		fpgastream_stop(cap.h);
		/* A file made since cw_check() looked: the man page's 7. */
		rc = rc == -EEXIST ? EX_EXISTS : EX_RUNTIME;
		goto out;
	}
	/* The driver learns of a completed block within the coalescing time
	 * or 10 ms (the user ABI's bound), whichever is longer; twice that,
	 * for a busy machine. */
	if (o.overwrite)
		cw_watch_board(cap.w, board_completed, cap.h, cap.m.nr_blocks,
			       2 * (o.coal_us > 10000 ? o.coal_us / 1e6 : 0.010));
	cap.t0 = cap.last_progress = cap.last_status = now_s();
	rc = capture_run(&cap);
	rc = capture_summary(&cap, rc);
out:
	if (fpgastream_unmap(cap.h)) {
		msg("%s", fpgastream_last_error(cap.h));
		rc = rc ? rc : EX_RUNTIME;
	}
	fpgastream_buffer_free(&buf);
	fpgastream_close(cap.h);
	cw_free(cap.w);
	return rc;
}
