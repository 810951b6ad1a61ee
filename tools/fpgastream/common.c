// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream tool, shared part: messages and exit codes, and the parsing
 * of option values (numbers, sizes, durations) that every subcommand
 * uses, so that one spelling means the same everywhere.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common.h"

const char *prog = "fpgastream";
const char *cmd = "";

static void vsay(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s%s%s: ", prog, *cmd ? " " : "", cmd);
	vfprintf(stderr, fmt, ap);
}

void msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try '%s %s%s--help')\n", prog, cmd, *cmd ? " " : "");
	return EX_USAGE;
}

int bad_option(char **argv)
{
	return usage_error("unknown option, or missing argument, at '%s'", argv[optind - 1]);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A usage error for value @s of option @opt: too large, or not @what. */
static int bad_value(const char *opt, const char *s, int err, const char *what)
{
	if (err == -ERANGE)
		return usage_error("%s: '%s' is too large", opt, s);
	return usage_error("%s: '%s' is not %s", opt, s ? s : "", what);
}

/* ---- numbers ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Leading decimal digits of *p into *v, advancing *p: -ERANGE on overflow. */
static int digits(const char **p, uint64_t *v, unsigned int *count)
{
	*v = 0;
	*count = 0;
	for (; **p >= '0' && **p <= '9'; (*p)++, (*count)++) {
		unsigned int d = (unsigned int)(**p - '0');

		if (*v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		*v = *v * 10 + d;
	}
	return 0;
}

int parse_number(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned int n;
	int d;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		if (!*s)
			return -EINVAL;
		for (; *s; s++) {
			d = hexval(*s);
			if (d < 0)
				return -EINVAL;
			if (v >> 60)
				return -ERANGE;
			v = v << 4 | (unsigned int)d;
		}
		*out = v;
		return 0;
	}
	if (digits(&s, &v, &n))
		return -ERANGE;
	if (!n || *s)
		return -EINVAL;
	*out = v;
	return 0;
}

int arg_number(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	int err = parse_number(s, out);

	if (err)
		return bad_value(opt, s, err, "a number (decimal, or hexadecimal after 0x)");
	if (*out < min && max == UINT64_MAX)
		return usage_error("%s: at least %" PRIu64 ", not %s", opt, min, s);
	if (*out < min || *out > max)
		return usage_error("%s: %" PRIu64 " to %" PRIu64 ", not %s", opt, min, max, s);
	return 0;
}

/* ---- sizes ---- */

static const struct {
	const char *suffix;
	unsigned int twos, fives;	/* the unit is 2^twos * 5^fives bytes */
} size_units[] = {
	/* IEC, and K M G T alone, which mean the same */
	{ "KiB", 10, 0 }, { "MiB", 20, 0 }, { "GiB", 30, 0 }, { "TiB", 40, 0 },
	{ "K", 10, 0 }, { "M", 20, 0 }, { "G", 30, 0 }, { "T", 40, 0 },
	/* SI */
	{ "KB", 3, 3 }, { "MB", 6, 6 }, { "GB", 9, 9 }, { "TB", 12, 12 },
	{ "B", 0, 0 }, { "", 0, 0 },
};

/* x * 5^up / 5^down (or 2), exactly: -ERANGE on overflow, -EINVAL if inexact. */
static int scale(uint64_t *x, unsigned int base, unsigned int up, unsigned int down)
{
	for (; up > down; up--) {
		if (*x > UINT64_MAX / base)
			return -ERANGE;
		*x *= base;
	}
	for (; down > up; down--) {
		if (*x % base)
			return -EINVAL;
		*x /= base;
	}
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t whole, frac = 0, bytes;
	unsigned int nw, nf = 0, i;
	const char *p = s;
	int err;

	if (!s)
		return -EINVAL;
	if (digits(&p, &whole, &nw))
		return -ERANGE;
	if (*p == '.') {
		p++;
		/* 19 digits fit in 64 bits; more would be finer than a byte. */
		if (digits(&p, &frac, &nf) || nf > 19)
			return -EINVAL;
		nw += nf;
		for (; nf && frac % 10 == 0; nf--)
			frac /= 10;
	}
	if (!nw)
		return -EINVAL;		/* no digit at all */
	for (i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++)
		if (!strcasecmp(p, size_units[i].suffix))
			break;
	if (i == sizeof(size_units) / sizeof(size_units[0]))
		return -EINVAL;
	/* whole * unit + frac * unit / 10^nf, each part exact */
	bytes = whole;
	err = scale(&bytes, 2, size_units[i].twos, 0);
	if (!err)
		err = scale(&bytes, 5, size_units[i].fives, 0);
	if (!err && nf) {
		/* fives first: for K...T that divides, and fails when inexact,
		 * before the twos multiply */
		err = scale(&frac, 5, size_units[i].fives, nf);
		if (!err)
			err = scale(&frac, 2, size_units[i].twos, nf);
		if (!err && bytes > UINT64_MAX - frac)
			err = -ERANGE;
		bytes += frac;
	}
	if (err)
		return err;
	*out = bytes;
	return 0;
}

int arg_size(const char *opt, const char *s, uint64_t *out)
{
	int err = parse_size(s, out);

	if (err)
		return bad_value(opt, s, err,
				 "a size in whole bytes (64M, 1.5G; K, M, G, T are powers of 1024, KB, MB, GB, TB of 1000)");
	return 0;
}

/* ---- durations ---- */

static const struct {
	const char *unit;
	double seconds;
} time_units[] = {
	/* longest first: "ms" and "min" before "m" */
	{ "min", 60 }, { "ms", 1e-3 }, { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 },
};

int parse_duration(const char *s, double *out)
{
	const char *p = s;
	double total = 0;
	int parts = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		uint64_t whole, frac = 0;
		unsigned int nw, nf = 0, i;
		double v, unit = 0;

		if (digits(&p, &whole, &nw))
			return -ERANGE;
		if (*p == '.') {
			p++;
			if (digits(&p, &frac, &nf))
				return -EINVAL;
		}
		if (!nw && !nf)
			return -EINVAL;
		v = (double)frac;
		for (; nf; nf--)
			v /= 10;
		v += (double)whole;
		for (i = 0; i < sizeof(time_units) / sizeof(time_units[0]); i++) {
			size_t l = strlen(time_units[i].unit);

			if (!strncmp(p, time_units[i].unit, l)) {
				unit = time_units[i].seconds;
				p += l;
				break;
			}
		}
		/* A bare number is seconds, but only alone: 1h30 is unclear. */
		if (!unit) {
			if (parts || *p)
				return -EINVAL;
			unit = 1;
		}
		total += v * unit;
		parts++;
	}
	*out = total;
	return 0;
}

int arg_duration(const char *opt, const char *s, double *out)
{
	if (parse_duration(s, out) || !(*out > 0) || *out > 1e9)
		return bad_value(opt, s, -EINVAL,
				 "a positive duration (seconds, or 90s, 500ms, 5m, 2h, 1h30m)");
	return 0;
}
