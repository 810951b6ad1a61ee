#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Install what `make check`, `make lint` and `make demo` need on a Debian 12
# machine.
# Does nothing when everything is already there. Run as root (or with sudo).
set -euo pipefail

packages=(
	build-essential bc bison flex pkg-config kmod cpio xz-utils gzip file
	dpkg-dev perl python3
	ninja-build meson libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev
	busybox-static seabios ipxe-qemu qemu-system-data
	linux-image-amd64 linux-headers-amd64 linux-source-6.1
	libelf-dev libssl-dev dkms debootstrap debian-archive-keyring udev
	libsmartcols-dev
	# kmod/'s static checks (make lint): sparse, and coccinelle with the
	# OCaml compiler that its OCaml-scripted rules need at run time
	# (coccicheck stops at the first one without it).
	sparse coccinelle ocaml
)

missing=()
for p in "${packages[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ $st == ii* ]] || missing+=("$p")
done

# `apt-get source qemu` needs a deb-src entry for bookworm.
src_list=/etc/apt/sources.list.d/fpgastream-src.sources
need_src=0
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	need_src=1
fi

if ((${#missing[@]} == 0 && need_src == 0)); then
	exit 0
fi

if ((EUID != 0)); then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run 'sudo $0' (or install them) and try again" >&2
	exit 1
fi

if ((need_src)); then
	cat >"$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

echo "deps: installing ${missing[*]:-(source list only)}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
if ((${#missing[@]})); then
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
