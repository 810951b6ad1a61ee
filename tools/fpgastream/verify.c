// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream verify: check a capture file of the reference device offline,
 * block by block, against its data pattern and sequence (pattern.c).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "pattern.h"

static const char verify_help[] =
"usage: fpgastream verify FILE [--seed S]\n"
"\n"
"Check a capture of the reference device block by block: word 0 is the\n"
"source sequence number s and must increase (a gap is reported as lost\n"
"blocks), word 1 is ~s, and every other word must match the pattern for\n"
"seed S (default 0; decimal, or hexadecimal after 0x).  FILE - reads\n"
"standard input.\n"
"Exit status: 0 all good; 1 lost or bad blocks; 2 usage error; 3 I/O error.\n";

int do_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 'S' },
		OPT_HELP,
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
			if (arg_number("--seed", optarg, 0, UINT64_MAX, &seed))
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
