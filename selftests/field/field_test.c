// SPDX-License-Identifier: GPL-2.0-only
/*
 * The field-fault suite (VM selftest): what real programs and real boards
 * do that must neither hang a reader nor corrupt what it reads. Each test
 * comes from a rule of the contract (../shared/spec/uapi.md, "read() and
 * poll()"):
 *
 *   torn_overwrite_block        overwrite mode: the first record after a
 *                               gap never names the slot the board writes
 *   sa_restart                  a signal with SA_RESTART restarts read()
 *   signal_without_restart      ... and without it read() fails with EINTR
 *   nonblock_never_sleeps       O_NONBLOCK read() does not wait, even for
 *                               a lock another call holds
 *   coalesce_beyond_ring_read   START's coalescing count beyond what the
 *   coalesce_beyond_ring_poll   ring can reach: read() and poll() still
 *                               announce completed blocks in bounded time
 *   held_blocks_announced       blocks held back from RELEASE leave room
 *                               for fewer blocks than the count: still
 *                               announced in bounded time
 *   uffd_read_stall             a read() buffer whose fault never resolves
 *                               (userfaultfd) stalls neither poll(), sysfs,
 *                               INFO nor remove()
 *   uffd_map_stall              the same for a MAP whose buffer faults
 *   reader_behind_stalled_reader  ... nor another reader of the same file
 *   overwrite_one_block_refused   overwrite mode cannot work on one block:
 *                               START says EINVAL
 *
 * Every test ends with the pin balance and the locked-memory charge back
 * at their start, and the board streaming correctly again; the runner
 * fails the boot on any kernel warning or unannounced DMAR fault.
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "fstr_vm.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "fstr_harness.h"
#pragma GCC diagnostic ignored "-Wsign-compare"

#define T_TEST		120
#define RING_BLOCKS	(HUGE_2M / BLOCK)	/* 32 */
/* How long a completed block may wait: 10 ms by the contract, with room
 * for a busy emulator; a driver that hangs misses it by far. */
#define ANNOUNCE_MS	2000

FIXTURE(field) {
	struct fv_dev d;
	struct fv_pins p0;
	long long lk0;
	uint8_t *b;
};

FIXTURE_SETUP(field)
{
	const char *why = fv_setup(&self->d);

	if (why)
		SKIP({ fflush(NULL); _exit(255); }, "%s", why);
	fv_pins_quiet(60000);
	self->p0 = fv_pin_counts();
	ASSERT_LE(0, self->p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	self->lk0 = fv_locked_kb();
	self->b = fv_huge(HUGE_2M, false);
	ASSERT_NE(NULL, self->b) TH_LOG("a 2 MiB hugepage: %s", strerror(errno));
}

FIXTURE_TEARDOWN(field)
{
	if (self->d.bar0)
		fv_wr(&self->d, R_EMU_INJECT, INJECT_UNWEDGE);
	if (self->b)
		munmap(self->b, HUGE_2M);
	fv_teardown(&self->d);
}

/* What every test ends with. */
static void assert_clean(struct __test_metadata *_metadata, FIXTURE_DATA(field) *self)
{
	char why[256];

	EXPECT_TRUE(fv_pins_quiet(5000));
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
	EXPECT_EQ(0, fv_board_works(&self->d, 40, why, sizeof(why)))
		TH_LOG("the board does not stream afterwards: %s", why);
	EXPECT_EQ(0, fv_pins_held(self->p0));
}

static int start_with(int fd, uint32_t flags, uint32_t count, uint32_t usec)
{
	struct fpgastream_start s = {
		.flags = flags, .irq_coalesce_count = count, .irq_coalesce_usec = usec,
	};

	return fv_ioc(fd, FPGASTREAM_IOC_START, &s);
}

/* Map the fixture's 2 MiB and return the file, or -errno. */
static int open_mapped(FIXTURE_DATA(field) *self, int oflags)
{
	int fd = fv_open(&self->d, oflags);
	int err;

	if (fd < 0)
		return -errno;
	err = fv_map(fd, self->b, HUGE_2M, 0);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static void on_signal(int sig)
{
	(void)sig;
}

/* ------------------------------------------------ a reader in a thread */

struct reader {
	int fd;
	struct fpgastream_block r[64];
	size_t max;
	ssize_t n;
	int err;
	uint64_t t_ns;		/* when read() returned */
	_Atomic int done;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	rd->n = read(rd->fd, rd->r, rd->max * REC);
	rd->err = rd->n < 0 ? errno : 0;
	rd->t_ns = fv_now_ns();
	atomic_store(&rd->done, 1);
	return NULL;
}

static bool wait_flag(_Atomic int *flag, unsigned int ms)
{
	uint64_t end = fv_now_ns() + ms * 1000000ULL;

	while (!atomic_load(flag)) {
		if (fv_now_ns() > end)
			return false;
		fv_sleep_ms(2);
	}
	return true;
}

/* --------------------------------------------------------------- tests */

/*
 * Overwrite mode with the reader a few rings behind and a slow source, so
 * that WR_COUNT stands still across the read: the board is then writing
 * block WR_COUNT into slot WR_COUNT mod RING_SIZE, which is the slot of
 * block WR_COUNT - RING_SIZE. The first record after the gap must be a
 * later block, and its data must be the block it names.
 */
TEST_F_TIMEOUT(field, torn_overwrite_block, T_TEST)
{
	struct fpgastream_block r[64];
	int fd, tries, checked = 0;

	fd = open_mapped(self, 0);
	ASSERT_LE(0, fd) TH_LOG("MAP: %s", strerror(-fd));
	/* Slow, and one record per read(): a bounced block's copy is quick. */
	fv_wr(&self->d, R_EMU_RATE, 100);
	ASSERT_EQ(0, start_with(fd, 0, 1, 0));
	for (tries = 0; tries < 20 && checked < 3; tries++) {
		uint32_t w0, w1, w2;
		bool data_ok;
		ssize_t n;

		/* Let the board lap the ring at least twice. */
		fv_sleep_ms(3 * RING_BLOCKS * 1000 / 100);
		w0 = fv_rd(&self->d, R_WR_COUNT);
		n = read(fd, r, REC);
		w1 = fv_rd(&self->d, R_WR_COUNT);
		ASSERT_LT(0, n) TH_LOG("read: %s", n ? strerror(errno) : "end of stream");
		/* Check the data before the board comes round to that slot. */
		data_ok = fv_block_ok(self->b + r[0].offset, r[0].seq, self->d.seed);
		w2 = fv_rd(&self->d, R_WR_COUNT);
		ASSERT_TRUE(r[0].flags & FPGASTREAM_BLOCK_OVERRUN)
			TH_LOG("no gap after %u blocks on a %llu-block ring", w0, RING_BLOCKS);
		if (w0 != w1)
			continue;	/* the board moved during the read: no verdict */
		checked++;
		ksft_print_msg("WR_COUNT %u: first record after the gap is seq %llu (lost %llu)\n",
			       w0, (unsigned long long)r[0].seq, (unsigned long long)r[0].lost);
		EXPECT_LT(w0 - RING_BLOCKS, r[0].seq)
			TH_LOG("seq %llu is the slot block %u is being written into",
			       (unsigned long long)r[0].seq, w0);
		EXPECT_GE(w0 - 1, r[0].seq);
		EXPECT_EQ((r[0].seq % RING_BLOCKS) * BLOCK, r[0].offset);
		/* Block seq + 32 overwrites the slot: it had not started by w2. */
		if (w2 < r[0].seq + RING_BLOCKS)
			EXPECT_TRUE(data_ok) TH_LOG("block %llu's data is not block %llu",
						    (unsigned long long)r[0].seq,
						    (unsigned long long)r[0].seq);
		/* Catch up before the next round: drain what is there. */
		while (fv_poll_now(fd) & POLLIN && read(fd, r, sizeof(r)) > 0)
			;
	}
	EXPECT_LE(3, checked) TH_LOG("the board never stood still across a read");
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	close(fd);
	assert_clean(_metadata, self);
}

/*
 * A signal during a blocking read(): restarted when its handler has
 * SA_RESTART (the read then returns the record that arrives later), EINTR
 * without.
 */
static void signal_during_read(struct __test_metadata *_metadata, FIXTURE_DATA(field) *self,
			       bool restart)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct reader rd = { .max = 4 };
	pthread_t t;
	uint64_t t0;
	int fd;

	sa.sa_flags = restart ? SA_RESTART : 0;
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	fd = open_mapped(self, 0);
	ASSERT_LE(0, fd);
	/* One block every 1.5 s: the reader is asleep when the signal comes. */
	fv_wr(&self->d, R_EMU_RATE, 1);
	fv_wr(&self->d, R_EMU_BURST, 1);
	rd.fd = fd;
	t0 = fv_now_ns();
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_main, &rd));
	fv_sleep_ms(300);
	ASSERT_FALSE(atomic_load(&rd.done)) TH_LOG("read returned before any block");
	ASSERT_EQ(0, pthread_kill(t, SIGUSR1));
	ASSERT_TRUE(wait_flag(&rd.done, 5000)) TH_LOG("read never returned");
	pthread_join(t, NULL);
	if (restart) {
		EXPECT_EQ(REC, rd.n) TH_LOG("read: %zd (%s) instead of the restarted read's record",
					    rd.n, strerror(rd.err));
		EXPECT_LE(t0 + 500000000ULL, rd.t_ns) TH_LOG("returned before the block came");
	} else {
		EXPECT_EQ(-1, rd.n);
		EXPECT_EQ(EINTR, rd.err);
	}
	sa.sa_handler = SIG_DFL;
	sigaction(SIGUSR1, &sa, NULL);
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	close(fd);
	assert_clean(_metadata, self);
}

TEST_F_TIMEOUT(field, sa_restart, T_TEST)
{
	signal_during_read(_metadata, self, true);
}

TEST_F_TIMEOUT(field, signal_without_restart, T_TEST)
{
	signal_during_read(_metadata, self, false);
}

struct stopper {
	int fd;
	int ret;
	_Atomic int started, done;
};

static void *stopper_main(void *arg)
{
	struct stopper *sp = arg;

	atomic_store(&sp->started, 1);
	sp->ret = fv_ioc(sp->fd, FPGASTREAM_IOC_STOP, NULL);
	atomic_store(&sp->done, 1);
	return NULL;
}

/*
 * O_NONBLOCK read() never sleeps, not even on a lock: while STOP waits
 * 50 ms for a stalled IDLE (EMU_INJECT 4) in another thread, a
 * non-blocking read() on the same file returns at once.
 */
TEST_F_TIMEOUT(field, nonblock_never_sleeps, T_TEST)
{
	struct fpgastream_block r[4];
	int fd, round, quick = 0;
	uint64_t worst = 0;

	for (round = 0; round < 3; round++) {
		struct stopper sp = { 0 };
		pthread_t t;
		uint64_t t0, dt;
		ssize_t n;

		fd = open_mapped(self, O_NONBLOCK);
		ASSERT_LE(0, fd);
		fv_wr(&self->d, R_EMU_RATE, 100);
		ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
		fv_wr(&self->d, R_EMU_INJECT, INJECT_IDLE_STALL);
		sp.fd = fd;
		ASSERT_EQ(0, pthread_create(&t, NULL, stopper_main, &sp));
		ASSERT_TRUE(wait_flag(&sp.started, 2000));
		fv_sleep_ms(10);	/* STOP is now waiting for IDLE */
		t0 = fv_now_ns();
		n = read(fd, r, sizeof(r));
		dt = fv_now_ns() - t0;
		ASSERT_TRUE(wait_flag(&sp.done, 5000));
		pthread_join(t, NULL);
		EXPECT_EQ(0, sp.ret);
		if (n < 0)
			EXPECT_EQ(EAGAIN, errno) TH_LOG("read: %s", strerror(errno));
		worst = dt > worst ? dt : worst;
		quick += dt < 20000000ULL;
		ksft_print_msg("round %d: non-blocking read returned %zd after %.1f ms%s\n", round,
			       n, dt / 1e6, sp.done ? "" : " (STOP still running)");
		close(fd);
	}
	EXPECT_LT(0, quick) TH_LOG("every non-blocking read waited (the longest %.1f ms) for STOP's lock",
				   worst / 1e6);
	assert_clean(_metadata, self);
}

/*
 * START with a coalescing count the ring can never reach and no
 * coalescing time: with flow control the board stops after 32 blocks and
 * never counts to 100000. A blocking read (or poll) must still be told of
 * the completed blocks, within 10 ms by the contract.
 */
static void coalesce_beyond_ring(struct __test_metadata *_metadata, FIXTURE_DATA(field) *self,
				 bool use_poll)
{
	struct reader rd = { .max = 64 };
	pthread_t t;
	uint64_t t0;
	int fd;

	fd = open_mapped(self, 0);
	ASSERT_LE(0, fd);
	/* Slow enough that read() and poll() wait before the first block. */
	fv_wr(&self->d, R_EMU_RATE, 4);
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 100000, 0));
	t0 = fv_now_ns();
	if (use_poll) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ret = poll(&p, 1, ANNOUNCE_MS + 500);

		EXPECT_EQ(1, ret) TH_LOG("poll: no record within %d ms of the first block",
					 ANNOUNCE_MS);
		EXPECT_TRUE(p.revents & POLLIN);
		ksft_print_msg("poll reported after %.1f ms\n", (fv_now_ns() - t0) / 1e6);
	} else {
		rd.fd = fd;
		ASSERT_EQ(0, pthread_create(&t, NULL, reader_main, &rd));
		EXPECT_TRUE(wait_flag(&rd.done, ANNOUNCE_MS + 500))
			TH_LOG("read: no record within %d ms of the first block", ANNOUNCE_MS);
		if (!atomic_load(&rd.done))
			fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);	/* wakes it */
		pthread_join(t, NULL);
		EXPECT_LT(0, rd.n) TH_LOG("read: %s", strerror(rd.err));
		if (rd.n > 0) {
			EXPECT_EQ(0, rd.r[0].seq);
			EXPECT_TRUE(fv_block_ok(self->b, 0, self->d.seed));
		}
		ksft_print_msg("read returned %zd records after %.1f ms\n",
			       rd.n > 0 ? rd.n / (ssize_t)REC : rd.n, (rd.t_ns - t0) / 1e6);
	}
	fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
	close(fd);
	assert_clean(_metadata, self);
}

TEST_F_TIMEOUT(field, coalesce_beyond_ring_read, T_TEST)
{
	coalesce_beyond_ring(_metadata, self, false);
}

TEST_F_TIMEOUT(field, coalesce_beyond_ring_poll, T_TEST)
{
	coalesce_beyond_ring(_metadata, self, true);
}

/*
 * A count the ring can reach, but the program holds 24 of 32 blocks: the
 * board then writes 8 more and stops, short of the count of 24 that would
 * interrupt. Those 8 must still be announced.
 */
TEST_F_TIMEOUT(field, held_blocks_announced, T_TEST)
{
	struct reader rd = { .max = 64 };
	struct fpgastream_block r[24];
	size_t got = 0;
	pthread_t t;
	long n;
	int fd;

	fd = open_mapped(self, 0);
	ASSERT_LE(0, fd);
	fv_wr(&self->d, R_EMU_RATE, 200);
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 24, 0));
	while (got < 24) {
		n = fv_records(fd, r + got, 24 - got, WAIT_MS);
		ASSERT_LT(0, n) TH_LOG("after %zu records: %s", got, strerror(-n));
		got += n;
	}
	/* From here one block every 250 ms: the reader waits before each. */
	fv_wr(&self->d, R_EMU_RATE, 4);
	/* Hold all 24: read the next ones from a blocking read(). */
	rd.fd = fd;
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_main, &rd));
	EXPECT_TRUE(wait_flag(&rd.done, ANNOUNCE_MS + 500))
		TH_LOG("read: blocks 24.. completed but not announced within %d ms", ANNOUNCE_MS);
	if (!atomic_load(&rd.done))
		fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
	pthread_join(t, NULL);
	EXPECT_LT(0, rd.n) TH_LOG("read: %s", strerror(rd.err));
	if (rd.n > 0)
		EXPECT_EQ(24, rd.r[0].seq);
	fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
	close(fd);
	assert_clean(_metadata, self);
}

/* ------------------------------------------------------- userfaultfd */

/* A userfaultfd over [p, p + len) whose faults nobody answers; -errno. */
static int uffd_trap(void *p, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0)
		return -errno;
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		int err = -errno;

		close(uffd);
		return err;
	}
	return uffd;
}

/* Wait until the trap reports a fault (the stalled call reached it). */
static bool uffd_wait_fault(int uffd, unsigned int ms)
{
	struct pollfd p = { .fd = uffd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* Answer every fault of the trap with zero pages, then close it. */
static void uffd_release(int uffd, void *p, size_t len)
{
	struct uffdio_zeropage z = {
		.range = { .start = (uintptr_t)p, .len = len },
	};

	ioctl(uffd, UFFDIO_ZEROPAGE, &z);
	close(uffd);
}

struct side_call {
	int what;		/* 0 poll, 1 sysfs state, 2 INFO on a new file, 3 unbind */
	FIXTURE_DATA(field) *self;
	int fd;
	int ret;
	char text[64];
	_Atomic int done;
};

static void *side_main(void *arg)
{
	struct side_call *sc = arg;
	struct fv_dev *d = &sc->self->d;
	char path[PATH_MAX];
	struct fpgastream_info info;
	int fd;

	switch (sc->what) {
	case 0:
		sc->ret = fv_poll_now(sc->fd);
		break;
	case 1:
		snprintf(path, sizeof(path), "/sys/class/fpgastream/%s/state",
			 strrchr(d->node, '/') + 1);
		sc->ret = fv_read_text(path, sc->text, sizeof(sc->text));
		break;
	case 2:
		fd = fv_open(d, 0);
		sc->ret = fd < 0 ? -errno : fv_ioc(fd, FPGASTREAM_IOC_INFO, &info);
		if (fd >= 0)
			close(fd);
		break;
	case 3:
		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/unbind", d->driver);
		sc->ret = fv_write_text(path, d->bdf);
		break;
	}
	atomic_store(&sc->done, 1);
	return NULL;
}

static const char *const side_names[] = {
	"poll()", "sysfs state", "INFO on another file", "remove() (unbind)",
};

/*
 * Run each side call in a thread while a call of the test is stalled in a
 * userfaultfd fault; each must finish within 2 s. The last one unbinds
 * the driver; it binds again at the end. Returns the calls that finished.
 */
static int side_calls(struct __test_metadata *_metadata, FIXTURE_DATA(field) *self, int fd,
		      struct side_call *sc, pthread_t *t)
{
	int i, finished = 0;

	for (i = 0; i < 4; i++) {
		sc[i] = (struct side_call){ .what = i, .self = self, .fd = fd };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, side_main, &sc[i])) {
			return finished;
		}
		if (wait_flag(&sc[i].done, 2000))
			finished++;
		else
			TH_LOG("%s blocked behind the stalled call", side_names[i]);
		EXPECT_TRUE(atomic_load(&sc[i].done));
	}
	EXPECT_LE(0, sc[0].ret);
	EXPECT_EQ(0, sc[2].ret) TH_LOG("INFO: %s", strerror(-sc[2].ret));
	EXPECT_EQ(0, sc[3].ret) TH_LOG("unbind: %s", strerror(-sc[3].ret));
	return finished;
}

/* Bind the board again after a test unbound it; its node may change. */
static void rebind(struct __test_metadata *_metadata, FIXTURE_DATA(field) *self,
		   struct side_call *sc, pthread_t *t)
{
	char path[PATH_MAX], node[96];
	int i, k;

	for (i = 0; i < 4; i++) {
		if (!wait_flag(&sc[i].done, WAIT_MS))
			TH_LOG("%s still blocked after the fault was answered", side_names[i]);
		pthread_join(t[i], NULL);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/bind", self->d.driver);
	ASSERT_EQ(0, fv_write_text(path, self->d.bdf));
	for (k = 0; k < 500 && fv_find_node(self->d.bdf, node, sizeof(node)); k++)
		fv_sleep_ms(10);
	ASSERT_EQ(0, fv_find_node(self->d.bdf, node, sizeof(node)));
	snprintf(self->d.node, sizeof(self->d.node), "%s", node);
}

struct reader_uffd {
	int fd;
	void *buf;
	ssize_t n;
	int err;
	_Atomic int done;
};

static void *reader_uffd_main(void *arg)
{
	struct reader_uffd *r = arg;

	r->n = read(r->fd, r->buf, 8 * REC);
	r->err = r->n < 0 ? errno : 0;
	atomic_store(&r->done, 1);
	return NULL;
}

/*
 * read() into a buffer registered with userfaultfd, whose fault is never
 * answered while the test runs: the reader is stuck in the kernel copying
 * records out. poll(), sysfs, INFO and remove() must go on. Once the fault
 * is answered the reader returns (records or ENODEV), and nothing stays
 * pinned.
 */
TEST_F_TIMEOUT(field, uffd_read_stall, T_TEST)
{
	struct reader_uffd ru = { 0 };
	struct side_call sc[4];
	pthread_t t[4], tr;
	size_t len = 4096;
	void *buf;
	int fd, uffd, finished;

	fd = open_mapped(self, 0);
	ASSERT_LE(0, fd);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	uffd = uffd_trap(buf, len);
	if (uffd < 0)
		SKIP({ close(fd); munmap(buf, len); return; }, "userfaultfd: %s", strerror(-uffd));
	fv_wr(&self->d, R_EMU_BURST, 8);
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	ASSERT_TRUE(fv_wait_wr_count(&self->d, 8));

	ru.fd = fd;
	ru.buf = buf;
	ASSERT_EQ(0, pthread_create(&tr, NULL, reader_uffd_main, &ru));
	ASSERT_TRUE(uffd_wait_fault(uffd, 5000)) TH_LOG("read() did not reach the trapped buffer");
	fv_sleep_ms(50);
	EXPECT_FALSE(atomic_load(&ru.done));

	finished = side_calls(_metadata, self, fd, sc, t);
	ksft_print_msg("%d of 4 calls finished while read() was stalled\n", finished);
	EXPECT_EQ(4, finished);

	uffd_release(uffd, buf, len);
	EXPECT_TRUE(wait_flag(&ru.done, WAIT_MS)) TH_LOG("read() still stalled after the answer");
	pthread_join(tr, NULL);
	ksft_print_msg("the stalled read() returned %zd (%s)\n", ru.n, strerror(ru.err));
	/* The board is gone: the stalled round is void, not returned. */
	EXPECT_EQ(-1, ru.n);
	EXPECT_EQ(ENODEV, ru.err);
	close(fd);
	munmap(buf, len);
	rebind(_metadata, self, sc, t);
	assert_clean(_metadata, self);
}

struct mapper_uffd {
	int fd;
	void *buf;
	int ret;
	_Atomic int done;
};

static void *mapper_uffd_main(void *arg)
{
	struct mapper_uffd *m = arg;

	m->ret = fv_map(m->fd, m->buf, HUGE_2M, 0);
	atomic_store(&m->done, 1);
	return NULL;
}

/*
 * MAP of a buffer registered with userfaultfd: pinning stalls in the
 * fault. poll(), sysfs, INFO and remove() must go on; once the fault is
 * answered MAP fails with ENODEV (the board is gone) and nothing stays
 * pinned or charged.
 */
TEST_F_TIMEOUT(field, uffd_map_stall, T_TEST)
{
	struct mapper_uffd mu = { 0 };
	struct side_call sc[4];
	pthread_t t[4], tm;
	void *buf;
	int fd, uffd, finished;

	fd = fv_open(&self->d, 0);
	ASSERT_LE(0, fd);
	/* Anonymous memory, 2 MiB aligned: what userfaultfd traps simply. */
	buf = mmap(NULL, 2 * HUGE_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	mu.buf = (void *)(((uintptr_t)buf + HUGE_2M - 1) & ~(HUGE_2M - 1));
	uffd = uffd_trap(mu.buf, HUGE_2M);
	if (uffd < 0)
		SKIP({ close(fd); munmap(buf, 2 * HUGE_2M); return; }, "userfaultfd: %s",
		     strerror(-uffd));
	mu.fd = fd;
	ASSERT_EQ(0, pthread_create(&tm, NULL, mapper_uffd_main, &mu));
	if (!uffd_wait_fault(uffd, 5000) && wait_flag(&mu.done, 100) && mu.ret == -EFAULT) {
		/*
		 * Before 6.5 a FOLL_LONGTERM pin does not wait for a
		 * userfaultfd: it fails at once, and there is no stall.
		 */
		pthread_join(tm, NULL);
		uffd_release(uffd, mu.buf, HUGE_2M);
		close(fd);
		munmap(buf, 2 * HUGE_2M);
		SKIP(return, "this kernel's long-term pin fails userfaultfd memory at once (EFAULT)");
	}
	ASSERT_FALSE(atomic_load(&mu.done)) TH_LOG("MAP returned %s without reaching the trap",
						   strerror(-mu.ret));
	fv_sleep_ms(50);
	EXPECT_FALSE(atomic_load(&mu.done));

	finished = side_calls(_metadata, self, fd, sc, t);
	ksft_print_msg("%d of 4 calls finished while MAP was stalled\n", finished);
	EXPECT_EQ(4, finished);

	uffd_release(uffd, mu.buf, HUGE_2M);
	EXPECT_TRUE(wait_flag(&mu.done, WAIT_MS)) TH_LOG("MAP still stalled after the answer");
	pthread_join(tm, NULL);
	ksft_print_msg("the stalled MAP returned %s\n", strerror(-mu.ret));
	EXPECT_EQ(-ENODEV, mu.ret);
	close(fd);
	munmap(buf, 2 * HUGE_2M);
	rebind(_metadata, self, sc, t);
	assert_clean(_metadata, self);
}

/*
 * Two threads read one file; the first is stalled in a userfaultfd fault
 * while copying its records out. "Reading from another thread" must not
 * leave the second asleep while blocks are ready: it gets them (the first
 * one's round is void), and once the fault is answered the first one
 * reads on without a record repeated or lost between the two.
 */
TEST_F_TIMEOUT(field, reader_behind_stalled_reader, T_TEST)
{
	struct reader_uffd ru = { 0 };
	struct reader rd = { .max = 64 };
	struct fpgastream_block r[64];
	uint64_t next = 0;
	pthread_t tr, t2;
	size_t len = 4096;
	void *buf;
	int fd, uffd, i;
	long n;

	fd = open_mapped(self, 0);
	ASSERT_LE(0, fd);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	uffd = uffd_trap(buf, len);
	if (uffd < 0)
		SKIP({ close(fd); munmap(buf, len); return; }, "userfaultfd: %s", strerror(-uffd));
	fv_wr(&self->d, R_EMU_BURST, 24);
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	ASSERT_TRUE(fv_wait_wr_count(&self->d, 24));
	ru.fd = fd;
	ru.buf = buf;
	ASSERT_EQ(0, pthread_create(&tr, NULL, reader_uffd_main, &ru));
	ASSERT_TRUE(uffd_wait_fault(uffd, 5000)) TH_LOG("read() did not reach the trapped buffer");

	rd.fd = fd;
	ASSERT_EQ(0, pthread_create(&t2, NULL, reader_main, &rd));
	EXPECT_TRUE(wait_flag(&rd.done, ANNOUNCE_MS))
		TH_LOG("the second reader sleeps behind the stalled one");
	if (!atomic_load(&rd.done))
		fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
	pthread_join(t2, NULL);
	ASSERT_LT(0, rd.n) TH_LOG("second reader: %s", strerror(rd.err));
	for (i = 0; i < rd.n / (ssize_t)REC; i++, next++) {
		EXPECT_EQ(next, rd.r[i].seq);
		EXPECT_TRUE(fv_block_ok(self->b + rd.r[i].offset, rd.r[i].seq, self->d.seed));
	}
	ksft_print_msg("the second reader got %zd records while the first was stalled\n",
		       rd.n / (ssize_t)REC);

	/* Answer the fault; STOP, so that the first reader ends too. */
	uffd_release(uffd, buf, len);
	fv_sleep_ms(200);
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	EXPECT_TRUE(wait_flag(&ru.done, WAIT_MS)) TH_LOG("the first reader still stalled");
	pthread_join(tr, NULL);
	/* What the first one got follows what the second got, then the rest. */
	EXPECT_LE(0, ru.n) TH_LOG("first reader: %s", strerror(ru.err));
	if (ru.n > 0) {
		const struct fpgastream_block *x = buf;

		for (i = 0; i < ru.n / (ssize_t)REC; i++, next++)
			EXPECT_EQ(next, x[i].seq) TH_LOG("first reader's record %d", i);
	}
	while ((n = fv_records(fd, r, 64, WAIT_MS)) > 0)
		for (i = 0; i < n; i++, next++)
			EXPECT_EQ(next, r[i].seq);
	EXPECT_EQ(0, n) TH_LOG("after the records: %s", strerror(-n));
	EXPECT_EQ(24, next) TH_LOG("records repeated or lost between the readers");
	close(fd);
	munmap(buf, len);
	assert_clean(_metadata, self);
}

/*
 * Overwrite mode on a one-block ring: its only slot is always the one the
 * board may be writing, so no record could ever be safe. START says so
 * (EINVAL) rather than leave a reader waiting for nothing; flow control on
 * the same ring streams.
 */
TEST_F_TIMEOUT(field, overwrite_one_block_refused, T_TEST)
{
	struct fpgastream_block r[2];
	int fd = fv_open(&self->d, 0);
	long n;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fv_map(fd, self->b, BLOCK, 0));
	EXPECT_EQ(-EINVAL, start_with(fd, 0, 1, 0));
	fv_wr(&self->d, R_EMU_BURST, 3);
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	for (int i = 0; i < 3; i++) {
		n = fv_records(fd, r, 2, WAIT_MS);
		ASSERT_EQ(1, n) TH_LOG("record %d: %s", i, strerror(-n));
		EXPECT_EQ((uint64_t)i, r[0].seq);
		EXPECT_EQ(0, r[0].offset);
		EXPECT_TRUE(fv_block_ok(self->b, i, self->d.seed));
		ASSERT_EQ(0, fv_release(fd, 1));
	}
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	close(fd);
	assert_clean(_metadata, self);
}

/* PCI_COMMAND's Bus Master Enable, read from config space; -1: unknown. */
static int bus_master_on(const struct fv_dev *d)
{
	char path[128];
	uint16_t cmd;
	int fd, n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", d->bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = pread(fd, &cmd, sizeof(cmd), 4);
	close(fd);
	return n == sizeof(cmd) ? !!(cmd & 0x4) : -1;
}

/* Kernel log lines since @fd was opened at its end, that contain @what. */
static int kmsg_count(int fd, const char *what)
{
	char rec[2048];
	int n = 0;
	ssize_t len;

	while ((len = read(fd, rec, sizeof(rec) - 1)) > 0 || (len < 0 && errno == EPIPE)) {
		if (len <= 0)
			continue;
		rec[len] = 0;
		if (strstr(rec, what))
			n++;
	}
	return n;
}

/*
 * An engine that never goes idle, not even after a soft reset or a reset
 * of the board (EMU_INJECT 64): STOP gives EIO; the driver switches bus
 * mastering off, then frees the buffer (nothing stays pinned or charged),
 * with one kernel line; MAP answers EIO while the engine is not idle, and
 * the board works again, bus mastering on, once it is.
 */
TEST_F_TIMEOUT(field, wedged_engine, T_TEST)
{
	struct fpgastream_block r[8];
	int fd, kmsg, ret;
	long n;

	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ASSERT_LE(0, kmsg);
	lseek(kmsg, 0, SEEK_END);
	fd = open_mapped(self, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	n = fv_records(fd, r, 8, WAIT_MS);
	ASSERT_LT(0, n) TH_LOG("no record before the wedge: %s", strerror(-n));
	EXPECT_TRUE(fv_block_ok(self->b + r[0].offset, r[0].seq, self->d.seed));
	EXPECT_EQ(1, bus_master_on(&self->d));

	fv_wr(&self->d, R_EMU_INJECT, INJECT_WEDGE);
	ret = fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
	EXPECT_EQ(-EIO, ret) TH_LOG("STOP of an engine that never goes idle: %s", strerror(-ret));
	/* Until then the board might still write: mastering must be off. */
	EXPECT_EQ(0, bus_master_on(&self->d)) TH_LOG("bus mastering still on");
	ret = fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
	EXPECT_EQ(0, ret) TH_LOG("UNMAP: %s", strerror(-ret));
	EXPECT_TRUE(fv_pins_quiet(5000));
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("the wedged board's buffer is still pinned");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("its charge was not returned");
	EXPECT_EQ(1, kmsg_count(kmsg, "bus mastering switched off, buffer released"))
		TH_LOG("one kernel line says what happened");
	EXPECT_EQ(0, bus_master_on(&self->d));

	ret = fv_map(fd, self->b, HUGE_2M, 0);
	EXPECT_EQ(-EIO, ret) TH_LOG("MAP while the engine is not idle: %s", strerror(-ret));
	EXPECT_EQ(0, fv_pins_held(self->p0));

	fv_wr(&self->d, R_EMU_INJECT, INJECT_UNWEDGE);
	ret = fv_map(fd, self->b, HUGE_2M, 0);
	ASSERT_EQ(0, ret) TH_LOG("MAP once the engine is idle again: %s", strerror(-ret));
	EXPECT_EQ(1, bus_master_on(&self->d)) TH_LOG("bus mastering not back on");
	ASSERT_EQ(0, start_with(fd, FPGASTREAM_START_FLOW_CONTROL, 1, 0));
	n = fv_records(fd, r, 8, WAIT_MS);
	ASSERT_LT(0, n) TH_LOG("no record after the wedge: %s", strerror(-n));
	EXPECT_EQ(0, r[0].seq);
	EXPECT_TRUE(fv_block_ok(self->b + r[0].offset, r[0].seq, self->d.seed));
	ASSERT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	close(fd);
	close(kmsg);
	assert_clean(_metadata, self);
}

FSTR_HARNESS_MAIN
