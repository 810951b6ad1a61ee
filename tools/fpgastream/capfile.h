/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The capture format, version 1 (docs/capture-format.md): a data file that
 * is a plain run of blocks, and beside it the index FILE.idx, a 512-byte
 * header and then one 48-byte record per block, all little-endian, each
 * with a CRC32C of its own bytes.  Encoding and decoding here, and loading
 * an index back (tolerating the torn last record a crash leaves); no
 * board, no output: the host tests build this file alone.
 */
#ifndef FPGASTREAM_TOOL_CAPFILE_H
#define FPGASTREAM_TOOL_CAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAPIDX_MAGIC		"FSTRIDX"	/* and a NUL: 8 bytes */
#define CAPIDX_VERSION		1
#define CAPIDX_HEADER_SIZE	512
#define CAPIDX_RECORD_SIZE	48
#define CAPIDX_SUFFIX		".idx"

/* Header flags */
#define CAPIDX_F_SEED		(1u << 0)	/* seed is known */
#define CAPIDX_F_OVERWRITE	(1u << 1)	/* captured in overwrite mode */
#define CAPIDX_F_DIRECT		(1u << 2)	/* the data file was written with O_DIRECT,
						 * all of it */

/* Record flags: the driver's (FPGASTREAM_BLOCK_*) and the tool's */
#define CAPIDX_F_CLOBBERED	(1u << 31)	/* overwrite mode: the board may have
						 * written over the block before its
						 * write to the file was done */

/* Record kinds */
#define CAPIDX_BLOCK		1	/* one block of the data file */
#define CAPIDX_END		2	/* the file was closed cleanly */

/* How a file ended (the END record's flags) */
enum capidx_reason {
	CAPIDX_DONE = 0,	/* the limit was reached, or the stream ended */
	CAPIDX_SIGNAL,		/* stopped by a signal */
	CAPIDX_ROTATED,		/* the next file took over */
	CAPIDX_FULL,		/* the output filled up (ENOSPC) */
	CAPIDX_IOERR,		/* a write failed */
	CAPIDX_BOARD,		/* the board failed */
};

struct capidx_header {
	uint32_t version;
	uint32_t header_size;
	uint32_t record_size;
	uint32_t block_size;
	uint32_t hw_version;
	uint32_t flags;			/* CAPIDX_F_* */
	uint64_t seed;
	uint64_t start_realtime_ns;	/* CLOCK_REALTIME at the start ... */
	uint64_t start_monotonic_ns;	/* ... and CLOCK_MONOTONIC at the same moment */
	uint32_t file_number;		/* 0, 1, ... in a rotation */
	uint32_t stripe_index;		/* which of stripe_count files (-o a -o b) */
	uint32_t stripe_count;
	uint64_t blocks_before;		/* blocks captured into earlier files */
	char board[32];			/* fpgastream0 */
	char pci[32];			/* 0000:00:01.0 */
	char tool[32];			/* fpgastream 1.0.0 */
	char data_file[256];		/* the data file's name, without directory */
};

/*
 * One record.  A block: where it is in the data file and what the driver
 * said of it.  END: blocks = seq, bytes = offset, lost = the driver's
 * count of blocks dropped at the source at the end, flags = enum
 * capidx_reason, timestamp_ns = CLOCK_MONOTONIC at the end.
 */
struct capidx_rec {
	uint32_t kind;			/* CAPIDX_BLOCK, CAPIDX_END */
	uint32_t length;		/* bytes of the block */
	uint64_t seq;			/* the driver's stream sequence number */
	uint64_t lost;			/* blocks lost between the previous record and this */
	uint64_t timestamp_ns;		/* CLOCK_MONOTONIC when the driver saw it */
	uint64_t offset;		/* byte offset of the block in the data file */
	uint32_t flags;			/* FPGASTREAM_BLOCK_* */
};

uint32_t crc32c(uint32_t crc, const void *data, size_t len);

void capidx_header_encode(const struct capidx_header *h, uint8_t out[CAPIDX_HEADER_SIZE]);
/* 0, or -EINVAL (not an index: bad magic or CRC) or -EPROTO (a version
 * this tool does not read), with why in @why. */
int capidx_header_decode(const uint8_t *in, size_t len, struct capidx_header *h,
			 char *why, size_t whylen);
void capidx_rec_encode(const struct capidx_rec *r, uint8_t out[CAPIDX_RECORD_SIZE]);
/* false when its CRC does not match (torn or damaged) */
bool capidx_rec_decode(const uint8_t *in, struct capidx_rec *r);

/*
 * Reading an index record by record, in constant memory (a capture of hours
 * has millions): capidx_open() reads the header, capidx_next() returns the
 * block records in file order.  A record with a bad CRC followed by good
 * ones is damage; bad ones at the very end (and a record cut short) are a
 * torn tail, as a crash leaves: both are skipped, and counted.  After
 * capidx_next() said 0, torn, has_end and end are final.
 */
struct capidx_reader {
	struct capidx_header h;
	int fd;
	uint8_t *buf;		/* records read ahead */
	size_t len, pos, cap;
	bool eof;
	size_t bad_run;		/* bad records since the last good one */
	size_t damaged, torn, after_end;
	bool has_end;
	struct capidx_rec end;
	uint64_t n;		/* block records returned */
};

/* 0, or -errno / -EINVAL / -EPROTO with why in @why. */
int capidx_open(struct capidx_reader *r, const char *path, char *why, size_t whylen);
/* The next block record: 1; 0 at the end; -errno (why in @why). */
int capidx_next(struct capidx_reader *r, struct capidx_rec *rec, char *why, size_t whylen);
void capidx_close(struct capidx_reader *r);

/* A whole index in memory: for small ones and tests. */
struct capidx {
	struct capidx_header h;
	struct capidx_rec *recs;	/* the block records, in file order */
	size_t n;
	bool has_end;
	struct capidx_rec end;
	size_t torn;		/* records at the end with a bad CRC or cut short: ignored */
	size_t damaged;		/* bad records with good ones after them */
	size_t after_end;	/* records after the END record: ignored */
};

/* Load @path: 0, or -errno / -EINVAL / -EPROTO with why in @why. */
int capidx_load(const char *path, struct capidx *x, char *why, size_t whylen);
void capidx_free(struct capidx *x);

/* The index path of a data file: FILE.idx */
void capidx_path(const char *data, char *buf, size_t len);

#endif /* FPGASTREAM_TOOL_CAPFILE_H */
