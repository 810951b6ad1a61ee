// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream: list boards, show them, capture their stream to a file,
 * verify captures of the reference device, and measure.  This file is the
 * entry point: the command table, --help and --version; each command is
 * in a file of its own (list.c, info.c, ...), and what they share is in
 * common.h.  See fpgastream(1).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "common.h"

static const struct command {
	const char *name;
	const char *args;	/* in the command overview */
	const char *what;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "list", "[-d DEV] [-J]", "list the boards", do_list },
	{ "info", "[DEV] [-J]", "show a board's facts", do_info },
	{ "stats", "[DEV] [-J]", "show the driver's counters", do_stats },
	{ "capture", "[OPTIONS]", "stream a board to a file, optionally verifying", do_capture },
	{ "verify", "FILE... [--seed S]", "check a capture of the reference device offline", do_verify },
	{ "inspect", "FILE [-J]", "print a capture's index", do_inspect },
	{ "bench", "[OPTIONS]", "measure MAP/UNMAP times and streaming rates", do_bench },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void main_help(void)
{
	char left[64];

	fputs("usage: fpgastream [--help | --version] COMMAND [ARGS]\n"
	      "\n"
	      "Commands (each takes --help):\n", stdout);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
		printf("  %-25s %s\n", left, commands[i].what);
	}
	fputs("\n"
	      "Every command that works on a board takes -d DEV: an index (0), a name\n"
	      "(fpgastream0), a path or a PCI address (0000:00:01.0); default 0.\n"
	      "Numbers are decimal (0x for hexadecimal).  Sizes take K, M, G, T (powers of\n"
	      "1024; also KiB...) or KB, MB, GB, TB (powers of 1000), and fractions (1.5G).\n"
	      "Durations are seconds, or take ms, s, m, h, d (90s, 5m, 2h, 1h30m).\n"
	      "-J (--json) prints JSON.\n"
	      "Exit status: 0 all good; 1 blocks lost or failed verification; 2 usage\n"
	      "error; 3 runtime error (no board, permission, memory, I/O); capture: 4 the\n"
	      "output filled up, 5 a write failed, 6 a write wrote nothing, 7 the output\n"
	      "exists (see fpgastream(1), EXIT STATUS).\n", stdout);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	opterr = 0;	/* bad_option() says it, with the command's name */
	if (argc < 2)
		return usage_error("no command given");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		main_help();
		return EX_GOOD;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("fpgastream %s (libfpgastream %s)\n", FPGASTREAM_LIB_VERSION,
		       fpgastream_version());
		return EX_GOOD;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (!strcmp(argv[1], commands[i].name)) {
			cmd = commands[i].name;
			optind = 1;
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	return usage_error("unknown command '%s'", argv[1]);
}
