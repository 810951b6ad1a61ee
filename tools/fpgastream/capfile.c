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

/* The whole of @fd: 0 or -errno. */
static int slurp(int fd, uint8_t **data, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t got;

		if (n == cap) {
			uint8_t *b = realloc(buf, cap * 2);

			if (!b) {
				free(buf);
				return -ENOMEM;
			}
			buf = b;
			cap *= 2;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int err = -errno;

			free(buf);
			return err;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	*data = buf;
	*len = n;
	return 0;
}

int capidx_load(const char *path, struct capidx *x, char *why, size_t whylen)
{
	uint8_t *data = NULL;
	size_t len = 0, off, bad_run = 0;
	int fd, err;

	memset(x, 0, sizeof(*x));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		return err;
	}
	err = slurp(fd, &data, &len);
	close(fd);
	if (err) {
		snprintf(why, whylen, "%s", strerror(-err));
		return err;
	}
	err = capidx_header_decode(data, len, &x->h, why, whylen);
	if (err) {
		free(data);
		return err;
	}
	x->recs = malloc(((len - x->h.header_size) / x->h.record_size + 1) * sizeof(*x->recs));
	if (!x->recs) {
		free(data);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	for (off = x->h.header_size; off + x->h.record_size <= len; off += x->h.record_size) {
		struct capidx_rec r;

		if (!capidx_rec_decode(data + off, &r)) {
			/* Bad ones at the very end are a torn write; bad ones
			 * with good ones after them are damage. */
			bad_run++;
			continue;
		}
		x->damaged += bad_run;
		bad_run = 0;
		if (x->has_end) {
			x->after_end++;
		} else if (r.kind == CAPIDX_END) {
			x->has_end = true;
			x->end = r;
		} else {
			x->recs[x->n++] = r;
		}
	}
	x->torn = bad_run + (off < len);
	free(data);
	return 0;
}

void capidx_free(struct capidx *x)
{
	free(x->recs);
	memset(x, 0, sizeof(*x));
}
