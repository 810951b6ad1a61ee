/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small strict JSON parser (RFC 8259) for the tool's tests, since the
 * busybox guest has no jq or python: it takes exactly one value with
 * optional white space around it, rejects what the RFC does not allow
 * (trailing commas, bare words, leading zeros, control characters in
 * strings, bad escapes and surrogates, invalid UTF-8) and, stricter than
 * the RFC, objects with a key twice.  Numbers keep their text, so that
 * 64-bit values compare exactly.
 */
#ifndef JSON_CHECK_H
#define JSON_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool b;			/* J_BOOL */
	char *text;		/* J_NUM: as written; J_STR: decoded UTF-8 */
	size_t n;		/* J_ARR, J_OBJ: members */
	struct jval *items;
	char **keys;		/* J_OBJ */
};

struct jparser {
	const char *p;
	int depth;
	char err[160];
};

static bool jp_fail(struct jparser *jp, const char *what)
{
	if (!jp->err[0])
		snprintf(jp->err, sizeof(jp->err), "%s at '%.20s'", what, jp->p);
	return false;
}

static void jp_space(struct jparser *jp)
{
	while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')
		jp->p++;
}

static void jv_free(struct jval *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jv_free(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->text);
	memset(v, 0, sizeof(*v));
}

/* Append code point @c as UTF-8. */
static void jp_utf8(char *out, size_t *len, unsigned long c)
{
	if (c < 0x80) {
		out[(*len)++] = (char)c;
	} else if (c < 0x800) {
		out[(*len)++] = (char)(0xc0 | c >> 6);
		out[(*len)++] = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		out[(*len)++] = (char)(0xe0 | c >> 12);
		out[(*len)++] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[(*len)++] = (char)(0x80 | (c & 0x3f));
	} else {
		out[(*len)++] = (char)(0xf0 | c >> 18);
		out[(*len)++] = (char)(0x80 | ((c >> 12) & 0x3f));
		out[(*len)++] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[(*len)++] = (char)(0x80 | (c & 0x3f));
	}
}

static bool jp_hex4(struct jparser *jp, unsigned long *c)
{
	*c = 0;
	for (int i = 0; i < 4; i++, jp->p++) {
		char h = *jp->p;

		*c <<= 4;
		if (h >= '0' && h <= '9')
			*c |= (unsigned long)(h - '0');
		else if (h >= 'a' && h <= 'f')
			*c |= (unsigned long)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			*c |= (unsigned long)(h - 'A' + 10);
		else
			return jp_fail(jp, "bad \\u escape");
	}
	return true;
}

/* One UTF-8 sequence of the input, well formed (no overlong, no surrogate). */
static bool jp_utf8_in(struct jparser *jp, char *out, size_t *len)
{
	const unsigned char *s = (const unsigned char *)jp->p;
	unsigned long c;
	int more;

	if (s[0] < 0x80)
		more = 0, c = s[0];
	else if (s[0] >= 0xc2 && s[0] <= 0xdf)
		more = 1, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		more = 2, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		more = 3, c = s[0] & 0x07;
	else
		return jp_fail(jp, "invalid UTF-8");
	for (int i = 1; i <= more; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return jp_fail(jp, "invalid UTF-8");
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((more == 2 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (more == 3 && (c < 0x10000 || c > 0x10ffff)))
		return jp_fail(jp, "invalid UTF-8");
	memcpy(out + *len, jp->p, (size_t)more + 1);
	*len += (size_t)more + 1;
	jp->p += more + 1;
	return true;
}

static bool jp_string(struct jparser *jp, char **out)
{
	size_t len = 0;
	char *s;

	if (*jp->p != '"')
		return jp_fail(jp, "string expected");
	jp->p++;
	s = malloc(strlen(jp->p) + 1);	/* never longer than its source */
	if (!s)
		return jp_fail(jp, "out of memory");
	while (*jp->p != '"') {
		unsigned long c, lo;

		if ((unsigned char)*jp->p < 0x20) {
			free(s);
			return jp_fail(jp, *jp->p ? "control character in a string" : "unterminated string");
		}
		if (*jp->p != '\\') {
			if (!jp_utf8_in(jp, s, &len)) {
				free(s);
				return false;
			}
			continue;
		}
		jp->p++;
		switch (*jp->p++) {
		case '"': s[len++] = '"'; break;
		case '\\': s[len++] = '\\'; break;
		case '/': s[len++] = '/'; break;
		case 'b': s[len++] = '\b'; break;
		case 'f': s[len++] = '\f'; break;
		case 'n': s[len++] = '\n'; break;
		case 'r': s[len++] = '\r'; break;
		case 't': s[len++] = '\t'; break;
		case 'u':
			if (!jp_hex4(jp, &c))
				break;
			if (c >= 0xdc00 && c <= 0xdfff) {
				jp_fail(jp, "lone low surrogate");
				break;
			}
			if (c >= 0xd800 && c <= 0xdbff) {
				if (jp->p[0] != '\\' || jp->p[1] != 'u') {
					jp_fail(jp, "lone high surrogate");
					break;
				}
				jp->p += 2;
				if (!jp_hex4(jp, &lo))
					break;
				if (lo < 0xdc00 || lo > 0xdfff) {
					jp_fail(jp, "bad surrogate pair");
					break;
				}
				c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (c == 0) {
				jp_fail(jp, "NUL in a string");	/* would cut our C string */
				break;
			}
			jp_utf8(s, &len, c);
			break;
		default:
			jp->p--;
			jp_fail(jp, "bad escape");
		}
		if (jp->err[0]) {
			free(s);
			return false;
		}
	}
	jp->p++;
	s[len] = 0;
	*out = s;
	return true;
}

static bool jp_number(struct jparser *jp, struct jval *v)
{
	const char *start = jp->p;

	if (*jp->p == '-')
		jp->p++;
	if (*jp->p == '0')
		jp->p++;
	else if (*jp->p >= '1' && *jp->p <= '9')
		while (*jp->p >= '0' && *jp->p <= '9')
			jp->p++;
	else
		return jp_fail(jp, "bad number");
	if (*jp->p == '.') {
		jp->p++;
		if (*jp->p < '0' || *jp->p > '9')
			return jp_fail(jp, "bad fraction");
		while (*jp->p >= '0' && *jp->p <= '9')
			jp->p++;
	}
	if (*jp->p == 'e' || *jp->p == 'E') {
		jp->p++;
		if (*jp->p == '+' || *jp->p == '-')
			jp->p++;
		if (*jp->p < '0' || *jp->p > '9')
			return jp_fail(jp, "bad exponent");
		while (*jp->p >= '0' && *jp->p <= '9')
			jp->p++;
	}
	v->type = J_NUM;
	v->text = strndup(start, (size_t)(jp->p - start));
	return v->text ? true : jp_fail(jp, "out of memory");
}

static bool jp_value(struct jparser *jp, struct jval *v);

/* The members of an array or object, after its opening bracket. */
static bool jp_members(struct jparser *jp, struct jval *v, bool object)
{
	char close = object ? '}' : ']';

	jp_space(jp);
	if (*jp->p == close) {
		jp->p++;
		return true;
	}
	for (;;) {
		char *key = NULL;
		struct jval *items;
		char **keys;

		if (object) {
			jp_space(jp);
			if (!jp_string(jp, &key))
				return false;
			for (size_t i = 0; i < v->n; i++) {
				if (!strcmp(v->keys[i], key)) {
					free(key);
					return jp_fail(jp, "a key twice");
				}
			}
			jp_space(jp);
			if (*jp->p != ':') {
				free(key);
				return jp_fail(jp, "':' expected");
			}
			jp->p++;
		}
		items = realloc(v->items, (v->n + 1) * sizeof(*items));
		keys = object ? realloc(v->keys, (v->n + 1) * sizeof(*keys)) : NULL;
		if (items)
			v->items = items;
		if (keys)
			v->keys = keys;
		if (!items || (object && !keys)) {
			free(key);
			return jp_fail(jp, "out of memory");
		}
		memset(&v->items[v->n], 0, sizeof(v->items[0]));
		if (object)
			v->keys[v->n] = key;
		v->n++;
		if (!jp_value(jp, &v->items[v->n - 1]))
			return false;
		jp_space(jp);
		if (*jp->p == close) {
			jp->p++;
			return true;
		}
		if (*jp->p != ',')
			return jp_fail(jp, object ? "',' or '}' expected" : "',' or ']' expected");
		jp->p++;
	}
}

static bool jp_value(struct jparser *jp, struct jval *v)
{
	bool ok;

	jp_space(jp);
	if (++jp->depth > 64)
		return jp_fail(jp, "nested too deep");
	switch (*jp->p) {
	case '{':
	case '[':
		v->type = *jp->p == '{' ? J_OBJ : J_ARR;
		jp->p++;
		ok = jp_members(jp, v, v->type == J_OBJ);
		break;
	case '"':
		v->type = J_STR;
		ok = jp_string(jp, &v->text);
		break;
	case 't':
	case 'f':
	case 'n':
		ok = true;
		if (!strncmp(jp->p, "true", 4))
			v->type = J_BOOL, v->b = true, jp->p += 4;
		else if (!strncmp(jp->p, "false", 5))
			v->type = J_BOOL, jp->p += 5;
		else if (!strncmp(jp->p, "null", 4))
			v->type = J_NULL, jp->p += 4;
		else
			ok = jp_fail(jp, "bad literal");
		break;
	default:
		ok = jp_number(jp, v);
	}
	jp->depth--;
	return ok;
}

/* Parse all of @text into @v: true, or false with the reason in @err. */
static bool json_parse(const char *text, struct jval *v, char *err, size_t errlen)
{
	struct jparser jp = { .p = text };
	bool ok;

	memset(v, 0, sizeof(*v));
	ok = jp_value(&jp, v);
	if (ok) {
		jp_space(&jp);
		if (*jp.p)
			ok = jp_fail(&jp, "text after the value");
	}
	if (!ok) {
		jv_free(v);
		snprintf(err, errlen, "%s", jp.err);
	}
	return ok;
}

/* Member @key of object @v, or NULL. */
static const struct jval *jv_get(const struct jval *v, const char *key)
{
	if (v->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->keys[i], key))
			return &v->items[i];
	return NULL;
}

#endif /* JSON_CHECK_H */
