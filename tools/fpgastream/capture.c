// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream capture: stream a board into a buffer and write the blocks,
 * in stream order, straight from the buffer to a file.  In four parts:
 * the options (capture_args), the output (out_*), the stream loop
 * (capture_batch, capture_run) and the summary (capture_summary).  A file
 * format, other writers or rotation belong in files of their own beside
 * this one, behind the out_* functions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "pattern.h"

static const char capture_help[] =
"usage: fpgastream capture [-d DEV] [-b BUFSIZE] [-n BLOCKS | -s BYTES | -t DURATION]\n"
"                          [-o FILE|-] [--overwrite] [--hugepages 2M|1G|none]\n"
"                          [--verify[=SEED]] [--coalesce N] [--coalesce-usec US] [-q]\n"
"\n"
"Stream a board into a buffer and write the blocks, in stream order, straight\n"
"from the buffer to FILE (- for standard output; default: write nothing).\n"
"\n"
HELP_DEVICE
"  -b, --buffer SIZE      buffer size (default 64M, at most the board's maximum)\n"
"  -n, --blocks N         stop after N blocks\n"
"  -s, --size BYTES       stop after BYTES (rounded up to whole 64 KiB blocks)\n"
"  -t, --time DURATION    stop after DURATION: seconds, or 90s, 5m, 2h\n"
"                         (none of them: run until Ctrl-C, SIGTERM or end of stream)\n"
"  -o, --output FILE      write the blocks to FILE, or - for standard output\n"
"      --overwrite        overwrite mode: the board never waits, unread blocks are\n"
"                         lost (and reported); default is flow control (lossless\n"
"                         to the host; the source may still drop if the host stalls)\n"
"      --hugepages SIZE   page size of the buffer: 2M (default; falls back to 4 KiB\n"
"                         pages), 1G (falls back to 2M, then 4 KiB), or none (4 KiB\n"
"                         pages, which work only behind an IOMMU)\n"
"      --verify[=SEED]    check every block against the reference device's pattern\n"
"                         with SEED (default 0: the tool never reads the device's\n"
"                         seed) and the sequence\n"
"      --coalesce N       interrupt after N blocks (default 8)\n"
"      --coalesce-usec US ... or when the oldest block waited US microseconds\n"
"                         (default 1000)\n"
"  -q, --quiet            no progress line (it is shown only on a terminal anyway)\n"
"\n"
HELP_SIZES
"A summary goes to standard error at the end, also after Ctrl-C.\n"
"Exit status: 0 all good; 1 blocks were lost or did not verify, or the stream\n"
"ended early; 2 usage error; 3 runtime error (no board, permission, memory,\n"
"hugepages, locked-memory limit, board fault, I/O).\n";

/* What the command line asked for. */
struct capture_opts {
	const char *dev;
	const char *output;	/* NULL: write nothing; "-": standard output */
	uint64_t bufsize;
	unsigned int aflags;	/* FPGASTREAM_ALLOC_* */
	uint64_t limit;		/* blocks; UINT64_MAX: no limit */
	double seconds;		/* 0: no limit */
	bool overwrite, quiet, verify;
	uint64_t seed;
	uint64_t coal, coal_us;
};

/* A capture under way. */
struct capture {
	const struct capture_opts *o;
	struct fpgastream *h;
	int out;		/* -1: discard */
	struct verifier v;
	uint64_t blocks;	/* written (or counted) */
	uint64_t lost;		/* reported by the driver */
	uint64_t overrun_records;
	uint64_t discarded;	/* drained after stop, not written */
	bool progress, eos;
	double t0, t1, last_progress;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ---- options ---- */

/* 0, -1 after --help, or EX_USAGE. */
static int capture_args(int argc, char **argv, struct capture_opts *o)
{
	enum { O_OVERWRITE = 256, O_VERIFY, O_COAL, O_COAL_US };
	static const struct option opts[] = {
		OPT_DEVICE,
		OPT_BUFFER,
		{ "blocks", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		OPT_TIME,
		{ "output", required_argument, NULL, 'o' },
		{ "overwrite", no_argument, NULL, O_OVERWRITE },
		OPT_HUGEPAGES,
		{ "verify", optional_argument, NULL, O_VERIFY },
		{ "coalesce", required_argument, NULL, O_COAL },
		{ "coalesce-usec", required_argument, NULL, O_COAL_US },
		{ "quiet", no_argument, NULL, 'q' },
		OPT_HELP,
		{ 0 }
	};
	uint64_t bytes;
	int limits = 0, c;

	*o = (struct capture_opts){
		.bufsize = 64ull << 20, .limit = UINT64_MAX, .coal = 8, .coal_us = 1000,
	};
	while ((c = getopt_long(argc, argv, "d:b:n:s:t:o:qh", opts, NULL)) != -1) {
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
		case 'o': o->output = optarg; break;
		case O_OVERWRITE: o->overwrite = true; break;
		case 'H':
			if (page_flags(optarg, &o->aflags))
				return EX_USAGE;
			break;
		case O_VERIFY:
			o->verify = true;
			if (optarg && arg_number("--verify", optarg, 0, UINT64_MAX, &o->seed))
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
		case 'q': o->quiet = true; break;
		case 'h':
			fputs(capture_help, stdout);
			return -1;
		default:
			return bad_option(argv);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (limits > 1)
		return usage_error("-n, -s and -t exclude each other");
	return 0;
}

/* ---- output ---- */

/* Open -o: 0 or EX_RUNTIME, said. */
static int out_open(struct capture *c)
{
	const char *output = c->o->output;

	c->out = -1;
	if (!output)
		return 0;
	if (!strcmp(output, "-")) {
		c->out = STDOUT_FILENO;
		return 0;
	}
	c->out = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (c->out < 0) {
		msg("%s: %s", output, strerror(errno));
		return EX_RUNTIME;
	}
	return 0;
}

/* writev all of iov, resuming after partial writes and signals: 0 or -errno. */
static int out_write(struct capture *c, struct iovec *iov, int cnt)
{
	if (c->out < 0)
		return 0;
	while (cnt > 0) {
		ssize_t n = writev(c->out, iov, cnt > IOV_MAX ? IOV_MAX : cnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

/* Close -o: EX_GOOD or EX_RUNTIME, said. */
static int out_close(struct capture *c)
{
	if (c->out < 0 || c->out == STDOUT_FILENO || !close(c->out))
		return EX_GOOD;
	msg("%s: %s", c->o->output, strerror(errno));
	return EX_RUNTIME;
}

/* ---- the stream ---- */

static void show_progress(struct capture *c, bool force)
{
	double t = now_s();
	char b1[32], b2[32];
	uint64_t bytes = c->blocks * (uint64_t)BLOCK_SIZE;

	if (!c->progress || (!force && t - c->last_progress < 0.5))
		return;
	c->last_progress = t;
	fprintf(stderr, "\r%s  %s/s  %" PRIu64 " blocks  %" PRIu64 " lost\033[K",
		human(bytes, b1, sizeof(b1)),
		human(t > c->t0 ? (uint64_t)(bytes / (t - c->t0)) : 0, b2, sizeof(b2)),
		c->blocks, c->lost);
}

/* Handle one batch: count, verify, write, release.  Returns 0 or -errno of
 * the output. */
static int capture_batch(struct capture *c, struct fpgastream_record *r, int n)
{
	struct iovec iov[1024];
	int i, cnt = 0, err;

	for (i = 0; i < n; i++) {
		if (c->blocks >= c->o->limit) {
			c->discarded++;
			continue;
		}
		c->lost += r[i].lost;
		if (r[i].flags & FPGASTREAM_BLOCK_OVERRUN)
			c->overrun_records++;
		if (c->o->verify)
			verify_record(&c->v, &r[i]);
		iov[cnt].iov_base = r[i].data;
		iov[cnt].iov_len = r[i].length;
		cnt++;
		c->blocks++;
	}
	err = cnt ? out_write(c, iov, cnt) : 0;
	/* Written (or failed): either way the blocks go back to the board. */
	i = fpgastream_release(c->h, n);
	if (i && !err) {
		msg("%s", fpgastream_last_error(c->h));
		err = i;
	}
	return err;
}

/* End the progress line before a message. */
static void end_progress(struct capture *c)
{
	if (c->progress)
		fputc('\n', stderr);
}

/* Start the board and stream until a limit, a signal, the end of the stream
 * or an error; stop it and drain what it filled.  EX_GOOD or EX_RUNTIME. */
static int capture_run(struct capture *c)
{
	const struct capture_opts *o = c->o;
	struct fpgastream_record recs[256];
	double deadline = 0;
	int rc = EX_GOOD, err, n;

	err = fpgastream_start(c->h, o->overwrite ? 0 : FPGASTREAM_START_FLOW_CONTROL,
			       (unsigned)o->coal, (unsigned)o->coal_us);
	if (err) {
		msg("%s", fpgastream_last_error(c->h));
		return EX_RUNTIME;
	}
	c->t0 = c->last_progress = now_s();
	if (o->seconds > 0)
		deadline = c->t0 + o->seconds;

	while (!stop_requested && c->blocks < o->limit) {
		int timeout = 250;

		if (deadline) {
			double left = deadline - now_s();

			if (left <= 0)
				break;
			if (left * 1000 < timeout)
				timeout = (int)(left * 1000) + 1;
		}
		n = fpgastream_wait(c->h, recs, 256, timeout);
		if (n == -EINTR)
			continue;
		if (n == -ENODATA) {
			c->eos = true;
			break;
		}
		if (n < 0) {
			end_progress(c);
			msg("%s", fpgastream_last_error(c->h));
			rc = EX_RUNTIME;
			break;
		}
		if (n > 0) {
			err = capture_batch(c, recs, n);
			if (err) {
				end_progress(c);
				msg("%s: %s", o->output ? o->output : "output",
				    err == -EPIPE ? "the reader went away" : strerror(-err));
				rc = EX_RUNTIME;
				break;
			}
		}
		show_progress(c, false);
	}
	c->t1 = now_s();

	if (!c->eos) {
		err = fpgastream_stop(c->h);
		if (err) {
			msg("%s", fpgastream_last_error(c->h));
			rc = EX_RUNTIME;
		}
		/* What the board filled before it stopped: give it back. */
		for (int tries = 0; !err && tries < 20; tries++) {
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

/* Print the summary; @rc is what the run returned, the result is the exit code. */
static int capture_summary(struct capture *c, int rc)
{
	const struct capture_opts *o = c->o;
	struct fpgastream_stats st;
	uint64_t bytes = c->blocks * (uint64_t)BLOCK_SIZE;
	double dt = c->t1 - c->t0;
	char b1[32], b2[32];

	if (fpgastream_stats(c->h, &st))
		memset(&st, 0, sizeof(st));
	show_progress(c, true);
	end_progress(c);
	msg("captured %" PRIu64 " blocks (%s) in %.2f s: %s/s%s%s",
	    c->blocks, human(bytes, b1, sizeof(b1)), dt,
	    human(dt > 0 ? (uint64_t)(bytes / dt) : 0, b2, sizeof(b2)),
	    stop_requested ? ", stopped by signal" : "",
	    c->eos ? ", end of stream" : "");
	msg("lost %" PRIu64 " blocks (driver: %" PRIu64 " overwritten, %" PRIu64 " dropped at the source)%s",
	    c->lost, (uint64_t)st.blocks_overwritten, (uint64_t)st.blocks_dropped,
	    o->overwrite ? "; overwrite mode" : "");
	if (o->verify)
		verify_done(&c->v, st.blocks_dropped);
	if (rc == EX_GOOD && (c->lost || (o->verify && c->v.bad)))
		rc = EX_LOSS;
	if (rc == EX_GOOD && o->limit != UINT64_MAX && c->blocks < o->limit && !stop_requested) {
		msg("the stream ended after %" PRIu64 " of %" PRIu64 " blocks", c->blocks, o->limit);
		rc = EX_LOSS;
	}
	return rc;
}

int do_capture(int argc, char **argv)
{
	struct capture_opts o;
	struct capture cap = { .o = &o };
	struct fpgastream_buffer buf;
	struct fpgastream_map m;
	struct fpgastream_info info;
	struct sigaction sa;
	char b1[32];
	int rc = capture_args(argc, argv, &o);

	if (rc)
		return rc < 0 ? EX_GOOD : rc;
	cap.v.seed = o.seed;
	if (out_open(&cap))
		return EX_RUNTIME;
	if (open_dev(o.dev, &cap.h)) {
		out_close(&cap);
		return EX_RUNTIME;
	}
	fpgastream_info(cap.h, &info);
	if (o.bufsize > info.max_buffer_size) {
		msg("note: the board takes at most %s: using that",
		    human(info.max_buffer_size, b1, sizeof(b1)));
		o.bufsize = info.max_buffer_size;
	}
	if (setup_buffer(cap.h, o.bufsize, o.aflags, &buf, &m, o.quiet)) {
		fpgastream_close(cap.h);
		out_close(&cap);
		return EX_RUNTIME;
	}

	/* Ctrl-C and SIGTERM stop cleanly; a second one kills as usual. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	cap.progress = !o.quiet && isatty(STDERR_FILENO);

	rc = capture_run(&cap);
	if (cap.t0)
		rc = capture_summary(&cap, rc);
	if (fpgastream_unmap(cap.h)) {
		msg("%s", fpgastream_last_error(cap.h));
		rc = EX_RUNTIME;
	}
	fpgastream_buffer_free(&buf);
	fpgastream_close(cap.h);
	if (out_close(&cap))
		rc = EX_RUNTIME;
	return rc;
}
