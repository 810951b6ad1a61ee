// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream capture, the disk path (capwrite.h).  Records come in stream
 * order; runs of them that are contiguous in the buffer become one write
 * (a chunk, up to 1 MiB) straight from the pinned buffer, with O_DIRECT
 * where the filesystem takes it, several in flight through io_uring.
 * Writes finish in any order, but the records are retired strictly in
 * stream order: a block counts, gets its index entry queued and goes back
 * to the board only once its own write and every earlier one finished.
 * Index entries reach the index only after an fdatasync of the data they
 * name, so after a crash the index never names data that is not there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
/* liburing brings linux/fs.h's BLOCK_SIZE (1 KiB); the tool's is the board's. */
#undef BLOCK_SIZE

#include "capwrite.h"
#include "common.h"

#define CHUNK_MAX	(1u << 20)	/* bytes per write: 16 blocks */
/* io_uring takes registered buffers of at most 1 GiB each: a bigger ring
 * is registered in pieces, and no write crosses from one to the next. */
#define REG_MAX		(1ull << 30)
#define PREALLOC_STEP	(64ull << 20)	/* fallocate this far ahead */
#define IDX_PREALLOC	(256u << 10)	/* ... and the index this far */

enum chunk_state { C_FREE, C_OPEN, C_INFLIGHT, C_DONE, C_FAILED };

struct cw_file {
	char path[PATH_MAX], idxpath[PATH_MAX];
	int fd, idxfd;		/* -1: none */
	bool own_fd;		/* not standard output */
	bool regular, blockdev, seekable, direct;
	bool no_prealloc;
	uint64_t queued;	/* bytes given to chunks: the next write's offset */
	uint64_t counted;	/* end of the last block counted */
	uint64_t synced;	/* bytes the last fdatasync covered */
	uint64_t allocated;	/* fallocate'd up to */
	uint64_t idx_size, idx_allocated;
	uint8_t *pend;		/* encoded records waiting for the next sync */
	size_t npend, pcap;
	/* Counted since the last good sync, with an index or without (a
	 * block device, --no-index): a failed sync takes them back. */
	uint64_t pend_blocks, pend_bytes, pend_lost;
	uint64_t blocks;	/* counted into this file */
	bool sync_inflight;	/* an fdatasync through io_uring; what it covers: */
	size_t snap_n;
	uint64_t snap_blocks, snap_bytes, snap_lost, snap_counted;
	unsigned int number;	/* in a rotation */
	double opened;
	struct capidx_header h;	/* its index's header, rewritten if O_DIRECT is dropped */
};

struct cw_chunk {
	enum chunk_state state;
	double done_at;		/* when its write was seen done (overwrite mode) */
	struct cw_file *f;
	uint64_t off;		/* in the file */
	char *data;		/* in the buffer */
	uint32_t len, done;
	uint32_t nrec;
	/* Its last write went out with O_DIRECT: several are in flight, and
	 * those submitted before the first refusal come back refused after
	 * the file has dropped O_DIRECT; they are retried, not failed. */
	bool direct;
};

struct cw_qrec {
	struct fpgastream_record r;
	int chunk;		/* -1: passed, not written */
};

struct capwriter {
	const struct cw_opts *o;
	struct capidx_header tmpl;
	char *base;
	size_t len;
	uint32_t bs;
	struct cw_file files[CW_MAX_OUTPUTS];
	unsigned int nfiles;
	unsigned int next_number;	/* rotation */
	struct cw_chunk *chunks;
	unsigned int nchunks;
	int open;			/* the chunk being filled, or -1 */
	unsigned int inflight;		/* writes */
	unsigned int syncs;		/* fdatasyncs */
	struct cw_qrec *q;		/* a ring of records, oldest at head */
	size_t qcap, qhead, qlen;
	bool uring, registered;
	bool ring_dead;			/* waiting on it failed: no more through it */
	struct io_uring ring;
	uint64_t done, queued;
	uint64_t blocks, bytes, lost, records;
	bool stop_counting;		/* a write failed: nothing after it counts */
	enum cw_error error;
	int err;
	char where[4096 + 64];
	double last_sync;
	bool said_page_cache;
	unsigned int files_opened;
	int (*board_pos)(void *ctx, uint64_t *completed);	/* overwrite mode */
	void *board_ctx;
	uint64_t ring_blocks;
	double board_lag;		/* how late the driver may learn of a block */
	uint64_t board_now;		/* its blocks_completed ... */
	double board_now_at;		/* ... read then (0: not yet) */
	double deferred_until;		/* the head waits for board_lag to pass */
	uint64_t clobbered;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The first error stops the writer; later ones only follow from it. */
static void cw_fail(struct capwriter *w, const char *path, int err, const char *what)
{
	if (w->error != CW_OK)
		return;
	if (err == ENOSPC || err == EDQUOT || err == EFBIG)
		w->error = CW_FULL;
	else if (err == 0)
		w->error = CW_SHORT;
	else
		w->error = CW_IOERR;
	w->err = err;
	snprintf(w->where, sizeof(w->where), "%s: %s: %s", path, what,
		 err ? strerror(err) : "a write wrote nothing and gave no error");
}

/* ---- naming and checking the outputs ---- */

static bool rotating(const struct cw_opts *o)
{
	return o->rotate_size || o->rotate_s > 0;
}

/* The data file of output @i, number @n of a rotation. */
static void data_name(const struct cw_opts *o, unsigned int i, unsigned int n,
		      char *buf, size_t len)
{
	if (rotating(o))
		snprintf(buf, len, "%s.%u", o->outputs[i],
			 o->rotate_files && o->rotate_size ? n % o->rotate_files : n);
	else
		snprintf(buf, len, "%s", o->outputs[i]);
}

/* Its index, or "" when it has none. */
static void index_name(const struct cw_opts *o, const char *data, char *buf, size_t len)
{
	struct stat st;

	buf[0] = 0;
	if (o->no_index)
		return;
	if (o->index) {
		snprintf(buf, len, "%s", o->index);
		return;
	}
	/* Beside a regular file (or one to be made), not beside a device
	 * or a pipe: /dev/sda.idx would land in devtmpfs. */
	if (strcmp(data, "-") && (stat(data, &st) || S_ISREG(st.st_mode)))
		capidx_path(data, buf, len);
}

/* May @path be written?  0, or an exit status, said.  @data: the data
 * file; else its index, @data_exists says whether that exists. */
static int check_path(const struct cw_opts *o, const char *path, bool data, bool data_exists)
{
	char dir[PATH_MAX];
	struct stat st;

	if (!stat(path, &st)) {
		/* An index whose data file is gone names nothing: replaced. */
		if (!data && !data_exists && S_ISREG(st.st_mode) && !o->force) {
			msg("note: %s: its data file is gone: replacing this stale index", path);
			return 0;
		}
		if (S_ISBLK(st.st_mode) && data && !o->force) {
			msg("%s is a block device: writing over it needs --force", path);
			return EX_EXISTS;
		}
		if (S_ISREG(st.st_mode) && !o->force) {
			msg("%s exists: not overwritten without --force", path);
			return EX_EXISTS;
		}
		if (S_ISDIR(st.st_mode)) {
			msg("%s is a directory", path);
			return EX_RUNTIME;
		}
		return 0;
	}
	if (errno != ENOENT) {
		msg("%s: %s", path, strerror(errno));
		return EX_RUNTIME;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if (stat(dirname(dir), &st) || !S_ISDIR(st.st_mode)) {
		snprintf(dir, sizeof(dir), "%s", path);
		msg("%s: no directory %s to create it in", path, dirname(dir));
		return EX_RUNTIME;
	}
	return 0;
}

/* A data file of an earlier rotation of @out, OUT.N, in its directory;
 * its name in @found.  A rotation would write over it.  (An OUT.N.idx
 * without its OUT.N is stale: replaced.) */
static bool rotated_file_exists(const char *out, char *found, size_t len)
{
	char d[PATH_MAX], b[PATH_MAX];
	const char *base;
	size_t blen;
	struct dirent *e;
	DIR *dir;
	bool hit = false;

	snprintf(d, sizeof(d), "%s", out);
	snprintf(b, sizeof(b), "%s", out);
	base = basename(b);
	blen = strlen(base);
	dir = opendir(dirname(d));
	while (dir && !hit && (e = readdir(dir))) {
		const char *n = e->d_name + blen + 1;
		size_t digits = strspn(n, "0123456789");

		hit = !strncmp(e->d_name, base, blen) && e->d_name[blen] == '.' && digits && !n[digits];
		if (hit && snprintf(found, len, "%s/%s", d, e->d_name) >= (int)len)
			snprintf(found, len, "%s", e->d_name);	/* (a name too long to say whole) */
	}
	if (dir)
		closedir(dir);
	return hit;
}

int cw_check(const struct cw_opts *o)
{
	char data[PATH_MAX], idx[PATH_MAX];
	int rc;

	for (unsigned int i = 0; i < o->noutputs; i++) {
		if (!strcmp(o->outputs[i], "-")) {
			/* standard output: only an --index to check */
			if (o->index && (rc = check_path(o, o->index, false, true)))
				return rc;
			continue;
		}
		/* A rotation writes FILE.0, FILE.1, ...: any of an earlier
		 * run is in the way. */
		if (rotating(o) && !o->force && rotated_file_exists(o->outputs[i], idx, sizeof(idx))) {
			msg("%s exists: a rotation of %s would write over it; not without --force",
			    idx, o->outputs[i]);
			return EX_EXISTS;
		}
		data_name(o, i, 0, data, sizeof(data));
		rc = check_path(o, data, true, false);
		if (rc)
			return rc;
		index_name(o, data, idx, sizeof(idx));
		if (idx[0] && (rc = check_path(o, idx, false, !access(data, F_OK))))
			return rc;
	}
	return 0;
}

/* ---- opening and closing a file ---- */

/* Open for writing: without --force never over an existing regular file,
 * unless @ours (a -W ring reusing a file of this capture).  @trunc: cut an
 * existing file to nothing at once (else the caller does, when it is
 * time: see file_open()). */
static int open_out(const char *path, bool direct, bool force, bool trunc, bool *is_new)
{
	int flags = O_WRONLY | O_CLOEXEC | (direct ? O_DIRECT : 0);
	struct stat st;

	*is_new = false;
	if (!stat(path, &st) && !S_ISREG(st.st_mode))
		return open(path, flags);
	if (force)
		return open(path, flags | O_CREAT | (trunc ? O_TRUNC : 0), 0644);
	*is_new = true;
	return open(path, flags | O_CREAT | O_EXCL, 0644);
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOSPC;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int file_open(struct capwriter *w, struct cw_file *f, unsigned int i, unsigned int number)
{
	const struct cw_opts *o = w->o;
	bool ours = o->rotate_files && o->rotate_size && number >= o->rotate_files;
	bool is_new;
	struct stat st;
	uint8_t hdr[CAPIDX_HEADER_SIZE];
	struct capidx_header h = w->tmpl;
	char *slash;

	bool data_existed;
	int err;

	memset(f, 0, sizeof(*f));
	f->fd = f->idxfd = -1;
	f->number = number;
	f->opened = now_s();
	data_name(o, i, number, f->path, sizeof(f->path));
	data_existed = !strcmp(f->path, "-") || !stat(f->path, &st);
	if (!strcmp(f->path, "-")) {
		f->fd = STDOUT_FILENO;
	} else {
		bool try_direct = !o->no_direct;

		if (!stat(f->path, &st) && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
			try_direct = false;	/* a pipe or a character device */
		f->fd = open_out(f->path, try_direct, o->force || ours, false, &is_new);
		if (f->fd < 0 && errno == EINVAL && try_direct) {
			/* tmpfs and some others refuse O_DIRECT at open */
			if (!w->said_page_cache)
				msg("note: %s: the filesystem refuses O_DIRECT: writing through the page cache",
				    f->path);
			w->said_page_cache = true;
			try_direct = false;
			/* The refused open may have made the file (tmpfs does):
			 * then it is ours to open again. */
			f->fd = open_out(f->path, false, o->force || ours || is_new, false, &is_new);
		}
		if (f->fd < 0) {
			err = errno;
			msg("%s: %s%s", f->path, strerror(err),
			    err == EEXIST ? " (appeared since the start; not overwritten without --force)" : "");
			return -err;
		}
		f->own_fd = true;
		f->direct = try_direct;
	}
	if (!fstat(f->fd, &st)) {
		f->regular = S_ISREG(st.st_mode);
		f->blockdev = S_ISBLK(st.st_mode);
	}
	f->seekable = f->fd != STDOUT_FILENO && (f->regular || f->blockdev);

	index_name(o, f->path, f->idxpath, sizeof(f->idxpath));
	if (f->idxpath[0]) {
		/* A new data file's index may replace a stale one. */
		f->idxfd = open_out(f->idxpath, false, o->force || ours || !data_existed, true, &is_new);
		if (f->idxfd < 0) {
			err = errno;
			msg("%s: %s", f->idxpath, strerror(err));
			err = -err;
			goto fail;
		}
		h.file_number = number;
		h.stripe_index = i;
		h.stripe_count = o->noutputs;
		h.blocks_before = w->blocks;
		if (f->direct)
			h.flags |= CAPIDX_F_DIRECT;
		slash = strrchr(f->path, '/');
		snprintf(h.data_file, sizeof(h.data_file), "%.255s", slash ? slash + 1 : f->path);
		f->h = h;
		capidx_header_encode(&h, hdr);
		/* Room for the index first: on a filling disk the index
		 * must still take the entries of what was written. */
		if (!fallocate(f->idxfd, FALLOC_FL_KEEP_SIZE, 0, IDX_PREALLOC))
			f->idx_allocated = IDX_PREALLOC;
		/* write_all()'s error, not errno: a write of nothing is
		 * ENOSPC with errno left as it was. */
		err = write_all(f->idxfd, hdr, sizeof(hdr), 0);
		if (!err && fdatasync(f->idxfd))
			err = -errno;
		if (err) {
			msg("%s: %s", f->idxpath, strerror(-err));
			goto fail;
		}
		f->idx_size = sizeof(hdr);
	}
	/*
	 * Only now is an existing data file (--force, or a -W ring's reuse)
	 * cut to nothing: its old index is gone and the new one is on the
	 * disk, so a crash in between never leaves an index naming data
	 * that is not there.
	 */
	if (f->regular && f->own_fd && ftruncate(f->fd, 0)) {
		err = errno;
		msg("%s: %s", f->path, strerror(err));
		err = -err;
		goto fail;
	}
	w->files_opened++;
	if (!o->quiet && (number == 0 || o->noutputs > 1))
		msg("%s: %s, %s%s%s%s", f->path,
		    f->direct ? "O_DIRECT" : f->seekable ? "page cache" : "stream",
		    w->uring && f->seekable ? "io_uring" : "synchronous writes",
		    w->uring && f->seekable ? (w->registered ? " (buffer registered)" : " (buffer not registered)") : "",
		    f->idxpath[0] ? ", index " : ", no index", f->idxpath);
	return 0;
fail:
	/* Nothing was written: the data file is left as it is (file_close()
	 * would cut it to the nothing counted). */
	if (f->idxfd >= 0)
		close(f->idxfd);
	if (f->own_fd)
		close(f->fd);
	f->fd = f->idxfd = -1;
	return err;
}

/*
 * A sync failed, or the index could not take the entries: the blocks since
 * the last good sync do not count, the data file is cut back to it, and
 * nothing after them counts either (the file would have a hole).
 */
static void unsynced(struct capwriter *w, struct cw_file *f)
{
	w->blocks -= f->pend_blocks;
	w->bytes -= f->pend_bytes;
	w->lost -= f->pend_lost;
	f->blocks -= f->pend_blocks;
	f->counted -= f->pend_bytes;
	f->synced = f->counted;
	if (f->regular && ftruncate(f->fd, (off_t)f->counted))
		(void)0;
	f->npend = 0;
	f->pend_blocks = f->pend_bytes = f->pend_lost = 0;
	w->stop_counting = true;
}

/* Append the first @n pending entries to the index and sync it; the data
 * they name is synced.  0, or -1 after unsynced(). */
static int index_append(struct capwriter *w, struct cw_file *f, size_t n, uint64_t blocks,
			uint64_t bytes, uint64_t lost)
{
	size_t len = n * CAPIDX_RECORD_SIZE;
	int err;

	if (f->idxfd < 0 || !n) {
		/* No entries to write: the sync alone made them stand. */
		f->pend_blocks -= blocks;
		f->pend_bytes -= bytes;
		f->pend_lost -= lost;
		return 0;
	}
	/* Reserve from the index's end, at least twice this append: a fixed
	 * step from the last reservation falls behind at high rates. */
	if (f->idx_allocated && f->idx_size + len + (64 << 10) > f->idx_allocated) {
		uint64_t ahead = 2 * (uint64_t)len > IDX_PREALLOC ? 2 * (uint64_t)len : IDX_PREALLOC;

		if (!fallocate(f->idxfd, FALLOC_FL_KEEP_SIZE, (off_t)f->idx_size, (off_t)ahead))
			f->idx_allocated = f->idx_size + ahead;
	}
	err = write_all(f->idxfd, f->pend, len, f->idx_size);
	if (!err && fdatasync(f->idxfd))
		err = -errno;
	if (err) {
		cw_fail(w, f->idxpath, -err, "index write");
		/* What the index could not name does not count. */
		if (ftruncate(f->idxfd, (off_t)f->idx_size))
			(void)0;
		unsynced(w, f);
		return -1;
	}
	f->idx_size += len;
	memmove(f->pend, f->pend + len, (f->npend - n) * CAPIDX_RECORD_SIZE);
	f->npend -= n;
	f->pend_blocks -= blocks;
	f->pend_bytes -= bytes;
	f->pend_lost -= lost;
	return 0;
}

/* Sync the data, then write the pending index entries: now, blocking.
 * @force: sync the data even with nothing new (its size changed). */
static void file_sync(struct capwriter *w, struct cw_file *f, bool force)
{
	if (f->fd < 0)
		return;
	if (f->seekable && (force || f->counted > f->synced)) {
		if (fdatasync(f->fd)) {
			cw_fail(w, f->path, errno, "fdatasync");
			unsynced(w, f);
			return;
		}
		f->synced = f->counted;
	}
	index_append(w, f, f->npend, f->pend_blocks, f->pend_bytes, f->pend_lost);
}

/*
 * The same through io_uring, so that a slow sync (the page cache's worth of
 * a second, on the buffered fallback) does not stall the stream: what is
 * counted now is what the fdatasync covers; its entries are appended when
 * it completes (sync_done), those of later blocks wait for the next one.
 */
static void file_sync_async(struct capwriter *w, struct cw_file *f)
{
	struct io_uring_sqe *sqe;

	if (f->fd < 0 || f->sync_inflight)
		return;
	if (!w->uring || w->ring_dead || !f->seekable || !(sqe = io_uring_get_sqe(&w->ring))) {
		file_sync(w, f, false);
		return;
	}
	if (f->counted == f->synced && !f->npend) {
		/* nothing new; give the SQE back as a no-op */
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		io_uring_submit(&w->ring);
		return;
	}
	f->snap_n = f->npend;
	f->snap_blocks = f->pend_blocks;
	f->snap_bytes = f->pend_bytes;
	f->snap_lost = f->pend_lost;
	f->snap_counted = f->counted;
	io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(sqe, f);
	io_uring_submit(&w->ring);
	f->sync_inflight = true;
	w->syncs++;
}

static void sync_done(struct capwriter *w, struct cw_file *f, int res)
{
	f->sync_inflight = false;
	w->syncs--;
	if (res < 0) {
		cw_fail(w, f->path, -res, "fdatasync");
		unsynced(w, f);
		return;
	}
	f->synced = f->snap_counted;
	index_append(w, f, f->snap_n, f->snap_blocks, f->snap_bytes, f->snap_lost);
}

static int pend_add(struct cw_file *f, const struct capidx_rec *r)
{
	if (f->idxfd < 0)
		return 0;
	if ((f->npend + 1) * CAPIDX_RECORD_SIZE > f->pcap) {
		size_t cap = f->pcap ? f->pcap * 2 : 256 * CAPIDX_RECORD_SIZE;
		uint8_t *p = realloc(f->pend, cap);

		if (!p)
			return -ENOMEM;
		f->pend = p;
		f->pcap = cap;
	}
	capidx_rec_encode(r, f->pend + f->npend * CAPIDX_RECORD_SIZE);
	f->npend++;
	return 0;
}

static void file_close(struct capwriter *w, struct cw_file *f, enum capidx_reason reason,
		       uint64_t driver_dropped)
{
	struct capidx_rec end = { .kind = CAPIDX_END };

	if (f->fd < 0)
		return;
	/* The file ends with the last block counted: not with what
	 * fallocate reserved beyond it, nor after a failed write. */
	if (f->regular && ftruncate(f->fd, (off_t)f->counted))
		cw_fail(w, f->path, errno, "ftruncate");
	/* Synced even when no block is new: the END record must not reach
	 * the disk before the data file's cut does. */
	file_sync(w, f, f->regular);
	if (w->error == CW_FULL)
		reason = CAPIDX_FULL;
	else if (w->error != CW_OK)
		reason = CAPIDX_IOERR;
	end.seq = f->blocks;
	end.offset = f->counted;
	end.lost = driver_dropped;
	end.flags = reason;
	end.timestamp_ns = mono_ns();
	if (f->idxfd >= 0 && !pend_add(f, &end)) {
		f->pend_blocks = f->pend_bytes = f->pend_lost = 0;
		file_sync(w, f, false);
	}
	/* Give back what fallocate reserved beyond the index's end: a cut
	 * to its own size frees the blocks past it (a punched hole beyond
	 * the size is nothing to ext4). */
	if (f->idxfd >= 0 && f->idx_allocated > f->idx_size &&
	    ftruncate(f->idxfd, (off_t)f->idx_size))
		(void)0;	/* only space stays reserved */
	if (f->own_fd && close(f->fd))
		cw_fail(w, f->path, errno, "close");
	if (f->idxfd >= 0 && close(f->idxfd))
		cw_fail(w, f->idxpath, errno, "close");
	free(f->pend);
	f->pend = NULL;
	f->fd = f->idxfd = -1;
}

/* ---- the writer ---- */

int cw_new(struct capwriter **wp, const struct cw_opts *o, void *base, size_t len,
	   uint32_t block_size)
{
	struct capwriter *w = calloc(1, sizeof(*w));
	unsigned int depth = o->depth ? o->depth : 32;
	int err;

	if (!w) {
		msg("out of memory");
		return -ENOMEM;
	}
	*wp = w;
	w->o = o;
	w->base = base;
	w->len = len;
	w->bs = block_size ? block_size : BLOCK_SIZE;
	w->open = -1;
	w->last_sync = now_s();
	w->nchunks = depth + 1;
	w->chunks = calloc(w->nchunks, sizeof(*w->chunks));
	w->qcap = 1024;
	w->q = malloc(w->qcap * sizeof(*w->q));
	if (!w->chunks || !w->q) {
		msg("out of memory");
		return -ENOMEM;
	}
	if (!o->no_uring && o->noutputs) {
		err = io_uring_queue_init(depth, &w->ring, 0);
		if (err) {
			msg("note: io_uring: %s: writing synchronously", strerror(-err));
		} else {
			struct iovec iov[1024];
			unsigned int n = 0;

			w->uring = true;
			for (size_t off = 0; off < len && n < 1024; off += REG_MAX, n++) {
				iov[n].iov_base = w->base + off;
				iov[n].iov_len = len - off < REG_MAX ? len - off : REG_MAX;
			}
			err = io_uring_register_buffers(&w->ring, iov, n);
			if (err && !o->quiet)
				msg("note: io_uring cannot register the buffer (%s): writing from it unregistered",
				    strerror(-err));
			w->registered = !err;
		}
	}
	w->nfiles = o->noutputs;
	for (unsigned int i = 0; i < w->nfiles; i++)
		w->files[i].fd = w->files[i].idxfd = -1;
	return 0;
}

int cw_open_files(struct capwriter *w, const struct capidx_header *tmpl)
{
	int err;

	w->tmpl = *tmpl;
	w->last_sync = now_s();
	for (unsigned int i = 0; i < w->nfiles; i++) {
		err = file_open(w, &w->files[i], i, 0);
		if (err)
			return err;
	}
	w->next_number = 1;
	return 0;
}

int cw_pollfd(const struct capwriter *w)
{
	return w->uring ? w->ring.ring_fd : -1;
}

void cw_watch_board(struct capwriter *w, int (*pos)(void *ctx, uint64_t *completed), void *ctx,
		    uint64_t ring_blocks, double lag_s)
{
	w->board_lag = lag_s;
	w->board_pos = pos;
	w->board_ctx = ctx;
	w->ring_blocks = ring_blocks;
}

int cw_open(struct capwriter **wp, const struct cw_opts *o, const struct capidx_header *tmpl,
	    void *base, size_t len)
{
	int err = cw_new(wp, o, base, len, tmpl->block_size);

	return err ? err : cw_open_files(*wp, tmpl);
}

bool cw_failed(const struct capwriter *w)
{
	return w->error != CW_OK;
}

void cw_free(struct capwriter *w)
{
	if (!w)
		return;
	free(w->chunks);
	free(w->q);
	free(w);
}

bool cw_busy(const struct capwriter *w)
{
	return w->inflight || w->syncs || w->open >= 0 || w->deferred_until > 0;
}

static void consume(struct capwriter *w);

int cw_timeout_ms(struct capwriter *w, int max)
{
	double left;

	if (!(w->deferred_until > 0))
		return max;
	left = (w->deferred_until - now_s()) * 1000 + 1;
	return left < 0 ? 0 : left < max ? (int)left : max;
}

void cw_poll(struct capwriter *w)
{
	if (w->deferred_until > 0 && now_s() >= w->deferred_until)
		consume(w);
}

uint64_t cw_queued(const struct capwriter *w)
{
	return w->queued;
}

uint64_t cw_take_done(struct capwriter *w)
{
	uint64_t n = w->done;

	w->done = 0;
	return n;
}

static struct cw_qrec *q_at(struct capwriter *w, size_t i)
{
	return &w->q[(w->qhead + i) % w->qcap];
}

static int q_push(struct capwriter *w, const struct fpgastream_record *r, int chunk)
{
	if (w->qlen == w->qcap) {
		struct cw_qrec *q = malloc(2 * w->qcap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		for (size_t i = 0; i < w->qlen; i++)
			q[i] = *q_at(w, i);
		free(w->q);
		w->q = q;
		w->qhead = 0;
		w->qcap *= 2;
	}
	*q_at(w, w->qlen) = (struct cw_qrec){ .r = *r, .chunk = chunk };
	w->qlen++;
	return 0;
}

/* A block's write finished, and every one before it: it counts. */
static void count_block(struct capwriter *w, struct cw_chunk *c, const struct fpgastream_record *r,
			uint64_t off, uint64_t board_after)
{
	struct cw_file *f = c->f;
	struct capidx_rec e = {
		.kind = CAPIDX_BLOCK, .length = r->length, .seq = r->seq, .lost = r->lost,
		.timestamp_ns = r->timestamp_ns, .offset = off, .flags = r->flags,
	};

	/*
	 * In overwrite mode the board writes block seq + N into this block's
	 * place in the ring of N once it has completed seq + N - 1: if it had
	 * got that far before the write was done, the file may hold some of
	 * the newer block.  Flag it (conservatively: the board may only have
	 * been about to).  @board_after is the driver's count read board_lag
	 * after the write was done: by then it knows of every block the board
	 * had completed when the write was.
	 */
	if (w->board_pos && w->ring_blocks && board_after + 1 >= r->seq + w->ring_blocks) {
		e.flags |= CAPIDX_F_CLOBBERED;
		w->clobbered++;
	}

	if (pend_add(f, &e)) {
		cw_fail(w, f->idxpath, ENOMEM, "index");
		w->stop_counting = true;
		return;
	}
	w->blocks++;
	w->bytes += r->length;
	w->lost += r->lost;
	f->blocks++;
	f->pend_blocks++;
	f->pend_bytes += r->length;
	f->pend_lost += r->lost;
	f->counted = off + r->length;
}

/* Retire the records at the head whose writes finished. */
static void consume(struct capwriter *w)
{
	w->deferred_until = 0;
	while (w->qlen) {
		struct cw_qrec *e = q_at(w, 0);
		struct cw_chunk *c;
		uint32_t ok;
		bool counting;

		if (e->chunk < 0) {
			w->qhead = (w->qhead + 1) % w->qcap;
			w->qlen--;
			w->done++;
			w->records++;
			continue;
		}
		c = &w->chunks[e->chunk];
		if (c->state != C_DONE && c->state != C_FAILED)
			break;
		if (w->board_pos) {
			/* Overwrite mode: how far the board had got when this
			 * write was done is known board_lag later. */
			double t = now_s();

			if (t < c->done_at + w->board_lag) {
				w->deferred_until = c->done_at + w->board_lag;
				break;
			}
			if (w->board_now_at < c->done_at + w->board_lag) {
				if (w->board_pos(w->board_ctx, &w->board_now))
					w->board_now = UINT64_MAX - w->ring_blocks;	/* unknown: the worst */
				w->board_now_at = t;
			}
		}
		ok = c->state == C_DONE ? c->nrec : c->done / w->bs;
		counting = !w->stop_counting;
		if (c->state == C_FAILED)
			w->stop_counting = true;
		for (uint32_t i = 0; i < c->nrec; i++) {
			e = q_at(w, 0);
			if (counting && i < ok)
				count_block(w, c, &e->r, c->off + (uint64_t)i * w->bs, w->board_now);
			w->qhead = (w->qhead + 1) % w->qcap;
			w->qlen--;
			w->done++;
			w->records++;
		}
		c->state = C_FREE;
	}
}

static void finish_chunk(struct capwriter *w, struct cw_chunk *c, int err)
{
	c->done_at = now_s();
	if (err || c->done < c->len) {
		c->state = C_FAILED;
		cw_fail(w, c->f->path, err, "write");
	} else {
		c->state = C_DONE;
	}
	w->inflight--;
}

/*
 * A write of @c was refused with EINVAL: was that O_DIRECT?  Then the file
 * goes through the page cache from now on (the first chunk refused drops
 * O_DIRECT; those in flight with it are retried as well), its index's
 * header stops saying CAPIDX_F_DIRECT, and the note is said once.
 */
static bool direct_refused(struct capwriter *w, struct cw_chunk *c)
{
	struct cw_file *f = c->f;

	if (!c->direct)
		return false;
	c->direct = false;
	if (!f->direct)
		return true;	/* another chunk dropped it already */
	fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) & ~O_DIRECT);
	f->direct = false;
	if (!w->said_page_cache)
		msg("note: %s: O_DIRECT refused at the write: writing through the page cache",
		    f->path);
	w->said_page_cache = true;
	if (f->idxfd >= 0) {
		/* Synced with the next index append: the flag says the whole
		 * file was written with O_DIRECT. */
		uint8_t hdr[CAPIDX_HEADER_SIZE];

		f->h.flags &= ~CAPIDX_F_DIRECT;
		capidx_header_encode(&f->h, hdr);
		if (write_all(f->idxfd, hdr, sizeof(hdr), 0))
			(void)0;	/* the old header stands: only its flag is wrong */
	}
	return true;
}

/* Write a chunk at once (pipes, devices, no io_uring). */
static void write_sync(struct capwriter *w, struct cw_chunk *c)
{
	while (c->done < c->len) {
		ssize_t n;

		c->direct = c->f->direct;
		n = c->f->seekable
			? pwrite(c->f->fd, c->data + c->done, c->len - c->done, (off_t)(c->off + c->done))
			: write(c->f->fd, c->data + c->done, c->len - c->done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL && direct_refused(w, c))
			continue;	/* accepted at open, refused at the write */
		if (n <= 0) {
			finish_chunk(w, c, n < 0 ? errno : 0);
			return;
		}
		c->done += (uint32_t)n;
	}
	finish_chunk(w, c, 0);
}

static void submit_uring(struct capwriter *w, struct cw_chunk *c)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	char *p = c->data + c->done;
	size_t reg = (size_t)(c->data - w->base) / REG_MAX;

	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	if (!sqe) {
		write_sync(w, c);
		return;
	}
	c->direct = c->f->direct;
	if (w->registered)
		io_uring_prep_write_fixed(sqe, c->f->fd, p, c->len - c->done, c->off + c->done,
					  (int)reg);
	else
		io_uring_prep_write(sqe, c->f->fd, p, c->len - c->done, c->off + c->done);
	io_uring_sqe_set_data(sqe, c);
	io_uring_submit(&w->ring);
}

/*
 * fallocate ahead of the writes, so that the file's blocks are reserved
 * and the writes do not allocate as they go.  It extends the file's size
 * too (not FALLOC_FL_KEEP_SIZE): a direct write beyond the size extends
 * the file, and ext4 makes such writes wait for each other (and io_uring
 * punts them to a worker), one at a time; inside the size they stay in
 * flight together.  file_close() cuts the file to what was counted.
 */
static void prealloc(struct capwriter *w, struct cw_file *f, uint64_t end)
{
	uint64_t to;

	if (!f->regular || f->no_prealloc || end <= f->allocated)
		return;
	to = f->allocated + PREALLOC_STEP;
	if (w->o->rotate_size)
		to = w->o->rotate_size + w->bs;
	if (to < end)
		to = end;
	if (fallocate(f->fd, 0, (off_t)f->allocated, (off_t)(to - f->allocated)))
		f->no_prealloc = true;	/* EOPNOTSUPP, or ENOSPC: the writes will say */
	else
		f->allocated = to;
}

static void submit(struct capwriter *w, int ci)
{
	struct cw_chunk *c = &w->chunks[ci];

	c->state = C_INFLIGHT;
	w->inflight++;
	prealloc(w, c->f, c->off + c->len);
	if (w->ring_dead)
		finish_chunk(w, c, EIO);	/* the writer has failed already */
	else if (w->uring && c->f->seekable)
		submit_uring(w, c);
	else
		write_sync(w, c);
}

void cw_flush(struct capwriter *w)
{
	if (w->open >= 0) {
		int ci = w->open;

		w->open = -1;
		submit(w, ci);
	}
	consume(w);
}

/*
 * Waiting on the ring failed: nothing in flight will be heard of again, and
 * cw_drain() or cw_add() would wait for it forever.  The writer stops; the
 * writes in flight fail (what earlier completions said they wrote stands)
 * and a sync in flight takes back what it covered.
 */
static void ring_broken(struct capwriter *w, int err)
{
	cw_fail(w, "io_uring", err, "wait");
	for (unsigned int i = 0; i < w->nchunks; i++)
		if (w->chunks[i].state == C_INFLIGHT) {
			w->chunks[i].state = C_FAILED;
			w->chunks[i].done_at = now_s();
		}
	for (unsigned int i = 0; i < w->nfiles; i++)
		if (w->files[i].sync_inflight) {
			w->files[i].sync_inflight = false;
			unsynced(w, &w->files[i]);
		}
	w->inflight = 0;
	w->syncs = 0;
	w->ring_dead = true;
}

void cw_reap(struct capwriter *w, bool wait)
{
	struct io_uring_cqe *cqe;

	while (w->uring && !w->ring_dead && (w->inflight || w->syncs)) {
		int err = wait ? io_uring_wait_cqe(&w->ring, &cqe) : io_uring_peek_cqe(&w->ring, &cqe);
		void *data;
		struct cw_chunk *c;
		int res;

		if (err == -EINTR && wait)
			continue;
		if (err && wait) {
			ring_broken(w, -err);
			break;
		}
		if (err)
			break;	/* -EAGAIN: nothing finished yet */
		wait = false;
		data = io_uring_cqe_get_data(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&w->ring, cqe);
		if (!data)
			continue;	/* a no-op */
		if ((char *)data >= (char *)w->files && (char *)data < (char *)(w->files + CW_MAX_OUTPUTS)) {
			sync_done(w, data, res);
			continue;
		}
		c = data;
		if (res == -EINTR || res == -EAGAIN) {
			submit_uring(w, c);
		} else if (res == -EINVAL && direct_refused(w, c)) {
			submit_uring(w, c);
		} else if (res <= 0) {
			finish_chunk(w, c, -res);
		} else {
			c->done += (uint32_t)res;
			if (c->done < c->len)
				submit_uring(w, c);	/* a short write: the rest */
			else
				finish_chunk(w, c, 0);
		}
	}
	consume(w);
}

void cw_drain(struct capwriter *w)
{
	cw_flush(w);
	while (w->inflight || w->syncs)
		cw_reap(w, true);
	consume(w);
	while (w->deferred_until > 0) {
		double left = w->deferred_until - now_s();
		struct timespec ts = { .tv_sec = 0, .tv_nsec = left > 0 ? (long)(left * 1e9) + 1000 : 0 };

		if (left > 1)
			ts.tv_sec = 1, ts.tv_nsec = 0;
		nanosleep(&ts, NULL);
		consume(w);
	}
}

/* The next file of a rotation, after the current one is finished. */
static int rotate(struct capwriter *w, uint64_t driver_dropped)
{
	struct cw_file *f = &w->files[0];
	int err;

	cw_drain(w);
	file_close(w, f, CAPIDX_ROTATED, driver_dropped);
	if (w->error != CW_OK)
		return -EIO;
	err = file_open(w, f, 0, w->next_number++);
	if (err) {
		cw_fail(w, f->path[0] ? f->path : w->o->outputs[0], -err, "open");
		/* Not an error of the output's writes: the man page's exit
		 * status for a file that cannot be opened (3, or 7). */
		w->error = CW_OPEN;
	}
	return err;
}

/* The file a new chunk goes to: the one with the least queued. */
static struct cw_file *pick_file(struct capwriter *w)
{
	struct cw_file *best = &w->files[0];

	for (unsigned int i = 1; i < w->nfiles; i++)
		if (w->files[i].queued < best->queued)
			best = &w->files[i];
	return best;
}

/* A record that is not written: it goes back to the board in its turn,
 * after those before it.  0 or -ENOMEM. */
static int pass(struct capwriter *w, const struct fpgastream_record *r)
{
	if (w->qlen)
		return q_push(w, r, -1);
	w->done++;
	w->records++;
	return 0;
}

int cw_add(struct capwriter *w, const struct fpgastream_record *r, bool write)
{
	const struct cw_opts *o = w->o;
	struct cw_chunk *c = w->open >= 0 ? &w->chunks[w->open] : NULL;
	struct cw_file *f;
	int ci;

	if (!write || !w->nfiles || w->error != CW_OK) {
		if (write && !w->nfiles) {
			/* nothing to write to: it counts as it comes */
			w->queued++;
			w->blocks++;
			w->bytes += r->length;
			w->lost += r->lost;
		}
		if (pass(w, r))
			return -ENOMEM;
		return w->error != CW_OK ? -EIO : 0;
	}
	if (rotating(o)) {
		f = &w->files[0];
		if (f->queued && ((o->rotate_size && f->queued + r->length > o->rotate_size) ||
				  (o->rotate_s > 0 && now_s() - f->opened >= o->rotate_s))) {
			if (o->rotate_files && !o->rotate_size && w->next_number >= o->rotate_files)
				return pass(w, r) ? -ENOMEM : 1;
			if (rotate(w, 0)) {
				pass(w, r);
				return -EIO;
			}
			c = NULL;
		}
	}
	if (c && (char *)r->data == c->data + c->len && c->len + r->length <= CHUNK_MAX &&
	    ((char *)r->data - w->base) / REG_MAX == (c->data - w->base) / REG_MAX) {
		ci = w->open;
	} else {
		cw_flush(w);
		for (;;) {
			for (ci = 0; ci < (int)w->nchunks; ci++)
				if (w->chunks[ci].state == C_FREE)
					break;
			if (ci < (int)w->nchunks)
				break;
			cw_reap(w, true);
		}
		f = pick_file(w);
		c = &w->chunks[ci];
		*c = (struct cw_chunk){ .state = C_OPEN, .f = f, .off = f->queued, .data = r->data };
		w->open = ci;
	}
	if (q_push(w, r, ci))
		return -ENOMEM;
	c->len += r->length;
	c->nrec++;
	c->f->queued += r->length;
	w->queued++;
	return 0;
}

void cw_tick(struct capwriter *w, double now)
{
	if (w->o->sync_s <= 0 || now - w->last_sync < w->o->sync_s)
		return;
	w->last_sync = now;
	for (unsigned int i = 0; i < w->nfiles; i++)
		file_sync_async(w, &w->files[i]);
}

enum cw_error cw_close(struct capwriter *w, enum capidx_reason reason, uint64_t driver_dropped)
{
	enum cw_error e;

	if (!w)
		return CW_OK;
	cw_drain(w);
	for (unsigned int i = 0; i < w->nfiles; i++)
		file_close(w, &w->files[i], reason, driver_dropped);
	if (w->uring) {
		/* The ring is torn down in a kernel worker after exit; its
		 * registered buffers are unpinned now, by this call, so that
		 * no page stays pinned once capture is done. */
		if (w->registered)
			io_uring_unregister_buffers(&w->ring);
		io_uring_queue_exit(&w->ring);
	}
	e = w->error;
	w->uring = false;
	w->nfiles = 0;
	return e;
}

void cw_counts(const struct capwriter *w, struct cw_counts *c)
{
	memset(c, 0, sizeof(*c));
	if (!w)
		return;
	c->blocks = w->blocks;
	c->bytes = w->bytes;
	c->lost = w->lost;
	c->clobbered = w->clobbered;
	c->records = w->records;
	c->files = w->files_opened;
	c->error = w->error;
	c->err = w->err;
	snprintf(c->where, sizeof(c->where), "%s", w->where);
}
