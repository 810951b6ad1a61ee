// SPDX-License-Identifier: GPL-2.0-only
/*
 * fpgastream tool, shared part: the board.  -d DEV and the options of the
 * commands that read a board, which node a DEV names (an index, a name, a
 * path or a PCI address), opening it with a message that says what to do, its facts in sysfs (PCI address and IDs, NUMA node,
 * attributes), and the buffer that capture and bench allocate and map.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common.h"

/* ---- the board a command works on ---- */

int set_device(const char **dev, const char *arg)
{
	if (*dev)
		return usage_error("the board is given twice ('%s' and '%s')", *dev, arg);
	*dev = arg;
	return 0;
}

int query_options(int argc, char **argv, const char *help, bool operand,
		  const char **dev, bool *json)
{
	static const struct option opts[] = { OPT_DEVICE, OPT_JSON, OPT_HELP, { 0 } };
	int c;

	while ((c = getopt_long(argc, argv, "d:Jh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (set_device(dev, optarg))
				return EX_USAGE;
			break;
		case 'J': *json = true; break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return bad_option(argv);
		}
	}
	if (argc - optind > (operand ? 1 : 0))
		return usage_error("unexpected argument '%s'", argv[optind + operand]);
	if (optind < argc)
		return set_device(dev, argv[optind]);
	return 0;
}

int query_open(int argc, char **argv, const char *help, const char *table,
	       struct fpgastream **h, struct out_kv **o)
{
	const char *dev = NULL;
	bool json = false;
	int rc = query_options(argc, argv, help, true, &dev, &json);

	if (rc)
		return rc;
	if (open_dev(dev, h))
		return EX_RUNTIME;
	*o = kv_new(table, json);
	if (!*o) {
		fpgastream_close(*h);
		return EX_RUNTIME;
	}
	return 0;
}

/* ---- finding and opening it ---- */

/* A PCI address, DDDD:BB:DD.F or BB:DD.F: written out in full into @full. */
static bool pci_address(const char *s, char *full, size_t len)
{
	unsigned int dom = 0, bus, dev, fn;
	char end;

	if (strspn(s, "0123456789abcdefABCDEF:.") != strlen(s) || !strchr(s, ':'))
		return false;
	if (sscanf(s, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &end) != 4) {
		dom = 0;
		if (sscanf(s, "%x:%x.%x%c", &bus, &dev, &fn, &end) != 3)
			return false;
	}
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return false;
	snprintf(full, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return true;
}

/* The board at PCI address @full: /dev/NAME in @node. */
static int board_at(const char *full, char *node, size_t len)
{
	char classdir[PATH_MAX], pci[64];
	struct dirent *e;
	DIR *d = opendir(SYSFS_CLASS);
	int err = -ENOENT;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(classdir, sizeof(classdir), SYSFS_CLASS "/%s", e->d_name);
		pci_addr(classdir, pci, sizeof(pci));
		if (!strcasecmp(pci, full)) {
			snprintf(node, len, "/dev/%s", e->d_name);
			err = 0;
			break;
		}
	}
	if (d)
		closedir(d);
	return err;
}

int resolve_device(const char *dev, char *node, size_t len)
{
	char full[32];

	if (!dev)
		dev = "0";
	if (strchr(dev, '/')) {
		snprintf(node, len, "%s", dev);
	} else if (pci_address(dev, full, sizeof(full))) {
		if (board_at(full, node, len)) {
			msg("%s: no fpgastream board at this PCI address: is the module loaded (modprobe fpgastream)? 'fpgastream list' shows the boards",
			    dev);
			return -ENOENT;
		}
	} else if (dev[0] >= '0' && dev[0] <= '9') {
		snprintf(node, len, "/dev/fpgastream%s", dev);
	} else {
		snprintf(node, len, "/dev/%s", dev);
	}
	return 0;
}

int open_dev(const char *dev, struct fpgastream **h)
{
	char path[PATH_MAX];
	int err = resolve_device(dev, path, sizeof(path));

	if (err)
		return err;
	err = fpgastream_open_path(path, h);
	if (err == -ENOENT)
		msg("%s: no such board: is the module loaded (modprobe fpgastream)? 'fpgastream list' shows the boards",
		    path);
	else if (err == -EACCES || err == -EPERM)
		msg("%s: permission denied: add yourself to group fpgastream (usermod -aG fpgastream $USER, then log in again)",
		    path);
	else if (err)
		msg("%s: %s", path, fpgastream_strerror(err));
	return err;
}

/*
 * The class device of the node open as @fd, found by its device number
 * (so that a udev symlink works too); else the basename of @path.
 */
void board_name(int fd, const char *path, char *buf, size_t len)
{
	char link[64], target[PATH_MAX];
	const char *p = path;
	struct stat st;
	ssize_t n;

	if (!fstat(fd, &st) && S_ISCHR(st.st_mode)) {
		snprintf(link, sizeof(link), "/sys/dev/char/%u:%u",
			 major(st.st_rdev), minor(st.st_rdev));
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			p = target;
		}
	}
	if (strrchr(p, '/'))
		p = strrchr(p, '/') + 1;
	snprintf(buf, len, "%.*s", (int)len - 1, p);
}

void board_classdir(struct fpgastream *h, char *buf, size_t len)
{
	char name[NAME_MAX + 1];

	board_name(fpgastream_fd(h), fpgastream_path(h), name, sizeof(name));
	snprintf(buf, len, SYSFS_CLASS "/%s", name);
}

bool read_attr(const char *dir, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX + 256];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return true;
}

bool read_any_attr(const char *dir, const char *const *names, char *buf, size_t len)
{
	for (; *names; names++)
		if (read_attr(dir, *names, buf, len))
			return true;
	return false;
}

void pci_addr(const char *classdir, char *buf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *base;

	snprintf(path, sizeof(path), "%s/device", classdir);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(buf, len, "%.63s", base ? base + 1 : target);
}

void pci_ids(const char *classdir, char *buf, size_t len)
{
	char dir[PATH_MAX], v[32], d[32];

	snprintf(dir, sizeof(dir), "%s/device", classdir);
	if (read_attr(dir, "vendor", v, sizeof(v)) && read_attr(dir, "device", d, sizeof(d)))
		snprintf(buf, len, "%s:%s", v + (strncmp(v, "0x", 2) ? 0 : 2),
			 d + (strncmp(d, "0x", 2) ? 0 : 2));
	else
		snprintf(buf, len, "-");
}

int numa_node(const char *classdir)
{
	char dir[PATH_MAX], v[32], *end;
	long node;

	snprintf(dir, sizeof(dir), "%s/device", classdir);
	if (!read_attr(dir, "numa_node", v, sizeof(v)))
		return -1;
	errno = 0;
	node = strtol(v, &end, 10);
	if (errno || end == v || *end || node < 0 || node > INT_MAX)
		return -1;
	return (int)node;
}

/* ---- the buffer of capture and bench ---- */

int arg_buffer(const char *opt, const char *s, uint64_t *out)
{
	if (arg_size(opt, s, out))
		return EX_USAGE;
	if (*out == 0 || *out % BLOCK_SIZE)
		return usage_error("%s: the buffer must be a non-zero multiple of 64K, not %" PRIu64 " bytes",
				   opt, *out);
	return 0;
}

int page_flags(const char *s, unsigned int *flags)
{
	if (!strcasecmp(s, "2M") || !strcasecmp(s, "2MiB") || !strcasecmp(s, "2MB"))
		*flags = 0;
	else if (!strcasecmp(s, "1G") || !strcasecmp(s, "1GiB") || !strcasecmp(s, "1GB"))
		*flags = FPGASTREAM_ALLOC_1G;
	else if (!strcasecmp(s, "none") || !strcasecmp(s, "4K"))
		*flags = FPGASTREAM_ALLOC_4K;
	else
		return usage_error("--hugepages: '%s' is not 2M, 1G or none", s);
	return 0;
}

int setup_buffer(struct fpgastream *h, uint64_t size, unsigned int aflags,
		 struct fpgastream_buffer *buf, struct fpgastream_map *m, bool quiet)
{
	int err;
	char b[32];

	err = fpgastream_buffer_alloc(buf, size, aflags);
	if (err) {
		msg("cannot allocate a %s buffer: %s", human(size, b, sizeof(b)),
		    buf->note[0] ? buf->note : fpgastream_strerror(err));
		return EX_RUNTIME;
	}
	if (buf->note[0] && !quiet)
		msg("note: %s", buf->note);
	err = fpgastream_map(h, buf->base, buf->length, 0, m);
	if (err) {
		msg("%s", fpgastream_last_error(h));
		fpgastream_buffer_free(buf);
		return EX_RUNTIME;
	}
	if ((m->mapped_flags & FPGASTREAM_MAPPED_BOUNCED) && !quiet)
		msg("note: the kernel bounces this buffer through swiotlb: every block is copied once more");
	return 0;
}
