#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# bench/run.sh [RUNS]: `make bench`.  Boots the VM in the plain and the iommu
# configuration, runs bench/guest.sh (fstr-bench-guest) in each, and turns
# the "BENCH" lines of the consoles into one table on stdout and
# bench/results/latest.json.  docs/performance.md explains the figures.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-${BENCH_RUNS:-5}}
out=${BENCH_OUT:-$top/build/bench}
json=${BENCH_JSON:-$top/bench/results/latest.json}
# BENCH_MODULE: another fpgastream.ko to measure (e.g. a "before" build)
module=${BENCH_MODULE:-$top/kmod/fpgastream.ko}
kver=$("$top/tools/vm/kver")
mkdir -p "$out" "$(dirname "$json")"

# The kernel's own VFIO modules, uncompressed, for the iommu guest.
vfio=$out/vfio
rm -rf "$vfio"
mkdir -p "$vfio"
for m in virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1 \
	 drivers/vfio/vfio_virqfd drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci; do
	src=/lib/modules/$kver/kernel/$m.ko
	if [[ -f $src ]]; then
		cp "$src" "$vfio/"
	elif [[ -f $src.xz ]]; then
		xz -dc "$src.xz" >"$vfio/$(basename "$m").ko"
	else
		echo "bench: $src not found: no VFIO peer" >&2
	fi
done

# BENCH_REUSE=1: no boots, only the table and JSON from the consoles in $out.
for c in plain iommu; do
	[[ ${BENCH_REUSE:-} ]] && break
	echo "== config $c: booting (the console is in $out/$c.log)" >&2
	extra=()
	[[ $c == iommu ]] && extra=(--copy "$vfio:/lib/modules/vfio")
	# One vCPU where the board streams (P2, P3): the emulated engine is a
	# QEMU thread and, like a real board's hardware, gets a host core of its
	# own.  With two vCPUs on a two-core host the guest's CPUs and the engine
	# take turns on the cores, and the ratio measures the host's scheduler.
	[[ $c == plain ]] && extra=(--smp 1)
	if ! "$top/tools/vm/run" --config "$c" --mem 4G --hugepages 1100 --timeout 900 \
		--module "$module" "${extra[@]}" --log "$out/$c.log" -- fstr-bench-guest "$c" "$runs" >/dev/null; then
		echo "bench: the $c run failed; see $out/$c.log" >&2
		grep -a "fstr-bench\|BENCH" "$out/$c.log" | tail -5 >&2
		exit 1
	fi
done
for c in plain iommu; do
	grep -a '^BENCH ' "$out/$c.log" | tr -d '\r' | sed "s/^BENCH /$c /" >"$out/$c.lines"
done
cat "$out/plain.lines" "$out/iommu.lines" >"$out/all.lines"

# stat CONFIG TAG FIELD -> "median min max n" of FIELD over TAG's lines
stat() {
	awk -v c="$1" -v t="$2" -v f="$3" '$1 == c && $2 == t {
		for (i = 3; i < NF; i += 2) if ($i == f) print $(i + 1) }' "$out/all.lines" |
	sort -g | awk '{ v[NR] = $1 } END {
		if (!NR) { print "null null null 0"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.6g %.6g %.6g %d\n", m, v[1], v[NR], NR }'
}

# The figures: name, config, tag, field, unit
figures=(
	"map_2M_iommu_ms        iommu map_2M    total_ms       ms"
	"map_2M_iommu_pin_ms    iommu map_2M    pin_ms         ms"
	"map_2M_iommu_dma_ms    iommu map_2M    dma_ms         ms"
	"map_2M_iommu_lut_ms    iommu map_2M    lut_ms         ms"
	"map_2M_iommu_unmap_ms  iommu map_2M    unmap_ms       ms"
	"vfio_2M_ms             iommu vfio_2M   total_ms       ms"
	"vfio_2M_map_ms         iommu vfio_2M   map_ms         ms"
	"vfio_2M_unmap_ms       iommu vfio_2M   unmap_ms       ms"
	"map_4K_iommu_ms        iommu map_4K    total_ms       ms"
	"map_4K_iommu_pin_ms    iommu map_4K    pin_ms         ms"
	"map_4K_iommu_dma_ms    iommu map_4K    dma_ms         ms"
	"map_4K_iommu_lut_ms    iommu map_4K    lut_ms         ms"
	"map_4K_iommu_unmap_ms  iommu map_4K    unmap_ms       ms"
	"vfio_4K_ms             iommu vfio_4K   total_ms       ms"
	"map_2M_plain_ms        plain map_2M    total_ms       ms"
	"map_2M_plain_pin_ms    plain map_2M    pin_ms         ms"
	"map_2M_plain_dma_ms    plain map_2M    dma_ms         ms"
	"map_2M_plain_lut_ms    plain map_2M    lut_ms         ms"
	"map_2M_plain_unmap_ms  plain map_2M    unmap_ms       ms"
	"announce_blocks_per_s  plain announce  blocks_per_s   blocks/s"
	"device_blocks_per_s    plain device    blocks_per_s   blocks/s"
	"records_per_read       plain announce  records_per_read records"
	"irq_per_block          plain announce  irq_per_block  irq"
	"reads_per_block        plain announce  reads_per_block reads"
	"cpu_us_per_block       plain announce  cpu_us_per_block us"
	"announce_lost          plain announce  lost           blocks"
	"announce_board_holds   plain announce  board_holds    holds"
	"announce128_board_holds plain announce128 board_holds holds"
	"announce128_blocks_per_s plain announce128 blocks_per_s blocks/s"
	"announce128_records_per_read plain announce128 records_per_read records"
	"announce128_cpu_us_per_block plain announce128 cpu_us_per_block us"
	"announce_iommu_blocks_per_s iommu announce blocks_per_s blocks/s"
	"capture_mib_per_s      plain capture   mib_per_s      MiB/s"
	"capture_exec_mib_per_s plain capture   exec_mib_per_s MiB/s"
	"write_loop_mib_per_s   plain write_loop mib_per_s     MiB/s"
)

declare -A med
{
	printf '{\n  "SPDX-License-Identifier": "GPL-2.0-only",\n  "note": "QEMU TCG emulation: absolute times and rates are those of the emulator, compare ratios",\n'
	printf '  "runs": %s,\n  "kernel": "%s",\n  "figures": {\n' "$runs" "$kver"
	sep=
	for f in "${figures[@]}"; do
		read -r name cfg tag field unit <<<"$f"
		read -r m lo hi n < <(stat "$cfg" "$tag" "$field")
		med[$name]=$m
		printf '%s    "%s": {"median": %s, "min": %s, "max": %s, "n": %s, "unit": "%s", "config": "%s"}' \
			"$sep" "$name" "$m" "$lo" "$hi" "$n" "$unit" "$cfg"
		sep=$',\n'
	done
	printf '\n  },\n'
} >"$json.tmp"

# pairs CONFIG TAG_A TAG_B FIELD -> "median min max n" of A/B, run by run:
# the k-th TAG_A line against the k-th TAG_B line, which ran next to it.
pairs() {
	awk -v c="$1" -v a="$2" -v b="$3" -v f="$4" '
		function val(   i) { for (i = 3; i < NF; i += 2) if ($i == f) return $(i + 1); return "" }
		$1 == c && $2 == a { va[++na] = val() }
		$1 == c && $2 == b { vb[++nb] = val() }
		END { for (k = 1; k <= na && k <= nb; k++) if (vb[k] > 0) print va[k] / vb[k] }' \
		"$out/all.lines" |
	sort -g | awk '{ v[NR] = $1 } END {
		if (!NR) { print "null null null 0"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.3f %.3f %.3f %d\n", m, v[1], v[NR], NR }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || b == 0) print "null"; else printf "%.3f", a / b }'
}
p1=$(ratio "${med[map_2M_iommu_ms]}" "${med[vfio_2M_ms]}")
p1_4k=$(ratio "${med[map_4K_iommu_ms]}" "${med[vfio_4K_ms]}")
# P2 and P3 ran in turns with their peers: the median of the run-by-run
# ratios, with their spread, is the figure (the load of the host drifts).
read -r p2 p2_lo p2_hi p2_n < <(pairs plain announce device blocks_per_s)
read -r p2_128 p2_128_lo p2_128_hi p2_128_n < <(pairs plain announce128 device blocks_per_s)
read -r p3 p3_lo p3_hi p3_n < <(pairs plain capture write_loop mib_per_s)
{
	printf '  "p1_map_vs_vfio": %s,\n  "p1_map_vs_vfio_4k": %s,\n' "$p1" "$p1_4k"
	printf '  "p2_announce_vs_device": %s,\n  "p2_announce_vs_device_coalesce128": %s,\n' "$p2" "$p2_128"
	printf '  "p3_capture_vs_dd": %s,\n' "$p3"
	printf '  "ratios": {\n'
	printf '    "p1_map_vs_vfio": {"value": %s, "how": "median fpgastream / median VFIO"},\n' "$p1"
	printf '    "p2_announce_vs_device": {"median": %s, "min": %s, "max": %s, "n": %s, "how": "run by run, in turns"},\n' \
		"$p2" "$p2_lo" "$p2_hi" "$p2_n"
	printf '    "p2_announce_vs_device_coalesce128": {"median": %s, "min": %s, "max": %s, "n": %s, "how": "run by run, in turns"},\n' \
		"$p2_128" "$p2_128_lo" "$p2_128_hi" "$p2_128_n"
	printf '    "p3_capture_vs_dd": {"median": %s, "min": %s, "max": %s, "n": %s, "how": "run by run, in turns"}\n  },\n' \
		"$p3" "$p3_lo" "$p3_hi" "$p3_n"
	printf '  "records_per_read": %s,\n  "irq_per_block": %s,\n  "reads_per_block": %s\n}\n' \
		"${med[records_per_read]}" "${med[irq_per_block]}" "${med[reads_per_block]}"
} >>"$json.tmp"
mv "$json.tmp" "$json"

echo
echo "fpgastream against its peers, same guest, same run (QEMU TCG: emulated times; compare ratios)"
echo "median of $runs runs [min .. max]"
printf '%-30s %-6s %30s\n' figure config "median [min .. max]"
for f in "${figures[@]}"; do
	read -r name cfg tag field unit <<<"$f"
	read -r m lo hi n < <(stat "$cfg" "$tag" "$field")
	printf '%-30s %-6s %14s [%s .. %s] %s\n' "$name" "$cfg" "$m" "$lo" "$hi" "$unit"
done
echo
printf '%-44s %8s %s\n' "P1 MAP+UNMAP 2 GiB 2M, fpgastream / VFIO" "$p1" "(goal <= 1.0)"
printf '%-44s %8s\n' "   same, 512 MiB of 4 KiB pages" "$p1_4k"
printf '%-44s %8s %s\n' "P2 announced / device's own rate" "$p2" "[$p2_lo .. $p2_hi] run by run (goal >= 0.99)"
printf '%-44s %8s %s\n' "   records per read at saturation" "${med[records_per_read]}" "(goal >= 64)"
printf '%-44s %8s %s\n' "   times the driver made the board wait" "${med[announce_board_holds]}" "(EMU_HOLDS, flow control)"
printf '%-44s %8s %s\n' "   same, coalescing 128 blocks / 2 ms" "$p2_128" "[$p2_128_lo .. $p2_128_hi]"
printf '%-44s %8s %s\n' "P3 capture / write loop into tmpfs" "$p3" "[$p3_lo .. $p3_hi] run by run (goal >= 0.9)"
echo "JSON: $json"
