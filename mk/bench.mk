# SPDX-License-Identifier: GPL-2.0-only
#
# make bench: fpgastream against what a user would pick instead, in the same
# guest and the same run (docs/performance.md): MAP+UNMAP against VFIO type1,
# announced blocks against the bare board's own rate, capture into tmpfs
# against a write loop.  One table on stdout, bench/results/latest.json.
# BENCH_RUNS (default 5) runs per figure; figures are medians with min/max.
BENCH_RUNS ?= 5
bench: deps emu
	$(MAKE) all
	$(MAKE) -C bench O=$(O)
	bench/run.sh $(BENCH_RUNS)

.PHONY: bench
