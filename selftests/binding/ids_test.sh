#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Binding a production board by its own IDs: the new_id sysfs file and the
# ids= module parameter.  Runs in a VM whose board carries a foreign device
# ID (tools/vm/run --device-opts device-id=0xf5a1); prints TAP.

ko=/lib/modules/fpgastream.ko
drv=/sys/bus/pci/drivers/fpgastream
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n $1"; }
check() { # check NAME COMMAND...: ok when COMMAND succeeds
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

bdf=
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/class")" = 0x118000 ]; then
		bdf=${d##*/}
	fi
done
if [ -z "$bdf" ]; then
	echo "1..0 # SKIP no FSTR board"
	exit 0
fi
dev=/sys/bus/pci/devices/$bdf
id=$(cat "$dev/device")
if [ "$id" = 0xf5a0 ]; then
	echo "1..0 # SKIP the board has the reference ID; boot with --device-opts device-id=0xf5a1"
	exit 0
fi
id=${id#0x}

bound() { [ "$(readlink "$dev/driver" 2>/dev/null)" != "" ] && [ "$(basename "$(readlink "$dev/driver")")" = fpgastream ]; }
unbound() { ! bound; }
node_works() { [ -c /dev/fpgastream0 ] && fpgastream info 0 >/dev/null; }
no_node() { [ ! -e /dev/fpgastream0 ]; }

echo "1..11"
grep -q '^fpgastream ' /proc/modules || insmod "$ko"
check "module loaded" grep -q '^fpgastream ' /proc/modules
check "a board with a foreign ID ($id) is not bound by default" unbound
check "... and has no device node" no_node

echo "1234 $id" >"$drv/new_id"
check "new_id binds it" bound
check "... and its node answers INFO" node_works

check "rmmod with no file open succeeds" rmmod fpgastream
check "... and removes the node" no_node

insmod "$ko" "ids=1234:$id"
check "insmod ids=1234:$id binds it" bound
check "... and its node answers INFO" node_works

# A malformed entry is skipped with a message; the good one still binds.
rmmod fpgastream
insmod "$ko" "ids=zz:1,1234:$id"
check "ids= with a malformed entry still binds the good one" bound
check "... and names the bad entry in the kernel log" sh -c 'dmesg | grep -q "invalid id \"zz:1\""'
exit $failed
