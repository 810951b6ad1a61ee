#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build qemu-system-x86_64 from Debian's QEMU 7.2 source with the FSTR
# reference device (fstr.c) in hw/misc, and print the binary's path.
#
# The source tree and build directory live in the cache and are reused, so a
# change to the device rebuilds incrementally.  Finished binaries are kept
# under a key made from the device source and this script, so an unchanged
# tree never rebuilds at all.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${FPGASTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fpgastream}
key=$(cat "$here/fstr.c" "$here/build.sh" | sha256sum | cut -c1-16)
out=$cache/qemu-bin/$key/qemu-system-x86_64

if [[ -x $out ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/qemu.lock"
flock 9
# Another build may have produced it while we waited for the lock.
if [[ -x $out ]]; then
	echo "$out"
	exit 0
fi

log=$cache/qemu-build.log
say() { echo "emu: $*" >&2; }

src=$cache/qemu-src
if [[ ! -f $src/.fpgastream-ready ]]; then
	say "fetching Debian's QEMU 7.2 source (apt-get source qemu)"
	rm -rf "$src"
	mkdir -p "$src"
	(cd "$src" && apt-get source -q qemu >"$log" 2>&1) || {
		say "apt-get source qemu failed (see $log); is there a deb-src entry? run tools/deps.sh"
		exit 1
	}
	tree=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n 1)
	[[ -n $tree ]] || { say "no source tree in $src"; exit 1; }
	ln -sfn "$(basename "$tree")" "$src/tree"
	grep -q '^7\.2' "$src/tree/VERSION" || { say "expected QEMU 7.2, got $(cat "$src/tree/VERSION")"; exit 1; }

	# Register the device: a Kconfig symbol that x86 q35 selects by default.
	cat >>"$src/tree/hw/misc/Kconfig" <<'KCONF'

config FSTR
    bool
    default y
    depends on PCI && MSI_NONBROKEN
KCONF
	echo "softmmu_ss.add(when: 'CONFIG_FSTR', if_true: files('fstr.c'))" \
		>>"$src/tree/hw/misc/meson.build"
	touch "$src/.fpgastream-ready"
fi

tree=$src/tree
build=$src/build
# The device reports AER errors through pcie_aer_inject_error(), which QEMU
# 7.2 keeps static in hw/pci/pcie_aer.c (QEMU 8 exports it with the same
# prototype).  Export it; the change is idempotent and alters no behaviour,
# so a tree shared with older checkouts of this script builds as before.
aer_c=$tree/hw/pci/pcie_aer.c
if grep -q '^static int pcie_aer_inject_error(PCIDevice \*dev, const PCIEAERErr \*err)$' "$aer_c"; then
	sed -i 's/^static int pcie_aer_inject_error(PCIDevice \*dev, const PCIEAERErr \*err)$/int pcie_aer_inject_error(PCIDevice *dev, const PCIEAERErr *err)/' "$aer_c"
fi
grep -q '^int pcie_aer_inject_error(PCIDevice \*dev, const PCIEAERErr \*err)$' "$aer_c" || {
	say "cannot export pcie_aer_inject_error() from $aer_c"
	exit 1
}
# Copy only on change so that ninja's timestamps keep the rebuild incremental.
cmp -s "$here/fstr.c" "$tree/hw/misc/fstr.c" || cp "$here/fstr.c" "$tree/hw/misc/fstr.c"

if [[ ! -f $build/build.ninja ]]; then
	say "configuring QEMU (x86_64-softmmu only)"
	rm -rf "$build"
	mkdir -p "$build"
	(cd "$build" && PATH=/usr/bin:$PATH "$tree/configure" --target-list=x86_64-softmmu \
		--without-default-features --disable-docs --disable-install-blobs \
		--disable-werror --meson=/usr/bin/meson >>"$log" 2>&1) || {
		say "configure failed, see $log"
		exit 1
	}
fi

say "building qemu-system-x86_64 (first build takes minutes; log: $log)"
start=$SECONDS
ninja -C "$build" qemu-system-x86_64 >>"$log" 2>&1 || {
	say "build failed; the last lines of $log:"
	grep -E 'error|Error|FAILED' "$log" | tail -n 20 >&2
	exit 1
}
say "built in $((SECONDS - start)) s"

mkdir -p "$(dirname "$out")"
cp "$build/qemu-system-x86_64" "$out.tmp"
mv "$out.tmp" "$out"
# Keep only the few most recent keyed binaries.
ls -1dt "$cache"/qemu-bin/* 2>/dev/null | tail -n +4 | xargs -r rm -rf
echo "$out"
