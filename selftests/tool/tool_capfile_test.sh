#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# fpgastream capture's files in the VM, against the reference device (busybox
# sh, TAP): the index beside the data (docs/capture-format.md) checked
# against the data, the driver's STATS and verify, with drops in flow
# control and overwrite mode; a filesystem that fills up, /dev/full and a
# block device that ends (ENOSPC: exit 4, and summary, index and file size
# agree); no clobbering without --force, and a missing board leaves the
# file be; SIGUSR1, SIGHUP, status lines; rotation by size and time,
# striping; a capture killed with SIGKILL verifies up to its last sync;
# O_DIRECT on a block device and the page cache on tmpfs, as the tool's own
# report line says; NUMA placement.
#
# The block device is brd's /dev/ram0, when its module is in the guest:
#   tools/vm/run --copy /lib/modules/$(tools/vm/kver)/kernel/drivers/block/brd.ko:/lib/modules/brd.ko \
#       -- fpgastream-vm-tests tool
# Without it those cases are skipped.

SEED=0x5eed
T=${TMPDIR:-/tmp}/tool_capfile_test.$$
mkdir -p "$T"
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n $1"; failed=$((failed + 1)); }
skip() { n=$((n + 1)); echo "ok $n $1 # SKIP $2"; }
show() { sed 's/^/# /' "$1"; }
# check NAME COMMAND...: ok when COMMAND succeeds
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}
# expect NAME WANT_RC GOT_RC LOG [PATTERN]: the exit status and, if given, a
# line of LOG matching PATTERN (grep -E)
expect() {
	if [ "$3" = "$2" ] && { [ -z "$5" ] || grep -Eq -- "$5" "$4"; }; then
		ok "$1"
	else
		not_ok "$1"
		echo "# exit status $3, want $2${5:+ and a line matching '$5'}"
		show "$4"
	fi
}

bdf=$(basename "$(readlink /sys/class/fpgastream/fpgastream0/device)" 2>/dev/null)
bar0=
[ -n "$bdf" ] && bar0=$(head -n 1 "/sys/bus/pci/devices/$bdf/resource" | cut -d' ' -f1)
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

size_of() { wc -c <"$1" | tr -d ' '; }
# jnum FILE KEY: the number KEY has in a JSON document (one key a line)
jnum() { sed -n "s/^ *\"$2\": \([0-9]*\),\{0,1\}\$/\1/p" "$1" | head -n 1; }
# records FILE: the index rows of `fpgastream inspect FILE` (SEQ LOST FLAGS TIME OFFSET LENGTH)
records() {
	fpgastream inspect "$1" 2>/dev/null |
		awk 'p && NF == 6 && $1 ~ /^[0-9]+$/ { print $1, $2, $3, $4, $5, $6 } $1 == "SEQ" { p = 1 }'
}
nrecords() { records "$1" | wc -l | tr -d ' '; }
# index_sane FILE: the rows are consecutive blocks from offset 0 and every
# gap in seq is covered by the lost of the record after it
index_sane() {
	records "$1" | awk '
		{ if ($5 != (NR - 1) * 65536 || $6 != 65536) bad++
		  if (NR > 1 && $1 - prev - 1 > $2) bad++
		  if (NR > 1 && $1 <= prev) bad++
		  prev = $1 }
		END { exit bad > 0 || NR == 0 }'
}
sum_lost() { records "$1" | awk '{ s += $2 } END { print s + 0 }'; }
captured() { sed -n 's/.*captured \([0-9]*\) blocks.*/\1/p' "$1" | head -n 1; }
header() { fpgastream inspect --header "$1" 2>/dev/null | sed -n "s/^$2: *//p"; }
# given_back: the last capture gave every block it received back to the
# board (STATS: released = announced), however it ended
given_back() {
	fpgastream stats -J >"$T/gb.json" 2>&1
	a=$(jnum "$T/gb.json" blocks_announced)
	r=$(jnum "$T/gb.json" blocks_released)
	echo "# blocks_announced $a, blocks_released $r"
	[ -n "$a" ] && [ "$a" = "$r" ]
}

# --- a plain capture: data and index agree, verify uses the index ---
fpgastream capture -n 200 -b 4M -o "$T/c.bin" --verify=$SEED 2>"$T/c.err"
expect "capture -n 200 to a file exits 0" 0 $? "$T/c.err"
check "the data file is a plain run of 200 blocks" [ "$(size_of "$T/c.bin")" = $((200 * 65536)) ]
check "the index has 200 records" [ "$(nrecords "$T/c.bin")" = 200 ]
check "... and seq 0..199, every block where its record says" index_sane "$T/c.bin"
check "the header names the board, its PCI address, 64 KiB blocks, the seed and the tool" \
	sh -c "[ '$(header "$T/c.bin" board)' = fpgastream0 ] && [ '$(header "$T/c.bin" pci)' = '$bdf' ] &&
	       [ '$(header "$T/c.bin" 'block size')' = 65536 ] && [ '$(header "$T/c.bin" seed)' = 24301 ] &&
	       [ '$(header "$T/c.bin" tool)' = 'fpgastream 1.0.0' ] && [ '$(header "$T/c.bin" end)' = done ]"
fpgastream verify "$T/c.bin" -J >"$T/cv.json" 2>"$T/cv.err"
rc=$?
if [ $rc = 0 ] && [ "$(jnum "$T/cv.json" blocks)" = 200 ] && [ "$(jnum "$T/cv.json" bad)" = 0 ] &&
   grep -q '"indexed": true' "$T/cv.json"; then
	ok "verify -J uses the index (and its seed): blocks 200, bad 0"
else
	not_ok "verify -J uses the index (and its seed): blocks 200, bad 0"
	echo "# exit status $rc"; show "$T/cv.json"; show "$T/cv.err"
fi
# A block whose data does not match: bad, found through the index
cp "$T/c.bin" "$T/bad.bin" && cp "$T/c.bin.idx" "$T/bad.bin.idx"
printf 'XXXXXXXX' | dd of="$T/bad.bin" bs=1 seek=$((5 * 65536 + 800)) conv=notrunc 2>/dev/null
fpgastream verify "$T/bad.bin" -J >"$T/bv.json" 2>"$T/bv.err"
rc=$?
check "a block damaged on disk is 1 bad block (exit 1)" \
	sh -c "[ $rc = 1 ] && [ '$(jnum "$T/bv.json" bad)' = 1 ] && [ '$(jnum "$T/bv.json" blocks)' = 200 ]"
# A torn last index record (a crash mid-append) is ignored
cp "$T/c.bin" "$T/torn.bin"
head -c $((512 + 48 * 150 + 20)) "$T/c.bin.idx" >"$T/torn.bin.idx"
fpgastream verify "$T/torn.bin" >"$T/tv.out" 2>&1
expect "an index torn in its 151st record: verify checks 150 blocks and exits 0" 0 $? "$T/tv.out" \
	"150 blocks, sequence 0..149, 0 lost, 0 bad"
check "... saying the record is torn, the capture cut short and the rest unindexed" \
	sh -c "grep -q 'torn' '$T/tv.out' && grep -q 'cut short' '$T/tv.out' && grep -q '3276800 bytes after the last indexed block' '$T/tv.out'"
fpgastream inspect "$T/torn.bin" >"$T/ti.out" 2>&1
expect "inspect of the torn index exits 0 with a note" 0 $? "$T/ti.out" "torn"
rm -f "$T/bad.bin" "$T/bad.bin.idx" "$T/torn.bin" "$T/torn.bin.idx"

# --- no clobbering ---
sum0=$(md5sum <"$T/c.bin")
fpgastream capture -n 5 -b 4M -o "$T/c.bin" 2>"$T/clob.err"
expect "an existing file is refused without --force: exit 7" 7 $? "$T/clob.err" "exists: not overwritten without --force"
check "... and left as it was" [ "$(md5sum <"$T/c.bin")" = "$sum0" ]
fpgastream capture -d 7 -n 5 -b 4M -o "$T/c.bin" --force 2>"$T/d7.err"
expect "a missing board (-d 7) with --force exits 3" 3 $? "$T/d7.err" "no such board"
check "... and leaves the existing file and its index intact" \
	sh -c "[ '$(md5sum <"$T/c.bin")' = '$sum0' ] && [ \$(wc -c <'$T/c.bin.idx') = $((512 + 201 * 48)) ]"
mv "$T/c.bin" "$T/c.keep"
fpgastream capture -n 3 -b 4M -o "$T/c.bin" 2>"$T/stale.err"
expect "a stale FILE.idx (its FILE gone) is replaced, with a note" 0 $? "$T/stale.err" "stale index"
check "... by the index of the 3 new blocks" [ "$(nrecords "$T/c.bin")" = 3 ]
fpgastream capture -n 5 -b 4M -o "$T/c.bin" --force 2>"$T/force.err"
expect "--force overwrites" 0 $? "$T/force.err"
check "... the file and its index: 5 blocks" \
	sh -c "[ \$(wc -c <'$T/c.bin') = $((5 * 65536)) ] && [ '$(nrecords "$T/c.bin")' = 5 ]"
fpgastream capture -n 5 -b 4M -o - --index "$T/c.bin.idx" 2>"$T/si.err" >/dev/null
expect "-o - --index over an existing index is refused (exit 7)" 7 $? "$T/si.err" "exists"
rm -f "$T/c.bin" "$T/c.bin.idx" "$T/c.keep"

# --- drops: flow control with a fast source and a slow writer ---
# The writer is a pipe read late, so the board waits and the source drops;
# --index keeps the index of that stream.
emu $EMU_RATE 2000
(fpgastream capture -b 1M -n 300 -o - --index "$T/drop.idx" --verify=$SEED 2>"$T/drop.err"
 echo $? >"$T/drop.rc") | (sleep 1; cat >"$T/drop.bin")
emu $EMU_RATE 0
fpgastream stats -J >"$T/drop.stats" 2>&1
rc=$(cat "$T/drop.rc")
lost=$(sed -n 's/.*lost \([0-9]*\) blocks.*/\1/p' "$T/drop.err")
ilost=$(sum_lost "$T/drop.idx")
dropped=$(jnum "$T/drop.stats" blocks_dropped)
if [ "$rc" = 1 ] && [ -n "$lost" ] && [ "$lost" -gt 0 ] && [ "$(nrecords "$T/drop.idx")" = 300 ] &&
   [ "$ilost" = "$lost" ] && [ -n "$dropped" ] && [ "$ilost" -le "$dropped" ]; then
	ok "flow control, slow writer: 300 records, their lost ($ilost) is the summary's and within STATS' dropped ($dropped)"
else
	not_ok "flow control, slow writer: the index's lost matches the summary and STATS"
	echo "# exit status $rc, summary lost $lost, index lost $ilost, $(nrecords "$T/drop.idx") records, STATS dropped $dropped"
	show "$T/drop.err"
fi
check "... every gap in seq is covered by a record's lost" index_sane "$T/drop.idx"
fpgastream verify "$T/drop.bin" --index "$T/drop.idx" -J >"$T/dropv.json" 2>"$T/dropv.err"
rc=$?
if [ $rc = 1 ] && [ "$(jnum "$T/dropv.json" blocks)" = 300 ] && [ "$(jnum "$T/dropv.json" bad)" = 0 ] &&
   [ "$(jnum "$T/dropv.json" lost)" = "$ilost" ] && grep -q "blocks lost before seq" "$T/dropv.err"; then
	ok "verify with that index: 300 blocks, 0 bad, $ilost lost, each gap reported where it is"
else
	not_ok "verify with that index: 300 blocks, 0 bad, the index's lost, gaps reported"
	echo "# exit status $rc"; show "$T/dropv.json"; show "$T/dropv.err"
fi
rm -f "$T/drop.bin" "$T/drop.idx"

# --- drops: overwrite mode, a slow writer ---
(fpgastream capture --overwrite -b 1M -n 200 -o - --index "$T/ow.idx" --seed $SEED 2>"$T/ow.err"
 echo $? >"$T/ow.rc") | (sleep 2; cat >"$T/ow.bin")
rc=$(cat "$T/ow.rc")
fpgastream stats -J >"$T/ow.stats" 2>&1
ilost=$(sum_lost "$T/ow.idx")
over=$(jnum "$T/ow.stats" blocks_overwritten)
dropped=$(jnum "$T/ow.stats" blocks_dropped)
if [ "$rc" = 1 ] && [ "$ilost" -gt 0 ] && [ "$(nrecords "$T/ow.idx")" = 200 ] &&
   [ "$ilost" -le $((over + dropped)) ] && index_sane "$T/ow.idx"; then
	ok "overwrite mode: 200 records, gaps in seq covered by lost ($ilost <= $over overwritten + $dropped dropped)"
else
	not_ok "overwrite mode: the index's gaps and lost agree with STATS"
	echo "# exit status $rc, index lost $ilost, $(nrecords "$T/ow.idx") records, STATS $over overwritten $dropped dropped"
	show "$T/ow.err"
fi
# The reader came 2 s late: the board lapped the ring while blocks waited
# for their write.  Those are flagged in the index, and only they may hold
# data that does not verify.
fpgastream verify "$T/ow.bin" --index "$T/ow.idx" -J >"$T/owv.json" 2>"$T/owv.err"
bad=$(jnum "$T/owv.json" bad)
cl=$(jnum "$T/owv.json" clobbered)
clbad=$(jnum "$T/owv.json" clobbered_bad)
if [ -n "$bad" ] && [ "$bad" = "$clbad" ] && [ "$cl" -gt 0 ] &&
   grep -q "$cl blocks may hold data the board wrote over them" "$T/ow.err"; then
	ok "overwrite mode: $cl blocks flagged as written over before their write was done; the $bad bad ones are all among them"
else
	not_ok "overwrite mode: blocks written over before their write was done are flagged, and only they are bad"
	echo "# bad $bad, flagged $cl, flagged and bad $clbad"; show "$T/owv.json"; show "$T/ow.err"; show "$T/owv.err"
fi
rm -f "$T/ow.bin" "$T/ow.idx"
# ... and a writer that keeps up (a slow source, a file, a ring of 2.5 s:
# 8 MiB, which fits swiotlb=force's bounce pool) has none flagged, though
# the board goes round the ring.
emu $EMU_RATE 50
fpgastream capture --overwrite -b 8M -n 150 -o "$T/ow2.bin" --seed $SEED -J >"$T/ow2.json" 2>"$T/ow2.err"
rc=$?
emu $EMU_RATE 0
fpgastream verify "$T/ow2.bin" -J >"$T/ow2v.json" 2>"$T/ow2v.err"
vrc=$?
if [ $rc = 0 ] && [ "$(jnum "$T/ow2.json" clobbered)" = 0 ] && [ $vrc = 0 ] &&
   [ "$(jnum "$T/ow2v.json" clobbered)" = 0 ] && [ "$(jnum "$T/ow2v.json" blocks)" = 150 ]; then
	ok "overwrite mode, a writer that keeps up: nothing flagged, all 150 blocks verify"
else
	not_ok "overwrite mode, a writer that keeps up: nothing flagged, all 150 blocks verify"
	echo "# exit status $rc, verify $vrc"; show "$T/ow2.json"; show "$T/ow2.err"; show "$T/ow2v.err"
fi
check "... every block it received went back to the board (overwrite mode too)" given_back
rm -f "$T/ow2.bin" "$T/ow2.bin.idx"

# --- a filesystem that fills up ---
mkdir -p "$T/small"
if mount -t tmpfs -o size=4m tmpfs "$T/small"; then
	fpgastream capture -n 200 -b 4M -o "$T/small/f.bin" --seed $SEED -J >"$T/full.json" 2>"$T/full.err"
	rc=$?
	b=$(captured "$T/full.err")
	expect "capture onto a 4 MiB tmpfs exits 4 (full)" 4 $rc "$T/full.err" "No space left on device"
	if [ -n "$b" ] && [ "$b" -gt 0 ] && [ "$b" -lt 64 ] && [ "$(size_of "$T/small/f.bin")" = $((b * 65536)) ] &&
	   [ "$(nrecords "$T/small/f.bin")" = "$b" ] && [ "$(jnum "$T/full.json" blocks)" = "$b" ] &&
	   [ "$(header "$T/small/f.bin" end)" = full ]; then
		ok "summary, JSON, index and file size agree: $b blocks; the end record says full"
	else
		not_ok "summary, JSON, index and file size agree on a full disk"
		echo "# summary $b, file $(size_of "$T/small/f.bin") bytes, $(nrecords "$T/small/f.bin") records"
		show "$T/full.json"
	fi
	check "... every block it received went back to the board" given_back
	fpgastream verify "$T/small/f.bin" >"$T/fullv.out" 2>&1
	expect "... and the file verifies" 0 $? "$T/fullv.out" "$b blocks, sequence 0\\.\\.$((b - 1)), 0 lost, 0 bad"
	check "the page cache on tmpfs: the tool says O_DIRECT is refused" \
		grep -q "refuses O_DIRECT: writing through the page cache" "$T/full.err"
	umount "$T/small"
else
	skip "capture onto a full tmpfs" "cannot mount a tmpfs"
fi
rmdir "$T/small" 2>/dev/null

fpgastream capture -n 50 -b 4M -o /dev/full -J >"$T/devfull.json" 2>"$T/devfull.err"
rc=$?
expect "capture into /dev/full exits 4" 4 $rc "$T/devfull.err" "/dev/full: write: No space left on device"
check "... every block it received went back to the board" given_back
check "... and counts nothing: captured 0 blocks, JSON bytes 0" \
	sh -c "grep -q 'captured 0 blocks (0 B)' '$T/devfull.err' && [ '$(jnum "$T/devfull.json" bytes)' = 0 ] &&
	       [ '$(jnum "$T/devfull.json" exit_status)' = 4 ]"

# --- a block device: O_DIRECT, and its end is ENOSPC ---
if [ -f /lib/modules/brd.ko ] && { [ -b /dev/ram0 ] || insmod /lib/modules/brd.ko rd_nr=1 rd_size=16384; } &&
   [ -b /dev/ram0 ]; then
	fpgastream capture -n 50 -b 4M -o /dev/ram0 2>"$T/blk.err"
	expect "a block device is not written without --force (exit 7)" 7 $? "$T/blk.err" "block device"
	fpgastream capture -n 100 -b 4M -o /dev/ram0 --force --index "$T/ram.idx" --verify=$SEED 2>"$T/blk.err"
	expect "capture onto /dev/ram0 uses O_DIRECT through io_uring, as it says" 0 $? "$T/blk.err" \
		"^fpgastream capture: /dev/ram0: O_DIRECT, io_uring"
	fpgastream verify /dev/ram0 --index "$T/ram.idx" >"$T/blkv.out" 2>&1
	expect "... and verifies through its index (the device is bigger than the data)" 0 $? "$T/blkv.out" \
		"100 blocks, sequence 0..99, 0 lost, 0 bad"
	fpgastream capture -n 400 -b 4M -o /dev/ram0 --force --index "$T/ram2.idx" 2>"$T/blk2.err"
	rc=$?
	expect "writing past the end of a 16 MiB device exits 4" 4 $rc "$T/blk2.err" "captured 256 blocks"
	check "... and its index names the 256 blocks that fit" [ "$(nrecords "$T/ram2.idx")" = 256 ]
else
	skip "O_DIRECT onto a block device" "no brd.ko in the guest (tools/vm/run --copy .../brd.ko:/lib/modules/brd.ko)"
fi

# --- signals and status lines ---
emu $EMU_RATE 50
fpgastream capture -b 4M -o "$T/s.bin" --seed $SEED --status-interval 1 2>"$T/s.err" &
pid=$!
sleep 3
kill -USR1 $pid
sleep 1
kill -HUP $pid
wait $pid
rc=$?
emu $EMU_RATE 0
expect "SIGHUP ends the capture cleanly: exit 0, the summary" 0 $rc "$T/s.err" "captured [1-9][0-9]* blocks.*stopped by signal SIGHUP"
check "... every block it received went back to the board" given_back
check "stderr not a terminal: key=value status lines every --status-interval" \
	sh -c "[ \$(grep -c '^fpgastream capture: status elapsed=[0-9.]*s blocks=[0-9]* bytes=[0-9]* rate=[0-9]*B/s avg=[0-9]*B/s ring=[0-9]*% lost=0 files=1\$' '$T/s.err') -ge 3 ]"
check "no progress line (carriage returns) when stderr is not a terminal" \
	[ "$(tr -dc '\r' <"$T/s.err" | wc -c | tr -d ' ')" = 0 ]
check "the file written until SIGHUP verifies, its end record says signal" \
	sh -c "fpgastream verify '$T/s.bin' >/dev/null 2>&1 && [ '$(header "$T/s.bin" end)' = signal ]"
rm -f "$T/s.bin" "$T/s.bin.idx"

emu $EMU_RATE 50
fpgastream capture -b 4M -o /dev/null --status-interval 0 2>"$T/u.err" &
pid=$!
sleep 2
kill -USR1 $pid
sleep 1
kill -TERM $pid
wait $pid
rc=$?
emu $EMU_RATE 0
expect "SIGUSR1 prints one status line at once (no interval), SIGTERM ends with the summary" 0 $rc "$T/u.err" \
	"stopped by signal SIGTERM"
check "... exactly one status line" [ "$(grep -c ' status elapsed=' "$T/u.err")" = 1 ]

# --- killed: verify reads up to the last synced block ---
emu $EMU_RATE 50
fpgastream capture -b 4M -o "$T/k.bin" --seed $SEED --sync 500ms 2>"$T/k.err" &
pid=$!
sleep 3
kill -KILL $pid
wait $pid
emu $EMU_RATE 0
fpgastream verify "$T/k.bin" >"$T/kv.out" 2>&1
rc=$?
kb=$(sed -n 's/.*: \([0-9]*\) blocks, sequence.*/\1/p' "$T/kv.out")
if [ $rc = 0 ] && [ -n "$kb" ] && [ "$kb" -gt 0 ] && grep -q "cut short" "$T/kv.out" &&
   [ "$(size_of "$T/k.bin")" -ge $((kb * 65536)) ] && [ "$(nrecords "$T/k.bin")" = "$kb" ]; then
	ok "after SIGKILL verify checks the $kb synced blocks, exits 0 and says the capture was cut short"
else
	not_ok "after SIGKILL verify checks the synced blocks and says the capture was cut short"
	echo "# exit status $rc, file $(size_of "$T/k.bin") bytes"; show "$T/kv.out"; show "$T/k.err"
fi
rm -f "$T/k.bin" "$T/k.bin.idx"

# --- rotation ---
fpgastream capture -n 40 -b 4M -C 1M -o "$T/r" --seed $SEED -q 2>"$T/r.err"
rc=$?
if [ $rc = 0 ] && [ "$(size_of "$T/r.0")" = 1048576 ] && [ "$(size_of "$T/r.1")" = 1048576 ] &&
   [ "$(size_of "$T/r.2")" = 524288 ] && [ ! -e "$T/r.3" ] && [ "$(nrecords "$T/r.2")" = 8 ] &&
   [ "$(header "$T/r.1" end)" = rotated ] && [ "$(header "$T/r.2" 'file number')" = 2 ] &&
   [ "$(records "$T/r.1" | head -n 1 | cut -d' ' -f1)" = 16 ]; then
	ok "-C 1M: 40 blocks in r.0, r.1 (16 each, from seq 16) and r.2 (8), each with its index"
else
	not_ok "-C 1M: 40 blocks in r.0, r.1, r.2, each with its index"
	echo "# exit status $rc"; ls -l "$T" | sed 's/^/# /'; show "$T/r.err"
fi
check "each rotated file verifies on its own" \
	sh -c "for f in '$T/r.0' '$T/r.1' '$T/r.2'; do fpgastream verify \"\$f\" >/dev/null 2>&1 || exit 1; done"
fpgastream verify "$T/r.0" "$T/r.2" "$T/r.1" -J >"$T/rv.json" 2>"$T/rv.err"
rc=$?
check "verify of the three merges them: 40 blocks, sequence 0..39, none lost or bad" \
	sh -c "[ $rc = 0 ] && [ '$(jnum "$T/rv.json" blocks)' = 40 ] && [ '$(jnum "$T/rv.json" files)' = 3 ] &&
	       [ '$(jnum "$T/rv.json" first)' = 0 ] && [ '$(jnum "$T/rv.json" last)' = 39 ] &&
	       [ '$(jnum "$T/rv.json" bad)' = 0 ] && [ '$(jnum "$T/rv.json" lost)' = 0 ]"
fpgastream verify "$T/r.0" "$T/r.2" >"$T/rv2.out" 2>&1
expect "... and r.0 with r.2 alone: 16 blocks missing (not lost: no record says so), said where, exit 1" 1 $? \
	"$T/rv2.out" "16 blocks before seq 32 are in none of the files given"
check "... the summary line counts them" grep -q "24 blocks, sequence 0..39, 0 lost, 0 bad, 16 missing" "$T/rv2.out"
rm -f "$T/r.0" "$T/r.0.idx"
fpgastream capture -n 40 -b 4M -C 1M -o "$T/r" -q 2>"$T/r2.err"
expect "a rotation over the files of an earlier one is refused (exit 7)" 7 $? "$T/r2.err" "r\.[12] exists"
rm -f "$T"/r.*
fpgastream capture -n 40 -b 4M -C 1M -W 2 -o "$T/w" -q 2>"$T/w.err"
rc=$?
check "-C 1M -W 2: a ring of two files; w.0 holds the last 8 blocks (seq 32..39)" \
	sh -c "[ $rc = 0 ] && [ ! -e '$T/w.2' ] && [ \$(wc -c <'$T/w.0') = 524288 ] &&
	       [ '$(records "$T/w.0" | head -n 1 | cut -d' ' -f1)' = 32 ]"
rm -f "$T"/w.*
emu $EMU_RATE 50
fpgastream capture -t 3.5 -b 4M -G 1 -o "$T/g" -q 2>"$T/g.err"
rc=$?
total=0
for f in "$T"/g.[0-9]*; do
	case $f in *.idx) continue ;; esac
	total=$((total + $(nrecords "$f")))
done
files=$(ls "$T" | grep -c '^g\.[0-9]*$')
if [ $rc = 0 ] && [ "$files" -ge 3 ] && [ "$files" -le 5 ] && [ "$total" = "$(captured "$T/g.err")" ]; then
	ok "-G 1 for 3.5 s: $files files, their indexes hold the $total blocks captured"
else
	not_ok "-G 1 for 3.5 s: 3 to 5 files, their indexes hold every block captured"
	echo "# exit status $rc, $files files, $total blocks indexed"; show "$T/g.err"
fi
rm -f "$T"/g.*
fpgastream capture -b 4M -G 1 -W 2 -o "$T/g" -q 2>"$T/gw.err"
rc=$?
emu $EMU_RATE 0
expect "-G 1 -W 2 stops by itself after two files" 0 $rc "$T/gw.err" "the last file \\(-W\\) is full"
check "... g.0 and g.1, no g.2" sh -c "[ -s '$T/g.0' ] && [ -s '$T/g.1' ] && [ ! -e '$T/g.2' ]"
check "... and every block it received went back to the board" given_back
rm -f "$T"/g.*

# --- striping ---
fpgastream capture -n 100 -b 4M -o "$T/a.bin" -o "$T/b.bin" -q --verify=$SEED 2>"$T/st.err"
rc=$?
na=$(nrecords "$T/a.bin")
nb=$(nrecords "$T/b.bin")
if [ $rc = 0 ] && [ "$na" -gt 0 ] && [ "$nb" -gt 0 ] && [ $((na + nb)) = 100 ] &&
   [ "$(size_of "$T/a.bin")" = $((na * 65536)) ] && [ "$(size_of "$T/b.bin")" = $((nb * 65536)) ] &&
   [ "$({ records "$T/a.bin"; records "$T/b.bin"; } | cut -d' ' -f1 | sort -n | uniq | wc -l | tr -d ' ')" = 100 ]; then
	ok "-o a -o b: 100 blocks striped, $na and $nb, each seq in one file"
else
	not_ok "-o a -o b: 100 blocks striped over the two, each seq in one file"
	echo "# exit status $rc, $na + $nb"; show "$T/st.err"
fi
check "... every block it received went back to the board" given_back
check "each stripe verifies on its own" \
	sh -c "fpgastream verify '$T/a.bin' >/dev/null 2>&1 && fpgastream verify '$T/b.bin' >/dev/null 2>&1"
fpgastream verify "$T/a.bin" "$T/b.bin" >"$T/stv.out" 2>&1
expect "verify a.bin b.bin merges the stripes into the stream" 0 $? "$T/stv.out" \
	"a.bin and 1 more: 100 blocks, sequence 0..99, 0 lost, 0 bad"
rm -f "$T/a.bin" "$T/a.bin.idx" "$T/b.bin" "$T/b.bin.idx"

# --- NUMA ---
fpgastream capture -n 10 -b 4M --numa 0 -o /dev/null 2>"$T/numa.err"
rc=$?
if [ $rc = 0 ] && grep -q "buffer on NUMA node 0 (--numa)" "$T/numa.err"; then
	ok "--numa 0 puts the buffer on node 0 and says so"
elif [ $rc = 0 ] && grep -q "this kernel has no NUMA" "$T/numa.err"; then
	ok "--numa 0 on a kernel without NUMA: said, ignored"
else
	not_ok "--numa 0 puts the buffer on node 0 and says so"
	echo "# exit status $rc"; show "$T/numa.err"
fi
# Where the buffer's pages are, seen from /proc/PID/numa_maps (its
# hugepage mapping) while the capture runs: on each node asked for.
# (In the dma32 VM node 1 is the low memory: --numa 1 there avoids bouncing.)
emu $EMU_RATE 50
for node in $(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | sed 's/.*node//'); do
	fpgastream capture -t 3 -b 4M --numa "$node" -o /dev/null 2>"$T/nm.err" &
	pid=$!
	line=
	for try in 1 2 3 4 5 6 7 8 9 10; do
		sleep 0.2
		line=$(grep ' huge ' "/proc/$pid/numa_maps" 2>/dev/null | head -n 1)
		[ -n "$line" ] && break
	done
	wait $pid
	rc=$?
	nodes=$(echo "$line" | tr ' ' '\n' | grep -c '^N[0-9]*=')
	if [ $rc = 0 ] && echo "$line" | grep -q " N$node=" && [ "$nodes" = 1 ]; then
		ok "--numa $node: the buffer's hugepages are all on node $node (numa_maps)"
	else
		not_ok "--numa $node: the buffer's hugepages are all on node $node (numa_maps)"
		echo "# exit status $rc, numa_maps: $line"; show "$T/nm.err"
	fi
done
emu $EMU_RATE 0
fpgastream capture -n 10 -b 4M --numa 9 -o /dev/null 2>"$T/numa9.err"
expect "--numa 9 (no such node) is said and ignored" 0 $? "$T/numa9.err" "(does not exist|no NUMA)"

# --- usage ---
usage() {
	"$@" >"$T/usage.out" 2>&1
	expect "usage error exits 2: $*" 2 $? "$T/usage.out" "try 'fpgastream"
}
usage fpgastream capture -o - -J
usage fpgastream capture -o a -o a
usage fpgastream capture -C 1M -o a -o b
usage fpgastream capture -W 3 -o a
usage fpgastream capture -C 1K -o a
usage fpgastream capture --index x -o a -o b
usage fpgastream inspect
usage fpgastream verify f --index a --no-index

pins_balanced() {
	a=$(awk '$1 == "nr_foll_pin_acquired" { print $2 }' /proc/vmstat)
	r=$(awk '$1 == "nr_foll_pin_released" { print $2 }' /proc/vmstat)
	echo "# nr_foll_pin_acquired $a, nr_foll_pin_released $r"
	[ "$a" = "$r" ]
}
check "no pages stay pinned (the buffer, and io_uring's registration of it)" pins_balanced

emu_defaults
rm -rf "$T"
echo "1..$n"
[ $failed = 0 ]
