#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Print a directory holding the few files this project takes from Debian's
# linux-source-6.1 package at build time (the kselftest harness and
# checkpatch), extracting them into the cache on first use.  They are never
# committed to this repository.
set -euo pipefail

cache=${FPGASTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fpgastream}
dir=$cache/linux-source-6.1
tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n 1)
files=(
	tools/testing/selftests/kselftest_harness.h
	tools/testing/selftests/kselftest.h
	scripts/checkpatch.pl
	scripts/spelling.txt
	scripts/const_structs.checkpatch
)

missing=0
for f in "${files[@]}"; do
	[[ -f $dir/$f ]] || missing=1
done
if ((missing)); then
	[[ -n $tarball ]] || { echo "linux-source: install linux-source-6.1 (tools/deps.sh)" >&2; exit 1; }
	mkdir -p "$dir"
	tar -xf "$tarball" -C "$dir" --strip-components=1 "${files[@]/#/linux-source-6.1/}"
fi
echo "$dir"
