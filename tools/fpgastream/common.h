/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What every fpgastream subcommand shares: exit codes and messages
 * (common.c), option values parsed by one set of rules (common.c), finding,
 * opening and describing a board and its buffer (board.c), and output:
 * human-readable sizes, tables and key-value lists, as text or as JSON
 * through libsmartcols (output.c).  Each subcommand is one file, with its
 * do_NAME() entry point declared at the end.
 */
#ifndef FPGASTREAM_TOOL_COMMON_H
#define FPGASTREAM_TOOL_COMMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fpgastream.h"

/* ---- exit codes (fpgastream(1), EXIT STATUS) ---- */
#define EX_GOOD		0	/* everything fine */
#define EX_LOSS		1	/* blocks lost or verify mismatch */
#define EX_USAGE	2	/* bad command line */
#define EX_RUNTIME	3	/* could not do the job */
/* capture: why the output stopped taking data (fpgastream(1), EXIT STATUS) */
#define EX_FULL		4	/* the output filled up: ENOSPC, EDQUOT, EFBIG */
#define EX_IOERR	5	/* a write or sync of the output failed: EIO, EPIPE... */
#define EX_SHORT	6	/* a write wrote nothing and gave no error */
#define EX_EXISTS	7	/* the output exists: not overwritten without --force */

#define BLOCK_SIZE	65536u	/* the reference device's, for offline verify */
#define SYSFS_CLASS	"/sys/class/fpgastream"

/* ---- messages: "fpgastream CMD: ..." on standard error ---- */
extern const char *prog;
extern const char *cmd;		/* the running subcommand, for messages */

void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Says what is wrong and how to get help; returns EX_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* getopt found an unknown option or a missing argument: EX_USAGE. */
int bad_option(char **argv);
double now_s(void);		/* CLOCK_MONOTONIC, seconds */

/*
 * ---- options: the same spellings in every command ----
 * Each returns 0, or prints a usage error naming @opt and returns EX_USAGE.
 *
 * Numbers are decimal (010 is ten); 0x introduces hexadecimal (for seeds).
 * Sizes are a decimal number, a fraction allowed (1.5G), with an optional
 * unit: K, M, G, T (also KiB...TiB) are powers of 1024; KB, MB, GB, TB
 * are powers of 1000; B or nothing is bytes.  The result must be a whole
 * number of bytes.  Durations are a number with s (the default), ms, m
 * (or min), h or d, or several of them (1h30m).
 */
int arg_number(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);
int arg_size(const char *opt, const char *s, uint64_t *out);
int arg_duration(const char *opt, const char *s, double *out);
/* The parsers themselves: 0, -EINVAL (not of that form) or -ERANGE. */
int parse_number(const char *s, uint64_t *out);
int parse_size(const char *s, uint64_t *out);
int parse_duration(const char *s, double *out);

/*
 * The options every command spells the same way, for its struct option
 * table and its --help.  -d selects the board (board.c); -J prints JSON
 * (output.c).
 */
#define OPT_DEVICE	{ "device", required_argument, NULL, 'd' }
#define OPT_JSON	{ "json", no_argument, NULL, 'J' }
#define OPT_HELP	{ "help", no_argument, NULL, 'h' }
/* ... and those of the commands that stream (capture, bench) */
#define OPT_BUFFER	{ "buffer", required_argument, NULL, 'b' }
#define OPT_HUGEPAGES	{ "hugepages", required_argument, NULL, 'H' }	/* long only */
#define OPT_TIME	{ "time", required_argument, NULL, 't' }
#define HELP_DEVICE_IS \
"  -d, --device DEV       the board: an index (0), a name (fpgastream0), a path\n" \
"                         (/dev/fpgastream0) or a PCI address (0000:00:01.0);\n"
#define HELP_DEVICE HELP_DEVICE_IS \
"                         default 0\n"
#define HELP_JSON \
"  -J, --json             print JSON (see fpgastream(1), JSON OUTPUT)\n"
#define HELP_SIZES \
"Sizes: 64M, 1.5G; K M G T are powers of 1024, KB MB GB TB of 1000.\n"

/* ---- boards (board.c) ---- */

/*
 * The board a command works on: -d DEV, or (info and stats) a DEV
 * argument.  NULL: board 0.  Giving it twice is a usage error.
 */
int set_device(const char **dev, const char *arg);
/*
 * The options of a command that only reads a board (list, info, stats):
 * -d DEV, -J, --help, and with @operand a DEV argument.  0; -1 when it
 * printed @help; or EX_USAGE.
 */
int query_options(int argc, char **argv, const char *help, bool operand,
		  const char **dev, bool *json);
struct out_kv;
/*
 * The start of info and stats: their options, the board opened into *@h
 * and a record *@o named @table to print.  0; -1 when it printed @help;
 * EX_USAGE or EX_RUNTIME, said.
 */
int query_open(int argc, char **argv, const char *help, const char *table,
	       struct fpgastream **h, struct out_kv **o);

/* The node DEV names: 0 if found, else -ENOENT with a message said. */
int resolve_device(const char *dev, char *node, size_t len);
/* Open DEV, saying what to do when that fails; 0 or -errno. */
int open_dev(const char *dev, struct fpgastream **h);
/* /sys/class/fpgastream/NAME of an open board. */
void board_classdir(struct fpgastream *h, char *buf, size_t len);
/* The name of the board open as @fd from @path: fpgastream<N>. */
void board_name(int fd, const char *path, char *buf, size_t len);
/* Read a one-line attribute @dir/@name into @buf; false if absent. */
bool read_attr(const char *dir, const char *name, char *buf, size_t len);
/* The first of @names (NULL-terminated) that exists. */
bool read_any_attr(const char *dir, const char *const *names, char *buf, size_t len);
/* The PCI address (0000:00:01.0) a class device sits on, or "-". */
void pci_addr(const char *classdir, char *buf, size_t len);
/* Its PCI vendor:device IDs (1234:f5a0), or "-". */
void pci_ids(const char *classdir, char *buf, size_t len);
/* Its NUMA node (sysfs numa_node), or -1 when it has none or it is unknown. */
int numa_node(const char *classdir);

/* -b SIZE: a size, a non-zero multiple of 64 KiB; 0 or EX_USAGE. */
int arg_buffer(const char *opt, const char *s, uint64_t *out);
/* --hugepages SIZE: FPGASTREAM_ALLOC_* flags, or a usage error. */
int page_flags(const char *s, unsigned int *flags);
/* Allocate and map the buffer, saying what we got.  0 or EX_RUNTIME. */
int setup_buffer(struct fpgastream *h, uint64_t size, unsigned int aflags,
		 struct fpgastream_buffer *buf, struct fpgastream_map *m, bool quiet);

/* ---- output (output.c) ---- */
/* Each constructor says "out of memory" when it returns NULL. */

/* "1.5 GiB" (IEC, one decimal) or "512 B". */
const char *human(uint64_t bytes, char *buf, size_t len);

/* What a value is in JSON. */
enum out_type {
	OUT_STR,	/* a string; unknown: null */
	OUT_NUM,	/* a decimal integer as a number; unknown: null */
	OUT_BOOL,	/* "yes"/"no" (or 1/0) as true/false; unknown: null */
};

/*
 * A table: text columns as lsblk prints them, or with --json one object
 * { "NAME": [ {row}, ... ] } whose keys are the columns' json names.
 * A NULL cell is unknown: the column's text for it, null in JSON.
 */
struct out_col {
	const char *head;	/* text heading */
	const char *key;	/* JSON name */
	enum out_type type;
	const char *unknown;	/* text of an unknown cell */
};
struct out_table;
struct out_table *table_new(const char *name, bool json, const struct out_col *cols, size_t ncols);
int table_row(struct out_table *t, const char *const *cells);
/* Print and free; EX_GOOD or EX_RUNTIME. */
int table_print(struct out_table *t);
void table_free(struct out_table *t);	/* without printing */

/*
 * A record of one board: text lines "label:  value", aligned, or with
 * --json the same table shape with a single row, { "NAME": [ {...} ] }.
 * kv() gives both (a NULL label: only the JSON); kv_text() only the text
 * (a NULL label: the line as it is, not aligned), kv_json() only the JSON
 * (a NULL value: null).  The first of two fields of the same key
 * wins.
 */
struct out_kv *kv_new(const char *name, bool json);
void kv(struct out_kv *o, const char *key, enum out_type type, const char *label,
	const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void kv_text(struct out_kv *o, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void kv_json(struct out_kv *o, const char *key, enum out_type type, const char *value);
/* Print and free; EX_GOOD or EX_RUNTIME. */
int kv_print(struct out_kv *o);
void kv_free(struct out_kv *o);		/* without printing */

/* ---- the subcommands, one file each ---- */
int do_list(int argc, char **argv);
int do_info(int argc, char **argv);
int do_stats(int argc, char **argv);
int do_capture(int argc, char **argv);
int do_verify(int argc, char **argv);
int do_bench(int argc, char **argv);
int do_inspect(int argc, char **argv);

#endif /* FPGASTREAM_TOOL_COMMON_H */
