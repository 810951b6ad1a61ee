// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream bench: MAP and UNMAP times of a buffer (split into pinning,
 * DMA mapping and LUT programming as the driver timed them, from debugfs),
 * then streaming rates for a few batch sizes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "common.h"

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
"usage: fpgastream bench [-d DEV] [-b BUFSIZE] [--hugepages 2M|1G|none] [-t DURATION]\n"
"                        [-r REPEAT]\n"
"\n"
"Measure MAP and UNMAP times of a buffer (default 2 GiB if that many 2 MiB\n"
"hugepages are free, else the largest that fits in the free ones), averaged\n"
"over REPEAT runs (default 3, at most 1000), then stream for DURATION (default\n"
"1s) per row with 1, 8, 64 and 256 records per wait, and print blocks/s and the\n"
"records each read() returned.  MAP is split into pinning, DMA mapping and LUT\n"
"programming as the driver measured them, read from debugfs:\n"
DEBUGFS_MNT "/fpgastream/fpgastreamN/map_pin_ns, map_dma_ns and map_lut_ns\n"
"(debugfs mounted, as root).  Without them one line says why, and the other\n"
"figures come without the split.\n"
"\n"
HELP_DEVICE
"  -b, --buffer SIZE      buffer size, a multiple of 64K\n"
"      --hugepages SIZE   page size of the buffer: 2M (default), 1G or none\n"
"  -t, --time DURATION    streaming time per row: seconds, or 500ms, 2s (default 1s)\n"
"  -r, --repeat N         MAP and UNMAP N times (default 3)\n"
"\n"
HELP_SIZES;

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

int do_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		OPT_DEVICE,
		OPT_BUFFER,
		OPT_HUGEPAGES,
		OPT_TIME,
		{ "repeat", required_argument, NULL, 'r' },
		OPT_HELP,
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
		case 'd':
			if (set_device(&dev, optarg))
				return EX_USAGE;
			break;
		case 'b':
			if (arg_buffer("-b", optarg, &size))
				return EX_USAGE;
			break;
		case 'H':
			if (page_flags(optarg, &aflags))
				return EX_USAGE;
			break;
		case 't':
			if (arg_duration("-t", optarg, &seconds))
				return EX_USAGE;
			break;
		case 'r':
			if (arg_number("-r", optarg, 1, 1000, &repeat))
				return EX_USAGE;
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
