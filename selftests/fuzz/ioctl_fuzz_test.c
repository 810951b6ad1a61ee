// SPDX-License-Identifier: GPL-2.0-only
/*
 * ioctl fuzzer of the fpgastream module (VM selftest).
 *
 * Several threads share several open files of one board and throw at them,
 * in a seeded random order: random ioctl numbers and sizes, the real ioctls
 * with random and boundary fields (addresses NULL, kernel, unmapped,
 * PROT_NONE, read-only, misaligned; huge lengths, addr + length
 * overflowing), read with odd sizes and bad buffers, poll, close and reopen,
 * injected board faults — while another thread interrupts blocked calls
 * with signals.  The kernel must not complain (tools/vm/run checks its log),
 * nothing may hang, every errno must be one the contract allows, and at the
 * end every pin and every byte of locked-memory charge must be back and the
 * board must still stream correct data.
 *
 * Environment: FPGASTREAM_FUZZ_SEED (default: from the clock; printed with
 * the line that reproduces the run), FPGASTREAM_FUZZ_CALLS (default 50000),
 * FPGASTREAM_FUZZ_THREADS (default 4), FPGASTREAM_FUZZ_FILES (default 4).
 * Threads make the interleaving vary between runs with one seed; each
 * thread's sequence of calls and arguments is the seed's.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "fstr_vm.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "fstr_harness.h"
#pragma GCC diagnostic ignored "-Wsign-compare"

#define DEFAULT_CALLS	50000
#define MAX_THREADS	16
#define MAX_FILES	16
#define NR_BUFS		3
#define BUF_LEN		(4ULL << 20)
#define SMALL_LEN	(1ULL << 20)
/* A thread stuck this long in one call is a hang (blocked reads are
 * interrupted every few ms, so only a kernel that never returns is). */
#define STUCK_S		120

enum op {
	OP_INFO, OP_MAP, OP_UNMAP, OP_START, OP_STOP, OP_RELEASE, OP_STATS,
	OP_RANDOM_IOCTL, OP_READ, OP_POLL, OP_REOPEN, OP_INJECT, NR_OPS
};

static const char *const op_names[NR_OPS] = {
	"INFO", "MAP", "UNMAP", "START", "STOP", "RELEASE", "STATS",
	"random-ioctl", "read", "poll", "close+open", "inject",
};

/* Relative frequency of each operation. */
static const unsigned int op_weight[NR_OPS] = {
	4, 14, 6, 10, 6, 12, 4, 14, 14, 6, 3, 1,
};

/*
 * errnos the contract allows per operation (a racing close makes EBADF
 * possible everywhere, the signal thread EINTR for blocking calls).
 */
static const int allowed[NR_OPS][10] = {
	[OP_INFO] = { EFAULT, EBADF },
	[OP_MAP] = { EINVAL, EBUSY, EFAULT, ENOMEM, ERANGE, EIO, EBADF, EINTR },
	[OP_UNMAP] = { EINVAL, EBADF, EINTR },
	[OP_START] = { EINVAL, EBUSY, EFAULT, EIO, EBADF, EINTR },
	[OP_STOP] = { EINVAL, EIO, EBADF, EINTR },
	[OP_RELEASE] = { EINVAL, EFAULT, EBADF, EINTR },
	[OP_STATS] = { EFAULT, EBADF, EINTR },
	[OP_RANDOM_IOCTL] = { ENOTTY, EBADF },
	[OP_READ] = { EINVAL, EAGAIN, EINTR, EIO, EFAULT, EBADF },
	[OP_POLL] = { EINTR, EBADF },
	[OP_REOPEN] = { EINTR },
	[OP_INJECT] = { 0 },
};

#define NR_ERRNO 140

struct fuzz {
	struct fv_dev d;
	uint64_t seed, calls;
	unsigned int nthreads, nfiles;
	_Atomic int fds[MAX_FILES];
	_Atomic int owner_fd;		/* the last file that mapped, or -1 */
	_Atomic uint64_t issued;
	_Atomic bool stop;
	/* Addresses to hand the driver. */
	uint8_t *bufs[NR_BUFS];	/* 4 MiB of hugepages each */
	uint8_t *small;		/* 1 MiB of 4 KiB pages */
	uint8_t *ro;		/* 2 MiB hugepage, read-only */
	uint8_t *none;		/* 2 MiB PROT_NONE */
	uint8_t *hole;		/* 4 MiB that is not mapped */
	uint8_t *scratch;	/* 64 KiB RW, then a PROT_NONE guard page */
	uint8_t *ro_arg;	/* a read-only page holding a valid MAP argument */
	/* Results. */
	_Atomic uint64_t hist[NR_OPS][NR_ERRNO + 1];	/* [op][0] = successes */
	_Atomic uint64_t bad[NR_OPS];
	_Atomic int first_bad_op, first_bad_err;
	_Atomic uint64_t records;
};

struct worker {
	struct fuzz *f;
	pthread_t t;
	unsigned int id;
	uint64_t rng;
	_Atomic int op;			/* what it is in, -1 between calls */
	_Atomic uint64_t since_ns;
	bool joined;
};

static uint64_t rnd(uint64_t *s)
{
	*s = fv_splitmix64(*s);
	return *s;
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static void on_signal(int sig)
{
	(void)sig;
}

/* A boundary or random address: what a buggy or hostile program passes. */
static uint64_t pick_addr(struct fuzz *f, uint64_t *s)
{
	uint8_t *b = f->bufs[below(s, NR_BUFS)];

	switch (below(s, 16)) {
	case 0: return 0;
	case 1: return 0xffffffff81000000ULL;		/* kernel text */
	case 2: return 0xffff888000000000ULL;		/* direct map */
	case 3: return 0x8000000000000000ULL;		/* non-canonical */
	case 4: return (uintptr_t)f->hole;
	case 5: return (uintptr_t)f->none;
	case 6: return (uintptr_t)f->ro;
	case 7: return (uintptr_t)f->small;
	case 8: return (uintptr_t)b + 4096;		/* misaligned */
	case 9: return (uintptr_t)b + 1;
	case 10: return -BLOCK;				/* addr + length wraps */
	case 11: return rnd(s) & ~(BLOCK - 1);
	case 12: return (uintptr_t)b + BUF_LEN - BLOCK;	/* runs off the end */
	default: return (uintptr_t)b;			/* valid */
	}
}

static uint64_t pick_len(struct fuzz *f, uint64_t *s)
{
	uint64_t max = f->d.info.max_buffer_size;

	switch (below(s, 14)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return BLOCK - 1;
	case 3: return ~0ULL;
	case 4: return 1ULL << 63;
	case 5: return max;
	case 6: return max + BLOCK;
	case 7: return -BLOCK;
	case 8: return (below(s, 64) + 1) * BLOCK;
	case 9: return rnd(s);
	case 10: return SMALL_LEN;
	case 11: return 2 * BUF_LEN;
	case 12: return HUGE_2M;
	default: return BUF_LEN;
	}
}

/* A pointer for an ioctl argument or a read buffer. */
static void *pick_ptr(struct fuzz *f, uint64_t *s)
{
	switch (below(s, 10)) {
	case 0: return NULL;
	case 1: return (void *)0xffffffff81000000ULL;
	case 2: return f->none;
	case 3: return f->ro;
	case 4: return f->hole;
	case 5: return f->scratch + 65536 - 8;	/* runs into the guard page */
	case 6: return f->ro_arg;
	default: return f->scratch + below(s, 16) * 8;
	}
}

/* Could the kernel write a whole struct or record at @p?  Then a success
 * through it is a bug. */
static bool bad_ptr(struct fuzz *f, const void *p)
{
	return p == NULL || (uintptr_t)p >= 0x8000000000000000ULL ||
	       p == f->none || p == f->hole || p == f->scratch + 65536 - 8 ||
	       p == f->ro || p == f->ro_arg;
}

/* Half the calls go to the file that mapped last, so that streams run. */
static int pick_fd(struct fuzz *f, uint64_t *s)
{
	int owner = atomic_load(&f->owner_fd);

	if (owner >= 0 && below(s, 2))
		return owner;
	return atomic_load(&f->fds[below(s, f->nfiles)]);
}

/* One fuzzed call; returns 0 or an errno, sets *op to what it was. */
static int one_call(struct fuzz *f, struct worker *w, int op)
{
	uint64_t *s = &w->rng;
	int fd = pick_fd(f, s), err = 0, nfd, old, owner, slot;
	struct fpgastream_map m;
	struct fpgastream_start st;
	struct fpgastream_info info;
	struct fpgastream_stats stats;
	void *p;
	uint64_t n;
	ssize_t r;

	switch (op) {
	case OP_INFO:
		p = below(s, 4) ? (void *)&info : pick_ptr(f, s);
		err = fv_ioc(fd, FPGASTREAM_IOC_INFO, p);
		if (!err && bad_ptr(f, p))
			err = -EPERM;	/* "succeeded" through a bad pointer */
		break;
	case OP_MAP:
		memset(&m, 0, sizeof(m));
		m.addr = pick_addr(f, s);
		m.length = pick_len(f, s);
		if (below(s, 2)) {
			/* Half are well formed, so that streams happen. */
			m.addr = (uintptr_t)f->bufs[below(s, NR_BUFS)];
			m.length = below(s, 2) ? HUGE_2M : BUF_LEN;
		} else if (!below(s, 8))
			m.flags = below(s, 2) ? FPGASTREAM_MAP_NO_BOUNCE : (uint32_t)rnd(s);
		if (!below(s, 16))
			m.reserved[below(s, 2)] = rnd(s);
		if (!below(s, 16))
			m.nr_blocks = rnd(s);	/* out fields: ignored on input */
		p = below(s, 10) ? (void *)&m : pick_ptr(f, s);
		err = fv_ioc(fd, FPGASTREAM_IOC_MAP, p);
		if (!err && bad_ptr(f, p)) {
			fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
			err = -EPERM;	/* the out fields cannot have been written */
		}
		if (!err)
			atomic_store(&f->owner_fd, fd);
		break;
	case OP_UNMAP:
		err = fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
		break;
	case OP_START:
		memset(&st, 0, sizeof(st));
		st.flags = below(s, 3) ? FPGASTREAM_START_FLOW_CONTROL :
			   below(s, 2) ? 0 : (uint32_t)rnd(s);
		if (!below(s, 4))
			st.irq_coalesce_count = below(s, 2) ? below(s, 64) : (uint32_t)rnd(s);
		if (!below(s, 4))
			st.irq_coalesce_usec = below(s, 2) ? below(s, 2000) : (uint32_t)rnd(s);
		if (!below(s, 16))
			st.reserved[below(s, 5)] = rnd(s);
		p = below(s, 10) ? (void *)&st : pick_ptr(f, s);
		err = fv_ioc(fd, FPGASTREAM_IOC_START, p);
		break;
	case OP_STOP:
		err = fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
		break;
	case OP_RELEASE:
		switch (below(s, 6)) {
		case 0: n = 0; break;
		case 1: n = ~0ULL; break;
		case 2: n = rnd(s); break;
		default: n = below(s, 5); break;
		}
		p = below(s, 10) ? (void *)&n : pick_ptr(f, s);
		err = fv_ioc(fd, FPGASTREAM_IOC_RELEASE, p);
		break;
	case OP_STATS:
		p = below(s, 4) ? (void *)&stats : pick_ptr(f, s);
		err = fv_ioc(fd, FPGASTREAM_IOC_STATS, p);
		if (!err && bad_ptr(f, p))
			err = -EPERM;
		break;
	case OP_RANDOM_IOCTL: {
		unsigned long cmd;
		unsigned int type;

		if (below(s, 2)) {
			/* The driver's magic: a real number with the wrong
			 * size or direction, or an unknown number. */
			cmd = _IOC(below(s, 4), FPGASTREAM_IOC_MAGIC, below(s, 3) ? below(s, 8) : below(s, 256),
				   below(s, 3) ? below(s, 128) : below(s, 1u << 14));
		} else {
			cmd = (uint32_t)rnd(s);
		}
		/* Numbers the VFS or the block layer answer before the driver
		 * sees them (FIOCLEX, FIGETBSZ, FIFREEZE, FICLONE, ...). */
		type = _IOC_TYPE(cmd);
		if (type == 0 || type == 'T' || type == 'X' || type == 'f' || type == 0x94 ||
		    cmd < 0x10000)
			cmd = _IOC(_IOC_READ, FPGASTREAM_IOC_MAGIC, 0x80, 8);
		if (cmd == FPGASTREAM_IOC_INFO || cmd == FPGASTREAM_IOC_MAP ||
		    cmd == FPGASTREAM_IOC_UNMAP || cmd == FPGASTREAM_IOC_START ||
		    cmd == FPGASTREAM_IOC_STOP || cmd == FPGASTREAM_IOC_RELEASE ||
		    cmd == FPGASTREAM_IOC_STATS)
			cmd = _IOC(_IOC_WRITE, FPGASTREAM_IOC_MAGIC, 0x81, 16);
		err = fv_ioc(fd, cmd, pick_ptr(f, s));
		break;
	}
	case OP_READ: {
		static const size_t sizes[] = { 0, 1, REC - 1, REC, REC + 1, 4 * REC,
						64 * REC, 65536 };
		size_t len = below(s, 2) ? (below(s, 64) + 1) * REC : sizes[below(s, 8)];
		uint8_t *buf = below(s, 4) ? f->scratch : pick_ptr(f, s);

		r = read(fd, buf, len);
		if (r < 0)
			err = -errno;
		else if (r % REC)
			err = -EPROTO;	/* not whole records */
		else
			atomic_fetch_add(&f->records, r / REC);
		if (r > 0 && bad_ptr(f, buf))
			err = -EPERM;
		break;
	}
	case OP_POLL: {
		struct pollfd pf = { .fd = fd, .events = POLLIN | POLLOUT | POLLPRI };
		int ret = poll(&pf, 1, below(s, 3));

		err = ret < 0 ? -errno : 0;
		if (ret == 1 && (pf.revents & POLLNVAL))
			err = -EBADF;
		break;
	}
	case OP_REOPEN:
		slot = below(s, f->nfiles);
		nfd = fv_open(&f->d, below(s, 2) ? O_NONBLOCK : 0);
		if (nfd < 0)
			return errno;
		old = atomic_exchange(&f->fds[slot], nfd);
		owner = old;	/* the CAS overwrites it when it fails */
		atomic_compare_exchange_strong(&f->owner_fd, &owner, -1);
		if (close(old))
			err = -errno;
		break;
	case OP_INJECT:
		/* Now and then a board fault in the middle of whatever runs;
		 * an IDLE stall makes the next stop wait 50 ms. */
		if (!below(s, 4))
			fv_wr(&f->d, R_EMU_INJECT, 1u << below(s, 3));
		break;
	}
	return -err;
}

static bool errno_allowed(int op, int e)
{
	int i;

	if (e == 0)
		return true;
	for (i = 0; i < 10 && allowed[op][i]; i++)
		if (allowed[op][i] == e)
			return true;
	return false;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fuzz *f = w->f;
	unsigned int total = 0, i;
	int op, e;

	for (i = 0; i < NR_OPS; i++)
		total += op_weight[i];
	while (!atomic_load(&f->stop) && atomic_fetch_add(&f->issued, 1) < f->calls) {
		unsigned int x = below(&w->rng, total);

		for (op = 0; x >= op_weight[op]; op++)
			x -= op_weight[op];
		atomic_store(&w->since_ns, fv_now_ns());
		atomic_store(&w->op, op);
		e = one_call(f, w, op);
		atomic_store(&w->op, -1);
		atomic_fetch_add(&f->hist[op][e > 0 && e <= NR_ERRNO ? e : 0], 1);
		if (!errno_allowed(op, e)) {
			int none = -1;

			atomic_fetch_add(&f->bad[op], 1);
			if (atomic_compare_exchange_strong(&f->first_bad_op, &none, op))
				atomic_store(&f->first_bad_err, e);
		}
	}
	return NULL;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static void *map_or_die(size_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static const char *config_name(struct fv_dev *d)
{
	return d->iommu ? "iommu" : d->swiotlb ? "swiotlb" : d->dma32 ? "dma32" : "plain";
}

FIXTURE(fuzz) {
	int unused;
};

FIXTURE_SETUP(fuzz)
{
}

FIXTURE_TEARDOWN(fuzz)
{
}

/* No harness timeout worth the name: the watchdog above finds hangs, and a
 * million calls under a debug kernel take as long as they take. */
TEST_F_TIMEOUT(fuzz, ioctl_calls, 24 * 3600)
{
	static struct fuzz fz;
	struct fuzz *f = &fz;
	struct worker w[MAX_THREADS];
	struct sigaction sa = { .sa_handler = on_signal };
	struct fv_pins p0;
	struct fpgastream_map *am;
	uint64_t t0, last_report, stuck_ns = STUCK_S * 1000000000ULL, done;
	long long lk0;
	const char *why;
	char whybuf[256];
	unsigned int i, k;
	int e;

	why = fv_setup(&f->d);
	if (why)
		SKIP(return, "%s", why);
	f->seed = env_u64("FPGASTREAM_FUZZ_SEED", fv_now_ns() ^ getpid());
	f->calls = env_u64("FPGASTREAM_FUZZ_CALLS", DEFAULT_CALLS);
	f->nthreads = env_u64("FPGASTREAM_FUZZ_THREADS", 4);
	f->nfiles = env_u64("FPGASTREAM_FUZZ_FILES", 4);
	if (f->nthreads < 1 || f->nthreads > MAX_THREADS)
		f->nthreads = 4;
	if (f->nfiles < 1 || f->nfiles > MAX_FILES)
		f->nfiles = 4;
	f->first_bad_op = -1;
	f->owner_fd = -1;
	ksft_print_msg("fuzz seed %#jx, %ju calls, %u threads, %u files, config %s\n",
		       (uintmax_t)f->seed, (uintmax_t)f->calls, f->nthreads, f->nfiles,
		       config_name(&f->d));
	ksft_print_msg("reproduce: tools/vm/run [--kernel K --module M] --config %s --append FPGASTREAM_FUZZ_SEED=%#jx "
		       "--append FPGASTREAM_FUZZ_CALLS=%ju -- ioctl_fuzz_test\n",
		       config_name(&f->d), (uintmax_t)f->seed, (uintmax_t)f->calls);

	for (i = 0; i < NR_BUFS; i++) {
		f->bufs[i] = fv_huge(BUF_LEN, false);
		ASSERT_NE(NULL, f->bufs[i]) TH_LOG("4 MiB of hugepages: %s", strerror(errno));
	}
	f->small = map_or_die(SMALL_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_POPULATE);
	f->ro = map_or_die(HUGE_2M, PROT_READ, MAP_SHARED | MAP_HUGETLB);
	f->none = map_or_die(HUGE_2M, PROT_NONE, MAP_PRIVATE);
	/* Far from where mmap places things, so that no thread stack or
	 * buffer lands in it later. */
	f->hole = mmap((void *)0x300000000000ULL, BUF_LEN, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (f->hole == MAP_FAILED)
		f->hole = NULL;
	f->scratch = map_or_die(65536 + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	f->ro_arg = map_or_die(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_TRUE(f->small && f->ro && f->none && f->hole && f->scratch && f->ro_arg);
	ASSERT_EQ(0, munmap(f->hole, BUF_LEN));
	ASSERT_EQ(0, mprotect(f->scratch + 65536, 4096, PROT_NONE));
	/* A valid MAP argument the driver can read but not write back. */
	am = (struct fpgastream_map *)f->ro_arg;
	am->addr = (uintptr_t)f->bufs[0];
	am->length = HUGE_2M;
	ASSERT_EQ(0, mprotect(f->ro_arg, 4096, PROT_READ));

	/* The source runs slowly and endlessly; some files never block. */
	fv_wr(&f->d, R_EMU_RATE, 2000);
	fv_pins_quiet(60000);
	p0 = fv_pin_counts();
	ASSERT_LE(0, p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	lk0 = fv_locked_kb();
	for (i = 0; i < f->nfiles; i++) {
		f->fds[i] = fv_open(&f->d, i % 2 ? O_NONBLOCK : 0);
		ASSERT_LE(0, f->fds[i]) TH_LOG("open %s: %s", f->d.node, strerror(errno));
	}

	/* Signals interrupt blocked reads and polls; no SA_RESTART. */
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	for (i = 0; i < f->nthreads; i++) {
		w[i].f = f;
		w[i].id = i;
		w[i].rng = fv_splitmix64(f->seed + i);
		w[i].op = -1;
		w[i].joined = false;
		ASSERT_EQ(0, pthread_create(&w[i].t, NULL, worker_main, &w[i]));
	}

	/* Watchdog, signaller and progress: until every worker is done. */
	t0 = last_report = fv_now_ns();
	for (;;) {
		bool running = false;
		uint64_t now = fv_now_ns();

		for (i = 0; i < f->nthreads; i++) {
			int op = atomic_load(&w[i].op);
			uint64_t since = atomic_load(&w[i].since_ns);

			if (w[i].joined)
				continue;
			if (pthread_tryjoin_np(w[i].t, NULL) != EBUSY) {
				w[i].joined = true;
				continue;
			}
			running = true;
			pthread_kill(w[i].t, SIGUSR1);
			if (op >= 0 && now > since && now - since > stuck_ns) {
				ksft_print_msg("thread %u stuck in %s for %u s: the kernel hangs\n",
					       i, op_names[op], STUCK_S);
				atomic_store(&f->stop, true);
				fflush(NULL);
				ASSERT_TRUE(false) TH_LOG("hang in %s (seed %#jx)", op_names[op],
							 (uintmax_t)f->seed);
			}
		}
		if (!running)
			break;
		if (now - last_report > 30 * 1000000000ULL) {
			done = atomic_load(&f->issued);
			ksft_print_msg("%ju of %ju calls, %ju s\n",
				       (uintmax_t)(done < f->calls ? done : f->calls),
				       (uintmax_t)f->calls, (uintmax_t)((now - t0) / 1000000000ULL));
			last_report = now;
		}
		fv_sleep_ms(20);
	}
	done = atomic_load(&f->issued);
	if (done > f->calls)
		done = f->calls;
	ksft_print_msg("%ju calls in %ju s, %ju records read\n", (uintmax_t)done,
		       (uintmax_t)((fv_now_ns() - t0) / 1000000000ULL),
		       (uintmax_t)atomic_load(&f->records));

	/* The errno histogram: what the driver answered to what. */
	for (k = 0; k < NR_OPS; k++) {
		char line[1024];
		int len = snprintf(line, sizeof(line), "%-12s ok %ju", op_names[k],
				   (uintmax_t)f->hist[k][0]);

		for (e = 1; e <= NR_ERRNO; e++)
			if (f->hist[k][e] && len < (int)sizeof(line))
				len += snprintf(line + len, sizeof(line) - len, ", %s %ju",
						strerrorname_np(e) ? strerrorname_np(e) : "?",
						(uintmax_t)f->hist[k][e]);
		ksft_print_msg("%s%s\n", line, f->bad[k] ? "  <- errnos the contract does not allow" : "");
	}
	EXPECT_EQ(-1, f->first_bad_op) {
		TH_LOG("%s returned %s (%d), which the contract does not allow there",
		       op_names[f->first_bad_op],
		       f->first_bad_err == EPROTO ? "a partial record" :
		       f->first_bad_err == EPERM ? "success through a bad pointer" :
		       strerror(f->first_bad_err), f->first_bad_err);
	}

	/* Everything let go: every pin and every byte of charge comes back. */
	for (i = 0; i < f->nfiles; i++)
		EXPECT_EQ(0, close(f->fds[i]));
	EXPECT_EQ(0, fv_pins_held(p0)) TH_LOG("pages still pinned after closing every file");
	EXPECT_EQ(lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");

	/* And the board still streams the right data. */
	EXPECT_EQ(0, fv_board_works(&f->d, 40, whybuf, sizeof(whybuf)))
		TH_LOG("the board no longer works after fuzzing: %s", whybuf);
	EXPECT_EQ(0, fv_pins_held(p0));
	EXPECT_EQ(lk0, fv_locked_kb());
	ksft_print_msg("seed %#jx: %ju calls made\n", (uintmax_t)f->seed, (uintmax_t)done);
	fv_teardown(&f->d);
}

FSTR_HARNESS_MAIN
