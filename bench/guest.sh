#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# fstr-bench-guest CONFIG RUNS: the guest side of `make bench` for one
# configuration (plain or iommu).  Prints "BENCH ..." lines for bench/run.sh.
# Each figure and its peer run in turns (one run each, RUNS times), so that
# both see the same load on the host.
set -e
# Interrupt coalescing of the announcement runs: 512 blocks or 10 ms (an
# eighth of the 4096-block ring), and 128 blocks or 2 ms for comparison.
coalesce="512 10000"
coalesce_small="128 2000"
config=$1
runs=${2:-5}
bdf=$(basename "$(readlink /sys/class/fpgastream/fpgastream0/device)")
echo "BENCH info config $config bdf $bdf"

unbind_board() {
	echo "$bdf" >/sys/bus/pci/drivers/fpgastream/unbind
}

bind_board() {
	echo "$bdf" >/sys/bus/pci/drivers/fpgastream/bind
}

case $config in
plain)
	echo "== P1 fpgastream MAP+UNMAP, 2 GiB of 2 MiB pages, no IOMMU"
	fstr-bench map "$runs" 2G 2M
	echo "== P3 capture into tmpfs, in turns with a write loop from memory"
	i=0
	while [ $i -lt "$runs" ]; do
		fstr-bench write-loop 1 /tmp/bench.out 128M
		fstr-bench capture 1 /tmp/bench.out 128M
		i=$((i + 1))
	done
	echo "== P2 announcements (flow control, rate 0), in turns with the bare board"
	i=0
	while [ $i -lt "$runs" ]; do
		# The pair P2 divides runs back to back: the host's load drifts.
		fstr-bench announce 1 2 256M $coalesce_small | sed 's/^BENCH announce /BENCH announce128 /'
		fstr-bench announce 1 2 256M $coalesce
		unbind_board
		fstr-bench device-rate 1 2 "$bdf" 256M
		bind_board
		i=$((i + 1))
	done
	;;
iommu)
	echo "== P1 fpgastream MAP+UNMAP behind the IOMMU"
	fstr-bench map "$runs" 2G 2M
	fstr-bench map "$runs" 512M 4K
	echo "== P2 announcements behind the IOMMU"
	fstr-bench announce "$runs" 2 256M $coalesce
	echo "== P1 peer: VFIO type1"
	unbind_board
	for m in irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci; do
		insmod /lib/modules/vfio/$m.ko
	done
	echo vfio-pci >"/sys/bus/pci/devices/$bdf/driver_override"
	echo "$bdf" >/sys/bus/pci/drivers_probe
	fstr-bench vfio "$runs" 2G 2M "$bdf"
	fstr-bench vfio "$runs" 512M 4K "$bdf"
	echo "$bdf" >/sys/bus/pci/drivers/vfio-pci/unbind
	;;
*)
	echo "fstr-bench-guest: unknown config '$config'" >&2
	exit 2
	;;
esac
echo "BENCH done $config"
