/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * fpgastream trace events: what the driver saw of the board, for bring-up
 * and for a board that misbehaves (docs/tracing.md). Laid out as a header
 * of include/trace/events/; fpgastream_stream.c defines CREATE_TRACE_POINTS.
 *
 * Every event names the board by its minor (/dev/fpgastream<minor>).
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM fpgastream

#if !defined(_FPGASTREAM_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _FPGASTREAM_TRACE_H

#include <linux/tracepoint.h>
#include <linux/types.h>

TRACE_EVENT(fpgastream_map,
	TP_PROTO(int minor, u64 length, u32 nr_blocks, u32 nr_segments,
		 u32 flags, u32 mapped_flags, u64 pin_ns, u64 dma_ns,
		 u64 lut_ns),
	TP_ARGS(minor, length, nr_blocks, nr_segments, flags, mapped_flags,
		pin_ns, dma_ns, lut_ns),
	TP_STRUCT__entry(
		__field(int, minor)
		__field(u64, length)
		__field(u32, nr_blocks)
		__field(u32, nr_segments)
		__field(u32, flags)
		__field(u32, mapped_flags)
		__field(u64, pin_ns)
		__field(u64, dma_ns)
		__field(u64, lut_ns)
	),
	TP_fast_assign(
		__entry->minor = minor;
		__entry->length = length;
		__entry->nr_blocks = nr_blocks;
		__entry->nr_segments = nr_segments;
		__entry->flags = flags;
		__entry->mapped_flags = mapped_flags;
		__entry->pin_ns = pin_ns;
		__entry->dma_ns = dma_ns;
		__entry->lut_ns = lut_ns;
	),
	TP_printk("minor=%d length=%llu blocks=%u segments=%u flags=%#x mapped_flags=%#x pin_ns=%llu dma_ns=%llu lut_ns=%llu",
		  __entry->minor, __entry->length, __entry->nr_blocks,
		  __entry->nr_segments, __entry->flags, __entry->mapped_flags,
		  __entry->pin_ns, __entry->dma_ns, __entry->lut_ns)
);

TRACE_EVENT(fpgastream_start,
	TP_PROTO(int minor, u32 flags, u32 coalesce_count, u32 coalesce_usec,
		 u32 nr_blocks),
	TP_ARGS(minor, flags, coalesce_count, coalesce_usec, nr_blocks),
	TP_STRUCT__entry(
		__field(int, minor)
		__field(u32, flags)
		__field(u32, coalesce_count)
		__field(u32, coalesce_usec)
		__field(u32, nr_blocks)
	),
	TP_fast_assign(
		__entry->minor = minor;
		__entry->flags = flags;
		__entry->coalesce_count = coalesce_count;
		__entry->coalesce_usec = coalesce_usec;
		__entry->nr_blocks = nr_blocks;
	),
	TP_printk("minor=%d flags=%#x coalesce_count=%u coalesce_usec=%u blocks=%u",
		  __entry->minor, __entry->flags, __entry->coalesce_count,
		  __entry->coalesce_usec, __entry->nr_blocks)
);

/* The stream's totals once the engine is stopped (or found wedged). */
TRACE_EVENT(fpgastream_stop,
	TP_PROTO(int minor, u64 completed, u64 dropped, u64 announced,
		 u64 released, int result),
	TP_ARGS(minor, completed, dropped, announced, released, result),
	TP_STRUCT__entry(
		__field(int, minor)
		__field(u64, completed)
		__field(u64, dropped)
		__field(u64, announced)
		__field(u64, released)
		__field(int, result)
	),
	TP_fast_assign(
		__entry->minor = minor;
		__entry->completed = completed;
		__entry->dropped = dropped;
		__entry->announced = announced;
		__entry->released = released;
		__entry->result = result;
	),
	TP_printk("minor=%d completed=%llu dropped=%llu announced=%llu released=%llu result=%d",
		  __entry->minor, __entry->completed, __entry->dropped,
		  __entry->announced, __entry->released, __entry->result)
);

/* One handled interrupt: what it acknowledged and what it then sampled. */
TRACE_EVENT(fpgastream_irq,
	TP_PROTO(int minor, u32 irq_status, u32 wr_count, u32 drop_count,
		 u64 new_blocks),
	TP_ARGS(minor, irq_status, wr_count, drop_count, new_blocks),
	TP_STRUCT__entry(
		__field(int, minor)
		__field(u32, irq_status)
		__field(u32, wr_count)
		__field(u32, drop_count)
		__field(u64, new_blocks)
	),
	TP_fast_assign(
		__entry->minor = minor;
		__entry->irq_status = irq_status;
		__entry->wr_count = wr_count;
		__entry->drop_count = drop_count;
		__entry->new_blocks = new_blocks;
	),
	TP_printk("minor=%d irq_status=%#x wr_count=%u drop_count=%u new_blocks=%llu",
		  __entry->minor, __entry->irq_status, __entry->wr_count,
		  __entry->drop_count, __entry->new_blocks)
);

/* One read() that returned records: the first one's seq, how many, lost. */
TRACE_EVENT(fpgastream_read,
	TP_PROTO(int minor, u64 seq, u64 count, u64 lost),
	TP_ARGS(minor, seq, count, lost),
	TP_STRUCT__entry(
		__field(int, minor)
		__field(u64, seq)
		__field(u64, count)
		__field(u64, lost)
	),
	TP_fast_assign(
		__entry->minor = minor;
		__entry->seq = seq;
		__entry->count = count;
		__entry->lost = lost;
	),
	TP_printk("minor=%d seq=%llu count=%llu lost=%llu",
		  __entry->minor, __entry->seq, __entry->count, __entry->lost)
);

/* One RELEASE: records given back, and RD_COUNT as written (if running). */
TRACE_EVENT(fpgastream_release,
	TP_PROTO(int minor, u64 count, u32 rd_count),
	TP_ARGS(minor, count, rd_count),
	TP_STRUCT__entry(
		__field(int, minor)
		__field(u64, count)
		__field(u32, rd_count)
	),
	TP_fast_assign(
		__entry->minor = minor;
		__entry->count = count;
		__entry->rd_count = rd_count;
	),
	TP_printk("minor=%d count=%llu rd_count=%u",
		  __entry->minor, __entry->count, __entry->rd_count)
);

/* What a fault was, as fpgastream_fault reports it. */
#define FPGASTREAM_FAULT_LUT		0	/* STATUS.LUT_FAULT */
#define FPGASTREAM_FAULT_DMA		1	/* STATUS.DMA_ERROR */
#define FPGASTREAM_FAULT_NOT_IDLE	2	/* never idle after a stop */
#define FPGASTREAM_FAULT_ABSENT		3	/* the board reads all ones */
#define FPGASTREAM_FAULT_RESET		4	/* a reset, recovery or suspend ended it */

/* A fault the driver saw, and the STATUS value that showed it. */
TRACE_EVENT(fpgastream_fault,
	TP_PROTO(int minor, u32 status, u32 what),
	TP_ARGS(minor, status, what),
	TP_STRUCT__entry(
		__field(int, minor)
		__field(u32, status)
		__field(u32, what)
	),
	TP_fast_assign(
		__entry->minor = minor;
		__entry->status = status;
		__entry->what = what;
	),
	TP_printk("minor=%d status=%#x fault=%s",
		  __entry->minor, __entry->status,
		  __print_symbolic(__entry->what,
				   { FPGASTREAM_FAULT_LUT, "lut_fault" },
				   { FPGASTREAM_FAULT_DMA, "dma_error" },
				   { FPGASTREAM_FAULT_NOT_IDLE, "not_idle" },
				   { FPGASTREAM_FAULT_ABSENT, "absent" },
				   { FPGASTREAM_FAULT_RESET, "reset" }))
);

#endif /* _FPGASTREAM_TRACE_H */

/* Out of tree: the header is found next to the sources, not in include/. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE fpgastream_trace
#include <trace/define_trace.h>
