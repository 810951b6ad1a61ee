/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The disk path of fpgastream capture (capwrite.c): the output files and
 * their indexes (capfile.h), written straight from the board's buffer,
 * with O_DIRECT where the filesystem takes it and several writes in
 * flight through io_uring; striping over several files, rotation by size
 * and time, and syncing so that an index entry never names data that is
 * not on the disk.  capture.c hands it the records in stream order and
 * gives back to the board what it says is done.
 */
#ifndef FPGASTREAM_TOOL_CAPWRITE_H
#define FPGASTREAM_TOOL_CAPWRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "capfile.h"
#include "fpgastream.h"

#define CW_MAX_OUTPUTS	8

struct cw_opts {
	const char *outputs[CW_MAX_OUTPUTS];	/* -o; "-" is standard output */
	unsigned int noutputs;			/* several: striped */
	const char *index;		/* --index FILE; NULL: FILE.idx for a regular file */
	bool no_index;			/* --no-index */
	bool force;			/* overwrite existing files */
	bool no_direct;			/* never O_DIRECT */
	bool no_uring;			/* synchronous writes */
	unsigned int depth;		/* writes in flight */
	double sync_s;			/* fdatasync interval; 0: only at the end */
	uint64_t rotate_size;		/* -C: bytes per file; 0: no limit */
	double rotate_s;		/* -G: seconds per file; 0: no limit */
	unsigned int rotate_files;	/* -W: files kept (-C) or written (-G); 0: no limit */
	bool quiet;
};

/* What stopped the writer, for the exit status. */
enum cw_error {
	CW_OK = 0,
	CW_FULL,	/* ENOSPC, EDQUOT, EFBIG */
	CW_IOERR,	/* EIO and any other error of a write or a sync */
	CW_SHORT,	/* a write wrote nothing and said no error */
	CW_OPEN,	/* a rotation's next file could not be opened (EEXIST:
			 * it appeared since the start) */
};

struct capwriter;

/* Before the board is touched: refuse outputs that exist without --force
 * (and anything else that can be known early).  0 or an exit status, said. */
int cw_check(const struct cw_opts *o);

/*
 * A writer, in two steps: cw_new() sets up io_uring and registers the
 * mapped buffer @base/@len with it (before the board starts: in overwrite
 * mode the board does not wait for that); cw_open_files() opens the
 * outputs (once it has started).  @tmpl: the header fields every index of
 * this capture shares (board, versions, seed, start time).  Each returns
 * 0 or -errno, said; cw_open() does both.
 */
int cw_new(struct capwriter **wp, const struct cw_opts *o, void *base, size_t len,
	   uint32_t block_size);
int cw_open_files(struct capwriter *w, const struct capidx_header *tmpl);
int cw_open(struct capwriter **wp, const struct cw_opts *o, const struct capidx_header *tmpl,
	    void *base, size_t len);

/*
 * Queue one record, in stream order: write it (@write) or only pass it
 * (after the limit).  0; 1 when -G/-W's last file is full (the record is
 * not written: stop); -errno when the writer has failed (stop).
 */
int cw_add(struct capwriter *w, const struct fpgastream_record *r, bool write);
/* Submit what is queued (at the end of a batch of records). */
void cw_flush(struct capwriter *w);
/* Collect finished writes; with @wait, block until at least one. */
void cw_reap(struct capwriter *w, bool wait);
/* Records at the head that are done (written, failed or passed) since the
 * last call: give them back to the board. */
uint64_t cw_take_done(struct capwriter *w);
/*
 * Overwrite mode: the board does not wait for blocks to be written.  @pos
 * says how many blocks it has completed (the driver's blocks_completed),
 * which the driver learns of up to @lag_s late; the writer asks that long
 * after a write was done, and a block the board may have written over
 * before then (it is @ring_blocks behind) is flagged CAPIDX_F_CLOBBERED in
 * the index and counted.  Blocks are retired (and go back to the board)
 * @lag_s late then: the board does not wait for them anyway.
 */
void cw_watch_board(struct capwriter *w, int (*pos)(void *ctx, uint64_t *completed), void *ctx,
		    uint64_t ring_blocks, double lag_s);
/* The poll() timeout the writer needs (at most @max ms), and the work it
 * is for, when the time has come: retiring blocks cw_watch_board() made
 * wait. */
int cw_timeout_ms(struct capwriter *w, int max);
void cw_poll(struct capwriter *w);
/* The writer has failed: stop feeding it. */
bool cw_failed(const struct capwriter *w);
/* Free it, after cw_close() (NULL is ignored). */
void cw_free(struct capwriter *w);
/* Finish every write queued or in flight. */
void cw_drain(struct capwriter *w);
/* Time-driven work: the --sync interval. */
void cw_tick(struct capwriter *w, double now);
/* A file descriptor that is readable when a write finished, or -1. */
int cw_pollfd(const struct capwriter *w);
/* Writes in flight or queued. */
bool cw_busy(const struct capwriter *w);

/* Finish every write, then sync and close the files.  @reason goes into
 * the END records; @driver_dropped too.  Returns the cw_error. */
enum cw_error cw_close(struct capwriter *w, enum capidx_reason reason, uint64_t driver_dropped);

/* Counts: what reached the files (after cw_close: what is synced and
 * indexed), and what the writer said of itself. */
struct cw_counts {
	uint64_t blocks, bytes, lost;	/* written, in stream order */
	uint64_t clobbered;		/* of them, flagged CAPIDX_F_CLOBBERED */
	uint64_t records;		/* records whose write finished, or passed */
	unsigned int files;		/* data files opened */
	enum cw_error error;
	int err;			/* its errno */
	char where[4096 + 64];		/* the file it happened on */
};
void cw_counts(const struct capwriter *w, struct cw_counts *c);
/* Blocks queued to be written (the -n limit counts these). */
uint64_t cw_queued(const struct capwriter *w);

#endif /* FPGASTREAM_TOOL_CAPWRITE_H */
