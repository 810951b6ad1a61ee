# SPDX-License-Identifier: GPL-2.0-only
#
# Installing fpgastream on a host (docs/install.md):
#   make install   [PREFIX=/usr/local] [DESTDIR=] [MODULE_INSTALL=kbuild|dkms|none]
#   make uninstall [same variables]
#   make dkms-install / make dkms-remove [DKMS_KVER=$(uname -r)]
#   make check-install  the installed file list against selftests/install/files.txt
#   make check-dkms     the DKMS cycle for the VM kernel, then the selftests on it
#   make check-kernels  the module built and tested on each kernel of tools/kernels/suites
#
# install puts the module under /lib/modules/KVER/updates (modules_install,
# then depmod), the library, headers, pkg-config file, tool and man pages
# under PREFIX, the udev rule (group fpgastream, mode 0660) and the
# modprobe.d example under /etc; with DESTDIR set it runs no depmod,
# groupadd, ldconfig nor udevadm.  The artefacts come from build/ (make all).

FPGASTREAM_VERSION := $(shell sed -n 's/^\#define FPGASTREAM_LIB_VERSION\t*"\(.*\)"/\1/p' include/fpgastream.h)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# udev and modprobe read /etc (and /usr/lib), never PREFIX.
UDEVRULESDIR ?= /etc/udev/rules.d
MODPROBEDIR ?= /etc/modprobe.d
MODULE_INSTALL ?= kbuild
INSTALL ?= install

DKMS_SRC := /usr/src/fpgastream-$(FPGASTREAM_VERSION)
DKMS_KVER ?= $(shell uname -r)
DKMS_FILES := dkms.conf kmod/Kbuild kmod/Makefile \
	$(filter-out %.mod.c,$(wildcard kmod/*.c)) $(wildcard kmod/*.h) include/uapi/fpgastream.h

# Run a host command only when installing into the live system.
live = if [ -z "$(DESTDIR)" ]; then $(1); fi

install: install-module install-user

install-module: $(if $(filter kbuild,$(MODULE_INSTALL)),module)
ifeq ($(MODULE_INSTALL),kbuild)
	@# Stripped as DKMS does; not signed (Debian's headers carry no key:
	@# on a Secure Boot host use MODULE_INSTALL=dkms, which signs with its MOK).
	$(MAKE) -C kmod KDIR=$(KDIR) modules_install INSTALL_MOD_DIR=updates \
		INSTALL_MOD_STRIP=1 CONFIG_MODULE_SIG_ALL= \
		$(if $(DESTDIR),INSTALL_MOD_PATH=$(DESTDIR))
	@# Kbuild skips depmod without the kernel's System.map, as Debian's headers are.
	$(call live,depmod -a $(KVER))
	@if [ -z "$(DESTDIR)" ] && [ "$(KVER)" != "$$(uname -r)" ]; then \
		echo "make install: the module is for kernel $(KVER) (the test VM's)," \
		     "not the running $$(uname -r); for this host:" \
		     "make clean && make install KVER=$$(uname -r)" >&2; fi
else ifeq ($(MODULE_INSTALL),dkms)
	$(MAKE) dkms-install
else ifneq ($(MODULE_INSTALL),none)
	$(error MODULE_INSTALL is kbuild, dkms or none, not '$(MODULE_INSTALL)')
endif

install-user: $(LIB) $(TOOL)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(INCLUDEDIR)/uapi $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(UDEVRULESDIR) $(DESTDIR)$(MODPROBEDIR)
	$(INSTALL) -m 755 $(O)/bin/fpgastream $(DESTDIR)$(BINDIR)/fpgastream
	$(INSTALL) -m 755 $(O)/lib/libfpgastream.so.1 $(DESTDIR)$(LIBDIR)/libfpgastream.so.1
	ln -sf libfpgastream.so.1 $(DESTDIR)$(LIBDIR)/libfpgastream.so
	$(INSTALL) -m 644 $(O)/lib/libfpgastream.a $(DESTDIR)$(LIBDIR)/libfpgastream.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(FPGASTREAM_VERSION)|' \
		-e 's|^libdir=.*|libdir=$(LIBDIR)|' -e 's|^includedir=.*|includedir=$(INCLUDEDIR)|' \
		lib/fpgastream.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/fpgastream.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/fpgastream.pc
	$(INSTALL) -m 644 include/fpgastream.h $(DESTDIR)$(INCLUDEDIR)/fpgastream.h
	$(INSTALL) -m 644 include/uapi/fpgastream.h $(DESTDIR)$(INCLUDEDIR)/uapi/fpgastream.h
	$(INSTALL) -m 644 tools/fpgastream/fpgastream.1 $(DESTDIR)$(MANDIR)/man1/fpgastream.1
	$(INSTALL) -m 644 lib/fpgastream.3 $(DESTDIR)$(MANDIR)/man3/fpgastream.3
	$(INSTALL) -m 644 dist/60-fpgastream.rules $(DESTDIR)$(UDEVRULESDIR)/60-fpgastream.rules
	@# An admin's edited modprobe.d file is kept.
	@if [ -e $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf ]; then \
		echo "install: keeping $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf"; \
	else \
		echo "$(INSTALL) -m 644 dist/fpgastream.modprobe.conf $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf"; \
		$(INSTALL) -m 644 dist/fpgastream.modprobe.conf $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf; \
	fi
	$(call live,getent group fpgastream >/dev/null || groupadd --system fpgastream)
	$(call live,ldconfig)
	$(call live,if command -v udevadm >/dev/null && [ -d /run/udev ]; then udevadm control --reload && udevadm trigger --subsystem-match=fpgastream --action=add; fi)

uninstall:
ifeq ($(MODULE_INSTALL),kbuild)
	rm -f $(DESTDIR)/lib/modules/$(KVER)/updates/fpgastream.ko
	$(call live,depmod -a $(KVER))
else ifeq ($(MODULE_INSTALL),dkms)
	$(MAKE) dkms-remove
endif
	rm -f $(DESTDIR)$(BINDIR)/fpgastream \
		$(DESTDIR)$(LIBDIR)/libfpgastream.so.1 $(DESTDIR)$(LIBDIR)/libfpgastream.so \
		$(DESTDIR)$(LIBDIR)/libfpgastream.a $(DESTDIR)$(PKGCONFIGDIR)/fpgastream.pc \
		$(DESTDIR)$(INCLUDEDIR)/fpgastream.h $(DESTDIR)$(INCLUDEDIR)/uapi/fpgastream.h \
		$(DESTDIR)$(MANDIR)/man1/fpgastream.1 $(DESTDIR)$(MANDIR)/man3/fpgastream.3 \
		$(DESTDIR)$(UDEVRULESDIR)/60-fpgastream.rules
	-rmdir $(DESTDIR)$(INCLUDEDIR)/uapi 2>/dev/null
	@# Only the unedited example goes; the group stays (files may belong to it).
	@if cmp -s dist/fpgastream.modprobe.conf $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf; then \
		echo "rm -f $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf"; \
		rm -f $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf; \
	elif [ -e $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf ]; then \
		echo "uninstall: keeping the edited $(DESTDIR)$(MODPROBEDIR)/fpgastream.conf"; \
	fi
	$(call live,ldconfig)

# DKMS: the module's sources under /usr/src, built and installed for
# DKMS_KVER now and by dkms's hook for every kernel installed later.
dkms-install: dkms-sources
	dkms add fpgastream/$(FPGASTREAM_VERSION)
	dkms build fpgastream/$(FPGASTREAM_VERSION) -k $(DKMS_KVER)
	dkms install fpgastream/$(FPGASTREAM_VERSION) -k $(DKMS_KVER)

# The tree dkms builds from: only what Kbuild needs.  An older add of the
# same version is removed first.
dkms-sources:
	@[ -n "$(FPGASTREAM_VERSION)" ] || { echo "dkms: no FPGASTREAM_LIB_VERSION" >&2; exit 1; }
	@if dkms status fpgastream/$(FPGASTREAM_VERSION) 2>/dev/null | grep -q .; then \
		echo "dkms remove fpgastream/$(FPGASTREAM_VERSION) --all"; \
		dkms remove fpgastream/$(FPGASTREAM_VERSION) --all; \
	fi
	rm -rf $(DKMS_SRC)
	$(INSTALL) -d $(DKMS_SRC)/kmod $(DKMS_SRC)/include/uapi
	for f in $(DKMS_FILES); do $(INSTALL) -m 644 $$f $(DKMS_SRC)/$$f || exit 1; done

dkms-remove:
	-dkms remove fpgastream/$(FPGASTREAM_VERSION) --all
	rm -rf $(DKMS_SRC)

check-install: $(LIB) $(TOOL)
	selftests/install/check-install.sh

check-dkms: deps emu
	$(MAKE) all
	selftests/install/check-dkms.sh

# KERNEL_CONFIGS: the VM configurations for every kernel.
KERNEL_CONFIGS ?= plain iommu swiotlb dma32
check-kernels: deps emu
	$(MAKE) all
	tools/kernels/check --configs "$(KERNEL_CONFIGS)"

.PHONY: install install-module install-user uninstall dkms-install dkms-sources dkms-remove \
	check-install check-dkms check-kernels
