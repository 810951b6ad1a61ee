#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# The fpgastream tool (and docs/example.c) against the module and the
# reference device, in the VM under busybox sh: every command, the board
# given every way, the rules for sizes, durations and numbers, exit codes
# and messages (tool_json_test checks the JSON output).  Prints TAP.  The test, not
# the tool, sets the emulator's seed and rate through the board's BAR0 test
# block (devmem on resource0's physical address; the VM boots iomem=relaxed).

SEED=0x5eed
T=${TMPDIR:-/tmp}/tool_capture_test.$$
mkdir -p "$T"
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n $1"; failed=$((failed + 1)); }
skip() { n=$((n + 1)); echo "ok $n $1 # SKIP $2"; }
# check NAME COMMAND...: ok when COMMAND succeeds
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}
# show FILE: its lines as TAP comments, for diagnosis
show() { sed 's/^/# /' "$1"; }
# expect_rc NAME WANT GOT [LOG]
expect_rc() {
	if [ "$3" = "$2" ]; then
		ok "$1"
	else
		not_ok "$1"
		echo "# exit status $3, want $2"
		[ -n "$4" ] && show "$4"
	fi
}

bdf=$(basename "$(readlink /sys/class/fpgastream/fpgastream0/device)" 2>/dev/null)
bar0=
if [ -n "$bdf" ]; then
	bar0=$(head -n 1 "/sys/bus/pci/devices/$bdf/resource" | cut -d' ' -f1)
fi
emu() { devmem $((bar0 + $1)) 32 "$2"; }	# emu OFFSET VALUE
EMU_RATE=0x1000
EMU_SEED=0x1004
EMU_BURST=0x1008
emu_defaults() {
	emu $EMU_SEED $SEED
	emu $EMU_RATE 0
	emu $EMU_BURST 0
}

if [ -z "$bar0" ] || ! command -v fpgastream >/dev/null; then
	echo "1..1"
	echo "not ok 1 setup: no board 0 or no fpgastream tool (module loaded?)"
	exit 1
fi
emu_defaults
iommu=no
fpgastream info | grep -q '^iommu: *yes' && iommu=yes
echo "# board $bdf, BAR0 $bar0, iommu $iommu"

# expect_grep NAME WANT GOT PATTERN FILE: ok when the exit status GOT is
# WANT and FILE has a line matching PATTERN (grep -E)
expect_grep() {
	if [ "$3" = "$2" ] && grep -Eq -- "$4" "$5"; then
		ok "$1"
	else
		not_ok "$1"
		echo "# exit status $3, want $2 and a line matching '$4'"
		show "$5"
	fi
}

pins_balanced() {
	a=$(awk '$1 == "nr_foll_pin_acquired" { print $2 }' /proc/vmstat)
	r=$(awk '$1 == "nr_foll_pin_released" { print $2 }' /proc/vmstat)
	echo "# nr_foll_pin_acquired $a, nr_foll_pin_released $r"
	[ "$a" = "$r" ]
}
size_of() { wc -c <"$1" | tr -d ' '; }

# --- list and info ---
fpgastream list >"$T/list" 2>&1
rc=$?
expect_rc "list exits 0" 0 $rc "$T/list"
check "list shows /dev/fpgastream0 at its PCI address with the reference IDs" \
	grep -q "^/dev/fpgastream0 *$bdf *1234:f5a0 " "$T/list"
fpgastream info 0 >"$T/info" 2>&1
check "info shows the block size and LUT capacity" \
	sh -c "grep -q '^block size: *65536' '$T/info' && grep -q '^lut capacity: *[0-9]' '$T/info'"
fpgastream stats fpgastream0 >"$T/stats" 2>&1
expect_rc "stats by name exits 0" 0 $? "$T/stats"
node=$(cat "/sys/bus/pci/devices/$bdf/numa_node" 2>/dev/null)
# none: no node (-1), or no attribute at all (a kernel without CONFIG_NUMA)
{ [ -z "$node" ] || [ "$node" -lt 0 ]; } && node=none
check "info shows the NUMA node of the PCI device ($node)" grep -q "^numa node: *$node\$" "$T/info"

# --- the board is given the same way in every command ---
# -d takes an index, a name, a path or a PCI address, with or without its
# domain; info and stats also take it as their argument.
for d in 0 fpgastream0 /dev/fpgastream0 "$bdf" "${bdf#0000:}"; do
	fpgastream info -d "$d" >"$T/infod" 2>&1
	expect_grep "info -d $d is board 0" 0 $? '^device: */dev/fpgastream0$' "$T/infod"
done
fpgastream stats -d "$bdf" >"$T/statsd" 2>&1
expect_rc "stats -d PCI address exits 0" 0 $? "$T/statsd"
fpgastream list -d "$bdf" >"$T/listd" 2>&1
expect_grep "list -d PCI address shows that board" 0 $? "^/dev/fpgastream0 +$bdf " "$T/listd"
check "... and that board alone" [ "$(wc -l <"$T/listd" | tr -d ' ')" = 2 ]
fpgastream list -d 7 >"$T/list7" 2>&1
expect_grep "list -d of a missing board exits 3 saying so" 3 $? "no such board" "$T/list7"
fpgastream capture -d "${bdf#0000:}" -b 1M -n 5 -o "$T/d.bin" 2>"$T/capd.err"
expect_rc "capture -d PCI address exits 0" 0 $? "$T/capd.err"
fpgastream capture -d 0000:00:1f.7 -b 1M -n 5 2>"$T/capd7.err"
expect_grep "a PCI address without a board exits 3 saying so" 3 $? \
	"no fpgastream board at this PCI address" "$T/capd7.err"
fpgastream list --json >"$T/list.json" 2>&1
expect_grep "list --json prints the boards object (tool_json_test checks it all)" 0 $? \
	'^ *"boards": \[' "$T/list.json"

# --- capture to a file, verify online and offline ---
fpgastream capture -n 300 -b 4M -o "$T/c.bin" --verify=$SEED 2>"$T/cap.err"
expect_rc "capture -n 300 --verify exits 0" 0 $? "$T/cap.err"
check "the capture file holds exactly 300 blocks" [ "$(size_of "$T/c.bin")" = $((300 * 65536)) ]
check "the summary says 300 blocks, 0 lost, 0 bad" \
	sh -c "grep -q 'captured 300 blocks' '$T/cap.err' && grep -q 'lost 0 blocks' '$T/cap.err' && grep -q '300 blocks checked, 0 bad' '$T/cap.err'"
fpgastream verify "$T/c.bin" --seed $SEED >"$T/ver.out" 2>&1
expect_rc "verify of the capture exits 0" 0 $? "$T/ver.out"
check "verify reports sequence 0..299, 0 lost, 0 bad" \
	grep -q "300 blocks, sequence 0..299, 0 lost, 0 bad" "$T/ver.out"
fpgastream verify "$T/c.bin" --seed 1 >"$T/ver1.out" 2>&1
expect_rc "verify with the wrong seed exits 1" 1 $? "$T/ver1.out"
dd if="$T/c.bin" of="$T/gap.bin" bs=65536 count=10 2>/dev/null
dd if="$T/c.bin" bs=65536 skip=11 count=9 2>/dev/null >>"$T/gap.bin"
fpgastream verify "$T/gap.bin" --seed $SEED >"$T/gap.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "19 blocks, sequence 0..19, 1 lost, 0 bad" "$T/gap.out"; then
	ok "verify reports a missing block as lost and exits 1"
else
	not_ok "verify reports a missing block as lost and exits 1"
	echo "# exit status $rc"; show "$T/gap.out"
fi
head -c 100000 "$T/c.bin" >"$T/part.bin"
fpgastream verify "$T/part.bin" --seed $SEED >"$T/part.out" 2>&1
expect_rc "verify of a file ending in a partial block exits 1" 1 $? "$T/part.out"
rm -f "$T/gap.bin" "$T/part.bin"

fpgastream capture -b 8M -s 1M -o - 2>"$T/stdout.err" | cat >"$T/stdout.bin"
check "capture -s 1M -o - writes 16 blocks to standard output" \
	[ "$(size_of "$T/stdout.bin")" = $((16 * 65536)) ]
fpgastream verify - --seed $SEED <"$T/stdout.bin" >"$T/stdin.out" 2>&1
expect_rc "verify - reads standard input" 0 $? "$T/stdin.out"
rm -f "$T/c.bin" "$T/c.bin.idx" "$T/stdout.bin"

# --- sizes, durations and numbers: one set of rules for every option ---
# blocks_of FILE: its size in 64 KiB blocks
blocks_of() { echo $(($(size_of "$1") / 65536)); }
# capture_blocks NAME WANT ARGS...: capture ARGS to a file, WANT blocks in it
capture_blocks() {
	name=$1 want=$2
	shift 2
	fpgastream capture "$@" -o "$T/u.bin" 2>"$T/u.err"
	rc=$?
	got=$(blocks_of "$T/u.bin")
	if [ $rc = 0 ] && [ "$got" = "$want" ]; then
		ok "$name"
	else
		not_ok "$name"
		echo "# exit status $rc, $got blocks, want $want"; show "$T/u.err"
	fi
	rm -f "$T/u.bin" "$T/u.bin.idx"
}
capture_blocks "-s 1.5M is 1.5 MiB: 24 blocks" 24 -b 1M -s 1.5M
capture_blocks "-s 1.5MiB is the same 24 blocks" 24 -b 1M -s 1.5MiB
capture_blocks "-s 2MB is 2000000 bytes (SI), rounded up to 31 blocks" 31 -b 1M -s 2MB
capture_blocks "-s 100kB is 100000 bytes: 2 blocks" 2 -b 1M -s 100kB
capture_blocks "a 1.5M buffer streams" 40 -b 1.5M -n 40
fpgastream bench -b 1.5M -r 1 -t 100ms >"$T/bench15" 2>&1
expect_grep "-b 1.5M is a buffer of 1.5 MiB, 24 blocks (bench -t 100ms)" 0 $? \
	"^buffer: 1.5 MiB in .*, 24 LUT entries" "$T/bench15"
capture_blocks "-n 010 is ten blocks, decimal" 10 -b 1M -n 010
capture_blocks "-n 0x10 is sixteen blocks" 16 -b 1M -n 0x10
capture_blocks "-s 64K with --size spelled out" 1 -b 1M --size=64K
fpgastream verify "$T/d.bin" --seed 24301 >"$T/vdec.out" 2>&1
expect_rc "verify --seed takes the seed in decimal too (24301 = $SEED)" 0 $? "$T/vdec.out"
rm -f "$T/d.bin" "$T/d.bin.idx"

# secs FILE: the seconds a capture's summary says it took
secs() { sed -n 's/.*captured [0-9]* blocks (.*) in \([0-9.]*\) s:.*/\1/p' "$1"; }
# within X LO HI: LO <= X < HI, X a decimal number
within() { awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x != "" && x >= lo && x < hi) }'; }
emu $EMU_RATE 50
for spec in "2s 1.9 4" "1500ms 1.4 3.5" "1.5 1.4 3.5"; do
	set -- $spec
	fpgastream capture -b 1M -t "$1" -o /dev/null 2>"$T/t.err"
	rc=$?
	t=$(secs "$T/t.err")
	if [ $rc = 0 ] && within "$t" "$2" "$3"; then
		ok "-t $1 stops after $t s"
	else
		not_ok "-t $1 stops after $2 to $3 s"
		echo "# exit status $rc"; show "$T/t.err"
	fi
done
# -t 1m is a minute, not a second: still running when SIGINT comes at 3 s.
fpgastream capture -b 1M -t 1m -o /dev/null 2>"$T/t.err" &
pid=$!
sleep 3
kill -INT $pid
wait $pid
rc=$?
t=$(secs "$T/t.err")
if [ $rc = 0 ] && grep -q "stopped by signal" "$T/t.err" && within "$t" 2.5 30; then
	ok "-t 1m is a minute: still running after $t s"
else
	not_ok "-t 1m is a minute: still running after 3 s"
	echo "# exit status $rc"; show "$T/t.err"
fi
emu $EMU_RATE 0

# --- overwrite mode with a slow writer: the loss is reported ---
(fpgastream capture --overwrite -b 1M -n 200 -o - 2>"$T/ow.err"; echo $? >"$T/ow.rc") |
	(sleep 2; cat >/dev/null)
rc=$(cat "$T/ow.rc")
lost=$(sed -n 's/.*lost \([0-9]*\) blocks.*/\1/p' "$T/ow.err")
if [ "$rc" = 1 ] && [ -n "$lost" ] && [ "$lost" -gt 0 ]; then
	ok "overwrite mode with a slow reader reports $lost lost blocks and exits 1"
else
	not_ok "overwrite mode with a slow reader reports lost blocks and exits 1"
	echo "# exit status $rc"; show "$T/ow.err"
fi

# --- flow control, a fast source and a slow writer: drops at the source,
# and --verify still follows the sequence (s = seq + dropped so far) ---
emu $EMU_RATE 2000
(fpgastream capture -b 1M -n 300 -o - --verify=$SEED 2>"$T/drop.err"; echo $? >"$T/drop.rc") |
	(sleep 1; cat >"$T/drop.bin")
emu $EMU_RATE 0
rc=$(cat "$T/drop.rc")
lost=$(sed -n 's/.*lost \([0-9]*\) blocks.*/\1/p' "$T/drop.err")
if [ "$rc" = 1 ] && [ -n "$lost" ] && [ "$lost" -gt 0 ] && grep -q "300 blocks checked, 0 bad" "$T/drop.err"; then
	ok "flow control with a slow writer: $lost blocks dropped at the source, every block verifies"
else
	not_ok "flow control with a slow writer: drops at the source reported, every block verifies"
	echo "# exit status $rc"; show "$T/drop.err"
fi
fpgastream verify "$T/drop.bin" --seed $SEED >"$T/dropv.out" 2>&1
rc=$?
flost=$(sed -n 's/.* \([0-9]*\) lost, 0 bad.*/\1/p' "$T/dropv.out")
# Records may report drops late, and the driver may count drops after the
# last block taken: its final count is the bound.
dropped=$(sed -n 's/.*driver: [0-9]* overwritten, \([0-9]*\) dropped.*/\1/p' "$T/drop.err")
if [ $rc = 1 ] && [ -n "$flost" ] && [ "$flost" -gt 0 ] && [ -n "$dropped" ] && [ "$flost" -le "$dropped" ]; then
	ok "verify of that file finds $flost of those lost blocks as gaps"
else
	not_ok "verify of that file finds the lost blocks as gaps"
	echo "# exit status $rc, capture said lost $lost, driver dropped $dropped"; show "$T/dropv.out"
fi
rm -f "$T/drop.bin"

# --- a signal stops the capture cleanly, with the summary ---
# A slow source (3 MiB/s), so that the capture is mid-way when the signal
# comes yet keeps up even on a debug kernel: no block is dropped at the source.
for sig in INT TERM; do
	emu $EMU_RATE 50
	fpgastream capture -b 8M -o "$T/sig.bin" --verify=$SEED 2>"$T/sig.err" &
	pid=$!
	sleep 2
	kill -$sig $pid
	wait $pid
	rc=$?
	emu $EMU_RATE 0
	if [ $rc = 0 ] && grep -q "captured [1-9][0-9]* blocks.*stopped by signal" "$T/sig.err" &&
	   grep -q " 0 bad" "$T/sig.err"; then
		ok "SIG$sig mid-capture exits 0 with the summary"
	else
		not_ok "SIG$sig mid-capture exits 0 with the summary"
		echo "# exit status $rc"; show "$T/sig.err"
	fi
	fpgastream verify "$T/sig.bin" --seed $SEED >"$T/sigv.out" 2>&1
	expect_rc "the file written until SIG$sig verifies" 0 $? "$T/sigv.out"
	check "no pages stay pinned after SIG$sig" pins_balanced
	rm -f "$T/sig.bin" "$T/sig.bin.idx"
done

# --- buffers ---
fpgastream capture -n 50 -b 2M --hugepages none --verify=$SEED 2>"$T/4k.err"
rc=$?
# Without an IOMMU the kernel refuses 4 KiB pages, unless it bounces every
# block anyway (swiotlb=force); then they must stream right.
if [ $iommu = yes ]; then
	expect_rc "--hugepages none streams behind the IOMMU" 0 $rc "$T/4k.err"
elif [ $rc = 3 ] && grep -q "use hugepages" "$T/4k.err"; then
	ok "--hugepages none without an IOMMU exits 3 naming hugepages"
elif [ $rc = 0 ] && grep -q "bounces" "$T/4k.err"; then
	ok "--hugepages none without an IOMMU streams through swiotlb bounce buffers"
else
	not_ok "--hugepages none without an IOMMU: refused naming hugepages, or streams bounced"
	echo "# exit status $rc"; show "$T/4k.err"
fi
fpgastream capture -n 50 -b 2M --hugepages 1G --verify=$SEED 2>"$T/1g.err"
rc=$?
# The check harness boots one configuration with a 1 GiB page reserved.
gigapages=$(cat /sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages 2>/dev/null || echo 0)
if [ "$gigapages" -ge 1 ]; then
	if [ $rc = 0 ] && ! grep -q "fell back" "$T/1g.err"; then
		ok "--hugepages 1G streams from a 1 GiB page"
	else
		not_ok "--hugepages 1G streams from a 1 GiB page"
		echo "# exit status $rc"; show "$T/1g.err"
	fi
elif [ $rc = 0 ] && grep -q "fell back to 2 MiB" "$T/1g.err"; then
	ok "--hugepages 1G without gigantic pages falls back to 2 MiB and says so"
else
	not_ok "--hugepages 1G without gigantic pages falls back to 2 MiB and says so"
	echo "# exit status $rc"; show "$T/1g.err"
fi

# --- bench ---
# 8 MiB: small enough to bounce under swiotlb=force and dma32.
fpgastream bench -b 8M -t 0.2 -r 2 >"$T/bench" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q "^MAP " "$T/bench" && grep -q "^UNMAP " "$T/bench" &&
   grep -Eq "^  pin +[0-9]+\.[0-9]+$" "$T/bench" && grep -Eq "^  DMA map +[0-9]+\.[0-9]+$" "$T/bench" &&
   grep -Eq "^  LUT +[0-9]+\.[0-9]+$" "$T/bench" && grep -q "^256 " "$T/bench"; then
	ok "bench prints MAP (pin, DMA map, LUT) and UNMAP times and the streaming table"
else
	not_ok "bench prints MAP (pin, DMA map, LUT) and UNMAP times and the streaming table"
	echo "# exit status $rc"
fi
show "$T/bench"

# --- the example program of docs/example.c ---
if command -v fpgastream-example >/dev/null; then
	fpgastream-example >"$T/ex.out" 2>&1
	rc=$?
	# It takes whole batches: 1000 blocks or a few more, s = 0, 1, 2...
	b=$(sed -n 's/^\([0-9]*\) blocks, 0 lost, sum of first words \([0-9]*\)$/\1/p' "$T/ex.out")
	sum=$(sed -n 's/^\([0-9]*\) blocks, 0 lost, sum of first words \([0-9]*\)$/\2/p' "$T/ex.out")
	if [ $rc = 0 ] && [ -n "$b" ] && [ "$b" -ge 1000 ] && [ "$sum" = $((b * (b - 1) / 2)) ]; then
		ok "docs/example.c streams 1000 blocks"
	else
		not_ok "docs/example.c streams 1000 blocks"
		echo "# exit status $rc"; show "$T/ex.out"
	fi
else
	skip "docs/example.c streams 1000 blocks" "fpgastream-example not built"
fi

# --- errors ---
fpgastream capture -d 7 -b 8M -n 1 2>"$T/nodev.err"
expect_grep "a missing board exits 3 saying so" 3 $? "no such board" "$T/nodev.err"
fpgastream capture -b 8M -n 1 -o /nonexistent/dir/file 2>"$T/noout.err"
expect_rc "an output that cannot be created exits 3" 3 $? "$T/noout.err"

usage() {
	"$@" >"$T/usage.out" 2>&1
	rc=$?
	if [ $rc = 2 ] && grep -q "try 'fpgastream" "$T/usage.out"; then
		ok "usage error exits 2: $*"
	else
		not_ok "usage error exits 2: $*"
		echo "# exit status $rc"; show "$T/usage.out"
	fi
}
usage fpgastream
usage fpgastream frobnicate
usage fpgastream list extra
usage fpgastream info 0 1
usage fpgastream capture -n abc
usage fpgastream capture -n 0
usage fpgastream capture -n 10 -t 1
usage fpgastream capture -s 12Q
usage fpgastream capture -b 100000
usage fpgastream capture -t -1
usage fpgastream capture --hugepages 3M
usage fpgastream capture --verify=xyz
usage fpgastream capture --no-such-option
usage fpgastream capture -o
usage fpgastream capture stray
usage fpgastream verify
usage fpgastream verify a b --no-index
usage fpgastream verify f --seed
usage fpgastream bench -r 0
usage fpgastream bench -r 1001
usage fpgastream info 0 -d 0
usage fpgastream stats -d 0 -d 1
usage fpgastream list -d
usage fpgastream capture -s 1.3K
usage fpgastream capture -s 1.5
usage fpgastream capture -s 1PB
usage fpgastream capture -s 99999999999T
usage fpgastream capture -s .
usage fpgastream capture -s 1e3
usage fpgastream capture -s 0x10
usage fpgastream capture -b 64MB
usage fpgastream capture -n 1K
usage fpgastream capture -n 1e3
usage fpgastream capture -n -5
usage fpgastream capture -n 18446744073709551616
usage fpgastream capture -t 0s
usage fpgastream capture -t 5x
usage fpgastream capture -t 1h30
usage fpgastream capture -t 1e3
usage fpgastream capture --coalesce 4294967296
usage fpgastream verify f --seed 0x

for c in list info stats capture verify bench; do
	fpgastream $c --help >"$T/help" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q "^usage: fpgastream $c" "$T/help"; then
		ok "fpgastream $c --help"
	else
		not_ok "fpgastream $c --help"
	fi
	case $c in verify) continue ;; esac
	check "fpgastream $c --help documents -d DEV with a PCI address" \
		sh -c "grep -q -- '-d, --device DEV' '$T/help' && grep -q 'PCI address' '$T/help'"
	case $c in list|info|stats)
		check "fpgastream $c --help documents --json" grep -q -- "-J, --json" "$T/help" ;;
	esac
done
fpgastream --help >"$T/help" 2>&1
check "fpgastream --help gives the rules for sizes and durations" \
	sh -c "grep -q 'powers of' '$T/help' && grep -q 'KB, MB, GB, TB' '$T/help' && grep -q '90s, 5m, 2h' '$T/help'"
fpgastream --help >"$T/help" 2>&1 && grep -q "Exit status" "$T/help"
check "fpgastream --help documents the exit status" [ $? = 0 ]
fpgastream --version >"$T/help" 2>&1 && grep -q "^fpgastream [0-9]" "$T/help"
check "fpgastream --version" [ $? = 0 ]

check "no pages stay pinned at the end" pins_balanced
emu_defaults
rm -rf "$T"
echo "1..$n"
[ $failed = 0 ]
