// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host unit test of fpgastream capture's file format and disk path, without
 * a board: tools/fpgastream/capfile.c (CRC32C, header and records, loading
 * an index with a torn or damaged tail) and capwrite.c (records in, data
 * and index out) fed with records of a fake ring buffer that holds the
 * reference device's pattern.  Checks that the data file is the blocks in
 * stream order, that the index names exactly what reached the file, on a
 * full disk, /dev/full, through io_uring and synchronously, striped and
 * rotated, and after a writer that dies without closing.  Prints TAP.
 *
 * The selftests Makefile links host tests with no extra library, so
 * liburing is bound at run time (dlopen) by the forwarders below; without
 * it the io_uring cases are skipped.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#include <liburing.h>
#undef BLOCK_SIZE

/*
 * Faults, injected between capwrite.c and liburing: the completions of
 * chosen writes (or fdatasyncs) say what the test wants instead of what
 * the kernel said, and a wait on the ring can fail.  capwrite.c's calls
 * of io_uring_wait_cqe()/io_uring_peek_cqe() (liburing's inline ones) are
 * renamed to these, which call the real ones.
 */
static struct {
	void *chunks, *chunks_end;	/* the writer's: tell a write from a sync */
	unsigned int writes, syncs;	/* completions seen of each */
	unsigned int write_from, write_to;	/* rewrite writes [from, to] (1-based) */
	int write_res;			/* < 0: an error; > 0: a short write of this */
	/* Or: the first completion of each of the first n chunks (not their
	 * retries, which may complete before the next chunk's first) */
	unsigned int first_of;
	void *firsts[8];
	unsigned int nfirsts;
	unsigned int sync_nth;		/* rewrite this fdatasync's ... */
	int sync_res;			/* ... to this */
	int wait_err;			/* every wait fails with this */
	unsigned int waits_failed;
	/* fdatasync(2) called by capwrite.c on file descriptor fd (the
	 * synchronous path, and the closing sync): */
	int fd;				/* -1 (cleared: 0 is never a data file here) */
	unsigned int fd_syncs;		/* how many times */
	unsigned int fd_sync_nth;	/* this one fails ... */
	int fd_sync_err;		/* ... with this errno */
} fault;

static int fault_fdatasync(int fd)
{
	if (fd == fault.fd && fd > 0 && ++fault.fd_syncs == fault.fd_sync_nth) {
		errno = fault.fd_sync_err;
		return -1;
	}
	return fdatasync(fd);
}

static void fault_cqe(struct io_uring_cqe *cqe)
{
	void *data = io_uring_cqe_get_data(cqe);

	if (!data)
		return;
	if (data >= fault.chunks && data < fault.chunks_end) {
		fault.writes++;
		if (fault.first_of) {
			for (unsigned int i = 0; i < fault.nfirsts; i++)
				if (fault.firsts[i] == data)
					return;
			if (fault.nfirsts < fault.first_of) {
				fault.firsts[fault.nfirsts++] = data;
				cqe->res = fault.write_res;
			}
		} else if (fault.writes >= fault.write_from && fault.writes <= fault.write_to) {
			if (fault.write_res > 0 && cqe->res > fault.write_res)
				cqe->res = fault.write_res;
			else if (fault.write_res < 0)
				cqe->res = fault.write_res;
		}
	} else if (++fault.syncs == fault.sync_nth) {
		cqe->res = fault.sync_res;
	}
}

static int fault_wait_cqe(struct io_uring *ring, struct io_uring_cqe **cqe)
{
	int err;

	if (fault.wait_err) {
		fault.waits_failed++;
		return fault.wait_err;
	}
	err = io_uring_wait_cqe(ring, cqe);
	if (!err)
		fault_cqe(*cqe);
	return err;
}

static int fault_peek_cqe(struct io_uring *ring, struct io_uring_cqe **cqe)
{
	int err = io_uring_peek_cqe(ring, cqe);

	if (!err)
		fault_cqe(*cqe);
	return err;
}

#define io_uring_wait_cqe fault_wait_cqe
#define io_uring_peek_cqe fault_peek_cqe
#define fdatasync fault_fdatasync
#include "../../tools/fpgastream/capfile.c"
#include "../../tools/fpgastream/capwrite.c"
#include "../../tools/fpgastream/common.c"
#undef io_uring_wait_cqe
#undef io_uring_peek_cqe
#undef fdatasync

/* Faults apply to writer @w (what they count starts now). */
static void fault_watch(struct capwriter *w)
{
	fault.chunks = w->chunks;
	fault.chunks_end = w->chunks + w->nchunks;
	fault.writes = fault.syncs = fault.waits_failed = 0;
}

static void fault_clear(void)
{
	memset(&fault, 0, sizeof(fault));
}

/* ---- liburing, bound at run time ---- */

static void *uring_lib;

static void *uring_sym(const char *name)
{
	void *p;

	if (!uring_lib)
		uring_lib = dlopen("liburing.so.2", RTLD_NOW);
	p = uring_lib ? dlsym(uring_lib, name) : NULL;
	if (!p) {
		fprintf(stderr, "liburing: no %s\n", name);
		abort();
	}
	return p;
}

int io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	return ((int (*)(unsigned, struct io_uring *, unsigned))uring_sym("io_uring_queue_init"))(entries, ring, flags);
}

void io_uring_queue_exit(struct io_uring *ring)
{
	((void (*)(struct io_uring *))uring_sym("io_uring_queue_exit"))(ring);
}

int io_uring_submit(struct io_uring *ring)
{
	return ((int (*)(struct io_uring *))uring_sym("io_uring_submit"))(ring);
}

int io_uring_register_buffers(struct io_uring *ring, const struct iovec *iov, unsigned n)
{
	return ((int (*)(struct io_uring *, const struct iovec *, unsigned))
		uring_sym("io_uring_register_buffers"))(ring, iov, n);
}

int io_uring_unregister_buffers(struct io_uring *ring)
{
	return ((int (*)(struct io_uring *))uring_sym("io_uring_unregister_buffers"))(ring);
}

int __io_uring_get_cqe(struct io_uring *ring, struct io_uring_cqe **cqe, unsigned submit,
		       unsigned wait_nr, sigset_t *sigmask)
{
	return ((int (*)(struct io_uring *, struct io_uring_cqe **, unsigned, unsigned, sigset_t *))
		uring_sym("__io_uring_get_cqe"))(ring, cqe, submit, wait_nr, sigmask);
}

static bool have_uring(void)
{
	struct io_uring ring;

	if (!uring_lib)
		uring_lib = dlopen("liburing.so.2", RTLD_NOW);
	if (!uring_lib || io_uring_queue_init(4, &ring, 0))
		return false;
	io_uring_queue_exit(&ring);
	return true;
}

/* ---- a fake ring of the reference device's blocks ---- */

#define BS	65536u
#define RING	16u		/* blocks */
#define SEED	0x5eedull

static uint8_t *ring_buf;

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fill ring slot @k with source block @s; its record, seq @seq. */
static struct fpgastream_record make_block(uint64_t seq, uint64_t s, uint64_t lost)
{
	uint64_t *w = (uint64_t *)(ring_buf + (seq % RING) * BS);

	w[0] = htole64(s);
	w[1] = htole64(~s);
	for (size_t i = 2; i < BS / 8; i++)
		w[i] = htole64(mix(SEED ^ (s << 13) ^ i));
	return (struct fpgastream_record){
		.data = w, .seq = seq, .offset = (seq % RING) * BS, .length = BS,
		.lost = lost, .timestamp_ns = 1000 + seq,
	};
}

static bool block_ok(const uint8_t *b, uint64_t s)
{
	const uint64_t *w = (const uint64_t *)b;

	if (le64toh(w[0]) != s || le64toh(w[1]) != ~s)
		return false;
	for (size_t i = 2; i < BS / 8; i++)
		if (le64toh(w[i]) != mix(SEED ^ (s << 13) ^ i))
			return false;
	return true;
}

static struct capidx_header tmpl = {
	.block_size = BS, .hw_version = 0x10000, .flags = CAPIDX_F_SEED, .seed = SEED,
	.start_monotonic_ns = 1000, .start_realtime_ns = 1700000000000000000ull,
	.board = "fpgastream0", .pci = "0000:00:01.0", .tool = "fpgastream test",
};

static char dir[] = "/tmp/capture_index_test.XXXXXX";

static char *path(const char *name)
{
	static char buf[8][PATH_MAX];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

/* The index of data file @name in the test directory. */
static char *idx_of(const char *name)
{
	static char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s/%s" CAPIDX_SUFFIX, dir, name);
	return buf;
}

static off_t size_of(const char *p)
{
	struct stat st;

	return stat(p, &st) ? -1 : st.st_size;
}

/*
 * Stream @n blocks into a writer as capture.c does: batches of up to 5
 * records, flush, reap, give back; a drop of 3 at the source before seq
 * 7 when @drops.  Returns what cw_close() said; counts in @k.
 */
static enum cw_error stream(struct cw_opts *o, unsigned int n, bool drops, struct cw_counts *k)
{
	struct capwriter *w;
	uint64_t held = 0, s = 0;
	enum cw_error e;
	int err;

	err = cw_open(&w, o, &tmpl, ring_buf, RING * BS);
	if (err) {
		diag("cw_open: %s", strerror(-err));
		cw_close(w, CAPIDX_IOERR, 0);
		cw_free(w);
		memset(k, 0, sizeof(*k));
		return CW_IOERR;
	}
	fault_watch(w);
	for (unsigned int seq = 0; seq < n && !cw_failed(w);) {
		/* the board fills only what was given back */
		for (unsigned int b = 0; b < 5 && seq < n && held < RING; b++, seq++, held++) {
			uint64_t lost = drops && seq == 7 ? 3 : 0;
			struct fpgastream_record r;

			s += lost;
			r = make_block(seq, s++, lost);
			if (cw_add(w, &r, true))
				break;
		}
		cw_flush(w);
		cw_reap(w, held == RING);
		held -= cw_take_done(w);
		if (o->sync_s > 0)
			cw_tick(w, now_s());
	}
	cw_drain(w);
	e = cw_close(w, CAPIDX_DONE, drops ? 3 : 0);
	cw_counts(w, k);
	cw_free(w);
	return e;
}

/* The data file @data and its index agree: @n blocks, in order, each
 * where its entry says and holding source block seq + drops so far. */
static bool agrees(const char *data, uint64_t n, bool drops, bool want_end)
{
	char idx[PATH_MAX], why[256];
	struct capidx x;
	uint8_t *b = malloc(BS);
	int fd = open(data, O_RDONLY);
	bool ok = fd >= 0 && b;
	uint64_t s_extra = 0;

	capidx_path(data, idx, sizeof(idx));
	if (!ok || capidx_load(idx, &x, why, sizeof(why))) {
		diag("%s: %s", idx, ok ? why : strerror(errno));
		free(b);
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (x.n != n || x.has_end != want_end || (uint64_t)size_of(data) < n * BS) {
		diag("%zu records (want %" PRIu64 "), end %d, data %lld bytes", x.n, n, x.has_end,
		     (long long)size_of(data));
		ok = false;
	}
	for (size_t i = 0; ok && i < x.n; i++) {
		const struct capidx_rec *r = &x.recs[i];

		if (drops && r->seq >= 7)
			s_extra = 3;
		if (r->offset != i * BS || r->length != BS || r->timestamp_ns != 1000 + r->seq ||
		    pread(fd, b, BS, (off_t)r->offset) != BS || !block_ok(b, r->seq + s_extra) ||
		    r->lost != (drops && r->seq == 7 ? 3u : 0u)) {
			diag("record %zu (seq %" PRIu64 ") does not match its block", i, r->seq);
			ok = false;
		}
	}
	if (ok && want_end && (x.end.seq != n || x.end.offset != n * BS)) {
		diag("end record: %" PRIu64 " blocks, %" PRIu64 " bytes", x.end.seq, x.end.offset);
		ok = false;
	}
	capidx_free(&x);
	free(b);
	close(fd);
	return ok;
}

/* ---- the format alone ---- */

static void test_format(void)
{
	uint8_t hb[CAPIDX_HEADER_SIZE], rb[CAPIDX_RECORD_SIZE];
	struct capidx_header h;
	struct capidx_rec r = { .kind = CAPIDX_BLOCK, .length = BS, .seq = 1ull << 40, .lost = 5,
				.timestamp_ns = 123456789, .offset = 7 * BS, .flags = 1 }, r2;
	char why[256];

	report(crc32c(0, "123456789", 9) == 0xe3069283u, "crc32c of \"123456789\" is 0xe3069283");
	capidx_header_encode(&tmpl, hb);
	report(!memcmp(hb, "FSTRIDX\0", 8) && hb[8] == 1, "the header starts FSTRIDX\\0, version 1");
	report(!capidx_header_decode(hb, sizeof(hb), &h, why, sizeof(why)) &&
	       h.block_size == BS && h.seed == SEED && h.hw_version == 0x10000 &&
	       !strcmp(h.board, "fpgastream0") && !strcmp(h.pci, "0000:00:01.0") &&
	       h.start_realtime_ns == tmpl.start_realtime_ns && h.record_size == CAPIDX_RECORD_SIZE,
	       "the header decodes to what was encoded");
	hb[100] ^= 1;
	report(capidx_header_decode(hb, sizeof(hb), &h, why, sizeof(why)) == -EINVAL,
	       "a damaged header is refused (%s)", why);
	hb[100] ^= 1;
	report(capidx_header_decode(hb, 100, &h, why, sizeof(why)) == -EINVAL,
	       "a cut-short header is refused");
	hb[8] = 2;
	report(capidx_header_decode(hb, sizeof(hb), &h, why, sizeof(why)) == 0 && h.version == 2,
	       "a later version with version 1's fields is read (its own CRC rules are its own)");
	capidx_rec_encode(&r, rb);
	report(capidx_rec_decode(rb, &r2) && r2.seq == r.seq && r2.lost == 5 && r2.offset == 7 * BS &&
	       r2.timestamp_ns == 123456789 && r2.flags == 1 && r2.length == BS,
	       "a record decodes to what was encoded");
	rb[20] ^= 0x10;
	report(!capidx_rec_decode(rb, &r2), "a record with a flipped bit fails its CRC");
	memset(rb, 0, sizeof(rb));
	report(!capidx_rec_decode(rb, &r2), "a zeroed record (a crash's hole) is no record");
}

/* An index of @n records, then @tail bytes of something. */
static void write_index(const char *p, int n, const uint8_t *tail, size_t taillen, int damage_at)
{
	uint8_t hb[CAPIDX_HEADER_SIZE], rb[CAPIDX_RECORD_SIZE];
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	capidx_header_encode(&tmpl, hb);
	if (write(fd, hb, sizeof(hb)) != sizeof(hb))
		diag("write: %s", strerror(errno));
	for (int i = 0; i < n; i++) {
		struct capidx_rec r = { .kind = CAPIDX_BLOCK, .length = BS, .seq = i, .offset = i * BS };

		capidx_rec_encode(&r, rb);
		if (i == damage_at)
			rb[9] ^= 1;
		if (write(fd, rb, sizeof(rb)) != sizeof(rb))
			diag("write: %s", strerror(errno));
	}
	if (taillen && write(fd, tail, taillen) != (ssize_t)taillen)
		diag("write: %s", strerror(errno));
	close(fd);
}

static void test_load(void)
{
	uint8_t junk[CAPIDX_RECORD_SIZE * 2] = { 0 };
	struct capidx x;
	char why[256];
	const char *p = path("load.idx");

	write_index(p, 10, NULL, 0, -1);
	report(!capidx_load(p, &x, why, sizeof(why)) && x.n == 10 && !x.torn && !x.damaged &&
	       !x.has_end, "an index of 10 records loads 10, no end record");
	capidx_free(&x);
	write_index(p, 10, junk, 20, -1);
	report(!capidx_load(p, &x, why, sizeof(why)) && x.n == 10 && x.torn == 1 && !x.damaged,
	       "a record cut short at the end is torn, the 10 before it stand");
	capidx_free(&x);
	write_index(p, 10, junk, sizeof(junk), -1);
	report(!capidx_load(p, &x, why, sizeof(why)) && x.n == 10 && x.torn == 2 && !x.damaged,
	       "zeroed records at the end (size written, data not) are torn");
	capidx_free(&x);
	write_index(p, 10, NULL, 0, 9);
	report(!capidx_load(p, &x, why, sizeof(why)) && x.n == 9 && x.torn == 1 && !x.damaged,
	       "a bad last record is torn");
	capidx_free(&x);
	write_index(p, 10, NULL, 0, 4);
	report(!capidx_load(p, &x, why, sizeof(why)) && x.n == 9 && x.damaged == 1 && !x.torn,
	       "a bad record with good ones after it is damage");
	capidx_free(&x);
	report(capidx_load(path("none.idx"), &x, why, sizeof(why)) == -ENOENT,
	       "a missing index is -ENOENT");
	/* The reader reads 4096 records at a time: damage on the first of
	 * the second batch, and a torn tail after 10000. */
	write_index(p, 10000, junk, 30, 4096);
	{
		struct capidx_reader r;
		struct capidx_rec rec;
		uint64_t n = 0, bad_seq = 0;
		int rc;

		rc = capidx_open(&r, p, why, sizeof(why));
		while (!rc && (rc = capidx_next(&r, &rec, why, sizeof(why))) > 0) {
			bad_seq += rec.seq != n + (n >= 4096);
			n++;
			rc = 0;
		}
		if (rc || n != 9999 || bad_seq || r.damaged != 1 || r.torn != 1)
			diag("rc %d, %" PRIu64 " records, %" PRIu64 " out of place, %zu damaged, %zu torn",
			     rc, n, bad_seq, r.damaged, r.torn);
		report(rc == 0 && n == 9999 && !bad_seq && r.damaged == 1 && r.torn == 1 && !r.has_end,
		       "read record by record: 10000 records, one damaged across a read-ahead boundary, a torn tail");
		capidx_close(&r);
	}
}

/* ---- the writer ---- */

static void test_writer(bool uring)
{
	const char *how = uring ? "io_uring" : "synchronous";
	struct cw_opts o = { .noutputs = 1, .depth = 4, .sync_s = 0, .no_uring = !uring, .quiet = true };
	struct cw_counts k;
	enum cw_error e;
	char name[64], name2[64];

	snprintf(name, sizeof(name), "plain-%s.bin", how);
	o.outputs[0] = path(name);
	o.quiet = !uring;	/* the report line of the io_uring run, in the log */
	e = stream(&o, 50, true, &k);
	o.quiet = true;
	report(e == CW_OK && k.blocks == 50 && k.bytes == 50ull * BS && k.lost == 3 &&
	       size_of(o.outputs[0]) == 50 * BS && agrees(o.outputs[0], 50, true, true),
	       "%s: 50 blocks through a 16-block ring, a drop of 3: file, index and counts agree", how);
	report(cw_check(&o) == EX_EXISTS, "%s: the file exists now: refused without --force", how);
	o.force = true;
	report(cw_check(&o) == 0, "%s: ... and taken with --force", how);
	e = stream(&o, 20, false, &k);
	report(e == CW_OK && size_of(o.outputs[0]) == 20 * BS && agrees(o.outputs[0], 20, false, true),
	       "%s: --force truncates the file and its index", how);
	o.force = false;
	unlink(o.outputs[0]);
	e = cw_check(&o) ? CW_IOERR : stream(&o, 7, false, &k);
	report(e == CW_OK && agrees(o.outputs[0], 7, false, true),
	       "%s: an index whose data file is gone is replaced without --force", how);

	/* striped */
	snprintf(name, sizeof(name), "stripe-a-%s.bin", how);
	snprintf(name2, sizeof(name2), "stripe-b-%s.bin", how);
	o.outputs[0] = path(name);
	o.outputs[1] = path(name2);
	o.noutputs = 2;
	e = stream(&o, 64, false, &k);
	{
		char why[256];
		struct capidx a, b;
		bool ok = e == CW_OK && k.blocks == 64 &&
			  !capidx_load(idx_of(name), &a, why, sizeof(why)) &&
			  !capidx_load(idx_of(name2), &b, why, sizeof(why));

		ok = ok && a.n + b.n == 64 && a.n && b.n &&
		     size_of(o.outputs[0]) == (off_t)(a.n * BS) && size_of(o.outputs[1]) == (off_t)(b.n * BS) &&
		     a.h.stripe_count == 2 && b.h.stripe_index == 1;
		/* every seq exactly once over the two */
		for (uint64_t seq = 0, i = 0, j = 0; ok && seq < 64; seq++) {
			if (i < a.n && a.recs[i].seq == seq)
				i++;
			else if (j < b.n && b.recs[j].seq == seq)
				j++;
			else
				ok = false;
		}
		report(ok, "%s: striped over two files: each block in exactly one, in order", how);
		capidx_free(&a);
		capidx_free(&b);
	}
	o.noutputs = 1;

	/* rotated by size: 4 blocks a file */
	snprintf(name, sizeof(name), "rot-%s", how);
	o.outputs[0] = path(name);
	o.rotate_size = 4 * BS;
	e = stream(&o, 10, false, &k);
	snprintf(name, sizeof(name), "rot-%s.0", how);
	snprintf(name2, sizeof(name2), "rot-%s.2", how);
	report(e == CW_OK && k.files == 3 && size_of(path(name)) == 4 * BS && size_of(path(name2)) == 2 * BS,
	       "%s: -C 4 blocks: 10 blocks in files .0 .1 .2 of 4, 4 and 2", how);
	unlink(path(name));
	report(cw_check(&o) == EX_EXISTS,
	       "%s: a rotation again is refused: .1 and .2 are in the way (even without .0)", how);
	/* -W 2: a ring of two files */
	snprintf(name, sizeof(name), "ring-%s", how);
	o.outputs[0] = path(name);
	o.rotate_files = 2;
	e = stream(&o, 10, false, &k);
	snprintf(name, sizeof(name), "ring-%s.0", how);
	snprintf(name2, sizeof(name2), "ring-%s.2", how);
	{
		struct capidx a;
		char why[256];
		bool ok = e == CW_OK && k.files == 3 && size_of(path(name)) == 2 * BS &&
			  size_of(path(name2)) < 0 && !capidx_load(idx_of(name), &a, why, sizeof(why));

		report(ok && a.n == 2 && a.recs[0].seq == 8 && a.h.file_number == 2,
		       "%s: -C 4 blocks -W 2: file .0 is reused for blocks 8 and 9", how);
		if (ok)
			capidx_free(&a);
	}
	o.rotate_size = 0;
	o.rotate_files = 0;
}

/* The index's reservation (fallocate, 256 KiB ahead) is given back at
 * the close: an index of 50 records takes a few KiB of disk, not more. */
static void test_index_space(void)
{
	struct cw_opts o = { .noutputs = 1, .depth = 4, .no_uring = true, .quiet = true,
			     .outputs = { path("space.bin") } };
	struct cw_counts k;
	struct stat st = { 0 };
	enum cw_error e = stream(&o, 50, false, &k);
	bool ok = e == CW_OK && !stat(idx_of("space.bin"), &st);

	report(ok && st.st_blocks * 512 <= 64 << 10,
	       "the index's reservation is given back at the close: %lld KiB on the disk for %lld bytes",
	       (long long)st.st_blocks / 2, (long long)st.st_size);
}

/* The index's reservation keeps ahead of its end when appends are bigger
 * than the step (10000 entries between syncs: a fast board, a long
 * --sync): on a filling disk the index must still take them. */
static void test_index_prealloc(void)
{
	struct cw_opts o = { .noutputs = 1, .depth = 4, .no_uring = true, .quiet = true,
			     .outputs = { path("prealloc.bin") } };
	struct capidx_rec r = { .kind = CAPIDX_BLOCK, .length = BS };
	struct capwriter *w;
	struct cw_file *f;
	bool ok = true;

	if (cw_open(&w, &o, &tmpl, ring_buf, RING * BS)) {
		report(0, "the index's reservation: cw_open failed");
		cw_free(w);
		return;
	}
	f = &w->files[0];
	for (int round = 0; ok && round < 3; round++) {
		for (int i = 0; i < 10000; i++)
			pend_add(f, &r);
		ok = !index_append(w, f, f->npend, 0, 0, 0) && f->idx_allocated >= f->idx_size;
		if (!ok)
			diag("after append %d: index %" PRIu64 " bytes, reserved to %" PRIu64,
			     round + 1, f->idx_size, f->idx_allocated);
	}
	cw_close(w, CAPIDX_DONE, 0);
	cw_free(w);
	report(ok, "the index's reservation stays ahead of appends of 10000 entries");
}

/* --force on a file whose index cannot be opened: the data file is only
 * cut after its new index is on the disk, so here it stays whole. */
static void test_force_order(void)
{
	struct cw_opts o = { .noutputs = 1, .depth = 4, .no_uring = true, .quiet = true,
			     .outputs = { path("order.bin") } };
	struct cw_counts k;
	enum cw_error e = stream(&o, 10, false, &k);
	bool ok = e == CW_OK && size_of(o.outputs[0]) == 10 * BS;

	unlink(idx_of("order.bin"));
	ok = ok && !mkdir(idx_of("order.bin"), 0755);
	o.force = true;
	e = stream(&o, 4, false, &k);
	report(ok && e != CW_OK && size_of(o.outputs[0]) == 10 * BS,
	       "--force, and the index cannot be opened: the data file is not cut (%lld bytes)",
	       (long long)size_of(o.outputs[0]));
	rmdir(idx_of("order.bin"));

	/* A rotation's next file that cannot be opened is CW_OPEN (exit 3,
	 * as the man page says), not an error of the writes (5). */
	o.force = false;
	o.outputs[0] = path("rotfail");
	o.rotate_size = 4 * BS;
	mkdir(idx_of("rotfail.1"), 0755);
	e = stream(&o, 10, false, &k);
	report(e == CW_OPEN && k.blocks == 4 && agrees(path("rotfail.0"), 4, false, true),
	       "a rotation's next file cannot be opened: CW_OPEN, the 4 blocks of the first file stand (%s)",
	       k.where);
	rmdir(idx_of("rotfail.1"));
}

/* Add seq [@from, @to) and submit them as one write. */
static void add_run(struct capwriter *w, unsigned int from, unsigned int to)
{
	for (unsigned int seq = from; seq < to; seq++) {
		struct fpgastream_record r = make_block(seq, seq, 0);

		cw_add(w, &r, true);
	}
	cw_flush(w);
}

/*
 * The synchronous path: a failed fdatasync of the data takes back what it
 * covered, with an index and without; and the close syncs the data after
 * cutting it, even when every block was synced already.
 */
static void test_sync_faults(void)
{
	struct cw_opts o = { .noutputs = 1, .depth = 4, .no_uring = true, .sync_s = 1, .quiet = true };
	struct capwriter *w;
	struct cw_counts k;
	enum cw_error e;

	for (int noidx = 0; noidx < 2; noidx++) {
		o.outputs[0] = path(noidx ? "sfault-noidx.bin" : "sfault.bin");
		o.no_index = noidx;
		fault_clear();
		if (cw_open(&w, &o, &tmpl, ring_buf, RING * BS)) {
			report(0, "synchronous: a failed fdatasync: cw_open failed");
			cw_free(w);
			continue;
		}
		fault.fd = w->files[0].fd;
		fault.fd_sync_nth = 2;
		fault.fd_sync_err = EIO;
		add_run(w, 0, 8);
		cw_tick(w, now_s() + 10);
		add_run(w, 8, 12);
		cw_tick(w, now_s() + 20);
		e = cw_close(w, CAPIDX_DONE, 0);
		cw_counts(w, &k);
		cw_free(w);
		report(e == CW_IOERR && k.blocks == 8 && k.bytes == 8 * BS && size_of(o.outputs[0]) == 8 * BS &&
		       (noidx ? size_of(idx_of("sfault-noidx.bin")) < 0 : agrees(o.outputs[0], 8, false, true)),
		       "synchronous%s: the 2nd fdatasync fails: the 4 blocks it covered are taken back (%" PRIu64 " counted)",
		       noidx ? ", --no-index" : "", k.blocks);
	}
	o.no_index = false;

	o.outputs[0] = path("sfault-close.bin");
	fault_clear();
	if (cw_open(&w, &o, &tmpl, ring_buf, RING * BS)) {
		report(0, "synchronous: the closing sync: cw_open failed");
		cw_free(w);
		return;
	}
	fault.fd = w->files[0].fd;
	add_run(w, 0, 8);
	cw_tick(w, now_s() + 10);	/* all 8 synced and indexed */
	fault.fd_syncs = 0;
	e = cw_close(w, CAPIDX_DONE, 0);
	cw_free(w);
	report(e == CW_OK && fault.fd_syncs >= 1 && agrees(o.outputs[0], 8, false, true),
	       "the close syncs the data file after cutting it, with every block synced already (%u syncs)",
	       fault.fd_syncs);
	fault_clear();
}

/* Completions that say something else than the kernel did (io_uring). */
static void test_faults(void)
{
	struct cw_opts o = { .noutputs = 1, .depth = 4, .quiet = true };
	struct capwriter *w;
	struct cw_counts k;
	struct capidx x;
	char why[256];
	enum cw_error e;
	pid_t pid;
	int st;

	o.outputs[0] = path("fault-eio.bin");
	fault_clear();
	fault.write_from = fault.write_to = 3;
	fault.write_res = -EIO;
	e = stream(&o, 50, false, &k);
	report(e == CW_IOERR && k.blocks < 50 && size_of(o.outputs[0]) == (off_t)(k.blocks * BS) &&
	       agrees(o.outputs[0], k.blocks, false, true) && strstr(k.where, "Input/output"),
	       "io_uring: the 3rd write fails with EIO: %" PRIu64 " blocks before it in the count, the file and the index",
	       k.blocks);

	o.outputs[0] = path("fault-short.bin");
	fault_clear();
	fault.write_from = fault.write_to = 2;
	fault.write_res = BS + 4096;
	e = stream(&o, 50, false, &k);
	report(e == CW_OK && k.blocks == 50 && size_of(o.outputs[0]) == 50 * BS &&
	       agrees(o.outputs[0], 50, false, true),
	       "io_uring: a short write: the rest is written, 50 blocks agree");

	o.outputs[0] = path("fault-eagain.bin");
	fault_clear();
	fault.write_from = fault.write_to = 3;
	fault.write_res = -EAGAIN;
	e = stream(&o, 50, false, &k);
	report(e == CW_OK && k.blocks == 50 && agrees(o.outputs[0], 50, false, true),
	       "io_uring: a write that says -EAGAIN is written again, 50 blocks agree");

	/* O_DIRECT refused at the write, by two writes in flight together:
	 * the second was submitted with O_DIRECT too, and is retried. */
	o.outputs[0] = path("fault-einval.bin");
	fault_clear();
	if (cw_open(&w, &o, &tmpl, ring_buf, RING * BS)) {
		report(0, "io_uring: O_DIRECT refused at the write: cw_open failed");
		cw_free(w);
	} else if (!w->files[0].direct) {
		report(1, "# SKIP io_uring: O_DIRECT refused at the write: no O_DIRECT here");
		cw_close(w, CAPIDX_DONE, 0);
		cw_free(w);
	} else {
		fault_watch(w);
		fault.first_of = 2;
		fault.write_res = -EINVAL;
		add_run(w, 0, 5);
		add_run(w, 5, 10);
		cw_drain(w);
		e = cw_close(w, CAPIDX_DONE, 0);
		cw_counts(w, &k);
		cw_free(w);
		report(e == CW_OK && k.blocks == 10 && fault.writes >= 4 && fault.nfirsts == 2 &&
		       agrees(o.outputs[0], 10, false, true) &&
		       !capidx_load(idx_of("fault-einval.bin"), &x, why, sizeof(why)) &&
		       !(x.h.flags & CAPIDX_F_DIRECT),
		       "io_uring: two writes in flight refuse O_DIRECT: both are retried, 10 blocks agree, the header's DIRECT flag is cleared (%s)",
		       e == CW_OK ? "ok" : k.where);
		if (e == CW_OK)
			capidx_free(&x);
	}

	/* A failed fdatasync takes back what it covered: with an index and
	 * without one.  8 blocks synced, then 4 whose sync fails. */
	for (int noidx = 0; noidx < 2; noidx++) {
		o.outputs[0] = path(noidx ? "fault-sync-noidx.bin" : "fault-sync.bin");
		o.no_index = noidx;
		o.sync_s = 1;
		fault_clear();
		if (cw_open(&w, &o, &tmpl, ring_buf, RING * BS)) {
			report(0, "io_uring: a failed fdatasync: cw_open failed");
			cw_free(w);
			continue;
		}
		fault_watch(w);
		add_run(w, 0, 8);
		cw_drain(w);
		cw_tick(w, now_s() + 10);
		cw_drain(w);
		add_run(w, 8, 12);
		cw_drain(w);
		fault.sync_nth = 2;
		fault.sync_res = -EIO;
		cw_tick(w, now_s() + 20);
		cw_drain(w);
		e = cw_close(w, CAPIDX_DONE, 0);
		cw_counts(w, &k);
		cw_free(w);
		report(e == CW_IOERR && fault.syncs == 2 && k.blocks == 8 && k.bytes == 8 * BS &&
		       size_of(o.outputs[0]) == 8 * BS &&
		       (noidx ? size_of(idx_of("fault-sync-noidx.bin")) < 0 : agrees(o.outputs[0], 8, false, true)),
		       "io_uring%s: the 2nd fdatasync fails: the 4 blocks it covered are taken back from the count%s and the file (%" PRIu64 " counted)",
		       noidx ? ", --no-index" : "", noidx ? "" : ", the index", k.blocks);
	}
	o.no_index = false;
	o.sync_s = 0;

	/* Waiting on the ring fails (and keeps failing): the writer stops,
	 * it does not wait forever for what it will never hear of. */
	o.outputs[0] = path("fault-wait.bin");
	pid = fork();
	if (pid == 0) {
		alarm(20);
		fault_clear();
		fault.wait_err = -EBADF;
		e = stream(&o, 50, false, &k);
		_exit(e == CW_IOERR && fault.waits_failed && k.blocks < 50 &&
		      agrees(o.outputs[0], k.blocks, false, true) ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	report(WIFEXITED(st) && !WEXITSTATUS(st),
	       "io_uring: a wait on the ring fails: the writer stops with EIO, what counts agrees (%s)",
	       WIFSIGNALED(st) ? "killed: it hung" : WIFEXITED(st) && !WEXITSTATUS(st) ? "ok" : "failed");
	fault_clear();
}

/* A writer on a 1 MiB tmpfs: ENOSPC stops it; what counts is what is there. */
static void test_full(bool uring)
{
	const char *how = uring ? "io_uring" : "synchronous";
	char mnt[PATH_MAX], data[PATH_MAX + 16];
	struct cw_opts o = { .noutputs = 1, .depth = 4, .no_uring = !uring, .quiet = true };
	struct cw_counts k;
	enum cw_error e;

	snprintf(mnt, sizeof(mnt), "%s/small-%s", dir, how);
	mkdir(mnt, 0755);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m")) {
		report(1, "# SKIP %s: a full disk (cannot mount a small tmpfs: %s)", how, strerror(errno));
		return;
	}
	snprintf(data, sizeof(data), "%s/full.bin", mnt);
	o.outputs[0] = data;
	e = stream(&o, 100, false, &k);
	report(e == CW_FULL && k.blocks > 0 && k.blocks < 16 && size_of(data) == (off_t)(k.blocks * BS) &&
	       agrees(data, k.blocks, false, true),
	       "%s: a 1 MiB tmpfs fills: ENOSPC, and %" PRIu64 " blocks in the count, the file and the index",
	       how, k.blocks);
	umount2(mnt, MNT_DETACH);
}

static void test_dev_full(void)
{
	struct cw_opts o = { .noutputs = 1, .depth = 4, .quiet = true, .outputs = { "/dev/full" } };
	struct cw_counts k;
	enum cw_error e = stream(&o, 10, false, &k);

	report(e == CW_FULL && k.blocks == 0 && k.bytes == 0 && strstr(k.where, "No space"),
	       "/dev/full: ENOSPC, and nothing counted (%s)", k.where);
}

/* A writer that dies after a sync: the index names what was synced. */
static void test_crash(void)
{
	struct cw_opts o = { .noutputs = 1, .depth = 4, .sync_s = 1e-9, .quiet = true,
			     .outputs = { path("crash.bin") } };
	struct capwriter *w;
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		if (cw_open(&w, &o, &tmpl, ring_buf, RING * BS))
			_exit(1);
		for (unsigned int seq = 0; seq < 8; seq++) {
			struct fpgastream_record r = make_block(seq, seq, 0);

			cw_add(w, &r, true);
		}
		cw_drain(w);
		cw_tick(w, now_s() + 1);	/* the sync: data, then its 8 entries */
		o.sync_s = 0;
		for (unsigned int seq = 8; seq < 12; seq++) {
			struct fpgastream_record r = make_block(seq, seq, 0);

			cw_add(w, &r, true);
		}
		cw_drain(w);
		_exit(0);	/* as SIGKILL would: no close, no end record */
	}
	waitpid(pid, &st, 0);
	/* The file keeps the size fallocate gave it: what follows the 12
	 * blocks reads as zeros, and the index says where the data ends. */
	report(WIFEXITED(st) && !WEXITSTATUS(st) && size_of(o.outputs[0]) >= 12 * BS &&
	       agrees(o.outputs[0], 8, false, false),
	       "killed after a sync: 12 blocks written, the index names the 8 synced, no end record");
}

/*
 * A buffer over 1 GiB is registered with io_uring in pieces of at most
 * 1 GiB, and no write may cross from one piece to the next (a fixed write
 * must lie in one registered buffer): 16 contiguous blocks across the
 * 1 GiB mark of a 1 GiB + 2 MiB buffer must still reach the file.
 */
static void test_big_buffer(void)
{
	const size_t len = (1ul << 30) + (2ul << 20);
	struct cw_opts o = { .noutputs = 1, .depth = 8, .quiet = false, .outputs = { path("big.bin") } };
	uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *saved = ring_buf;
	struct capwriter *w;
	struct cw_counts k;
	enum cw_error e;

	if (buf == MAP_FAILED) {
		report(1, "# SKIP a 1 GiB + 2 MiB buffer: %s", strerror(errno));
		return;
	}
	/* make_block() writes slot seq % RING of ring_buf: point it 8
	 * blocks before the 1 GiB mark, so seq 0..15 straddle it. */
	ring_buf = buf + (1ul << 30) - 8 * BS;
	if (cw_open(&w, &o, &tmpl, buf, len)) {
		report(0, "a 1 GiB + 2 MiB buffer: cw_open failed");
		cw_close(w, CAPIDX_IOERR, 0);
		cw_free(w);
		ring_buf = saved;
		munmap(buf, len);
		return;
	}
	if (!w->registered) {
		/* no memory to pin a gigabyte here: not this test's point */
		report(1, "# SKIP a 1 GiB + 2 MiB buffer: io_uring could not register it");
		cw_close(w, CAPIDX_DONE, 0);
		cw_free(w);
		ring_buf = saved;
		munmap(buf, len);
		return;
	}
	for (unsigned int seq = 0; seq < RING; seq++) {
		struct fpgastream_record r = make_block(seq, seq, 0);

		r.offset += (1ul << 30) - 8 * BS;
		cw_add(w, &r, true);
	}
	cw_drain(w);
	e = cw_close(w, CAPIDX_DONE, 0);
	cw_counts(w, &k);
	report(e == CW_OK && k.blocks == RING && w->registered && agrees(o.outputs[0], RING, false, true),
	       "a 1 GiB + 2 MiB buffer is registered in two pieces; 16 blocks across the 1 GiB mark are written (%s)",
	       e == CW_OK ? "ok" : k.where);
	cw_free(w);
	ring_buf = saved;
	munmap(buf, len);
}

int main(void)
{
	bool uring;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	ring_buf = aligned_alloc(BS, RING * BS);
	test_format();
	test_load();
	uring = have_uring();
	test_writer(false);
	if (uring)
		test_writer(true);
	else
		report(1, "# SKIP io_uring: not available here");
	if (getuid() == 0) {
		test_full(false);
		if (uring)
			test_full(true);
	} else {
		report(1, "# SKIP a full disk: not root (mounts a small tmpfs)");
	}
	test_dev_full();
	test_crash();
	test_index_space();
	test_index_prealloc();
	test_force_order();
	test_sync_faults();
	if (uring)
		test_faults();
	else
		report(1, "# SKIP injected faults: they need io_uring");
	if (uring && getuid() == 0)
		test_big_buffer();
	else
		report(1, "# SKIP a buffer over 1 GiB: needs io_uring and root (it pins 1 GiB)");
	printf("1..%d\n", test_nr);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			(void)0;
	}
	return failed ? 1 : 0;
}
