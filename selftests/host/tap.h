/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * TAP output for the host unit tests: report() prints one numbered result
 * and counts the failures, diag() a comment line. Header-only, static, so
 * that each test program has its own counters.
 */
#ifndef FSTR_HOST_TAP_H
#define FSTR_HOST_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int test_nr;
static int failed;

static inline void report(int ok, const char *fmt, ...)
{
	va_list ap;

	test_nr++;
	printf("%sok %d ", ok ? "" : "not ", test_nr);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		failed++;
}

static inline void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

#endif /* FSTR_HOST_TAP_H */
