// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: list boards, show them, capture their stream to a file,
 * verify captures of the reference device, and measure.  See fpgastream(1).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "fpgastream.h"

#define EX_GOOD		0	/* everything fine */
#define EX_LOSS		1	/* blocks lost or verify mismatch */
#define EX_USAGE	2	/* bad command line */
#define EX_RUNTIME	3	/* could not do the job */

#define BLOCK_SIZE	65536u	/* the reference device's, for offline verify */
#define SYSFS_CLASS	"/sys/class/fpgastream"

static const char *prog = "fpgastream";
static const char *cmd = "";	/* current command, for messages */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* ---- messages ---- */

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s%s%s: ", prog, *cmd ? " " : "", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s%s%s: ", prog, *cmd ? " " : "", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try '%s %s%s--help')\n", prog, cmd, *cmd ? " " : "");
	return EX_USAGE;
}

/* getopt found an unknown option or a missing argument. */
static int bad_option(char **argv)
{
	return usage_error("unknown option, or missing argument, at '%s'", argv[optind - 1]);
}

/* ---- small helpers ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *human(uint64_t bytes, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

static int parse_size_arg(const char *opt, const char *s, uint64_t *out)
{
	int err = fpgastream_parse_size(s, out);

	if (err)
		return usage_error("%s: '%s' is not a size (a number with an optional K, M, G or T suffix)",
				   opt, s);
	return 0;
}

static int parse_u64_arg(const char *opt, const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	if (!s || !*s || *s == '-')
		return usage_error("%s: '%s' is not a number", opt, s ? s : "");
	*out = strtoull(s, &end, 0);
	if (errno || *end)
		return usage_error("%s: '%s' is not a number", opt, s);
	return 0;
}

static int parse_seconds_arg(const char *opt, const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || !(*out > 0) || *out > 1e9)
		return usage_error("%s: '%s' is not a positive number of seconds", opt, s);
	return 0;
}

/* DEV: an index ("0"), a name ("fpgastream0") or a path. */
static void dev_path(const char *dev, char *buf, size_t len)
{
	if (!dev)
		dev = "0";
	if (strchr(dev, '/'))
		snprintf(buf, len, "%s", dev);
	else if (dev[0] >= '0' && dev[0] <= '9')
		snprintf(buf, len, "/dev/fpgastream%s", dev);
	else
		snprintf(buf, len, "/dev/%s", dev);
}

static int open_dev(const char *dev, struct fpgastream **h)
{
	char path[PATH_MAX];
	int err;

	dev_path(dev, path, sizeof(path));
	err = fpgastream_open_path(path, h);
	if (err) {
		if (err == -ENOENT)
			msg("%s: no such board: is the module loaded (modprobe fpgastream)? 'fpgastream list' shows the boards",
			    path);
		else if (err == -EACCES || err == -EPERM)
			msg("%s: permission denied: add yourself to group fpgastream (usermod -aG fpgastream $USER, then log in again)",
			    path);
		else
			msg("%s: %s", path, fpgastream_strerror(err));
	}
	return err;
}

/* Read a one-line sysfs attribute into buf; false if absent. */
static bool read_attr(const char *dir, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX + 256];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return true;
}

/* The PCI address a class device sits on, or "-". */
static void pci_addr(const char *classdir, char *buf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *base;

	snprintf(path, sizeof(path), "%s/device", classdir);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(buf, len, "%.63s", base ? base + 1 : target);
}

static void pci_ids(const char *classdir, char *buf, size_t len)
{
	char dir[PATH_MAX], v[32], d[32];

	snprintf(dir, sizeof(dir), "%s/device", classdir);
	if (read_attr(dir, "vendor", v, sizeof(v)) && read_attr(dir, "device", d, sizeof(d)))
		snprintf(buf, len, "%s:%s", v + (strncmp(v, "0x", 2) ? 0 : 2),
			 d + (strncmp(d, "0x", 2) ? 0 : 2));
	else
		snprintf(buf, len, "-");
}

/* The first of several possible attribute names that exists. */
static bool read_any_attr(const char *dir, const char *const *names, char *buf, size_t len)
{
	for (; *names; names++)
		if (read_attr(dir, *names, buf, len))
			return true;
	return false;
}

/* ---- list ---- */

static const char list_help[] =
"usage: fpgastream list [--help]\n"
"\n"
"List every fpgastream board: device node, PCI address, PCI IDs, LUT capacity\n"
"(entries), DMA address bits, whether DMA goes through an IOMMU, and state.\n"
"Facts come from /sys/class/fpgastream/ and, where sysfs lacks them, from the\n"
"board (INFO ioctl).\n";

static const char *const attr_lut[] = { "lut_capacity", NULL };
static const char *const attr_dma[] = { "dma_addr_bits", NULL };
static const char *const attr_iommu[] = { "iommu", NULL };
static const char *const attr_state[] = { "state", "status", NULL };

struct board_row {
	char node[PATH_MAX];
	char pci[64];
	char ids[32];
	char lut[32];
	char dma[32];
	char iommu[32];
	char state[64];
};

static void fill_row(const char *classdir, const char *node, struct board_row *r)
{
	struct fpgastream *h = NULL;
	struct fpgastream_info info;
	bool need_info;

	snprintf(r->node, sizeof(r->node), "%s", node);
	snprintf(r->pci, sizeof(r->pci), "-");
	snprintf(r->ids, sizeof(r->ids), "-");
	r->lut[0] = r->dma[0] = r->iommu[0] = 0;
	snprintf(r->state, sizeof(r->state), "-");
	if (classdir) {
		pci_addr(classdir, r->pci, sizeof(r->pci));
		pci_ids(classdir, r->ids, sizeof(r->ids));
		read_any_attr(classdir, attr_lut, r->lut, sizeof(r->lut));
		read_any_attr(classdir, attr_dma, r->dma, sizeof(r->dma));
		read_any_attr(classdir, attr_iommu, r->iommu, sizeof(r->iommu));
		read_any_attr(classdir, attr_state, r->state, sizeof(r->state));
	}
	need_info = !r->lut[0] || !r->dma[0] || !r->iommu[0];
	if (need_info && fpgastream_open_path(node, &h) == 0) {
		fpgastream_info(h, &info);
		if (!r->lut[0])
			snprintf(r->lut, sizeof(r->lut), "%u", info.lut_capacity);
		if (!r->dma[0])
			snprintf(r->dma, sizeof(r->dma), "%u", info.dma_addr_bits);
		if (!r->iommu[0])
			snprintf(r->iommu, sizeof(r->iommu), "%s",
				 info.flags & FPGASTREAM_INFO_IOMMU ? "yes" : "no");
		fpgastream_close(h);
	}
	if (!strcmp(r->iommu, "1"))
		snprintf(r->iommu, sizeof(r->iommu), "yes");
	else if (!strcmp(r->iommu, "0"))
		snprintf(r->iommu, sizeof(r->iommu), "no");
	if (!r->lut[0])
		snprintf(r->lut, sizeof(r->lut), "?");
	if (!r->dma[0])
		snprintf(r->dma, sizeof(r->dma), "?");
	if (!r->iommu[0])
		snprintf(r->iommu, sizeof(r->iommu), "?");
}

static int cmp_str(const void *a, const void *b)
{
	/* fpgastream2 before fpgastream10 */
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);

	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	char *names[256];
	int n = 0, i, c;
	DIR *d;
	struct dirent *e;
	glob_t g;
	bool from_sysfs = false;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(list_help, stdout);
			return EX_GOOD;
		}
		return bad_option(argv);
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);

	d = opendir(SYSFS_CLASS);
	if (d) {
		from_sysfs = true;
		while ((e = readdir(d)) && n < 256)
			if (e->d_name[0] != '.')
				names[n++] = strdup(e->d_name);
		closedir(d);
	} else if (glob("/dev/fpgastream*", 0, NULL, &g) == 0) {
		for (size_t k = 0; k < g.gl_pathc && n < 256; k++)
			names[n++] = strdup(g.gl_pathv[k] + 5);
		globfree(&g);
	}
	if (n == 0) {
		msg("no boards found: is the module loaded (modprobe fpgastream) and a board present (lspci)?");
		return EX_GOOD;
	}
	qsort(names, n, sizeof(names[0]), cmp_str);
	printf("%-20s %-14s %-10s %-8s %-4s %-6s %s\n",
	       "DEVICE", "PCI", "ID", "LUT", "DMA", "IOMMU", "STATE");
	for (i = 0; i < n; i++) {
		char classdir[PATH_MAX], node[PATH_MAX];
		struct board_row r;

		snprintf(classdir, sizeof(classdir), SYSFS_CLASS "/%s", names[i]);
		snprintf(node, sizeof(node), "/dev/%s", names[i]);
		fill_row(from_sysfs ? classdir : NULL, node, &r);
		printf("%-20s %-14s %-10s %-8s %-4s %-6s %s\n",
		       r.node, r.pci, r.ids, r.lut, r.dma, r.iommu, r.state);
		free(names[i]);
	}
	return EX_GOOD;
}

/* ---- info and stats ---- */

static const char info_help[] =
"usage: fpgastream info [DEV]\n"
"\n"
"Show a board's facts: PCI address and IDs, ABI and hardware versions, block\n"
"size, LUT capacity, largest buffer, DMA address bits, IOMMU, and every other\n"
"attribute the driver exports in sysfs.  DEV is an index (0), a name\n"
"(fpgastream0) or a path (/dev/fpgastream0); default 0.\n";

static const char stats_help[] =
"usage: fpgastream stats [DEV]\n"
"\n"
"Show the driver's counters for a board (see info for DEV).\n";

static int one_dev_arg(int argc, char **argv, const char *help, const char **dev)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return -1;
		}
		return bad_option(argv);
	}
	if (argc - optind > 1)
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	*dev = optind < argc ? argv[optind] : NULL;
	return 0;
}

static int cmd_info(int argc, char **argv)
{
	struct fpgastream *h;
	struct fpgastream_info info;
	const char *dev;
	char classdir[PATH_MAX], buf[256], pci[64], ids[32];
	const char *name;
	DIR *d;
	struct dirent *e;
	int rc = one_dev_arg(argc, argv, info_help, &dev);

	if (rc)
		return rc < 0 ? EX_GOOD : rc;
	if (open_dev(dev, &h))
		return EX_RUNTIME;
	fpgastream_info(h, &info);
	name = strrchr(fpgastream_path(h), '/');
	name = name ? name + 1 : fpgastream_path(h);
	snprintf(classdir, sizeof(classdir), SYSFS_CLASS "/%s", name);
	pci_addr(classdir, pci, sizeof(pci));
	pci_ids(classdir, ids, sizeof(ids));

	printf("device:           %s\n", fpgastream_path(h));
	printf("pci:              %s (%s)\n", pci, ids);
	printf("abi version:      %u\n", info.abi_version);
	printf("hw version:       %u.%u\n", info.hw_version >> 16, info.hw_version & 0xffff);
	printf("block size:       %u\n", info.block_size);
	printf("lut capacity:     %u entries\n", info.lut_capacity);
	printf("max buffer size:  %" PRIu64 " (%s)\n", (uint64_t)info.max_buffer_size,
	       human(info.max_buffer_size, buf, sizeof(buf)));
	printf("dma address bits: %u\n", info.dma_addr_bits);
	printf("iommu:            %s\n", info.flags & FPGASTREAM_INFO_IOMMU ? "yes" : "no");
	d = opendir(classdir);
	if (d) {
		bool first = true;

		while ((e = readdir(d))) {
			char path[PATH_MAX + 256];
			struct stat st;

			if (e->d_name[0] == '.' || !strcmp(e->d_name, "uevent") ||
			    !strcmp(e->d_name, "dev"))
				continue;
			snprintf(path, sizeof(path), "%s/%s", classdir, e->d_name);
			if (lstat(path, &st) || !S_ISREG(st.st_mode) || !(st.st_mode & 0444))
				continue;
			if (!read_attr(classdir, e->d_name, buf, sizeof(buf)) || strchr(buf, '\n'))
				continue;
			if (first)
				printf("sysfs:\n");
			first = false;
			printf("  %-20s %s\n", e->d_name, buf);
		}
		closedir(d);
	}
	fpgastream_close(h);
	return EX_GOOD;
}

static void print_stats(const struct fpgastream_stats *st)
{
	printf("blocks completed:   %" PRIu64 "\n", (uint64_t)st->blocks_completed);
	printf("blocks announced:   %" PRIu64 "\n", (uint64_t)st->blocks_announced);
	printf("blocks released:    %" PRIu64 "\n", (uint64_t)st->blocks_released);
	printf("blocks overwritten: %" PRIu64 "\n", (uint64_t)st->blocks_overwritten);
	printf("blocks dropped:     %" PRIu64 "\n", (uint64_t)st->blocks_dropped);
	printf("interrupts:         %" PRIu64 "\n", (uint64_t)st->interrupts);
	printf("read calls:         %" PRIu64 "\n", (uint64_t)st->read_calls);
}

static int cmd_stats(int argc, char **argv)
{
	struct fpgastream *h;
	struct fpgastream_stats st;
	const char *dev;
	int rc = one_dev_arg(argc, argv, stats_help, &dev);

	if (rc)
		return rc < 0 ? EX_GOOD : rc;
	if (open_dev(dev, &h))
		return EX_RUNTIME;
	if (fpgastream_stats(h, &st)) {
		msg("%s", fpgastream_last_error(h));
		fpgastream_close(h);
		return EX_RUNTIME;
	}
	print_stats(&st);
	fpgastream_close(h);
	return EX_GOOD;
}

/* ---- the reference device's pattern ---- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Index of the first word of a block that does not match the pattern for
 * source sequence s, or -1 when the whole block matches. */
static long check_block(const void *data, size_t len, uint64_t seed, uint64_t s)
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

#define MAX_REPORTS 10

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
static void verify_record(struct verifier *v, const struct fpgastream_record *r)
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
static void verify_done(struct verifier *v, uint64_t driver_dropped)
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

/* ---- capture ---- */

static const char capture_help[] =
"usage: fpgastream capture [-d DEV] [-b BUFSIZE] [-n BLOCKS | -s BYTES | -t SECONDS]\n"
"                          [-o FILE|-] [--overwrite] [--hugepages 2M|1G|none]\n"
"                          [--verify[=SEED]] [--coalesce N] [--coalesce-usec US] [-q]\n"
"\n"
"Stream a board into a buffer and write the blocks, in stream order, straight\n"
"from the buffer to FILE (- for standard output; default: write nothing).\n"
"\n"
"  -d, --device DEV       board: index, name or path (default 0)\n"
"  -b, --buffer SIZE      buffer size (default 64M, at most the board's maximum)\n"
"  -n, --blocks N         stop after N blocks\n"
"  -s, --size BYTES       stop after BYTES (rounded up to whole 64 KiB blocks)\n"
"  -t, --time SECONDS     stop after SECONDS\n"
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
"A summary goes to standard error at the end, also after Ctrl-C.\n"
"Exit status: 0 all good; 1 blocks were lost or did not verify, or the stream\n"
"ended early; 2 usage error; 3 runtime error (no board, permission, memory,\n"
"hugepages, locked-memory limit, board fault, I/O).\n";

struct capture {
	struct fpgastream *h;
	int out;		/* -1: discard */
	bool verify;
	struct verifier v;
	uint64_t limit;		/* blocks to write */
	uint64_t blocks;	/* written (or counted) */
	uint64_t lost;		/* reported by the driver */
	uint64_t overrun_records;
	uint64_t discarded;	/* drained after stop, not written */
	bool progress;
	double t0, last_progress;
};

/* writev all of iov, resuming after partial writes and signals. */
static int write_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt);

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
	int i, cnt = 0, err = 0;

	for (i = 0; i < n; i++) {
		if (c->blocks >= c->limit) {
			c->discarded++;
			continue;
		}
		c->lost += r[i].lost;
		if (r[i].flags & FPGASTREAM_BLOCK_OVERRUN)
			c->overrun_records++;
		if (c->verify)
			verify_record(&c->v, &r[i]);
		iov[cnt].iov_base = r[i].data;
		iov[cnt].iov_len = r[i].length;
		cnt++;
		c->blocks++;
	}
	if (c->out >= 0 && cnt)
		err = write_all(c->out, iov, cnt);
	/* Written (or failed): either way the blocks go back to the board. */
	i = fpgastream_release(c->h, n);
	if (i && !err) {
		msg("%s", fpgastream_last_error(c->h));
		err = i;
	}
	return err;
}

static int page_flags(const char *s, unsigned int *flags)
{
	if (!strcasecmp(s, "2M") || !strcasecmp(s, "2MiB") || !strcasecmp(s, "2MB"))
		*flags = 0;
	else if (!strcasecmp(s, "1G") || !strcasecmp(s, "1GiB") || !strcasecmp(s, "1GB"))
		*flags = FPGASTREAM_ALLOC_1G;
	else if (!strcasecmp(s, "none") || !strcasecmp(s, "4K"))
		*flags = FPGASTREAM_ALLOC_4K;
	else
		return usage_error("--hugepages: '%s' is not 2M, 1G or none", s);
	return 0;
}

/* Allocate and map the buffer, saying what we got.  0 or EX_RUNTIME. */
static int setup_buffer(struct fpgastream *h, uint64_t size, unsigned int aflags,
			struct fpgastream_buffer *buf, struct fpgastream_map *m, bool quiet)
{
	struct fpgastream_info info;
	int err;
	char b[32];

	fpgastream_info(h, &info);
	err = fpgastream_buffer_alloc(buf, size, aflags);
	if (err) {
		msg("cannot allocate a %s buffer: %s", human(size, b, sizeof(b)),
		    buf->note[0] ? buf->note : fpgastream_strerror(err));
		return EX_RUNTIME;
	}
	if (buf->note[0] && !quiet)
		msg("note: %s", buf->note);
	err = fpgastream_map(h, buf->base, buf->length, 0, m);
	if (err) {
		msg("%s", fpgastream_last_error(h));
		fpgastream_buffer_free(buf);
		return EX_RUNTIME;
	}
	if ((m->mapped_flags & FPGASTREAM_MAPPED_BOUNCED) && !quiet)
		msg("note: the kernel bounces this buffer through swiotlb: every block is copied once more");
	return 0;
}

static int cmd_capture(int argc, char **argv)
{
	enum { O_OVERWRITE = 256, O_HUGE, O_VERIFY, O_COAL, O_COAL_US };
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "buffer", required_argument, NULL, 'b' },
		{ "blocks", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "time", required_argument, NULL, 't' },
		{ "output", required_argument, NULL, 'o' },
		{ "overwrite", no_argument, NULL, O_OVERWRITE },
		{ "hugepages", required_argument, NULL, O_HUGE },
		{ "verify", optional_argument, NULL, O_VERIFY },
		{ "coalesce", required_argument, NULL, O_COAL },
		{ "coalesce-usec", required_argument, NULL, O_COAL_US },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *dev = NULL, *output = NULL;
	uint64_t bufsize = 64ull << 20, v64, coal = 8, coal_us = 1000;
	unsigned int aflags = 0;
	double seconds = 0, deadline = 0, t1;
	int limits = 0, c, rc = EX_GOOD, err, n;
	bool overwrite = false, quiet = false, eos = false;
	struct capture cap = { .out = -1, .limit = UINT64_MAX };
	struct fpgastream_buffer buf;
	struct fpgastream_map m;
	struct fpgastream_info info;
	struct fpgastream_stats st;
	struct fpgastream_record recs[256];
	struct sigaction sa;
	char b1[32], b2[32];

	while ((c = getopt_long(argc, argv, "d:b:n:s:t:o:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'b':
			if (parse_size_arg("-b", optarg, &bufsize))
				return EX_USAGE;
			if (bufsize == 0 || bufsize % BLOCK_SIZE)
				return usage_error("-b: the buffer must be a non-zero multiple of 64K");
			break;
		case 'n':
			if (parse_u64_arg("-n", optarg, &cap.limit))
				return EX_USAGE;
			if (cap.limit == 0)
				return usage_error("-n: at least one block");
			limits++;
			break;
		case 's':
			if (parse_size_arg("-s", optarg, &v64))
				return EX_USAGE;
			if (v64 == 0)
				return usage_error("-s: at least one byte");
			cap.limit = (v64 + BLOCK_SIZE - 1) / BLOCK_SIZE;
			limits++;
			break;
		case 't':
			if (parse_seconds_arg("-t", optarg, &seconds))
				return EX_USAGE;
			limits++;
			break;
		case 'o': output = optarg; break;
		case O_OVERWRITE: overwrite = true; break;
		case O_HUGE:
			if (page_flags(optarg, &aflags))
				return EX_USAGE;
			break;
		case O_VERIFY:
			cap.verify = true;
			if (optarg && parse_u64_arg("--verify", optarg, &cap.v.seed))
				return EX_USAGE;
			break;
		case O_COAL:
			if (parse_u64_arg("--coalesce", optarg, &coal))
				return EX_USAGE;
			if (coal > UINT32_MAX)
				return usage_error("--coalesce: too large");
			break;
		case O_COAL_US:
			if (parse_u64_arg("--coalesce-usec", optarg, &coal_us))
				return EX_USAGE;
			if (coal_us > UINT32_MAX)
				return usage_error("--coalesce-usec: too large");
			break;
		case 'q': quiet = true; break;
		case 'h':
			fputs(capture_help, stdout);
			return EX_GOOD;
		default:
			return bad_option(argv);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (limits > 1)
		return usage_error("-n, -s and -t exclude each other");

	if (output) {
		if (!strcmp(output, "-")) {
			cap.out = STDOUT_FILENO;
		} else {
			cap.out = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (cap.out < 0) {
				msg("%s: %s", output, strerror(errno));
				return EX_RUNTIME;
			}
		}
	}
	if (open_dev(dev, &cap.h))
		return EX_RUNTIME;
	fpgastream_info(cap.h, &info);
	if (bufsize > info.max_buffer_size) {
		msg("note: the board takes at most %s: using that", human(info.max_buffer_size, b1, sizeof(b1)));
		bufsize = info.max_buffer_size;
	}
	if (setup_buffer(cap.h, bufsize, aflags, &buf, &m, quiet)) {
		fpgastream_close(cap.h);
		return EX_RUNTIME;
	}

	/* Ctrl-C and SIGTERM stop cleanly; a second one kills as usual. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	cap.progress = !quiet && isatty(STDERR_FILENO);
	err = fpgastream_start(cap.h, overwrite ? 0 : FPGASTREAM_START_FLOW_CONTROL,
			       (unsigned)coal, (unsigned)coal_us);
	if (err) {
		msg("%s", fpgastream_last_error(cap.h));
		rc = EX_RUNTIME;
		goto out;
	}
	cap.t0 = cap.last_progress = now_s();
	if (seconds > 0)
		deadline = cap.t0 + seconds;

	while (!stop_requested && cap.blocks < cap.limit) {
		int timeout = 250;

		if (deadline) {
			double left = deadline - now_s();

			if (left <= 0)
				break;
			if (left * 1000 < timeout)
				timeout = (int)(left * 1000) + 1;
		}
		n = fpgastream_wait(cap.h, recs, 256, timeout);
		if (n == -EINTR)
			continue;
		if (n == -ENODATA) {
			eos = true;
			break;
		}
		if (n < 0) {
			if (cap.progress)
				fputc('\n', stderr);
			msg("%s", fpgastream_last_error(cap.h));
			rc = EX_RUNTIME;
			break;
		}
		if (n > 0) {
			err = capture_batch(&cap, recs, n);
			if (err) {
				if (cap.progress)
					fputc('\n', stderr);
				msg("%s: %s", output ? output : "output",
				    err == -EPIPE ? "the reader went away" : strerror(-err));
				rc = EX_RUNTIME;
				break;
			}
		}
		show_progress(&cap, false);
	}
	t1 = now_s();

	if (!eos) {
		err = fpgastream_stop(cap.h);
		if (err) {
			msg("%s", fpgastream_last_error(cap.h));
			rc = EX_RUNTIME;
		}
		/* What the board filled before it stopped: give it back. */
		for (int tries = 0; !err && tries < 20; tries++) {
			n = fpgastream_wait(cap.h, recs, 256, 100);
			if (n == -EINTR || n == 0)
				continue;
			if (n < 0)
				break;
			cap.discarded += n;
			fpgastream_release(cap.h, n);
		}
	}
	if (fpgastream_stats(cap.h, &st))
		memset(&st, 0, sizeof(st));
	show_progress(&cap, true);
	if (cap.progress)
		fputc('\n', stderr);

	{
		uint64_t bytes = cap.blocks * (uint64_t)BLOCK_SIZE;
		double dt = t1 - cap.t0;

		msg("captured %" PRIu64 " blocks (%s) in %.2f s: %s/s%s%s",
		    cap.blocks, human(bytes, b1, sizeof(b1)), dt,
		    human(dt > 0 ? (uint64_t)(bytes / dt) : 0, b2, sizeof(b2)),
		    stop_requested ? ", stopped by signal" : "",
		    eos ? ", end of stream" : "");
		msg("lost %" PRIu64 " blocks (driver: %" PRIu64 " overwritten, %" PRIu64 " dropped at the source)%s",
		    cap.lost, (uint64_t)st.blocks_overwritten, (uint64_t)st.blocks_dropped,
		    overwrite ? "; overwrite mode" : "");
		if (cap.verify)
			verify_done(&cap.v, st.blocks_dropped);
	}
	if (rc == EX_GOOD && (cap.lost || (cap.verify && cap.v.bad)))
		rc = EX_LOSS;
	if (rc == EX_GOOD && cap.limit != UINT64_MAX && cap.blocks < cap.limit && !stop_requested) {
		msg("the stream ended after %" PRIu64 " of %" PRIu64 " blocks", cap.blocks, cap.limit);
		rc = EX_LOSS;
	}
out:
	if (fpgastream_unmap(cap.h)) {
		msg("%s", fpgastream_last_error(cap.h));
		rc = EX_RUNTIME;
	}
	fpgastream_buffer_free(&buf);
	fpgastream_close(cap.h);
	if (cap.out >= 0 && cap.out != STDOUT_FILENO && close(cap.out)) {
		msg("%s: %s", output, strerror(errno));
		rc = EX_RUNTIME;
	}
	return rc;
}

/* ---- verify ---- */

static const char verify_help[] =
"usage: fpgastream verify FILE [--seed S]\n"
"\n"
"Check a capture of the reference device block by block: word 0 is the\n"
"source sequence number s and must increase (a gap is reported as lost\n"
"blocks), word 1 is ~s, and every other word must match the pattern for\n"
"seed S (default 0).  FILE - reads standard input.\n"
"Exit status: 0 all good; 1 lost or bad blocks; 2 usage error; 3 I/O error.\n";

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	uint64_t seed = 0, blocks = 0, bad = 0, lost = 0, prev = 0, first = 0, reported = 0;
	bool have_prev = false;
	const char *file;
	static uint64_t block[BLOCK_SIZE / 8];
	int fd, c;

	while ((c = getopt_long(argc, argv, "S:h", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			if (parse_u64_arg("--seed", optarg, &seed))
				return EX_USAGE;
			break;
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
			bad++;
			break;
		}
		s = le64toh(block[0]);
		w = check_block(block, BLOCK_SIZE, seed, s);
		if (have_prev && s <= prev) {
			if (reported++ < MAX_REPORTS)
				msg("block %" PRIu64 ": sequence %" PRIu64 " after %" PRIu64 " (stale or reordered)",
				    blocks, s, prev);
			bad++;
		} else {
			if (have_prev && s > prev + 1) {
				if (reported++ < MAX_REPORTS)
					msg("block %" PRIu64 ": %" PRIu64 " blocks lost before sequence %" PRIu64,
					    blocks, s - prev - 1, s);
				lost += s - prev - 1;
			}
			if (w >= 0) {
				if (reported++ < MAX_REPORTS)
					msg("block %" PRIu64 " (sequence %" PRIu64 "): word %ld is wrong%s",
					    blocks, s, w, w >= 2 ? " (wrong --seed?)" : "");
				bad++;
			}
			if (!have_prev)
				first = s;
			prev = s;
			have_prev = true;
		}
		blocks++;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (blocks == 0 && !bad) {
		msg("%s: empty", file);
		return EX_LOSS;
	}
	printf("%s: %" PRIu64 " blocks, sequence %" PRIu64 "..%" PRIu64 ", %" PRIu64 " lost, %" PRIu64 " bad (seed %" PRIu64 ")\n",
	       file, blocks, first, prev, lost, bad, seed);
	return lost || bad ? EX_LOSS : EX_GOOD;
}

/* ---- bench ---- */

/*
 * The driver's timing of the current MAP is in debugfs, which is not ABI:
 * DEBUGFS_MNT/fpgastream/fpgastream<N>/map_{pin,dma,lut}_ns, decimal ns.
 */
#define DEBUGFS_MNT	"/sys/kernel/debug"
#ifndef DEBUGFS_MAGIC
#define DEBUGFS_MAGIC	0x64626720	/* linux/magic.h */
#endif

static const char *const phase_files[3] = { "map_pin_ns", "map_dma_ns", "map_lut_ns" };

static const char bench_help[] =
"usage: fpgastream bench [-d DEV] [-b BUFSIZE] [--hugepages 2M|1G|none] [-t SECONDS]\n"
"                        [-r REPEAT]\n"
"\n"
"Measure MAP and UNMAP times of a buffer (default 2 GiB if that many 2 MiB\n"
"hugepages are free, else the largest that fits in the free ones), then stream\n"
"for SECONDS (default 1) per row with 1, 8, 64 and 256 records per wait, and\n"
"print blocks/s and the records each read() returned.  MAP is split into\n"
"pinning, DMA mapping and LUT programming as the driver measured them, read\n"
"from debugfs: " DEBUGFS_MNT "/fpgastream/fpgastreamN/map_pin_ns,\n"
"map_dma_ns and map_lut_ns (debugfs mounted, as root).  Without them one line\n"
"says why, and the other figures come without the split.\n";

static uint64_t free_hugepages(const char *kb)
{
	char path[128], v[32];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%skB", kb);
	if (!read_attr(path, "free_hugepages", v, sizeof(v)))
		return 0;
	return strtoull(v, NULL, 10);
}

/*
 * Is a debugfs mounted on @path?  1 yes; 0 no (without debugfs, @path is
 * the empty sysfs directory it would be mounted on); -errno when @path
 * cannot be looked at (-ENOENT: the kernel has no debugfs to mount).
 */
static int debugfs_mounted(const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf))
		return -errno;
	return sf.f_type == DEBUGFS_MAGIC;
}

/*
 * The name of the board open as @fd from @path, fpgastream<N>: its class
 * device, found by the node's device number (so that a udev symlink works
 * too); else the basename of @path.
 */
static void board_name(int fd, const char *path, char *buf, size_t len)
{
	char link[64], target[PATH_MAX];
	const char *p = path;
	struct stat st;
	ssize_t n;

	if (!fstat(fd, &st) && S_ISCHR(st.st_mode)) {
		snprintf(link, sizeof(link), "/sys/dev/char/%u:%u",
			 major(st.st_rdev), minor(st.st_rdev));
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			p = target;
		}
	}
	if (strrchr(p, '/'))
		p = strrchr(p, '/') + 1;
	snprintf(buf, len, "%.*s", (int)len - 1, p);
}

/*
 * Where the driver's timing of MAP is for board @name, under the debugfs
 * mount @mnt: 0 with the directory in @dir, or -1 with one line in @why
 * that says why not and what to do.
 */
static int phases_dir(const char *mnt, const char *name, char *dir, size_t len,
		      char *why, size_t wlen)
{
	char path[PATH_MAX + 64];
	int r = debugfs_mounted(mnt);

	if (r == -ENOENT) {
		snprintf(why, wlen, "%s does not exist: this kernel has no debugfs (CONFIG_DEBUG_FS off, or debugfs=off or no-mount on its command line)",
			 mnt);
		return -1;
	}
	if (r < 0) {
		snprintf(why, wlen, "cannot tell whether debugfs is mounted on %s: %s", mnt, strerror(-r));
		return -1;
	}
	if (!r) {
		snprintf(why, wlen, "debugfs is not mounted (as root: mount -t debugfs none %s)", mnt);
		return -1;
	}
	snprintf(dir, len, "%s/fpgastream/%s", mnt, name);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, phase_files[i]);
		if (!access(path, R_OK))
			continue;
		if (errno == ENOENT || errno == ENOTDIR)
			snprintf(why, wlen, "no %s: this fpgastream module does not put its MAP timing in debugfs (an older module?)",
				 path);
		else if (errno == EACCES)
			snprintf(why, wlen, "%s: permission denied (debugfs is for root only: run as root)", path);
		else
			snprintf(why, wlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The driver's timing of the current MAP, phase by phase, in ms; -1 and @why if unreadable. */
static int map_phases(const char *dir, double ms[3], char *why, size_t wlen)
{
	char v[32], *end;
	unsigned long long ns;

	for (int i = 0; i < 3; i++) {
		if (!read_attr(dir, phase_files[i], v, sizeof(v))) {
			snprintf(why, wlen, "%s/%s: %s", dir, phase_files[i], strerror(errno));
			return -1;
		}
		errno = 0;
		ns = strtoull(v, &end, 10);
		if (v[0] < '0' || v[0] > '9' || *end || errno) {
			snprintf(why, wlen, "%s/%s: '%s' is not a number of nanoseconds", dir,
				 phase_files[i], v);
			return -1;
		}
		ms[i] = ns / 1e6;
	}
	return 0;
}

static int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "buffer", required_argument, NULL, 'b' },
		{ "hugepages", required_argument, NULL, 'H' },
		{ "time", required_argument, NULL, 't' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static const unsigned int batches[] = { 1, 8, 64, 256 };
	const char *dev = NULL;
	uint64_t size = 0, repeat = 3;
	unsigned int aflags = 0;
	double seconds = 1, tmap = 0, tunmap = 0, t;
	double phase[3], phases[3] = { 0 };
	bool have_phases;
	char name[64], pdir[PATH_MAX], why[PATH_MAX + 256];
	struct fpgastream *h;
	struct fpgastream_info info;
	struct fpgastream_buffer buf;
	struct fpgastream_map m;
	struct fpgastream_record recs[256];
	char b1[32];
	int c, rc = EX_GOOD, err;

	while ((c = getopt_long(argc, argv, "d:b:t:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'b':
			if (parse_size_arg("-b", optarg, &size))
				return EX_USAGE;
			if (size == 0 || size % BLOCK_SIZE)
				return usage_error("-b: the buffer must be a non-zero multiple of 64K");
			break;
		case 'H':
			if (page_flags(optarg, &aflags))
				return EX_USAGE;
			break;
		case 't':
			if (parse_seconds_arg("-t", optarg, &seconds))
				return EX_USAGE;
			break;
		case 'r':
			if (parse_u64_arg("-r", optarg, &repeat))
				return EX_USAGE;
			if (repeat == 0 || repeat > 1000)
				return usage_error("-r: 1 to 1000");
			break;
		case 'h':
			fputs(bench_help, stdout);
			return EX_GOOD;
		default:
			return bad_option(argv);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (open_dev(dev, &h))
		return EX_RUNTIME;
	fpgastream_info(h, &info);
	board_name(fpgastream_fd(h), fpgastream_path(h), name, sizeof(name));
	have_phases = !phases_dir(DEBUGFS_MNT, name, pdir, sizeof(pdir), why, sizeof(why));
	if (!size) {
		uint64_t free2m = free_hugepages("2048") << 21;
		uint64_t free1g = free_hugepages("1048576") << 30;

		size = 2ull << 30;
		if (aflags & FPGASTREAM_ALLOC_4K) {
			/* keep 2 GiB: 4 KiB pages come from ordinary memory */
		} else if ((aflags & FPGASTREAM_ALLOC_1G) && free1g) {
			if (free1g < size)
				size = free1g;
		} else if (free2m < size) {
			size = free2m;
		}
		if (size > info.max_buffer_size)
			size = info.max_buffer_size;
		if (size == 0) {
			msg("no hugepages are free: reserve some (sysctl vm.nr_hugepages=1024 for 2 GiB) or give -b and --hugepages none (IOMMU only)");
			fpgastream_close(h);
			return EX_RUNTIME;
		}
	}
	if (setup_buffer(h, size, aflags, &buf, &m, false)) {
		fpgastream_close(h);
		return EX_RUNTIME;
	}
	/* setup_buffer mapped once already: count that as the first run. */
	fpgastream_unmap(h);
	for (uint64_t i = 0; i < repeat; i++) {
		t = now_s();
		err = fpgastream_map(h, buf.base, buf.length, 0, &m);
		tmap += now_s() - t;
		if (err) {
			msg("%s", fpgastream_last_error(h));
			rc = EX_RUNTIME;
			goto out;
		}
		if (have_phases && map_phases(pdir, phase, why, sizeof(why)))
			have_phases = false;
		for (int k = 0; have_phases && k < 3; k++)
			phases[k] += phase[k];
		t = now_s();
		err = fpgastream_unmap(h);
		tunmap += now_s() - t;
		if (err) {
			msg("%s", fpgastream_last_error(h));
			rc = EX_RUNTIME;
			goto out;
		}
	}
	printf("buffer: %s in %s pages, %u LUT entries, %u DMA segments%s%s\n",
	       human(buf.length, b1, sizeof(b1)),
	       buf.page_size >= (1u << 30) ? "1 GiB" : buf.page_size >= (2u << 20) ? "2 MiB" : "4 KiB",
	       m.nr_blocks, m.nr_segments,
	       m.mapped_flags & FPGASTREAM_MAPPED_IOMMU ? ", IOMMU" : "",
	       m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED ? ", bounced" : "");
	printf("%-10s %12s\n", "op", "ms (mean)");
	printf("%-10s %12.2f\n", "MAP", tmap * 1000 / repeat);
	if (have_phases) {
		printf("%-10s %12.2f\n", "  pin", phases[0] / repeat);
		printf("%-10s %12.2f\n", "  DMA map", phases[1] / repeat);
		printf("%-10s %12.2f\n", "  LUT", phases[2] / repeat);
	}
	printf("%-10s %12.2f\n", "UNMAP", tunmap * 1000 / repeat);
	if (!have_phases)
		printf("MAP not split into pin, DMA map and LUT: %s\n", why);
	printf("\n");

	err = fpgastream_map(h, buf.base, buf.length, 0, &m);
	if (err) {
		msg("%s", fpgastream_last_error(h));
		rc = EX_RUNTIME;
		goto out;
	}
	printf("%-6s %12s %10s %14s %12s %8s\n", "batch", "blocks/s", "MiB/s",
	       "records/read", "interrupts", "lost");
	for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		struct fpgastream_stats s0, s1;
		uint64_t blocks = 0, lost = 0, reads;
		double t0, dt;
		int n;

		if (fpgastream_start(h, FPGASTREAM_START_FLOW_CONTROL, 8, 1000)) {
			msg("%s", fpgastream_last_error(h));
			rc = EX_RUNTIME;
			break;
		}
		fpgastream_stats(h, &s0);
		t0 = now_s();
		while ((dt = now_s() - t0) < seconds) {
			n = fpgastream_wait(h, recs, batches[b], 100);
			if (n < 0 && n != -EINTR) {
				msg("%s", fpgastream_last_error(h));
				rc = EX_RUNTIME;
				break;
			}
			for (int i = 0; i < n; i++)
				lost += recs[i].lost;
			if (n > 0) {
				blocks += n;
				fpgastream_release(h, n);
			}
		}
		fpgastream_stats(h, &s1);
		fpgastream_stop(h);
		while ((n = fpgastream_wait(h, recs, 256, 100)) > 0)
			fpgastream_release(h, n);
		if (rc)
			break;
		reads = s1.read_calls - s0.read_calls;
		printf("%-6u %12.0f %10.1f %14.2f %12" PRIu64 " %8" PRIu64 "\n",
		       batches[b], blocks / dt, blocks * (double)BLOCK_SIZE / dt / (1 << 20),
		       reads ? (double)(s1.blocks_announced - s0.blocks_announced) / reads : 0.0,
		       (uint64_t)(s1.interrupts - s0.interrupts), lost);
	}
out:
	err = fpgastream_unmap(h);	/* -EINVAL: nothing was mapped */
	if (err && err != -EINVAL && rc == EX_GOOD) {
		msg("%s", fpgastream_last_error(h));
		rc = EX_RUNTIME;
	}
	fpgastream_buffer_free(&buf);
	fpgastream_close(h);
	return rc;
}

/* ---- main ---- */

static const char main_help[] =
"usage: fpgastream [--help | --version] COMMAND [ARGS]\n"
"\n"
"Commands (each takes --help):\n"
"  list                      list the boards\n"
"  info [DEV]                show a board's facts\n"
"  stats [DEV]               show the driver's counters\n"
"  capture [OPTIONS]         stream a board to a file, optionally verifying\n"
"  verify FILE [--seed S]    check a capture of the reference device offline\n"
"  bench [OPTIONS]           measure MAP/UNMAP times and streaming rates\n"
"\n"
"DEV is an index (0), a name (fpgastream0) or a path; default 0.  Sizes take\n"
"K, M, G and T suffixes (powers of 1024).\n"
"Exit status: 0 all good; 1 blocks lost or failed verification; 2 usage\n"
"error; 3 runtime error (no board, permission, memory, I/O).\n";

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "list", cmd_list }, { "info", cmd_info }, { "stats", cmd_stats },
		{ "capture", cmd_capture }, { "verify", cmd_verify }, { "bench", cmd_bench },
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	opterr = 0;	/* bad_option() says it, with the command's name */
	if (argc < 2)
		return usage_error("no command given");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(main_help, stdout);
		return EX_GOOD;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("fpgastream %s (libfpgastream %s)\n", FPGASTREAM_LIB_VERSION,
		       fpgastream_version());
		return EX_GOOD;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(argv[1], cmds[i].name)) {
			cmd = cmds[i].name;
			optind = 1;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	return usage_error("unknown command '%s'", argv[1]);
}
