#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make install into a DESTDIR: the file list is selftests/install/files.txt,
# modes and contents are right, a program builds against what was installed,
# an edited modprobe.d file survives, make uninstall removes the rest, and
# dkms.conf's version is the project's.
# Runs on the host (any user; nothing outside the DESTDIR is touched), after
# make all.  Prints TAP and ends "N passed, N failed, N skipped".
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
kver=$(tools/vm/kver) || exit 2
version=$(sed -n 's/^#define FPGASTREAM_LIB_VERSION\t*"\(.*\)"/\1/p' include/fpgastream.h)
dest=$(mktemp -d "${TMPDIR:-/tmp}/check-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
mk() { make -s --no-print-directory DESTDIR="$dest" PREFIX=/usr/local KVER="$kver" "$@"; }

n=0 passed=0 failed=0
echo "1..10"
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
comment() { [[ -n $1 ]] && sed 's/^/# /' <<<"$1" | tail -n 30; }
listing() { (cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort); }

if out=$(mk install 2>&1); then
	ok "make install DESTDIR=... PREFIX=/usr/local"
else
	not_ok "make install DESTDIR=... PREFIX=/usr/local"
	comment "$out"
fi

want=$(grep -v '^#' selftests/install/files.txt | sed "s/@KVER@/$kver/" | sort)
got=$(listing)
if [[ $got == "$want" ]]; then
	ok "installed files are selftests/install/files.txt"
else
	not_ok "installed files are selftests/install/files.txt"
	comment "$(diff <(echo "$want") <(echo "$got"))"
fi

modes=$(cd "$dest" && stat -c '%a %n' usr/local/bin/fpgastream usr/local/lib/libfpgastream.so.1 \
	etc/udev/rules.d/60-fpgastream.rules usr/local/include/fpgastream.h 2>&1 | tr '\n' ' ')
if [[ $modes == "755 usr/local/bin/fpgastream 755 usr/local/lib/libfpgastream.so.1 644 etc/udev/rules.d/60-fpgastream.rules 644 usr/local/include/fpgastream.h " &&
	$(readlink "$dest/usr/local/lib/libfpgastream.so") == libfpgastream.so.1 ]]; then
	ok "modes 755 for programs, 644 for data, libfpgastream.so -> libfpgastream.so.1"
else
	not_ok "modes and the .so link: $modes"
fi

pc=$dest/usr/local/lib/pkgconfig/fpgastream.pc
vermagic=$(modinfo -F vermagic "$dest/lib/modules/$kver/updates/fpgastream.ko" 2>/dev/null)
if grep -qx 'prefix=/usr/local' "$pc" && grep -qx "Version: $version" "$pc" &&
	[[ $vermagic == "$kver "* ]]; then
	ok "fpgastream.pc has prefix /usr/local and version $version; the module is for $kver"
else
	not_ok "fpgastream.pc prefix/version, module vermagic '$vermagic'"
	comment "$(cat "$pc" 2>&1)"
fi

rule=$(grep -v '^#' "$dest/etc/udev/rules.d/60-fpgastream.rules")
if [[ $rule == *'GROUP="fpgastream"'* && $rule == *'MODE="0660"'* && $rule == *'KERNEL=="fpgastream[0-9]*"'* ]]; then
	ok "udev rule: /dev/fpgastream* group fpgastream, mode 0660"
else
	not_ok "udev rule: /dev/fpgastream* group fpgastream, mode 0660"
fi

# The installed headers and library are enough to build a program: the
# example of docs/, with the flags pkg-config gives.
pc_env=(env PKG_CONFIG_PATH="$dest/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest")
cflags=$("${pc_env[@]}" pkg-config --cflags fpgastream 2>&1)
libs=$("${pc_env[@]}" pkg-config --libs fpgastream 2>&1)
flags="$cflags $libs"
# shellcheck disable=SC2086
if out=$(cc -std=c11 -Wall -Wextra -Werror $cflags -o "$dest/example" docs/example.c $libs 2>&1) &&
	LD_LIBRARY_PATH=$dest/usr/local/lib ldd "$dest/example" | grep "$dest/usr/local/lib/libfpgastream.so.1" >/dev/null; then
	ok "docs/example.c builds against the installed headers and library ($flags)"
else
	not_ok "docs/example.c builds against the installed headers and library ($flags)"
	comment "$out"
fi
rm -f "$dest/example"

# An administrator's modprobe.d file is theirs: reinstall and uninstall keep it.
conf=$dest/etc/modprobe.d/fpgastream.conf
echo "options fpgastream ids=10ee:7024" >>"$conf"
mk install >/dev/null 2>&1
if grep -q '^options fpgastream ids=10ee:7024' "$conf"; then
	ok "make install again keeps an edited modprobe.d/fpgastream.conf"
else
	not_ok "make install again keeps an edited modprobe.d/fpgastream.conf"
fi

out=$(mk uninstall 2>&1)
left=$(listing)
if [[ $left == etc/modprobe.d/fpgastream.conf ]]; then
	ok "make uninstall removes every file but the edited modprobe.d file"
else
	not_ok "make uninstall removes every file but the edited modprobe.d file"
	comment "$out"$'\n'"left: $left"
fi

rm -rf "${dest:?}"/*
mk install >/dev/null 2>&1
mk uninstall >/dev/null 2>&1
left=$(listing)
if [[ -z $left ]]; then
	ok "install then uninstall leaves no file"
else
	not_ok "install then uninstall leaves no file"
	comment "left: $left"
fi

conf_version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
if [[ -n $version && $conf_version == "$version" ]]; then
	ok "dkms.conf PACKAGE_VERSION is FPGASTREAM_LIB_VERSION ($version)"
else
	not_ok "dkms.conf PACKAGE_VERSION '$conf_version' is FPGASTREAM_LIB_VERSION '$version'"
fi

echo "$passed passed, $failed failed, 0 skipped"
((failed == 0 && passed > 0))
