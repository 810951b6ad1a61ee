// SPDX-License-Identifier: GPL-2.0-only
/*
 * The fault suite (VM selftest): what a real board does on its link and
 * what the driver must make of it, written from the documents alone (the
 * contract uapi.md, include/uapi/fpgastream.h, the datasheet revision 1.1,
 * docs/), not from the driver's source.
 *
 *   fault.<variant>.blocked     a reader blocked in read() and a poller in
 *                               poll() while the board idles mid-stream
 *   fault.<variant>.streaming   the same while the board streams at full
 *                               speed, records pending
 *   fault.<variant>.mapped      mapped, not running
 *       variants: reset_sysfs, reset_flr, reset_bus (resets through sysfs),
 *       aer_nonfatal, aer_fatal (EMU_INJECT 16, 32)
 *       Each: the pending records then EIO, EPOLLERR, within bounded time;
 *       STATS sane; the board writes nothing afterwards; START on the SAME
 *       mapping streams from seq 0 and every word verifies.
 *   linkdown.streaming, linkdown.mapped
 *                               EMU_INJECT 8: ENODEV within about a second,
 *                               ENODEV on every call but close, remove()
 *                               completes, nothing stays pinned or charged;
 *                               the board comes back by a reset of its port
 *   wedge.*                     the IDLE stall (EMU_INJECT 4) on STOP, UNMAP
 *                               and close: the engine is idle when they
 *                               return, nothing hangs, nothing stays pinned;
 *                               never_idle: an engine that never goes idle
 *   race.*                      a fault meeting something under way: reset
 *                               storm, resets and link loss during STOP,
 *                               close and MAP, held blocks, link loss with
 *                               no file open, remove() under a reader, a
 *                               port reset behind the driver's back
 *   isolation.two_boards        board A reset, AER errors and link loss
 *                               while board B streams: not a word of B lost
 *   suspend.<s3|s2idle>.*       the fault tests for suspend, last (after S3
 *                               QEMU's extended config space reads 0)
 *
 * Every wait has a watchdog aimed at the waiting thread (a timer with
 * SIGEV_THREAD_ID, or pthread_kill), so a driver that leaves a reader
 * asleep fails the test instead of hanging the suite.  See README.md.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>

#include "fstr_vm.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "fstr_harness.h"
#pragma GCC diagnostic ignored "-Wsign-compare"
/* Messages and paths are cut rather than overflow: that is fine here. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define T_TEST		240
#define T_SUSPEND	400
#define RING		(4ULL << 20)
#define RING_BLOCKS	(RING / BLOCK)		/* 64 */
#define NSEC_PER_MS	1000000ULL

/* The datasheet 1.1 test block's new injections (fstr_vm.h has them too
 * since emu-1.1). */
#ifndef INJECT_LINK_DOWN
#define INJECT_LINK_DOWN	8
#define INJECT_AER_NONFATAL	16
#define INJECT_AER_FATAL	32
#endif

/* STATUS bits. */
#define ST_RUNNING	(1u << 0)
#define ST_IDLE		(1u << 1)
#define R_SCRATCH	0x038
#define SCRATCH_MARK	0x5c7a7c4e	/* gone after a power-on reset */

/*
 * How long the contract lets a reader sleep after the event:
 * ENODEV "within a second" for link loss (plus a TCG margin), and the same
 * bound for the end of a stream after a reset or an AER error (the
 * contract gives no number there; a driver that needs longer than this
 * under TCG has a problem anyway).
 */
#define WAKE_LIMIT_MS	3000
/* After which a waiter is declared hung and interrupted. */
#define HANG_MS		15000
/* Blocks of the stream that must verify after a recovery. */
#define FRESH_BLOCKS	96
/* A sysfs write or an ioctl that is still blocked after this has hung. */
#define CALL_MS		30000

#define SETUP_SKIP(fmt, ...) SKIP({ fflush(NULL); _exit(255); }, fmt, ##__VA_ARGS__)

/* ------------------------------------------------------------ watchdogs */

static void on_alarm(int sig)
{
	(void)sig;
}

static __thread sigjmp_buf bar_jmp;
static __thread volatile int in_bar;

/* A BAR mapping that the kernel revoked (the device was removed) raises
 * SIGBUS: the read then gives all ones instead of killing the test. */
static void on_sigbus(int sig)
{
	if (in_bar)
		siglongjmp(bar_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int install_signals(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct sigaction sb = { .sa_handler = on_sigbus };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL))
		return -1;
	return sigaction(SIGBUS, &sb, NULL);
}

/*
 * A per-thread watchdog: a timer whose SIGALRM goes to the thread that
 * armed it (SIGEV_THREAD_ID), never to another thread of the process, so it
 * interrupts exactly the call it guards.  wd_fired() says whether it did.
 */
static __thread timer_t wd_timer;
static __thread bool wd_have;
static __thread uint64_t wd_deadline;

static void wd_arm(unsigned int ms)
{
	struct itimerspec its = { .it_value = { ms / 1000, (ms % 1000) * 1000000L } };

	if (!wd_have) {
		struct sigevent ev = {
			.sigev_notify = SIGEV_THREAD_ID,
			.sigev_signo = SIGALRM,
		};

		ev._sigev_un._tid = gettid();
		if (timer_create(CLOCK_MONOTONIC, &ev, &wd_timer))
			return;
		wd_have = true;
	}
	wd_deadline = fv_now_ns() + ms * NSEC_PER_MS;
	timer_settime(wd_timer, 0, &its, NULL);
}

static bool wd_disarm(void)
{
	struct itimerspec its = { 0 };

	if (wd_have)
		timer_settime(wd_timer, 0, &its, NULL);
	return wd_deadline && fv_now_ns() >= wd_deadline;
}

static void wd_done(void)
{
	if (wd_have)
		timer_delete(wd_timer);
	wd_have = false;
}

#define HUNG	100000		/* -HUNG: the call did not return in time */

static const char *err_name(long r)
{
	static __thread char s[64];

	if (r == -HUNG)
		return "still blocked after its watchdog (a hang)";
	if (r >= 0)
		return "success";
	snprintf(s, sizeof(s), "%s", strerror(-r));
	return s;
}

/*
 * A call that may block in the kernel where a signal cannot reach it (a
 * sysfs write waiting for a driver's lock, say), run in a thread of its
 * own: wait up to @ms, then SIGALRM at it, then give up on it (the thread
 * is left behind; the test fails).  Returns the call's 0 or -errno, or
 * -HUNG; *@ns is how long it took.
 */
enum call_kind { C_WRITE, C_IOCTL, C_CLOSE };

struct call {
	enum call_kind kind;
	char path[PATH_MAX];
	char text[64];
	int fd;
	unsigned long req;
	void *arg;
	long ret;
	uint64_t t0, t1;
	_Atomic int done;
};

static void *call_main(void *arg)
{
	struct call *c = arg;
	long r = 0;

	c->t0 = fv_now_ns();
	switch (c->kind) {
	case C_WRITE:
		r = fv_write_text(c->path, c->text);
		break;
	case C_IOCTL:
		r = ioctl(c->fd, c->req, c->arg) ? -errno : 0;
		break;
	case C_CLOSE:
		r = close(c->fd) ? -errno : 0;
		break;
	}
	c->ret = r;
	c->t1 = fv_now_ns();
	atomic_store(&c->done, 1);
	return NULL;
}

static long run_bounded(struct call *tmpl, unsigned int ms, uint64_t *ns)
{
	struct call *c = malloc(sizeof(*c));
	uint64_t end;
	pthread_t t;
	long r;

	if (!c)
		return -ENOMEM;
	*c = *tmpl;
	atomic_store(&c->done, 0);
	if (pthread_create(&t, NULL, call_main, c)) {
		free(c);
		return -EAGAIN;
	}
	end = fv_now_ns() + ms * NSEC_PER_MS;
	while (!atomic_load(&c->done) && fv_now_ns() < end)
		fv_sleep_ms(2);
	if (!atomic_load(&c->done)) {
		pthread_kill(t, SIGALRM);
		end = fv_now_ns() + 2000 * NSEC_PER_MS;
		while (!atomic_load(&c->done) && fv_now_ns() < end)
			fv_sleep_ms(5);
		if (!atomic_load(&c->done)) {
			pthread_detach(t);	/* c stays with it */
			if (ns)
				*ns = ms * NSEC_PER_MS;
			return -HUNG;
		}
		pthread_join(t, NULL);
		if (ns)
			*ns = c->t1 - c->t0;
		free(c);
		return -HUNG;
	}
	pthread_join(t, NULL);
	r = c->ret;
	if (ns)
		*ns = c->t1 - c->t0;
	free(c);
	return r;
}

static long b_write(const char *path, const char *text, unsigned int ms, uint64_t *ns)
{
	struct call c = { .kind = C_WRITE };

	snprintf(c.path, sizeof(c.path), "%s", path);
	snprintf(c.text, sizeof(c.text), "%s", text);
	return run_bounded(&c, ms, ns);
}

static long b_ioctl(int fd, unsigned long req, void *arg, uint64_t *ns)
{
	struct call c = { .kind = C_IOCTL, .fd = fd, .req = req, .arg = arg };

	return run_bounded(&c, CALL_MS, ns);
}

static long b_close(int fd, uint64_t *ns)
{
	struct call c = { .kind = C_CLOSE, .fd = fd };

	return run_bounded(&c, CALL_MS, ns);
}

/* The same, started now and waited for later (async_wait). */
static struct call *async_ioctl(int fd, unsigned long req, void *arg, pthread_t *t)
{
	struct call *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = C_IOCTL;
	c->fd = fd;
	c->req = req;
	c->arg = arg;
	if (pthread_create(t, NULL, call_main, c)) {
		free(c);
		return NULL;
	}
	return c;
}

static bool wait_done(_Atomic int *flag, pthread_t t, unsigned int ms);

static long async_wait(struct call *c, pthread_t t, unsigned int ms, uint64_t *ns)
{
	bool ok = wait_done(&c->done, t, ms);
	long r;

	if (!atomic_load(&c->done)) {
		pthread_detach(t);	/* c stays with it */
		return -HUNG;
	}
	pthread_join(t, NULL);
	r = ok ? c->ret : -HUNG;
	if (ns)
		*ns = c->t1 - c->t0;
	free(c);
	return r;
}

static void kmsg(const char *s)
{
	fv_write_text("/dev/kmsg", s);
}

/* ---------------------------------------------------------------- boards */

struct board {
	struct fv_dev d;
	char port[32];		/* the PCI bridge above the board, or "" */
	char cls[PATH_MAX];	/* /sys/class/fpgastream/fpgastream<N> */
	char sys[PATH_MAX];	/* /sys/bus/pci/devices/<bdf> */
	int fd;
	uint8_t *buf;
	size_t len;
	bool removed;		/* we removed it from PCI: d.bar0 was revoked */
	bool mapped;		/* fd holds a mapping (so far as we know) */
};

/* A BAR0 read that survives a revoked mapping (all ones then). */
static uint32_t brd(struct board *b, unsigned int off)
{
	uint32_t v = ~0u;

	if (!b->d.bar0 || b->removed)
		return v;
	if (sigsetjmp(bar_jmp, 1) == 0) {
		in_bar = 1;
		v = fv_rd(&b->d, off);
	}
	in_bar = 0;
	return v;
}

static void bwr(struct board *b, unsigned int off, uint32_t v)
{
	if (!b->d.bar0 || b->removed)
		return;
	if (sigsetjmp(bar_jmp, 1) == 0) {
		in_bar = 1;
		fv_wr(&b->d, off, v);
	}
	in_bar = 0;
}

/* Every FSTR board (1234:f5a0) in the machine, sorted by address. */
static int list_boards(char bdf[][32], int max)
{
	char path[PATH_MAX];
	struct dirent *e;
	int n = 0, i, j;
	DIR *dir = opendir("/sys/bus/pci/devices");

	if (!dir)
		return 0;
	while ((e = readdir(dir)) && n < max) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", e->d_name);
		if (fv_read_hex(path) != 0x1234)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", e->d_name);
		if (fv_read_hex(path) != 0xf5a0)
			continue;
		snprintf(bdf[n++], 32, "%.31s", e->d_name);
	}
	closedir(dir);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (strcmp(bdf[i], bdf[j]) > 0) {
				char t[32];

				memcpy(t, bdf[i], 32);
				memcpy(bdf[i], bdf[j], 32);
				memcpy(bdf[j], t, 32);
			}
	return n;
}

/* The PCI bridge the device sits behind (its parent in sysfs), or "". */
static void parent_port(const char *bdf, char *port, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX], *slash, *prev;
	unsigned int a, b, c, f;

	port[0] = 0;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	if (!realpath(path, real))
		return;
	slash = strrchr(real, '/');
	if (!slash)
		return;
	*slash = 0;
	prev = strrchr(real, '/');
	if (!prev)
		return;
	prev++;
	if (sscanf(prev, "%x:%x:%x.%x", &a, &b, &c, &f) == 4)
		snprintf(port, len, "%s", prev);
}

/* Set up @b for the board at @bdf; NULL or why not. */
static const char *board_setup(struct board *b, const char *bdf)
{
	const char *why, *base;

	memset(b, 0, sizeof(*b));
	b->fd = -1;
	if (bdf)
		setenv("FPGASTREAM_BDF", bdf, 1);
	why = fv_setup(&b->d);
	unsetenv("FPGASTREAM_BDF");
	if (why)
		return why;
	parent_port(b->d.bdf, b->port, sizeof(b->port));
	base = strrchr(b->d.node, '/');
	snprintf(b->cls, sizeof(b->cls), "/sys/class/fpgastream/%s", base ? base + 1 : b->d.node);
	snprintf(b->sys, sizeof(b->sys), "/sys/bus/pci/devices/%s", b->d.bdf);
	return NULL;
}

static uint64_t attr_u64(struct board *b, const char *name)
{
	char path[PATH_MAX + 64], buf[64];

	snprintf(path, sizeof(path), "%s/%s", b->cls, name);
	if (fv_read_text(path, buf, sizeof(buf)))
		return ~0ULL;
	return strtoull(buf, NULL, 0);
}

static const char *attr_word(struct board *b, const char *name)
{
	static char buf[64];
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", b->cls, name);
	if (fv_read_text(path, buf, sizeof(buf)))
		return "(unreadable)";
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

static char cap_diag[128];

/* Offset of PCI capability @id (@ext: extended) in @bdf's config, or 0. */
static unsigned int find_cap(const char *bdf, unsigned int id, bool ext)
{
	char path[PATH_MAX];
	uint8_t cfg[4096];
	unsigned int pos, n = 0;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = pread(fd, cfg, sizeof(cfg), 0);
	close(fd);
	snprintf(cap_diag, sizeof(cap_diag), "config: %zd bytes read, %02x%02x%02x%02x at 0x100",
		 len, len > 0x103 ? cfg[0x103] : 0, len > 0x103 ? cfg[0x102] : 0,
		 len > 0x103 ? cfg[0x101] : 0, len > 0x103 ? cfg[0x100] : 0);
	if (len < 64)
		return 0;
	if (!ext) {
		if (!(cfg[6] & 0x10))
			return 0;
		for (pos = cfg[0x34] & ~3u; pos && pos + 2 <= (unsigned int)len && n++ < 48;
		     pos = cfg[pos + 1] & ~3u)
			if (cfg[pos] == id)
				return pos;
		return 0;
	}
	if (len < 0x104)
		return 0;
	for (pos = 0x100; pos && pos + 4 <= (unsigned int)len && n++ < 64; ) {
		uint32_t h = cfg[pos] | cfg[pos + 1] << 8 | cfg[pos + 2] << 16 |
			     (uint32_t)cfg[pos + 3] << 24;

		if (h == 0 || h == ~0u)
			return 0;
		if ((h & 0xffff) == id)
			return pos;
		pos = (h >> 20) & ~3u;
		if (pos < 0x100)
			return 0;
	}
	return 0;
}

static bool reset_methods(struct board *b, char *out, size_t len)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/reset_method", b->sys);
	if (fv_read_text(path, out, len))
		return false;
	out[strcspn(out, "\n")] = 0;
	return true;
}

static bool has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	const char *p = list;

	while ((p = strstr(p, w))) {
		if ((p == list || p[-1] == ' ' || p[-1] == '[') &&
		    (p[n] == 0 || p[n] == ' ' || p[n] == ']' || p[n] == '\n'))
			return true;
		p += n;
	}
	return false;
}

/* Secondary bus reset of @port through its Bridge Control register;
 * then wait @settle_ms. */
static int port_sbr_wait(const char *port, unsigned int settle_ms)
{
	char path[PATH_MAX];
	uint16_t ctl, set;
	int fd, err = 0;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", port);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (pread(fd, &ctl, 2, 0x3e) != 2) {
		err = -EIO;
		goto out;
	}
	set = ctl | 0x40;
	if (pwrite(fd, &set, 2, 0x3e) != 2) {
		err = -errno;
		goto out;
	}
	fv_sleep_ms(10);
	set = ctl & ~0x40;
	if (pwrite(fd, &set, 2, 0x3e) != 2)
		err = -errno;
	fv_sleep_ms(settle_ms);
out:
	close(fd);
	return err;
}

static int port_sbr(const char *port)
{
	return port_sbr_wait(port, 500);
}

static void board_release_bar(struct board *b)
{
	if (b->d.bar0)
		munmap((void *)b->d.bar0, 0x2000);
	b->d.bar0 = NULL;
}

/*
 * Bring a board back whose link went down (or that is gone otherwise):
 * remove it from PCI if it is still there, reset its port (the datasheet:
 * a board whose link went down comes back only after a reset of its port
 * or function), rescan, and wait for the driver to bind it again.
 * 0, or why not in @why.
 */
static int board_revive(struct board *b, char *why, size_t wl)
{
	char bdf[32], path[PATH_MAX + 32];
	const char *w = "?";
	uint64_t end, ns;
	long r;

	snprintf(bdf, sizeof(bdf), "%s", b->d.bdf);
	board_release_bar(b);
	b->removed = true;
	if (fv_exists(b->sys)) {
		snprintf(path, sizeof(path), "%s/remove", b->sys);
		r = b_write(path, "1", CALL_MS, &ns);
		if (r) {
			snprintf(why, wl, "remove of %s: %s", bdf, err_name(r));
			return -1;
		}
	}
	if (!b->port[0]) {
		snprintf(why, wl, "%s sits behind no port that could reset it", bdf);
		return -1;
	}
	r = port_sbr(b->port);
	if (r) {
		snprintf(why, wl, "secondary bus reset of port %s: %s", b->port, err_name(r));
		return -1;
	}
	r = b_write("/sys/bus/pci/rescan", "1", CALL_MS, &ns);
	if (r) {
		snprintf(why, wl, "rescan: %s", err_name(r));
		return -1;
	}
	end = fv_now_ns() + 20000 * NSEC_PER_MS;
	do {
		struct board nb;

		w = board_setup(&nb, bdf);
		if (!w) {
			snprintf(nb.port, sizeof(nb.port), "%s", b->port[0] ? b->port : nb.port);
			*b = nb;
			return 0;
		}
		board_release_bar(&nb);
		fv_sleep_ms(200);
	} while (fv_now_ns() < end);
	snprintf(why, wl, "%s did not come back after the port's reset and a rescan: %s", bdf, w);
	return -1;
}

/* Is the board there and answering? */
static bool board_alive(struct board *b)
{
	if (b->removed || !b->d.bar0 || !fv_exists(b->sys))
		return false;
	return brd(b, 0) == ID_FSTR;
}

static bool wait_alive(struct board *b, unsigned int ms)
{
	uint64_t end = fv_now_ns() + ms * NSEC_PER_MS;

	while (!board_alive(b)) {
		if (fv_now_ns() > end)
			return false;
		fv_sleep_ms(50);
	}
	return true;
}

/* ------------------------------------------------------------- patterns */

/* Index of the first word of the block at @w that is not the pattern of
 * source sequence @s (every word when @full, else 0, 1, 2 and the last),
 * or WORDS when it is intact. */
static size_t bad_word(const void *w_, uint64_t s, uint64_t seed, bool full)
{
	const uint64_t *w = w_;
	size_t i;

	if (w[0] != s)
		return 0;
	if (w[1] != ~s)
		return 1;
	if (!full)
		return fv_block_ok(w, s, seed) ? WORDS : 2;
	for (i = 2; i < WORDS; i++)
		if (w[i] != fv_splitmix64(seed ^ (s << 13) ^ i))
			return i;
	return WORDS;
}

/* ------------------------------------------------------ reader and poller */

/*
 * The reader: a blocking read() at a time, every record checked (seq
 * consecutive from 0, offset, length, no loss, the data), then released.
 * It ends at the stream's end (0) or the first error; a SIGALRM (its own
 * watchdog or the main thread's pthread_kill) gives EINTR.
 */
struct reader {
	struct board *b;
	int fd;
	bool full;			/* every word, not four */
	uint64_t seed;
	_Atomic int hold;		/* don't read for now */
	_Atomic int in_read;
	_Atomic uint64_t records;
	_Atomic uint64_t call_t0;	/* when the read() in progress began */
	uint64_t t_end;
	uint64_t max_gap_ns, t_last;	/* longest time between two records */
	int end;			/* 0: end of stream, else errno */
	int release_err;		/* first RELEASE failure, 0 if none */
	bool watchdog;			/* its own watchdog fired */
	char problem[256];		/* the first wrong record */
	_Atomic int done;
	pthread_t t;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct fpgastream_block r[16];
	uint64_t next = 0;
	ssize_t n;
	long i;

	rd->t_last = fv_now_ns();
	for (;;) {
		if (atomic_load(&rd->hold)) {
			fv_sleep_ms(1);
			continue;
		}
		atomic_store(&rd->call_t0, fv_now_ns());
		atomic_store(&rd->in_read, 1);
		wd_arm(60000);
		n = read(rd->fd, r, sizeof(r));
		rd->end = n < 0 ? errno : 0;
		rd->watchdog = wd_disarm();
		atomic_store(&rd->in_read, 0);
		if (n <= 0)
			break;
		if (n % REC) {
			snprintf(rd->problem, sizeof(rd->problem), "read returned %zd bytes", n);
			rd->end = EPROTO;
			break;
		}
		for (i = 0; i < n / (long)REC; i++, next++) {
			struct fpgastream_block *x = &r[i];
			uint64_t off = (next % (rd->b->len / BLOCK)) * BLOCK;
			size_t w;

			if (rd->problem[0])
				continue;
			if (x->seq != next || x->offset != off || x->length != BLOCK ||
			    x->lost || x->flags) {
				snprintf(rd->problem, sizeof(rd->problem),
					 "record %ju: seq %ju offset %#jx length %u lost %ju flags %#x "
					 "(want seq %ju offset %#jx, nothing lost)",
					 (uintmax_t)next, (uintmax_t)x->seq, (uintmax_t)x->offset,
					 x->length, (uintmax_t)x->lost, x->flags, (uintmax_t)next,
					 (uintmax_t)off);
				continue;
			}
			w = bad_word(rd->b->buf + off, next, rd->seed, rd->full);
			if (w != WORDS)
				snprintf(rd->problem, sizeof(rd->problem),
					 "record %ju (offset %#jx): word %zu is %#jx, not the pattern",
					 (uintmax_t)next, (uintmax_t)off, w,
					 (uintmax_t)((uint64_t *)(rd->b->buf + off))[w]);
		}
		{
			uint64_t now = fv_now_ns();

			if (now - rd->t_last > rd->max_gap_ns)
				rd->max_gap_ns = now - rd->t_last;
			rd->t_last = now;
		}
		atomic_fetch_add(&rd->records, n / REC);
		if (fv_release(rd->fd, n / REC) && !rd->release_err)
			rd->release_err = errno;
	}
	rd->t_end = fv_now_ns();
	wd_done();
	atomic_store(&rd->done, 1);
	return NULL;
}

/* The poller: poll() until it reports something but POLLIN. */
struct poller {
	int fd;
	_Atomic int quit;
	short revents;
	int err;
	uint64_t t_end;
	_Atomic int done;
	pthread_t t;
};

static void *poller_main(void *arg)
{
	struct poller *pl = arg;

	for (;;) {
		struct pollfd p = { .fd = pl->fd, .events = POLLIN };
		int k = poll(&p, 1, 200);

		if (k < 0) {
			pl->err = errno;
			if (errno == EINTR && !atomic_load(&pl->quit))
				continue;
			break;
		}
		if (atomic_load(&pl->quit))
			break;
		if (k > 0 && (p.revents & ~(POLLIN | POLLRDNORM))) {
			pl->revents = p.revents;
			break;
		}
		if (k > 0)
			fv_sleep_ms(2);	/* the reader takes the records */
	}
	pl->t_end = fv_now_ns();
	atomic_store(&pl->done, 1);
	return NULL;
}

static int reader_start(struct reader *rd, struct board *b, bool full)
{
	memset(rd, 0, sizeof(*rd));
	rd->b = b;
	rd->fd = b->fd;
	rd->full = full;
	rd->seed = b->d.seed;
	return pthread_create(&rd->t, NULL, reader_main, rd);
}

static int poller_start(struct poller *pl, int fd)
{
	memset(pl, 0, sizeof(*pl));
	pl->fd = fd;
	return pthread_create(&pl->t, NULL, poller_main, pl);
}

/* Wait for @flag up to @ms; then interrupt @t (SIGALRM) and wait 2 s more.
 * True when it was set in time. */
static bool wait_done(_Atomic int *flag, pthread_t t, unsigned int ms)
{
	uint64_t end = fv_now_ns() + ms * NSEC_PER_MS;

	while (!atomic_load(flag) && fv_now_ns() < end)
		fv_sleep_ms(2);
	if (atomic_load(flag))
		return true;
	pthread_kill(t, SIGALRM);
	end = fv_now_ns() + 2000 * NSEC_PER_MS;
	while (!atomic_load(flag) && fv_now_ns() < end)
		fv_sleep_ms(5);
	return false;
}

static bool wait_records(struct reader *rd, uint64_t n, unsigned int ms)
{
	uint64_t end = fv_now_ns() + ms * NSEC_PER_MS;

	while (atomic_load(&rd->records) < n && !atomic_load(&rd->done)) {
		if (fv_now_ns() > end)
			return false;
		fv_sleep_ms(5);
	}
	return atomic_load(&rd->records) >= n;
}

/* Stop the threads however they are (no check). */
static void reader_stop(struct reader *rd)
{
	if (!rd->t)
		return;
	atomic_store(&rd->hold, 0);
	while (!atomic_load(&rd->done)) {
		pthread_kill(rd->t, SIGALRM);
		fv_sleep_ms(20);
	}
	pthread_join(rd->t, NULL);
	rd->t = 0;
}

static void poller_stop(struct poller *pl)
{
	if (!pl->t)
		return;
	atomic_store(&pl->quit, 1);
	while (!atomic_load(&pl->done)) {
		pthread_kill(pl->t, SIGALRM);
		fv_sleep_ms(20);
	}
	pthread_join(pl->t, NULL);
	pl->t = 0;
}

/* ---------------------------------------------------------------- faults */

enum fault {
	F_RESET_SYSFS, F_RESET_FLR, F_RESET_BUS,
	F_AER_NONFATAL, F_AER_FATAL,
	F_S3, F_S2IDLE,
};

static const char *const fault_name[] = {
	"reset (sysfs, default method)", "FLR", "bus reset",
	"AER non-fatal", "AER fatal", "suspend to RAM (S3)", "s2idle",
};

static bool is_aer(enum fault f)
{
	return f == F_AER_NONFATAL || f == F_AER_FATAL;
}

/*
 * How a suspend is done: "real", or "pm_test" (/sys/power/pm_test =
 * platform: the kernel runs every device callback, suspend, suspend_late
 * and suspend_noirq, waits and resumes, without power loss).
 *
 * A real suspend needs a wake-up and a runner that copes with it
 * (tools/vm/README.md, "Suspend"): the RTC alarm wakes QEMU's guest from
 * S3, and the runner's QMP helper (FPGASTREAM_VM_WAKER=1 in the guest's
 * environment) quits QEMU after the run, which the guest's power-off no
 * longer ends once it went through S3; without the helper that only works
 * with one vCPU.  s2idle cannot be woken by the RTC under QEMU 7.2; the
 * helper presses a key when the console says "fpgastream-vm: wake-s2idle"
 * (the keyboard made a wakeup source first).  Without what it needs a
 * suspend runs as pm_test.  FPGASTREAM_FAULTS_SUSPEND=real or =pm_test
 * chooses.
 */
#define SERIO_WAKEUP "/sys/bus/serio/devices/serio0/power/wakeup"

static const char *suspend_mode(enum fault f)
{
	const char *env = getenv("FPGASTREAM_FAULTS_SUSPEND");
	bool waker = getenv("FPGASTREAM_VM_WAKER") != NULL;

	if (env && (!strcmp(env, "real") || !strcmp(env, "pm_test")))
		return env;
	if (f == F_S2IDLE)
		return waker && fv_exists(SERIO_WAKEUP) ? "real" : "pm_test";
	return waker || sysconf(_SC_NPROCESSORS_ONLN) == 1 ? "real" : "pm_test";
}

/*
 * What the machine lacks for fault @f: 1 and why (the test skips: a
 * kernel or firmware without the sleep state), or -1 and why (the board
 * lacks what datasheet 1.1 says it has: the test fails), or 0.
 */
static int fault_prereq(struct board *b, enum fault f, char *why, size_t wl)
{
	char buf[256], path[PATH_MAX + 32];

	switch (f) {
	case F_RESET_SYSFS:
		snprintf(path, sizeof(path), "%s/reset", b->sys);
		if (!fv_exists(path)) {
			snprintf(why, wl, "%s has no sysfs reset file: the kernel knows no way to reset the board", b->d.bdf);
			return -1;
		}
		return 0;
	case F_RESET_FLR:
		if (!reset_methods(b, buf, sizeof(buf))) {
			snprintf(why, wl, "no %s/reset_method", b->sys);
			return -1;
		}
		if (!has_word(buf, "flr")) {
			/* Datasheet 1.1: FLR "only on boards that advertise it". */
			snprintf(why, wl, "the board offers no FLR (reset_method: \"%s\"; the reference device has it unless its property flr is off)", buf);
			return 1;
		}
		return 0;
	case F_RESET_BUS:
		if (!b->port[0]) {
			snprintf(why, wl, "%s sits behind no PCI bridge (datasheet 1.1 and the brief: a root port)", b->d.bdf);
			return -1;
		}
		if (!reset_methods(b, buf, sizeof(buf)) || !has_word(buf, "bus")) {
			snprintf(why, wl, "no bus reset offered for %s (reset_method: \"%s\")", b->d.bdf, buf);
			return -1;
		}
		return 0;
	case F_AER_NONFATAL:
	case F_AER_FATAL:
		if (!find_cap(b->d.bdf, 0x0001, true)) {
			snprintf(why, wl, "%s has no AER capability (datasheet 1.1: a PCI Express endpoint with AER; %s)",
				 b->d.bdf, cap_diag);
			return -1;
		}
		if (!b->port[0]) {
			snprintf(why, wl, "%s sits behind no port to report AER to", b->d.bdf);
			return -1;
		}
		/* A kernel without CONFIG_PCIEAER (the debug lane's) has no
		 * AER service to carry the error or to reset the link. */
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/aer_rootport_total_err_fatal",
			 b->port);
		if (!fv_exists(path)) {
			snprintf(why, wl, "the kernel has no native AER service for port %s (no %s)",
				 b->port, path);
			return 1;
		}
		return 0;
	case F_S3:
	case F_S2IDLE:
		if (fv_read_text("/sys/power/state", buf, sizeof(buf)) ||
		    !has_word(buf, f == F_S3 ? "mem" : "freeze")) {
			snprintf(why, wl, "/sys/power/state offers no \"%s\"", f == F_S3 ? "mem" : "freeze");
			return 1;
		}
		if (f == F_S3 && !fv_read_text("/sys/power/mem_sleep", buf, sizeof(buf)) &&
		    !has_word(buf, "deep")) {
			snprintf(why, wl, "/sys/power/mem_sleep offers no \"deep\" (S3): %s", buf);
			return 1;
		}
		if (!strcmp(suspend_mode(f), "real")) {
			if (f == F_S3 && !fv_exists("/sys/class/rtc/rtc0/wakealarm")) {
				snprintf(why, wl, "no /sys/class/rtc/rtc0/wakealarm to wake the guest");
				return 1;
			}
		} else if (fv_read_text("/sys/power/pm_test", buf, sizeof(buf)) ||
			   !has_word(buf, "platform")) {
			snprintf(why, wl, "no pm_test \"platform\" in /sys/power/pm_test (CONFIG_PM_DEBUG) to run the suspend without a wake-up source");
			return 1;
		}
		return 0;
	}
	return 0;
}

static int sysfs_reset(struct board *b, const char *method, char *why, size_t wl)
{
	char path[PATH_MAX + 32];
	uint64_t ns;
	long r;

	snprintf(path, sizeof(path), "%s/reset_method", b->sys);
	if (fv_exists(path)) {
		r = b_write(path, method ? method : "default", 5000, &ns);
		if (r && method) {
			snprintf(why, wl, "echo %s > reset_method: %s", method, err_name(r));
			return -1;
		}
	}
	snprintf(path, sizeof(path), "%s/reset", b->sys);
	r = b_write(path, "1", CALL_MS, &ns);
	ksft_print_msg("echo 1 > %s (%s) took %ju ms: %s\n", path, method ? method : "default",
		       (uintmax_t)(ns / NSEC_PER_MS), err_name(r));
	if (method) {
		snprintf(path, sizeof(path), "%s/reset_method", b->sys);
		b_write(path, "default", 5000, &ns);
	}
	if (r) {
		snprintf(why, wl, "echo 1 > reset (%s): %s", method ? method : "default", err_name(r));
		return -1;
	}
	return 0;
}

static int do_suspend(enum fault f, char *why, size_t wl)
{
	const char *state = f == F_S3 ? "mem" : "freeze";
	bool real = !strcmp(suspend_mode(f), "real");
	uint64_t ns;
	long r;

	if (f == F_S3)
		fv_write_text("/sys/power/mem_sleep", "deep");
	if (real) {
		fv_write_text("/sys/power/pm_test", "none");
		fv_write_text("/sys/class/rtc/rtc0/wakealarm", "0");
		if (f == F_S3) {
			r = fv_write_text("/sys/class/rtc/rtc0/wakealarm", "+3");
			if (r) {
				snprintf(why, wl, "echo +3 > wakealarm: %s", strerror(-r));
				return -1;
			}
		} else {
			r = fv_write_text(SERIO_WAKEUP, "enabled");
			if (r) {
				snprintf(why, wl, "echo enabled > %s: %s", SERIO_WAKEUP, strerror(-r));
				return -1;
			}
			/* tools/vm/qmp-watch presses a key until "awake". */
			printf("# fpgastream-vm: wake-s2idle\n");
			fflush(stdout);
		}
	} else {
		r = fv_write_text("/sys/power/pm_test", "platform");
		if (r) {
			snprintf(why, wl, "echo platform > /sys/power/pm_test: %s", strerror(-r));
			return -1;
		}
	}
	r = b_write("/sys/power/state", state, 120000, &ns);
	if (real && f == F_S2IDLE) {
		printf("# fpgastream-vm: awake\n");
		fflush(stdout);
	}
	ksft_print_msg("echo %s > /sys/power/state (%s) returned after %ju ms: %s\n", state,
		       !real ? "pm_test=platform: every device callback to noirq, no power loss" :
		       f == F_S3 ? "real, RTC alarm in 3 s" : "real, woken by a key press",
		       (uintmax_t)(ns / NSEC_PER_MS), err_name(r));
	if (real)
		fv_write_text("/sys/class/rtc/rtc0/wakealarm", "0");
	else
		fv_write_text("/sys/power/pm_test", "none");
	if (r) {
		snprintf(why, wl, "echo %s > /sys/power/state: %s", state, err_name(r));
		return -1;
	}
	return 0;
}

/*
 * Make fault @f happen to @b.  @running: a stream is running (an AER
 * injection fires on the next block; the source is given 8 more blocks so
 * there is one).  Returns 0 once it has happened (the sysfs write or the
 * injection returned), or -1 and why.
 */
static int inject(struct board *b, enum fault f, bool running, char *why, size_t wl)
{
	uint32_t burst;

	switch (f) {
	case F_RESET_SYSFS:
		return sysfs_reset(b, NULL, why, wl);
	case F_RESET_FLR:
		return sysfs_reset(b, "flr", why, wl);
	case F_RESET_BUS:
		return sysfs_reset(b, "bus", why, wl);
	case F_AER_NONFATAL:
	case F_AER_FATAL:
		kmsg("fpgastream-vm: expect-aer on");
		bwr(b, R_EMU_INJECT, f == F_AER_FATAL ? INJECT_AER_FATAL : INJECT_AER_NONFATAL);
		if (running) {
			burst = brd(b, R_EMU_BURST);
			if (burst && burst != ~0u)
				bwr(b, R_EMU_BURST, burst + 8);
		}
		return 0;
	case F_S3:
	case F_S2IDLE:
		return do_suspend(f, why, wl);
	}
	return -1;
}

/* After the fault: the board is back (AER fatal: the kernel's recovery
 * reset its link) and the AER bracket is closed. */
static int settle(struct board *b, enum fault f, char *why, size_t wl)
{
	int err = 0;

	if (f == F_AER_FATAL && !wait_alive(b, 20000)) {
		snprintf(why, wl, "the board did not come back within 20 s of a fatal AER error "
			 "(ID reads %#x): the kernel's AER recovery should have reset its link",
			 brd(b, 0));
		err = -1;
	}
	if (is_aer(f)) {
		fv_sleep_ms(2000);	/* the AER service's report is logged */
		kmsg("fpgastream-vm: expect-aer off");
	}
	if (!err && !board_alive(b)) {
		snprintf(why, wl, "the board does not answer after the %s (ID %#x)",
			 fault_name[f], brd(b, 0));
		err = -1;
	}
	return err;
}

/* Did the fault reset the board (SCRATCH lost its mark)?  Only said. */
static void report_reset(struct board *b, enum fault f)
{
	uint32_t v = brd(b, R_SCRATCH);

	ksft_print_msg("after the %s SCRATCH reads %#x: the board %s\n", fault_name[f], v,
		       v == SCRATCH_MARK ? "kept its registers" : "was reset");
	if (f == F_S3 && v == SCRATCH_MARK && !strcmp(suspend_mode(f), "real"))
		ksft_print_msg("note: this S3 did not power the board down (QEMU 7.2 really sleeps only the first S3 of a boot): run the test alone for that\n");
}

/* -------------------------------------------------------------- streams */

static int open_map(struct board *b, size_t len, char *why, size_t wl)
{
	int r;

	b->fd = fv_open(&b->d, 0);
	if (b->fd < 0) {
		snprintf(why, wl, "open %s: %s", b->d.node, strerror(errno));
		return -1;
	}
	if (!b->buf) {
		b->buf = fv_huge(len, false);
		if (!b->buf) {
			snprintf(why, wl, "%zu MiB of hugepages: %s", len >> 20, strerror(errno));
			return -1;
		}
		b->len = len;
	}
	r = fv_map(b->fd, b->buf, b->len, 0);
	if (r) {
		snprintf(why, wl, "MAP: %s", strerror(-r));
		return -1;
	}
	b->mapped = true;
	return 0;
}

/* The test block as fv_quiet() leaves it (seed, rate 0, FIFO 16), with a
 * burst; then START under flow control. */
static int start_stream(struct board *b, uint32_t burst)
{
	fv_quiet(&b->d);
	fv_wr(&b->d, R_EMU_BURST, burst);
	return fv_start(b->fd, FPGASTREAM_START_FLOW_CONTROL);
}

/* docs/design.md: START gets EBUSY while a reset, a recovery or a suspend
 * is under way; give it 10 s to end. */
static int start_retry(struct board *b, uint32_t burst)
{
	uint64_t t0 = fv_now_ns();
	int ret;

	while ((ret = start_stream(b, burst)) == -EBUSY &&
	       fv_now_ns() - t0 < 10000 * NSEC_PER_MS)
		fv_sleep_ms(50);
	if (fv_now_ns() - t0 > 100 * NSEC_PER_MS)
		ksft_print_msg("START was refused (EBUSY) for %ju ms after the fault\n",
			       (uintmax_t)((fv_now_ns() - t0) / NSEC_PER_MS));
	return ret;
}

/* The buffer stays untouched for @ms: the board writes nothing. */
static size_t late_dma(struct board *b, unsigned int ms)
{
	memset(b->buf, 0x5a, b->len);
	fv_sleep_ms(ms);
	return fv_first_written(b->buf, b->len);
}

/*
 * START on the mapping that is already there: a new stream of @n blocks
 * from seq 0, every word of every block the pattern (the seed written
 * again: a reset returns it to the property's value), STOP, the pending
 * records then 0, STATS adding up.  0, or what was wrong in @why.
 */
static int fresh_stream(struct board *b, unsigned int n, char *why, size_t wl)
{
	struct fpgastream_block r[16];
	struct fpgastream_stats st;
	uint64_t got = 0, ns;
	long k, i, ret;

	memset(b->buf, 0x5a, b->len);
	ret = start_retry(b, n);
	if (ret) {
		snprintf(why, wl, "START on the same mapping: %s (state %s)", strerror(-ret),
			 attr_word(b, "state"));
		return -1;
	}
	while (got < n) {
		wd_arm(WAIT_MS);
		k = fv_records(b->fd, r, n - got < 16 ? n - got : 16, WAIT_MS);
		if (wd_disarm())
			k = -HUNG;
		if (k <= 0) {
			snprintf(why, wl, "new stream after %ju records: %s", (uintmax_t)got,
				 k == 0 ? "end of stream" : k == -ETIME ? "nothing came in 20 s" : err_name(k));
			return -1;
		}
		for (i = 0; i < k; i++, got++) {
			uint64_t off = (got % (b->len / BLOCK)) * BLOCK;
			size_t w;

			if (r[i].seq != got || r[i].offset != off || r[i].length != BLOCK ||
			    r[i].lost || r[i].flags) {
				snprintf(why, wl, "new stream, record %ju: seq %ju offset %#jx lost %ju flags %#x",
					 (uintmax_t)got, (uintmax_t)r[i].seq, (uintmax_t)r[i].offset,
					 (uintmax_t)r[i].lost, r[i].flags);
				return -1;
			}
			w = bad_word(b->buf + off, got, b->d.seed, true);
			if (w != WORDS) {
				snprintf(why, wl, "new stream, block %ju: word %zu is %#jx, not the pattern",
					 (uintmax_t)got, w, (uintmax_t)((uint64_t *)(b->buf + off))[w]);
				return -1;
			}
		}
		if (fv_release(b->fd, k)) {
			snprintf(why, wl, "new stream: RELEASE: %s", strerror(errno));
			return -1;
		}
	}
	ret = b_ioctl(b->fd, FPGASTREAM_IOC_STOP, NULL, &ns);
	if (ret) {
		snprintf(why, wl, "new stream: STOP: %s", err_name(ret));
		return -1;
	}
	wd_arm(WAIT_MS);
	k = read(b->fd, r, sizeof(r));
	if (wd_disarm())
		k = -2;
	if (k != 0) {
		snprintf(why, wl, "new stream: read after STOP gave %ld (%s), not 0", k,
			 k < 0 ? strerror(errno) : "records beyond the burst");
		return -1;
	}
	if (fv_ioc(b->fd, FPGASTREAM_IOC_STATS, &st)) {
		snprintf(why, wl, "new stream: STATS: %s", strerror(errno));
		return -1;
	}
	if (st.blocks_completed != n || st.blocks_announced != n || st.blocks_released != n ||
	    st.blocks_dropped || st.blocks_overwritten) {
		snprintf(why, wl, "new stream: STATS completed %ju announced %ju released %ju dropped %ju overwritten %ju (want %u, %u, %u, 0, 0)",
			 (uintmax_t)st.blocks_completed, (uintmax_t)st.blocks_announced,
			 (uintmax_t)st.blocks_released, (uintmax_t)st.blocks_dropped,
			 (uintmax_t)st.blocks_overwritten, n, n, n);
		return -1;
	}
	return 0;
}

/*
 * The AER errors the port's AER service counted (aer_rootport_total_err_*
 * of the root port, Linux 5.8+): did the board's report reach the kernel?
 */
struct aer_counts {
	long long nonfatal, fatal;
};

static long long port_count(struct board *b, const char *name)
{
	char path[PATH_MAX], buf[64];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", b->port, name);
	if (!b->port[0] || fv_read_text(path, buf, sizeof(buf)))
		return -1;
	return atoll(buf);
}

static struct aer_counts aer_counts(struct board *b)
{
	struct aer_counts c = {
		port_count(b, "aer_rootport_total_err_nonfatal"),
		port_count(b, "aer_rootport_total_err_fatal"),
	};

	return c;
}

static void check_aer_seen(struct __test_metadata *_metadata, struct board *b, enum fault f,
			   struct aer_counts c0)
{
	struct aer_counts c;
	uint64_t end = fv_now_ns() + 3000 * NSEC_PER_MS;

	if (!is_aer(f))
		return;
	do {
		c = aer_counts(b);
		if ((f == F_AER_FATAL ? c.fatal > c0.fatal : c.nonfatal > c0.nonfatal))
			break;
		fv_sleep_ms(50);
	} while (fv_now_ns() < end);
	ksft_print_msg("port %s counted AER errors: non-fatal %lld -> %lld, fatal %lld -> %lld\n",
		       b->port, c0.nonfatal, c.nonfatal, c0.fatal, c.fatal);
	if (f == F_AER_FATAL) {
		EXPECT_LT(c0.fatal, c.fatal)
			TH_LOG("the kernel never saw the fatal AER error: the board's ERR_FATAL did not reach port %s's AER service, so no recovery can follow", b->port);
	} else {
		EXPECT_LT(c0.nonfatal, c.nonfatal)
			TH_LOG("the kernel never saw the non-fatal AER error: the board's ERR_NONFATAL did not reach port %s's AER service", b->port);
	}
}

/* -------------------------------------------------------- fixture fault */

/* fault and suspend share their data and their tests' bodies. */
#define FAULT_ENV			\
	struct board b;			\
	struct fv_pins p0;		\
	long long lk0;			\
	struct reader rd;		\
	struct poller pl;		\
	char why[512];

FIXTURE(fault) {
	FAULT_ENV
};

FIXTURE_VARIANT(fault) {
	enum fault f;
};

FIXTURE_VARIANT_ADD(fault, reset_sysfs) { .f = F_RESET_SYSFS };
FIXTURE_VARIANT_ADD(fault, reset_flr) { .f = F_RESET_FLR };
FIXTURE_VARIANT_ADD(fault, reset_bus) { .f = F_RESET_BUS };
FIXTURE_VARIANT_ADD(fault, aer_nonfatal) { .f = F_AER_NONFATAL };
FIXTURE_VARIANT_ADD(fault, aer_fatal) { .f = F_AER_FATAL };

static void common_setup(struct __test_metadata *_metadata, struct board *b,
			 struct fv_pins *p0, long long *lk0)
{
	const char *why;

	ASSERT_EQ(0, install_signals());
	why = board_setup(b, NULL);
	if (why)
		SETUP_SKIP("%s", why);
	fv_pins_quiet(60000);
	*p0 = fv_pin_counts();
	ASSERT_LE(0, p0->acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	*lk0 = fv_locked_kb();
}

/* Close what is open; bring the board back if it is gone; the cleanup
 * checks are the tests' own (check_clean). */
static void board_teardown(struct board *b)
{
	char why[256];

	if (b->fd >= 0) {
		b_close(b->fd, NULL);
		b->fd = -1;
	}
	if (b->buf)
		munmap(b->buf, b->len);
	b->buf = NULL;
	if (b->d.bdf[0] && !board_alive(b)) {
		kmsg("fpgastream-vm: expect-aer off");
		if (board_revive(b, why, sizeof(why)))
			ksft_print_msg("teardown: %s\n", why);
	}
	if (board_alive(b))
		fv_teardown(&b->d);
	board_release_bar(b);
}

/* Setup and teardown of every fixture whose data is FAULT_ENV. */
#define FAULT_ENV_HOOKS(name)					\
	FIXTURE_SETUP(name)					\
	{							\
		common_setup(_metadata, &self->b, &self->p0, &self->lk0); \
	}							\
	FIXTURE_TEARDOWN(name)					\
	{							\
		reader_stop(&self->rd);				\
		poller_stop(&self->pl);				\
		board_teardown(&self->b);			\
	}

FAULT_ENV_HOOKS(fault)

/* The end of every test: UNMAP (bounded), no DMA afterwards, close,
 * every pin and the whole charge back, and the board streams again. */
static void check_clean(struct __test_metadata *_metadata, struct board *b,
			struct fv_pins p0, long long lk0)
{
	char why[512];
	uint64_t ns;
	size_t off;
	long r;

	if (b->fd >= 0) {
		if (b->mapped) {
			r = b_ioctl(b->fd, FPGASTREAM_IOC_UNMAP, NULL, &ns);
			EXPECT_EQ(0, r) TH_LOG("UNMAP: %s", err_name(r));
			b->mapped = false;
		}
		if (b->buf) {
			off = late_dma(b, 200);
			EXPECT_EQ(b->len, off) TH_LOG("the board wrote offset %#zx after UNMAP", off);
		}
		r = b_close(b->fd, &ns);
		EXPECT_EQ(0, r) TH_LOG("close: %s", err_name(r));
		b->fd = -1;
	}
	if (b->buf)
		munmap(b->buf, b->len);
	b->buf = NULL;
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(p0)) TH_LOG("pages still pinned after close (FOLL_PIN balance)");
	EXPECT_EQ(lk0, fv_locked_kb()) TH_LOG("locked-memory charge (VmLck + VmPin) not returned");
	if (board_alive(b)) {
		EXPECT_EQ(0, fv_board_works(&b->d, 8, why, sizeof(why)))
			TH_LOG("the board does not stream in a fresh file: %s", why);
		fv_pins_quiet(5000);
		EXPECT_EQ(0, fv_pins_held(p0)) TH_LOG("pages pinned after the check stream");
	}
}

/* STATS after the stream ended: the ioctl works and adds up with what the
 * reader took. */
static void check_stats_after(struct __test_metadata *_metadata, struct board *b,
			      uint64_t records)
{
	struct fpgastream_stats st;
	uint64_t ns;
	long r = b_ioctl(b->fd, FPGASTREAM_IOC_STATS, &st, &ns);

	EXPECT_EQ(0, r) TH_LOG("STATS after the fault: %s", err_name(r));
	if (r)
		return;
	ksft_print_msg("STATS after: completed %ju announced %ju released %ju dropped %ju overwritten %ju irqs %ju reads %ju; state %s\n",
		       (uintmax_t)st.blocks_completed, (uintmax_t)st.blocks_announced,
		       (uintmax_t)st.blocks_released, (uintmax_t)st.blocks_dropped,
		       (uintmax_t)st.blocks_overwritten, (uintmax_t)st.interrupts,
		       (uintmax_t)st.read_calls, attr_word(b, "state"));
	EXPECT_EQ(records, st.blocks_announced) TH_LOG("STATS blocks_announced against the records read");
	EXPECT_LE(st.blocks_announced, st.blocks_completed);
	EXPECT_LE(st.blocks_released, st.blocks_announced);
	EXPECT_EQ(0, st.blocks_overwritten);
	EXPECT_EQ(0, st.blocks_dropped) TH_LOG("rate 0 never drops at the source");
}

/*
 * The stream ends: the reader got its records (checked) then EIO, the
 * poller EPOLLERR, both within WAKE_LIMIT_MS of @t_fault.
 */
static void check_stream_ended(struct __test_metadata *_metadata, struct reader *rd,
			       struct poller *pl, uint64_t t_fault, uint64_t t_done,
			       uint64_t seen_before, enum fault f)
{
	bool rd_ok = wait_done(&rd->done, rd->t, HANG_MS);
	bool pl_ok = wait_done(&pl->done, pl->t, rd_ok ? 5000 : 100);
	double rd_ms = ((double)rd->t_end - (double)t_fault) / 1e6;
	double pl_ms = ((double)pl->t_end - (double)t_fault) / 1e6;

	ksft_print_msg("%s (%.1f ms until it was over): reader ended %.1f ms after it began (%s, %ju records, longest gap %.1f ms), poller %.1f ms after it began (revents %#x)\n",
		       fault_name[f], ((double)t_done - (double)t_fault) / 1e6, rd_ms, rd->end ? strerror(rd->end) : "end of stream",
		       (uintmax_t)atomic_load(&rd->records), rd->max_gap_ns / 1e6, pl_ms,
		       pl->revents);
	EXPECT_TRUE(rd_ok) TH_LOG("the reader was still asleep in read() %d s after the %s",
				  HANG_MS / 1000, fault_name[f]);
	EXPECT_FALSE(rd->watchdog) TH_LOG("the reader's own watchdog interrupted its read()");
	EXPECT_EQ(EIO, rd->end) TH_LOG("read() after the %s: %s, want EIO",
				       fault_name[f], rd->end ? strerror(rd->end) : "0 (end of stream)");
	EXPECT_LE(rd->t_end, t_done + WAKE_LIMIT_MS * NSEC_PER_MS)
		TH_LOG("the reader woke %.1f ms after the %s was over (limit %d ms)",
		       ((double)rd->t_end - (double)t_done) / 1e6, fault_name[f], WAKE_LIMIT_MS);
	EXPECT_GE(rd->t_end, t_fault) TH_LOG("the stream ended before the fault");
	EXPECT_EQ(0, rd->problem[0]) TH_LOG("%s", rd->problem);
	EXPECT_LE(seen_before, atomic_load(&rd->records))
		TH_LOG("the driver had seen %ju blocks complete before the %s but read() returned only %ju records before EIO",
		       (uintmax_t)seen_before, fault_name[f], (uintmax_t)atomic_load(&rd->records));
	EXPECT_TRUE(pl_ok) TH_LOG("the poller was still asleep in poll() after the %s", fault_name[f]);
	EXPECT_TRUE(pl->revents & POLLERR) TH_LOG("poll() after the %s: revents %#x, want EPOLLERR",
						  fault_name[f], pl->revents);
	EXPECT_GE(pl->t_end, t_fault) TH_LOG("poll() reported %#x before the fault", pl->revents);
	EXPECT_LE(pl->t_end, t_done + WAKE_LIMIT_MS * NSEC_PER_MS)
		TH_LOG("the poller woke %.1f ms after the %s was over",
		       ((double)pl->t_end - (double)t_done) / 1e6, fault_name[f]);
	if (rd->release_err)
		ksft_print_msg("note: a RELEASE failed with %s\n", strerror(rd->release_err));
}

/* When the event counts as having happened: the reset or suspend write
 * returned; the injection was written. */
static void run_midstream(struct __test_metadata *_metadata, FIXTURE_DATA(fault) *self,
			  enum fault f, bool blocked)
{
	struct board *b = &self->b;
	uint64_t t_fault, t_done, seen;
	struct aer_counts aer0;
	size_t off;
	int pre;

	pre = fault_prereq(b, f, self->why, sizeof(self->why));
	if (pre > 0)
		SKIP(return, "%s", self->why);
	ASSERT_EQ(0, pre) TH_LOG("%s", self->why);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	/* blocked: 40 blocks, then the source is dry and read() sleeps;
	 * streaming: endless at rate 0, the ring full of pending records. */
	ASSERT_EQ(0, start_stream(b, blocked ? 40 : 0));
	ASSERT_EQ(0, reader_start(&self->rd, b, false));
	ASSERT_EQ(0, poller_start(&self->pl, b->fd));
	if (blocked) {
		ASSERT_TRUE(wait_records(&self->rd, 40, WAIT_MS))
			TH_LOG("40 records before the fault: %ju", (uintmax_t)self->rd.records);
		fv_sleep_ms(300);
		ASSERT_TRUE(atomic_load(&self->rd.in_read)) TH_LOG("the reader is not blocked in read()");
		ASSERT_FALSE(atomic_load(&self->pl.done))
			TH_LOG("poll() returned %#x before the fault", self->pl.revents);
	} else {
		ASSERT_TRUE(wait_records(&self->rd, 300, WAIT_MS))
			TH_LOG("300 records before the fault: %ju (%s)", (uintmax_t)self->rd.records,
			       self->rd.problem);
	}
	ASSERT_FALSE(atomic_load(&self->rd.done))
		TH_LOG("the stream ended before the fault: %s", strerror(self->rd.end));
	seen = attr_u64(b, "blocks_completed");
	ksft_print_msg("%s %s: %ju records read, the driver has seen %ju blocks\n",
		       fault_name[f], blocked ? "with the reader blocked" : "mid-stream",
		       (uintmax_t)self->rd.records, (uintmax_t)seen);
	bwr(b, R_SCRATCH, SCRATCH_MARK);
	aer0 = aer_counts(b);
	t_fault = fv_now_ns();
	ASSERT_EQ(0, inject(b, f, true, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	t_done = fv_now_ns();	/* the reset or suspend write returned */
	check_stream_ended(_metadata, &self->rd, &self->pl, t_fault, t_done, seen, f);
	check_aer_seen(_metadata, b, f, aer0);
	reader_stop(&self->rd);
	poller_stop(&self->pl);
	EXPECT_EQ(0, settle(b, f, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	if (!board_alive(b))
		return;
	report_reset(b, f);
	EXPECT_STREQ("fault", attr_word(b, "state"))
		TH_LOG("sysfs state after the stream ended on the %s", fault_name[f]);
	check_stats_after(_metadata, b, atomic_load(&self->rd.records));
	off = late_dma(b, 200);
	EXPECT_EQ(b->len, off) TH_LOG("the board wrote offset %#zx after the stream ended", off);
	/* The mapping survives: START begins a new stream on it. */
	EXPECT_EQ(0, fresh_stream(b, FRESH_BLOCKS, self->why, sizeof(self->why)))
		TH_LOG("after the %s: %s", fault_name[f], self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

TEST_F_TIMEOUT(fault, blocked, T_TEST)
{
	run_midstream(_metadata, self, variant->f, true);
}

TEST_F_TIMEOUT(fault, streaming, T_TEST)
{
	run_midstream(_metadata, self, variant->f, false);
}

/*
 * One round of the fault mid-stream on a mapping that stays: a stream at
 * full speed, the fault, the reader and the poller woken with the errno
 * of the contract, the board back, and START on the same mapping
 * verifying every word. False when the round failed.
 */
static bool repeat_round(struct __test_metadata *_metadata, FIXTURE_DATA(fault) *self,
			 enum fault f, int round)
{
	struct board *b = &self->b;
	uint64_t t_fault, t_done, seen;

	EXPECT_EQ(0, start_retry(b, 0)) TH_LOG("round %d: START", round);
	EXPECT_EQ(0, reader_start(&self->rd, b, false));
	EXPECT_EQ(0, poller_start(&self->pl, b->fd));
	EXPECT_TRUE(wait_records(&self->rd, 100, WAIT_MS))
		TH_LOG("round %d: 100 records before the fault: %ju (%s)", round,
		       (uintmax_t)self->rd.records, self->rd.problem);
	if (!_metadata->passed)
		return false;
	seen = attr_u64(b, "blocks_completed");
	t_fault = fv_now_ns();
	EXPECT_EQ(0, inject(b, f, true, self->why, sizeof(self->why)))
		TH_LOG("round %d: %s", round, self->why);
	t_done = fv_now_ns();
	check_stream_ended(_metadata, &self->rd, &self->pl, t_fault, t_done, seen, f);
	reader_stop(&self->rd);
	poller_stop(&self->pl);
	EXPECT_EQ(0, settle(b, f, self->why, sizeof(self->why)))
		TH_LOG("round %d: %s", round, self->why);
	EXPECT_EQ(0, fresh_stream(b, 32, self->why, sizeof(self->why)))
		TH_LOG("round %d, after the %s: %s", round, fault_name[f], self->why);
	return _metadata->passed;
}

/*
 * make check-debug: the fault FPGASTREAM_FAULTS_LOOPS times in a row on
 * one mapping (20 there; unset, as in make check, it SKIPs: the other
 * tests of the fixture cover each fault once).
 */
TEST_F_TIMEOUT(fault, repeated, 1800)
{
	const char *env = getenv("FPGASTREAM_FAULTS_LOOPS");
	int rounds = env ? atoi(env) : 0, i, pre;

	if (rounds <= 0)
		SKIP(return, "FPGASTREAM_FAULTS_LOOPS is not set (make check-debug sets 20)");
	pre = fault_prereq(&self->b, variant->f, self->why, sizeof(self->why));
	if (pre > 0)
		SKIP(return, "%s", self->why);
	ASSERT_EQ(0, pre) TH_LOG("%s", self->why);
	ASSERT_EQ(0, open_map(&self->b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	for (i = 1; i <= rounds; i++)
		if (!repeat_round(_metadata, self, variant->f, i))
			break;
	ksft_print_msg("%s: %d of %d rounds passed\n", fault_name[variant->f],
		       i > rounds ? rounds : i - 1, rounds);
	check_clean(_metadata, &self->b, self->p0, self->lk0);
}

/* Mapped, not running: the fault changes nothing a program sees but the
 * board's lost LUT, which the driver programs again: START streams. */
static void run_mapped(struct __test_metadata *_metadata, FIXTURE_DATA(fault) *self,
		       enum fault f)
{
	struct board *b = &self->b;
	struct fpgastream_stats st;
	struct aer_counts aer0;
	int pre;

	if (f == F_AER_NONFATAL)
		SKIP(return, "a non-fatal AER injection fires on the next block: nothing to see while not running");
	pre = fault_prereq(b, f, self->why, sizeof(self->why));
	if (pre > 0)
		SKIP(return, "%s", self->why);
	ASSERT_EQ(0, pre) TH_LOG("%s", self->why);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	bwr(b, R_SCRATCH, SCRATCH_MARK);
	aer0 = aer_counts(b);
	ASSERT_EQ(0, inject(b, f, false, self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	check_aer_seen(_metadata, b, f, aer0);
	EXPECT_EQ(0, settle(b, f, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	if (!board_alive(b))
		return;
	report_reset(b, f);
	EXPECT_EQ(0, fv_ioc(b->fd, FPGASTREAM_IOC_STATS, &st)) TH_LOG("STATS: %s", strerror(errno));
	ksft_print_msg("after the %s while mapped: state %s\n", fault_name[f],
		       attr_word(b, "state"));
	EXPECT_EQ(b->len, late_dma(b, 200)) TH_LOG("the board wrote the buffer before any START");
	EXPECT_EQ(0, fresh_stream(b, FRESH_BLOCKS, self->why, sizeof(self->why)))
		TH_LOG("after the %s while mapped: %s", fault_name[f], self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

TEST_F_TIMEOUT(fault, mapped, T_TEST)
{
	run_mapped(_metadata, self, variant->f);
}

/* ------------------------------------------------------ fixture linkdown */

FIXTURE(linkdown) {
	FAULT_ENV
};

FAULT_ENV_HOOKS(linkdown)

/* Every call but close on a file of a gone board: ENODEV (poll: EPOLLHUP). */
static void check_all_enodev(struct __test_metadata *_metadata, struct board *b, int fd)
{
	struct fpgastream_info info;
	struct fpgastream_stats st;
	struct fpgastream_start s = { .flags = FPGASTREAM_START_FLOW_CONTROL };
	struct fpgastream_map m = { .addr = (uintptr_t)b->buf, .length = b->len };
	struct fpgastream_block r[4];
	uint64_t one = 1, ns;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int k, fl;

	wd_arm(5000);
	n = read(fd, r, sizeof(r));
	EXPECT_FALSE(wd_disarm()) TH_LOG("a blocking read() on the gone board slept");
	EXPECT_EQ(-1, n);
	EXPECT_EQ(ENODEV, errno) TH_LOG("read: %s", n < 0 ? strerror(errno) : "records");
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	n = read(fd, r, sizeof(r));
	EXPECT_EQ(-1, n);
	EXPECT_EQ(ENODEV, errno) TH_LOG("O_NONBLOCK read: %s", n < 0 ? strerror(errno) : "records");
	fcntl(fd, F_SETFL, fl);
	EXPECT_EQ(-ENODEV, b_ioctl(fd, FPGASTREAM_IOC_INFO, &info, &ns)) TH_LOG("INFO");
	EXPECT_EQ(-ENODEV, b_ioctl(fd, FPGASTREAM_IOC_STATS, &st, &ns)) TH_LOG("STATS");
	EXPECT_EQ(-ENODEV, b_ioctl(fd, FPGASTREAM_IOC_RELEASE, &one, &ns)) TH_LOG("RELEASE");
	EXPECT_EQ(-ENODEV, b_ioctl(fd, FPGASTREAM_IOC_START, &s, &ns)) TH_LOG("START");
	EXPECT_EQ(-ENODEV, b_ioctl(fd, FPGASTREAM_IOC_STOP, NULL, &ns)) TH_LOG("STOP");
	EXPECT_EQ(-ENODEV, b_ioctl(fd, FPGASTREAM_IOC_UNMAP, NULL, &ns)) TH_LOG("UNMAP");
	EXPECT_EQ(-ENODEV, b_ioctl(fd, FPGASTREAM_IOC_MAP, &m, &ns)) TH_LOG("MAP");
	wd_arm(5000);
	k = poll(&p, 1, 2000);
	EXPECT_FALSE(wd_disarm());
	EXPECT_EQ(1, k) TH_LOG("poll() on the gone board: %d", k);
	EXPECT_TRUE(p.revents & POLLHUP) TH_LOG("poll() revents %#x, want EPOLLHUP", p.revents);
}

/* remove() of the board with the file still open (and mapped) completes. */
static void remove_board(struct __test_metadata *_metadata, struct board *b)
{
	char path[PATH_MAX + 32];
	uint64_t ns = 0;
	long r;

	board_release_bar(b);
	b->removed = true;
	snprintf(path, sizeof(path), "%s/remove", b->sys);
	r = b_write(path, "1", CALL_MS, &ns);
	ksft_print_msg("remove() of %s with the file open took %.1f ms: %s\n", b->d.bdf,
		       ns / 1e6, err_name(r));
	EXPECT_EQ(0, r) TH_LOG("echo 1 > %s: %s", path, err_name(r));
	EXPECT_FALSE(fv_exists(b->sys)) TH_LOG("%s is still there after remove", b->sys);
}

static void linkdown_run(struct __test_metadata *_metadata, FIXTURE_DATA(linkdown) *self,
			 bool streaming)
{
	struct board *b = &self->b;
	uint64_t t_fault, ns;
	double rd_ms, pl_ms;
	bool rd_ok, pl_ok;
	long r;

	ASSERT_NE(0, b->port[0]) TH_LOG("%s sits behind no port: a board whose link went down could never come back (datasheet 1.1, section 3)", b->d.bdf);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	if (streaming)
		ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ(0, reader_start(&self->rd, b, false));
	ASSERT_EQ(0, poller_start(&self->pl, b->fd));
	if (streaming) {
		ASSERT_TRUE(wait_records(&self->rd, 200, WAIT_MS))
			TH_LOG("200 records before the link went down: %ju", (uintmax_t)self->rd.records);
	} else {
		fv_sleep_ms(300);
	}
	ksft_print_msg("link down %s: reader %s (%ju records), poller %s\n",
		       streaming ? "mid-stream" : "while mapped, not running",
		       atomic_load(&self->rd.done) ? "returned" : atomic_load(&self->rd.in_read) ? "in read()" : "between reads",
		       (uintmax_t)self->rd.records, atomic_load(&self->pl.done) ? "returned" : "in poll()");
	if (atomic_load(&self->rd.done))
		ksft_print_msg("note: read() on a mapped, never started file returned at once: %s\n",
			       self->rd.end ? strerror(self->rd.end) : "0");
	if (atomic_load(&self->pl.done))
		ksft_print_msg("note: poll() on a mapped, never started file reported %#x at once\n",
			       self->pl.revents);
	t_fault = fv_now_ns();
	bwr(b, R_EMU_INJECT, INJECT_LINK_DOWN);
	rd_ok = wait_done(&self->rd.done, self->rd.t, HANG_MS);
	pl_ok = wait_done(&self->pl.done, self->pl.t, 5000);
	rd_ms = ((double)self->rd.t_end - (double)t_fault) / 1e6;
	pl_ms = ((double)self->pl.t_end - (double)t_fault) / 1e6;
	ksft_print_msg("link down: reader ended %.1f ms after it (%s, %ju records), poller %.1f ms after it (revents %#x); BAR0 ID now %#x\n",
		       rd_ms, self->rd.end ? strerror(self->rd.end) : "0",
		       (uintmax_t)self->rd.records, pl_ms, self->pl.revents, brd(b, 0));
	EXPECT_EQ(~0u, brd(b, 0)) TH_LOG("the board still answers after EMU_INJECT 8 (datasheet 1.1: all ones)");
	if (streaming || self->rd.t_end >= t_fault) {
		EXPECT_TRUE(rd_ok) TH_LOG("the reader was still asleep %d s after the link went down", HANG_MS / 1000);
		EXPECT_EQ(ENODEV, self->rd.end) TH_LOG("read() after the link went down: %s, want ENODEV",
						      self->rd.end ? strerror(self->rd.end) : "0");
		EXPECT_LE(self->rd.t_end, t_fault + WAKE_LIMIT_MS * NSEC_PER_MS)
			TH_LOG("ENODEV came %.1f ms after the link went down (contract: within a second)", rd_ms);
	}
	EXPECT_EQ(0, self->rd.problem[0]) TH_LOG("%s", self->rd.problem);
	if (streaming || self->pl.t_end >= t_fault) {
		EXPECT_TRUE(pl_ok) TH_LOG("the poller was still asleep after the link went down");
		EXPECT_TRUE(self->pl.revents & POLLHUP)
			TH_LOG("poll() after the link went down: %#x, want EPOLLHUP", self->pl.revents);
		EXPECT_LE(self->pl.t_end, t_fault + WAKE_LIMIT_MS * NSEC_PER_MS)
			TH_LOG("poll() woke %.1f ms after the link went down", pl_ms);
	}
	reader_stop(&self->rd);
	poller_stop(&self->pl);
	EXPECT_STREQ("gone", attr_word(b, "state"))
		TH_LOG("sysfs state of a bound board whose link went down (docs/sysfs-class-fpgastream)");
	check_all_enodev(_metadata, b, b->fd);
	EXPECT_EQ(b->len, late_dma(b, 200)) TH_LOG("the board wrote memory with its link down");
	if (streaming) {
		/* Surprise removal: remove() while the file is open and mapped. */
		remove_board(_metadata, b);
		check_all_enodev(_metadata, b, b->fd);
		r = b_close(b->fd, &ns);
		EXPECT_EQ(0, r) TH_LOG("close: %s", err_name(r));
		b->fd = -1;
	} else {
		r = b_close(b->fd, &ns);
		EXPECT_EQ(0, r) TH_LOG("close: %s", err_name(r));
		b->fd = -1;
	}
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned after close");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned after close");
	if (!streaming)
		remove_board(_metadata, b);
	munmap(b->buf, b->len);
	b->buf = NULL;
	ASSERT_EQ(0, board_revive(b, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ksft_print_msg("the board is back as %s after a reset of port %s and a rescan\n",
		       b->d.node, b->port);
	check_clean(_metadata, b, self->p0, self->lk0);
}

TEST_F_TIMEOUT(linkdown, streaming, T_TEST)
{
	linkdown_run(_metadata, self, true);
}

TEST_F_TIMEOUT(linkdown, mapped, T_TEST)
{
	linkdown_run(_metadata, self, false);
}

/* --------------------------------------------------------- fixture wedge */

FIXTURE(wedge) {
	struct board b;
	struct fv_pins p0;
	long long lk0;
	char why[512];
};

FIXTURE_SETUP(wedge)
{
	common_setup(_metadata, &self->b, &self->p0, &self->lk0);
}

FIXTURE_TEARDOWN(wedge)
{
	board_teardown(&self->b);
}

enum wedge_op { W_STOP, W_UNMAP, W_CLOSE };

/*
 * The IDLE stall (EMU_INJECT 4: IDLE 50 ms late after the stop) on a
 * running stream, then @op.  The datasheet lets the engine write until one
 * STATUS read shows RUNNING 0 and IDLE 1: when STOP, UNMAP or close has
 * returned, that must hold (else the driver let go of memory the board
 * could still write), and nothing is written afterwards.
 */
static void wedge_run(struct __test_metadata *_metadata, FIXTURE_DATA(wedge) *self,
		      enum wedge_op op)
{
	static const char *const names[] = { "STOP", "UNMAP", "close" };
	struct board *b = &self->b;
	struct fpgastream_block r[16];
	uint64_t ns = 0, got = 0;
	uint32_t st;
	long k, ret;

	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	while (got < 100) {
		k = fv_records(b->fd, r, 16, WAIT_MS);
		ASSERT_LT(0, k) TH_LOG("records: %s", err_name(k));
		ASSERT_EQ(0, fv_release(b->fd, k));
		got += k;
	}
	bwr(b, R_EMU_INJECT, INJECT_IDLE_STALL);
	switch (op) {
	case W_STOP:
		ret = b_ioctl(b->fd, FPGASTREAM_IOC_STOP, NULL, &ns);
		break;
	case W_UNMAP:
		ret = b_ioctl(b->fd, FPGASTREAM_IOC_UNMAP, NULL, &ns);
		b->mapped = false;
		break;
	default:
		ret = b_close(b->fd, &ns);
		b->fd = -1;
		break;
	}
	st = brd(b, R_STATUS);
	ksft_print_msg("%s with the IDLE stall armed took %.1f ms: %s; STATUS then %#x, EMU_INJECT %#x, state %s\n",
		       names[op], ns / 1e6, err_name(ret), st, brd(b, R_EMU_INJECT),
		       attr_word(b, "state"));
	EXPECT_EQ(0, ret) TH_LOG("%s: %s", names[op], err_name(ret));
	EXPECT_EQ(ST_IDLE, st & (ST_IDLE | ST_RUNNING))
		TH_LOG("%s returned while STATUS reads %#x: the engine may still write", names[op], st);
	EXPECT_EQ(b->len, late_dma(b, 300)) TH_LOG("the board wrote after %s", names[op]);
	if (op == W_STOP) {
		/* Pending records, then 0. */
		for (;;) {
			wd_arm(5000);
			k = read(b->fd, r, sizeof(r));
			EXPECT_FALSE(wd_disarm()) TH_LOG("read after STOP slept");
			if (k <= 0)
				break;
			fv_release(b->fd, k / REC);
		}
		EXPECT_EQ(0, k) TH_LOG("read after STOP: %s", k < 0 ? strerror(errno) : "");
		EXPECT_EQ(0, fresh_stream(b, 16, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	}
	if (op == W_UNMAP) {
		fv_pins_quiet(5000);
		EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("UNMAP with the stall left pages pinned");
	}
	check_clean(_metadata, b, self->p0, self->lk0);
}

TEST_F_TIMEOUT(wedge, stop_stalled, T_TEST)
{
	wedge_run(_metadata, self, W_STOP);
}

TEST_F_TIMEOUT(wedge, unmap_stalled, T_TEST)
{
	wedge_run(_metadata, self, W_UNMAP);
}

TEST_F_TIMEOUT(wedge, close_stalled, T_TEST)
{
	wedge_run(_metadata, self, W_CLOSE);
}

/* The munmap of the buffer while the stalled engine stops at close. */
TEST_F_TIMEOUT(wedge, munmap_then_close_stalled, T_TEST)
{
	struct board *b = &self->b;
	struct fpgastream_block r[16];
	uint64_t ns = 0, got = 0;
	long k, ret;

	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	while (got < 100) {
		k = fv_records(b->fd, r, 16, WAIT_MS);
		ASSERT_LT(0, k) TH_LOG("records: %s", err_name(k));
		ASSERT_EQ(0, fv_release(b->fd, k));
		got += k;
	}
	ASSERT_EQ(0, munmap(b->buf, b->len));
	b->buf = NULL;
	EXPECT_LE((long long)(RING / 4096), fv_pins_held(self->p0))
		TH_LOG("munmap unpinned pages the board still writes");
	bwr(b, R_EMU_INJECT, INJECT_IDLE_STALL);
	ret = b_close(b->fd, &ns);
	b->fd = -1;
	ksft_print_msg("close after munmap with the stall took %.1f ms: %s; STATUS %#x\n",
		       ns / 1e6, err_name(ret), brd(b, R_STATUS));
	EXPECT_EQ(0, ret);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/*
 * The kernel's lines about @bdf logged after the mark @mark (read from
 * /dev/kmsg), joined in @out; their count.
 */
static int kmsg_lines_after(const char *mark, const char *bdf, char *out, size_t len)
{
	char rec[2048];
	bool seen = false;
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC), n = 0;
	ssize_t k;
	size_t used = 0;

	out[0] = 0;
	if (fd < 0)
		return -1;
	for (;;) {
		k = read(fd, rec, sizeof(rec) - 1);
		if (k < 0) {
			if (errno == EPIPE)
				continue;	/* overwritten records */
			break;
		}
		rec[k] = 0;
		if (strstr(rec, mark)) {
			seen = true;
			continue;
		}
		if (seen && strstr(rec, bdf) && strstr(rec, "fpgastream")) {
			char *msg = strchr(rec, ';');

			n++;
			msg = msg ? msg + 1 : rec;
			msg[strcspn(msg, "\n")] = 0;
			used += snprintf(out + used, used < len ? len - used : 0, "%s\"%s\"",
					 n > 1 ? ", " : "", msg);
		}
	}
	close(fd);
	return n;
}

/*
 * An engine that never goes idle, even after a soft reset: no injection
 * gives one (EMU_INJECT 4 delays IDLE by 50 ms only), but a secondary bus
 * reset of the port behind the driver's back does, as the driver sees it:
 * the board is back at power-on with its BARs unassigned, every register
 * reads 0 (STATUS: RUNNING 0, IDLE 0, never "RUNNING 0 and IDLE 1") and
 * every write, SOFT_RESET included, is lost.  docs/design.md: "bus
 * mastering is switched off first and read back ..., then the memory is
 * freed, with one kernel line"; docs/sysfs-class-fpgastream: "after UNMAP
 * the state reads idle, and MAP answers EIO until the engine is seen idle".
 * (Bus mastering is off anyway after that reset, so it is not checked.)
 */
TEST_F_TIMEOUT(wedge, never_idle, T_TEST)
{
	struct board *b = &self->b;
	char mark[64], lines[1024];
	uint64_t ns = 0;
	uint32_t id;
	int n;
	long r;

	ASSERT_NE(0, b->port[0]) TH_LOG("no port");
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	{
		struct fpgastream_block rr[16];
		uint64_t got = 0;
		long k;

		while (got < 100) {
			k = fv_records(b->fd, rr, 16, WAIT_MS);
			ASSERT_LT(0, k) TH_LOG("records: %s", err_name(k));
			ASSERT_EQ(0, fv_release(b->fd, k));
			got += k;
		}
	}
	/* tools/emu/README.md: EMU_INJECT 64 wedges the engine through resets. */
	bwr(b, R_EMU_INJECT, INJECT_WEDGE);
	ksft_print_msg("engine wedged: STATUS %#x\n", brd(b, R_STATUS));
	snprintf(mark, sizeof(mark), "fpgastream-vm: faults mark %d", getpid());
	kmsg(mark);
	r = b_ioctl(b->fd, FPGASTREAM_IOC_UNMAP, NULL, &ns);
	b->mapped = false;
	/* What UNMAP logged, before the driver's own look at the board may
	 * find the reset and log (and do) more. */
	n = kmsg_lines_after(mark, b->d.bdf, lines, sizeof(lines));
	ksft_print_msg("UNMAP of the never idle engine: %s after %.1f ms; state %s\n", err_name(r),
		       ns / 1e6, attr_word(b, "state"));
	ksft_print_msg("kernel lines of the UNMAP: %s\n", lines);
	EXPECT_NE(-HUNG, r) TH_LOG("UNMAP hung on an engine that never goes idle");
	EXPECT_LT(ns, 5000 * NSEC_PER_MS) TH_LOG("UNMAP took %.1f ms", ns / 1e6);
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("the buffer stays pinned: a permanent leak");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("the memlock charge stays");
	EXPECT_STREQ("idle", attr_word(b, "state"));
	EXPECT_EQ(1, n) TH_LOG("%d kernel lines for one wedged engine (docs/design.md: \"with one kernel line\"): %s",
			       n, lines);
	snprintf(mark, sizeof(mark), "fpgastream-vm: faults mark %d map", getpid());
	kmsg(mark);
	id = brd(b, 0);
	r = fv_map(b->fd, b->buf, b->len, 0);
	ksft_print_msg("MAP after it (BAR0 ID %#x): %s\n", id, err_name(r));
	if (!r)
		b->mapped = true;
	/* The wedge outlasts every reset: the engine is never seen idle. */
	EXPECT_EQ(-EIO, r) TH_LOG("MAP: %s (docs/sysfs-class-fpgastream: EIO until the engine is seen idle)",
				  err_name(r));
	n = kmsg_lines_after(mark, b->d.bdf, lines, sizeof(lines));
	if (n)
		ksft_print_msg("note: the refused MAP logged: %s\n", lines);
	r = b_close(b->fd, NULL);
	EXPECT_EQ(0, r);
	b->fd = -1;
	b->mapped = false;
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(self->p0));
	munmap(b->buf, b->len);
	b->buf = NULL;
	bwr(b, R_EMU_INJECT, INJECT_UNWEDGE);
	ASSERT_EQ(0, board_revive(b, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/* ----------------------------------------------------------- fixture race */

/*
 * Faults that meet something else in progress: a reset storm, a STOP
 * waiting for the stalled IDLE when the link goes or a reset comes, blocks
 * held back from RELEASE across a reset, a MAP when the link goes, and
 * remove() of a healthy board under a blocked reader.
 */
FIXTURE(race) {
	FAULT_ENV
};

FAULT_ENV_HOOKS(race)

/* Read and release @n records on the main thread (bounded). */
static long take(struct board *b, uint64_t n, bool release)
{
	struct fpgastream_block r[16];
	uint64_t got = 0;
	long k;

	while (got < n) {
		wd_arm(WAIT_MS);
		k = fv_records(b->fd, r, n - got < 16 ? n - got : 16, WAIT_MS);
		if (wd_disarm())
			return -HUNG;
		if (k <= 0)
			return k ? k : -ENODATA;
		if (release && fv_release(b->fd, k))
			return -errno;
		got += k;
	}
	return got;
}

/* Until read() says ENODEV (the driver saw the board gone), at most @ms. */
static int wait_enodev(struct board *b, unsigned int ms, uint64_t *took)
{
	struct fpgastream_block r[4];
	uint64_t t0 = fv_now_ns(), end = t0 + ms * NSEC_PER_MS;
	int fl = fcntl(b->fd, F_GETFL), err = 0;

	fcntl(b->fd, F_SETFL, fl | O_NONBLOCK);
	while (fv_now_ns() < end) {
		if (read(b->fd, r, sizeof(r)) < 0 && errno == ENODEV) {
			err = ENODEV;
			break;
		}
		fv_sleep_ms(10);
	}
	fcntl(b->fd, F_SETFL, fl);
	*took = fv_now_ns() - t0;
	return err;
}

/* After the link went down: ENODEV everywhere, close, nothing held, the
 * board removed and brought back. */
static void gone_and_back(struct __test_metadata *_metadata, FIXTURE_DATA(race) *self)
{
	struct board *b = &self->b;
	uint64_t took;
	long r;

	EXPECT_EQ(ENODEV, wait_enodev(b, WAKE_LIMIT_MS, &took))
		TH_LOG("read() not ENODEV %d ms after the link went down", WAKE_LIMIT_MS);
	ksft_print_msg("read() says ENODEV %.1f ms after we began to look\n", took / 1e6);
	check_all_enodev(_metadata, b, b->fd);
	r = b_close(b->fd, NULL);
	EXPECT_EQ(0, r) TH_LOG("close: %s", err_name(r));
	b->fd = -1;
	b->mapped = false;
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned after close");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
	remove_board(_metadata, b);
	if (b->buf)
		munmap(b->buf, b->len);
	b->buf = NULL;
	ASSERT_EQ(0, board_revive(b, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/* Five resets back to back mid-stream: one end (EIO), and START works. */
TEST_F_TIMEOUT(race, reset_storm, T_TEST)
{
	struct board *b = &self->b;
	uint64_t t0, t1, seen;
	int i, pre = fault_prereq(b, F_RESET_SYSFS, self->why, sizeof(self->why));

	ASSERT_EQ(0, pre) TH_LOG("%s", self->why);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ(0, reader_start(&self->rd, b, false));
	ASSERT_EQ(0, poller_start(&self->pl, b->fd));
	ASSERT_TRUE(wait_records(&self->rd, 200, WAIT_MS)) TH_LOG("%s", self->rd.problem);
	seen = attr_u64(b, "blocks_completed");
	t0 = fv_now_ns();
	for (i = 0; i < 5; i++)
		ASSERT_EQ(0, inject(b, F_RESET_SYSFS, true, self->why, sizeof(self->why)))
			TH_LOG("reset %d: %s", i + 1, self->why);
	t1 = fv_now_ns();
	check_stream_ended(_metadata, &self->rd, &self->pl, t0, t1, seen, F_RESET_SYSFS);
	reader_stop(&self->rd);
	poller_stop(&self->pl);
	EXPECT_STREQ("fault", attr_word(b, "state"));
	check_stats_after(_metadata, b, atomic_load(&self->rd.records));
	EXPECT_EQ(b->len, late_dma(b, 200)) TH_LOG("the board wrote after the resets");
	EXPECT_EQ(0, fresh_stream(b, FRESH_BLOCKS, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/*
 * STOP waits for IDLE, which the stall holds back; meanwhile the link goes
 * down: STATUS reads all ones (RUNNING and IDLE both 1, never "RUNNING 0
 * and IDLE 1"), and STOP must still return.
 */
TEST_F_TIMEOUT(race, linkdown_during_stalled_stop, T_TEST)
{
	struct board *b = &self->b;
	uint64_t ns = 0;
	struct call *c;
	pthread_t t;
	long r;

	ASSERT_NE(0, b->port[0]) TH_LOG("no port to bring the board back");
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ(100, take(b, 100, true));
	bwr(b, R_EMU_INJECT, INJECT_IDLE_STALL);
	c = async_ioctl(b->fd, FPGASTREAM_IOC_STOP, NULL, &t);
	ASSERT_NE(NULL, c);
	fv_sleep_ms(5);
	bwr(b, R_EMU_INJECT, INJECT_LINK_DOWN);
	r = async_wait(c, t, 5000, &ns);
	ksft_print_msg("STOP with the IDLE stall, the link going down 5 ms in: %s after %.1f ms\n",
		       err_name(r), ns / 1e6);
	EXPECT_TRUE(r == 0 || r == -ENODEV) TH_LOG("STOP: %s, want 0 or ENODEV", err_name(r));
	gone_and_back(_metadata, self);
}

/* STOP waiting for the stalled IDLE, and a reset meanwhile. */
TEST_F_TIMEOUT(race, reset_during_stalled_stop, T_TEST)
{
	struct board *b = &self->b;
	struct fpgastream_block r[16];
	uint64_t ns = 0;
	struct call *c;
	pthread_t t;
	long ret, k;

	ASSERT_EQ(0, fault_prereq(b, F_RESET_SYSFS, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ(100, take(b, 100, true));
	bwr(b, R_EMU_INJECT, INJECT_IDLE_STALL);
	c = async_ioctl(b->fd, FPGASTREAM_IOC_STOP, NULL, &t);
	ASSERT_NE(NULL, c);
	fv_sleep_ms(5);
	EXPECT_EQ(0, inject(b, F_RESET_SYSFS, true, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ret = async_wait(c, t, 5000, &ns);
	ksft_print_msg("STOP with the IDLE stall, a reset 5 ms in: %s after %.1f ms; state %s\n",
		       err_name(ret), ns / 1e6, attr_word(b, "state"));
	EXPECT_TRUE(ret == 0 || ret == -EIO) TH_LOG("STOP: %s, want 0 or EIO", err_name(ret));
	/* The pending records, then the end (0) or EIO; never a sleep. */
	for (;;) {
		wd_arm(5000);
		k = read(b->fd, r, sizeof(r));
		EXPECT_FALSE(wd_disarm()) TH_LOG("read() after STOP and the reset slept");
		if (k <= 0)
			break;
		fv_release(b->fd, k / REC);
	}
	EXPECT_TRUE(k == 0 || errno == EIO) TH_LOG("read: %s", strerror(errno));
	EXPECT_EQ(b->len, late_dma(b, 200)) TH_LOG("the board wrote after STOP and the reset");
	EXPECT_EQ(0, fresh_stream(b, FRESH_BLOCKS, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/*
 * The program holds the whole ring (no RELEASE) when the board is reset:
 * read() gives EIO at once, and a new START has the whole ring again, so
 * more than a ring's worth streams.
 */
TEST_F_TIMEOUT(race, reset_with_held_blocks, T_TEST)
{
	struct board *b = &self->b;
	struct fpgastream_block r[4];
	uint64_t one = RING_BLOCKS;
	ssize_t n;
	long ret;

	ASSERT_EQ(0, fault_prereq(b, F_RESET_SYSFS, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ((long)RING_BLOCKS, take(b, RING_BLOCKS, false));
	fv_sleep_ms(100);
	ASSERT_EQ(0, inject(b, F_RESET_SYSFS, true, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	wd_arm(WAKE_LIMIT_MS);
	n = read(b->fd, r, sizeof(r));
	EXPECT_FALSE(wd_disarm()) TH_LOG("read() slept after the reset of a full ring");
	EXPECT_EQ(-1, n);
	EXPECT_EQ(EIO, errno) TH_LOG("read() after the reset: %s", n < 0 ? strerror(errno) : "records");
	ret = fv_ioc(b->fd, FPGASTREAM_IOC_RELEASE, &one);
	ksft_print_msg("RELEASE of the %ju held blocks after the reset: %s\n", (uintmax_t)one,
		       err_name(ret));
	EXPECT_EQ(0, fresh_stream(b, FRESH_BLOCKS, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/* The link goes down while MAP pins and programs 64 MiB (4 MiB where
 * the buffer bounces). */
TEST_F_TIMEOUT(race, linkdown_during_map, T_TEST)
{
	struct board *b = &self->b;
	struct fpgastream_map m = { 0 };
	/* What must bounce is limited by the bounce pool (ENOMEM beyond). */
	size_t len = b->d.swiotlb || b->d.dma32 ? RING : 64ULL << 20;
	uint64_t ns = 0;
	struct call *c;
	pthread_t t;
	long r;

	ASSERT_NE(0, b->port[0]) TH_LOG("no port to bring the board back");
	b->fd = fv_open(&b->d, 0);
	ASSERT_LE(0, b->fd);
	b->buf = fv_huge(len, false);
	ASSERT_NE(NULL, b->buf) TH_LOG("%zu MiB of hugepages", len >> 20);
	b->len = len;
	m.addr = (uintptr_t)b->buf;
	m.length = len;
	c = async_ioctl(b->fd, FPGASTREAM_IOC_MAP, &m, &t);
	ASSERT_NE(NULL, c);
	fv_sleep_ms(1);
	bwr(b, R_EMU_INJECT, INJECT_LINK_DOWN);
	r = async_wait(c, t, CALL_MS, &ns);
	ksft_print_msg("MAP of %zu MiB, the link going down 1 ms in: %s after %.1f ms\n",
		       len >> 20, err_name(r), ns / 1e6);
	EXPECT_TRUE(r == 0 || r == -ENODEV || r == -EIO) TH_LOG("MAP: %s", err_name(r));
	b->mapped = r == 0;
	gone_and_back(_metadata, self);
}

/* remove() of a healthy board under a blocked reader and a poller. */
TEST_F_TIMEOUT(race, remove_blocked_reader, T_TEST)
{
	struct board *b = &self->b;
	uint64_t t0, t1;
	long r;

	ASSERT_NE(0, b->port[0]) TH_LOG("no port");
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 40));
	ASSERT_EQ(0, reader_start(&self->rd, b, false));
	ASSERT_EQ(0, poller_start(&self->pl, b->fd));
	ASSERT_TRUE(wait_records(&self->rd, 40, WAIT_MS));
	fv_sleep_ms(200);
	ASSERT_TRUE(atomic_load(&self->rd.in_read));
	t0 = fv_now_ns();
	remove_board(_metadata, b);
	t1 = fv_now_ns();
	EXPECT_TRUE(wait_done(&self->rd.done, self->rd.t, HANG_MS)) TH_LOG("the reader slept through remove()");
	EXPECT_TRUE(wait_done(&self->pl.done, self->pl.t, 5000)) TH_LOG("the poller slept through remove()");
	ksft_print_msg("remove(): %.1f ms; the reader ended %.1f ms after it began (%s), the poller %.1f ms (revents %#x)\n",
		       (t1 - t0) / 1e6, ((double)self->rd.t_end - (double)t0) / 1e6,
		       self->rd.end ? strerror(self->rd.end) : "0",
		       ((double)self->pl.t_end - (double)t0) / 1e6, self->pl.revents);
	EXPECT_EQ(ENODEV, self->rd.end) TH_LOG("read() of a removed board: %s",
					      self->rd.end ? strerror(self->rd.end) : "0");
	EXPECT_LE(self->rd.t_end, t1 + WAKE_LIMIT_MS * NSEC_PER_MS);
	EXPECT_TRUE(self->pl.revents & POLLHUP) TH_LOG("poll(): %#x, want EPOLLHUP", self->pl.revents);
	EXPECT_EQ(0, self->rd.problem[0]) TH_LOG("%s", self->rd.problem);
	reader_stop(&self->rd);
	poller_stop(&self->pl);
	check_all_enodev(_metadata, b, b->fd);
	r = b_close(b->fd, NULL);
	EXPECT_EQ(0, r);
	b->fd = -1;
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned after remove and close");
	EXPECT_EQ(self->lk0, fv_locked_kb());
	munmap(b->buf, b->len);
	b->buf = NULL;
	ASSERT_EQ(0, board_revive(b, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/* A reset while MAP pins, DMA-maps and programs the LUT. */
TEST_F_TIMEOUT(race, reset_during_map, T_TEST)
{
	struct board *b = &self->b;
	struct fpgastream_map m = { 0 };
	size_t len = b->d.swiotlb || b->d.dma32 ? RING : 64ULL << 20;
	uint64_t ns = 0;
	struct call *c;
	pthread_t t;
	long r;

	ASSERT_EQ(0, fault_prereq(b, F_RESET_SYSFS, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	b->fd = fv_open(&b->d, 0);
	ASSERT_LE(0, b->fd);
	b->buf = fv_huge(len, false);
	ASSERT_NE(NULL, b->buf) TH_LOG("%zu MiB of hugepages", len >> 20);
	b->len = len;
	m.addr = (uintptr_t)b->buf;
	m.length = len;
	c = async_ioctl(b->fd, FPGASTREAM_IOC_MAP, &m, &t);
	ASSERT_NE(NULL, c);
	EXPECT_EQ(0, inject(b, F_RESET_SYSFS, false, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	r = async_wait(c, t, CALL_MS, &ns);
	ksft_print_msg("MAP of %zu MiB with a reset meanwhile: %s after %.1f ms; state %s\n",
		       len >> 20, err_name(r), ns / 1e6, attr_word(b, "state"));
	EXPECT_NE(-HUNG, r) TH_LOG("MAP hung");
	if (r == 0) {
		b->mapped = true;
		EXPECT_EQ(0, fresh_stream(b, FRESH_BLOCKS, self->why, sizeof(self->why)))
			TH_LOG("after MAP raced a reset: %s", self->why);
	} else {
		/* A MAP that failed may be retried at once. */
		r = fv_map(b->fd, b->buf, b->len, 0);
		EXPECT_EQ(0, r) TH_LOG("MAP again: %s", err_name(r));
		b->mapped = r == 0;
		if (!r)
			EXPECT_EQ(0, fresh_stream(b, FRESH_BLOCKS, self->why, sizeof(self->why)))
				TH_LOG("%s", self->why);
	}
	check_clean(_metadata, b, self->p0, self->lk0);
}

/* close of a running stream waits for the stalled IDLE; a reset comes. */
TEST_F_TIMEOUT(race, reset_during_stalled_close, T_TEST)
{
	struct board *b = &self->b;
	struct call *c;
	uint64_t ns = 0;
	pthread_t t;
	long r;

	ASSERT_EQ(0, fault_prereq(b, F_RESET_SYSFS, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ(100, take(b, 100, true));
	bwr(b, R_EMU_INJECT, INJECT_IDLE_STALL);
	c = calloc(1, sizeof(*c));
	ASSERT_NE(NULL, c);
	c->kind = C_CLOSE;
	c->fd = b->fd;
	ASSERT_EQ(0, pthread_create(&t, NULL, call_main, c));
	b->fd = -1;
	b->mapped = false;
	fv_sleep_ms(5);
	EXPECT_EQ(0, inject(b, F_RESET_SYSFS, false, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	r = async_wait(c, t, CALL_MS, &ns);
	ksft_print_msg("close with the IDLE stall and a reset 5 ms in: %s after %.1f ms\n",
		       err_name(r), ns / 1e6);
	EXPECT_EQ(0, r) TH_LOG("close: %s", err_name(r));
	EXPECT_EQ(b->len, late_dma(b, 200)) TH_LOG("the board wrote after close");
	check_clean(_metadata, b, self->p0, self->lk0);
}

/*
 * The link goes down while no file is open (the driver's health check only
 * looks while one is): then a program opens, maps, starts and reads.  It
 * must not sleep for ever: ENODEV within 3 s of the open (or at once).
 */
TEST_F_TIMEOUT(race, linkdown_unopened, T_TEST)
{
	struct board *b = &self->b;
	uint64_t t0, took;
	long r;
	int err;

	ASSERT_NE(0, b->port[0]) TH_LOG("no port to bring the board back");
	b->buf = fv_huge(RING, false);
	ASSERT_NE(NULL, b->buf);
	b->len = RING;
	bwr(b, R_EMU_INJECT, INJECT_LINK_DOWN);
	fv_sleep_ms(1500);
	ksft_print_msg("link down with no file open; 1.5 s later the state reads %s\n",
		       attr_word(b, "state"));
	t0 = fv_now_ns();
	b->fd = fv_open(&b->d, 0);
	if (b->fd < 0) {
		ksft_print_msg("open of the gone board: %s\n", strerror(errno));
		EXPECT_EQ(ENODEV, errno) TH_LOG("open: %s", strerror(errno));
	} else {
		r = fv_map(b->fd, b->buf, b->len, 0);
		ksft_print_msg("MAP on the gone board: %s\n", err_name(r));
		b->mapped = r == 0;
		EXPECT_TRUE(r == 0 || r == -ENODEV) TH_LOG("MAP: %s", err_name(r));
		if (!r) {
			r = fv_start(b->fd, FPGASTREAM_START_FLOW_CONTROL);
			ksft_print_msg("START on the gone board: %s\n", err_name(r));
			EXPECT_TRUE(r == 0 || r == -ENODEV) TH_LOG("START: %s", err_name(r));
			ASSERT_EQ(0, reader_start(&self->rd, b, false));
			EXPECT_TRUE(wait_done(&self->rd.done, self->rd.t, HANG_MS))
				TH_LOG("a reader of the gone board slept for %d s", HANG_MS / 1000);
			ksft_print_msg("the reader ended %.1f ms after the open: %s (%ju records)\n",
				       ((double)self->rd.t_end - (double)t0) / 1e6,
				       self->rd.end ? strerror(self->rd.end) : "0",
				       (uintmax_t)self->rd.records);
			EXPECT_EQ(ENODEV, self->rd.end);
			EXPECT_LE(self->rd.t_end, t0 + WAKE_LIMIT_MS * NSEC_PER_MS);
			EXPECT_EQ(0, self->rd.records) TH_LOG("records from a board without a link");
			reader_stop(&self->rd);
		}
		err = wait_enodev(b, WAKE_LIMIT_MS, &took);
		EXPECT_EQ(ENODEV, err) TH_LOG("read() not ENODEV %d ms after", WAKE_LIMIT_MS);
		check_all_enodev(_metadata, b, b->fd);
		r = b_close(b->fd, NULL);
		EXPECT_EQ(0, r);
		b->fd = -1;
		b->mapped = false;
	}
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned after close");
	EXPECT_EQ(self->lk0, fv_locked_kb());
	remove_board(_metadata, b);
	munmap(b->buf, b->len);
	b->buf = NULL;
	ASSERT_EQ(0, board_revive(b, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/*
 * A secondary bus reset of the board's port that the kernel does not know
 * of (as setpci would do it): the board is back at power-on, its BARs and
 * COMMAND cleared, with no reset_prepare/reset_done for the driver.  The
 * contract's "a bus reset ends the stream (-EIO, EPOLLERR)" does not say
 * who does the reset; the reader must at least not sleep for ever: EIO or
 * ENODEV within 3 s, and nothing pinned after close.
 */
TEST_F_TIMEOUT(race, port_reset_behind_the_driver, T_TEST)
{
	struct board *b = &self->b;
	uint64_t t0, t1;
	bool rd_ok, pl_ok;
	long r;

	/*
	 * In two boots of make check (swiotlb=force, and the debug kernel
	 * behind the IOMMU) QEMU 7.2 itself aborted during this test (msix.c:
	 * msix_table_mmio_read: Assertion `addr + size <= dev->msix_entries_nr
	 * * PCI_MSIX_ENTRY_SIZE'), which takes the whole boot down. Until that
	 * is understood it runs only when asked for.
	 */
	if (!getenv("FPGASTREAM_FAULTS_UNANNOUNCED_RESET"))
		SKIP(return, "QEMU 7.2 aborted in msix_table_mmio_read during it twice: run with FPGASTREAM_FAULTS_UNANNOUNCED_RESET=1");
	ASSERT_NE(0, b->port[0]) TH_LOG("no port");
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ(0, reader_start(&self->rd, b, false));
	ASSERT_EQ(0, poller_start(&self->pl, b->fd));
	ASSERT_TRUE(wait_records(&self->rd, 200, WAIT_MS)) TH_LOG("%s", self->rd.problem);
	t0 = fv_now_ns();
	ASSERT_EQ(0, port_sbr(b->port));
	t1 = fv_now_ns();
	rd_ok = wait_done(&self->rd.done, self->rd.t, HANG_MS);
	pl_ok = wait_done(&self->pl.done, self->pl.t, 5000);
	ksft_print_msg("secondary bus reset of %s behind the driver's back: reader ended %.1f ms after it (%s, %ju records), poller %.1f ms (revents %#x); BAR0 ID %#x; state %s\n",
		       b->port, ((double)self->rd.t_end - (double)t0) / 1e6,
		       self->rd.end ? strerror(self->rd.end) : "0", (uintmax_t)self->rd.records,
		       ((double)self->pl.t_end - (double)t0) / 1e6, self->pl.revents, brd(b, 0),
		       attr_word(b, "state"));
	EXPECT_TRUE(rd_ok) TH_LOG("the reader slept on after the board was reset under it");
	EXPECT_TRUE(self->rd.end == EIO || self->rd.end == ENODEV)
		TH_LOG("read() after the reset: %s", self->rd.end ? strerror(self->rd.end) : "0");
	EXPECT_LE(self->rd.t_end, t1 + WAKE_LIMIT_MS * NSEC_PER_MS);
	EXPECT_TRUE(pl_ok) TH_LOG("the poller slept on after the board was reset under it");
	EXPECT_TRUE(self->pl.revents & (POLLERR | POLLHUP)) TH_LOG("poll(): %#x", self->pl.revents);
	EXPECT_EQ(0, self->rd.problem[0]) TH_LOG("%s", self->rd.problem);
	reader_stop(&self->rd);
	poller_stop(&self->pl);
	r = b_close(b->fd, NULL);
	EXPECT_EQ(0, r) TH_LOG("close: %s", err_name(r));
	b->fd = -1;
	b->mapped = false;
	EXPECT_EQ(b->len, late_dma(b, 200)) TH_LOG("the board wrote after close");
	fv_pins_quiet(5000);
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned after close");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
	munmap(b->buf, b->len);
	b->buf = NULL;
	ASSERT_EQ(0, board_revive(b, self->why, sizeof(self->why))) TH_LOG("%s", self->why);
	check_clean(_metadata, b, self->p0, self->lk0);
}

/* ------------------------------------------------------ fixture isolation */

FIXTURE(isolation) {
	struct board a, b;
	struct fv_pins p0;
	long long lk0;
	struct reader ra, rb;
	char why[512];
};

FIXTURE_SETUP(isolation)
{
	char bdf[4][32];
	const char *why;
	int n;

	ASSERT_EQ(0, install_signals());
	self->a.fd = self->b.fd = -1;
	n = list_boards(bdf, 4);
	if (n < 2)
		SETUP_SKIP("needs two boards, found %d (tools/vm/run --boards 2)", n);
	why = board_setup(&self->a, bdf[0]);
	if (why)
		SETUP_SKIP("board A %s: %s", bdf[0], why);
	why = board_setup(&self->b, bdf[1]);
	if (why)
		SETUP_SKIP("board B %s: %s", bdf[1], why);
	fv_pins_quiet(60000);
	self->p0 = fv_pin_counts();
	self->lk0 = fv_locked_kb();
}

FIXTURE_TEARDOWN(isolation)
{
	reader_stop(&self->ra);
	reader_stop(&self->rb);
	board_teardown(&self->a);
	board_teardown(&self->b);
}

/* B's progress across one of A's events: it goes on streaming. */
static void b_progress(struct __test_metadata *_metadata, struct reader *rb, uint64_t before,
		       const char *what)
{
	uint64_t now;

	wait_records(rb, before + 2 * RING_BLOCKS, 10000);
	now = atomic_load(&rb->records);
	ksft_print_msg("B: %ju records across A's %s\n", (uintmax_t)(now - before), what);
	EXPECT_LE(before + 2 * RING_BLOCKS, now) TH_LOG("B stalled across A's %s", what);
	EXPECT_FALSE(atomic_load(&rb->done)) TH_LOG("B's stream ended at A's %s: %s", what,
						    strerror(rb->end));
	EXPECT_EQ(0, rb->problem[0]) TH_LOG("B: %s", rb->problem);
}

/* A's stream ends with @err; then A starts again on its mapping. */
static void a_ended(struct __test_metadata *_metadata, struct board *a, struct reader *ra,
		    int err, const char *what, bool restart)
{
	bool ok = wait_done(&ra->done, ra->t, HANG_MS);

	EXPECT_TRUE(ok) TH_LOG("A's reader was still asleep after its %s", what);
	EXPECT_EQ(err, ra->end) TH_LOG("A's read() after its %s: %s, want %s", what,
				       ra->end ? strerror(ra->end) : "0", strerror(err));
	reader_stop(ra);
	if (!restart)
		return;
	EXPECT_TRUE(wait_alive(a, 20000)) TH_LOG("A did not come back after its %s", what);
	EXPECT_EQ(0, start_retry(a, 0)) TH_LOG("A: START after its %s", what);
	EXPECT_EQ(0, reader_start(ra, a, false));
	EXPECT_TRUE(wait_records(ra, 50, WAIT_MS)) TH_LOG("A does not stream after its %s", what);
}

TEST_F_TIMEOUT(isolation, two_boards, 600)
{
	struct board *a = &self->a, *b = &self->b;
	struct fpgastream_block r[16];
	struct fpgastream_stats st;
	uint64_t before, ns, last;
	long k;

	ksft_print_msg("A %s (port %s), B %s (port %s)\n", a->d.bdf, a->port, b->d.bdf, b->port);
	EXPECT_NE(0, strcmp(a->port, b->port)) TH_LOG("the two boards share a port");
	ASSERT_EQ(0, open_map(a, RING, self->why, sizeof(self->why))) TH_LOG("A: %s", self->why);
	ASSERT_EQ(0, open_map(b, RING, self->why, sizeof(self->why))) TH_LOG("B: %s", self->why);
	ASSERT_EQ(0, start_stream(a, 0));
	ASSERT_EQ(0, start_stream(b, 0));
	ASSERT_EQ(0, reader_start(&self->ra, a, false));
	ASSERT_EQ(0, reader_start(&self->rb, b, true));	/* every word of B */
	ASSERT_TRUE(wait_records(&self->rb, 200, WAIT_MS)) TH_LOG("B: %s", self->rb.problem);
	ASSERT_TRUE(wait_records(&self->ra, 200, WAIT_MS)) TH_LOG("A: %s", self->ra.problem);

	/* 1. reset of A through sysfs */
	before = atomic_load(&self->rb.records);
	if (fault_prereq(a, F_RESET_SYSFS, self->why, sizeof(self->why)) == 0 &&
	    inject(a, F_RESET_SYSFS, true, self->why, sizeof(self->why)) == 0) {
		a_ended(_metadata, a, &self->ra, EIO, "reset", true);
	} else {
		EXPECT_TRUE(false) TH_LOG("A's reset: %s", self->why);
	}
	b_progress(_metadata, &self->rb, before, "reset");

	/* 2. AER non-fatal, 3. AER fatal on A */
	if (fault_prereq(a, F_AER_NONFATAL, self->why, sizeof(self->why)) == 0) {
		struct aer_counts c0;

		before = atomic_load(&self->rb.records);
		c0 = aer_counts(a);
		inject(a, F_AER_NONFATAL, true, self->why, sizeof(self->why));
		a_ended(_metadata, a, &self->ra, EIO, "non-fatal AER error", true);
		check_aer_seen(_metadata, a, F_AER_NONFATAL, c0);
		fv_sleep_ms(1000);	/* the AER service's report is logged */
		kmsg("fpgastream-vm: expect-aer off");
		b_progress(_metadata, &self->rb, before, "non-fatal AER error");
		before = atomic_load(&self->rb.records);
		c0 = aer_counts(a);
		inject(a, F_AER_FATAL, true, self->why, sizeof(self->why));
		a_ended(_metadata, a, &self->ra, EIO, "fatal AER error", true);
		check_aer_seen(_metadata, a, F_AER_FATAL, c0);
		fv_sleep_ms(1000);
		kmsg("fpgastream-vm: expect-aer off");
		b_progress(_metadata, &self->rb, before, "fatal AER error");
	} else {
		EXPECT_TRUE(false) TH_LOG("A: %s", self->why);
	}

	/* 4. A's link goes down, A is removed and comes back */
	before = atomic_load(&self->rb.records);
	if (!self->ra.t)
		reader_start(&self->ra, a, false);
	bwr(a, R_EMU_INJECT, INJECT_LINK_DOWN);
	a_ended(_metadata, a, &self->ra, ENODEV, "link loss", false);
	b_progress(_metadata, &self->rb, before, "link loss");
	before = atomic_load(&self->rb.records);
	b_close(a->fd, &ns);
	a->fd = -1;
	munmap(a->buf, a->len);
	a->buf = NULL;
	EXPECT_EQ(0, board_revive(a, self->why, sizeof(self->why))) TH_LOG("A: %s", self->why);
	b_progress(_metadata, &self->rb, before, "removal, port reset and rescan");

	/* B: stop, drain, count. */
	fv_sleep_ms(500);
	last = atomic_load(&self->rb.records);
	atomic_store(&self->rb.hold, 1);
	fv_sleep_ms(50);
	while (atomic_load(&self->rb.in_read))
		fv_sleep_ms(5);
	EXPECT_EQ(0, b_ioctl(b->fd, FPGASTREAM_IOC_STOP, NULL, &ns));
	atomic_store(&self->rb.hold, 0);
	EXPECT_TRUE(wait_done(&self->rb.done, self->rb.t, HANG_MS)) TH_LOG("B's reader did not see the end of the stream");
	EXPECT_EQ(0, self->rb.end) TH_LOG("B's stream ended with %s, not 0 after STOP", strerror(self->rb.end));
	EXPECT_EQ(0, self->rb.problem[0]) TH_LOG("B: %s", self->rb.problem);
	reader_stop(&self->rb);
	k = read(b->fd, r, sizeof(r));
	EXPECT_EQ(0, k);
	EXPECT_EQ(0, fv_ioc(b->fd, FPGASTREAM_IOC_STATS, &st));
	ksft_print_msg("B: %ju records (%ju at the stop), every word checked, longest gap %.1f ms; STATS completed %ju announced %ju dropped %ju\n",
		       (uintmax_t)self->rb.records, (uintmax_t)last, self->rb.max_gap_ns / 1e6,
		       (uintmax_t)st.blocks_completed, (uintmax_t)st.blocks_announced,
		       (uintmax_t)st.blocks_dropped);
	EXPECT_EQ(st.blocks_announced, self->rb.records);
	EXPECT_EQ(st.blocks_completed, self->rb.records) TH_LOG("B: a completed block was never announced");
	EXPECT_EQ(0, st.blocks_dropped);
	EXPECT_GT(5000 * NSEC_PER_MS, self->rb.max_gap_ns) TH_LOG("B stood still for %.1f ms", self->rb.max_gap_ns / 1e6);
	check_clean(_metadata, b, self->p0, self->lk0);
	check_clean(_metadata, a, self->p0, self->lk0);
}

/* ------------------------------------------------------- fixture suspend */

/*
 * The fault fixture's tests for S3 and s2idle, last in the suite: after an
 * S3 cycle QEMU 7.2 with SeaBIOS leaves the extended configuration space
 * (ECAM) reading 0 for the rest of the boot, AER capabilities included, so
 * an AER test after it could not work.
 */
FIXTURE(suspend) {
	FAULT_ENV
};

FIXTURE_VARIANT(suspend) {
	enum fault f;
};

FIXTURE_VARIANT_ADD(suspend, s3) { .f = F_S3 };
FIXTURE_VARIANT_ADD(suspend, s2idle) { .f = F_S2IDLE };

FIXTURE_SETUP(suspend)
{
	/* After an S3 a QEMU 7.2 guest reads extended config space (AER)
	 * as 0 for the rest of the boot: suspend runs in a boot of its own. */
	if (!getenv("FPGASTREAM_SUSPEND_LANE"))
		SKIP({ fflush(NULL); _exit(255); },
		     "suspend runs in its own boot (FPGASTREAM_SUSPEND_LANE=1, selftests/check)");
	common_setup(_metadata, &self->b, &self->p0, &self->lk0);
}

FIXTURE_TEARDOWN(suspend)
{
	reader_stop(&self->rd);
	poller_stop(&self->pl);
	board_teardown(&self->b);
}

/* Same layout as FIXTURE_DATA(fault): FAULT_ENV. */
#define AS_FAULT(self) ((FIXTURE_DATA(fault) *)(void *)(self))

TEST_F_TIMEOUT(suspend, blocked, T_SUSPEND)
{
	run_midstream(_metadata, AS_FAULT(self), variant->f, true);
}

TEST_F_TIMEOUT(suspend, streaming, T_SUSPEND)
{
	run_midstream(_metadata, AS_FAULT(self), variant->f, false);
}

TEST_F_TIMEOUT(suspend, mapped, T_SUSPEND)
{
	run_mapped(_metadata, AS_FAULT(self), variant->f);
}

FSTR_HARNESS_MAIN
