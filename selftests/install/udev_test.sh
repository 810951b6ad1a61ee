#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The installed udev rule (dist/60-fpgastream.rules) gives /dev/fpgastream0
# group fpgastream and mode 0660.  Runs in the VM after the module is loaded,
# when the boot copied in Debian's udevd (udevadm, called as systemd-udevd),
# the rule under /etc/udev/rules.d and an /etc/group with a fpgastream group,
# as selftests/install/check-dkms.sh does; otherwise it skips.  Prints TAP.

UDEVD=/lib/systemd/systemd-udevd
RULE=/etc/udev/rules.d/60-fpgastream.rules
NODE=/dev/fpgastream0
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n $1"; failed=$((failed + 1)); }

echo "1..4"
if [ ! -x "$UDEVD" ] || ! command -v udevadm >/dev/null || [ ! -f "$RULE" ] ||
	! grep -q '^fpgastream:' /etc/group 2>/dev/null; then
	for t in "node created by the driver" "udevd started" \
		"node has group fpgastream" "node has mode 0660"; do
		n=$((n + 1))
		echo "ok $n $t # SKIP no udevd, rule or fpgastream group in this guest"
	done
	exit 0
fi

if [ -c "$NODE" ]; then
	ok "node created by the driver (mode $(stat -c '%a, uid %u gid %g' "$NODE") before udev)"
else
	not_ok "node created by the driver: no $NODE"
fi

# Before udev runs, devtmpfs makes the node root:root 0600: a change below
# is the rule's doing.
mkdir -p /run/udev
if "$UDEVD" --daemon >/tmp/udevd.log 2>&1; then
	udevadm trigger --action=add --subsystem-match=fpgastream
	udevadm settle --timeout=30
	ok "udevd started"
else
	not_ok "udevd started"
	sed 's/^/# /' /tmp/udevd.log
fi

gid=$(sed -n 's/^fpgastream:[^:]*:\([0-9]*\):.*/\1/p' /etc/group)
got_group=$(stat -c '%g' "$NODE" 2>/dev/null)
if [ -n "$gid" ] && [ "$got_group" = "$gid" ]; then
	ok "node has group fpgastream (gid $gid)"
else
	not_ok "node has group fpgastream: gid '$got_group', want '$gid'"
fi
got_mode=$(stat -c '%a' "$NODE" 2>/dev/null)
if [ "$got_mode" = 660 ]; then
	ok "node has mode 0660"
else
	not_ok "node has mode 0660: got '$got_mode'"
fi

udevadm control --exit 2>/dev/null
[ "$failed" = 0 ]
