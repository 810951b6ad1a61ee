// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream info: one board's facts (INFO ioctl, PCI, NUMA node) and
 * every attribute its driver exports in sysfs, as "label: value" lines or
 * with --json as { "boards": [ { ... } ] }.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

static const char info_help[] =
"usage: fpgastream info [-d DEV | DEV] [-J] [--help]\n"
"\n"
"Show a board's facts: PCI address and IDs, ABI and hardware versions, block\n"
"size, LUT capacity, largest buffer, DMA address bits, IOMMU, NUMA node, and\n"
"every other attribute the driver exports in sysfs.\n"
"\n"
HELP_DEVICE_IS
"                         default 0; or DEV alone, as the argument\n"
HELP_JSON;

/* Is @s a decimal integer, so that JSON shows it as a number? */
static bool decimal(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s) && (s[0] != '0' || !s[1]);
}

/* The driver's other attributes, by name: a "sysfs:" section, or keys of
 * their own. */
static void sysfs_attrs(struct out_kv *o, const char *classdir)
{
	char path[PATH_MAX + 256], buf[256];
	struct dirent **names;
	struct stat st;
	bool first = true;
	int n = scandir(classdir, &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;

		snprintf(path, sizeof(path), "%s/%s", classdir, name);
		if (name[0] != '.' && strcmp(name, "uevent") && strcmp(name, "dev") &&
		    !lstat(path, &st) && S_ISREG(st.st_mode) && (st.st_mode & 0444) &&
		    read_attr(classdir, name, buf, sizeof(buf)) && !strchr(buf, '\n')) {
			if (first)
				kv_text(o, NULL, "sysfs:");
			first = false;
			kv_text(o, NULL, "  %-20s %s", name, buf);
			/* Facts above of the same name (iommu) come first. */
			kv_json(o, name, decimal(buf) ? OUT_NUM : OUT_STR, buf);
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

int do_info(int argc, char **argv)
{
	struct fpgastream *h;
	struct fpgastream_info info;
	char classdir[PATH_MAX], buf[32], pci[64], ids[32];
	struct out_kv *o;
	int rc, node;

	rc = query_open(argc, argv, info_help, "boards", &h, &o);
	if (rc)
		return rc < 0 ? EX_GOOD : rc;
	fpgastream_info(h, &info);
	board_classdir(h, classdir, sizeof(classdir));
	pci_addr(classdir, pci, sizeof(pci));
	pci_ids(classdir, ids, sizeof(ids));
	node = numa_node(classdir);

	kv(o, "device", OUT_STR, "device", "%s", fpgastream_path(h));
	kv_text(o, "pci", "%s (%s)", pci, ids);
	kv_json(o, "pci", OUT_STR, strcmp(pci, "-") ? pci : NULL);
	kv_json(o, "id", OUT_STR, strcmp(ids, "-") ? ids : NULL);
	kv(o, "abi_version", OUT_NUM, "abi version", "%u", info.abi_version);
	kv(o, "hw_version", OUT_STR, "hw version", "%u.%u",
	   info.hw_version >> 16, info.hw_version & 0xffff);
	kv(o, "block_size", OUT_NUM, "block size", "%u", info.block_size);
	kv_text(o, "lut capacity", "%u entries", info.lut_capacity);
	kv(o, "lut_capacity", OUT_NUM, NULL, "%u", info.lut_capacity);
	kv_text(o, "max buffer size", "%" PRIu64 " (%s)", (uint64_t)info.max_buffer_size,
		human(info.max_buffer_size, buf, sizeof(buf)));
	kv(o, "max_buffer_size", OUT_NUM, NULL, "%" PRIu64, (uint64_t)info.max_buffer_size);
	kv(o, "dma_addr_bits", OUT_NUM, "dma address bits", "%u", info.dma_addr_bits);
	kv(o, "iommu", OUT_BOOL, "iommu", "%s", info.flags & FPGASTREAM_INFO_IOMMU ? "yes" : "no");
	if (node >= 0) {
		kv(o, "numa_node", OUT_NUM, "numa node", "%d", node);
	} else {
		kv_text(o, "numa node", "none");
		kv_json(o, "numa_node", OUT_NUM, NULL);
	}
	sysfs_attrs(o, classdir);
	fpgastream_close(h);
	return kv_print(o);
}
