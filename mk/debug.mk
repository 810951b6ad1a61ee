# SPDX-License-Identifier: GPL-2.0-only
#
# make check-debug: every VM selftest in every DMA configuration on the
# debug kernel (tools/debug-kernel: KASAN, lockdep, DMA-API debug, UBSAN,
# kmemleak, debug objects, fault injection).  A boot fails on any report in
# its kernel log (tools/vm/run), kmemleak scanned after the tests.
#
#   make check-debug                          all four configs, 1M fuzz calls each
#   make check-debug DEBUG_CONFIGS=iommu      one config
#   make debug-kernel                         only build (or find) the kernel
#
# The module is built against the debug kernel from a copy of kmod/ in
# build/debug/, so the production build in kmod/ is left alone.

DEBUG_CONFIGS ?= plain iommu swiotlb dma32
DEBUG_FUZZ_CALLS ?= 1000000
# Each fault of the fault suite this many times in a row (fault.*.repeated).
DEBUG_FAULT_LOOPS ?= 20
# Seconds per boot: KASAN under TCG is slow, see tools/debug-kernel/README.md.
DEBUG_TIMEOUT ?= 5400
DEBUG_JOBS ?= $(shell nproc)
# 256 hugepages instead of check's 1100: kmod's 2 GiB ring test then skips
# (it needs 1024; under KASAN and TCG it outlasts its 900 s harness timeout,
# and the production lane covers it).
# slub_debug=A marks the caches failslab may fail (selftests/pressure): the
# driver's own (kmalloc) and the IOMMU's IOVAs.  Unfiltered, fail-nth also
# fails DMA-API debug's own GFP_ATOMIC allocations, and DMA-API debug then
# switches itself off for the rest of the boot.
DEBUG_VM_OPTS ?= --hugepages 256 --append slub_debug=A,kmalloc-*,iommu_iova \
	--append FPGASTREAM_FAIL_PAGE_ALLOC=1
DEBUG_O := $(O)/debug

debug-kernel:
	@tools/debug-kernel/build --jobs $(DEBUG_JOBS) >/dev/null

# The kernel's directory (built on first use), then the module against it.
debug-module: debug-kernel
	@kdir=$$(tools/debug-kernel/build) && \
	rm -rf $(DEBUG_O)/kmod $(DEBUG_O)/include && \
	mkdir -p $(DEBUG_O)/kmod $(DEBUG_O)/include/uapi && \
	cp kmod/Kbuild kmod/*.c kmod/*.h $(DEBUG_O)/kmod/ && \
	cp include/uapi/fpgastream.h $(DEBUG_O)/include/uapi/ && \
	$(MAKE) -C $$kdir/obj M=$(DEBUG_O)/kmod modules >$(DEBUG_O)/kmod.log 2>&1 || \
		{ cat $(DEBUG_O)/kmod.log; exit 1; }
	@echo "debug-module: $(DEBUG_O)/kmod/fpgastream.ko"

# Runner options of a debug boot, in a recipe that has set $$kdir.
DEBUG_RUN_OPTS = --kernel $$kdir/bzImage --module $(DEBUG_O)/kmod/fpgastream.ko \
	--timeout $(DEBUG_TIMEOUT) $(DEBUG_VM_OPTS)

check-debug: deps emu
	$(MAKE) all
	$(MAKE) debug-module
	@kdir=$$(tools/debug-kernel/build) && start=$$(date +%s) && \
	selftests/check --no-host --label debug --configs "$(DEBUG_CONFIGS)" \
		--vm "$(DEBUG_RUN_OPTS) --append FPGASTREAM_FUZZ_CALLS=$(DEBUG_FUZZ_CALLS) --append FPGASTREAM_FAULTS_LOOPS=$(DEBUG_FAULT_LOOPS)"; \
	rc=$$?; echo "check-debug: $$(( ($$(date +%s) - start) / 60 )) min for configs $(DEBUG_CONFIGS)"; \
	exit $$rc

.PHONY: debug-kernel debug-module check-debug
