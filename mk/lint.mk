# SPDX-License-Identifier: GPL-2.0-only
#
# make lint: every static check of the kernel module, from kmod/Makefile:
# checkpatch --strict, kernel-doc -v -none, a W=1 build, sparse (C=2) and
# make coccicheck MODE=report.  Each fails on anything its tool reports; the
# run prints one line per tool (passed or FAILED, and its time) and fails
# if any did.  One of them alone: make -C kmod sparse (checkpatch,
# kernel-doc, w1, coccicheck).  make check runs the same five through
# selftests/lint/run: its "host/lint/" results.
lint: deps
	$(MAKE) -C kmod KDIR=$(KDIR) lint

.PHONY: lint
