/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Test selection for the kselftest harness of Linux 6.1, which runs every
 * test: -f FIXTURE, -v VARIANT, -t TEST (or FIXTURE.TEST, or
 * FIXTURE.VARIANT.TEST), each repeatable, select as newer harnesses do; a
 * test runs when any of them selects it.  -l lists.  A selection that
 * matches nothing is an error, so a typo cannot pass as an empty run.
 *
 * Include after kselftest_harness.h.  A test without its own main() ends
 * with FSTR_HARNESS_MAIN; one with a main() calls fstr_harness_select()
 * first and returns its status when it is not negative.
 */
#ifndef FSTR_HARNESS_H
#define FSTR_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char *sel_f[32], *sel_v[32], *sel_t[64];
static int nsel_f, nsel_v, nsel_t;

static bool fstr_sel_in(char **list, int n, const char *name)
{
	int k;

	for (k = 0; k < n; k++)
		if (!strcmp(list[k], name))
			return true;
	return false;
}

/* Does -t select test @t of fixture @f (with variant @v, or any if NULL)? */
static bool fstr_sel_t(const char *f, const char *v, const char *t)
{
	char name[300];
	int k;

	for (k = 0; k < nsel_t; k++) {
		if (!strcmp(sel_t[k], t))
			return true;
		snprintf(name, sizeof(name), "%s.%s", f, t);
		if (!strcmp(sel_t[k], name))
			return true;
		if (v) {
			snprintf(name, sizeof(name), "%s.%s.%s", f, v, t);
			if (!strcmp(sel_t[k], name))
				return true;
		}
	}
	return false;
}

static bool fstr_sel_variant(struct __fixture_metadata *f, const char *v)
{
	struct __test_metadata *t;

	if (fstr_sel_in(sel_f, nsel_f, f->name) || fstr_sel_in(sel_v, nsel_v, v))
		return true;
	for (t = f->tests; t; t = t->next)
		if (fstr_sel_t(f->name, v, t->name))
			return true;
	return false;
}

static bool fstr_sel_test(struct __fixture_metadata *f, struct __test_metadata *t)
{
	struct __fixture_variant_metadata *v;

	if (fstr_sel_in(sel_f, nsel_f, f->name) || fstr_sel_t(f->name, NULL, t->name))
		return true;
	for (v = f->variant; v; v = v->next)
		if (fstr_sel_in(sel_v, nsel_v, v->name) || fstr_sel_t(f->name, v->name, t->name))
			return true;
	return false;
}

static void __attribute__((constructor)) __constructor_order_last(void)
{
	if (!__constructor_order)
		__constructor_order = _CONSTRUCTOR_ORDER_BACKWARD;
}

/*
 * Apply -f/-v/-t/-l to the harness's lists.  Return: -1 to go on and run
 * the tests, or the status to exit with (after -l, -h or a bad selection).
 */
static inline int fstr_harness_select(int argc, char **argv)
{
	struct __fixture_variant_metadata *v, **vp;
	struct __test_metadata *t, **tp;
	struct __fixture_metadata *f;
	bool list = false;
	int opt, selected = 0;

	while ((opt = getopt(argc, argv, "f:v:t:lh")) != -1) {
		switch (opt) {
		case 'f': if (nsel_f < 32) sel_f[nsel_f++] = optarg; break;
		case 'v': if (nsel_v < 32) sel_v[nsel_v++] = optarg; break;
		case 't': if (nsel_t < 64) sel_t[nsel_t++] = optarg; break;
		case 'l': list = true; break;
		default:
			fprintf(stderr, "usage: %s [-l] [-f FIXTURE] [-v VARIANT] [-t [FIXTURE.[VARIANT.]]TEST]...\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	for (f = __fixture_list; f; f = f->next) {
		if (nsel_f + nsel_v + nsel_t) {
			bool had_variants = f->variant;

			/* Variants first: fstr_sel_test() looks at those kept. */
			for (vp = &f->variant; *vp; )
				if (fstr_sel_variant(f, (*vp)->name))
					vp = &(*vp)->next;
				else
					*vp = (*vp)->next;
			for (tp = &f->tests; *tp; )
				if (fstr_sel_test(f, *tp))
					tp = &(*tp)->next;
				else
					*tp = (*tp)->next;
			/* The harness would run them without a variant. */
			if (had_variants && !f->variant)
				f->tests = NULL;
		}
		/* In the order the harness runs them: variant by variant. */
		for (v = f->variant; v || f->variant == NULL; v = v ? v->next : NULL) {
			for (t = f->tests; t; t = t->next) {
				selected++;
				if (list && v)
					printf("%s.%s.%s\n", f->name, v->name, t->name);
				else if (list)
					printf("%s.%s\n", f->name, t->name);
			}
			if (!v)
				break;
		}
	}
	if (list)
		return 0;
	if (!selected) {
		fprintf(stderr, "%s: the selection matches no test (-l lists them)\n", argv[0]);
		return 2;
	}
	return -1;
}

#define FSTR_HARNESS_MAIN						\
	int main(int argc, char **argv)					\
	{								\
		int ret = fstr_harness_select(argc, argv);		\
									\
		return ret >= 0 ? ret : test_harness_run(argc, argv);	\
	}

#endif /* FSTR_HARNESS_H */
