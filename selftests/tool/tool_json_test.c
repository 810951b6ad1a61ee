// SPDX-License-Identifier: GPL-2.0-only
/*
 * The JSON of fpgastream list, info, stats, capture, verify and inspect
 * (VM selftest): each is parsed by a strict JSON parser (json_check.h; the
 * busybox guest has no jq), its shape checked key by key, and its values
 * compared with what the board says through the INFO and STATS ioctls and
 * sysfs, or with what capture wrote.  Errors print nothing on standard
 * output, so a script never reads half a document; a capture that ran and
 * then failed prints its summary, which says why.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fstr_vm.h"

/* The 6.1 harness is written for -Wall, not -Wextra: unused parameters in
 * its macros, and EXPECT_EQ(constant, unsigned) by design. */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"
#include "fstr_harness.h"
#include "json_check.h"

#define CLASS "/sys/class/fpgastream"

/* Run @cmdline under sh; its standard output in *out; its exit status. */
static int run(const char *cmdline, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	FILE *f = popen(cmdline, "r");
	int st;

	if (!buf || !f) {
		free(buf);
		if (f)
			pclose(f);
		*out = NULL;
		return -1;
	}
	for (;;) {
		size_t n;

		if (len + 1024 > cap) {
			char *b = realloc(buf, cap * 2);

			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		if (!n)
			break;
		len += n;
	}
	buf[len] = 0;
	*out = buf;
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A one-line sysfs attribute without its newline; false if absent. */
static bool attr(const char *dir, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX + 256];
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fv_read_text(path, buf, len))
		return false;
	n = strcspn(buf, "\n");
	buf[n] = 0;
	return true;
}

static bool is_num(const struct jval *v, uint64_t want)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRIu64, want);
	return v && v->type == J_NUM && !strcmp(v->text, s);
}

static bool is_str(const struct jval *v, const char *want)
{
	return v && v->type == J_STR && !strcmp(v->text, want);
}

/* Object @v has exactly the keys @keys (NULL-terminated), in any order. */
static bool exact_keys(const struct jval *v, const char *const *keys, char *why, size_t len)
{
	size_t n = 0;

	for (; keys[n]; n++) {
		if (!jv_get(v, keys[n])) {
			snprintf(why, len, "no key \"%s\"", keys[n]);
			return false;
		}
	}
	if (v->n != n) {
		snprintf(why, len, "%zu keys, want %zu", v->n, n);
		return false;
	}
	return true;
}

FIXTURE(json) {
	char bdf[64];
	char node[64];
	char classdir[PATH_MAX];
	struct fpgastream_info info;
	char *out;
	struct jval doc;
};

FIXTURE_SETUP(json)
{
	char path[PATH_MAX + 16], link[PATH_MAX];
	const char *base;
	ssize_t n;
	int fd;

	snprintf(self->classdir, sizeof(self->classdir), CLASS "/fpgastream0");
	snprintf(self->node, sizeof(self->node), "/dev/fpgastream0");
	snprintf(path, sizeof(path), "%s/device", self->classdir);
	n = readlink(path, link, sizeof(link) - 1);
	ASSERT_LT(0, n) TH_LOG("no board 0 (module loaded?)");
	link[n] = 0;
	base = strrchr(link, '/');
	snprintf(self->bdf, sizeof(self->bdf), "%.63s", base ? base + 1 : link);
	fd = open(self->node, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", self->node, strerror(errno));
	ASSERT_EQ(0, ioctl(fd, FPGASTREAM_IOC_INFO, &self->info));
	close(fd);
	self->out = NULL;
	memset(&self->doc, 0, sizeof(self->doc));
}

FIXTURE_TEARDOWN(json)
{
	free(self->out);
	jv_free(&self->doc);
}

/* Run a command that prints JSON: exit 0 and a document of one key, @table,
 * an array; returns the array. */
static const struct jval *table_of(struct __test_metadata *_metadata,
				   FIXTURE_DATA(json) *self, const char *cmdline, const char *table)
{
	char err[200];
	const struct jval *arr;
	int rc = run(cmdline, &self->out);

	EXPECT_EQ(0, rc) TH_LOG("%s: exit status %d", cmdline, rc);
	if (rc)
		return NULL;
	if (!json_parse(self->out, &self->doc, err, sizeof(err))) {
		TH_LOG("%s: not JSON: %s; output:\n%s", cmdline, err, self->out);
		EXPECT_TRUE(false);
		return NULL;
	}
	EXPECT_EQ(J_OBJ, self->doc.type);
	EXPECT_EQ(1, self->doc.n) TH_LOG("%s: want one key, \"%s\"", cmdline, table);
	arr = jv_get(&self->doc, table);
	EXPECT_NE(NULL, arr) TH_LOG("%s: no key \"%s\"", cmdline, table);
	if (!arr)
		return NULL;
	EXPECT_EQ(J_ARR, arr->type);
	return arr->type == J_ARR ? arr : NULL;
}

/* The facts list and info share: a row of board 0. */
static void check_board_facts(struct __test_metadata *_metadata, FIXTURE_DATA(json) *self,
			      const struct jval *b)
{
	char state[64];
	const struct jval *v;
	bool iommu = self->info.flags & FPGASTREAM_INFO_IOMMU;

	EXPECT_TRUE(is_str(jv_get(b, "device"), self->node));
	EXPECT_TRUE(is_str(jv_get(b, "pci"), self->bdf));
	EXPECT_TRUE(is_str(jv_get(b, "id"), "1234:f5a0"));
	EXPECT_TRUE(is_num(jv_get(b, "lut_capacity"), self->info.lut_capacity));
	EXPECT_TRUE(is_num(jv_get(b, "dma_addr_bits"), self->info.dma_addr_bits));
	v = jv_get(b, "iommu");
	EXPECT_TRUE(v && v->type == J_BOOL && v->b == iommu);
	ASSERT_TRUE(attr(self->classdir, "state", state, sizeof(state)));
	EXPECT_TRUE(is_str(jv_get(b, "state"), state)) TH_LOG("state, want \"%s\"", state);
}

/* The checker must refuse what is not JSON, or the other tests prove nothing. */
TEST(checker_is_strict)
{
	static const char *const bad[] = {
		"", "{", "{\"a\":1,}", "[1,]", "[1 2]", "{a:1}", "{'a':1}", "{\"a\" 1}",
		"01", "-", "1.", ".5", "1e", "+1", "0x10", "NaN", "tru", "nul", "\"a",
		"\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"", "\"a\tb\"", "\"\xc3\"",
		"\"\xc0\xaf\"", "{\"a\":1}{\"b\":2}", "{\"a\":1,\"a\":2}", "[1]]", "null x",
	};
	static const char *const good[] = {
		"{}", "[]", " {\"a\" : [1, -0, 2.5e-3, true, false, null, \"\\u00e9\\ud83d\\ude00\\n\"]} ",
		"\"\xc3\xa9\"", "0", "{\"a\":{\"b\":[[]]}}",
	};
	struct jval v;
	char err[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_FALSE(json_parse(bad[i], &v, err, sizeof(err))) TH_LOG("accepted: %s", bad[i]);
		jv_free(&v);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		EXPECT_TRUE(json_parse(good[i], &v, err, sizeof(err)))
			TH_LOG("refused: %s: %s", good[i], err);
		jv_free(&v);
	}
	ASSERT_TRUE(json_parse("{\"s\":\"\\u00e9\\ud83d\\ude00\"}", &v, err, sizeof(err)));
	EXPECT_TRUE(is_str(jv_get(&v, "s"), "\xc3\xa9\xf0\x9f\x98\x80"));
	jv_free(&v);
}

/* list --json: every board of /sys/class/fpgastream, seven keys each. */
TEST_F(json, list)
{
	static const char *const keys[] = {
		"device", "pci", "id", "lut_capacity", "dma_addr_bits", "iommu", "state", NULL
	};
	const struct jval *arr = table_of(_metadata, self, "fpgastream list --json", "boards");
	const struct jval *b0 = NULL;
	struct dirent *e;
	size_t boards = 0;
	char why[100];
	DIR *d;

	ASSERT_NE(NULL, arr);
	d = opendir(CLASS);
	ASSERT_NE(NULL, d);
	while ((e = readdir(d)))
		boards += e->d_name[0] != '.';
	closedir(d);
	EXPECT_EQ(boards, arr->n);
	for (size_t i = 0; i < arr->n; i++) {
		const struct jval *b = &arr->items[i];

		ASSERT_EQ(J_OBJ, b->type);
		EXPECT_TRUE(exact_keys(b, keys, why, sizeof(why))) TH_LOG("board %zu: %s", i, why);
		if (is_str(jv_get(b, "device"), self->node))
			b0 = b;
	}
	ASSERT_NE(NULL, b0) TH_LOG("no %s in the list", self->node);
	check_board_facts(_metadata, self, b0);
}

/* list -d by PCI address and -J: that board alone. */
TEST_F(json, list_one_board)
{
	char cmdline[128];
	const struct jval *arr;

	snprintf(cmdline, sizeof(cmdline), "fpgastream list -J -d %s", self->bdf);
	arr = table_of(_metadata, self, cmdline, "boards");
	ASSERT_NE(NULL, arr);
	ASSERT_EQ(1, arr->n);
	check_board_facts(_metadata, self, &arr->items[0]);
}

/* info --json: INFO's facts, the NUMA node, and every sysfs attribute. */
TEST_F(json, info)
{
	const struct jval *arr, *b, *v;
	char hw[32], buf[256], path[PATH_MAX + 256];
	struct dirent *e;
	struct stat st;
	long node;
	DIR *d;

	arr = table_of(_metadata, self, "fpgastream info --json", "boards");
	ASSERT_NE(NULL, arr);
	ASSERT_EQ(1, arr->n);
	b = &arr->items[0];
	ASSERT_EQ(J_OBJ, b->type);
	check_board_facts(_metadata, self, b);
	EXPECT_TRUE(is_num(jv_get(b, "abi_version"), self->info.abi_version));
	snprintf(hw, sizeof(hw), "%u.%u", self->info.hw_version >> 16, self->info.hw_version & 0xffff);
	EXPECT_TRUE(is_str(jv_get(b, "hw_version"), hw));
	EXPECT_TRUE(is_num(jv_get(b, "block_size"), 65536));
	EXPECT_TRUE(is_num(jv_get(b, "max_buffer_size"), self->info.max_buffer_size));

	/* numa_node: the PCI device's, null when it has none (-1, or no
	 * attribute at all in a kernel without CONFIG_NUMA) */
	snprintf(path, sizeof(path), "%s/device", self->classdir);
	if (!attr(path, "numa_node", buf, sizeof(buf)))
		snprintf(buf, sizeof(buf), "-1 (no attribute)");
	node = strtol(buf, NULL, 10);
	v = jv_get(b, "numa_node");
	ASSERT_NE(NULL, v);
	if (node < 0) {
		EXPECT_EQ(J_NULL, v->type) TH_LOG("numa_node %s: want null", buf);
	} else {
		EXPECT_TRUE(is_num(v, (uint64_t)node)) TH_LOG("numa_node: want %ld", node);
	}
	TH_LOG("numa_node in sysfs: %s", buf);

	/* every other attribute by its name, a number when it is one */
	d = opendir(self->classdir);
	ASSERT_NE(NULL, d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "uevent") || !strcmp(e->d_name, "dev") ||
		    !strcmp(e->d_name, "iommu"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", self->classdir, e->d_name);
		if (lstat(path, &st) || !S_ISREG(st.st_mode) || !(st.st_mode & 0444))
			continue;
		if (!attr(self->classdir, e->d_name, buf, sizeof(buf)))
			continue;
		v = jv_get(b, e->d_name);
		EXPECT_NE(NULL, v) TH_LOG("no key for sysfs attribute %s", e->d_name);
		if (!v)
			continue;
		if (v->type == J_NUM) {
			EXPECT_STREQ(buf, v->text);
		} else {
			EXPECT_TRUE(is_str(v, buf)) TH_LOG("%s: want \"%s\"", e->d_name, buf);
		}
	}
	closedir(d);
}

/* stats --json: the device and the seven counters, equal to STATS at rest. */
TEST_F(json, stats)
{
	static const char *const keys[] = {
		"device", "blocks_completed", "blocks_announced", "blocks_released",
		"blocks_overwritten", "blocks_dropped", "interrupts", "read_calls", NULL
	};
	struct fpgastream_stats st;
	const struct jval *arr, *b;
	char why[100];
	int fd;

	arr = table_of(_metadata, self, "fpgastream stats -J fpgastream0", "stats");
	ASSERT_NE(NULL, arr);
	ASSERT_EQ(1, arr->n);
	b = &arr->items[0];
	ASSERT_EQ(J_OBJ, b->type);
	EXPECT_TRUE(exact_keys(b, keys, why, sizeof(why))) TH_LOG("%s", why);
	EXPECT_TRUE(is_str(jv_get(b, "device"), self->node));
	fd = open(self->node, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, FPGASTREAM_IOC_STATS, &st));
	close(fd);
	EXPECT_TRUE(is_num(jv_get(b, "blocks_completed"), st.blocks_completed));
	EXPECT_TRUE(is_num(jv_get(b, "blocks_announced"), st.blocks_announced));
	EXPECT_TRUE(is_num(jv_get(b, "blocks_released"), st.blocks_released));
	EXPECT_TRUE(is_num(jv_get(b, "blocks_overwritten"), st.blocks_overwritten));
	EXPECT_TRUE(is_num(jv_get(b, "blocks_dropped"), st.blocks_dropped));
	EXPECT_TRUE(is_num(jv_get(b, "interrupts"), st.interrupts));
	EXPECT_TRUE(is_num(jv_get(b, "read_calls"), st.read_calls));
}

/* Parse what @cmdline printed, exiting @want_rc (or 1 as well with
 * @or_loss); the array under @table, or NULL. */
static const struct jval *doc_of(struct __test_metadata *_metadata, FIXTURE_DATA(json) *self,
				 const char *cmdline, int want_rc, bool or_loss, const char *table)
{
	char err[200];
	const struct jval *arr;
	int rc = run(cmdline, &self->out);

	EXPECT_TRUE(rc == want_rc || (or_loss && rc == 1)) TH_LOG("%s: exit status %d", cmdline, rc);
	if (!self->out || !json_parse(self->out, &self->doc, err, sizeof(err))) {
		TH_LOG("%s: not JSON: %s; output:\n%s", cmdline, err, self->out ? self->out : "");
		EXPECT_TRUE(false);
		return NULL;
	}
	EXPECT_EQ(1, self->doc.n);
	arr = jv_get(&self->doc, table);
	EXPECT_TRUE(arr && arr->type == J_ARR) TH_LOG("%s: no array \"%s\"", cmdline, table);
	return arr && arr->type == J_ARR ? arr : NULL;
}

static bool is_null(const struct jval *v)
{
	return v && v->type == J_NULL;
}

static bool is_bool(const struct jval *v, bool want)
{
	return v && v->type == J_BOOL && v->b == want;
}

/* capture -J, then verify -J and inspect -J of what it wrote. */
TEST_F(json, capture_verify_inspect)
{
	static const char *const cap_keys[] = {
		"device", "blocks", "bytes", "lost", "clobbered", "elapsed_ms", "bytes_per_second",
		"overwritten", "dropped", "files", "stopped_by", "signal", "error",
		"verified", "bad", "exit_status", NULL
	};
	static const char *const ver_keys[] = {
		"file", "files", "indexed", "complete", "blocks", "bad", "lost", "missing", "clobbered",
		"clobbered_bad", "first", "last",
		"seed", "unindexed_bytes", NULL
	};
	static const char *const rec_keys[] = {
		"seq", "lost", "flags", "timestamp_ns", "offset", "length", NULL
	};
	const struct jval *arr, *b;
	char why[100];

	arr = doc_of(_metadata, self,
		     "fpgastream capture -q -n 20 -b 4M -J --force -o /tmp/tool_json.bin 2>/dev/null",
		     0, false, "capture");
	ASSERT_NE(NULL, arr);
	ASSERT_EQ(1, arr->n);
	b = &arr->items[0];
	EXPECT_TRUE(exact_keys(b, cap_keys, why, sizeof(why))) TH_LOG("capture: %s", why);
	EXPECT_TRUE(is_str(jv_get(b, "device"), self->node));
	EXPECT_TRUE(is_num(jv_get(b, "blocks"), 20));
	EXPECT_TRUE(is_num(jv_get(b, "bytes"), 20 * 65536));
	EXPECT_TRUE(is_num(jv_get(b, "lost"), 0));
	EXPECT_TRUE(is_num(jv_get(b, "files"), 1));
	EXPECT_TRUE(is_str(jv_get(b, "stopped_by"), "limit"));
	EXPECT_TRUE(is_null(jv_get(b, "error")));
	EXPECT_TRUE(is_null(jv_get(b, "bad")));
	EXPECT_TRUE(is_num(jv_get(b, "exit_status"), 0));
	free(self->out);
	self->out = NULL;
	jv_free(&self->doc);

	/* The emulator's seed is whatever the last test left: bad blocks
	 * (exit 1) are not this test's business, the JSON is. */
	arr = doc_of(_metadata, self, "fpgastream verify -J /tmp/tool_json.bin 2>/dev/null",
		     0, true, "verify");
	ASSERT_NE(NULL, arr);
	ASSERT_EQ(1, arr->n);
	b = &arr->items[0];
	EXPECT_TRUE(exact_keys(b, ver_keys, why, sizeof(why))) TH_LOG("verify: %s", why);
	EXPECT_TRUE(is_num(jv_get(b, "blocks"), 20));
	EXPECT_TRUE(is_num(jv_get(b, "files"), 1));
	EXPECT_TRUE(is_bool(jv_get(b, "indexed"), true));
	EXPECT_TRUE(is_bool(jv_get(b, "complete"), true));
	EXPECT_TRUE(is_num(jv_get(b, "lost"), 0));
	EXPECT_TRUE(is_num(jv_get(b, "unindexed_bytes"), 0));
	free(self->out);
	self->out = NULL;
	jv_free(&self->doc);

	arr = doc_of(_metadata, self, "fpgastream inspect -J /tmp/tool_json.bin 2>/dev/null",
		     0, false, "index");
	ASSERT_NE(NULL, arr);
	ASSERT_EQ(20, arr->n);
	for (size_t i = 0; i < arr->n; i++) {
		b = &arr->items[i];
		EXPECT_TRUE(exact_keys(b, rec_keys, why, sizeof(why))) TH_LOG("record %zu: %s", i, why);
		EXPECT_TRUE(is_num(jv_get(b, "seq"), i));
		EXPECT_TRUE(is_num(jv_get(b, "offset"), i * 65536));
		EXPECT_TRUE(is_num(jv_get(b, "length"), 65536));
	}
	free(self->out);
	self->out = NULL;
	jv_free(&self->doc);

	arr = doc_of(_metadata, self, "fpgastream inspect --header -J /tmp/tool_json.bin 2>/dev/null",
		     0, false, "header");
	ASSERT_NE(NULL, arr);
	ASSERT_EQ(1, arr->n);
	b = &arr->items[0];
	EXPECT_TRUE(is_str(jv_get(b, "board"), "fpgastream0"));
	EXPECT_TRUE(is_str(jv_get(b, "pci"), self->bdf));
	EXPECT_TRUE(is_num(jv_get(b, "block_size"), 65536));
	EXPECT_TRUE(is_num(jv_get(b, "records"), 20));
	EXPECT_TRUE(is_str(jv_get(b, "end"), "done"));
	EXPECT_TRUE(is_null(jv_get(b, "seed")));
	unlink("/tmp/tool_json.bin");
	unlink("/tmp/tool_json.bin.idx");
	free(self->out);
	self->out = NULL;
	jv_free(&self->doc);

	/* A capture that ran and failed: its summary, with the error. */
	arr = doc_of(_metadata, self, "fpgastream capture -q -n 5 -b 4M -J -o /dev/full 2>/dev/null",
		     4, false, "capture");
	ASSERT_NE(NULL, arr);
	b = &arr->items[0];
	EXPECT_TRUE(is_num(jv_get(b, "blocks"), 0));
	EXPECT_TRUE(is_num(jv_get(b, "bytes"), 0));
	EXPECT_TRUE(is_num(jv_get(b, "exit_status"), 4));
	EXPECT_TRUE(is_str(jv_get(b, "stopped_by"), "output error"));
	EXPECT_TRUE(jv_get(b, "error") && jv_get(b, "error")->type == J_STR);
}

/* Errors: the exit code, a message, and not a byte on standard output. */
TEST_F(json, errors_print_no_json)
{
	static const struct {
		const char *cmdline;
		int rc;
	} cases[] = {
		{ "fpgastream info --json -d 7 2>/dev/null", 3 },
		{ "fpgastream stats --json 7 2>/dev/null", 3 },
		{ "fpgastream list --json -d 7 2>/dev/null", 3 },
		{ "fpgastream info --json 0 1 2>/dev/null", 2 },
		{ "fpgastream stats --json -d 0 0 2>/dev/null", 2 },
		{ "fpgastream list --json extra 2>/dev/null", 2 },
		{ "fpgastream capture --json -d 7 -n 1 2>/dev/null", 3 },
		{ "fpgastream verify --json /nonexistent 2>/dev/null", 3 },
		{ "fpgastream inspect --json /nonexistent 2>/dev/null", 3 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = run(cases[i].cmdline, &self->out);

		EXPECT_EQ(cases[i].rc, rc) TH_LOG("%s", cases[i].cmdline);
		ASSERT_NE(NULL, self->out);
		EXPECT_STREQ("", self->out) TH_LOG("%s", cases[i].cmdline);
		free(self->out);
		self->out = NULL;
	}
}

FSTR_HARNESS_MAIN
