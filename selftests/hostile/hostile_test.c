// SPDX-License-Identifier: GPL-2.0-only
/*
 * Hostile programs (VM selftest): the races real programs produce against
 * the fpgastream module, each with no fault and with a board fault injected
 * in the middle of it (variants dma_error, lut_fault, idle_stall):
 *
 *   close_while_reader_blocks   close() in one thread, read() blocked in another
 *   munmap_while_streaming      the buffer leaves the address space mid-stream
 *   fork_while_streaming        the child neither sees nor breaks the stream
 *   exec_keep_fd, exec_cloexec  exec while mapped, the file kept or closed
 *   shared_fd_two_processes     two processes read and release one file
 *   unbind_reader_and_mapper    unbind with a blocked reader and a mapper
 *
 * Each checks the errno the contract gives, that nothing hangs (watchdog),
 * that no DMA lands after the end, and that every pin and every byte of
 * locked-memory charge comes back.  See README.md.
 */
#define _GNU_SOURCE
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
#define RING		(4ULL << 20)
#define RING_BLOCKS	(RING / BLOCK)

static void on_signal(int sig)
{
	(void)sig;
}

FIXTURE(race) {
	struct fv_dev d;
	struct fv_pins p0;
	long long lk0;
};

FIXTURE_VARIANT(race) {
	uint32_t inject;	/* EMU_INJECT bit armed during the race, or 0 */
};

FIXTURE_VARIANT_ADD(race, no_fault) { .inject = 0 };
FIXTURE_VARIANT_ADD(race, dma_error) { .inject = INJECT_DMA_ERROR };
FIXTURE_VARIANT_ADD(race, lut_fault) { .inject = INJECT_LUT_FAULT };
FIXTURE_VARIANT_ADD(race, idle_stall) { .inject = INJECT_IDLE_STALL };

FIXTURE_SETUP(race)
{
	struct sigaction sa = { .sa_handler = on_signal };
	const char *why = fv_setup(&self->d);

	if (why)
		SKIP({ fflush(NULL); _exit(255); }, "%s", why);
	/* Signals interrupt blocked calls: no SA_RESTART. */
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	fv_pins_quiet(60000);
	self->p0 = fv_pin_counts();
	ASSERT_LE(0, self->p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	self->lk0 = fv_locked_kb();
}

FIXTURE_TEARDOWN(race)
{
	fv_teardown(&self->d);
}

/* Is the fault of this variant one that stops the stream (-EIO)? */
static bool stops_stream(uint32_t inject)
{
	return inject & (INJECT_DMA_ERROR | INJECT_LUT_FAULT);
}

static void assert_clean(struct __test_metadata *_metadata, FIXTURE_DATA(race) *self)
{
	char why[256];

	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
	EXPECT_EQ(0, fv_board_works(&self->d, 8, why, sizeof(why)))
		TH_LOG("the board does not stream after the race: %s", why);
	EXPECT_EQ(0, fv_pins_held(self->p0));
}

/* The buffer stays untouched for 200 ms: the board has stopped writing. */
static void assert_no_late_dma(struct __test_metadata *_metadata, uint8_t *b, size_t len)
{
	size_t off;

	memset(b, 0x5a, len);
	fv_sleep_ms(200);
	off = fv_first_written(b, len);
	EXPECT_EQ(len, off) TH_LOG("the board wrote at offset %#zx after the end", off);
}

static bool wait_flag(_Atomic int *flag, unsigned int ms)
{
	while (!atomic_load(flag) && ms) {
		fv_sleep_ms(10);
		ms = ms > 10 ? ms - 10 : 0;
	}
	return atomic_load(flag);
}

/* Open, map @len of @b and start a flow-controlled stream of @burst blocks
 * (0: endless). */
static int stream_on(struct __test_metadata *_metadata, FIXTURE_DATA(race) *self,
		     uint8_t *b, size_t len, uint32_t burst, int oflags)
{
	int fd = fv_open(&self->d, oflags);

	EXPECT_LE(0, fd) TH_LOG("open: %s", strerror(errno));
	if (fd < 0)
		return -1;
	fv_wr(&self->d, R_EMU_BURST, burst);
	EXPECT_EQ(0, fv_map(fd, b, len, 0));
	EXPECT_EQ(0, fv_start(fd, FPGASTREAM_START_FLOW_CONTROL));
	return fd;
}

/* Read and release until @n records, checking seq and data.  Returns the
 * count read or -errno. */
static long take(int fd, const uint8_t *b, uint64_t *next, uint64_t n, uint64_t seed,
		 uint64_t nr_blocks, bool check_data)
{
	struct fpgastream_block r[16];
	uint64_t got = 0;
	long k, i;

	while (got < n) {
		k = fv_records(fd, r, n - got < 16 ? n - got : 16, WAIT_MS);
		if (k <= 0)
			return k ? k : -ENODATA;
		for (i = 0; i < k; i++) {
			if (r[i].seq != *next || r[i].offset != (*next % nr_blocks) * BLOCK)
				return -EPROTO;
			if (check_data && !fv_block_ok(b + r[i].offset, *next, seed))
				return -EBADMSG;
			(*next)++;
		}
		if (fv_release(fd, k))
			return -errno;
		got += k;
	}
	return got;
}

/* ------------------------------------------------ close vs. blocked read */

struct reader {
	int fd;
	_Atomic int done;
	long ret;
	int err;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct fpgastream_block r[4];

	rd->ret = read(rd->fd, r, sizeof(r));
	rd->err = errno;
	atomic_store(&rd->done, 1);
	return NULL;
}

/*
 * close() does not end a read() in progress: the file lives until the read
 * returns (data, -EIO on a fault, -EINTR on a signal), and only then is the
 * mapping torn down — with no DMA after and every pin back.
 */
TEST_F_TIMEOUT(race, close_while_reader_blocks, T_TEST)
{
	struct reader rd = { 0 };
	uint64_t next = 0;
	pthread_t t;
	uint8_t *b = fv_huge(HUGE_2M, false);
	int fd;

	ASSERT_NE(NULL, b);
	fd = stream_on(_metadata, self, b, HUGE_2M, 4, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(4, take(fd, b, &next, 4, self->d.seed, 32, true));
	/* Running, source exhausted: this read blocks. */
	rd.fd = fd;
	ASSERT_EQ(0, pthread_create(&t, NULL, reader_main, &rd));
	fv_sleep_ms(200);
	ASSERT_FALSE(atomic_load(&rd.done)) TH_LOG("read returned %ld (%s) instead of blocking",
						 rd.ret, strerror(rd.err));
	EXPECT_EQ(0, close(fd));
	fv_sleep_ms(100);

	if (stops_stream(variant->inject)) {
		fv_wr(&self->d, R_EMU_INJECT, variant->inject);
		fv_wr(&self->d, R_EMU_BURST, 8);
	} else if (variant->inject) {
		/* The stall makes the teardown after the read wait for IDLE. */
		fv_wr(&self->d, R_EMU_INJECT, variant->inject);
		pthread_kill(t, SIGUSR1);
	} else {
		fv_wr(&self->d, R_EMU_BURST, 8);
	}
	ASSERT_TRUE(wait_flag(&rd.done, WAIT_MS)) TH_LOG("the reader never returned");
	pthread_join(t, NULL);
	if (stops_stream(variant->inject)) {
		EXPECT_EQ(-1, rd.ret);
		EXPECT_EQ(EIO, rd.err) TH_LOG("read after the fault: %s", strerror(rd.err));
	} else if (variant->inject) {
		EXPECT_EQ(-1, rd.ret);
		EXPECT_EQ(EINTR, rd.err) TH_LOG("read after a signal: %s", strerror(rd.err));
	} else {
		EXPECT_LT(0, rd.ret) TH_LOG("read: %s", strerror(rd.err));
		EXPECT_EQ(0, rd.ret % REC);
	}
	/* The read held the last reference: its return released the file. */
	assert_no_late_dma(_metadata, b, HUGE_2M);
	munmap(b, HUGE_2M);
	assert_clean(_metadata, self);
}

/* ------------------------------------------------ munmap while streaming */

struct pump {
	int fd;
	_Atomic int stop;
	_Atomic uint64_t records;
	uint64_t next;
	int end;		/* 0: end of stream; errno otherwise */
	bool misordered;
};

/* Consume and release until the stream ends; the data is not looked at
 * (the buffer may be gone from the address space). */
static void *pump_main(void *arg)
{
	struct pump *pu = arg;
	struct fpgastream_block r[32];
	long n, i;

	for (;;) {
		n = fv_records(pu->fd, r, 32, WAIT_MS);
		if (n <= 0) {
			pu->end = n ? (int)-n : 0;
			break;
		}
		for (i = 0; i < n; i++)
			if (r[i].seq != pu->next++)
				pu->misordered = true;
		atomic_fetch_add(&pu->records, n);
		if (fv_release(pu->fd, n)) {
			pu->end = errno;
			break;
		}
	}
	return NULL;
}

static bool wait_records(_Atomic uint64_t *c, uint64_t n)
{
	uint64_t end = fv_now_ns() + WAIT_MS * 1000000ULL;

	while (atomic_load(c) < n && fv_now_ns() < end)
		fv_sleep_ms(5);
	return atomic_load(c) >= n;
}

/*
 * munmap of the buffer while the board writes it: the pages stay pinned
 * (the board goes on; nothing lands in freed memory) until UNMAP, which
 * gives every pin and the whole charge back.
 */
TEST_F_TIMEOUT(race, munmap_while_streaming, T_TEST)
{
	struct pump pu = { 0 };
	pthread_t t;
	uint8_t *b = fv_huge(RING, false);
	uint64_t at;
	int fd;

	ASSERT_NE(NULL, b);
	fd = stream_on(_metadata, self, b, RING, 0, 0);
	ASSERT_LE(0, fd);
	pu.fd = fd;
	ASSERT_EQ(0, pthread_create(&t, NULL, pump_main, &pu));
	ASSERT_TRUE(wait_records(&pu.records, 40));
	ASSERT_EQ(0, munmap(b, RING));
	at = atomic_load(&pu.records);
	EXPECT_LE((long long)(RING / 4096), fv_pins_held(self->p0))
		TH_LOG("munmap unpinned pages the board still writes");

	if (stops_stream(variant->inject)) {
		fv_wr(&self->d, R_EMU_INJECT, variant->inject);
	} else {
		/* Twice around the ring after the munmap, then stop. */
		EXPECT_TRUE(wait_records(&pu.records, at + 2 * RING_BLOCKS))
			TH_LOG("the stream stalled after munmap: %ju records",
			       (uintmax_t)atomic_load(&pu.records));
		if (variant->inject)
			fv_wr(&self->d, R_EMU_INJECT, variant->inject);
		EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	}
	pthread_join(t, NULL);
	ksft_print_msg("%ju records, %ju after munmap, then %s\n",
		       (uintmax_t)pu.records, (uintmax_t)(pu.records - at),
		       pu.end ? strerror(pu.end) : "end of stream");
	EXPECT_FALSE(pu.misordered) TH_LOG("records out of sequence");
	EXPECT_EQ(stops_stream(variant->inject) ? EIO : 0, pu.end);
	EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("UNMAP left pages pinned");
	EXPECT_EQ(0, close(fd));
	assert_clean(_metadata, self);
}

/* -------------------------------------------------- fork while streaming */

/*
 * A private hugepage buffer streams; the process forks.  The pinned pages
 * stay the parent's (fork copies them for the child, it does not share
 * them copy-on-write), so the child sees none of the stream in its copy and
 * its writes to the copy never reach the parent's data; its exit (closing
 * its copy of the file) does not stop the stream.
 */
TEST_F_TIMEOUT(race, fork_while_streaming, T_TEST)
{
	uint8_t *b = fv_huge(HUGE_2M, true);
	uint64_t next = 0;
	int fd, status, go[2];
	long n;
	pid_t pid;
	char c;

	ASSERT_NE(NULL, b);
	fd = stream_on(_metadata, self, b, HUGE_2M, 0, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(40, take(fd, b, &next, 40, self->d.seed, 32, true));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Overwrite our copy, let the parent stream a while, and
		 * check that not a byte of the stream showed up in it. */
		size_t off;

		close(go[1]);
		memset(b, 0x77, HUGE_2M);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		for (off = 0; off < HUGE_2M; off++)
			if (b[off] != 0x77)
				_exit(2);
		_exit(0);
	}
	close(go[0]);
	/* Three times around the ring while the child lives. */
	n = take(fd, b, &next, 96, self->d.seed, 32, true);
	EXPECT_EQ(96, n) TH_LOG("stream after fork: %s (at seq %ju)",
				n == -EBADMSG ? "wrong data: the child got the DMA pages?" :
				strerror(-n), (uintmax_t)next);
	if (variant->inject)
		fv_wr(&self->d, R_EMU_INJECT, variant->inject);
	ASSERT_EQ(1, write(go[1], "g", 1));
	close(go[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child: %s", WIFEXITED(status) && WEXITSTATUS(status) == 2 ?
		       "the stream showed up in its copy of the buffer" : "failed");
	}
	/* The child's exit closed its copy of the file: the stream goes on. */
	n = take(fd, b, &next, 40, self->d.seed, 32, true);
	if (stops_stream(variant->inject)) {
		EXPECT_EQ(-EIO, n) TH_LOG("after the fault: %ld", n);
	} else {
		EXPECT_EQ(40, n) TH_LOG("stream after the child's exit: %s",
					strerror(n < 0 ? -n : 0));
	}
	EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	EXPECT_EQ(0, close(fd));
	assert_no_late_dma(_metadata, b, HUGE_2M);
	munmap(b, HUGE_2M);
	assert_clean(_metadata, self);
}

/* --------------------------------------------------------- exec while mapped */

static const char *self_exe = "/proc/self/exe";

/*
 * The child maps, starts a stream of 8 blocks and execs this program with
 * --exec-child (see exec_child()); its exit status says what went wrong.
 */
static void exec_case(struct __test_metadata *_metadata, FIXTURE_DATA(race) *self,
		      uint32_t inject, bool cloexec)
{
	static const char *const step[] = {
		"ok", "setup before exec", "fd state after exec", "VmLck/VmPin of the new image",
		"pins after exec", "read after exec", "UNMAP after exec", "pins after UNMAP",
		"charge of the new image after UNMAP", "close",
	};
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char a_fd[16], a_acq[32], a_rel[32], a_inj[16], a_cx[4];
		uint8_t *b = fv_huge(HUGE_2M, false);
		int fd = fv_open(&self->d, 0);	/* O_CLOEXEC */

		if (!b || fd < 0)
			_exit(1);
		if (!cloexec && fcntl(fd, F_SETFD, 0))
			_exit(1);
		fv_wr(&self->d, R_EMU_BURST, 8);
		if (fv_map(fd, b, HUGE_2M, 0))
			_exit(1);
		if (inject)
			fv_wr(&self->d, R_EMU_INJECT, inject);
		if (fv_start(fd, FPGASTREAM_START_FLOW_CONTROL))
			_exit(1);
		snprintf(a_fd, sizeof(a_fd), "%d", fd);
		snprintf(a_acq, sizeof(a_acq), "%lld", self->p0.acquired);
		snprintf(a_rel, sizeof(a_rel), "%lld", self->p0.released);
		snprintf(a_inj, sizeof(a_inj), "%u", inject);
		snprintf(a_cx, sizeof(a_cx), "%d", cloexec);
		execl(self_exe, "hostile_test", "--exec-child", a_fd, a_acq, a_rel, a_inj,
		      a_cx, (char *)NULL);
		_exit(1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("the exec'd child died of signal %d",
					      WTERMSIG(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) {
		int s = WEXITSTATUS(status);

		TH_LOG("exec'd child failed at: %s", s < 10 ? step[s] : "?");
	}
	assert_clean(_metadata, self);
}

/* The file survives exec (no O_CLOEXEC): the new image streams and unmaps;
 * the charge stays with the old image's mm, never the new one. */
TEST_F_TIMEOUT(race, exec_keep_fd, T_TEST)
{
	exec_case(_metadata, self, variant->inject, false);
}

/* O_CLOEXEC: exec closes the file in the middle of replacing the mm. */
TEST_F_TIMEOUT(race, exec_cloexec, T_TEST)
{
	exec_case(_metadata, self, variant->inject, true);
}

/* Runs as the image exec'd by exec_case(); returns the failed step. */
static int exec_child(char **argv)
{
	struct fv_pins p0 = { atoll(argv[1]), atoll(argv[2]) };
	int fd = atoi(argv[0]);
	uint32_t inject = strtoul(argv[3], NULL, 0);
	bool cloexec = atoi(argv[4]);
	struct fpgastream_block r[8];
	long got = 0, n;

	if (cloexec) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			return 2;
		if (fv_locked_kb() != 0)
			return 3;
		/* exec closed the file: unpinned already. */
		if (fv_pins_held(p0) != 0)
			return 4;
		return 0;
	}
	if (fcntl(fd, F_GETFD) == -1)
		return 2;
	if (fv_locked_kb() != 0)
		return 3;
	if (fv_pins_held(p0) < (long long)(HUGE_2M / 4096))
		return 4;
	while (got < 8) {
		n = fv_records(fd, r, 8, WAIT_MS);
		if (stops_stream(inject)) {
			if (n != -EIO)
				return 5;
			break;
		}
		if (n <= 0)
			return 5;
		if (fv_release(fd, n))
			return 5;
		got += n;
	}
	if (fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL))
		return 6;
	if (fv_pins_held(p0) != 0)
		return 7;
	if (fv_locked_kb() != 0)
		return 8;
	if (close(fd))
		return 9;
	return 0;
}

/* -------------------------------------------- two processes, one file */

/*
 * Room for the records each process logs.  The fault variants arm the
 * fault after about 100 records, but the stream goes on while the parent
 * waits for its next read(): hundreds of blocks on a fast host.
 */
#define SHARE_MAX	8192

struct shared_log {
	_Atomic uint64_t total;
	_Atomic int stop;
	uint64_t n[2];
	uint64_t seq[2][SHARE_MAX];
	int end[2];
	bool overflow;
};

/* Log @n records read by process @who; past SHARE_MAX, flag the overflow. */
static void share_log(struct shared_log *sl, int who,
		      const struct fpgastream_block *r, long n)
{
	long i;

	for (i = 0; i < n; i++) {
		if (sl->n[who] == SHARE_MAX) {
			sl->overflow = true;
			break;
		}
		sl->seq[who][sl->n[who]++] = r[i].seq;
	}
	atomic_fetch_add(&sl->total, n);
}

/* Read and release until the shared total reaches @want or the stream ends. */
static void share_reader(struct shared_log *sl, int who, int fd, uint64_t want)
{
	struct fpgastream_block r[4];
	long n;

	while (atomic_load(&sl->total) < want && !atomic_load(&sl->stop)) {
		n = fv_records(fd, r, 4, 500);
		if (n == -ETIME)
			continue;
		if (n <= 0) {
			sl->end[who] = n ? (int)-n : 0;
			return;
		}
		share_log(sl, who, r, n);
		if (fv_release(fd, n)) {
			sl->end[who] = errno;
			return;
		}
	}
	sl->end[who] = -1;	/* reached the total */
}

/*
 * Parent and child read and release through one file at once: every record
 * goes to exactly one of them, each sees its records in order, and a fault
 * ends both with -EIO.
 */
TEST_F_TIMEOUT(race, shared_fd_two_processes, T_TEST)
{
	struct shared_log *sl;
	uint8_t *b = fv_huge(RING, false);
	static uint8_t seen[SHARE_MAX];
	uint64_t i, total, want = stops_stream(variant->inject) ? 100000 : 300;
	int fd, status, who;
	pid_t pid;

	ASSERT_NE(NULL, b);
	sl = mmap(NULL, sizeof(*sl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, sl);
	memset(sl, 0, sizeof(*sl));
	fd = stream_on(_metadata, self, b, RING, 0, 0);
	ASSERT_LE(0, fd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		share_reader(sl, 1, fd, want);
		_exit(0);
	}
	if (stops_stream(variant->inject)) {
		/* The fault comes after about 100 records. */
		while (atomic_load(&sl->total) < 100) {
			struct fpgastream_block r[4];
			long n = fv_records(fd, r, 4, WAIT_MS);

			ASSERT_LT(0, n);
			share_log(sl, 0, r, n);
			ASSERT_EQ(0, fv_release(fd, n));
		}
		fv_wr(&self->d, R_EMU_INJECT, variant->inject);
	}
	share_reader(sl, 0, fd, want);
	if (!stops_stream(variant->inject)) {
		if (variant->inject)
			fv_wr(&self->d, R_EMU_INJECT, variant->inject);
		EXPECT_EQ(0, fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL));
	}
	/* After a fault the child must find the -EIO itself. */
	if (!stops_stream(variant->inject))
		atomic_store(&sl->stop, 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	total = sl->n[0] + sl->n[1];
	ksft_print_msg("parent %ju records, child %ju; ends: %s / %s\n",
		       (uintmax_t)sl->n[0], (uintmax_t)sl->n[1],
		       sl->end[0] < 0 ? "total reached" : strerror(sl->end[0]),
		       sl->end[1] < 0 ? "total reached" : strerror(sl->end[1]));
	ASSERT_FALSE(sl->overflow) TH_LOG("more than %d records in one process", SHARE_MAX);
	/* Each record exactly once, each process in order. */
	memset(seen, 0, sizeof(seen));
	for (who = 0; who < 2; who++)
		for (i = 0; i < sl->n[who]; i++) {
			uint64_t s = sl->seq[who][i];

			ASSERT_GT(SHARE_MAX, s);
			EXPECT_EQ(0, seen[s]) TH_LOG("seq %ju read twice", (uintmax_t)s);
			seen[s] = 1;
			if (i)
				EXPECT_LT(sl->seq[who][i - 1], s) TH_LOG("process %d: out of order", who);
		}
	for (i = 0; i < total && i < SHARE_MAX; i++)
		EXPECT_EQ(1, seen[i]) TH_LOG("seq %ju never read", (uintmax_t)i);
	if (stops_stream(variant->inject)) {
		EXPECT_EQ(EIO, sl->end[0]) TH_LOG("parent: %s", strerror(sl->end[0]));
		EXPECT_EQ(EIO, sl->end[1]) TH_LOG("child: %s", strerror(sl->end[1]));
	} else {
		EXPECT_LE(want, total);
	}
	EXPECT_EQ(0, close(fd));
	assert_no_late_dma(_metadata, b, RING);
	munmap(b, RING);
	munmap(sl, sizeof(*sl));
	assert_clean(_metadata, self);
}

/* ------------------------------------ unbind: blocked reader and a mapper */

struct mapper {
	int fd;
	uint8_t *b;
	_Atomic int done;
	int end;
	uint64_t maps, busy;
};

/* MAP and UNMAP another file in a loop until the board is gone. */
static void *mapper_main(void *arg)
{
	struct mapper *m = arg;
	int err;

	for (;;) {
		err = fv_map(m->fd, m->b, HUGE_2M, 0);
		if (!err) {
			m->maps++;
			err = fv_ioc(m->fd, FPGASTREAM_IOC_UNMAP, NULL);
		} else if (err == -EBUSY) {
			m->busy++;
			err = 0;
		}
		if (err) {
			m->end = -err;
			break;
		}
	}
	atomic_store(&m->done, 1);
	return NULL;
}

struct loop_reader {
	int fd;
	_Atomic int done;
	int end;
	bool saw_eio;
};

/* Read and release until ENODEV (an EIO from a fault on the way is fine). */
static void *loop_reader_main(void *arg)
{
	struct loop_reader *lr = arg;
	struct fpgastream_block r[8];
	ssize_t n;

	for (;;) {
		n = read(lr->fd, r, sizeof(r));
		if (n > 0) {
			fv_release(lr->fd, n / REC);
			continue;
		}
		lr->end = n ? errno : 0;
		if (n < 0 && errno == EIO) {
			lr->saw_eio = true;
			fv_sleep_ms(5);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	atomic_store(&lr->done, 1);
	return NULL;
}

/*
 * Unbind while one thread blocks in read and another maps a second file:
 * both get ENODEV, nothing hangs, no DMA after, everything unpinned, and
 * the board binds again.
 */
TEST_F_TIMEOUT(race, unbind_reader_and_mapper, T_TEST)
{
	char unbind[PATH_MAX], bind[PATH_MAX], node[96];
	struct loop_reader lr = { 0 };
	struct mapper mp = { 0 };
	uint8_t *b = fv_huge(HUGE_2M, false), *b2 = fv_huge(HUGE_2M, false);
	uint64_t next = 0;
	pthread_t tr, tm;
	int fd, k;

	ASSERT_TRUE(b && b2);
	snprintf(unbind, sizeof(unbind), "/sys/bus/pci/drivers/%s/unbind", self->d.driver);
	snprintf(bind, sizeof(bind), "/sys/bus/pci/drivers/%s/bind", self->d.driver);
	fd = stream_on(_metadata, self, b, HUGE_2M, 4, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(4, take(fd, b, &next, 4, self->d.seed, 32, true));
	lr.fd = fd;
	mp.fd = fv_open(&self->d, 0);
	mp.b = b2;
	ASSERT_LE(0, mp.fd);
	ASSERT_EQ(0, pthread_create(&tr, NULL, loop_reader_main, &lr));
	ASSERT_EQ(0, pthread_create(&tm, NULL, mapper_main, &mp));
	fv_sleep_ms(200);
	if (variant->inject) {
		fv_wr(&self->d, R_EMU_INJECT, variant->inject);
		fv_wr(&self->d, R_EMU_BURST, 8);
		fv_sleep_ms(50);
	}
	ASSERT_EQ(0, fv_write_text(unbind, self->d.bdf));
	ASSERT_TRUE(wait_flag(&lr.done, WAIT_MS)) TH_LOG("the blocked reader was not woken");
	ASSERT_TRUE(wait_flag(&mp.done, WAIT_MS)) TH_LOG("the mapper still runs after unbind");
	pthread_join(tr, NULL);
	pthread_join(tm, NULL);
	ksft_print_msg("reader ended with %s%s; mapper: %ju maps, %ju EBUSY, then %s\n",
		       strerror(lr.end), lr.saw_eio ? " (after EIO)" : "", (uintmax_t)mp.maps,
		       (uintmax_t)mp.busy, strerror(mp.end));
	EXPECT_EQ(ENODEV, lr.end);
	EXPECT_EQ(ENODEV, mp.end);
	EXPECT_EQ(0, close(fd));
	EXPECT_EQ(0, close(mp.fd));
	assert_no_late_dma(_metadata, b, HUGE_2M);
	assert_no_late_dma(_metadata, b2, HUGE_2M);
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pins not released after unbind and close");
	EXPECT_EQ(self->lk0, fv_locked_kb());
	munmap(b, HUGE_2M);
	munmap(b2, HUGE_2M);

	ASSERT_EQ(0, fv_write_text(bind, self->d.bdf));
	for (k = 0; k < 500 && fv_find_node(self->d.bdf, node, sizeof(node)); k++)
		fv_sleep_ms(10);
	ASSERT_EQ(0, fv_find_node(self->d.bdf, node, sizeof(node)));
	snprintf(self->d.node, sizeof(self->d.node), "%s", node);
	/* A stall armed but never consumed (no stop reached the board)
	 * would hit the next test: consume it now. */
	assert_clean(_metadata, self);
}

int main(int argc, char **argv)
{
	int ret;

	if (argc == 7 && !strcmp(argv[1], "--exec-child"))
		return exec_child(argv + 2);
	ret = fstr_harness_select(argc, argv);
	return ret >= 0 ? ret : test_harness_run(argc, argv);
}
