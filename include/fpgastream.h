/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libfpgastream: stream a FSTR FPGA into a buffer your program owns.
 *
 * Every call returns 0 (or a count) on success and a negative errno on
 * failure.  fpgastream_strerror() gives the generic text of an errno;
 * fpgastream_last_error() gives what the last failing call on a handle
 * meant and what to do about it, since the same errno means different
 * things per call.
 *
 * The library keeps no global state, never prints and never exits.  A handle
 * is not locked: use one handle per thread (or serialise the calls).
 * See fpgastream(3).
 */
#ifndef FPGASTREAM_H
#define FPGASTREAM_H

#include <stddef.h>
#include <stdint.h>

/* The kernel ABI: struct fpgastream_info, _map, _stats and the flags. */
#include "uapi/fpgastream.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FPGASTREAM_LIB_VERSION	"1.0.0"

/* An open board.  Opaque. */
struct fpgastream;

/* ---- opening ---- */

/* Open /dev/fpgastream<index>. */
int fpgastream_open(unsigned int index, struct fpgastream **hp);
/* Open a device node by path.  -ENOENT: no such board (module not loaded?);
 * -EACCES: not in group fpgastream; -ENOTTY: not an fpgastream device. */
int fpgastream_open_path(const char *path, struct fpgastream **hp);
/* Unmaps (which stops the stream), closes and frees.  NULL is ignored. */
void fpgastream_close(struct fpgastream *h);

/* The device's file descriptor, for poll() or epoll in the caller's loop. */
int fpgastream_fd(const struct fpgastream *h);
/* The path the handle was opened with. */
const char *fpgastream_path(const struct fpgastream *h);

/* Board and driver facts (read once at open). */
int fpgastream_info(struct fpgastream *h, struct fpgastream_info *info);

/* ---- buffers ---- */

/* fpgastream_buffer_alloc() flags.  Without any of them it tries 2 MiB
 * hugepages, then 4 KiB pages. */
#define FPGASTREAM_ALLOC_1G	(1U << 0) /* 1 GiB pages, then 2 MiB, then 4 KiB */
#define FPGASTREAM_ALLOC_4K	(1U << 1) /* 4 KiB pages only (needs an IOMMU) */
#define FPGASTREAM_ALLOC_STRICT	(1U << 2) /* no fallback: -ENOMEM instead */

struct fpgastream_buffer {
	void *base;		/* block_size (64 KiB) aligned */
	size_t length;		/* as asked */
	size_t page_size;	/* what it got: 4096, 2 MiB or 1 GiB */
	/* Which page size was asked for and why it fell back, if it did;
	 * empty when it got what was asked. */
	char note[160];
	/* private */
	void *map_base;
	size_t map_length;
};

/*
 * Allocate `length` bytes (a multiple of 64 KiB) of anonymous, private
 * memory the board can use, trying page sizes as the flags say and
 * recording in buf->page_size and buf->note which it got.  Hugepages are
 * populated at once.  4 KiB pages only work behind an IOMMU: without one
 * fpgastream_map() refuses them with -EINVAL.  -ENOMEM when nothing could
 * be had (or, with FPGASTREAM_ALLOC_STRICT, not the page size asked).
 */
int fpgastream_buffer_alloc(struct fpgastream_buffer *buf, size_t length,
			    unsigned int flags);
/* Free a buffer from fpgastream_buffer_alloc().  Unmap it from the board
 * first.  Zeroes *buf; a zeroed buffer is ignored. */
void fpgastream_buffer_free(struct fpgastream_buffer *buf);

/* ---- mapping and streaming ---- */

/*
 * Pin addr..addr+length (your own memory, or an fpgastream_buffer) and
 * program the board with it.  addr and length must be multiples of
 * info.block_size, length <= info.max_buffer_size.  flags:
 * FPGASTREAM_MAP_NO_BOUNCE.  `result` (may be NULL) gets the kernel's
 * answer: nr_blocks, nr_segments and mapped_flags (FPGASTREAM_MAPPED_*).
 */
int fpgastream_map(struct fpgastream *h, void *addr, size_t length,
		   unsigned int flags, struct fpgastream_map *result);
/* Stop if running, unmap and unpin. */
int fpgastream_unmap(struct fpgastream *h);

/*
 * Start streaming into the mapped buffer.  flags: FPGASTREAM_START_FLOW_CONTROL
 * (lossless to the host: the board waits for released blocks) or 0
 * (overwrite: the board never waits; unread blocks are lost and counted).
 * An interrupt comes after coalesce_count blocks (0 acts as 1) or when the
 * oldest unsignalled block is coalesce_usec old (0: no timer).
 */
int fpgastream_start(struct fpgastream *h, unsigned int flags,
		     unsigned int coalesce_count, unsigned int coalesce_usec);
/* Stop and wait for the board to be idle.  Blocks still pending are then
 * returned by fpgastream_wait(), then it returns -ENODATA. */
int fpgastream_stop(struct fpgastream *h);

/* One filled block, oldest first. */
struct fpgastream_record {
	void *data;		/* base of the mapped buffer + offset */
	uint64_t seq;		/* stream sequence number, from 0 at start */
	uint64_t offset;	/* byte offset in the mapped buffer */
	uint32_t length;	/* bytes: block_size */
	uint32_t flags;		/* FPGASTREAM_BLOCK_OVERRUN */
	uint64_t lost;		/* blocks lost between the previous record and this */
	uint64_t timestamp_ns;	/* CLOCK_MONOTONIC when the driver saw it */
};

/*
 * Wait up to timeout_ms (-1: forever, 0: just look) for filled blocks and
 * store up to `max` records.  Never spins: it sleeps in poll().
 * Returns the number of records (> 0), 0 on timeout, or:
 *   -ENODATA  end of stream: stopped and every block delivered
 *   -EIO      board fault (LUT fault or DMA error); records before it came first
 *   -ENODEV   the board is gone
 *   -EINTR    a signal arrived (check your flags, call again)
 * Each block stays yours until fpgastream_release() hands it back.
 */
int fpgastream_wait(struct fpgastream *h, struct fpgastream_record *recs,
		    unsigned int max, int timeout_ms);
/* Give the oldest `count` received, unreleased blocks back to the board. */
int fpgastream_release(struct fpgastream *h, uint64_t count);

/* Driver counters. */
int fpgastream_stats(struct fpgastream *h, struct fpgastream_stats *stats);

/* ---- errors and helpers ---- */

/* Generic text for an errno (negative or positive) as this API returns it. */
const char *fpgastream_strerror(int err);
/* What the last failing call on `h` meant and what to do; "" if none. */
const char *fpgastream_last_error(const struct fpgastream *h);

/* Parse a size: a decimal number with an optional K, M, G or T suffix
 * (powers of 1024, optional trailing "iB" or "B").  -EINVAL on a malformed
 * string, -ERANGE on overflow. */
int fpgastream_parse_size(const char *s, uint64_t *out);

/* The library's version, FPGASTREAM_LIB_VERSION as built. */
const char *fpgastream_version(void);

#ifdef __cplusplus
}
#endif

#endif /* FPGASTREAM_H */
