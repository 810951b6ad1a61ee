// SPDX-License-Identifier: GPL-2.0-only
/*
 * Trace events of the fpgastream module (VM selftest): a short stream on the
 * board, traced through tracefs (system "fpgastream"), must leave exactly
 * the events the module promises, and their fields must agree with what the
 * program saw through the user ABI:
 *
 *   stream        flow control, a burst of 300 blocks, IRQ coalescing 16
 *                 blocks / 1000 us, many small read()s, RELEASE in chunks,
 *                 STOP with records still pending, then read to EOF
 *   stream_drops  the same with the source faster than the host (EMU_RATE,
 *                 a 4-block FIFO, a consumer that first holds back), so that
 *                 blocks are dropped at the source and records carry lost
 *   dma_error     a DMA_ERROR injected mid-stream: the pending records, then
 *                 -EIO, and a fault event that names dma_error
 *
 * Checked against MAP's and START's arguments and replies, STATS, the
 * records read and the RELEASEs made: one map and one start event with the
 * same values, one irq event per counted interrupt, read events whose counts,
 * seqs and lost add up to the records, release events that add up to
 * blocks_released (with RD_COUNT as written), the stop event's totals, the
 * minor of /dev/fpgastreamN on every event, no event lost in the buffer.
 * Every test ends with the FOLL_PIN balance and the locked-memory charge.
 *
 * The trace events are part of the module: a kernel without tracefs or a
 * module without events/fpgastream fails here, it does not skip.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

#include "fstr_vm.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "fstr_harness.h"
#pragma GCC diagnostic ignored "-Wsign-compare"

#define T_TEST		180

#define TRACEFS		"/sys/kernel/tracing"
#define EVENTS		TRACEFS "/events/fpgastream"
#define TRACE_KB	4096	/* per CPU; a run writes well under 1 MiB */

#define RING		(4ULL << 20)
#define RING_BLOCKS	(RING / BLOCK)
#define TAIL		20	/* records left unread at STOP (at most) */
#define CHUNK		6	/* RELEASE this many at a time */
#define COAL_COUNT	16
#define COAL_USEC	1000

#define R_DROP_COUNT	0x028
#define ST_DMA_ERROR	(1u << 10)
#define ST_LUT_FAULT	(1u << 9)
#define IRQ_ERROR	(1u << 1)

static const char *const event_names[] = {
	"fpgastream_map", "fpgastream_start", "fpgastream_stop", "fpgastream_irq",
	"fpgastream_read", "fpgastream_release", "fpgastream_fault",
};

/* ------------------------------------------------------------ tracefs */

static int tr_write(const char *rel, const char *s)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), TRACEFS "/%s", rel);
	return fv_write_text(path, s);
}

/* Opening "trace" for writing with O_TRUNC empties the ring buffer. */
static int tr_clear(void)
{
	int fd = open(TRACEFS "/trace", O_WRONLY | O_TRUNC | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* All of @path, NUL-terminated, in a malloc()ed buffer; NULL and errno. */
static char *read_all(const char *path)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap), *nb;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = 0;
	return buf;
}

/* ------------------------------------------------- the parsed trace */

#define MAXF	12

struct tev {
	char name[32];		/* e.g. "fpgastream_read" */
	int nf;
	char key[MAXF][24];
	char val[MAXF][40];
	char line[256];		/* for messages */
};

struct tlog {
	struct tev *ev;
	size_t n, cap;
	long long entries, written;	/* "entries-in-buffer/entries-written" */
	unsigned int lost_lines;	/* "CPU:N [LOST M EVENTS]" */
};

/*
 * One line of the text format, e.g.
 *   "  trace_test-93  [001] d.h1.  52.123456: fpgastream_irq: minor=0 ..."
 * The task name may hold anything, so the event is found by ": fpgastream_"
 * and everything after its colon is "key=value" words.
 */
static void parse_line(struct tlog *L, char *line)
{
	struct tev *e;
	char *p, *q, *tok, *save;

	if (line[0] == '#') {
		p = strstr(line, "entries-in-buffer/entries-written:");
		if (p)
			sscanf(p + 34, "%lld/%lld", &L->entries, &L->written);
		return;
	}
	if (strstr(line, "[LOST ")) {
		L->lost_lines++;
		return;
	}
	p = strstr(line, ": fpgastream_");
	if (!p)
		return;
	if (L->n == L->cap) {
		size_t cap = L->cap ? L->cap * 2 : 1024;
		struct tev *ev = realloc(L->ev, cap * sizeof(*ev));

		if (!ev)
			return;
		L->ev = ev;
		L->cap = cap;
	}
	e = &L->ev[L->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->line, sizeof(e->line), "%s", line);
	p += 2;
	q = strchr(p, ':');
	if (!q)
		q = p + strlen(p);
	snprintf(e->name, sizeof(e->name), "%.*s", (int)(q - p), p);
	if (!*q)
		return;
	for (tok = strtok_r(q + 1, " \t", &save); tok && e->nf < MAXF;
	     tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq)
			continue;
		*eq = 0;
		snprintf(e->key[e->nf], sizeof(e->key[0]), "%s", tok);
		snprintf(e->val[e->nf], sizeof(e->val[0]), "%s", eq + 1);
		e->nf++;
	}
}

static void parse_trace(struct tlog *L, char *text)
{
	char *line, *save;

	L->entries = -1;
	L->written = -1;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		parse_line(L, line);
}

static const char *tv_str(const struct tev *e, const char *key)
{
	int k;

	for (k = 0; k < e->nf; k++)
		if (!strcmp(e->key[k], key))
			return e->val[k];
	return NULL;
}

static bool tv_num(const struct tev *e, const char *key, uint64_t *v)
{
	const char *s = tv_str(e, key);
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return !*end && !errno;
}

/* A numeric field the event must have; a missing one fails the test. */
static uint64_t fnum(struct __test_metadata *_metadata, const struct tev *e, const char *key)
{
	uint64_t v = 0;

	EXPECT_TRUE(tv_num(e, key, &v))
		TH_LOG("%s has no numeric field %s: \"%s\"", e->name, key, e->line);
	return v;
}

static bool is(const struct tev *e, const char *short_name)
{
	return !strncmp(e->name, "fpgastream_", 11) && !strcmp(e->name + 11, short_name);
}

static size_t count(const struct tlog *L, const char *short_name)
{
	size_t i, n = 0;

	for (i = 0; i < L->n; i++)
		n += is(&L->ev[i], short_name);
	return n;
}

/* Index of the first (@last false) or last event of that name, or -1. */
static long find(const struct tlog *L, const char *short_name, bool last)
{
	long i, found = -1;

	for (i = 0; i < (long)L->n; i++) {
		if (!is(&L->ev[i], short_name))
			continue;
		found = i;
		if (!last)
			break;
	}
	return found;
}

/* ------------------------------------------------------------ fixture */

FIXTURE(trace) {
	struct fv_dev d;
	struct fv_pins p0;
	long long lk0;
	int minor;
	char *text;
	struct tlog log;
};

FIXTURE_SETUP(trace)
{
	char path[PATH_MAX], dev[64];
	const char *why = fv_setup(&self->d);
	struct stat st;
	cpu_set_t cpus;
	unsigned int k;
	int cpu;

	if (why)
		SKIP({ fflush(NULL); _exit(255); }, "%s", why);

	/* Not mounted by the initramfs: mount it; it must then be there. */
	if (!fv_exists(TRACEFS "/events")) {
		int err = mount("nodev", TRACEFS, "tracefs", 0, NULL) ? errno : 0;

		ASSERT_TRUE(err == 0 || err == EBUSY)
			TH_LOG("mount tracefs on %s: %s", TRACEFS, strerror(err));
	}
	ASSERT_TRUE(fv_exists(TRACEFS "/events"))
		TH_LOG("no %s/events: kernel without tracefs (CONFIG_EVENT_TRACING)?", TRACEFS);
	ASSERT_TRUE(fv_exists(EVENTS))
		TH_LOG("no %s: the loaded module has no trace events", EVENTS);
	for (k = 0; k < sizeof(event_names) / sizeof(event_names[0]); k++) {
		snprintf(path, sizeof(path), EVENTS "/%s/format", event_names[k]);
		EXPECT_TRUE(fv_exists(path)) TH_LOG("event %s is missing", event_names[k]);
	}

	/* The minor every event must name. */
	ASSERT_EQ(0, stat(self->d.node, &st)) TH_LOG("stat %s: %s", self->d.node, strerror(errno));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
	self->minor = minor(st.st_rdev);
	snprintf(path, sizeof(path), "/sys/class/fpgastream/%s/dev",
		 strrchr(self->d.node, '/') + 1);
	if (!fv_read_text(path, dev, sizeof(dev))) {
		unsigned int ma = ~0u, mi = ~0u;

		EXPECT_EQ(2, sscanf(dev, "%u:%u", &ma, &mi)) TH_LOG("%s: \"%s\"", path, dev);
		EXPECT_EQ(major(st.st_rdev), ma) TH_LOG("%s disagrees with %s", path, self->d.node);
		EXPECT_EQ(self->minor, mi) TH_LOG("%s disagrees with %s", path, self->d.node);
	}
	ksft_print_msg("%s: board %s, minor %d\n", self->d.node, self->d.bdf, self->minor);

	/* Events of this thread then sit in one CPU's buffer, in call order. */
	cpu = sched_getcpu();
	if (cpu >= 0) {
		CPU_ZERO(&cpus);
		CPU_SET(cpu, &cpus);
		EXPECT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));
	}

	fv_pins_quiet(60000);
	self->p0 = fv_pin_counts();
	ASSERT_LE(0, self->p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	self->lk0 = fv_locked_kb();
}

FIXTURE_TEARDOWN(trace)
{
	tr_write("events/fpgastream/enable", "0");
	free(self->log.ev);
	free(self->text);
	fv_teardown(&self->d);
}

/* Empty the buffer, make it big enough, record only from now on. */
static void trace_begin(struct __test_metadata *_metadata)
{
	char kb[64];

	ASSERT_EQ(0, tr_write("events/fpgastream/enable", "0"));
	ASSERT_EQ(0, fv_read_text(TRACEFS "/buffer_size_kb", kb, sizeof(kb)));
	if (atoi(kb) < TRACE_KB) {
		snprintf(kb, sizeof(kb), "%d", TRACE_KB);
		ASSERT_EQ(0, tr_write("buffer_size_kb", kb)) TH_LOG("buffer_size_kb %s", kb);
	}
	ASSERT_EQ(0, tr_write("tracing_on", "1"));
	ASSERT_EQ(0, tr_clear()) TH_LOG("clearing %s/trace: %s", TRACEFS, strerror(errno));
	ASSERT_EQ(0, tr_write("events/fpgastream/enable", "1"));
}

/* Stop recording, read and parse "trace"; nothing may have been lost. */
static void trace_end(struct __test_metadata *_metadata, FIXTURE_DATA(trace) *self)
{
	size_t i;

	ASSERT_EQ(0, tr_write("events/fpgastream/enable", "0"));
	self->text = read_all(TRACEFS "/trace");
	ASSERT_NE(NULL, self->text) TH_LOG("read %s/trace: %s", TRACEFS, strerror(errno));
	parse_trace(&self->log, self->text);
	ksft_print_msg("trace: %zu fpgastream events (map %zu start %zu irq %zu read %zu release %zu stop %zu fault %zu), entries %lld/%lld\n",
		       self->log.n, count(&self->log, "map"), count(&self->log, "start"),
		       count(&self->log, "irq"), count(&self->log, "read"),
		       count(&self->log, "release"), count(&self->log, "stop"),
		       count(&self->log, "fault"), self->log.entries, self->log.written);
	EXPECT_EQ(0, self->log.lost_lines) TH_LOG("the trace buffer lost events");
	EXPECT_EQ(self->log.written, self->log.entries)
		TH_LOG("entries-written %lld but only %lld in the buffer: it overflowed",
		       self->log.written, self->log.entries);
	for (i = 0; i < self->log.n; i++) {
		const char *n = self->log.ev[i].name + 11;
		unsigned int k;
		bool known = false;

		for (k = 0; k < sizeof(event_names) / sizeof(event_names[0]); k++)
			known |= !strcmp(event_names[k] + 11, n);
		if (!known)
			ksft_print_msg("an event this test does not know: %s\n",
				       self->log.ev[i].line);
	}
}

/* ------------------------------------------------ what the program saw */

struct seen {
	uint64_t received;	/* records read */
	uint64_t rec_lost;	/* sum of their lost */
	uint64_t reads;		/* read() calls that returned records */
	uint64_t releases;	/* successful RELEASE calls */
	uint64_t released;	/* sum of their counts */
	uint64_t nr_blocks;
	const uint8_t *buf;
	uint64_t seed;
};

/*
 * One read() of 1..4 records (at most @cap), each checked: seq in order,
 * offset, length and the data pattern (source seq = seq + lost so far).
 * Returns what fv_records() returned.
 */
static long take(struct __test_metadata *_metadata, int fd, struct seen *x, uint64_t cap)
{
	struct fpgastream_block r[4];
	uint64_t max = 1 + x->reads % 4;
	long n, i;

	if (max > cap)
		max = cap;
	n = fv_records(fd, r, max, WAIT_MS);
	if (n <= 0)
		return n;
	x->reads++;
	for (i = 0; i < n; i++) {
		uint64_t s;

		ASSERT_EQ(x->received, r[i].seq) TH_LOG("record %ld of read %ju",
							i, (uintmax_t)x->reads);
		ASSERT_EQ((r[i].seq % x->nr_blocks) * BLOCK, r[i].offset);
		ASSERT_EQ(BLOCK, r[i].length);
		x->rec_lost += r[i].lost;
		s = r[i].seq + x->rec_lost;
		/*
		 * A drop may be charged a record late (kmod/README.md): the
		 * block then holds a later source number; the totals still
		 * agree (checked against STATS at the end).
		 */
		if (!fv_block_ok(x->buf + r[i].offset, s, x->seed)) {
			uint64_t w0 = *(uint64_t *)(x->buf + r[i].offset);

			ASSERT_TRUE(w0 > s && w0 - s <= 64 &&
				    fv_block_ok(x->buf + r[i].offset, w0, x->seed))
				TH_LOG("seq %ju (source %ju): word0 %#jx", (uintmax_t)r[i].seq,
				       (uintmax_t)s, (uintmax_t)w0);
		}
		x->received++;
	}
	return n;
}

static void release(struct __test_metadata *_metadata, int fd, struct seen *x, uint64_t n)
{
	ASSERT_EQ(0, fv_release(fd, n)) TH_LOG("RELEASE %ju: %s", (uintmax_t)n, strerror(errno));
	x->releases++;
	x->released += n;
}

static void stats(struct __test_metadata *_metadata, int fd, struct fpgastream_stats *st)
{
	memset(st, 0xff, sizeof(*st));
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STATS, st));
}

/* MAP, timed: the map event's phases must fit inside the call. */
static uint64_t map_timed(struct __test_metadata *_metadata, int fd, void *b, uint64_t len,
			  struct fpgastream_map *m)
{
	uint64_t t0;

	memset(m, 0, sizeof(*m));
	m->addr = (uintptr_t)b;
	m->length = len;
	t0 = fv_now_ns();
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_MAP, m)) TH_LOG("MAP: %s", strerror(errno));
	return fv_now_ns() - t0;
}

static void start(struct __test_metadata *_metadata, int fd, const struct fpgastream_start *s)
{
	struct fpgastream_start c = *s;

	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_START, &c)) TH_LOG("START: %s", strerror(errno));
}

/* ------------------------------------------------------------- checks */

/* The one map and the one start event against MAP's and START's values. */
static void check_map_start(struct __test_metadata *_metadata, const struct tlog *L,
			    const struct fpgastream_map *m, uint64_t map_ns,
			    const struct fpgastream_start *s)
{
	long im = find(L, "map", false), is_ = find(L, "start", false);
	const struct tev *e;
	uint64_t phases;

	EXPECT_EQ(1, count(L, "map")) TH_LOG("one MAP, one map event");
	EXPECT_EQ(1, count(L, "start")) TH_LOG("one START, one start event");
	ASSERT_LE(0, im) TH_LOG("no map event");
	ASSERT_LE(0, is_) TH_LOG("no start event");
	EXPECT_LT(im, is_) TH_LOG("start event before the map event");

	e = &L->ev[im];
	EXPECT_EQ(m->length, fnum(_metadata, e, "length"));
	EXPECT_EQ(m->nr_blocks, fnum(_metadata, e, "blocks"));
	EXPECT_EQ(m->nr_segments, fnum(_metadata, e, "segments"));
	EXPECT_EQ(m->flags, fnum(_metadata, e, "flags"));
	EXPECT_EQ(m->mapped_flags, fnum(_metadata, e, "mapped_flags"));
	phases = fnum(_metadata, e, "pin_ns") + fnum(_metadata, e, "dma_ns") +
		 fnum(_metadata, e, "lut_ns");
	EXPECT_GE(map_ns + 1000000, phases)
		TH_LOG("pin+dma+lut %ju ns, but MAP took %ju ns: \"%s\"", (uintmax_t)phases,
		       (uintmax_t)map_ns, e->line);

	e = &L->ev[is_];
	EXPECT_EQ(s->flags, fnum(_metadata, e, "flags"));
	EXPECT_EQ(s->irq_coalesce_count, fnum(_metadata, e, "coalesce_count"));
	EXPECT_EQ(s->irq_coalesce_usec, fnum(_metadata, e, "coalesce_usec"));
	EXPECT_EQ(m->nr_blocks, fnum(_metadata, e, "blocks"));
}

/*
 * What holds for any stream: every event names our minor; one irq event
 * per counted interrupt; read events add up to the records (count, seq,
 * lost), release events to the RELEASEs (and RD_COUNT follows them).
 */
static void check_common(struct __test_metadata *_metadata, const struct tlog *L, int minor,
			 const struct seen *x, const struct fpgastream_stats *st)
{
	uint64_t irqs = 0, new_blocks = 0, reads = 0, rsum = 0, rlost = 0, next = 0;
	uint64_t rels = 0, relsum = 0, bad_seq = 0, bad_rd = 0;
	long first = find(L, "start", false), bad_seq_at = -1, bad_rd_at = -1;
	size_t i;

	for (i = 0; i < L->n; i++) {
		const struct tev *e = &L->ev[i];

		EXPECT_EQ(minor, fnum(_metadata, e, "minor")) TH_LOG("\"%s\"", e->line);
		if (is(e, "irq")) {
			irqs++;
			new_blocks += fnum(_metadata, e, "new_blocks");
			EXPECT_GE(st->blocks_completed, fnum(_metadata, e, "wr_count"))
				TH_LOG("\"%s\"", e->line);
			EXPECT_GE(st->blocks_dropped, fnum(_metadata, e, "drop_count"))
				TH_LOG("\"%s\"", e->line);
			fnum(_metadata, e, "irq_status");
		} else if (is(e, "read")) {
			uint64_t seq = fnum(_metadata, e, "seq"), n = fnum(_metadata, e, "count");

			EXPECT_LT(first, (long)i)
				TH_LOG("read event before START's: \"%s\"", e->line);
			if (seq != next && !bad_seq++) {
				bad_seq_at = i;
				TH_LOG("read event %ju: seq %ju, expected %ju", (uintmax_t)reads,
				       (uintmax_t)seq, (uintmax_t)next);
			}
			EXPECT_LT(0, n) TH_LOG("a read event without records: \"%s\"", e->line);
			next = seq + n;
			rsum += n;
			rlost += fnum(_metadata, e, "lost");
			reads++;
		} else if (is(e, "release")) {
			uint64_t n = fnum(_metadata, e, "count");

			EXPECT_LT(first, (long)i) TH_LOG("release event before START's");
			rels++;
			relsum += n;
			/* Flow control, running: RD_COUNT = blocks released so far. */
			if (fnum(_metadata, e, "rd_count") != (uint32_t)relsum && !bad_rd++) {
				bad_rd_at = i;
				TH_LOG("release event %ju: rd_count %ju, released so far %ju",
				       (uintmax_t)rels, (uintmax_t)fnum(_metadata, e, "rd_count"),
				       (uintmax_t)relsum);
			}
		}
	}
	EXPECT_EQ(0, bad_seq) {
		TH_LOG("%ju read events do not continue the one before (seq != seq + count), first: \"%s\"",
		       (uintmax_t)bad_seq, L->ev[bad_seq_at].line);
	}
	EXPECT_EQ(0, bad_rd) {
		TH_LOG("%ju release events' rd_count is not the running sum of counts, first: \"%s\"",
		       (uintmax_t)bad_rd, L->ev[bad_rd_at].line);
	}

	EXPECT_LT(0, st->interrupts) TH_LOG("no interrupt counted: the stream proved nothing");
	EXPECT_EQ(st->interrupts, irqs) TH_LOG("irq events vs STATS.interrupts");
	EXPECT_GE(st->blocks_completed, new_blocks)
		TH_LOG("irq events found %ju new blocks, the board completed %ju",
		       (uintmax_t)new_blocks, (uintmax_t)st->blocks_completed);

	EXPECT_EQ(x->reads, reads) TH_LOG("read() calls that returned records vs read events");
	EXPECT_EQ(x->received, rsum) TH_LOG("records read vs the read events' counts");
	EXPECT_EQ(st->blocks_announced, rsum) TH_LOG("STATS.blocks_announced vs read events");
	EXPECT_EQ(st->blocks_announced, x->received) TH_LOG("STATS.blocks_announced vs records");
	EXPECT_EQ(x->rec_lost, rlost) TH_LOG("records' lost vs the read events' lost");

	EXPECT_EQ(x->releases, rels) TH_LOG("RELEASE calls vs release events");
	EXPECT_EQ(x->released, relsum) TH_LOG("blocks released vs the release events' counts");
	EXPECT_EQ(st->blocks_released, relsum) TH_LOG("STATS.blocks_released vs release events");
}

static void check_clean(struct __test_metadata *_metadata, FIXTURE_DATA(trace) *self)
{
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
}

/* -------------------------------------------------------------- tests */

static void run_stream(struct __test_metadata *_metadata, FIXTURE_DATA(trace) *self,
		       bool drops)
{
	const struct fpgastream_start s = {
		.flags = FPGASTREAM_START_FLOW_CONTROL,
		.irq_coalesce_count = COAL_COUNT, .irq_coalesce_usec = COAL_USEC,
	};
	const uint32_t burst = drops ? 600 : 300;
	struct fpgastream_stats st_stop, st;
	struct fpgastream_map m;
	struct seen x = { 0 };
	uint64_t held = 0, pending = 0, reads_before_stop, map_ns, deadline, sum, nreads;
	uint32_t wr, drop;
	long n, istop, i;
	uint8_t *b;
	int fd;

	b = fv_huge(RING, false);
	ASSERT_NE(NULL, b) TH_LOG("%llu MiB of 2 MiB hugepages: %s", RING >> 20, strerror(errno));
	fd = fv_open(&self->d, 0);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", self->d.node, strerror(errno));
	if (drops) {
		fv_wr(&self->d, R_EMU_FIFO, 4);
		fv_wr(&self->d, R_EMU_RATE, 2000);
	}
	fv_wr(&self->d, R_EMU_BURST, burst);
	x.buf = b;
	x.seed = self->d.seed;

	trace_begin(_metadata);
	map_ns = map_timed(_metadata, fd, b, RING, &m);
	ASSERT_EQ(RING_BLOCKS, m.nr_blocks);
	x.nr_blocks = m.nr_blocks;
	start(_metadata, fd, &s);
	if (drops)
		fv_sleep_ms(200);	/* hold: the ring and the FIFO fill, then drops */

	/*
	 * Read 1..4 records at a time and release them 6 at a time, until the
	 * source is done and at most TAIL completed blocks are left unread.
	 */
	deadline = fv_now_ns() + 60 * 1000000000ULL;
	for (;;) {
		ASSERT_GT(deadline, fv_now_ns()) {
			TH_LOG("the stream never ended: %ju records, WR_COUNT %u DROP_COUNT %u",
			       (uintmax_t)x.received, fv_rd(&self->d, R_WR_COUNT),
			       fv_rd(&self->d, R_DROP_COUNT));
		}
		wr = fv_rd(&self->d, R_WR_COUNT);
		drop = fv_rd(&self->d, R_DROP_COUNT);
		if (wr - x.received <= TAIL) {
			if ((uint64_t)wr + drop >= burst)
				break;
			if (held) {
				release(_metadata, fd, &x, held);
				held = 0;
			} else {
				fv_sleep_ms(1);
			}
			continue;
		}
		n = take(_metadata, fd, &x, 4);
		ASSERT_LT(0, n) TH_LOG("after %ju records: %s", (uintmax_t)x.received,
				       n ? strerror(-n) : "end of stream");
		for (held += n; held >= CHUNK; held -= CHUNK)
			release(_metadata, fd, &x, CHUNK);
	}
	if (held)
		release(_metadata, fd, &x, held);

	/* The driver sees every completed block within 10 ms (the contract). */
	wr = fv_rd(&self->d, R_WR_COUNT);
	drop = fv_rd(&self->d, R_DROP_COUNT);
	for (;;) {
		stats(_metadata, fd, &st);
		if (st.blocks_completed == wr)
			break;
		ASSERT_GT(deadline, fv_now_ns()) {
			TH_LOG("STATS.blocks_completed %ju, WR_COUNT %u",
			       (uintmax_t)st.blocks_completed, wr);
		}
		fv_sleep_ms(2);
	}

	/* STOP with records pending, then read them to the end of the stream. */
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	stats(_metadata, fd, &st_stop);
	reads_before_stop = x.reads;
	for (;;) {
		n = take(_metadata, fd, &x, 4);
		if (n == 0)
			break;
		ASSERT_LT(0, n) TH_LOG("read after STOP: %s", strerror(-n));
		pending += n;
	}
	stats(_metadata, fd, &st);
	trace_end(_metadata, self);
	ksft_print_msg("%ju records (%ju pending at STOP) in %ju reads, %ju RELEASEs; completed %ju dropped %ju lost %ju interrupts %ju\n",
		       (uintmax_t)x.received, (uintmax_t)pending, (uintmax_t)x.reads,
		       (uintmax_t)x.releases, (uintmax_t)st.blocks_completed,
		       (uintmax_t)st.blocks_dropped, (uintmax_t)x.rec_lost,
		       (uintmax_t)st.interrupts);

	/* What the ABI said, before looking at the trace. */
	EXPECT_EQ(wr, x.received) TH_LOG("records vs WR_COUNT");
	EXPECT_EQ(wr, st.blocks_completed);
	EXPECT_EQ(drop, st.blocks_dropped);
	EXPECT_LT(0, pending) TH_LOG("nothing was pending at STOP: the test lost its point");
	if (drops) {
		EXPECT_LT(0, st.blocks_dropped)
			TH_LOG("nothing was dropped: the test proved nothing");
		EXPECT_LT(0, x.rec_lost) TH_LOG("drops, but no record says lost");
		EXPECT_GE(st.blocks_dropped, x.rec_lost);
	} else {
		EXPECT_EQ(burst, st.blocks_completed);
		EXPECT_EQ(0, st.blocks_dropped);
		EXPECT_EQ(0, x.rec_lost);
	}

	/* The trace. */
	check_map_start(_metadata, &self->log, &m, map_ns, &s);
	check_common(_metadata, &self->log, self->minor, &x, &st);
	EXPECT_EQ(0, count(&self->log, "fault")) {
		long f = find(&self->log, "fault", false);

		TH_LOG("fault event in a clean stream: \"%s\"", self->log.ev[f].line);
	}

	EXPECT_EQ(1, count(&self->log, "stop")) TH_LOG("one STOP, one stop event");
	istop = find(&self->log, "stop", true);
	ASSERT_LE(0, istop) TH_LOG("no stop event");
	{
		const struct tev *e = &self->log.ev[istop];

		EXPECT_LT(find(&self->log, "start", false), istop);
		EXPECT_EQ(st_stop.blocks_completed, fnum(_metadata, e, "completed"))
			TH_LOG("\"%s\"", e->line);
		EXPECT_EQ(st_stop.blocks_dropped, fnum(_metadata, e, "dropped"));
		EXPECT_EQ(st_stop.blocks_announced, fnum(_metadata, e, "announced"));
		EXPECT_EQ(st_stop.blocks_released, fnum(_metadata, e, "released"));
		EXPECT_EQ(0, (int64_t)fnum(_metadata, e, "result")) TH_LOG("STOP did not end idle");
		/* Nothing completes or is released after a STOP. */
		EXPECT_EQ(st.blocks_completed, st_stop.blocks_completed);
		EXPECT_EQ(st.blocks_released, st_stop.blocks_released);
	}
	/* The records read after STOP are the read events after the stop event. */
	for (sum = 0, i = istop + 1; i < (long)self->log.n; i++)
		if (is(&self->log.ev[i], "read"))
			sum += fnum(_metadata, &self->log.ev[i], "count");
	EXPECT_EQ(pending, sum)
		TH_LOG("records read after STOP vs read events after the stop event");
	for (nreads = 0, i = 0; i < istop; i++)
		nreads += is(&self->log.ev[i], "read");
	EXPECT_EQ(reads_before_stop, nreads) TH_LOG("read events before the stop event");

	EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(0, close(fd));
	munmap(b, RING);
	check_clean(_metadata, self);
}

TEST_F_TIMEOUT(trace, stream, T_TEST)
{
	run_stream(_metadata, self, false);
}

TEST_F_TIMEOUT(trace, stream_drops, T_TEST)
{
	run_stream(_metadata, self, true);
}

/*
 * A DMA_ERROR on the block after a full ring: 16 records read, the fault
 * armed, one RELEASE of the 16 lets the board go on into it.  The 16
 * records still pending come, then -EIO; the trace says fault=dma_error
 * with STATUS.DMA_ERROR.
 */
TEST_F_TIMEOUT(trace, dma_error, T_TEST)
{
	const struct fpgastream_start s = {
		.flags = FPGASTREAM_START_FLOW_CONTROL,
		.irq_coalesce_count = 4, .irq_coalesce_usec = COAL_USEC,
	};
	struct fpgastream_stats st;
	struct fpgastream_map m;
	struct seen x = { 0 };
	uint64_t pending, map_ns, deadline;
	size_t faults = 0, lut = 0, i;
	long n, istart, ifault = -1;
	bool err_irq = false;
	char why[256];
	short ev = 0;
	uint8_t *b;
	int fd;

	b = fv_huge(HUGE_2M, false);
	ASSERT_NE(NULL, b) TH_LOG("a 2 MiB hugepage: %s", strerror(errno));
	fd = fv_open(&self->d, 0);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", self->d.node, strerror(errno));
	x.buf = b;
	x.seed = self->d.seed;

	trace_begin(_metadata);
	map_ns = map_timed(_metadata, fd, b, HUGE_2M, &m);
	x.nr_blocks = m.nr_blocks;
	start(_metadata, fd, &s);
	/* Endless source: the ring fills and the board waits for RELEASE. */
	ASSERT_TRUE(fv_wait_wr_count(&self->d, m.nr_blocks));
	fv_sleep_ms(100);
	while (x.received < 16) {
		n = take(_metadata, fd, &x, 16 - x.received);
		ASSERT_LT(0, n) TH_LOG("after %ju records: %s", (uintmax_t)x.received,
				       n ? strerror(-n) : "end of stream");
	}
	/* The next block the board writes, the ring's 33rd, fails. */
	fv_wr(&self->d, R_EMU_INJECT, INJECT_DMA_ERROR);
	release(_metadata, fd, &x, 16);

	deadline = fv_now_ns() + WAIT_MS * 1000000ULL;
	while (!(ev & POLLERR) && fv_now_ns() < deadline) {
		ev = fv_poll_now(fd);
		fv_sleep_ms(5);
	}
	ASSERT_TRUE(ev & POLLERR) TH_LOG("no EPOLLERR after the injected DMA_ERROR (STATUS %#x)",
					 fv_rd(&self->d, R_STATUS));
	/* The records completed before the fault, then -EIO. */
	for (;;) {
		n = take(_metadata, fd, &x, 4);
		if (n < 0)
			break;
		ASSERT_LT(0, n) TH_LOG("end of stream instead of -EIO");
	}
	EXPECT_EQ(-EIO, n) TH_LOG("read after the fault: %s", strerror(-n));
	pending = x.received - 16;
	EXPECT_LE(16, pending) TH_LOG("records completed before the fault were lost");
	stats(_metadata, fd, &st);
	trace_end(_metadata, self);
	ksft_print_msg("%ju records (%ju after the fault was armed) in %ju reads; interrupts %ju\n",
		       (uintmax_t)x.received, (uintmax_t)pending, (uintmax_t)x.reads,
		       (uintmax_t)st.interrupts);

	check_map_start(_metadata, &self->log, &m, map_ns, &s);
	check_common(_metadata, &self->log, self->minor, &x, &st);

	istart = find(&self->log, "start", false);
	for (i = 0; i < self->log.n; i++) {
		const struct tev *e = &self->log.ev[i];
		const char *what;

		if (is(e, "irq") && (fnum(_metadata, e, "irq_status") & IRQ_ERROR))
			err_irq = true;
		if (!is(e, "fault"))
			continue;
		what = tv_str(e, "fault");
		ksft_print_msg("%s\n", e->line);
		EXPECT_NE(NULL, what) TH_LOG("fault event without fault=: \"%s\"", e->line);
		if (!what)
			continue;
		if (!strcmp(what, "dma_error")) {
			faults++;
			if (ifault < 0)
				ifault = i;
			EXPECT_TRUE(fnum(_metadata, e, "status") & ST_DMA_ERROR)
				TH_LOG("fault=dma_error without STATUS.DMA_ERROR: \"%s\"", e->line);
		} else if (!strcmp(what, "lut_fault")) {
			lut++;
		}
	}
	ASSERT_LE(1, faults) TH_LOG("no fault event with fault=dma_error");
	EXPECT_LT(istart, ifault) TH_LOG("the fault event comes before START's");
	EXPECT_EQ(0, lut) TH_LOG("a DMA_ERROR reported as a LUT fault");
	if (faults > 1)
		ksft_print_msg("note: %zu dma_error fault events for one fault\n", faults);
	if (!err_irq)
		ksft_print_msg("note: no irq event acknowledged IRQ_STATUS.ERROR\n");

	EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(0, close(fd));
	munmap(b, HUGE_2M);
	check_clean(_metadata, self);
	EXPECT_EQ(0, fv_board_works(&self->d, 8, why, sizeof(why)))
		TH_LOG("the board does not stream after the fault: %s", why);
	EXPECT_EQ(0, fv_pins_held(self->p0));
}

FSTR_HARNESS_MAIN
