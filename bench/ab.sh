#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/ab.sh BEFORE.ko AFTER.ko [RUNS]: before/after figures of a driver
# change, both modules in the same guest, in turns (rmmod/insmod between
# runs), so both see the same load on the host.  MAP+UNMAP of 2 GiB of
# 2 MiB pages in the iommu configuration; announcements (flow control,
# rate 0) in plain with one vCPU, each round ending with the bare board
# (AB_COALESCE="COUNT USEC" sets the coalescing, default 512 10000).
# Prints "label figure median [min .. max]", and each module's
# announcements over the bare board, run by run, as "vs_bare".
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
before=$1
after=$2
runs=${3:-5}
out=${BENCH_OUT:-$top/build/bench}/ab
mkdir -p "$out"

# guest CMD [PEER]: in turns, load each module and run one measurement
# (CMD), tagged "before" or "after"; then, with the module unloaded, PEER
# (the bare board), tagged "bare".
guest() {
	cat <<EOS
bdf=\$(basename "\$(readlink /sys/class/fpgastream/fpgastream0/device)")
i=0
while [ \$i -lt $runs ]; do
	for m in before after; do
		rmmod fpgastream 2>/dev/null || true
		insmod /lib/modules/ab/\$m.ko
		$1 | sed "s/^BENCH /BENCH \$m /"
	done
	$(if [[ $2 ]]; then echo "rmmod fpgastream; $2 | sed 's/^BENCH /BENCH bare /'"; fi)
	i=\$((i + 1))
done
EOS
}
mods=$(mktemp -d)
trap 'rm -rf "$mods"' EXIT
cp "$before" "$mods/before.ko"
cp "$after" "$mods/after.ko"

run() {	# config command [peer [runner options]]
	"$top/tools/vm/run" --config "$1" --mem 4G --hugepages 1100 --timeout 900 ${4:-} \
		--copy "$mods:/lib/modules/ab" --log "$out/$1.log" -- sh -c "$(guest "$2" "${3:-}")" >/dev/null
	grep -a '^BENCH ' "$out/$1.log" | tr -d '\r'
}

summary() {	# field
	awk -v f="$1" '{ for (i = 4; i < NF; i += 2) if ($i == f) print $2, $3, $(i + 1) }' |
	sort -k1,2 -k3g | awk -v f="$1" '
		{ k = $1 " " $2; v[k, ++n[k]] = $3 }
		END { for (k in n) { c = n[k]
			m = c % 2 ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
			printf "%-8s %-10s %s %12g [%g .. %g] n=%d\n", substr(k, 1, index(k, " ") - 1),
				substr(k, index(k, " ") + 1), f, m, v[k, 1], v[k, c], c } }' | sort
}

# ratio LABEL: LABEL's blocks/s over the bare board's in the same round
ratio() {
	awk -v l="$1" '$2 == l && $3 == "announce" { for (i = 4; i < NF; i += 2)
			if ($i == "blocks_per_s") a = $(i + 1) }
		$2 == "bare" && $3 == "device" && a { print a / $5; a = 0 }' |
	sort -g | awk -v l="$1" '{ v[NR] = $1 } END { if (!NR) exit
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%-8s %-10s %s %12g [%g .. %g] n=%d\n", l, "announce", "vs_bare", m, v[1], v[NR], NR }'
}

run iommu "fstr-bench map 1 2G 2M" >"$out/map.lines"
# As make bench measures P2: one vCPU, 512 blocks or 10 ms, the bare board
# in the same round.
run plain "fstr-bench announce 1 2 256M ${AB_COALESCE:-512 10000}" \
	"fstr-bench device-rate 1 2 \$bdf 256M" "--smp 1 ${AB_VM_OPTS:-}" >"$out/announce.lines"
for f in total_ms pin_ms dma_ms lut_ms unmap_ms; do summary $f <"$out/map.lines"; done
for f in blocks_per_s records_per_read irq_per_block reads_per_block cpu_us_per_block board_holds; do
	summary $f <"$out/announce.lines"
done
ratio before <"$out/announce.lines"
ratio after <"$out/announce.lines"
