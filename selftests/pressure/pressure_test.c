// SPDX-License-Identifier: GPL-2.0-only
/*
 * Memory pressure (VM selftest): MAP when the memory it needs is not there.
 *
 *   hugepages_run_out     the buffer's hugepages cannot all be faulted in
 *   memlock_limit         RLIMIT_MEMLOCK too small, or used up by mlock()
 *   failslab_map          every slab allocation of MAP fails in turn
 *   failslab_session      ... of open, MAP, START, read, STOP, UNMAP, close
 *   fail_page_alloc_map   every page allocation of MAP fails in turn
 *
 * Every failure must be a clean errno, and after it nothing may stay pinned
 * or charged.  The fault-injection tests use /proc/thread-self/fail-nth
 * (the Nth allocation of this thread fails) with failslab/fail_page_alloc
 * configured through debugfs; they SKIP on kernels without fault injection
 * (Debian's), and run on the debug kernel (tools/debug-kernel).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "fstr_vm.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop
#include "fstr_harness.h"
#pragma GCC diagnostic ignored "-Wsign-compare"

#define T_TEST		600
/* Allocations a MAP makes are few; a session's a few dozen. */
#define MAX_NTH		400
/*
 * MAP of one hugepage allocates no page at all without an IOMMU; at 64 MiB
 * its per-block arrays outgrow kmalloc and come from the page allocator
 * (or vmalloc), so fail_page_alloc has something to fail in every config.
 */
#define PAGE_ALLOC_LEN	(32 * HUGE_2M)
/* What a bounced mapping may be (half a swiotlb area of a 2-CPU guest). */
#define BOUNCE_LEN	(4 * HUGE_2M)

FIXTURE(pressure) {
	struct fv_dev d;
	struct fv_pins p0;
	long long lk0;
};

FIXTURE_SETUP(pressure)
{
	const char *why = fv_setup(&self->d);

	if (why)
		SKIP({ fflush(NULL); _exit(255); }, "%s", why);
	fv_pins_quiet(60000);
	self->p0 = fv_pin_counts();
	ASSERT_LE(0, self->p0.acquired) TH_LOG("no nr_foll_pin_* in /proc/vmstat");
	self->lk0 = fv_locked_kb();
}

FIXTURE_TEARDOWN(pressure)
{
	fv_teardown(&self->d);
}

static void assert_clean(struct __test_metadata *_metadata, FIXTURE_DATA(pressure) *self)
{
	char why[256];

	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("pages still pinned");
	EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("locked-memory charge not returned");
	EXPECT_EQ(0, fv_board_works(&self->d, 8, why, sizeof(why)))
		TH_LOG("the board does not stream afterwards: %s", why);
}

/*
 * A hugetlb mapping made without a reservation (MAP_NORESERVE) larger than
 * the free pool: MAP faults pages in until the pool is empty.  EFAULT (the
 * memory is not there) or ENOMEM, the pages it got are unpinned, and the
 * pool is whole again after munmap.
 */
TEST_F_TIMEOUT(pressure, hugepages_run_out, T_TEST)
{
	long long free0 = fv_proc_kb("/proc/meminfo", "HugePages_Free");
	uint64_t len = (free0 + 8) * HUGE_2M;
	uint8_t *b;
	int fd, err;

	ASSERT_LT(0, free0);
	if (len > self->d.info.max_buffer_size)
		SKIP(return, "%lld free hugepages are more than a MAP can take", free0);
	b = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, b) TH_LOG("mmap %ju MiB NORESERVE: %s", (uintmax_t)(len >> 20),
					strerror(errno));
	fd = fv_open(&self->d, 0);
	ASSERT_LE(0, fd);
	err = fv_map(fd, b, len, 0);
	ksft_print_msg("MAP of %ju MiB with %lld free hugepages: %s\n", (uintmax_t)(len >> 20),
		       free0, err ? strerror(-err) : "mapped");
	EXPECT_TRUE(err == -EFAULT || err == -ENOMEM) TH_LOG("MAP: %s", strerror(-err));
	EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("the pages MAP got stay pinned");
	EXPECT_EQ(self->lk0, fv_locked_kb());
	/* The file is still usable and the device free. */
	EXPECT_EQ(-EINVAL, fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL));
	EXPECT_EQ(0, close(fd));
	ASSERT_EQ(0, munmap(b, len));
	EXPECT_EQ(free0, fv_proc_kb("/proc/meminfo", "HugePages_Free"))
		TH_LOG("hugepages lost");
	assert_clean(_metadata, self);
}

enum { ML_SETUP, ML_ZERO, ML_OVER, ML_AT, ML_LOCKED_OVER, ML_LOCKED_FIT, ML_CHARGE, ML_N };

/*
 * In a child without CAP_IPC_LOCK: MAP over a limit of 0, over 4 MiB, at
 * 4 MiB, and over what mlock() left of it.  Each failure is ENOMEM (as
 * mlock), each leaves the charge and the pins as they were.
 */
TEST_F_TIMEOUT(pressure, memlock_limit, T_TEST)
{
	static const char *const what[ML_N] = {
		"setup", "MAP 2 MiB, limit 0", "MAP 8 MiB, limit 4 MiB",
		"MAP 4 MiB, limit 4 MiB", "MAP 4 MiB with 2 MiB mlocked, limit 4 MiB",
		"MAP 2 MiB with 2 MiB mlocked, limit 4 MiB", "charge or pins left behind",
	};
	static const int want[ML_N] = { 0, -ENOMEM, -ENOMEM, 0, -ENOMEM, 0, 0 };
	int res[ML_N], pfd[2], status, i;
	pid_t pid;

	ASSERT_EQ(0, pipe(pfd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit rl = { 0, 0 };
		uint8_t *b = fv_huge(8 << 20, false), *other;
		long long lk;
		int fd = fv_open(&self->d, 0);

		memset(res, 0, sizeof(res));
		other = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (!b || fd < 0 || other == MAP_FAILED || setrlimit(RLIMIT_MEMLOCK, &rl) ||
		    fv_drop_ipc_lock())
			res[ML_SETUP] = -1;
		lk = fv_locked_kb();
		res[ML_ZERO] = fv_map(fd, b, 2 << 20, 0);
		rl.rlim_cur = rl.rlim_max = 4 << 20;
		if (setrlimit(RLIMIT_MEMLOCK, &rl))
			res[ML_SETUP] = -1;
		res[ML_OVER] = fv_map(fd, b, 8 << 20, 0);
		if (fv_locked_kb() != lk || fv_pins_held(self->p0))
			res[ML_CHARGE] = -1;
		res[ML_AT] = fv_map(fd, b, 4 << 20, 0);
		fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
		if (mlock(other, 2 << 20))
			res[ML_SETUP] = -1;
		lk = fv_locked_kb();
		res[ML_LOCKED_OVER] = fv_map(fd, b, 4 << 20, 0);
		if (fv_locked_kb() != lk || fv_pins_held(self->p0))
			res[ML_CHARGE] = -1;
		res[ML_LOCKED_FIT] = fv_map(fd, b, 2 << 20, 0);
		fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
		munlock(other, 2 << 20);
		if (fv_locked_kb() != 0 || fv_pins_held(self->p0))
			res[ML_CHARGE] = -1;
		close(fd);
		if (write(pfd[1], res, sizeof(res)) != sizeof(res))
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	ASSERT_EQ(sizeof(res), read(pfd[0], res, sizeof(res)));
	close(pfd[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, res[ML_SETUP]) TH_LOG("setup in the child failed");
	for (i = 1; i < ML_N; i++) {
		const char *step = what[i];
		int got = res[i];

		EXPECT_EQ(want[i], got) TH_LOG("%s: %s", step, got ? strerror(-got) : "success");
	}
	assert_clean(_metadata, self);
}

/* ------------------------------------------------------- fault injection */

/*
 * failslab fails only the kmalloc caches, where every slab allocation of
 * the driver comes from.  Left unfiltered, fail-nth also fails the
 * GFP_ATOMIC radix-tree node that DMA-API debug allocates inside
 * dma_map_sg() (its cacheline tracking), and DMA-API debug then switches
 * itself off for the rest of the boot: every later test would run blind.
 * The caches are marked at boot (slub_debug=A,kmalloc-*; the sysfs file
 * is read-only).  NULL, or what is missing.
 */
static const char *failslab_kmalloc_only(void)
{
	char path[300], val[8];
	struct dirent *de;
	int marked = 0;
	DIR *dir;

	dir = opendir("/sys/kernel/slab");
	if (!dir)
		return "no /sys/kernel/slab";
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, "kmalloc-", 8) || !isdigit(de->d_name[8]))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/failslab", de->d_name);
		if (fv_read_text(path, val, sizeof(val)) || val[0] != '1') {
			closedir(dir);
			return "a kmalloc cache is not marked for failslab: boot with slub_debug=A,kmalloc-*";
		}
		marked++;
	}
	closedir(dir);
	if (!marked)
		return "no kmalloc cache in /sys/kernel/slab";
	if (fv_write_text("/sys/kernel/debug/failslab/cache-filter", "Y"))
		return "cannot write failslab/cache-filter";
	return NULL;
}

/*
 * Make only fail-nth inject (probability 0), quietly (verbose 0: a stack
 * dump per failure would read as a kernel problem), for allocations that
 * may sleep too.  @which is "failslab" or "fail_page_alloc"; the other one
 * is told to ignore sleeping allocations.  NULL or why not.
 */
static const char *fault_setup(const char *which)
{
	static const char *const attrs[] = { "failslab", "fail_page_alloc" };
	char path[256];
	unsigned int i;

	if (!fv_exists("/proc/thread-self/fail-nth"))
		return "no /proc/thread-self/fail-nth (kernel without CONFIG_FAULT_INJECTION)";
	for (i = 0; i < 2; i++) {
		bool on = !strcmp(attrs[i], which);

		snprintf(path, sizeof(path), "/sys/kernel/debug/%s", attrs[i]);
		if (!fv_exists(path))
			return on ? "no failslab / fail_page_alloc in debugfs" : NULL;
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/probability", attrs[i]);
		fv_write_text(path, "0");
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/verbose", attrs[i]);
		fv_write_text(path, "0");
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/times", attrs[i]);
		fv_write_text(path, "-1");
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/ignore-gfp-wait", attrs[i]);
		fv_write_text(path, on ? "N" : "Y");
		if (!strcmp(attrs[i], "fail_page_alloc")) {
			fv_write_text("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem",
				      on ? "N" : "Y");
			fv_write_text("/sys/kernel/debug/fail_page_alloc/min-order", on ? "0" : "11");
		}
	}
	return NULL;
}

/* The step that fails: MAP alone, or a whole session on a new file. */
typedef int (*step_fn)(FIXTURE_DATA(pressure) *self, int fd, uint8_t *b, size_t len);

static int step_map(FIXTURE_DATA(pressure) *self, int fd, uint8_t *b, size_t len)
{
	int err = fv_map(fd, b, len, 0);

	(void)self;
	if (!err)
		fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
	return err;
}

/* open, MAP, START, read, STOP, UNMAP, close; the first failure ends it. */
static int step_session(FIXTURE_DATA(pressure) *self, int fd_unused, uint8_t *b,
			size_t len)
{
	struct fpgastream_block r[2];
	int fd, err;
	long n;

	(void)fd_unused;
	fd = fv_open(&self->d, 0);
	if (fd < 0)
		return -errno;
	err = fv_map(fd, b, len, 0);
	if (!err)
		err = fv_start(fd, FPGASTREAM_START_FLOW_CONTROL);
	if (!err) {
		n = fv_records(fd, r, 2, WAIT_MS);
		err = n > 0 ? fv_release(fd, n) : n ? (int)n : -ENODATA;
	}
	if (!err)
		err = fv_ioc(fd, FPGASTREAM_IOC_STOP, NULL);
	if (!err)
		err = fv_ioc(fd, FPGASTREAM_IOC_UNMAP, NULL);
	if (close(fd) && !err)
		err = -errno;
	return err;
}

/*
 * Fail the 1st, 2nd, ... allocation of @step until one run of it makes no
 * more than N - 1: each failure must be one of the clean errnos and leave
 * nothing pinned or charged.
 */
static void every_failure_point(struct __test_metadata *_metadata,
				FIXTURE_DATA(pressure) *self, const char *which, step_fn step,
				size_t len)
{
	char buf[32], why[256];
	unsigned int nth, failed = 0, tolerated = 0, hist[3] = { 0 };
	uint8_t *b = fv_huge(len, false);
	const char *skip = fault_setup(which);
	int fd, fnth, err;
	long left;

	if (skip)
		SKIP(return, "%s", skip);
	/* Also for fail_page_alloc: fail-nth counts atomic slab allocations. */
	skip = failslab_kmalloc_only();
	ASSERT_EQ(NULL, skip) TH_LOG("%s", skip);
	ASSERT_NE(NULL, b);
	fd = fv_open(&self->d, 0);
	ASSERT_LE(0, fd);
	/* Without injection the step succeeds: every failure below is ours. */
	err = step(self, fd, b, len);
	if (err == -ENOMEM && len > BOUNCE_LEN) {
		/* A bounced mapping this large is refused (swiotlb, dma32). */
		munmap(b, len);
		len = BOUNCE_LEN;
		b = fv_huge(len, false);
		ASSERT_NE(NULL, b);
		err = step(self, fd, b, len);
	}
	ASSERT_EQ(0, err) TH_LOG("%ju MiB without injection: %s", (uintmax_t)(len >> 20),
				 strerror(-err));
	fnth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fnth);
	/* The stream the session reads: endless, so read never waits long. */
	fv_wr(&self->d, R_EMU_BURST, 0);
	for (nth = 1; nth <= MAX_NTH; nth++) {
		int nlen = snprintf(buf, sizeof(buf), "%u", nth);

		ASSERT_EQ(nlen, pwrite(fnth, buf, nlen, 0));
		err = step(self, fd, b, len);
		memset(buf, 0, sizeof(buf));
		ASSERT_LT(0, pread(fnth, buf, sizeof(buf) - 1, 0));
		left = atol(buf);
		ASSERT_EQ(1, pwrite(fnth, "0", 1, 0));
		if (err) {
			failed++;
			EXPECT_TRUE(err == -ENOMEM || err == -EFAULT || err == -EIO) {
				TH_LOG("allocation %u failed: %s is not a clean errno here",
				       nth, strerror(-err));
			}
			hist[err == -ENOMEM ? 0 : err == -EFAULT ? 1 : 2]++;
		} else if (!left) {
			tolerated++;	/* it failed one and did without */
		}
		EXPECT_EQ(0, fv_pins_held(self->p0)) TH_LOG("allocation %u failed: pins left", nth);
		EXPECT_EQ(self->lk0, fv_locked_kb()) TH_LOG("allocation %u failed: charge left", nth);
		if (_metadata->passed == 0)
			break;
		if (!err && left)
			break;	/* fewer than nth allocations: every point was hit */
	}
	close(fnth);
	close(fd);
	munmap(b, len);
	ksft_print_msg("%s: %u allocations, %u failed the call (ENOMEM %u, EFAULT %u, EIO %u), %u done without\n",
		       which, nth - 1, failed, hist[0], hist[1], hist[2], tolerated);
	EXPECT_GE(MAX_NTH, nth) TH_LOG("still allocating after %u: fail-nth not reaching the end?", MAX_NTH);
	EXPECT_LT(0, failed + tolerated) TH_LOG("no failure was injected at all");
	/*
	 * MAP's slab allocations are the driver's own and must fail it; the
	 * page allocations under it (IOMMU page tables, large kmalloc) may
	 * all have fallbacks, so there a call that did without is enough.
	 */
	if (!strcmp(which, "failslab"))
		EXPECT_LT(0, failed) TH_LOG("no injected failure reached the driver");
	EXPECT_EQ(0, fv_board_works(&self->d, 8, why, sizeof(why)))
		TH_LOG("the board does not stream afterwards: %s", why);
	EXPECT_EQ(0, fv_pins_held(self->p0));
}

TEST_F_TIMEOUT(pressure, failslab_map, T_TEST)
{
	every_failure_point(_metadata, self, "failslab", step_map, HUGE_2M);
}

TEST_F_TIMEOUT(pressure, failslab_session, T_TEST)
{
	every_failure_point(_metadata, self, "failslab", step_session, HUGE_2M);
}

/*
 * A failed page allocation prints a warning with a stack dump (warn_alloc)
 * unless the caller passed __GFP_NOWARN, and tools/vm/run counts every
 * "Call Trace:" as a kernel problem; so this runs only when asked to
 * (FPGASTREAM_FAIL_PAGE_ALLOC=1).  It brackets the injected failures with
 * kmsg markers, for a runner that lets expected allocation-failure dumps
 * through between them.
 */
TEST_F_TIMEOUT(pressure, fail_page_alloc_map, T_TEST)
{
	const char *on = getenv("FPGASTREAM_FAIL_PAGE_ALLOC");

	if (!on || strcmp(on, "1"))
		SKIP(return, "set FPGASTREAM_FAIL_PAGE_ALLOC=1 (allocation warnings dirty the log)");
	/* every_failure_point() sets the fault attributes up, or skips. */
	fv_write_text("/dev/kmsg", "fpgastream-vm: expect-alloc-failures on\n");
	every_failure_point(_metadata, self, "fail_page_alloc", step_map, PAGE_ALLOC_LEN);
	fv_write_text("/dev/kmsg", "fpgastream-vm: expect-alloc-failures off\n");
}

FSTR_HARNESS_MAIN
