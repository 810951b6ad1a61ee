// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream list: every board (or the one -d names) as a table, or with
 * --json as { "boards": [ ... ] }.  Facts come from sysfs and, where sysfs
 * lacks them, from the board's INFO ioctl.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

static const char list_help[] =
"usage: fpgastream list [-d DEV] [-J] [--help]\n"
"\n"
"List every fpgastream board, or the one DEV names: device node, PCI address,\n"
"PCI IDs, LUT capacity (entries), DMA address bits, whether DMA goes through\n"
"an IOMMU, and state.  Facts come from /sys/class/fpgastream/ and, where sysfs\n"
"lacks them, from the board (INFO ioctl).\n"
"\n"
HELP_DEVICE_IS
"                         default: every board\n"
HELP_JSON;

static const char *const attr_lut[] = { "lut_capacity", NULL };
static const char *const attr_dma[] = { "dma_addr_bits", NULL };
static const char *const attr_iommu[] = { "iommu", NULL };
static const char *const attr_state[] = { "state", "status", NULL };

enum { C_NODE, C_PCI, C_IDS, C_LUT, C_DMA, C_IOMMU, C_STATE, NCOLS };

static const struct out_col cols[NCOLS] = {
	[C_NODE] = { "DEVICE", "device", OUT_STR, "-" },
	[C_PCI] = { "PCI", "pci", OUT_STR, "-" },
	[C_IDS] = { "ID", "id", OUT_STR, "-" },
	[C_LUT] = { "LUT", "lut_capacity", OUT_NUM, "?" },
	[C_DMA] = { "DMA", "dma_addr_bits", OUT_NUM, "?" },
	[C_IOMMU] = { "IOMMU", "iommu", OUT_BOOL, "?" },
	[C_STATE] = { "STATE", "state", OUT_STR, "-" },
};

struct board_row {
	char node[PATH_MAX];
	char pci[64];
	char ids[32];
	char lut[32];
	char dma[32];
	char iommu[32];
	char state[64];
};

/* One board's row; an empty field is unknown. */
static void fill_row(const char *classdir, const char *node, struct board_row *r)
{
	struct fpgastream *h = NULL;
	struct fpgastream_info info;

	memset(r, 0, sizeof(*r));
	snprintf(r->node, sizeof(r->node), "%s", node);
	if (classdir) {
		pci_addr(classdir, r->pci, sizeof(r->pci));
		pci_ids(classdir, r->ids, sizeof(r->ids));
		read_any_attr(classdir, attr_lut, r->lut, sizeof(r->lut));
		read_any_attr(classdir, attr_dma, r->dma, sizeof(r->dma));
		read_any_attr(classdir, attr_iommu, r->iommu, sizeof(r->iommu));
		read_any_attr(classdir, attr_state, r->state, sizeof(r->state));
	}
	if ((!r->lut[0] || !r->dma[0] || !r->iommu[0]) && fpgastream_open_path(node, &h) == 0) {
		fpgastream_info(h, &info);
		if (!r->lut[0])
			snprintf(r->lut, sizeof(r->lut), "%u", info.lut_capacity);
		if (!r->dma[0])
			snprintf(r->dma, sizeof(r->dma), "%u", info.dma_addr_bits);
		if (!r->iommu[0])
			snprintf(r->iommu, sizeof(r->iommu), "%s",
				 info.flags & FPGASTREAM_INFO_IOMMU ? "yes" : "no");
		fpgastream_close(h);
	}
	if (!strcmp(r->iommu, "1"))
		snprintf(r->iommu, sizeof(r->iommu), "yes");
	else if (!strcmp(r->iommu, "0"))
		snprintf(r->iommu, sizeof(r->iommu), "no");
}

/* Do paths @a and @b name the same device node (a udev link counts)? */
static bool same_node(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, b))
		return true;
	return !stat(a, &sa) && !stat(b, &sb) && S_ISCHR(sa.st_mode) && S_ISCHR(sb.st_mode) &&
	       sa.st_rdev == sb.st_rdev;
}

static const char *known(const char *s)
{
	return s[0] && strcmp(s, "-") ? s : NULL;
}

static int cmp_str(const void *a, const void *b)
{
	/* fpgastream2 before fpgastream10 */
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);

	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

/* The boards' names (fpgastreamN), sorted; whether they came from sysfs. */
static int find_boards(char **names, int max, bool *from_sysfs)
{
	struct dirent *e;
	glob_t g;
	int n = 0;
	DIR *d = opendir(SYSFS_CLASS);

	*from_sysfs = d != NULL;
	if (d) {
		while ((e = readdir(d)) && n < max)
			if (e->d_name[0] != '.')
				names[n++] = strdup(e->d_name);
		closedir(d);
	} else if (glob("/dev/fpgastream*", 0, NULL, &g) == 0) {
		for (size_t k = 0; k < g.gl_pathc && n < max; k++)
			names[n++] = strdup(g.gl_pathv[k] + 5);
		globfree(&g);
	}
	qsort(names, n, sizeof(names[0]), cmp_str);
	return n;
}

int do_list(int argc, char **argv)
{
	char *names[256], want[PATH_MAX] = "";
	const char *dev = NULL;
	bool from_sysfs, json = false;
	struct out_table *t;
	int n, i, rc, shown = 0;

	rc = query_options(argc, argv, list_help, false, &dev, &json);
	if (rc)
		return rc < 0 ? EX_GOOD : rc;
	if (dev && resolve_device(dev, want, sizeof(want)))
		return EX_RUNTIME;

	n = find_boards(names, 256, &from_sysfs);
	t = table_new("boards", json, cols, NCOLS);
	if (!t)
		return EX_RUNTIME;
	for (i = 0; i < n; i++) {
		char classdir[PATH_MAX], node[PATH_MAX];
		struct board_row r;
		const char *const *cells;

		snprintf(classdir, sizeof(classdir), SYSFS_CLASS "/%s", names[i]);
		snprintf(node, sizeof(node), "/dev/%s", names[i]);
		free(names[i]);
		if (want[0] && !same_node(want, node))
			continue;
		fill_row(from_sysfs ? classdir : NULL, node, &r);
		cells = (const char *[NCOLS]){
			[C_NODE] = r.node, [C_PCI] = known(r.pci), [C_IDS] = known(r.ids),
			[C_LUT] = known(r.lut), [C_DMA] = known(r.dma),
			[C_IOMMU] = known(r.iommu), [C_STATE] = known(r.state),
		};
		if (table_row(t, cells)) {
			table_free(t);
			msg("out of memory");
			return EX_RUNTIME;
		}
		shown++;
	}
	if (want[0] && !shown) {
		table_free(t);
		msg("%s: no such board: 'fpgastream list' shows the boards", want);
		return EX_RUNTIME;
	}
	if (!shown)
		msg("no boards found: is the module loaded (modprobe fpgastream) and a board present (lspci)?");
	if (!shown && !json) {
		table_free(t);
		return EX_GOOD;
	}
	return table_print(t);
}
