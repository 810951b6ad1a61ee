// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * FSTR stream engine: reference device model for fpgastream.
 *
 * Implements the register-level datasheet (revision 1.1) of the legacy FPGA
 * that fpgastream drives: a data source streams 64 KiB blocks into host
 * memory through a lookup table (LUT) of block addresses.
 *
 *   BAR0  64 KiB, 32-bit MMIO: control registers, plus the test block at
 *         0x1000 (source rate, seed, burst length, fault injection, FIFO size)
 *   BAR2  the LUT, 64-bit MMIO, one little-endian 64-bit entry per block
 *
 * Design
 * ------
 * The device state is protected by a lock of its own, s->lock, not by the
 * BQL, so that the engine and the rest of QEMU do not take turns on one
 * lock, as a board's DMA engine does not wait for the CPU.  Register
 * accesses, timers and config writes run under the BQL (QEMU 7.2 takes it
 * for every MMIO access) and take s->lock inside it: the BQL is always
 * taken first.  A dedicated engine thread produces the blocks.  Under
 * s->lock it picks the next block and checks that it may write it; then,
 * without any lock, it generates the block's data pattern and writes it
 * with pci_dma_write() (so that a guest IOMMU translates it; behind one the
 * write takes the BQL, see fstr_engine_dma()); then under s->lock again it
 * advances WR_COUNT and raises interrupts.  Driving the interrupt needs the
 * BQL, and is done only after s->lock is released (fstr_unlock()); the
 * engine, which does not hold the BQL, leaves it to a bottom half.  When it
 * cannot make progress it sleeps
 * on a condition variable tied to s->lock; everything that may let it
 * progress signals it.  A generation counter, bumped by everything that
 * makes a block in flight stale (SOFT_RESET, stop, seed change, reset,
 * unrealize), lets the thread notice what happened while it ran unlocked.
 *
 * The source is modelled lazily: with EMU_RATE = r blocks/s it has produced
 * floor((now - t0) * r / 1e9) blocks since the engine (re)started at t0 on
 * QEMU_CLOCK_VIRTUAL.  Produced blocks wait in an internal FIFO of
 * EMU_FIFO_BLOCKS entries.  While flow control holds the engine (ring full)
 * the FIFO fills, and when it overflows the OLDEST queued blocks are
 * discarded and counted in DROP_COUNT, which leaves a gap in the sequence
 * numbers s of the blocks written.  Discarding the oldest keeps the
 * datasheet's identity exact: the block the engine writes as ring position
 * k has s = k + DROP_COUNT at that moment, and the FIFO always holds the
 * consecutive blocks s = WR_COUNT + DROP_COUNT .. src_seq - 1, so it needs
 * no storage.  The state is brought up to date whenever something looks at
 * it (the engine before every block, a DROP_COUNT read, a change of rate,
 * burst, FIFO size or stall state), which gives the same result as
 * producing every block on time.  With EMU_RATE = 0 the source produces a
 * block exactly when the engine takes one, so nothing is ever dropped.
 *
 * A real engine always outruns its source; only the host holding blocks
 * makes it lose data.  The emulated engine can fall behind when the host
 * machine is busy.  Such lag is not the guest's doing, so it never drops
 * blocks: when the FIFO fills while the engine is not held by flow control,
 * the source slips (it pauses and resumes its schedule from now) instead.
 * That keeps DROP_COUNT a function of what the guest did, not of host load.
 *
 * Revision 1.1 adds the link.  The board is a PCI Express endpoint with
 * AER and FLR (behind a root port in tools/vm/run).  Clearing ENABLE takes
 * effect after a stop delay (stop_timer; fixed or drawn from a seeded
 * PRNG), during which the engine streams on.  EMU_INJECT 8 and 32 take the
 * link down (link_down: all reads all ones, writes dropped, no DMA, no
 * interrupt) until a reset; 16 and 32 report AER errors through QEMU's
 * AER model from a bottom half (aer_bh).  Every reset QEMU delivers (FLR,
 * the port's bus reset, machine reset, S3 wakeup) is a power-on reset of
 * the board (fstr_reset()).
 *
 * Copyright (c) 2026 The fpgastream authors
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"     /* BQL */
#include "qemu/module.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qemu/host-utils.h"
#include "qemu/rcu.h"
#include "qemu/memalign.h"
#include "qapi/error.h"
#include "hw/pci/pci.h"
#include "hw/pci/msi.h"
#include "hw/pci/pcie.h"
#include "hw/pci/pcie_aer.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "qom/object.h"

/*
 * The pattern generator has an AVX2 variant, chosen at run time.  QEMU's own
 * CONFIG_AVX2_OPT is off in the minimal build tools/emu/build.sh makes, so
 * test the compiler and architecture directly.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FSTR_HAVE_AVX2 1
#endif

/*
 * hw/pci/pcie_aer.c of QEMU 7.2 keeps this static (the monitor's
 * pcie_aer_inject_error command is its only caller); tools/emu/build.sh
 * exports it, as QEMU 8 does with this very prototype.  It signals an
 * error through the device's AER capability and sends the message up to
 * the root port, which interrupts the guest's AER service.
 */
int pcie_aer_inject_error(PCIDevice *dev, const PCIEAERErr *err);

#define TYPE_FSTR "fstr"
OBJECT_DECLARE_SIMPLE_TYPE(FstrState, FSTR)

/* PCI identity */
#define FSTR_VENDOR_ID          0x1234
#define FSTR_DEVICE_ID          0xf5a0
#define FSTR_CLASS_ID           0x1180  /* class 0x11 DPIO, subclass 0x80 */
#define FSTR_REVISION           1

/* Blocks */
#define FSTR_BLOCK_SHIFT        16
#define FSTR_BLOCK_SIZE         (1u << FSTR_BLOCK_SHIFT)
#define FSTR_BLOCK_WORDS        (FSTR_BLOCK_SIZE / 8)

/* BAR0 registers */
#define FSTR_BAR0_SIZE          (64 * KiB)
#define REG_ID                  0x000
#define REG_VERSION             0x004
#define REG_LUT_CAPACITY        0x008
#define REG_BLOCK_SHIFT         0x00c
#define REG_DMA_ADDR_BITS       0x010
#define REG_CTRL                0x014
#define REG_STATUS              0x018
#define REG_RING_SIZE           0x01c
#define REG_WR_COUNT            0x020
#define REG_RD_COUNT            0x024
#define REG_DROP_COUNT          0x028
#define REG_IRQ_STATUS          0x02c
#define REG_IRQ_COALESCE_COUNT  0x030
#define REG_IRQ_COALESCE_USEC   0x034
#define REG_SCRATCH             0x038
/* test block, reference device only */
#define REG_EMU_RATE            0x1000
#define REG_EMU_SEED            0x1004
#define REG_EMU_BURST           0x1008
#define REG_EMU_INJECT          0x100c
#define REG_EMU_FIFO_BLOCKS     0x1010
#define REG_EMU_HOLDS           0x1014
#define REG_EMU_STOP_SEED       0x1018
#define REG_EMU_STOP_DELAY      0x101c

#define FSTR_ID                 0x46535452      /* "FSTR" */
#define FSTR_VERSION            0x00010000

#define CTRL_ENABLE             (1u << 0)
#define CTRL_SOFT_RESET         (1u << 1)
#define CTRL_IRQ_ENABLE         (1u << 2)
#define CTRL_FLOW_CONTROL       (1u << 3)
#define CTRL_RW_MASK            (CTRL_ENABLE | CTRL_IRQ_ENABLE | \
                                 CTRL_FLOW_CONTROL)

#define STATUS_RUNNING          (1u << 0)
#define STATUS_IDLE             (1u << 1)
#define STATUS_OVERRUN          (1u << 8)
#define STATUS_LUT_FAULT        (1u << 9)
#define STATUS_DMA_ERROR        (1u << 10)
#define STATUS_FAULTS           (STATUS_LUT_FAULT | STATUS_DMA_ERROR)
#define STATUS_STICKY           (STATUS_OVERRUN | STATUS_FAULTS)

#define IRQ_BLOCKS_DONE         (1u << 0)
#define IRQ_ERROR               (1u << 1)
#define IRQ_ALL                 (IRQ_BLOCKS_DONE | IRQ_ERROR)

#define INJECT_DMA_ERROR        (1u << 0)
#define INJECT_LUT_FAULT        (1u << 1)
#define INJECT_STALL_IDLE       (1u << 2)
#define INJECT_LINK_DOWN        (1u << 3)       /* at once, not armed */
#define INJECT_AER_NONFATAL     (1u << 4)
#define INJECT_AER_FATAL        (1u << 5)       /* at once, not armed */
/* Bits that stay armed in EMU_INJECT until a block or a stop uses them. */
#define INJECT_ARMED            (INJECT_DMA_ERROR | INJECT_LUT_FAULT | \
                                 INJECT_STALL_IDLE | INJECT_AER_NONFATAL)

/* AER messages waiting for aer_bh (s->aer_pending) */
#define AER_SEND_NONFATAL       (1u << 0)
#define AER_SEND_FATAL          (1u << 1)

/* Configuration space layout: the PCIe capability, then AER. */
#define FSTR_PCIE_CAP_OFFSET    0x80
#define FSTR_AER_OFFSET         0x100

#define LUT_VALID               (1ull << 0)
#define LUT_ADDR_MASK           (~(uint64_t)(FSTR_BLOCK_SIZE - 1))

#define FSTR_LUT_CAPACITY_MAX   (1u << 20)
#define FSTR_FIFO_DEFAULT       16

/*
 * Clearing ENABLE takes effect after a delay of at most 10 ms (datasheet
 * 1.1), drawn per stop from a PRNG (stop-delay-us = -1) or fixed.  The
 * injected IDLE stall holds IDLE clear for 50 ms after that.
 */
#define FSTR_STOP_DELAY_MAX_US  10000
#define FSTR_STALL_IDLE_DELAY_NS (50 * SCALE_MS)
/* How long a reset or a link loss waits for a block write in flight. */
#define FSTR_DMA_DRAIN_MS       100

struct FstrState {
    PCIDevice parent_obj;

    /* Properties: set before realize, constant afterwards. */
    uint32_t lut_capacity;      /* LUT entries, 1 .. 1 Mi */
    uint32_t dma_addr_bits;     /* 64, or 32 for a legacy board */
    uint32_t prop_rate;         /* EMU_RATE at power-on */
    uint64_t prop_seed;         /* EMU_SEED at power-on */
    uint16_t prop_device_id;    /* PCI device ID: a production board's own */
    bool prop_flr;              /* advertise and implement FLR */
    bool prop_msi;              /* offer the MSI capability (else INTx only) */
    int32_t prop_stop_delay_us; /* -1: random per stop, else fixed */
    uint64_t prop_stop_seed;    /* seed of the stop-delay PRNG at power-on */

    /* Set up at realize, constant afterwards. */
    MemoryRegion regs;          /* BAR0 */
    MemoryRegion lut_bar;       /* BAR2 */
    uint64_t *buf;              /* next block's data; engine thread only */
    QEMUBH *irq_bh;             /* drives the interrupt for the engine */
    QEMUBH *aer_bh;             /* sends AER messages (needs the BQL) */

    /*
     * Protects everything below.  Lock order: the BQL, then s->lock; the
     * engine thread takes s->lock alone, and the BQL only without it.
     */
    QemuMutex lock;

    /* Set at engine start: writes go through a guest IOMMU */
    bool dma_translated;
    bool irq_dirty;             /* drive the interrupt at fstr_unlock() */
    bool irq_notify;            /* and send an MSI if the level is high */

    /* LUT */
    uint64_t *lut;              /* committed entries (what the engine uses) */
    /* low halves of 32-bit writes, waiting for the write of the high half */
    uint32_t *lut_low;

    /* Control registers */
    uint32_t ctrl;              /* CTRL_RW_MASK bits */
    uint32_t status_sticky;     /* STATUS_STICKY bits */
    /*
     * STATUS.RUNNING: set by ENABLE 0->1, cleared when a stop takes effect
     * (stop_timer, some time after ENABLE 1->0), by a fault or a reset.
     */
    bool running;
    bool stop_pending;          /* ENABLE cleared, stop_timer armed */
    QEMUTimer stop_timer;       /* the stop takes effect */
    uint64_t stop_rng;          /* PRNG state of the stop delays */
    uint64_t stop_seed;         /* EMU_STOP_SEED: what stop_rng began at */
    uint32_t stop_delay_us;     /* EMU_STOP_DELAY: of the latest stop */
    /* STATUS.IDLE = !dma_busy && !idle_hold */
    bool idle_hold;             /* the injected IDLE stall after a stop */
    bool dma_busy;              /* a block is being written, unlocked */
    QemuCond dma_done;          /* signalled when dma_busy clears */

    /*
     * The link is down (EMU_INJECT 8 or 32): MMIO and configuration reads
     * return all ones, writes are lost, the engine is stopped and raises
     * no interrupt, until a reset.  Changed under the BQL and s->lock.
     */
    bool link_down;
    uint32_t aer_pending;       /* AER_SEND_* for aer_bh */
    uint32_t ring_size;
    uint64_t wr_count;          /* WR_COUNT is its low 32 bits */
    uint32_t rd_count;
    uint64_t drop_count;        /* DROP_COUNT is its low 32 bits */
    uint32_t irq_status;
    uint32_t coalesce_count;
    uint32_t coalesce_usec;
    uint32_t scratch;

    /* Interrupt coalescing */
    uint32_t unsignalled;       /* completed blocks not yet signalled */
    int64_t unsignalled_since;  /* when the oldest of them completed (ns) */
    QEMUTimer coalesce_timer;   /* IRQ_COALESCE_USEC deadline */

    QEMUTimer idle_timer;       /* ends idle_hold */

    /* Test block */
    uint32_t rate;              /* EMU_RATE, blocks/s, 0 = on demand */
    uint64_t seed;              /* EMU_SEED (writes set it zero-extended) */
    uint32_t burst;             /* EMU_BURST, 0 = endless */
    uint32_t inject;            /* EMU_INJECT armed bits */
    uint32_t fifo_blocks;       /* EMU_FIFO_BLOCKS, >= 1 */

    /*
     * Source model.  Every block produced is written, dropped or queued:
     * src_seq = wr_count + drop_count + (blocks in the FIFO).
     */
    uint64_t src_seq;           /* produced since SOFT_RESET = next s */
    bool held;                  /* ring full under flow control */
    uint32_t holds;             /* EMU_HOLDS: times held since SOFT_RESET */
    int64_t src_t0;             /* when pacing began (ns) */
    uint64_t src_base;          /* src_seq at src_t0 */
    QEMUTimer src_timer;        /* next arrival, while the engine waits */

    /* Engine thread */
    QemuThread thread;
    QemuCond wake;              /* waited on with s->lock */
    bool stopping;              /* unrealize: the thread must exit */
    uint32_t gen;               /* bumped when a generated block goes stale */
};

/* ---------------------------------------------------------------------- */
/* Data pattern                                                            */
/* ---------------------------------------------------------------------- */

static inline uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/*
 * Block with source sequence number @s: word 0 = s, word 1 = ~s,
 * word i >= 2 = splitmix64(seed ^ (s << 13) ^ i), all little-endian.
 * The words are independent, so the loop pipelines well.
 */
static void fstr_fill_block_generic(uint64_t *w, uint64_t seed, uint64_t s)
{
    const uint64_t base = seed ^ (s << 13);
    unsigned i;

    for (i = 2; i < FSTR_BLOCK_WORDS; i++) {
        w[i] = cpu_to_le64(splitmix64(base ^ i));
    }
    w[0] = cpu_to_le64(s);
    w[1] = cpu_to_le64(~s);
}

#ifdef FSTR_HAVE_AVX2
/*
 * AVX2 has no 64-bit multiply; build x * c from three 32x32->64 products:
 * lo(x)*lo(c) + ((hi(x)*lo(c) + lo(x)*hi(c)) << 32).
 */
static inline __attribute__((target("avx2")))
__m256i fstr_mul64_avx2(__m256i x, uint64_t c)
{
    const __m256i clo = _mm256_set1_epi64x(c & 0xffffffffu);
    const __m256i chi = _mm256_set1_epi64x(c >> 32);
    __m256i lo = _mm256_mul_epu32(x, clo);
    __m256i h1 = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), clo);
    __m256i h2 = _mm256_mul_epu32(x, chi);

    return _mm256_add_epi64(lo, _mm256_slli_epi64(_mm256_add_epi64(h1, h2),
                                                  32));
}

/* Same pattern as fstr_fill_block_generic, four words at a time. */
static __attribute__((target("avx2")))
void fstr_fill_block_avx2(uint64_t *w, uint64_t seed, uint64_t s)
{
    const __m256i base = _mm256_set1_epi64x(seed ^ (s << 13));
    const __m256i golden = _mm256_set1_epi64x(0x9e3779b97f4a7c15ull);
    const __m256i four = _mm256_set1_epi64x(4);
    __m256i idx = _mm256_set_epi64x(3, 2, 1, 0);
    unsigned i;

    for (i = 0; i < FSTR_BLOCK_WORDS; i += 4) {
        __m256i x = _mm256_add_epi64(_mm256_xor_si256(base, idx), golden);

        x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 30));
        x = fstr_mul64_avx2(x, 0xbf58476d1ce4e5b9ull);
        x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 27));
        x = fstr_mul64_avx2(x, 0x94d049bb133111ebull);
        x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
        _mm256_store_si256((__m256i *)(w + i), x);
        idx = _mm256_add_epi64(idx, four);
    }
    w[0] = s;
    w[1] = ~s;
}
#endif

/* Chosen once at class init: AVX2 is about 3x faster where available. */
static void (*fstr_fill_block)(uint64_t *w, uint64_t seed, uint64_t s) =
    fstr_fill_block_generic;

/* ---------------------------------------------------------------------- */
/* Interrupts                                                              */
/* ---------------------------------------------------------------------- */

/*
 * Drive the interrupt.  INTx is a level: IRQ_ENABLE && IRQ_STATUS != 0.
 * MSI is a message, sent when @notify says a new reason to look appeared
 * and the level is high.  Callers notify when a bit in IRQ_STATUS goes
 * 0->1, when IRQ_ENABLE goes 0->1 with bits pending and when a W1C leaves
 * bits set, so a driver that acks IRQ_STATUS and then reads WR_COUNT never
 * misses a completion.  Needs the BQL.
 */
static void fstr_drive_irq(FstrState *s, bool level, bool notify)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    if (msi_enabled(pdev)) {
        pci_set_irq(pdev, 0);
        if (level && notify) {
            msi_notify(pdev, 0);
        }
    } else {
        pci_set_irq(pdev, level);
    }
}

/*
 * Note that IRQ_STATUS, IRQ_ENABLE or the MSI state changed; @notify as for
 * fstr_drive_irq().  Called with s->lock held; fstr_unlock() drives the
 * interrupt, or irq_bh for a caller without the BQL (the engine thread).
 */
static void fstr_update_irq(FstrState *s, bool notify)
{
    s->irq_dirty = true;
    s->irq_notify |= notify;
    if (!qemu_mutex_iothread_locked()) {
        qemu_bh_schedule(s->irq_bh);
    }
}

/*
 * Release s->lock, then drive the interrupt if it changed.  Driving it
 * needs the BQL and must not hold s->lock: an MSI is a memory write, which
 * the guest may aim at our own BARs, whose handlers take s->lock; and
 * irq_bh runs a main-loop wakeup after the engine signalled, about when
 * the engine comes back for s->lock.  What is driven cannot go stale in a
 * way that matters: everything else that changes it holds the BQL too,
 * and the engine, which does not, schedules irq_bh again.
 */
static void fstr_unlock(FstrState *s)
{
    bool drive = s->irq_dirty && qemu_mutex_iothread_locked();
    /* A board whose link is down sends no interrupt message at all. */
    bool level = !s->link_down && (s->ctrl & CTRL_IRQ_ENABLE) &&
                 s->irq_status;
    bool notify = s->irq_notify;

    if (drive) {
        s->irq_dirty = false;
        s->irq_notify = false;
    }
    qemu_mutex_unlock(&s->lock);
    if (drive) {
        fstr_drive_irq(s, level, notify);
    }
}

static void fstr_irq_bh(void *opaque)
{
    FstrState *s = opaque;

    qemu_mutex_lock(&s->lock);
    fstr_unlock(s);
}

static void fstr_raise_irq(FstrState *s, uint32_t bits)
{
    uint32_t new_bits = bits & ~s->irq_status;

    s->irq_status |= bits;
    fstr_update_irq(s, new_bits != 0);
}

/* Raise BLOCKS_DONE for all completed blocks not signalled yet. */
static void fstr_signal_blocks(FstrState *s)
{
    s->unsignalled = 0;
    timer_del(&s->coalesce_timer);
    fstr_raise_irq(s, IRQ_BLOCKS_DONE);
}

/* Re-evaluate the coalescing condition (block completed, registers changed). */
static void fstr_coalesce_check(FstrState *s)
{
    int64_t deadline;

    if (!s->unsignalled) {
        timer_del(&s->coalesce_timer);
        return;
    }
    if (s->unsignalled >= MAX(1, s->coalesce_count)) {
        fstr_signal_blocks(s);
        return;
    }
    if (!s->coalesce_usec) {
        timer_del(&s->coalesce_timer);
        return;
    }
    deadline = s->unsignalled_since + (int64_t)s->coalesce_usec * SCALE_US;
    if (deadline <= qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL)) {
        fstr_signal_blocks(s);
    } else if (!timer_pending(&s->coalesce_timer) ||
               timer_expire_time_ns(&s->coalesce_timer) != deadline) {
        timer_mod(&s->coalesce_timer, deadline);
    }
}

/* Re-checks: the engine may have signalled while this waited for s->lock. */
static void fstr_coalesce_timer_cb(void *opaque)
{
    FstrState *s = opaque;

    qemu_mutex_lock(&s->lock);
    fstr_coalesce_check(s);
    fstr_unlock(s);
}

/* ---------------------------------------------------------------------- */
/* Source model                                                            */
/* ---------------------------------------------------------------------- */

/*
 * Tell the engine thread that it may be able to make progress.  Called with
 * s->lock held, so that the signal cannot fall between the engine's check
 * and its wait.
 */
static void fstr_kick(FstrState *s)
{
    qemu_cond_signal(&s->wake);
}

static uint64_t fstr_fifo_len(FstrState *s)
{
    return s->src_seq - s->wr_count - s->drop_count;
}

/*
 * Discard the oldest queued blocks beyond the FIFO size.  The head of the
 * FIFO, while the engine writes it, has left it and is not discarded: the
 * block written at ring position k keeps s = k + DROP_COUNT.  (Flow control
 * can hold the engine mid-write only if the guest turns FLOW_CONTROL on in
 * an overrun ring or moves RD_COUNT back.)
 */
static void fstr_fifo_trim(FstrState *s)
{
    uint64_t queued = fstr_fifo_len(s);
    uint64_t keep = s->fifo_blocks + (s->dma_busy && queued ? 1 : 0);

    if (queued > keep) {
        s->drop_count += queued - keep;
    }
}

static uint64_t fstr_source_limit(FstrState *s)
{
    return s->burst ? s->burst : UINT64_MAX;
}

/* Restart pacing from now (engine start, rate change, slip). */
static void fstr_source_rebase(FstrState *s)
{
    s->src_t0 = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    s->src_base = s->src_seq;
    timer_del(&s->src_timer);
}

/*
 * Bring the paced source up to now: account for the blocks it produced
 * since it was last looked at.  The source runs only while the engine runs.
 * Callers that change s->held call this first, so that each stretch of
 * time is accounted under the held state it had.  Any caller may be the one
 * that finds new blocks (a DROP_COUNT read, say), and a slip cancels the
 * arrival timer the engine may be waiting for: so kick the engine.
 */
static void fstr_source_advance(FstrState *s)
{
    int64_t elapsed;
    uint64_t due, room;

    if (!s->running || !s->rate) {
        return;
    }
    elapsed = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) - s->src_t0;
    due = s->src_base + muldiv64(MAX(elapsed, 0), s->rate,
                                 NANOSECONDS_PER_SECOND);
    due = MIN(due, fstr_source_limit(s));
    if (due <= s->src_seq) {
        return;
    }
    fstr_kick(s);
    if (s->held) {
        s->src_seq = due;
        fstr_fifo_trim(s);      /* the host holds the ring: drop */
        return;
    }
    room = s->fifo_blocks - MIN(fstr_fifo_len(s), s->fifo_blocks);
    if (due - s->src_seq <= room) {
        s->src_seq = due;
        return;
    }
    /* The emulator fell behind on its own: fill the FIFO, then slip. */
    s->src_seq += room;
    fstr_source_rebase(s);
}

/* Wake the engine when the paced source produces its next block. */
static void fstr_source_arm(FstrState *s)
{
    uint64_t n = s->src_seq + 1 - s->src_base;
    int64_t when = s->src_t0 +
        muldiv64(n, NANOSECONDS_PER_SECOND, s->rate) + 1;

    if (!timer_pending(&s->src_timer) ||
        timer_expire_time_ns(&s->src_timer) != when) {
        timer_mod(&s->src_timer, when);
    }
}

static void fstr_src_timer_cb(void *opaque)
{
    FstrState *s = opaque;

    qemu_mutex_lock(&s->lock);
    fstr_kick(s);
    fstr_unlock(s);
}

/*
 * Track whether flow control holds the engine (block k = WR_COUNT may not
 * start while k - RD_COUNT >= RING_SIZE).  Called whenever WR_COUNT,
 * RD_COUNT, FLOW_CONTROL or RUNNING change.
 */
static void fstr_update_held(FstrState *s)
{
    bool held = s->running && (s->ctrl & CTRL_FLOW_CONTROL) &&
                (uint32_t)((uint32_t)s->wr_count - s->rd_count) >=
                s->ring_size;

    if (held == s->held) {
        return;
    }
    fstr_source_advance(s);     /* account up to now in the old state */
    s->held = held;
    s->holds += held;
    if (!held) {
        fstr_kick(s);
    }
}

/* ---------------------------------------------------------------------- */
/* Engine state                                                            */
/* ---------------------------------------------------------------------- */

/*
 * IDLE means no block write is in flight at this moment: the memory must
 * stay mapped while it reads 0.  It reads 1 between blocks while the engine
 * runs and waits (for a slow source, for RD_COUNT under flow control, after
 * a burst); only RUNNING 0 and IDLE 1 in one read mean the engine can no
 * longer write (datasheet 1.1).
 */
static uint32_t fstr_status(FstrState *s)
{
    return s->status_sticky | (s->running ? STATUS_RUNNING : 0) |
           (!s->dma_busy && !s->idle_hold ? STATUS_IDLE : 0);
}

/*
 * Wait, with s->lock held, for a block write that runs without any lock to
 * end, so that nothing reaches host memory after a reset or a link loss
 * returns.  Behind a guest IOMMU the write takes the BQL, which our caller
 * holds, and checks under it that the block is still wanted (the caller
 * bumped s->gen): nothing to wait for.  Bounded, for a write that lands in
 * our own BARs and so runs this from inside itself.
 */
static void fstr_drain_dma(FstrState *s)
{
    int64_t end = qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + FSTR_DMA_DRAIN_MS;

    while (s->dma_busy && !s->dma_translated &&
           qemu_clock_get_ms(QEMU_CLOCK_REALTIME) < end) {
        qemu_cond_timedwait(&s->dma_done, &s->lock, 10);
    }
}

/* Next stop delay: fixed by stop-delay-us, or drawn from the PRNG. */
static uint32_t fstr_next_stop_delay_us(FstrState *s)
{
    uint64_t r;

    if (s->prop_stop_delay_us >= 0) {
        return s->prop_stop_delay_us;
    }
    r = splitmix64(s->stop_rng);
    s->stop_rng += 0x9e3779b97f4a7c15ull;
    return r % (FSTR_STOP_DELAY_MAX_US + 1);
}

/* Start the stop-delay sequence again from @seed (power-on, EMU_STOP_SEED). */
static void fstr_stop_reseed(FstrState *s, uint64_t seed)
{
    s->stop_seed = seed;
    s->stop_rng = seed;
}

/* ENABLE 0->1 with no fault pending: stream.  Called with the BQL. */
static void fstr_engine_start(FstrState *s)
{
    /* The IOMMU is known once the machine is up; looking needs the BQL. */
    s->dma_translated = pci_device_iommu_address_space(PCI_DEVICE(s)) !=
                        &address_space_memory;
    s->gen++;
    s->running = true;
    s->stop_pending = false;
    timer_del(&s->stop_timer);
    s->idle_hold = false;
    timer_del(&s->idle_timer);
    fstr_source_rebase(s);
    fstr_update_held(s);
    fstr_kick(s);
}

/*
 * The engine stops: RUNNING clears, and a block in flight is abandoned
 * (IDLE reads 1 once its write is over).  A fault stops at once (the
 * faulting block was never started); a stop by ENABLE comes here when its
 * delay is over (fstr_stop_timer_cb), and the injected IDLE stall then
 * holds IDLE clear for 50 ms more.
 */
static void fstr_engine_stop(FstrState *s, bool fault)
{
    fstr_source_advance(s);     /* count what the source produced so far */
    s->gen++;
    s->running = false;
    s->held = false;
    s->stop_pending = false;
    timer_del(&s->stop_timer);
    timer_del(&s->src_timer);
    if (!fault && (s->inject & INJECT_STALL_IDLE)) {
        s->inject &= ~INJECT_STALL_IDLE;
        s->idle_hold = true;
        timer_mod(&s->idle_timer, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                  FSTR_STALL_IDLE_DELAY_NS);
    }
}

/*
 * ENABLE 1->0: the stop takes effect after the next stop delay.  Until
 * then the engine goes on as before, starting blocks, and RUNNING reads 1.
 */
static void fstr_engine_request_stop(FstrState *s)
{
    s->stop_delay_us = fstr_next_stop_delay_us(s);
    if (!s->stop_delay_us) {
        fstr_engine_stop(s, false);
        return;
    }
    s->stop_pending = true;
    timer_mod(&s->stop_timer, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
              (int64_t)s->stop_delay_us * SCALE_US);
}

static void fstr_stop_timer_cb(void *opaque)
{
    FstrState *s = opaque;

    qemu_mutex_lock(&s->lock);
    if (s->stop_pending && s->running) {
        fstr_engine_stop(s, false);
    }
    fstr_unlock(s);
}

static void fstr_idle_timer_cb(void *opaque)
{
    FstrState *s = opaque;

    qemu_mutex_lock(&s->lock);
    s->idle_hold = false;
    fstr_unlock(s);
}

/*
 * The engine stays stopped after a fault, with CTRL.ENABLE still reading 1:
 * clearing the STATUS bit does not restart it, only ENABLE 0->1 does (or
 * SOFT_RESET and ENABLE), so no DMA resumes behind the driver's back.
 */
static void fstr_fault(FstrState *s, uint32_t status_bit)
{
    s->status_sticky |= status_bit;
    fstr_raise_irq(s, IRQ_ERROR);
    fstr_engine_stop(s, true);
}

/*
 * The link goes down (EMU_INJECT 8, or 32 after its AER message): the
 * engine stops at once, abandoning a block in flight, and once this
 * returns no write of the board reaches host memory and no interrupt is
 * sent (fstr_unlock() drives the level low).  Only a reset of the function
 * or of its port (fstr_reset()) brings it back; FLR cannot be written
 * over the dead link, so that leaves the port's secondary bus reset.
 * Called with the BQL and s->lock.
 */
static void fstr_link_down(FstrState *s)
{
    if (s->running) {
        fstr_engine_stop(s, true);
    }
    s->link_down = true;
    s->gen++;
    timer_del(&s->coalesce_timer);
    timer_del(&s->idle_timer);
    s->idle_hold = false;
    fstr_drain_dma(s);
    fstr_update_irq(s, false);
}

/*
 * SOFT_RESET: stop at once, abandoning a block in flight, and zero the
 * counters, the interrupt state, the sticky STATUS bits and the source.
 * The LUT, RING_SIZE, coalescing and test-block registers are kept.
 */
static void fstr_soft_reset(FstrState *s)
{
    s->gen++;
    s->ctrl = 0;
    s->running = false;
    s->stop_pending = false;
    s->idle_hold = false;
    s->status_sticky = 0;
    s->wr_count = 0;
    s->rd_count = 0;
    s->drop_count = 0;
    s->irq_status = 0;
    s->unsignalled = 0;
    s->unsignalled_since = 0;
    s->src_seq = 0;
    s->src_base = 0;
    s->src_t0 = 0;
    s->held = false;
    s->holds = 0;
    timer_del(&s->stop_timer);
    timer_del(&s->idle_timer);
    timer_del(&s->src_timer);
    timer_del(&s->coalesce_timer);
    fstr_update_irq(s, false);
}

/* ---------------------------------------------------------------------- */
/* Engine thread                                                           */
/* ---------------------------------------------------------------------- */

/*
 * Can the engine start a block now?  If so, return true with the block's
 * source sequence number in *seq.  Called with s->lock held.
 */
static bool fstr_engine_next(FstrState *s, uint64_t *seq)
{
    if (s->stopping || !s->running) {
        return false;
    }
    if (s->held) {
        return false;           /* ring full: RD_COUNT writes wake us */
    }
    fstr_source_advance(s);
    if (!fstr_fifo_len(s)) {
        if (s->src_seq >= fstr_source_limit(s)) {
            return false;       /* burst done */
        }
        if (s->rate) {
            fstr_source_arm(s);
            return false;       /* wait for the next arrival */
        }
        /* rate 0: the source produces this block on demand */
    }
    *seq = s->wr_count + s->drop_count;     /* the FIFO head */
    return true;
}

/*
 * Write the block in s->buf, started in generation @gen, to bus address
 * @addr.  Called without s->lock.  Behind a guest IOMMU the write takes the
 * BQL: the IOMMU's translation and the interrupt it raises on a fault need
 * it; and under the BQL a block gone stale (a reset, which also resets the
 * IOMMU, say) is not written at all.  Without one, the bus is the guest's
 * memory and the write needs no lock (a write that lands in MMIO takes the
 * BQL by itself).  The caller abandons a stale block either way.
 */
static MemTxResult fstr_engine_dma(FstrState *s, bool translated,
                                   uint32_t gen, uint64_t addr)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    MemTxResult res = MEMTX_OK;
    bool stale;

    if (!translated) {
        return pci_dma_write(pdev, addr, s->buf, FSTR_BLOCK_SIZE);
    }
    qemu_mutex_lock_iothread();
    qemu_mutex_lock(&s->lock);
    stale = gen != s->gen || !s->running;
    fstr_unlock(s);
    if (!stale) {
        res = pci_dma_write(pdev, addr, s->buf, FSTR_BLOCK_SIZE);
    }
    qemu_mutex_unlock_iothread();
    return res;
}

static bool fstr_lut_addr_ok(FstrState *s, uint64_t addr)
{
    return s->dma_addr_bits >= 64 || !(addr >> s->dma_addr_bits);
}

/*
 * Generate and write block k = WR_COUNT with source sequence @seq, then
 * complete it.  Called with s->lock held, right after fstr_engine_next()
 * returned true with @seq.  The expensive part, the pattern and the copy,
 * runs without s->lock; STATUS.IDLE stays clear meanwhile (fstr_status()).
 */
static void fstr_engine_write_block(FstrState *s, uint64_t seq)
{
    uint32_t k = (uint32_t)s->wr_count;
    uint64_t entry = s->lut[k % s->ring_size];
    uint64_t addr = entry & LUT_ADDR_MASK;
    uint32_t gen = s->gen;
    uint64_t seed = s->seed;
    bool translated = s->dma_translated;
    MemTxResult res;

    assert(seq == s->wr_count + s->drop_count);     /* the FIFO head */
    if (s->inject & INJECT_LUT_FAULT) {
        s->inject &= ~INJECT_LUT_FAULT;
        fstr_fault(s, STATUS_LUT_FAULT);
        return;
    }
    if (!(entry & LUT_VALID) || !fstr_lut_addr_ok(s, addr)) {
        fstr_fault(s, STATUS_LUT_FAULT);
        return;
    }
    if (s->inject & INJECT_DMA_ERROR) {
        s->inject &= ~INJECT_DMA_ERROR;
        fstr_fault(s, STATUS_DMA_ERROR);
        return;
    }
    if (s->inject & INJECT_AER_NONFATAL) {
        /* The block's first write met a completer abort: report, stop. */
        s->inject &= ~INJECT_AER_NONFATAL;
        fstr_fault(s, STATUS_DMA_ERROR);
        s->aer_pending |= AER_SEND_NONFATAL;
        qemu_bh_schedule(s->aer_bh);
        return;
    }
    if (!(s->ctrl & CTRL_FLOW_CONTROL) &&
        (uint32_t)(k - s->rd_count) >= s->ring_size) {
        s->status_sticky |= STATUS_OVERRUN;
    }

    s->dma_busy = true;
    qemu_mutex_unlock(&s->lock);
    fstr_fill_block(s->buf, seed, seq);
    res = fstr_engine_dma(s, translated, gen, addr);
    qemu_mutex_lock(&s->lock);
    s->dma_busy = false;
    qemu_cond_broadcast(&s->dma_done);
    /*
     * The guest may have stopped or reset the engine meanwhile, and a DMA
     * into our own BARs runs our MMIO handlers from here: then the block
     * is abandoned, and so is its fault.
     */
    if (gen != s->gen || !s->running) {
        return;
    }
    if (res != MEMTX_OK) {
        fstr_fault(s, STATUS_DMA_ERROR);
        return;
    }

    if (!fstr_fifo_len(s)) {
        s->src_seq++;           /* produced on demand (rate 0) */
    }
    s->wr_count++;              /* the block is whole in memory: announce */
    fstr_update_held(s);

    if (s->unsignalled++ == 0) {
        s->unsignalled_since = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    }
    fstr_coalesce_check(s);
}

static void *fstr_engine_thread(void *opaque)
{
    FstrState *s = opaque;

    rcu_register_thread();      /* pci_dma_write() reads RCU-protected maps */
    /* Named even without -name debug-threads=on: for top -H and taskset. */
    pthread_setname_np(pthread_self(), "fstr-engine");
    qemu_mutex_lock(&s->lock);
    while (!s->stopping) {
        uint64_t seq;

        if (!fstr_engine_next(s, &seq)) {
            qemu_cond_wait(&s->wake, &s->lock);
            continue;
        }
        fstr_engine_write_block(s, seq);
    }
    qemu_mutex_unlock(&s->lock);
    rcu_unregister_thread();
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* BAR0: registers and test block                                          */
/* ---------------------------------------------------------------------- */

static uint32_t fstr_regs_read_locked(FstrState *s, hwaddr addr)
{
    switch (addr) {
    case REG_ID:
        return FSTR_ID;
    case REG_VERSION:
        return FSTR_VERSION;
    case REG_LUT_CAPACITY:
        return s->lut_capacity;
    case REG_BLOCK_SHIFT:
        return FSTR_BLOCK_SHIFT;
    case REG_DMA_ADDR_BITS:
        return s->dma_addr_bits;
    case REG_CTRL:
        return s->ctrl;
    case REG_STATUS:
        return fstr_status(s);
    case REG_RING_SIZE:
        return s->ring_size;
    case REG_WR_COUNT:
        return (uint32_t)s->wr_count;
    case REG_RD_COUNT:
        return s->rd_count;
    case REG_DROP_COUNT:
        fstr_source_advance(s);         /* drops happen even when stalled */
        return (uint32_t)s->drop_count;
    case REG_IRQ_STATUS:
        return s->irq_status;
    case REG_IRQ_COALESCE_COUNT:
        return s->coalesce_count;
    case REG_IRQ_COALESCE_USEC:
        return s->coalesce_usec;
    case REG_SCRATCH:
        return s->scratch;
    case REG_EMU_RATE:
        return s->rate;
    case REG_EMU_SEED:
        return (uint32_t)s->seed;
    case REG_EMU_BURST:
        return s->burst;
    case REG_EMU_INJECT:
        return s->inject;
    case REG_EMU_FIFO_BLOCKS:
        return s->fifo_blocks;
    case REG_EMU_HOLDS:
        return s->holds;
    case REG_EMU_STOP_SEED:
        return (uint32_t)s->stop_seed;
    case REG_EMU_STOP_DELAY:
        return s->stop_delay_us;
    default:
        return 0;
    }
}

/* What a read over a dead link completes with (a completion timeout). */
static uint64_t fstr_all_ones(unsigned size)
{
    return size >= 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
}

static uint64_t fstr_regs_read(void *opaque, hwaddr addr, unsigned size)
{
    FstrState *s = opaque;
    uint32_t val;

    if (s->link_down) {
        return fstr_all_ones(size);
    }
    if (size != 4 || (addr & 3)) {
        qemu_log_mask(LOG_GUEST_ERROR, "fstr: BAR0 read of %u bytes at 0x%"
                      HWADDR_PRIx " ignored: registers are 32-bit\n",
                      size, addr);
        return 0;
    }
    qemu_mutex_lock(&s->lock);
    val = fstr_regs_read_locked(s, addr);
    fstr_unlock(s);
    return val;
}

static void fstr_write_ctrl(FstrState *s, uint32_t val)
{
    uint32_t old = s->ctrl;

    if (val & CTRL_SOFT_RESET) {
        /* The other bits of this write are ignored: CTRL becomes 0. */
        fstr_soft_reset(s);
        return;
    }
    s->ctrl = val & CTRL_RW_MASK;
    if ((s->ctrl & CTRL_ENABLE) && !(old & CTRL_ENABLE) &&
        s->stop_pending) {
        /* ENABLE again before the stop took effect: it never happens. */
        s->stop_pending = false;
        timer_del(&s->stop_timer);
    } else if ((s->ctrl & CTRL_ENABLE) && !(old & CTRL_ENABLE) &&
               !(s->status_sticky & STATUS_FAULTS)) {
        fstr_engine_start(s);
    } else if (!(s->ctrl & CTRL_ENABLE) && s->running && !s->stop_pending) {
        fstr_engine_request_stop(s);
    }
    fstr_update_held(s);        /* FLOW_CONTROL may have changed */
    fstr_kick(s);
    fstr_update_irq(s, !(old & CTRL_IRQ_ENABLE));
}

static void fstr_regs_write_locked(FstrState *s, hwaddr addr, uint32_t val)
{
    uint32_t old;

    switch (addr) {
    case REG_CTRL:
        fstr_write_ctrl(s, val);
        break;
    case REG_STATUS:
        s->status_sticky &= ~(val & STATUS_STICKY);
        break;
    case REG_RING_SIZE:
        if (!s->running && val >= 1 && val <= s->lut_capacity) {
            s->ring_size = val;
        }
        break;
    case REG_RD_COUNT:
        s->rd_count = val;
        fstr_update_held(s);            /* may release the engine */
        fstr_kick(s);
        break;
    case REG_IRQ_STATUS:
        old = s->irq_status;
        s->irq_status &= ~(val & IRQ_ALL);
        fstr_update_irq(s, s->irq_status && s->irq_status != old);
        break;
    case REG_IRQ_COALESCE_COUNT:
        s->coalesce_count = val;
        fstr_coalesce_check(s);
        break;
    case REG_IRQ_COALESCE_USEC:
        s->coalesce_usec = val;
        fstr_coalesce_check(s);
        break;
    case REG_SCRATCH:
        s->scratch = val;
        break;
    case REG_EMU_RATE:
        fstr_source_advance(s);         /* at the old rate up to now */
        s->rate = val;
        fstr_source_rebase(s);
        fstr_kick(s);
        break;
    case REG_EMU_SEED:
        s->seed = val;
        s->gen++;
        break;
    case REG_EMU_BURST:
        fstr_source_advance(s);
        s->burst = val;
        fstr_kick(s);
        break;
    case REG_EMU_INJECT:
        s->inject |= val & INJECT_ARMED;
        if (val & (INJECT_LINK_DOWN | INJECT_AER_FATAL)) {
            fstr_link_down(s);
        }
        if (val & INJECT_AER_FATAL) {
            s->aer_pending |= AER_SEND_FATAL;
            qemu_bh_schedule(s->aer_bh);
        }
        break;
    case REG_EMU_STOP_SEED:
        fstr_stop_reseed(s, val);
        break;
    case REG_EMU_FIFO_BLOCKS:
        fstr_source_advance(s);
        s->fifo_blocks = MAX(val, 1);
        fstr_fifo_trim(s);
        fstr_kick(s);
        break;
    default:
        /* read-only or unknown: ignored */
        break;
    }
}

static void fstr_regs_write(void *opaque, hwaddr addr, uint64_t val64,
                            unsigned size)
{
    FstrState *s = opaque;

    if (s->link_down) {
        return;                 /* lost on the dead link */
    }
    if (size != 4 || (addr & 3)) {
        qemu_log_mask(LOG_GUEST_ERROR, "fstr: BAR0 write of %u bytes at 0x%"
                      HWADDR_PRIx " ignored: registers are 32-bit\n",
                      size, addr);
        return;
    }
    qemu_mutex_lock(&s->lock);
    fstr_regs_write_locked(s, addr, val64);
    fstr_unlock(s);
}

static const MemoryRegionOps fstr_regs_ops = {
    .read = fstr_regs_read,
    .write = fstr_regs_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    /* Accept everything, act only on aligned 32-bit accesses (see above). */
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = true,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = true,
    },
};

/* ---------------------------------------------------------------------- */
/* BAR2: the LUT                                                           */
/* ---------------------------------------------------------------------- */

static uint64_t fstr_lut_read(void *opaque, hwaddr addr, unsigned size)
{
    FstrState *s = opaque;
    uint64_t idx = addr / 8;
    uint64_t entry;

    if (s->link_down) {
        return fstr_all_ones(size);
    }
    if (idx >= s->lut_capacity) {
        return 0;               /* BAR padding beyond the LUT */
    }
    qemu_mutex_lock(&s->lock);
    entry = s->lut[idx];
    fstr_unlock(s);
    if (size == 8) {
        return entry;
    }
    return (addr & 4) ? entry >> 32 : (uint32_t)entry;
}

/*
 * 64-bit writes take effect at once; of two 32-bit writes the low half is
 * held until the high half arrives, so the engine never sees half an entry.
 */
static void fstr_lut_write(void *opaque, hwaddr addr, uint64_t val,
                           unsigned size)
{
    FstrState *s = opaque;
    uint64_t idx = addr / 8;

    if (s->link_down || idx >= s->lut_capacity) {
        return;
    }
    qemu_mutex_lock(&s->lock);
    if (size == 8) {
        s->lut[idx] = val;
        s->lut_low[idx] = (uint32_t)val;
    } else if (!(addr & 4)) {
        s->lut_low[idx] = val;
    } else {
        s->lut[idx] = (uint64_t)s->lut_low[idx] | (val << 32);
    }
    fstr_unlock(s);
}

static const MemoryRegionOps fstr_lut_ops = {
    .read = fstr_lut_read,
    .write = fstr_lut_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    /* aligned 32- and 64-bit accesses only; the core rejects the rest */
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
};

/* ---------------------------------------------------------------------- */
/* Device lifecycle                                                        */
/* ---------------------------------------------------------------------- */

/*
 * Power-on and every reset QEMU delivers to the device: FLR
 * (pcie_cap_flr_write_config()), the port's secondary bus reset, a machine
 * reset and the reset of an S3 wakeup.  Everything returns to its
 * power-on value: registers, the LUT (entries 0, not VALID), the test
 * block, the stop-delay PRNG, and the link comes back up.  The engine
 * stops at once; a block write in flight is abandoned, and over by the
 * time this returns (fstr_drain_dma()).  Of the configuration space, MSI
 * and DEVCTL's error reporting enables are reset here; QEMU's PCI core
 * resets the rest (BARs, COMMAND) after this.  AER status is sticky.
 */
static void fstr_reset(DeviceState *dev)
{
    FstrState *s = FSTR(dev);

    qemu_mutex_lock(&s->lock);
    fstr_soft_reset(s);
    fstr_drain_dma(s);
    s->link_down = false;
    s->aer_pending = 0;
    s->stop_delay_us = 0;
    fstr_stop_reseed(s, s->prop_stop_seed);
    memset(s->lut, 0, sizeof(*s->lut) * s->lut_capacity);
    memset(s->lut_low, 0, sizeof(*s->lut_low) * s->lut_capacity);
    s->ring_size = s->lut_capacity;
    s->coalesce_count = 0;
    s->coalesce_usec = 0;
    s->scratch = 0;
    s->rate = s->prop_rate;
    s->seed = s->prop_seed;
    s->burst = 0;
    s->inject = 0;
    s->fifo_blocks = FSTR_FIFO_DEFAULT;
    s->irq_notify = false;
    msi_reset(PCI_DEVICE(s));
    /* DEVCTL's error reporting enables are off at power-on, too. */
    pcie_cap_deverr_reset(PCI_DEVICE(s));
    pci_set_irq(PCI_DEVICE(s), 0);
    fstr_unlock(s);
}

/*
 * Send the AER messages the engine or a register write queued.  Runs in
 * the main loop with the BQL, without s->lock: the root port's interrupt
 * is a memory write like an MSI (see fstr_unlock()).  A message is sent
 * only if the guest enabled its severity in DEVCTL (or SERR), as the PCIe
 * core does; Linux enables reporting for every device with AER.
 */
static void fstr_aer_bh(void *opaque)
{
    FstrState *s = opaque;
    PCIDevice *pdev = PCI_DEVICE(s);
    uint32_t pending;
    PCIEAERErr err = { .source_id = pci_requester_id(pdev) };

    qemu_mutex_lock(&s->lock);
    pending = s->aer_pending;
    s->aer_pending = 0;
    fstr_unlock(s);

    if (pending & AER_SEND_NONFATAL) {
        /* Completer abort: uncorrectable, non-fatal by default severity. */
        err.status = PCI_ERR_UNC_COMP_ABORT;
        if (pcie_aer_inject_error(pdev, &err) < 0) {
            qemu_log_mask(LOG_GUEST_ERROR, "fstr: AER completer abort not sent\n");
        }
    }
    if (pending & AER_SEND_FATAL) {
        /* Data link protocol error: fatal by default severity. */
        err.status = PCI_ERR_UNC_DLP;
        if (pcie_aer_inject_error(pdev, &err) < 0) {
            qemu_log_mask(LOG_GUEST_ERROR, "fstr: AER DLP error not sent\n");
        }
    }
}

/* Over a dead link every configuration read completes with all ones. */
static uint32_t fstr_config_read(PCIDevice *pdev, uint32_t addr, int len)
{
    FstrState *s = FSTR(pdev);

    if (s->link_down) {
        return fstr_all_ones(len);
    }
    return pci_default_read_config(pdev, addr, len);
}

/*
 * Configuration writes: lost while the link is down; FLR resets the
 * device; AER status writes; an MSI enable change moves a pending level.
 */
static void fstr_config_write(PCIDevice *pdev, uint32_t addr, uint32_t val,
                              int len)
{
    FstrState *s = FSTR(pdev);
    bool msi_was = msi_enabled(pdev);

    if (s->link_down) {
        return;
    }
    pci_default_write_config(pdev, addr, val, len);
    pcie_aer_write_config(pdev, addr, val, len);
    if (s->prop_flr) {
        pcie_cap_flr_write_config(pdev, addr, val, len);    /* resets */
    }
    if (msi_enabled(pdev) != msi_was) {
        qemu_mutex_lock(&s->lock);
        fstr_update_irq(s, true);
        fstr_unlock(s);
    }
}

static void fstr_realize(PCIDevice *pdev, Error **errp)
{
    FstrState *s = FSTR(pdev);
    uint64_t lut_bar_size;

    if (s->lut_capacity < 1 || s->lut_capacity > FSTR_LUT_CAPACITY_MAX) {
        error_setg(errp, "fstr: lut-capacity must be 1..%u, not %u",
                   FSTR_LUT_CAPACITY_MAX, s->lut_capacity);
        return;
    }
    if (s->dma_addr_bits != 32 && s->dma_addr_bits != 64) {
        error_setg(errp, "fstr: dma-addr-bits must be 32 or 64, not %u",
                   s->dma_addr_bits);
        return;
    }

    if (s->prop_stop_delay_us < -1 ||
        s->prop_stop_delay_us > FSTR_STOP_DELAY_MAX_US) {
        error_setg(errp, "fstr: stop-delay-us must be -1 (random) or 0..%d, not %d",
                   FSTR_STOP_DELAY_MAX_US, s->prop_stop_delay_us);
        return;
    }

    /* Production boards carry their own IDs: let tests bind one by ids=. */
    pci_config_set_device_id(pdev->config, s->prop_device_id);
    pci_config_set_interrupt_pin(pdev->config, 1);
    if (s->prop_msi && msi_init(pdev, 0, 1, true, false, errp)) {
        return;
    }
    /*
     * A PCI Express endpoint (behind a root port; on the root bus QEMU
     * makes it a root-complex integrated endpoint, whose AER messages no
     * port hears) with the AER capability and, if asked, FLR.
     */
    if (pcie_endpoint_cap_init(pdev, FSTR_PCIE_CAP_OFFSET) < 0) {
        error_setg(errp, "fstr: cannot add the PCI Express capability");
        goto fail_msi;
    }
    /* DEVCTL's error reporting enables, which Linux sets for AER. */
    pcie_cap_deverr_init(pdev);
    if (s->prop_flr) {
        pcie_cap_flr_init(pdev);
    }
    if (pcie_aer_init(pdev, PCI_ERR_VER, FSTR_AER_OFFSET, PCI_ERR_SIZEOF,
                      errp) < 0) {
        goto fail_pcie;
    }

    s->lut = g_new0(uint64_t, s->lut_capacity);
    s->lut_low = g_new0(uint32_t, s->lut_capacity);
    s->buf = qemu_memalign(64, FSTR_BLOCK_SIZE);
    s->ring_size = s->lut_capacity;
    s->rate = s->prop_rate;
    s->seed = s->prop_seed;
    s->fifo_blocks = FSTR_FIFO_DEFAULT;
    fstr_stop_reseed(s, s->prop_stop_seed);

    memory_region_init_io(&s->regs, OBJECT(s), &fstr_regs_ops, s,
                          "fstr-regs", FSTR_BAR0_SIZE);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &s->regs);

    lut_bar_size = MAX(pow2ceil((uint64_t)s->lut_capacity * 8), 4 * KiB);
    memory_region_init_io(&s->lut_bar, OBJECT(s), &fstr_lut_ops, s,
                          "fstr-lut", lut_bar_size);
    pci_register_bar(pdev, 2, PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, &s->lut_bar);

    timer_init_ns(&s->coalesce_timer, QEMU_CLOCK_VIRTUAL,
                  fstr_coalesce_timer_cb, s);
    timer_init_ns(&s->idle_timer, QEMU_CLOCK_VIRTUAL, fstr_idle_timer_cb, s);
    timer_init_ns(&s->src_timer, QEMU_CLOCK_VIRTUAL, fstr_src_timer_cb, s);
    timer_init_ns(&s->stop_timer, QEMU_CLOCK_VIRTUAL, fstr_stop_timer_cb, s);

    s->irq_bh = qemu_bh_new(fstr_irq_bh, s);
    s->aer_bh = qemu_bh_new(fstr_aer_bh, s);
    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->wake);
    qemu_cond_init(&s->dma_done);
    s->stopping = false;
    qemu_thread_create(&s->thread, "fstr-engine", fstr_engine_thread, s,
                       QEMU_THREAD_JOINABLE);
    return;

fail_pcie:
    pcie_cap_exit(pdev);
fail_msi:
    msi_uninit(pdev);
}

static void fstr_exit(PCIDevice *pdev)
{
    FstrState *s = FSTR(pdev);

    qemu_mutex_lock(&s->lock);
    s->stopping = true;
    s->gen++;
    fstr_kick(s);
    fstr_unlock(s);
    /* Behind an IOMMU the thread needs the BQL to finish its write. */
    qemu_mutex_unlock_iothread();
    qemu_thread_join(&s->thread);
    qemu_mutex_lock_iothread();

    timer_del(&s->coalesce_timer);
    timer_del(&s->idle_timer);
    timer_del(&s->src_timer);
    timer_del(&s->stop_timer);
    qemu_bh_delete(s->irq_bh);
    qemu_bh_delete(s->aer_bh);
    qemu_cond_destroy(&s->wake);
    qemu_cond_destroy(&s->dma_done);
    qemu_mutex_destroy(&s->lock);
    pcie_aer_exit(pdev);
    pcie_cap_exit(pdev);
    msi_uninit(pdev);
    g_free(s->lut);
    g_free(s->lut_low);
    qemu_vfree(s->buf);
    s->lut = NULL;
    s->lut_low = NULL;
    s->buf = NULL;
}

/* The engine thread and the lazy source model are not migratable. */
static const VMStateDescription vmstate_fstr = {
    .name = TYPE_FSTR,
    .unmigratable = 1,
};

static Property fstr_properties[] = {
    DEFINE_PROP_UINT32("lut-capacity", FstrState, lut_capacity, 65536),
    DEFINE_PROP_UINT32("dma-addr-bits", FstrState, dma_addr_bits, 64),
    DEFINE_PROP_UINT32("rate", FstrState, prop_rate, 0),
    DEFINE_PROP_UINT64("seed", FstrState, prop_seed, 0),
    DEFINE_PROP_UINT16("device-id", FstrState, prop_device_id, FSTR_DEVICE_ID),
    DEFINE_PROP_BOOL("flr", FstrState, prop_flr, true),
    DEFINE_PROP_BOOL("msi", FstrState, prop_msi, true),
    DEFINE_PROP_INT32("stop-delay-us", FstrState, prop_stop_delay_us, -1),
    DEFINE_PROP_UINT64("stop-seed", FstrState, prop_stop_seed, 0),
    DEFINE_PROP_END_OF_LIST(),
};

static void fstr_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = fstr_realize;
    k->exit = fstr_exit;
    k->config_read = fstr_config_read;
    k->config_write = fstr_config_write;
    k->vendor_id = FSTR_VENDOR_ID;
    k->device_id = FSTR_DEVICE_ID;
    k->revision = FSTR_REVISION;
    k->class_id = FSTR_CLASS_ID;
    dc->desc = "FSTR stream engine (fpgastream reference device)";
    dc->reset = fstr_reset;
    dc->vmsd = &vmstate_fstr;
    device_class_set_props(dc, fstr_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);

#ifdef FSTR_HAVE_AVX2
    if (__builtin_cpu_supports("avx2")) {
        fstr_fill_block = fstr_fill_block_avx2;
    }
#endif
}

static const TypeInfo fstr_info = {
    .name = TYPE_FSTR,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(FstrState),
    .class_init = fstr_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { },
    },
};

static void fstr_register_types(void)
{
    type_register_static(&fstr_info);
}

type_init(fstr_register_types)
