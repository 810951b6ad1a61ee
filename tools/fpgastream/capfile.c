// SPDX-License-Identifier: GPL-2.0-only
/*
 * The capture format (capfile.h, docs/capture-format.md): CRC32C, the
 * index header and records encoded byte by byte in little-endian (so that
 * the file is the same on every host, whatever the compiler pads), and
 * loading an index back.  Depends on libc alone: selftests/host builds it
 * into its test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capfile.h"

/* ---- CRC32C (Castagnoli, reflected), as iSCSI and ext4 use it ---- */

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	const uint8_t *p = data;

	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
			table[i] = c;
		}
	}
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- little-endian fields ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A string field of @len bytes: NUL-padded, always NUL-terminated. */
static void put_str(uint8_t *p, const char *s, size_t len)
{
	size_t n = strnlen(s, len - 1);

	memset(p, 0, len);
	memcpy(p, s, n);
}

static void get_str(char *s, const uint8_t *p, size_t len)
{
	memcpy(s, p, len);
	s[len - 1] = 0;
}

/* ---- the header: its layout is docs/capture-format.md's table ---- */

#define H_CRC (CAPIDX_HEADER_SIZE - 4)

void capidx_header_encode(const struct capidx_header *h, uint8_t out[CAPIDX_HEADER_SIZE])
{
	memset(out, 0, CAPIDX_HEADER_SIZE);
	memcpy(out, CAPIDX_MAGIC, sizeof(CAPIDX_MAGIC));
	put32(out + 8, CAPIDX_VERSION);
	put32(out + 12, CAPIDX_HEADER_SIZE);
	put32(out + 16, CAPIDX_RECORD_SIZE);
	put32(out + 20, h->block_size);
	put32(out + 24, h->hw_version);
	put32(out + 28, h->flags);
	put64(out + 32, h->seed);
	put64(out + 40, h->start_realtime_ns);
	put64(out + 48, h->start_monotonic_ns);
	put32(out + 56, h->file_number);
	put32(out + 60, h->stripe_index);
	put32(out + 64, h->stripe_count);
	put64(out + 72, h->blocks_before);
	put_str(out + 80, h->board, sizeof(h->board));
	put_str(out + 112, h->pci, sizeof(h->pci));
	put_str(out + 144, h->tool, sizeof(h->tool));
	put_str(out + 176, h->data_file, sizeof(h->data_file));
	put32(out + H_CRC, crc32c(0, out, H_CRC));
}

int capidx_header_decode(const uint8_t *in, size_t len, struct capidx_header *h,
			 char *why, size_t whylen)
{
	uint32_t size;

	memset(h, 0, sizeof(*h));
	if (len < 16 || memcmp(in, CAPIDX_MAGIC, sizeof(CAPIDX_MAGIC))) {
		snprintf(why, whylen, "not a capture index (no %s header)", CAPIDX_MAGIC);
		return -EINVAL;
	}
	h->version = get32(in + 8);
	size = get32(in + 12);
	/* A later version may grow the header and the records; version 1's
	 * fields stay where they are, so a reader of 1 reads what it knows. */
	if (h->version < 1 || size < CAPIDX_HEADER_SIZE || size > 1u << 20) {
		snprintf(why, whylen, "index version %u with a %u-byte header: not one this tool reads",
			 h->version, size);
		return -EPROTO;
	}
	if (len < size) {
		snprintf(why, whylen, "the index header is cut short (%zu of %u bytes)", len, size);
		return -EINVAL;
	}
	if (h->version == 1 && get32(in + H_CRC) != crc32c(0, in, H_CRC)) {
		snprintf(why, whylen, "the index header is damaged (CRC mismatch)");
		return -EINVAL;
	}
	h->header_size = size;
	h->record_size = get32(in + 16);
	if (h->record_size < CAPIDX_RECORD_SIZE || h->record_size > 4096) {
		snprintf(why, whylen, "index records of %u bytes: not a size this tool reads",
			 h->record_size);
		return -EPROTO;
	}
	h->block_size = get32(in + 20);
	h->hw_version = get32(in + 24);
	h->flags = get32(in + 28);
	h->seed = get64(in + 32);
	h->start_realtime_ns = get64(in + 40);
	h->start_monotonic_ns = get64(in + 48);
	h->file_number = get32(in + 56);
	h->stripe_index = get32(in + 60);
	h->stripe_count = get32(in + 64);
	h->blocks_before = get64(in + 72);
	get_str(h->board, in + 80, sizeof(h->board));
	get_str(h->pci, in + 112, sizeof(h->pci));
	get_str(h->tool, in + 144, sizeof(h->tool));
	get_str(h->data_file, in + 176, sizeof(h->data_file));
	return 0;
}

/* ---- records ---- */

#define R_CRC (CAPIDX_RECORD_SIZE - 4)

void capidx_rec_encode(const struct capidx_rec *r, uint8_t out[CAPIDX_RECORD_SIZE])
{
	put32(out, r->kind);
	put32(out + 4, r->length);
	put64(out + 8, r->seq);
	put64(out + 16, r->lost);
	put64(out + 24, r->timestamp_ns);
	put64(out + 32, r->offset);
	put32(out + 40, r->flags);
	put32(out + R_CRC, crc32c(0, out, R_CRC));
}

/* The CRC covers the version 1 fields; bytes a later version appends
 * have their own. */
bool capidx_rec_decode(const uint8_t *in, struct capidx_rec *r)
{
	if (get32(in + R_CRC) != crc32c(0, in, R_CRC))
		return false;
	r->kind = get32(in);
	r->length = get32(in + 4);
	r->seq = get64(in + 8);
	r->lost = get64(in + 16);
	r->timestamp_ns = get64(in + 24);
	r->offset = get64(in + 32);
	r->flags = get32(in + 40);
	return r->kind == CAPIDX_BLOCK || r->kind == CAPIDX_END;
}

/* ---- loading an index ---- */

void capidx_path(const char *data, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", data, CAPIDX_SUFFIX);
}

/* Read into @buf until @len bytes or the end: the count, or -errno. */
static ssize_t read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int capidx_open(struct capidx_reader *r, const char *path, char *why, size_t whylen)
{
	uint8_t first[CAPIDX_HEADER_SIZE];
	uint8_t *hdr;
	ssize_t got;
	int err;

	memset(r, 0, sizeof(*r));
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		err = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		return err;
	}
	got = read_full(r->fd, first, sizeof(first));
	if (got < 0) {
		snprintf(why, whylen, "%s", strerror((int)-got));
		capidx_close(r);
		return (int)got;
	}
	/* A later version's header may be longer: read the rest of it. */
	err = capidx_header_decode(first, (size_t)got, &r->h, why, whylen);
	if (err == -EINVAL && got == sizeof(first) && !memcmp(first, CAPIDX_MAGIC, sizeof(CAPIDX_MAGIC))) {
		uint32_t size = first[12] | first[13] << 8 | first[14] << 16 | (uint32_t)first[15] << 24;

		if (size > sizeof(first) && size <= 1u << 20 && (hdr = malloc(size))) {
			memcpy(hdr, first, sizeof(first));
			got = read_full(r->fd, hdr + sizeof(first), size - sizeof(first));
			err = got < 0 ? (int)got
				      : capidx_header_decode(hdr, sizeof(first) + (size_t)got, &r->h, why, whylen);
			free(hdr);
		}
	}
	if (err) {
		capidx_close(r);
		return err;
	}
	r->cap = (size_t)r->h.record_size * 4096;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		snprintf(why, whylen, "out of memory");
		capidx_close(r);
		return -ENOMEM;
	}
	return 0;
}

int capidx_next(struct capidx_reader *r, struct capidx_rec *rec, char *why, size_t whylen)
{
	const size_t rs = r->h.record_size;

	for (;;) {
		if (r->len - r->pos < rs && !r->eof) {
			ssize_t got;

			memmove(r->buf, r->buf + r->pos, r->len - r->pos);
			r->len -= r->pos;
			r->pos = 0;
			got = read_full(r->fd, r->buf + r->len, r->cap - r->len);
			if (got < 0) {
				snprintf(why, whylen, "%s", strerror((int)-got));
				return (int)got;
			}
			r->len += (size_t)got;
			r->eof = r->len < r->cap;
		}
		if (r->len - r->pos < rs) {
			/* the end: what is left is a torn tail */
			r->torn = r->bad_run + (r->len > r->pos);
			return 0;
		}
		if (!capidx_rec_decode(r->buf + r->pos, rec)) {
			r->pos += rs;
			r->bad_run++;
			continue;
		}
		r->pos += rs;
		r->damaged += r->bad_run;
		r->bad_run = 0;
		if (r->has_end) {
			r->after_end++;
		} else if (rec->kind == CAPIDX_END) {
			r->has_end = true;
			r->end = *rec;
		} else {
			r->n++;
			return 1;
		}
	}
}

void capidx_close(struct capidx_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	r->fd = -1;
	r->buf = NULL;
}

int capidx_load(const char *path, struct capidx *x, char *why, size_t whylen)
{
	struct capidx_reader r;
	struct capidx_rec rec;
	size_t cap = 1024;
	int err;

	memset(x, 0, sizeof(*x));
	err = capidx_open(&r, path, why, whylen);
	if (err)
		return err;
	x->h = r.h;
	x->recs = malloc(cap * sizeof(*x->recs));
	while (x->recs && (err = capidx_next(&r, &rec, why, whylen)) > 0) {
		if (x->n == cap) {
			struct capidx_rec *p = realloc(x->recs, 2 * cap * sizeof(*p));

			if (!p)
				break;
			x->recs = p;
			cap *= 2;
		}
		x->recs[x->n++] = rec;
	}
	if (err > 0 || !x->recs) {
		snprintf(why, whylen, "out of memory");
		err = -ENOMEM;
	}
	x->has_end = r.has_end;
	x->end = r.end;
	x->torn = r.torn;
	x->damaged = r.damaged;
	x->after_end = r.after_end;
	capidx_close(&r);
	if (err)
		capidx_free(x);
	return err;
}

void capidx_free(struct capidx *x)
{
	free(x->recs);
	memset(x, 0, sizeof(*x));
}
