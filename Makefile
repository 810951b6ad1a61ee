# SPDX-License-Identifier: GPL-2.0-only
#
# fpgastream: top-level build.  `make` builds everything; `make check` runs
# every test (host and VM); `make demo` shows the main job on the reference
# device.  Both install what they need first (tools/deps.sh, as root).

KVER ?= $(shell tools/vm/kver 2>/dev/null)
KDIR ?= /lib/modules/$(KVER)/build
O := $(CURDIR)/build

# Parts that arrive with their own issues are built once they are in the tree.
MODULE := $(if $(wildcard kmod/Kbuild),module)
LIB := $(if $(wildcard lib/Makefile),lib)
TOOL := $(if $(wildcard tools/fpgastream/Makefile),tool)

all: $(MODULE) $(LIB) $(TOOL) selftests

module:
	$(MAKE) -C kmod KDIR=$(KDIR)

lib:
	$(MAKE) -C lib O=$(O)

tool: $(LIB)
	$(MAKE) -C tools/fpgastream O=$(O)

selftests: $(LIB)
	$(MAKE) -C selftests O=$(O)

# What tools/fpgastream's capture needs besides tools/deps.sh's list: io_uring
# and NUMA (liburing, libnuma).
CAPTURE_DEPS := liburing-dev libnuma-dev
deps:
	tools/deps.sh
	@missing=$$(for p in $(CAPTURE_DEPS); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "deps: missing packages: $$missing (run 'sudo make deps')" >&2; exit 1; \
		fi; \
		echo "deps: installing $$missing" >&2; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi

emu: deps
	@tools/emu/build.sh >/dev/null

# Everything on Debian's 6.1, then the debug kernel's iommu config
# (mk/debug.mk; make check-debug runs all four, with the long fuzz).
CHECK_DEBUG_CONFIGS ?= iommu
check: deps emu
	$(MAKE) all
	$(MAKE) debug-module
	@kdir=$$(tools/debug-kernel/build) && \
	selftests/check --lane debug "$(CHECK_DEBUG_CONFIGS)" "$(DEBUG_RUN_OPTS)"

# The main job on the reference device: the board behind a strict IOMMU,
# a 256 MiB ring of 2 MiB hugepages, 1 GiB captured and verified.
demo: deps emu
	$(MAKE) all
	tools/vm/run --config iommu -- sh -c \
		'fpgastream list && fpgastream capture -b 256M -s 1G -o /dev/null --verify'

# Lanes and install targets that live in their own fragments.
include $(sort $(wildcard mk/*.mk))

clean:
	$(if $(MODULE),$(MAKE) -C kmod KDIR=$(KDIR) clean)
	$(if $(LIB),$(MAKE) -C lib O=$(O) clean)
	$(if $(TOOL),$(MAKE) -C tools/fpgastream O=$(O) clean)
	$(MAKE) -C selftests O=$(O) clean
	rm -rf $(O)

.PHONY: all module lib tool selftests deps emu check demo clean
