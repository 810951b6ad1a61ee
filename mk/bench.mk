# SPDX-License-Identifier: GPL-2.0-only
#
# make bench: performance figures (docs/performance.md).

# MAP/UNMAP of 2 GiB of 2 MiB hugepages and the announcement rate, with and
# without the IOMMU.  Figures under TCG emulation: compare ratios, not times.
BENCH_CONFIGS ?= plain iommu
bench: deps emu
	$(MAKE) all
	@for c in $(BENCH_CONFIGS); do \
		echo "== config $$c"; \
		tools/vm/run --config $$c --mem 3G --hugepages 1100 -- fpgastream bench -r 3 || exit 1; \
	done

.PHONY: bench
