// SPDX-License-Identifier: GPL-2.0-only
/*
 * The surface a program sees (VM selftest), written from the documents
 * alone: the contract (uapi.md and include/uapi/fpgastream.h), the
 * datasheet, docs/sysfs-class-fpgastream and docs/debugfs-fpgastream.  It
 * guards what issue 14 (the driver's restructuring) must keep or make true:
 *
 *   surface.sysfs_files          every documented attribute, its format, mode
 *                                and owner; no map_*_ns in sysfs any more
 *   surface.mapping_attributes   buffer_size, nr_blocks, bounced, iommu,
 *                                state: 0/idle without a mapping, MAP's
 *                                values with one
 *   surface.debugfs_map_phases   map_{pin,dma,lut}_ns in debugfs: 0 without a
 *                                mapping, set once by MAP, sum <= MAP's time
 *   surface.state_walk           idle -> mapped -> running -> stopped -> idle
 *   surface.counters_match_stats the counter attributes = STATS at rest; who
 *                                zeroes them and who leaves them
 *   surface.two_files_errors     the error table on one board from two files
 *   surface.unknown_ioctls       ENOTTY, and the stream undisturbed
 *   surface.coalesced_reader_wakes  poll() and read() wake for completed
 *                                blocks no interrupt announces (usec 0)
 *   surface.bounce_rules         MAPPED_BOUNCED, NO_BOUNCE/ERANGE, ENOMEM and
 *                                its message when the bounce pool is too small
 *   records.*.stream             every record of a few thousand blocks: seq,
 *                                offset, length, lost/flags, the data pattern,
 *                                lost against DROP_COUNT, and timestamp_ns
 *                                bounded by what the program can see of the
 *                                board (WR_COUNT, RELEASE) and of the driver
 *                                (blocks_completed)
 *
 * Every test ends by checking that every FOLL_PIN and every byte of the
 * locked-memory charge came back.  Nothing here times performance: the
 * timestamp checks are orderings and bounds only.  See README.md.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <signal.h>
#include <sys/time.h>
#include <termios.h>

#include "fstr_vm.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "fstr_harness.h"
#pragma GCC diagnostic ignored "-Wsign-compare"

#define T_SHORT		120
#define T_STREAM	600
#define MIB		(1ULL << 20)
#define R_DROP_COUNT	0x028
#define NSEC_PER_MS	1000000ULL
#define DEBUGFS_MAGIC	0x64626720

/*
 * The one tolerance in the suite.  A record's timestamp is "when the driver
 * saw it complete"; once blocks_completed (the driver's last look) counts a
 * block, the driver has seen it, so its timestamp cannot be much later than
 * the moment we read that attribute.  A driver may take the clock just after
 * it updates the counter, and a vCPU may be descheduled in between, hence
 * the slack; the reader waits several times longer than this before some
 * of its reads, so a timestamp taken at read() time instead still shows.
 */
#define SEEN_SLACK_NS	(250 * NSEC_PER_MS)
#define PAUSE_MS	800

#define SETUP_SKIP(fmt, ...) SKIP({ fflush(NULL); _exit(255); }, fmt, ##__VA_ARGS__)

/* ------------------------------------------------------------ documents */

/* docs/sysfs-class-fpgastream: the driver's attributes. */
static const char *const sysfs_attrs[] = {
	"state", "buffer_size", "nr_blocks", "iommu", "bounced",
	"blocks_completed", "blocks_announced", "blocks_released",
	"blocks_overwritten", "blocks_dropped", "interrupts", "read_calls",
};

/* The counter attributes, in the order of struct fpgastream_stats. */
#define NR_COUNTERS 7
static const char *const counter_attrs[NR_COUNTERS] = {
	"blocks_completed", "blocks_announced", "blocks_released",
	"blocks_overwritten", "blocks_dropped", "interrupts", "read_calls",
};

static uint64_t stats_field(const struct fpgastream_stats *st, int i)
{
	const uint64_t v[NR_COUNTERS] = {
		st->blocks_completed, st->blocks_announced, st->blocks_released,
		st->blocks_overwritten, st->blocks_dropped, st->interrupts,
		st->read_calls,
	};

	return v[i];
}

/* docs/debugfs-fpgastream, and what left sysfs for it. */
static const char *const phase_files[] = { "map_pin_ns", "map_dma_ns", "map_lut_ns" };

/* ----------------------------------------------------------- environment */

struct sampler;

struct env {
	struct fv_dev d;
	struct fv_pins p0;
	long long lk0;
	char name[128];		/* fpgastream<N> */
	char cls[PATH_MAX];		/* /sys/class/fpgastream/fpgastream<N> */
	char dbg[PATH_MAX];		/* /sys/kernel/debug/fpgastream/fpgastream<N> */
	int fd[8];
	int nfd;
	struct { void *p; size_t len; } buf[8];
	int nbuf;
	struct sampler *smp;		/* a running sampler thread, if any */
};

static int arm_watchdog_signal(void);

static const char *env_setup(struct env *e)
{
	const char *why = fv_setup(&e->d);
	const char *base;

	if (why)
		return why;
	base = strrchr(e->d.node, '/');
	snprintf(e->name, sizeof(e->name), "%s", base ? base + 1 : e->d.node);
	snprintf(e->cls, sizeof(e->cls), "/sys/class/fpgastream/%s", e->name);
	snprintf(e->dbg, sizeof(e->dbg), "/sys/kernel/debug/fpgastream/%s", e->name);
	/* A previous program may still be letting go of its buffer. */
	fv_pins_quiet(60000);
	e->p0 = fv_pin_counts();
	e->lk0 = fv_locked_kb();
	if (arm_watchdog_signal())
		return "sigaction(SIGALRM) failed";
	return NULL;
}

static int env_open(struct env *e, int flags)
{
	int fd = fv_open(&e->d, flags);

	if (fd >= 0 && e->nfd < 8)
		e->fd[e->nfd++] = fd;
	return fd;
}

static void env_close(struct env *e, int fd)
{
	int i;

	for (i = 0; i < e->nfd; i++) {
		if (e->fd[i] == fd) {
			close(fd);
			e->fd[i] = e->fd[--e->nfd];
			return;
		}
	}
	close(fd);
}

static void *env_keep(struct env *e, void *p, size_t len)
{
	if (p && e->nbuf < 8) {
		e->buf[e->nbuf].p = p;
		e->buf[e->nbuf++].len = len;
	}
	return p;
}

/* @len bytes of 2 MiB hugepages, poisoned; NULL when there are not enough. */
static void *env_huge(struct env *e, size_t len)
{
	return env_keep(e, fv_huge(len, false), len);
}

/* @len bytes of ordinary 4 KiB pages, 64 KiB aligned, touched and poisoned. */
static void *env_small_pages(struct env *e, size_t len)
{
	uint8_t *p = mmap(NULL, len + BLOCK, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *a;

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len + BLOCK, MADV_NOHUGEPAGE);
	env_keep(e, p, len + BLOCK);
	a = (uint8_t *)(((uintptr_t)p + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1));
	memset(a, 0x5a, len);
	return a;
}

static void sampler_stop(struct sampler *s);

/*
 * Every test ends here, passed or not: give back what it held, then the
 * FOLL_PIN balance and the locked-memory charge must be what they were.
 */
static void env_teardown(struct __test_metadata *_metadata, struct env *e)
{
	long long held = 0;
	int i, tries;

	if (e->smp)
		sampler_stop(e->smp);
	while (e->nfd)
		close(e->fd[--e->nfd]);
	for (i = 0; i < e->nbuf; i++)
		munmap(e->buf[i].p, e->buf[i].len);
	e->nbuf = 0;
	if (e->d.bar0) {
		for (tries = 0; tries < 50; tries++) {
			held = fv_pins_held(e->p0);
			if (!held)
				break;
			fv_sleep_ms(100);
		}
		EXPECT_EQ(0, held) TH_LOG("%lld pages still pinned after the test let go", held);
		EXPECT_EQ(e->lk0, fv_locked_kb()) {
			TH_LOG("locked-memory charge %lld kB, was %lld kB before the test",
			       fv_locked_kb(), e->lk0);
		}
	}
	fv_teardown(&e->d);
}

/* ----------------------------------------------------------- attributes */

/* Read @dir/@name; 0 or -errno; @buf holds the raw contents. */
static int file_text(const char *dir, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	buf[0] = 0;
	return fv_read_text(path, buf, len);
}

/* Is @s exactly one decimal number and a newline? */
static bool is_decimal_line(const char *s)
{
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p))
		p++;
	return p[0] == '\n' && p[1] == 0 && p - s <= 20;
}

/* Is @s exactly one lower-case word and a newline? */
static bool is_word_line(const char *s)
{
	const char *p = s;

	if (!islower((unsigned char)*p))
		return false;
	while (islower((unsigned char)*p) || *p == '_')
		p++;
	return p[0] == '\n' && p[1] == 0;
}

/* The number in @dir/@name, which must be one decimal line. */
static uint64_t num_file(struct __test_metadata *_metadata, const char *dir, const char *name)
{
	char raw[128];
	int err = file_text(dir, name, raw, sizeof(raw));

	ASSERT_EQ(0, err) TH_LOG("read %s/%s: %s", dir, name, strerror(-err));
	ASSERT_TRUE(is_decimal_line(raw)) {
		TH_LOG("%s/%s is \"%s\", not one decimal number and a newline", dir, name, raw);
	}
	return strtoull(raw, NULL, 10);
}

#define ATTR(e, name) num_file(_metadata, (e)->cls, (name))
#define PHASE(e, name) num_file(_metadata, (e)->dbg, (name))

/* The state word, without its newline. */
static const char *state_of(struct __test_metadata *_metadata, struct env *e)
{
	static char raw[64];
	int err = file_text(e->cls, "state", raw, sizeof(raw));

	ASSERT_EQ(0, err) TH_LOG("read %s/state: %s", e->cls, strerror(-err));
	ASSERT_TRUE(is_word_line(raw)) TH_LOG("state is \"%s\", not one word and a newline", raw);
	raw[strlen(raw) - 1] = 0;
	return raw;
}

#define ASSERT_STATE(e, word) ASSERT_STREQ(word, state_of(_metadata, (e)))

/* The attributes of the current mapping read 0, the board reads idle. */
static void assert_no_mapping(struct __test_metadata *_metadata, struct env *e, const char *when)
{
	ASSERT_STREQ("idle", state_of(_metadata, e)) TH_LOG("%s", when);
	ASSERT_EQ(0, ATTR(e, "buffer_size")) TH_LOG("%s", when);
	ASSERT_EQ(0, ATTR(e, "nr_blocks")) TH_LOG("%s", when);
	ASSERT_EQ(0, ATTR(e, "bounced")) TH_LOG("%s", when);
	ASSERT_EQ(!!(e->d.info.flags & FPGASTREAM_INFO_IOMMU), ATTR(e, "iommu")) TH_LOG("%s", when);
}

/* The three phase files read 0 (when debugfs has them). */
static void assert_phases_zero(struct __test_metadata *_metadata, struct env *e, const char *when)
{
	unsigned int i;

	if (!fv_exists(e->dbg))
		return;
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, PHASE(e, phase_files[i])) TH_LOG("%s: %s", phase_files[i], when);
	}
}

static void read_counters(struct __test_metadata *_metadata, struct env *e, uint64_t *v)
{
	int i;

	for (i = 0; i < NR_COUNTERS; i++)
		v[i] = ATTR(e, counter_attrs[i]);
}

static int do_stats(int fd, struct fpgastream_stats *st)
{
	memset(st, 0xa5, sizeof(*st));
	return fv_ioc(fd, FPGASTREAM_IOC_STATS, st);
}

/* At rest, every counter attribute equals STATS; returns them in @v. */
static void assert_counters_are_stats(struct __test_metadata *_metadata, struct env *e,
				      int fd, uint64_t *v, const char *when)
{
	struct fpgastream_stats st;
	uint64_t mine[NR_COUNTERS];
	int i;

	if (!v)
		v = mine;
	ASSERT_EQ(0, do_stats(fd, &st));
	read_counters(_metadata, e, v);
	for (i = 0; i < NR_COUNTERS; i++) {
		EXPECT_EQ(stats_field(&st, i), v[i]) {
			TH_LOG("%s: sysfs %s is %ju, STATS says %ju", when, counter_attrs[i],
			       (uintmax_t)v[i], (uintmax_t)stats_field(&st, i));
		}
	}
	for (i = 0; i < 9; i++) {
		EXPECT_EQ(0, st.reserved[i]) TH_LOG("STATS reserved[%d] %#jx", i, (uintmax_t)st.reserved[i]);
	}
}

/* ------------------------------------------------------------- ioctls */

static int do_map(int fd, const void *addr, uint64_t len, uint32_t flags,
		  struct fpgastream_map *out)
{
	struct fpgastream_map m = {
		.addr = (uintptr_t)addr, .length = len, .flags = flags,
	};
	int err = fv_ioc(fd, FPGASTREAM_IOC_MAP, &m);

	if (out)
		*out = m;
	return err;
}

static int do_start(int fd, uint32_t flags, uint32_t count, uint32_t usec)
{
	struct fpgastream_start s = {
		.flags = flags, .irq_coalesce_count = count, .irq_coalesce_usec = usec,
	};

	return fv_ioc(fd, FPGASTREAM_IOC_START, &s);
}

static int do_stop(int fd)
{
	return fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
}

static int do_unmap(int fd)
{
	return fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* SIGALRM interrupts a blocked call (no SA_RESTART): our read() watchdog. */
static int arm_watchdog_signal(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };

	return sigaction(SIGALRM, &sa, NULL);
}

/*
 * Start a helper thread with SIGALRM blocked, so the watchdog always lands
 * on the thread that armed it: a process-wide signal taken by a helper
 * would leave a stuck read() asleep and the suite hung instead of failed.
 */
static int spawn_helper(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t alrm, old;
	int ret;

	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, &old);
	ret = pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static void watchdog(unsigned int ms)
{
	struct itimerval it = { .it_value = { ms / 1000, (ms % 1000) * 1000 } };

	setitimer(ITIMER_REAL, &it, NULL);
}

#define RD_NOW		(-1)		/* read() at once (for O_NONBLOCK) */
#define RD_BLOCK	(-2)		/* a blocking read(), watchdog WAIT_MS */

/*
 * One read() call of up to @max records: after waiting in poll() up to
 * @ms, or (RD_BLOCK) blocking in read() itself up to WAIT_MS.  Counts the
 * read() in *@calls.  Returns records, 0 at the end of the stream, -errno,
 * or -ETIME when nothing came in time (poll timed out, or the watchdog
 * interrupted the blocked read()).
 */
static long counted_read(int fd, struct fpgastream_block *r, size_t max, int ms,
			 uint64_t *calls)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int ret, err;

	if (ms >= 0) {
		ret = poll(&p, 1, ms);
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIME;
	}
	if (ms == RD_BLOCK)
		watchdog(WAIT_MS);
	n = read(fd, r, max * REC);
	err = errno;
	if (ms == RD_BLOCK)
		watchdog(0);
	(*calls)++;
	if (n < 0)
		return ms == RD_BLOCK && err == EINTR ? -ETIME : -err;
	if (n % REC)
		return -EPROTO;
	return n / REC;
}

/* Physical address of @p from /proc/self/pagemap (root), or ~0. */
static uint64_t phys_addr(const void *p)
{
	uint64_t ent = 0, pfn;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return ~0ULL;
	if (pread(fd, &ent, 8, ((uintptr_t)p / 4096) * 8) != 8)
		ent = 0;
	close(fd);
	pfn = ent & ((1ULL << 55) - 1);
	if (!(ent >> 63) || !pfn)
		return ~0ULL;
	return pfn * 4096 + ((uintptr_t)p & 4095);
}

/* Does any 2 MiB page of [p, p+len) lie at or above 4 GiB?  -1: unknown. */
static int any_above_4g(const uint8_t *p, size_t len)
{
	size_t off;
	uint64_t a;

	for (off = 0; off < len; off += HUGE_2M) {
		a = phys_addr(p + off);
		if (a == ~0ULL)
			return -1;
		if (a + HUGE_2M > (1ULL << 32))
			return 1;
	}
	return 0;
}

/* --------------------------------------------------------- data pattern */

/*
 * First word of the block at @w that is not the reference pattern of
 * source sequence @s (datasheet, "Data pattern"), or -1.  @sparse checks
 * words 0, 1, 2, the last and every 97th.
 */
static long pattern_bad_word(const uint64_t *w, uint64_t s, uint64_t seed, bool sparse)
{
	uint64_t i, step = sparse ? 97 : 1;

	if (w[0] != s)
		return 0;
	if (w[1] != ~s)
		return 1;
	for (i = 2; i < WORDS; i += step)
		if (w[i] != fv_splitmix64(seed ^ (s << 13) ^ i))
			return i;
	if (w[WORDS - 1] != fv_splitmix64(seed ^ (s << 13) ^ (WORDS - 1)))
		return WORDS - 1;
	return -1;
}

/* =================================================== fixture: surface */

FIXTURE(surface) {
	struct env e;
};

FIXTURE_SETUP(surface)
{
	const char *why = env_setup(&self->e);

	if (why)
		SETUP_SKIP("%s", why);
	ASSERT_LE(0, self->e.p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
}

FIXTURE_TEARDOWN(surface)
{
	env_teardown(_metadata, &self->e);
}

/*
 * Every attribute of docs/sysfs-class-fpgastream: there, a regular file,
 * read-only and readable by everyone (also by an unprivileged process),
 * one decimal value or word and a newline; the class directory matches the
 * node; the MAP phase times are gone from sysfs.
 */
TEST_F_TIMEOUT(surface, sysfs_files, T_SHORT)
{
	struct env *e = &self->e;
	char path[PATH_MAX + 64], raw[128], link[PATH_MAX];
	/* power/ too, but only with CONFIG_PM (the debug kernel has none) */
	const char *std[] = { "dev", "uevent", "subsystem", "device" };
	struct stat st, nst;
	unsigned int i, maj, min;
	ssize_t n;
	pid_t pid;
	int status, fd;

	ASSERT_EQ(0, stat(e->cls, &st)) TH_LOG("%s: %s", e->cls, strerror(errno));
	ASSERT_TRUE(S_ISDIR(st.st_mode));
	for (i = 0; i < sizeof(std) / sizeof(std[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", e->cls, std[i]);
		EXPECT_TRUE(fv_exists(path)) TH_LOG("no %s", path);
	}
	/* Same N as /dev/fpgastream<N>: "dev" is the node's device number. */
	ASSERT_EQ(0, file_text(e->cls, "dev", raw, sizeof(raw)));
	ASSERT_EQ(2, sscanf(raw, "%u:%u", &maj, &min)) TH_LOG("dev is \"%s\"", raw);
	ASSERT_EQ(0, stat(e->d.node, &nst));
	ASSERT_TRUE(S_ISCHR(nst.st_mode));
	EXPECT_EQ(maj, major(nst.st_rdev));
	EXPECT_EQ(min, minor(nst.st_rdev));
	/* "device" is the link to the PCI device. */
	snprintf(path, sizeof(path), "%s/device", e->cls);
	n = readlink(path, link, sizeof(link) - 1);
	ASSERT_LT(0, n) TH_LOG("readlink %s: %s", path, strerror(errno));
	link[n] = 0;
	EXPECT_STREQ(e->d.bdf, strrchr(link, '/') ? strrchr(link, '/') + 1 : link);

	for (i = 0; i < sizeof(sysfs_attrs) / sizeof(sysfs_attrs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", e->cls, sysfs_attrs[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("documented attribute %s: %s", path,
						      strerror(errno));
		EXPECT_TRUE(S_ISREG(st.st_mode)) TH_LOG("%s is not a regular file", path);
		EXPECT_EQ(0444, st.st_mode & 07777) {
			TH_LOG("%s has mode %o: the attributes are read-only, readable by everyone",
			       path, st.st_mode & 07777);
		}
		ASSERT_EQ(0, fv_read_text(path, raw, sizeof(raw)));
		if (!strcmp(sysfs_attrs[i], "state")) {
			EXPECT_TRUE(is_word_line(raw)) TH_LOG("%s is \"%s\"", path, raw);
		} else {
			EXPECT_TRUE(is_decimal_line(raw)) TH_LOG("%s is \"%s\"", path, raw);
		}
		/* Read-only: even root cannot write it. */
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			EXPECT_GT(0, write(fd, "0\n", 2)) TH_LOG("%s accepted a write", path);
			close(fd);
		}
	}
	/* iommu and bounced are 0 or 1. */
	EXPECT_GE(1, ATTR(e, "iommu"));
	EXPECT_GE(1, ATTR(e, "bounced"));

	/* Figures only benchmarks want left sysfs (issue 14). */
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", e->cls, phase_files[i]);
		EXPECT_FALSE(fv_exists(path)) TH_LOG("%s is still in sysfs", path);
	}

	/* Readable by everyone: an unprivileged process reads each one. */
	fflush(NULL);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int bad = 0;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(100);
		for (i = 0; i < sizeof(sysfs_attrs) / sizeof(sysfs_attrs[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", e->cls, sysfs_attrs[i]);
			if (fv_read_text(path, raw, sizeof(raw)) || !raw[0]) {
				fprintf(stderr, "# nobody cannot read %s\n", path);
				bad++;
			}
		}
		_exit(bad);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("attributes an unprivileged user cannot read");
}

/*
 * The attributes of "the current mapping": 0 (and idle) before MAP, MAP's
 * values with one, for every file of the board, and 0 again after UNMAP and
 * after the close of the file that mapped.
 */
TEST_F_TIMEOUT(surface, mapping_attributes, T_SHORT)
{
	struct env *e = &self->e;
	uint64_t iommu = !!(e->d.info.flags & FPGASTREAM_INFO_IOMMU);
	struct fpgastream_map m;
	uint8_t *b;
	int a, o;

	assert_no_mapping(_metadata, e, "before any MAP");
	b = env_huge(e, 4 * MIB);
	if (!b)
		SKIP(return, "needs 2 free 2 MiB hugepages");
	a = env_open(e, 0);
	o = env_open(e, 0);
	ASSERT_LE(0, a);
	ASSERT_LE(0, o);
	assert_no_mapping(_metadata, e, "after open, before MAP");

	ASSERT_EQ(0, do_map(a, b, 4 * MIB, 0, &m));
	ASSERT_EQ(64, m.nr_blocks);
	EXPECT_LE(1, m.nr_segments);
	ASSERT_STATE(e, "mapped");
	EXPECT_EQ(4 * MIB, ATTR(e, "buffer_size"));
	EXPECT_EQ(m.nr_blocks, ATTR(e, "nr_blocks"));
	EXPECT_EQ(!!(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED), ATTR(e, "bounced")) {
		TH_LOG("MAP returned mapped_flags %#x", m.mapped_flags);
	}
	EXPECT_EQ(iommu, ATTR(e, "iommu"));
	/* INFO_IOMMU: DMA is translated, so the bus addresses are IOVAs. */
	EXPECT_EQ(iommu, !!(m.mapped_flags & FPGASTREAM_MAPPED_IOMMU)) {
		TH_LOG("INFO flags %#x, mapped_flags %#x", e->d.info.flags, m.mapped_flags);
	}
	/* Which configurations bounce (docs: swiotlb=force; beyond the board's
	 * DMA bits without an IOMMU; never through an IOMMU otherwise). */
	if (e->d.swiotlb && !e->d.iommu) {
		EXPECT_EQ(1, ATTR(e, "bounced")) TH_LOG("swiotlb=force and not bounced?");
	}
	if (!e->d.swiotlb && !e->d.dma32) {
		EXPECT_EQ(0, ATTR(e, "bounced"));
	}
	if (e->d.dma32 && any_above_4g(b, 4 * MIB) == 0) {
		EXPECT_EQ(0, ATTR(e, "bounced")) TH_LOG("a buffer below 4 GiB bounced");
	}
	if (e->d.dma32 && any_above_4g(b, 4 * MIB) == 1) {
		EXPECT_EQ(1, ATTR(e, "bounced")) TH_LOG("a buffer above 4 GiB did not bounce");
	}
	ksft_print_msg("mapped 4 MiB: %u segments, mapped_flags %#x, bounced %ju, iommu %ju\n",
		       m.nr_segments, m.mapped_flags, (uintmax_t)ATTR(e, "bounced"),
		       (uintmax_t)ATTR(e, "iommu"));

	/* A failed MAP on the other file changes none of it. */
	EXPECT_EQ(-EBUSY, do_map(o, b + 2 * MIB, 2 * MIB, 0, NULL));
	EXPECT_EQ(4 * MIB, ATTR(e, "buffer_size"));
	EXPECT_EQ(64, ATTR(e, "nr_blocks"));
	ASSERT_STATE(e, "mapped");

	ASSERT_EQ(0, do_unmap(a));
	assert_no_mapping(_metadata, e, "after UNMAP");

	/* Another length, then the close of the mapping file. */
	ASSERT_EQ(0, do_map(a, b, 2 * MIB, 0, &m));
	EXPECT_EQ(2 * MIB, ATTR(e, "buffer_size"));
	EXPECT_EQ(32, ATTR(e, "nr_blocks"));
	EXPECT_EQ(32, m.nr_blocks);
	EXPECT_EQ(!!(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED), ATTR(e, "bounced"));
	ASSERT_STATE(e, "mapped");
	env_close(e, a);
	assert_no_mapping(_metadata, e, "after close of the mapping file");

	/* The other file maps now; its mapping shows the same way. */
	ASSERT_EQ(0, do_map(o, b + 2 * MIB, 2 * MIB, 0, &m));
	EXPECT_EQ(2 * MIB, ATTR(e, "buffer_size"));
	EXPECT_EQ(32, ATTR(e, "nr_blocks"));
	EXPECT_EQ(!!(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED), ATTR(e, "bounced"));
	EXPECT_EQ(iommu, ATTR(e, "iommu"));
	env_close(e, o);
	assert_no_mapping(_metadata, e, "after close of the second mapping file");
}

/*
 * docs/debugfs-fpgastream: three files per board, 0 without a mapping,
 * set by MAP (pinning and LUT programming take time: both non-zero), their
 * sum below the ioctl's time as the program sees it, unchanged by what the
 * stream does, 0 again after UNMAP and after close.
 */
TEST_F_TIMEOUT(surface, debugfs_map_phases, T_SHORT)
{
	struct env *e = &self->e;
	struct fpgastream_block r[64];
	uint64_t t0, t1, ph[3], ph2[3], calls = 0, sum;
	const size_t len = 4 * MIB;	/* within the bounce budget of 6.1 (kmod/README.md) */
	char path[PATH_MAX + 64], raw[64];
	struct statfs sfs;
	struct stat st;
	unsigned int i, got = 0;
	uint8_t *b;
	long n;
	int a, o;

	if (statfs("/sys/kernel/debug", &sfs) || sfs.f_type != DEBUGFS_MAGIC)
		SKIP(return, "debugfs is not mounted on /sys/kernel/debug");
	ASSERT_TRUE(fv_exists(e->dbg)) TH_LOG("no %s (issue 14 moves the MAP phases there)", e->dbg);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", e->dbg, phase_files[i]);
		ASSERT_EQ(0, stat(path, &st)) TH_LOG("%s: %s", path, strerror(errno));
		EXPECT_TRUE(S_ISREG(st.st_mode));
		EXPECT_EQ(0444, st.st_mode & 07777) TH_LOG("%s mode %o", path, st.st_mode & 07777);
		ASSERT_EQ(0, fv_read_text(path, raw, sizeof(raw)));
		EXPECT_TRUE(is_decimal_line(raw)) TH_LOG("%s is \"%s\"", path, raw);
	}
	assert_phases_zero(_metadata, e, "without a mapping");

	b = env_huge(e, len);
	if (!b)
		SKIP(return, "needs 8 free 2 MiB hugepages");
	a = env_open(e, 0);
	o = env_open(e, 0);
	ASSERT_LE(0, a);
	ASSERT_LE(0, o);

	/* A MAP that fails sets nothing. */
	EXPECT_EQ(-EINVAL, do_map(a, b + 4096, BLOCK, 0, NULL));
	assert_phases_zero(_metadata, e, "after a MAP that failed");

	t0 = fv_now_ns();
	ASSERT_EQ(0, do_map(a, b, len, 0, NULL));
	t1 = fv_now_ns();
	for (i = 0; i < 3; i++)
		ph[i] = PHASE(e, phase_files[i]);
	ksft_print_msg("MAP of %zu MiB took %ju ns; pin %ju, dma %ju, lut %ju\n", len >> 20,
		       (uintmax_t)(t1 - t0), (uintmax_t)ph[0], (uintmax_t)ph[1], (uintmax_t)ph[2]);
	EXPECT_LT(0, ph[0]) TH_LOG("map_pin_ns is 0 with a mapping");
	EXPECT_LT(0, ph[2]) TH_LOG("map_lut_ns is 0 with a mapping (64 LUT writes)");
	sum = ph[0] + ph[1] + ph[2];
	EXPECT_GE(t1 - t0, sum) {
		TH_LOG("the phases add up to %ju ns, more than the %ju ns the MAP ioctl took",
		       (uintmax_t)sum, (uintmax_t)(t1 - t0));
	}

	/* Kept whatever the stream does, and by another file's failed MAP. */
	EXPECT_EQ(-EBUSY, do_map(o, b, 2 * MIB, 0, NULL));
	fv_wr(&e->d, R_EMU_BURST, 100);
	ASSERT_EQ(0, do_start(a, FPGASTREAM_START_FLOW_CONTROL, 8, 1000));
	while (got < 100) {
		n = counted_read(a, r, 64, WAIT_MS, &calls);
		ASSERT_LT(0, n) TH_LOG("after %u records: %ld", got, n);
		ASSERT_EQ(0, fv_release(a, n));
		got += n;
	}
	ASSERT_EQ(0, do_stop(a));
	ASSERT_EQ(0, do_start(a, 0, 0, 0));
	ASSERT_EQ(0, do_stop(a));
	for (i = 0; i < 3; i++) {
		ph2[i] = PHASE(e, phase_files[i]);
		EXPECT_EQ(ph[i], ph2[i]) TH_LOG("%s changed from %ju to %ju while mapped",
					      phase_files[i], (uintmax_t)ph[i], (uintmax_t)ph2[i]);
	}

	ASSERT_EQ(0, do_unmap(a));
	assert_phases_zero(_metadata, e, "after UNMAP");

	/* A new MAP sets them again; the close of its file clears them. */
	t0 = fv_now_ns();
	ASSERT_EQ(0, do_map(o, b, 2 * MIB, 0, NULL));
	t1 = fv_now_ns();
	for (i = 0; i < 3; i++)
		ph[i] = PHASE(e, phase_files[i]);
	EXPECT_LT(0, ph[0]);
	EXPECT_LT(0, ph[2]);
	EXPECT_GE(t1 - t0, ph[0] + ph[1] + ph[2]);
	env_close(e, o);
	assert_phases_zero(_metadata, e, "after close of the mapping file");
}

/*
 * The state word walks as documented: idle, mapped (no START since MAP),
 * running, stopped (read drains, then 0; START again is allowed), idle after
 * UNMAP and after close of a running stream.
 */
TEST_F_TIMEOUT(surface, state_walk, T_SHORT)
{
	struct env *e = &self->e;
	struct fpgastream_block r[64];
	uint64_t calls = 0;
	unsigned int got = 0;
	uint8_t *b;
	short ev;
	long n;
	int a, o;

	ASSERT_STATE(e, "idle");
	b = env_huge(e, 2 * MIB);
	if (!b)
		SKIP(return, "needs a free 2 MiB hugepage");
	a = env_open(e, 0);
	o = env_open(e, O_NONBLOCK);
	ASSERT_LE(0, a);
	ASSERT_LE(0, o);
	ASSERT_STATE(e, "idle");

	ASSERT_EQ(0, do_map(a, b, 2 * MIB, 0, NULL));
	ASSERT_STATE(e, "mapped");
	/* Failed calls from either file leave it. */
	EXPECT_EQ(-EBUSY, do_map(o, b, 2 * MIB, 0, NULL));
	EXPECT_EQ(-EINVAL, do_start(o, 0, 0, 0));
	ASSERT_STATE(e, "mapped");

	fv_wr(&e->d, R_EMU_BURST, 40);
	ASSERT_EQ(0, do_start(a, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_STATE(e, "running");
	EXPECT_EQ(-EBUSY, do_start(a, 0, 0, 0));
	ASSERT_STATE(e, "running");
	/* Take and give back 8: then the 32-block ring lets the board finish
	 * the burst, and the rest stays pending across STOP. */
	while (got < 8) {
		n = counted_read(a, r, 8 - got, WAIT_MS, &calls);
		ASSERT_LT(0, n);
		for (long i = 0; i < n; i++)
			ASSERT_EQ(got + i, r[i].seq);
		got += n;
		ASSERT_EQ(0, fv_release(a, n));
	}
	ASSERT_STATE(e, "running");
	ASSERT_TRUE(fv_wait_wr_count(&e->d, 40));

	ASSERT_EQ(0, do_stop(a));
	ASSERT_STATE(e, "stopped");
	/* Stopped: read returns the records still pending, then 0. */
	for (;;) {
		n = counted_read(a, r, 64, WAIT_MS, &calls);
		ASSERT_LE(0, n) TH_LOG("read after STOP: %s", strerror(-n));
		if (!n)
			break;
		for (long i = 0; i < n; i++) {
			ASSERT_EQ(got + i, r[i].seq);
		}
		got += n;
		ASSERT_EQ(0, fv_release(a, n));
	}
	EXPECT_EQ(40, got) TH_LOG("records before the end of the stopped stream");
	ev = fv_poll_now(a);
	EXPECT_TRUE(ev & POLLHUP) TH_LOG("poll %#x: a stopped, drained stream is EPOLLHUP", ev);
	EXPECT_FALSE(ev & POLLIN) TH_LOG("poll %#x after the end", ev);
	ASSERT_STATE(e, "stopped");
	(void)do_stop(a);	/* a second STOP: its return is not promised */
	ASSERT_STATE(e, "stopped");

	/* START begins a new stream on the same mapping. */
	fv_wr(&e->d, R_EMU_BURST, 5);
	ASSERT_EQ(0, do_start(a, 0, 0, 0));
	ASSERT_STATE(e, "running");
	n = counted_read(a, r, 1, WAIT_MS, &calls);
	ASSERT_EQ(1, n);
	EXPECT_EQ(0, r[0].seq) TH_LOG("a new stream's first seq");
	ASSERT_EQ(0, do_stop(a));
	ASSERT_STATE(e, "stopped");

	ASSERT_EQ(0, do_unmap(a));
	ASSERT_STATE(e, "idle");

	/* MAP again is "mapped", not "stopped"; close of a running stream: idle. */
	ASSERT_EQ(0, do_map(a, b, 2 * MIB, 0, NULL));
	ASSERT_STATE(e, "mapped");
	fv_wr(&e->d, R_EMU_BURST, 0);
	ASSERT_EQ(0, do_start(a, 0, 0, 0));
	ASSERT_STATE(e, "running");
	env_close(e, a);
	ASSERT_STATE(e, "idle");
	assert_no_mapping(_metadata, e, "after close of a running stream");
}

/*
 * The counters: MAP and START zero them, STOP and UNMAP leave them; at rest
 * each attribute is the STATS field, and each is what the program did
 * (records returned, blocks released, read() calls counted the documented
 * way) and what the board did (WR_COUNT, DROP_COUNT as of STOP).
 */
TEST_F_TIMEOUT(surface, counters_match_stats, T_SHORT)
{
	struct env *e = &self->e;
	struct fpgastream_block r[64];
	uint64_t v[NR_COUNTERS], after[NR_COUNTERS], calls = 0, got = 0, released = 0;
	uint64_t lost = 0, expect_seq = 0;
	struct fpgastream_stats st;
	uint8_t *b;
	long n, i;
	int a, o;

	b = env_huge(e, 4 * MIB);
	if (!b)
		SKIP(return, "needs 2 free 2 MiB hugepages");
	a = env_open(e, 0);
	o = env_open(e, O_NONBLOCK);
	ASSERT_LE(0, a);
	ASSERT_LE(0, o);

	ASSERT_EQ(0, do_map(a, b, 4 * MIB, 0, NULL));
	assert_counters_are_stats(_metadata, e, a, v, "after MAP");
	for (i = 0; i < NR_COUNTERS; i++) {
		EXPECT_EQ(0, v[i]) TH_LOG("%s is %ju after MAP", counter_attrs[i], (uintmax_t)v[i]);
	}

	/* Stream 1: flow control, 150 blocks, the last 5 held back. */
	fv_wr(&e->d, R_EMU_BURST, 150);
	ASSERT_EQ(0, do_start(a, FPGASTREAM_START_FLOW_CONTROL, 4, 1000));
	EXPECT_EQ(0, ATTR(e, "blocks_announced"));
	EXPECT_EQ(0, ATTR(e, "read_calls"));
	while (got < 150) {
		n = counted_read(a, r, 10, WAIT_MS, &calls);
		ASSERT_LT(0, n) TH_LOG("after %ju records: %ld", (uintmax_t)got, n);
		for (i = 0; i < n; i++) {
			ASSERT_EQ(expect_seq++, r[i].seq);
		}
		got += n;
		if (got > 5 && got - 5 > released) {
			ASSERT_EQ(0, fv_release(a, got - 5 - released));
			released = got - 5;
		}
	}
	/* Not counted: a buffer smaller than one record, another file's read. */
	EXPECT_EQ(-1, read(a, r, REC - 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, read(a, r, 0)) TH_LOG("a 0-byte read is smaller than one record");
	EXPECT_EQ(EINVAL, errno);
	(void)!read(o, r, sizeof(r));
	/* Counted: a read that returns -EAGAIN without blocking. */
	ASSERT_EQ(0, fcntl(a, F_SETFL, O_NONBLOCK));
	n = counted_read(a, r, 64, -1, &calls);
	EXPECT_EQ(-EAGAIN, n);
	ASSERT_EQ(0, fcntl(a, F_SETFL, 0));

	ASSERT_EQ(0, do_stop(a));
	/* Counted: the 0 at the end of the stopped stream. */
	n = counted_read(a, r, 64, WAIT_MS, &calls);
	EXPECT_EQ(0, n);
	assert_counters_are_stats(_metadata, e, a, v, "stream 1, after STOP");
	EXPECT_EQ(150, v[0]) TH_LOG("blocks_completed");
	EXPECT_EQ(fv_rd(&e->d, R_WR_COUNT), v[0]) TH_LOG("blocks_completed vs WR_COUNT after STOP");
	EXPECT_EQ(150, v[1]) TH_LOG("blocks_announced");
	EXPECT_EQ(145, v[2]) TH_LOG("blocks_released");
	EXPECT_EQ(0, v[3]) TH_LOG("blocks_overwritten with flow control");
	EXPECT_EQ(0, v[4]) TH_LOG("blocks_dropped at rate 0");
	EXPECT_LE(1, v[5]) TH_LOG("interrupts");
	EXPECT_GE(150, v[5]) TH_LOG("more interrupts than completed blocks");
	EXPECT_EQ(calls, v[6]) TH_LOG("read_calls: the program made %ju counted calls", (uintmax_t)calls);

	/* UNMAP leaves them. */
	ASSERT_EQ(0, do_unmap(a));
	read_counters(_metadata, e, after);
	for (i = 0; i < NR_COUNTERS; i++) {
		EXPECT_EQ(v[i], after[i]) TH_LOG("UNMAP changed %s", counter_attrs[i]);
	}

	/* MAP zeroes them. */
	ASSERT_EQ(0, do_map(a, b, 4 * MIB, 0, NULL));
	assert_counters_are_stats(_metadata, e, a, v, "after the second MAP");
	for (i = 0; i < NR_COUNTERS; i++) {
		EXPECT_EQ(0, v[i]) TH_LOG("%s is %ju after MAP", counter_attrs[i], (uintmax_t)v[i]);
	}

	/* Stream 2: overwrite, 400 blocks on 64, read only once they are done. */
	calls = 0;
	got = 0;
	fv_wr(&e->d, R_EMU_BURST, 400);
	ASSERT_EQ(0, do_start(a, 0, 0, 0));
	ASSERT_TRUE(fv_wait_wr_count(&e->d, 400));
	fv_sleep_ms(20);
	ASSERT_EQ(0, do_stop(a));
	expect_seq = 0;
	for (;;) {
		n = counted_read(a, r, 64, WAIT_MS, &calls);
		ASSERT_LE(0, n) TH_LOG("read after STOP: %s", strerror(-n));
		if (!n)
			break;
		for (i = 0; i < n; i++) {
			ASSERT_EQ(expect_seq + r[i].lost, r[i].seq);
			EXPECT_EQ(!!r[i].lost, !!(r[i].flags & FPGASTREAM_BLOCK_OVERRUN));
			lost += r[i].lost;
			expect_seq = r[i].seq + 1;
		}
		got += n;
		ASSERT_EQ(0, fv_release(a, n));
	}
	EXPECT_EQ(400, expect_seq) TH_LOG("the last record is the last block");
	EXPECT_GE(64, got) TH_LOG("more records than the ring holds after STOP");
	assert_counters_are_stats(_metadata, e, a, v, "stream 2 (overwrite), after draining");
	EXPECT_EQ(400, v[0]);
	EXPECT_EQ(got, v[1]);
	EXPECT_EQ(got, v[2]);
	EXPECT_EQ(lost, v[3]) TH_LOG("blocks_overwritten vs the records' lost");
	EXPECT_EQ(400 - got, v[3]);
	EXPECT_EQ(0, v[4]);
	EXPECT_EQ(calls, v[6]);

	/* START zeroes what the program drives. */
	fv_wr(&e->d, R_EMU_BURST, 3);
	ASSERT_EQ(0, do_start(a, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	EXPECT_EQ(0, ATTR(e, "blocks_announced")) TH_LOG("START does not zero blocks_announced");
	EXPECT_EQ(0, ATTR(e, "blocks_released"));
	EXPECT_EQ(0, ATTR(e, "blocks_overwritten"));
	EXPECT_EQ(0, ATTR(e, "read_calls"));
	ASSERT_TRUE(fv_wait_wr_count(&e->d, 3));
	ASSERT_EQ(0, do_stop(a));
	assert_counters_are_stats(_metadata, e, a, v, "stream 3, after STOP");
	EXPECT_EQ(3, v[0]);
	EXPECT_EQ(0, v[1]);
	EXPECT_EQ(0, v[6]);
	/* STATS reads the same from a file of the board without the mapping?
	 * Not promised; only that it does not change the counters. */
	(void)do_stats(o, &st);
	read_counters(_metadata, e, after);
	for (i = 0; i < NR_COUNTERS; i++) {
		EXPECT_EQ(v[i], after[i]) TH_LOG("%s moved at rest", counter_attrs[i]);
	}
}

/*
 * The error table on one board from two files: INFO works from a second
 * file while the first streams; a mapping anywhere on the board is EBUSY
 * for MAP; a file without one gets EINVAL for START and RELEASE, and its
 * STOP and UNMAP do not touch the other file's stream.
 */
TEST_F_TIMEOUT(surface, two_files_errors, T_SHORT)
{
	struct env *e = &self->e;
	struct fpgastream_info ia, ib;
	struct fpgastream_block r[64];
	uint64_t calls = 0, got = 0, one = 1;
	uint8_t *b;
	long n, i;
	int a, o;

	b = env_huge(e, 8 * MIB);
	if (!b)
		SKIP(return, "needs 4 free 2 MiB hugepages");
	a = env_open(e, 0);
	o = env_open(e, 0);
	ASSERT_LE(0, a);
	ASSERT_LE(0, o);

	/* MAP's argument checks, before anything is mapped. */
	EXPECT_EQ(-EINVAL, do_map(a, b + 4096, 2 * MIB, 0, NULL)) TH_LOG("addr not block-aligned");
	EXPECT_EQ(-EINVAL, do_map(a, b, 0, 0, NULL)) TH_LOG("length 0");
	EXPECT_EQ(-EINVAL, do_map(a, b, BLOCK + 4096, 0, NULL)) TH_LOG("length not block-aligned");
	EXPECT_EQ(-EINVAL, do_map(a, b, e->d.info.max_buffer_size + BLOCK, 0, NULL))
		TH_LOG("length > max_buffer_size");
	EXPECT_EQ(-EINVAL, do_start(a, 0, 0, 0)) TH_LOG("START without a mapping");
	EXPECT_EQ(-EINVAL, fv_release(a, 1)) TH_LOG("RELEASE without a mapping");
	assert_no_mapping(_metadata, e, "after MAPs that failed");

	ASSERT_EQ(0, do_map(a, b, 4 * MIB, 0, NULL));
	EXPECT_EQ(-EBUSY, do_map(a, b + 4 * MIB, 4 * MIB, 0, NULL)) TH_LOG("MAP twice on one file");
	EXPECT_EQ(-EBUSY, do_map(o, b + 4 * MIB, 4 * MIB, 0, NULL)) TH_LOG("MAP from a second file");
	EXPECT_EQ(-EINVAL, do_start(o, 0, 0, 0)) TH_LOG("START on the file without the mapping");
	EXPECT_EQ(-EINVAL, fv_release(a, 1)) TH_LOG("RELEASE with nothing announced");

	fv_wr(&e->d, R_EMU_BURST, 0);
	ASSERT_EQ(0, do_start(a, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	EXPECT_EQ(-EBUSY, do_start(a, FPGASTREAM_START_FLOW_CONTROL, 0, 0)) TH_LOG("START while running");
	EXPECT_EQ(-EBUSY, do_start(a, 0, 0, 0));
	EXPECT_EQ(-EBUSY, do_map(o, b + 4 * MIB, 4 * MIB, 0, NULL));
	EXPECT_EQ(-EINVAL, fv_release(o, 1)) TH_LOG("RELEASE on the file without the mapping");

	/* INFO works on both, the same facts. */
	memset(&ia, 0, sizeof(ia));
	memset(&ib, 0xff, sizeof(ib));
	ASSERT_EQ(0, fv_ioc(a, FPGASTREAM_IOC_INFO, &ia));
	ASSERT_EQ(0, fv_ioc(o, FPGASTREAM_IOC_INFO, &ib)) TH_LOG("INFO while another file streams");
	EXPECT_EQ(0, memcmp(&ia, &ib, sizeof(ia)));
	EXPECT_EQ(FPGASTREAM_ABI_VERSION, ib.abi_version);
	EXPECT_EQ(BLOCK, ib.block_size);
	EXPECT_EQ((uint64_t)ib.lut_capacity * ib.block_size, ib.max_buffer_size);

	/* Records; RELEASE of more than announced and unreleased is EINVAL. */
	n = counted_read(a, r, 16, WAIT_MS, &calls);
	ASSERT_LT(0, n);
	got = n;
	EXPECT_EQ(-EINVAL, fv_release(a, got + 1));
	EXPECT_EQ(-EINVAL, fv_ioc(a, FPGASTREAM_IOC_RELEASE, &(uint64_t){ ~0ULL }));
	EXPECT_EQ(-1, read(a, r, REC - 1));
	EXPECT_EQ(EINVAL, errno) TH_LOG("read smaller than one record");
	ASSERT_EQ(0, fv_release(a, got));
	EXPECT_EQ(-EINVAL, fv_ioc(a, FPGASTREAM_IOC_RELEASE, &one)) TH_LOG("all given back already");

	/* The other file's STOP and UNMAP do not end this file's stream. */
	(void)do_stop(o);
	(void)do_unmap(o);
	ASSERT_STATE(e, "running");
	EXPECT_EQ(4 * MIB, ATTR(e, "buffer_size"));
	for (i = 0; i < 3; i++) {
		n = counted_read(a, r, 16, WAIT_MS, &calls);
		ASSERT_LT(0, n) TH_LOG("the stream ended after the other file's STOP/UNMAP: %ld", n);
		ASSERT_EQ(got, r[0].seq);
		got += n;
		ASSERT_EQ(0, fv_release(a, n));
	}

	ASSERT_EQ(0, do_stop(a));
	EXPECT_EQ(-EBUSY, do_map(a, b + 4 * MIB, 4 * MIB, 0, NULL)) TH_LOG("MAP over a stopped mapping");
	EXPECT_EQ(-EBUSY, do_map(o, b + 4 * MIB, 4 * MIB, 0, NULL));
	env_close(e, a);
	/* Now the other file maps; then its own errors. */
	ASSERT_EQ(0, do_map(o, b + 4 * MIB, 4 * MIB, 0, NULL));
	ASSERT_STATE(e, "mapped");
	EXPECT_EQ(-EINVAL, fv_release(o, 1));
	ASSERT_EQ(0, do_unmap(o));
	assert_no_mapping(_metadata, e, "after the second file's UNMAP");
}

/*
 * Unknown ioctls are ENOTTY, on a plain file and on a streaming one, and
 * leave the stream alone: the request codes differ from the header's in
 * number, magic, size or direction.
 */
TEST_F_TIMEOUT(surface, unknown_ioctls, T_SHORT)
{
	struct env *e = &self->e;
	const unsigned long bad[] = {
		_IO(FPGASTREAM_IOC_MAGIC, 0x3f),
		_IOWR(FPGASTREAM_IOC_MAGIC, 0xff, struct fpgastream_map),
		_IO('x', 0x00),
		_IOR('x', 0x06, struct fpgastream_stats),
		_IOR(FPGASTREAM_IOC_MAGIC, 0x00, __u32),			/* INFO, wrong size */
		_IOW(FPGASTREAM_IOC_MAGIC, 0x06, struct fpgastream_stats),	/* STATS, wrong dir */
		_IOW(FPGASTREAM_IOC_MAGIC, 0x02, __u64),			/* UNMAP with an argument */
		_IOWR(FPGASTREAM_IOC_MAGIC, 0x01, struct fpgastream_start),	/* MAP, wrong size */
		TCGETS,
	};
	uint8_t arg[256];
	struct fpgastream_block r[16];
	struct fpgastream_stats s0, s1;
	uint64_t calls = 0;
	unsigned int i;
	uint8_t *b;
	long n;
	int a, o;

	b = env_huge(e, 2 * MIB);
	if (!b)
		SKIP(return, "needs a free 2 MiB hugepage");
	a = env_open(e, 0);
	o = env_open(e, 0);
	ASSERT_LE(0, a);
	ASSERT_LE(0, o);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(arg, 0, sizeof(arg));
		errno = 0;
		EXPECT_EQ(-1, ioctl(o, bad[i], arg)) TH_LOG("ioctl %#lx", bad[i]);
		EXPECT_EQ(ENOTTY, errno) TH_LOG("ioctl %#lx without a mapping: %s", bad[i], strerror(errno));
	}
	ASSERT_EQ(0, do_map(a, b, 2 * MIB, 0, NULL));
	fv_wr(&e->d, R_EMU_BURST, 20);
	ASSERT_EQ(0, do_start(a, FPGASTREAM_START_FLOW_CONTROL, 0, 0));
	ASSERT_TRUE(fv_wait_wr_count(&e->d, 20));
	n = counted_read(a, r, 16, WAIT_MS, &calls);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, fv_release(a, n));
	ASSERT_EQ(0, do_stats(a, &s0));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(arg, 0, sizeof(arg));
		errno = 0;
		EXPECT_EQ(-1, ioctl(a, bad[i], arg));
		EXPECT_EQ(ENOTTY, errno) TH_LOG("ioctl %#lx while streaming: %s", bad[i], strerror(errno));
	}
	ASSERT_STATE(e, "running");
	ASSERT_EQ(0, do_stats(a, &s1));
	EXPECT_EQ(s0.blocks_announced, s1.blocks_announced);
	EXPECT_EQ(s0.blocks_released, s1.blocks_released);
	EXPECT_EQ(s0.read_calls, s1.read_calls);
	/* The stream goes on where it was. */
	n = counted_read(a, r, 16, WAIT_MS, &calls);
	ASSERT_LT(0, n);
	EXPECT_EQ(s1.blocks_announced, r[0].seq);
	ASSERT_EQ(0, do_stop(a));
}

/*
 * Beside a reader: since when has WR_COUNT been above what the reader got
 * (0: it is not)?  Sampled every 2 ms.
 */
struct watch {
	struct fv_dev *d;
	atomic_ullong got, since;
	atomic_bool stop;
};

static void *watch_main(void *arg)
{
	struct watch *wt = arg;
	unsigned long long zero;

	while (!atomic_load(&wt->stop)) {
		if (fv_rd(wt->d, R_WR_COUNT) > atomic_load(&wt->got)) {
			zero = 0;
			atomic_compare_exchange_strong(&wt->since, &zero, fv_now_ns());
		} else {
			atomic_store(&wt->since, 0);
		}
		fv_sleep_ms(2);
	}
	return NULL;
}

/*
 * One case of the wake-up rule: flow-controlled bursts of @burst blocks on a
 * 64-block ring with irq_coalesce_count @count and irq_coalesce_usec 0, so
 * that some completed blocks are never followed by the count's interrupt.
 * The reader takes 8 records at a time and waits in poll() or in a
 * blocking read(), 1 s at most each time.  A wait that times out while
 * WR_COUNT has been above what the reader got for more than 100 ms broke
 * the rule (10 ms).  Returns false then, saying why.
 */
static bool reader_wakes(struct env *e, uint8_t *b, bool use_poll, unsigned int count,
			 unsigned int burst, char *why, size_t len)
{
	struct watch wt = { .d = &e->d };
	struct fpgastream_block r[8];
	uint64_t calls = 0, got, deadline, since, now;
	unsigned int round;
	pthread_t th;
	struct pollfd p;
	bool ok = true;
	long n;
	int fd, ret;

	fd = env_open(e, 0);
	if (fd < 0 || do_map(fd, b, 4 * MIB, 0, NULL)) {
		snprintf(why, len, "open/MAP: %s", strerror(errno));
		return false;
	}
	if (spawn_helper(&th, watch_main, &wt)) {
		snprintf(why, len, "pthread_create failed");
		env_close(e, fd);
		return false;
	}
	for (round = 0; ok && round < 3; round++) {
		atomic_store(&wt.got, 0);
		atomic_store(&wt.since, 0);
		got = 0;
		fv_wr(&e->d, R_EMU_BURST, burst);
		if (do_start(fd, FPGASTREAM_START_FLOW_CONTROL, count, 0)) {
			snprintf(why, len, "START: %s", strerror(errno));
			ok = false;
			break;
		}
		deadline = fv_now_ns() + 30000 * NSEC_PER_MS;
		while (got < burst && fv_now_ns() < deadline) {
			if (use_poll) {
				p = (struct pollfd){ .fd = fd, .events = POLLIN };
				ret = poll(&p, 1, 1000);
				n = ret > 0 ? counted_read(fd, r, 8, RD_NOW, &calls) : -ETIME;
			} else {
				watchdog(1000);
				n = read(fd, r, sizeof(r));
				n = n < 0 ? (errno == EINTR ? -ETIME : -errno) : n / (long)REC;
				watchdog(0);
			}
			now = fv_now_ns();
			since = atomic_load(&wt.since);
			if (n == -ETIME && since && now - since > 100 * NSEC_PER_MS) {
				snprintf(why, len, "round %u: %s slept 1 s with %ju of %u blocks announced, "
					 "while WR_COUNT (%u now) had been above that for %ju ms "
					 "(irq_coalesce_count %u, usec 0)", round,
					 use_poll ? "poll()" : "read()", (uintmax_t)got, burst,
					 fv_rd(&e->d, R_WR_COUNT),
					 (uintmax_t)((now - since) / NSEC_PER_MS), count);
				ok = false;
				break;
			}
			if (n == -ETIME)
				continue;
			if (n <= 0) {
				snprintf(why, len, "round %u: read after %ju records: %ld", round,
					 (uintmax_t)got, n);
				ok = false;
				break;
			}
			got += n;
			atomic_store(&wt.since, 0);
			atomic_store(&wt.got, got);
			if (fv_release(fd, n)) {
				snprintf(why, len, "RELEASE: %s", strerror(errno));
				ok = false;
				break;
			}
		}
		if (ok && got < burst) {
			snprintf(why, len, "round %u: only %ju of %u records in 30 s", round,
				 (uintmax_t)got, burst);
			ok = false;
		}
		do_stop(fd);
	}
	atomic_store(&wt.stop, true);
	pthread_join(th, NULL);
	env_close(e, fd);
	return ok;
}

/*
 * The contract: nothing the program does, START's settings included, leaves
 * a blocking read() or a poll() asleep while a completed block is still
 * unannounced for longer than irq_coalesce_usec or 10 ms.  With usec 0 and
 * a count the board does not reach (the end of a burst; a ring that fills
 * first), the driver has to look by itself.  1 s (100 times the rule's
 * 10 ms) counts as asleep.
 */
TEST_F_TIMEOUT(surface, coalesced_reader_wakes, T_SHORT * 2)
{
	struct env *e = &self->e;
	static const struct { bool poll; unsigned int count, burst; const char *what; } c[] = {
		{ true, 16, 40, "poll(), the last 8 blocks of a burst below the count" },
		{ false, 16, 40, "read(), the last 8 blocks of a burst below the count" },
		{ true, 100, 150, "poll(), count 100 > a ring of 64" },
		{ false, 100, 150, "read(), count 100 > a ring of 64" },
	};
	char why[512];
	unsigned int i;
	uint8_t *b;

	b = env_huge(e, 4 * MIB);
	if (!b)
		SKIP(return, "needs 2 free 2 MiB hugepages");
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		why[0] = 0;
		EXPECT_TRUE(reader_wakes(e, b, c[i].poll, c[i].count, c[i].burst,
					 why, sizeof(why))) {
			TH_LOG("%s: %s", c[i].what, why);
		}
		assert_no_mapping(_metadata, e, "after the case");
	}
}

/* Read /dev/kmsg from @fd on; is there a line with all of @a, @b, @c? */
static bool kmsg_has(int fd, const char *a, const char *b, const char *c, char *out, size_t len)
{
	char line[2048];
	ssize_t n;
	bool found = false;

	while (fd >= 0 && (n = read(fd, line, sizeof(line) - 1)) != 0) {
		if (n < 0) {
			if (errno == EPIPE)
				continue;	/* overwritten records: go on */
			break;
		}
		line[n] = 0;
		if (!found && strstr(line, a) && strstr(line, b) && strstr(line, c)) {
			snprintf(out, len, "%.1000s", strchr(line, ';') ? strchr(line, ';') + 1 : line);
			found = true;
		}
	}
	return found;
}

/*
 * What bouncing looks like to a program: MAPPED_BOUNCED and sysfs bounced
 * where the documents say the kernel bounces, ERANGE for NO_BOUNCE there,
 * success and no flag elsewhere; and, under swiotlb=force, a buffer larger
 * than the bounce pool is ENOMEM with a kernel line naming swiotlb=, after
 * which the board still maps and streams.
 */
TEST_F_TIMEOUT(surface, bounce_rules, T_SHORT)
{
	struct env *e = &self->e;
	struct fpgastream_map m;
	char msg[1024] = "", why[256];
	bool expect_bounce;
	uint64_t pool = 64 * MIB, big;
	unsigned long nslabs;
	long long free_pages;
	int a, err, kmsg, high;
	uint8_t *b, *bb;

	b = env_huge(e, 4 * MIB);
	if (!b)
		SKIP(return, "needs 2 free 2 MiB hugepages");
	a = env_open(e, 0);
	ASSERT_LE(0, a);
	high = any_above_4g(b, 4 * MIB);
	if (e->d.iommu)
		expect_bounce = false;
	else if (e->d.swiotlb)
		expect_bounce = true;
	else if (e->d.dma32)
		expect_bounce = high != 0;
	else
		expect_bounce = false;
	if (e->d.dma32 && !e->d.iommu && high < 0)
		SKIP(return, "cannot tell where the buffer lies (pagemap)");
	ksft_print_msg("iommu %d swiotlb %d dma32 %d, buffer above 4 GiB: %d\n",
		       e->d.iommu, e->d.swiotlb, e->d.dma32, high);

	err = do_map(a, b, 4 * MIB, FPGASTREAM_MAP_NO_BOUNCE, &m);
	if (expect_bounce) {
		EXPECT_EQ(-ERANGE, err) TH_LOG("NO_BOUNCE where the kernel bounces");
		assert_no_mapping(_metadata, e, "after NO_BOUNCE gave ERANGE");
		assert_phases_zero(_metadata, e, "after NO_BOUNCE gave ERANGE");
		if (!err) {
			ASSERT_EQ(0, do_unmap(a));
		}
	} else {
		ASSERT_EQ(0, err) TH_LOG("NO_BOUNCE where nothing should bounce: %s", strerror(-err));
		EXPECT_FALSE(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED);
		EXPECT_EQ(0, ATTR(e, "bounced"));
		ASSERT_EQ(0, do_unmap(a));
	}
	ASSERT_EQ(0, do_map(a, b, 4 * MIB, 0, &m));
	EXPECT_EQ(expect_bounce, !!(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED)) {
		TH_LOG("mapped_flags %#x", m.mapped_flags);
	}
	EXPECT_EQ(!!(m.mapped_flags & FPGASTREAM_MAPPED_BOUNCED), ATTR(e, "bounced"));
	ASSERT_EQ(0, do_unmap(a));
	assert_no_mapping(_metadata, e, "after UNMAP");

	if (!e->d.swiotlb || e->d.iommu)
		return;

	/* swiotlb=force: a buffer that does not fit the pool. */
	nslabs = fv_read_hex("/sys/kernel/debug/swiotlb/io_tlb_nslabs");
	if (nslabs != ~0UL && nslabs)
		pool = (uint64_t)nslabs << 11;
	big = (pool + 32 * MIB + HUGE_2M - 1) & ~(HUGE_2M - 1);
	free_pages = fv_proc_kb("/proc/meminfo", "HugePages_Free");
	if (free_pages < (long long)(big / HUGE_2M))
		SKIP(return, "a buffer larger than the %ju MiB bounce pool needs %ju hugepages, %lld free",
		     (uintmax_t)(pool >> 20), (uintmax_t)(big / HUGE_2M), free_pages);
	bb = env_huge(e, big);
	ASSERT_NE(NULL, bb);
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	err = do_map(a, bb, big, 0, &m);
	EXPECT_EQ(-ENOMEM, err) {
		TH_LOG("MAP of %ju MiB through a %ju MiB bounce pool: %s",
		       (uintmax_t)(big >> 20), (uintmax_t)(pool >> 20), strerror(-err));
	}
	if (!err) {
		ASSERT_EQ(0, do_unmap(a));
	}
	EXPECT_TRUE(kmsg_has(kmsg, "fpgastream", "swiotlb=", "", msg, sizeof(msg))) {
		TH_LOG("no kernel line from the driver naming swiotlb= after the ENOMEM");
	}
	if (msg[0])
		ksft_print_msg("kernel: %s", msg);
	if (kmsg >= 0)
		close(kmsg);
	assert_no_mapping(_metadata, e, "after the MAP that did not fit");
	EXPECT_EQ(0, fv_pins_held(e->p0)) TH_LOG("the failed MAP left pages pinned");
	/* Nothing of the pool was kept: a small buffer still bounces and streams. */
	env_close(e, a);
	EXPECT_EQ(0, fv_board_works(&e->d, 64, why, sizeof(why))) TH_LOG("%s", why);
}

/* =================================================== fixture: records */

/*
 * A sampler thread, running beside the reader for the whole stream:
 *  - WR_COUNT through BAR0: at time t (taken before the register read)
 *    block k >= w had not completed, so the driver cannot have seen it:
 *    its timestamp is >= t.  For each w seen we keep the latest such t.
 *  - blocks_completed in sysfs, the driver's last look: once it reads c
 *    (at time u, taken after), the driver has seen block k < c complete,
 *    so k's timestamp is <= u (+ SEEN_SLACK_NS).  Keep the first u per c.
 */
struct wsample { uint64_t t; uint32_t w, d; };
struct csample { uint64_t u; uint64_t c; };

struct sampler {
	struct fv_dev *d;
	int attr_fd;
	pthread_t th;
	bool running;
	atomic_bool stop;
	struct wsample *ws;
	size_t nws, wcap;
	struct csample *cs;
	size_t ncs, ccap;
	bool overflow, went_back, bad_text;
};

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;
	struct timespec nap = { 0, 300 * 1000 };
	char buf[64];
	uint64_t t, c;
	uint32_t w, dc;
	ssize_t n;

	while (!atomic_load(&s->stop)) {
		t = fv_now_ns();
		w = fv_rd(s->d, R_WR_COUNT);
		dc = fv_rd(s->d, R_DROP_COUNT);
		if (s->nws && s->ws[s->nws - 1].w == w && s->ws[s->nws - 1].d == dc) {
			s->ws[s->nws - 1].t = t;
		} else if (s->nws && (w < s->ws[s->nws - 1].w || dc < s->ws[s->nws - 1].d)) {
			s->went_back = true;
		} else if (s->nws < s->wcap) {
			s->ws[s->nws].t = t;
			s->ws[s->nws].d = dc;
			s->ws[s->nws++].w = w;
		} else {
			s->overflow = true;
		}
		n = pread(s->attr_fd, buf, sizeof(buf) - 1, 0);
		t = fv_now_ns();
		if (n > 0) {
			buf[n] = 0;
			if (!is_decimal_line(buf)) {
				s->bad_text = true;
			} else {
				c = strtoull(buf, NULL, 10);
				if (s->ncs && c < s->cs[s->ncs - 1].c) {
					s->went_back = true;
				} else if (!s->ncs || c != s->cs[s->ncs - 1].c) {
					if (s->ncs < s->ccap) {
						s->cs[s->ncs].u = t;
						s->cs[s->ncs++].c = c;
					} else {
						s->overflow = true;
					}
				}
			}
		}
		nanosleep(&nap, NULL);
	}
	return NULL;
}

static int sampler_start(struct env *e, struct sampler *s, size_t blocks)
{
	char path[PATH_MAX + 64];

	memset(s, 0, sizeof(*s));
	s->d = &e->d;
	snprintf(path, sizeof(path), "%s/blocks_completed", e->cls);
	s->attr_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->attr_fd < 0)
		return -errno;
	s->wcap = 4 * blocks + 256;	/* a new entry per WR_COUNT or DROP_COUNT change */
	s->ccap = blocks + 64;
	s->ws = calloc(s->wcap, sizeof(*s->ws));
	s->cs = calloc(s->ccap, sizeof(*s->cs));
	if (!s->ws || !s->cs)
		return -ENOMEM;
	atomic_store(&s->stop, false);
	if (spawn_helper(&s->th, sampler_main, s))
		return -EAGAIN;
	s->running = true;
	e->smp = s;
	return 0;
}

static void sampler_stop(struct sampler *s)
{
	if (s->running) {
		atomic_store(&s->stop, true);
		pthread_join(s->th, NULL);
		s->running = false;
	}
	if (s->attr_fd > 0)
		close(s->attr_fd);
	s->attr_fd = -1;
}

static void sampler_free(struct env *e, struct sampler *s)
{
	sampler_stop(s);
	free(s->ws);
	free(s->cs);
	s->ws = NULL;
	s->cs = NULL;
	e->smp = NULL;
}

/* Latest time at which block @k had provably not completed (0: none). */
static uint64_t not_done_at(const struct sampler *s, uint64_t k)
{
	size_t lo = 0, hi = s->nws;

	/* Last sample with w <= k. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->ws[mid].w <= k)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? s->ws[lo - 1].t : 0;
}

/* First time at which the driver provably had seen block @k (~0: none). */
static uint64_t seen_by(const struct sampler *s, uint64_t k)
{
	size_t lo = 0, hi = s->ncs;

	/* First sample with c > k. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->cs[mid].c > k)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < s->ncs ? s->cs[lo].u : ~0ULL;
}

/*
 * DROP_COUNT around the write of block @k: *@lo read while block k had not
 * been written (drops before it: at least that many), *@hi read after it had
 * (at most that many).  ~0 where the sampler saw no such moment.
 */
static void drops_around(const struct sampler *s, uint64_t k, uint64_t *lo, uint64_t *hi)
{
	size_t i, n = s->nws;

	*lo = *hi = ~0ULL;
	for (i = 0; i < n; i++) {
		if (s->ws[i].w <= k)
			*lo = s->ws[i].d;
		else if (*hi == ~0ULL)
			*hi = s->ws[i].d;
	}
}

FIXTURE(records) {
	struct env e;
	struct sampler smp;
};

FIXTURE_VARIANT(records) {
	bool flow;		/* FPGASTREAM_START_FLOW_CONTROL */
	unsigned int ring;	/* blocks in the ring (largest tried first) */
	unsigned int total;	/* EMU_BURST: blocks the source produces; 0: 6 * count */
	unsigned int rate;	/* EMU_RATE, blocks/s (0: as fast as the engine takes;
				 * ~0: one ring per second) */
	unsigned int count;	/* irq_coalesce_count; ~0: 3/8 of the ring */
	unsigned int usec;	/* irq_coalesce_usec */
	unsigned int lag;	/* overwrite: read once the board is this many rings ahead */
	unsigned int pauses;	/* the reader pauses PAUSE_MS this many times, early on */
	bool small_pages;	/* 4 KiB pages (needs an IOMMU) */
	bool sparse;		/* check every 97th word only */
};

/* Flow control, a ring of 64 for 3000 blocks, the reader pausing twice. */
FIXTURE_VARIANT_ADD(records, flow_ring64) {
	.flow = true, .ring = 64, .total = 3000, .pauses = 2,
};

/* The same with a source that runs at its own rate: drops at the source. */
FIXTURE_VARIANT_ADD(records, flow_ring64_drops) {
	.flow = true, .ring = 64, .total = 3000, .rate = 2000, .pauses = 2,
};

/* A paced source (a ring per second) into a ring that holds a pause: the
 * driver sees the blocks one by one, long before read() returns them. */
FIXTURE_VARIANT_ADD(records, flow_ring1024_paced) {
	.flow = true, .ring = 1024, .total = 3072, .rate = ~0u, .pauses = 2,
};

/* Overwrite mode, the reader three rings behind. */
FIXTURE_VARIANT_ADD(records, overwrite_lagging) {
	.flow = false, .ring = 64, .total = 4000, .rate = 2000, .lag = 3,
};

/*
 * A big ring, one interrupt per 3/8 of it (usec 0): one interrupt covers
 * many blocks.  The stream is a whole number of counts long, so that every
 * block is followed by its interrupt (coalesced_reader_wakes covers the
 * blocks that are not); the source fills 0.8 of the ring during the pause.
 * A smaller ring (bounce pool, hugepages) keeps the rate and skips the pause.
 */
FIXTURE_VARIANT_ADD(records, flow_ring4096_coalesced) {
	.flow = true, .ring = 4096, .total = 0, .rate = 4096, .count = ~0u,
	.usec = 0, .pauses = 1, .sparse = true,
};

/* 4 KiB pages behind an IOMMU: each block is 16 scattered pages. */
FIXTURE_VARIANT_ADD(records, flow_small_pages) {
	.flow = true, .ring = 64, .total = 2000, .small_pages = true, .pauses = 1,
};

FIXTURE_SETUP(records)
{
	const char *why = env_setup(&self->e);

	if (why)
		SETUP_SKIP("%s", why);
	ASSERT_LE(0, self->e.p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
}

FIXTURE_TEARDOWN(records)
{
	env_teardown(_metadata, &self->e);
	free(self->smp.ws);
	free(self->smp.cs);
}

struct relev { uint64_t t; uint64_t upto; };	/* RELEASE begun at t gave back blocks < upto */
struct reclog { uint64_t seq, ts, t_read, cum_lost, lost; };

/* When the RELEASE that gave back block @j began (~0: never). */
static uint64_t released_at(const struct relev *ev, size_t n, uint64_t j)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {	/* first event with upto > j */
		size_t mid = (lo + hi) / 2;

		if (ev[mid].upto > j)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < n ? ev[lo].t : ~0ULL;
}

/* What the reader knows of its stream. */
struct stream {
	struct env *e;
	const FIXTURE_VARIANT(records) *v;
	const uint8_t *buf;
	unsigned int ring;
	uint64_t t_start;
	uint64_t next_seq, records, lost, gaps, last_ts, last_s;
	uint64_t checked, unchecked, calls, released, misplaced;
	struct relev *rel;
	size_t nrel;
	struct reclog *log;
	size_t nlog, logcap;
	struct sampler *smp;
};

/*
 * The rules every record obeys (contract, datasheet): seq and offset, length,
 * lost and OVERRUN together, the timestamp after START, by the end of its
 * read(), never backwards, and (flow control) after the RELEASE that freed
 * its slot; the block holds the pattern of s = k + drops before it.
 */
static void check_records(struct __test_metadata *_metadata, struct stream *st,
			  const struct fpgastream_block *r, long n, uint64_t t_read)
{
	long i, bad;

	for (i = 0; i < n; i++) {
		const struct fpgastream_block *x = &r[i];
		const uint64_t *wd = (const uint64_t *)(st->buf + x->offset);
		uint64_t s, lb, data_s;

		if (st->v->flow) {
			ASSERT_EQ(st->next_seq, x->seq) TH_LOG("record %ju", (uintmax_t)st->records);
		} else {
			ASSERT_EQ(st->next_seq + x->lost, x->seq) {
				TH_LOG("record %ju: seq %ju after %ju, lost %ju",
				       (uintmax_t)st->records, (uintmax_t)x->seq,
				       (uintmax_t)st->next_seq, (uintmax_t)x->lost);
			}
		}
		ASSERT_EQ((x->seq % st->ring) * BLOCK, x->offset) TH_LOG("seq %ju", (uintmax_t)x->seq);
		ASSERT_EQ(BLOCK, x->length) TH_LOG("seq %ju", (uintmax_t)x->seq);
		ASSERT_EQ(0, x->flags & ~FPGASTREAM_BLOCK_OVERRUN) TH_LOG("flags %#x", x->flags);
		ASSERT_EQ(!!x->lost, !!(x->flags & FPGASTREAM_BLOCK_OVERRUN)) {
			TH_LOG("seq %ju: lost %ju, flags %#x", (uintmax_t)x->seq,
			       (uintmax_t)x->lost, x->flags);
		}
		if (x->lost)
			st->gaps++;
		st->lost += x->lost;

		ASSERT_LE(st->t_start, x->timestamp_ns) {
			TH_LOG("seq %ju: timestamp %ju before START at %ju (not CLOCK_MONOTONIC?)",
			       (uintmax_t)x->seq, (uintmax_t)x->timestamp_ns, (uintmax_t)st->t_start);
		}
		ASSERT_GE(t_read, x->timestamp_ns) {
			TH_LOG("seq %ju: timestamp %ju after its read() returned at %ju",
			       (uintmax_t)x->seq, (uintmax_t)x->timestamp_ns, (uintmax_t)t_read);
		}
		ASSERT_LE(st->last_ts, x->timestamp_ns) {
			TH_LOG("seq %ju (lost %ju): timestamp %ju before the previous record's %ju",
			       (uintmax_t)x->seq, (uintmax_t)x->lost, (uintmax_t)x->timestamp_ns,
			       (uintmax_t)st->last_ts);
		}
		/* Flow control: block k cannot start before block k - ring was
		 * given back, so it completed after that RELEASE began. */
		if (st->v->flow && x->seq >= st->ring) {
			lb = released_at(st->rel, st->nrel, x->seq - st->ring);
			ASSERT_LE(lb, x->timestamp_ns) {
				TH_LOG("seq %ju: timestamp %ju, but its slot was given back only at %ju",
				       (uintmax_t)x->seq, (uintmax_t)x->timestamp_ns, (uintmax_t)lb);
			}
		}
		st->last_ts = x->timestamp_ns;

		/* The data.  In overwrite mode the board may have written the
		 * slot again since: then the check says nothing. */
		s = st->v->flow ? x->seq + st->lost : x->seq;
		data_s = s;
		bad = pattern_bad_word(wd, s, st->e->d.seed, st->v->sparse);
		if (!st->v->flow && fv_rd(&st->e->d, R_WR_COUNT) >= x->seq + st->ring) {
			st->unchecked++;
		} else {
			/* Flow control: a whole block of another s is a drop the
			 * records charge to the wrong record; say so (once), count
			 * them, go on.  Anything else is broken data. */
			if (bad != -1 && st->v->flow && wd[0] >= x->seq &&
			    pattern_bad_word(wd, wd[0], st->e->d.seed, st->v->sparse) == -1) {
				data_s = wd[0];
				{
					uint64_t lo, hi;

					/*
					 * A drop charged to a later record: what the
					 * driver can see of a stall that ends and starts
					 * again within a block (kmod/README.md). Within
					 * what DROP_COUNT showed around the block, it
					 * is counted and shown, not failed.
					 */
					drops_around(st->smp, x->seq, &lo, &hi);
					if (!st->misplaced++)
						ksft_print_msg("seq %ju: the block holds s %ju, i.e. %jd source drops "
							       "before it; the records' lost add up to %ju (%ju in "
							       "this one). DROP_COUNT was %jd while this block was "
							       "not yet written, %jd after\n",
							       (uintmax_t)x->seq, (uintmax_t)wd[0],
							       (intmax_t)(wd[0] - x->seq), (uintmax_t)st->lost,
							       (uintmax_t)x->lost, (intmax_t)lo, (intmax_t)hi);
					if (lo != ~0ULL)
						EXPECT_LE(lo, st->lost) TH_LOG("seq %ju: fewer drops charged than DROP_COUNT showed before it",
									       (uintmax_t)x->seq);
					if (hi != ~0ULL)
						EXPECT_GE(hi, wd[0] - x->seq) TH_LOG("seq %ju: more drops in the block than DROP_COUNT after it",
										     (uintmax_t)x->seq);
				}
			} else {
				ASSERT_EQ(-1, bad) {
					TH_LOG("seq %ju (s %ju) at %#jx: word %ld is %#jx (word 0 %#jx)",
					       (uintmax_t)x->seq, (uintmax_t)s, (uintmax_t)x->offset,
					       bad, (uintmax_t)wd[bad], (uintmax_t)wd[0]);
				}
			}
			st->checked++;
		}
		st->last_s = data_s;
		if (st->nlog < st->logcap) {
			st->log[st->nlog].cum_lost = st->lost;
			st->log[st->nlog].lost = x->lost;
			st->log[st->nlog].seq = x->seq;
			st->log[st->nlog].ts = x->timestamp_ns;
			st->log[st->nlog++].t_read = t_read;
		}
		st->next_seq = x->seq + 1;
		st->records++;
	}
}

/* Give back @n records, noting when. */
static void give_back(struct __test_metadata *_metadata, struct stream *st, int fd, long n)
{
	if (n <= 0)
		return;
	ASSERT_GT(st->logcap, st->nrel);
	st->rel[st->nrel].t = fv_now_ns();
	ASSERT_EQ(0, fv_release(fd, n));
	st->released += n;
	st->rel[st->nrel++].upto = st->next_seq;
}

/* munmap the buffer env_keep() took last. */
static void env_drop_last(struct env *e)
{
	if (e->nbuf) {
		e->nbuf--;
		munmap(e->buf[e->nbuf].p, e->buf[e->nbuf].len);
	}
}

TEST_F_TIMEOUT(records, stream, T_STREAM)
{
	static const unsigned int batches[] = { 1, 3, 16, 64, 256, 1024, 7, 200 };
	static struct fpgastream_block r[1024];
	struct env *e = &self->e;
	struct sampler *smp = &self->smp;
	struct stream st = { .e = e, .v = variant, .smp = smp };
	unsigned int ring = variant->ring, count = variant->count, total, rate;
	unsigned int pauses = 0, bi = 0, max_pauses, bounds_failed = 0;
	uint64_t t_read, deadline, w, drop, late_reads = 0;
	uint64_t v[NR_COUNTERS];
	struct fpgastream_map m;
	long long free_pages;
	uint8_t *b = NULL;
	size_t len = 0, k;
	long n;
	int fd, err = -ENOMEM;

	if (variant->small_pages && !e->d.iommu)
		SKIP(return, "4 KiB pages stream only behind an IOMMU (this guest has none)");
	fd = env_open(e, 0);
	ASSERT_LE(0, fd);

	/* Map: a big ring shrinks to what hugepages and the bounce pool allow. */
	for (; ring >= 64; ring /= 2) {
		len = (size_t)ring * BLOCK;
		b = NULL;
		if (variant->small_pages) {
			b = env_small_pages(e, len);
		} else {
			free_pages = fv_proc_kb("/proc/meminfo", "HugePages_Free");
			if (free_pages >= (long long)(len / HUGE_2M))
				b = env_huge(e, len);
			else
				ksft_print_msg("a %u-block ring needs %zu hugepages, %lld free\n",
					       ring, len / HUGE_2M, free_pages);
		}
		if (b) {
			err = do_map(fd, b, len, 0, &m);
			if (!err)
				break;
			ksft_print_msg("MAP of a %u-block ring: %s\n", ring, strerror(-err));
			ASSERT_EQ(-ENOMEM, err) TH_LOG("only a full bounce pool may refuse this MAP");
			env_drop_last(e);
		}
		if (variant->ring <= 64 || ring <= 128)
			break;
	}
	if (err)
		SKIP(return, "no ring of %u blocks or at least 128 to stream on (hugepages, bounce pool)",
		     variant->ring);
	ASSERT_EQ(ring, m.nr_blocks);
	if (count == ~0u)
		count = ring / 4 + ring / 8;
	/* A smaller ring, a shorter stream. */
	total = variant->total ? (unsigned int)((uint64_t)variant->total * ring / variant->ring)
			       : 6 * count;
	rate = variant->rate == ~0u ? ring : variant->rate;
	/* A shrunk ring pauses only if it holds what the source makes meanwhile. */
	max_pauses = variant->pauses;
	if (ring < variant->ring && rate && (uint64_t)rate * PAUSE_MS / 1000 > ring) {
		ksft_print_msg("a %u-block ring does not hold %u ms at %u blocks/s: no pauses\n",
			       ring, PAUSE_MS, rate);
		max_pauses = 0;
	}
	ksft_print_msg("%s, ring %u blocks (%u segments, mapped_flags %#x), %u blocks at rate %u, "
		       "coalesce %u/%u us\n", variant->flow ? "flow control" : "overwrite", ring,
		       m.nr_segments, m.mapped_flags, total, rate, count,
		       variant->usec);

	st.buf = b;
	st.ring = ring;
	st.logcap = total + 64;
	st.rel = calloc(st.logcap, sizeof(*st.rel));
	st.log = calloc(st.logcap, sizeof(*st.log));
	ASSERT_NE(NULL, st.rel);
	ASSERT_NE(NULL, st.log);

	fv_wr(&e->d, R_EMU_RATE, rate);
	fv_wr(&e->d, R_EMU_BURST, total);
	fv_wr(&e->d, R_EMU_FIFO, 16);
	st.t_start = fv_now_ns();
	ASSERT_EQ(0, do_start(fd, variant->flow ? FPGASTREAM_START_FLOW_CONTROL : 0,
			      count, variant->usec));
	ASSERT_EQ(0, sampler_start(e, smp, total));
	deadline = fv_now_ns() + 400ULL * 1000 * NSEC_PER_MS;

	for (;;) {
		w = fv_rd(&e->d, R_WR_COUNT);
		drop = fv_rd(&e->d, R_DROP_COUNT);
		/* Done: the source made its blocks and we have every one written. */
		if (variant->flow && w + drop >= total && st.next_seq == w)
			break;
		if (!variant->flow && w >= total && st.next_seq == total)
			break;
		ASSERT_GT(deadline, fv_now_ns()) {
			TH_LOG("stream not done: %ju records, WR_COUNT %ju, DROP_COUNT %ju",
			       (uintmax_t)st.records, (uintmax_t)w, (uintmax_t)drop);
		}
		/* The reader holds off on purpose: the driver sees blocks long
		 * before read() returns them. */
		if (pauses < max_pauses &&
		    st.next_seq >= (pauses + 1) * (uint64_t)total / (2 * max_pauses + 1)) {
			fv_sleep_ms(PAUSE_MS);
			pauses++;
		}
		if (variant->lag) {
			while (fv_rd(&e->d, R_WR_COUNT) < st.next_seq + (uint64_t)variant->lag * ring &&
			       fv_rd(&e->d, R_WR_COUNT) < total && fv_now_ns() < deadline)
				fv_sleep_ms(1);
		}
		/* Every other wait in read() itself, the others in poll(). */
		n = counted_read(fd, r, batches[bi % 8], bi % 2 ? RD_BLOCK : WAIT_MS, &st.calls);
		t_read = fv_now_ns();
		if (n == -ETIME) {
			/* The contract's wake-up rule; the rest is still checked
			 * below, with what STOP makes the driver find. */
			EXPECT_LT(0, n) {
				TH_LOG("%s slept %d s after %ju records: WR_COUNT %u, DROP_COUNT %u, "
				       "irq_coalesce_count %u, usec %u", bi % 2 ? "read()" : "poll()",
				       WAIT_MS / 1000, (uintmax_t)st.records, fv_rd(&e->d, R_WR_COUNT),
				       fv_rd(&e->d, R_DROP_COUNT), count, variant->usec);
			}
			break;
		}
		bi++;
		ASSERT_LT(0, n) {
			TH_LOG("after %ju records: %s", (uintmax_t)st.records,
			       n == 0 ? "end of stream" : strerror(-n));
		}
		check_records(_metadata, &st, r, n, t_read);
		give_back(_metadata, &st, fd, n);
	}
	ASSERT_EQ(0, do_stop(fd));
	/* Stopped: the records still pending (none expected), then 0. */
	for (;;) {
		n = counted_read(fd, r, 64, WAIT_MS, &st.calls);
		t_read = fv_now_ns();
		ASSERT_LE(0, n) TH_LOG("read after STOP: %s", strerror(-n));
		if (!n)
			break;
		ksft_print_msg("%ld records after STOP from seq %ju\n", n, (uintmax_t)r[0].seq);
		check_records(_metadata, &st, r, n, t_read);
		give_back(_metadata, &st, fd, n);
	}
	sampler_stop(smp);

	/* The sampler's bounds, record by record. */
	EXPECT_FALSE(smp->went_back) TH_LOG("WR_COUNT or blocks_completed went back mid-stream");
	EXPECT_FALSE(smp->bad_text) TH_LOG("blocks_completed was not one decimal line");
	EXPECT_FALSE(smp->overflow);
	for (k = 0; k < st.nlog && bounds_failed < 5; k++) {
		const struct reclog *l = &st.log[k];
		uint64_t lb = not_done_at(smp, l->seq), ub = seen_by(smp, l->seq);

		bounds_failed += lb > l->ts;
		EXPECT_LE(lb, l->ts) {
			TH_LOG("seq %ju: timestamp %ju, yet WR_COUNT showed it incomplete at %ju",
			       (uintmax_t)l->seq, (uintmax_t)l->ts, (uintmax_t)lb);
		}
		/* Flow control: the records' lost up to block k are the drops
		 * before its write: DROP_COUNT read before it was written is a
		 * lower bound, DROP_COUNT read after it an upper one. */
		if (variant->flow) {
			uint64_t dlo, dhi;

			drops_around(smp, l->seq, &dlo, &dhi);
			bounds_failed += (dlo != ~0ULL && dlo > l->cum_lost) ||
					 (dhi != ~0ULL && dhi < l->cum_lost);
			if (dlo != ~0ULL) {
				EXPECT_LE(dlo, l->cum_lost) {
					TH_LOG("seq %ju: the records report %ju lost up to it (%ju in "
					       "it), but DROP_COUNT was %ju before it was written",
					       (uintmax_t)l->seq, (uintmax_t)l->cum_lost,
					       (uintmax_t)l->lost, (uintmax_t)dlo);
				}
			}
			if (dhi != ~0ULL) {
				EXPECT_GE(dhi, l->cum_lost) {
					TH_LOG("seq %ju: the records report %ju lost up to it (%ju in "
					       "it), but DROP_COUNT was only %ju after it was written",
					       (uintmax_t)l->seq, (uintmax_t)l->cum_lost,
					       (uintmax_t)l->lost, (uintmax_t)dhi);
				}
			}
		}
		if (ub == ~0ULL)
			continue;
		bounds_failed += ub + SEEN_SLACK_NS < l->ts;
		EXPECT_GE(ub + SEEN_SLACK_NS, l->ts) {
			TH_LOG("seq %ju: timestamp %ju is %ju ms after blocks_completed counted it "
			       "(at %ju); its read() returned at %ju",
			       (uintmax_t)l->seq, (uintmax_t)l->ts,
			       (uintmax_t)((l->ts - ub) / NSEC_PER_MS), (uintmax_t)ub,
			       (uintmax_t)l->t_read);
		}
		if (l->t_read > ub + 2 * SEEN_SLACK_NS)
			late_reads++;
	}
	ksft_print_msg("%ju records in %ju reads, %ju gaps, %ju lost; data checked %ju, "
		       "overwritten before the check %ju; %ju read > %ju ms after blocks_completed "
		       "counted them; %zu WR_COUNT and %zu blocks_completed samples\n",
		       (uintmax_t)st.records, (uintmax_t)st.calls, (uintmax_t)st.gaps,
		       (uintmax_t)st.lost, (uintmax_t)st.checked, (uintmax_t)st.unchecked,
		       (uintmax_t)late_reads, (uintmax_t)(2 * SEEN_SLACK_NS / NSEC_PER_MS),
		       smp->nws, smp->ncs);
	EXPECT_LT(0, st.checked) TH_LOG("no block's data could be checked");
	if (st.misplaced)
		ksft_print_msg("%ju records whose block shows more source drops before it than the "
			       "records' lost so far (charged to a later record)\n",
			       (uintmax_t)st.misplaced);

	/* At rest: the counters are STATS, and add up to what we saw. */
	assert_counters_are_stats(_metadata, e, fd, v, "after STOP");
	EXPECT_EQ(fv_rd(&e->d, R_WR_COUNT), v[0]) TH_LOG("blocks_completed vs WR_COUNT");
	EXPECT_EQ(fv_rd(&e->d, R_DROP_COUNT), v[4]) TH_LOG("blocks_dropped vs DROP_COUNT");
	EXPECT_EQ(st.records, v[1]) TH_LOG("blocks_announced");
	EXPECT_EQ(st.released, v[2]) TH_LOG("blocks_released");
	EXPECT_EQ(st.calls, v[6]) TH_LOG("read_calls");
	EXPECT_LE(1, v[5]) TH_LOG("no interrupt at all");
	if (variant->flow) {
		EXPECT_EQ(0, v[3]) TH_LOG("blocks_overwritten with flow control");
		EXPECT_EQ(st.records, v[0]) TH_LOG("completed blocks never announced");
		EXPECT_GE(v[4], st.lost) TH_LOG("records report more lost than were dropped");
		if (st.last_s + 1 == total) {
			EXPECT_EQ(v[4], st.lost) {
				TH_LOG("the last block (s %ju) arrived, so every one of the %ju drops "
				       "should have been reported; the records' lost add up to %ju",
				       (uintmax_t)st.last_s, (uintmax_t)v[4], (uintmax_t)st.lost);
			}
		}
		if (!rate) {
			EXPECT_EQ(0, v[4]) TH_LOG("drops at the source at rate 0");
		}
		ksft_print_msg("dropped at the source: %ju\n", (uintmax_t)v[4]);
	} else {
		EXPECT_EQ(0, v[4]) TH_LOG("drops at the source in overwrite mode");
		EXPECT_EQ(total, v[0]);
		EXPECT_EQ(st.lost, v[3]) TH_LOG("blocks_overwritten vs the records' lost");
		EXPECT_EQ(v[0], v[1] + v[3]);
		EXPECT_LT(0, st.gaps) TH_LOG("the reader never fell a ring behind");
	}
	ksft_print_msg("%ju interrupts for %ju blocks\n", (uintmax_t)v[5], (uintmax_t)v[0]);
	if (count > 1 && !variant->usec && (!rate || rate >= 800)) {
		/* What the variant is for: one interrupt covers many blocks.  Not
		 * one per count exactly: the driver may take more interrupts to
		 * keep the contract's 10 ms wake-up promise (hence a source of at
		 * least 8 blocks per 10 ms). */
		EXPECT_GE(v[0], 8 * v[5]) {
			TH_LOG("%ju interrupts for %ju blocks at irq_coalesce_count %u: fewer than "
			       "8 blocks per interrupt", (uintmax_t)v[5], (uintmax_t)v[0], count);
		}
	} else {
		EXPECT_GE(v[0], v[5]) TH_LOG("more interrupts than blocks");
	}

	sampler_free(e, smp);
	free(st.rel);
	free(st.log);
	ASSERT_EQ(0, do_unmap(fd));
	assert_no_mapping(_metadata, e, "after UNMAP");
}

FSTR_HARNESS_MAIN
