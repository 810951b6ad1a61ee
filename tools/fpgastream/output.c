// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream tool, shared part: output.  Human-readable sizes; tables and
 * key-value records printed as text, or as JSON by libsmartcols (the
 * library behind lsblk and findmnt), so that no command formats JSON by
 * hand and every --json has the same shape.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libsmartcols.h>

#include "common.h"

const char *human(uint64_t bytes, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

/* Is @s a JSON integer (libsmartcols writes number cells as they are)? */
static bool json_integer(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		return !s[1];
	if (*s < '1' || *s > '9')
		return false;
	return strspn(s, "0123456789") == strlen(s);
}

static const int json_types[] = {
	[OUT_STR] = SCOLS_JSON_STRING,
	[OUT_NUM] = SCOLS_JSON_NUMBER,
	[OUT_BOOL] = SCOLS_JSON_BOOLEAN_OPTIONAL,
};

static struct libscols_table *new_scols(const char *name, bool json)
{
	struct libscols_table *tb = scols_new_table();

	if (!tb) {
		msg("out of memory");
		return NULL;
	}
	scols_table_set_name(tb, name);
	scols_table_enable_json(tb, json);
	return tb;
}

static struct libscols_column *new_column(struct libscols_table *tb, const char *name,
					  enum out_type type, bool json)
{
	struct libscols_column *cl = scols_table_new_column(tb, name, 0, 0);

	if (cl && json)
		scols_column_set_json_type(cl, json_types[type]);
	return cl;
}

/* A cell's value: @value, or for an unknown (or, in JSON, malformed) one,
 * NULL (null in JSON) or the column's text for it. */
static const char *cell(const char *value, enum out_type type, bool json, const char *unknown)
{
	if (json && value && type == OUT_NUM && !json_integer(value))
		value = NULL;
	if (json && value && type == OUT_BOOL && strcmp(value, "yes") && strcmp(value, "no") &&
	    strcmp(value, "1") && strcmp(value, "0"))
		value = NULL;
	if (!value && !json)
		value = unknown;
	return value;
}

static int print_scols(struct libscols_table *tb)
{
	int err = scols_print_table(tb);

	scols_unref_table(tb);
	if (fflush(stdout) || ferror(stdout) || err) {
		msg("standard output: %s", strerror(err ? -err : errno));
		return EX_RUNTIME;
	}
	return EX_GOOD;
}

/* ---- tables ---- */

struct out_table {
	struct libscols_table *tb;
	const struct out_col *cols;
	size_t ncols;
	bool json;
};

struct out_table *table_new(const char *name, bool json, const struct out_col *cols, size_t ncols)
{
	struct out_table *t = calloc(1, sizeof(*t));

	if (!t) {
		msg("out of memory");
		return NULL;
	}
	t->tb = new_scols(name, json);
	if (!t->tb) {
		free(t);
		return NULL;
	}
	t->cols = cols;
	t->ncols = ncols;
	t->json = json;
	for (size_t i = 0; i < ncols; i++) {
		if (!new_column(t->tb, json ? cols[i].key : cols[i].head, cols[i].type, json)) {
			scols_unref_table(t->tb);
			free(t);
			msg("out of memory");
			return NULL;
		}
	}
	return t;
}

int table_row(struct out_table *t, const char *const *cells)
{
	struct libscols_line *ln = scols_table_new_line(t->tb, NULL);

	if (!ln)
		return -ENOMEM;
	for (size_t i = 0; i < t->ncols; i++) {
		const char *v = cell(cells[i], t->cols[i].type, t->json, t->cols[i].unknown);

		if (v && scols_line_set_data(ln, i, v))
			return -ENOMEM;
	}
	return 0;
}

int table_print(struct out_table *t)
{
	int rc = print_scols(t->tb);

	free(t);
	return rc;
}

void table_free(struct out_table *t)
{
	scols_unref_table(t->tb);
	free(t);
}

/* ---- key-value records ---- */

struct kv_row {
	char *label;		/* NULL: a line as it is */
	char *value;
};

struct out_kv {
	bool json;
	struct libscols_table *tb;	/* JSON: one line, a column per key */
	struct libscols_line *ln;
	struct kv_row *rows;		/* text */
	size_t nrows;
	bool failed;			/* out of memory */
};

struct out_kv *kv_new(const char *name, bool json)
{
	struct out_kv *o = calloc(1, sizeof(*o));

	if (!o) {
		msg("out of memory");
		return NULL;
	}
	o->json = json;
	if (json) {
		o->tb = new_scols(name, true);
		o->ln = o->tb ? scols_table_new_line(o->tb, NULL) : NULL;
		if (!o->ln) {
			if (o->tb) {
				scols_unref_table(o->tb);
				msg("out of memory");
			}
			free(o);
			return NULL;
		}
	}
	return o;
}

static bool kv_has(struct out_kv *o, const char *key)
{
	struct libscols_iter *it;
	struct libscols_column *cl;
	bool found = false;

	if (!o->json)
		return false;
	it = scols_new_iter(SCOLS_ITER_FORWARD);
	while (it && !found && !scols_table_next_column(o->tb, it, &cl))
		found = !strcmp(scols_column_get_name(cl), key);
	scols_free_iter(it);
	return found;
}

void kv_json(struct out_kv *o, const char *key, enum out_type type, const char *value)
{
	struct libscols_column *cl;

	if (!o->json || kv_has(o, key))
		return;
	cl = new_column(o->tb, key, type, true);
	value = cell(value, type, true, NULL);
	if (!cl || (value && scols_line_set_column_data(o->ln, cl, value)))
		o->failed = true;
}

static void add_row(struct out_kv *o, const char *label, const char *fmt, va_list ap)
{
	struct kv_row *r = realloc(o->rows, (o->nrows + 1) * sizeof(*r));

	if (!r) {
		o->failed = true;
		return;
	}
	o->rows = r;
	r += o->nrows;
	r->label = label ? strdup(label) : NULL;
	if (vasprintf(&r->value, fmt, ap) < 0 || (label && !r->label)) {
		free(r->label);
		o->failed = true;
		return;
	}
	o->nrows++;
}

void kv_text(struct out_kv *o, const char *label, const char *fmt, ...)
{
	va_list ap;

	if (o->json)
		return;
	va_start(ap, fmt);
	add_row(o, label, fmt, ap);
	va_end(ap);
}

void kv(struct out_kv *o, const char *key, enum out_type type, const char *label,
	const char *fmt, ...)
{
	va_list ap;
	char *v;

	va_start(ap, fmt);
	if (!o->json) {
		if (label)
			add_row(o, label, fmt, ap);
	} else if (vasprintf(&v, fmt, ap) < 0) {
		o->failed = true;
	} else {
		kv_json(o, key, type, v);
		free(v);
	}
	va_end(ap);
}

int kv_print(struct out_kv *o)
{
	int rc = EX_GOOD, width = 0;
	size_t i;

	if (o->failed) {
		msg("out of memory");
		rc = EX_RUNTIME;
	} else if (o->json) {
		rc = print_scols(o->tb);
		o->tb = NULL;
	} else {
		/* "label:" and the values aligned one column after the longest */
		for (i = 0; i < o->nrows; i++)
			if (o->rows[i].label && (int)strlen(o->rows[i].label) + 2 > width)
				width = (int)strlen(o->rows[i].label) + 2;
		for (i = 0; i < o->nrows; i++) {
			if (o->rows[i].label)
				printf("%s:%*s%s\n", o->rows[i].label,
				       width - (int)strlen(o->rows[i].label) - 1, "", o->rows[i].value);
			else
				printf("%s\n", o->rows[i].value);
		}
		if (fflush(stdout) || ferror(stdout)) {
			msg("standard output: %s", strerror(errno));
			rc = EX_RUNTIME;
		}
	}
	kv_free(o);
	return rc;
}

void kv_free(struct out_kv *o)
{
	if (o->tb)
		scols_unref_table(o->tb);
	for (size_t i = 0; i < o->nrows; i++) {
		free(o->rows[i].label);
		free(o->rows[i].value);
	}
	free(o->rows);
	free(o);
}
