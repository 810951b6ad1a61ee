// SPDX-License-Identifier: GPL-2.0-only
/* The whole libfpgastream API: stream 1000 blocks from board 0 and sum them.
 * cc example.c $(pkg-config --cflags --libs fpgastream) */
#include <stdio.h>
#include <fpgastream.h>

int main(void)
{
	struct fpgastream *h;
	struct fpgastream_buffer buf;
	struct fpgastream_record r[64];
	unsigned long long blocks = 0, lost = 0, sum = 0;
	int err, n;

	if ((err = fpgastream_open(0, &h)))
		return fprintf(stderr, "open: %s\n", fpgastream_strerror(err)), 1;
	if ((err = fpgastream_buffer_alloc(&buf, 8 << 20, 0)) ||	/* 2 MiB pages */
	    (err = fpgastream_map(h, buf.base, buf.length, 0, NULL)) ||
	    (err = fpgastream_start(h, FPGASTREAM_START_FLOW_CONTROL, 8, 1000)))
		return fprintf(stderr, "%s %s\n", fpgastream_strerror(err), fpgastream_last_error(h)), 1;
	while (blocks < 1000 && (n = fpgastream_wait(h, r, 64, 1000)) > 0) {
		for (int i = 0; i < n; i++, blocks++) {
			sum += *(unsigned long long *)r[i].data;	/* the data, in place */
			lost += r[i].lost;
		}
		fpgastream_release(h, n);	/* hand the blocks back */
	}
	fpgastream_stop(h);
	fpgastream_close(h);	/* unmaps */
	fpgastream_buffer_free(&buf);
	printf("%llu blocks, %llu lost, sum of first words %llu\n", blocks, lost, sum);
	return blocks < 1000 || lost;
}
