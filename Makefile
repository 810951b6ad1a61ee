# SPDX-License-Identifier: GPL-2.0-only
#
# fpgastream: top-level build.  `make` builds everything; `make check` runs
# every test (host and VM); `make demo` shows the main job on the reference
# device.  Both install what they need first (tools/deps.sh, as root).

KVER ?= $(shell tools/vm/kver 2>/dev/null)
KDIR ?= /lib/modules/$(KVER)/build
O := $(CURDIR)/build

# The module arrives with its own issue; build it once it is in the tree.
MODULE := $(if $(wildcard kmod/Kbuild),module)

all: $(MODULE) selftests

module:
	$(MAKE) -C kmod KDIR=$(KDIR)

selftests:
	$(MAKE) -C selftests O=$(O)

deps:
	tools/deps.sh

emu: deps
	@tools/emu/build.sh >/dev/null

check: deps emu
	$(MAKE) all
	selftests/check

# Until the library and tool exist, the demo shows the reference device
# streaming verified blocks into a hugepage buffer, driven from user space.
demo: deps emu
	$(MAKE) all
	tools/vm/run --config plain --no-module -- \
		fstr_device_test -t stream_pattern -t source_rate

clean:
	$(if $(MODULE),$(MAKE) -C kmod KDIR=$(KDIR) clean)
	$(MAKE) -C selftests O=$(O) clean
	rm -rf $(O)

.PHONY: all module selftests deps emu check demo clean
