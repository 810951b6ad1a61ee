#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The DKMS cycle on this host, for the VM's kernel (tools/vm/kver): dkms add,
# build -k KVER and install -k KVER of the tree; a VM boot that loads exactly
# that module with modprobe (from /lib/modules/KVER/updates/dkms, after
# depmod), proves it is the same file, gives the node its group and mode
# through Debian's udevd and the installed rule, and runs the install, kmod,
# lib and tool suites against it; then dkms remove, which must leave nothing
# behind.  Runs on the host as root (make check-dkms builds first).
# Prints TAP and ends "N passed, N failed, N skipped".
#
# usage: selftests/install/check-dkms.sh [--config plain|iommu|...] [--keep]
#   --keep   leave the DKMS module installed at the end (no removal tests)
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
config=plain
keep=0
while (($#)); do
	case $1 in
	--config) config=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) sed -n '4,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "check-dkms: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
done

cd "$top" || exit 2
kver=$(tools/vm/kver) || exit 2
version=$(sed -n 's/^#define FPGASTREAM_LIB_VERSION\t*"\(.*\)"/\1/p' include/fpgastream.h)
pkg=fpgastream/$version
src=/usr/src/fpgastream-$version
ko=/lib/modules/$kver/updates/dkms/fpgastream.ko
work=$(mktemp -d "${TMPDIR:-/tmp}/check-dkms.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

n=0 passed=0 failed=0 skipped=0
plan=15
echo "1..$plan"
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); skipped=$((skipped + 1)); echo "ok $n - $1 # SKIP $2"; }
# check NAME COMMAND...: ok when COMMAND succeeds; its output as comments
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name"; fi
	[[ -n $out ]] && sed 's/^/# /' <<<"$out" | tail -n 20
}
# skip_rest REASON: the tests left, skipped, so that the plan holds
skip_rest() {
	while ((n < plan)); do skip "not reached" "$1"; done
	finish
}
finish() {
	echo "# check-dkms took $((SECONDS - start)) s"
	echo "$passed passed, $failed failed, $skipped skipped"
	((failed == 0 && passed > 0))
	exit
}

command -v dkms >/dev/null || { echo "check-dkms: no dkms (apt-get install dkms)" >&2; exit 2; }
((EUID == 0)) || { echo "check-dkms: run as root (dkms installs into /lib/modules)" >&2; exit 2; }
[[ -f build/bin/fpgastream-vm-tests ]] || { echo "check-dkms: run make all first" >&2; exit 2; }

conf_version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
if [[ -n $version && $conf_version == "$version" ]]; then
	ok "dkms.conf PACKAGE_VERSION is FPGASTREAM_LIB_VERSION ($version)"
else
	not_ok "dkms.conf PACKAGE_VERSION '$conf_version' is FPGASTREAM_LIB_VERSION '$version'"
fi

# The sources: what make dkms-install copies (an earlier add is removed).
check "sources copied to $src" make -s dkms-sources
check "dkms add $pkg" dkms add "$pkg"
check "dkms build $pkg -k $kver" dkms build "$pkg" -k "$kver"
check "dkms install $pkg -k $kver" dkms install "$pkg" -k "$kver"
status=$(dkms status "$pkg" -k "$kver" 2>&1)
if [[ -f $ko && $status == *installed* ]]; then
	ok "dkms status says installed, $ko exists"
else
	not_ok "dkms status says installed, $ko exists (status: $status)"
	skip_rest "DKMS did not install the module"
fi
want_sha=$(sha256sum "$ko" | cut -d' ' -f1)
echo "# DKMS module sha256 $want_sha"

# --- the VM: only the DKMS module, loaded by modprobe ---
cat >"$work/group" <<'G'
root:x:0:
fpgastream:x:990:
G
cat >"$work/dkms-guest" <<'G'
#!/bin/sh
# In the guest: depmod, modprobe, and what proves which file got loaded.
kver=$(uname -r)
echo "dkms-check: kver $kver"
depmod -a
modprobe fpgastream && echo "dkms-check: modprobe ok"
[ -d /sys/module/fpgastream ] && echo "dkms-check: loaded yes"
dep=$(sed -n 's/^\([^:]*fpgastream\.ko\):.*/\1/p' /lib/modules/$kver/modules.dep)
echo "dkms-check: dep $dep"
case $dep in /*) path=$dep ;; *) path=/lib/modules/$kver/$dep ;; esac
echo "dkms-check: sha256 $(sha256sum "$path" | cut -d' ' -f1)"
echo "dkms-check: others $(find / -xdev -name 'fpgastream*.ko' ! -path "$path" | wc -l)"
fpgastream-vm-tests install kmod lib tool
G
chmod +x "$work/dkms-guest"

opts=()
case $config in
plain) opts=(--mem 4G --hugepages 1100 --gigapages 1) ;;
iommu) opts=(--mem 3G --hugepages 1100) ;;
esac
echo "# booting the $config VM with the DKMS module (the build tree's module stays out)"
tools/vm/run --config "$config" "${opts[@]}" --no-module --module "$work/no-such-module.ko" \
	--copy "/lib/modules/$kver/updates/dkms:/lib/modules/$kver/updates/dkms" \
	--copy /bin/udevadm:/bin/udevadm \
	--copy /lib/systemd/systemd-udevd:/lib/systemd/systemd-udevd \
	--copy "$top/dist/60-fpgastream.rules:/etc/udev/rules.d/60-fpgastream.rules" \
	--copy "$work/group:/etc/group" \
	--add "$work/dkms-guest" -- dkms-guest >"$work/console" 2>&1
vm_rc=$?
sed 's/^/# /' "$work/console"
get() { sed -n "s/^dkms-check: $1 //p" "$work/console" | tail -n 1; }

if [[ $(get modprobe) == ok && $(get loaded) == yes ]]; then
	ok "guest: modprobe fpgastream loaded the module"
else
	not_ok "guest: modprobe fpgastream loaded the module"
fi
dep=$(get dep)
if [[ $dep == *updates/dkms/fpgastream.ko ]]; then
	ok "guest: depmod resolves fpgastream to updates/dkms ($dep)"
else
	not_ok "guest: depmod resolves fpgastream to updates/dkms (got '$dep')"
fi
if [[ $(get sha256) == "$want_sha" ]]; then
	ok "guest: the module file is the one DKMS installed (sha256)"
else
	not_ok "guest: the module file is the one DKMS installed (sha256 '$(get sha256)')"
fi
if [[ $(get others) == 0 ]]; then
	ok "guest: no other fpgastream module in the guest"
else
	not_ok "guest: no other fpgastream module in the guest ($(get others) found)"
fi
# The suites' own TAP is above, as comments; here their sum.
suite_fail=$(grep -cE '^not ok' "$work/console")
suite_pass=$(grep -E '^ok ' "$work/console" | grep -vc '# SKIP')
if ((vm_rc == 0 && suite_fail == 0 && suite_pass > 0)); then
	ok "guest: install, kmod, lib and tool suites pass on the DKMS module ($suite_pass passed), kernel log clean"
else
	not_ok "guest: suites on the DKMS module: status $vm_rc, $suite_fail failed, $suite_pass passed"
fi
udev=$(awk '/^# suite: /{ s = $3 } s == "install" && /^(not )?ok /' "$work/console")
if grep -q 'group fpgastream' <<<"$udev" && ! grep -qE '^not ok|# SKIP' <<<"$udev"; then
	ok "guest: udev gave /dev/fpgastream0 group fpgastream and mode 0660"
else
	not_ok "guest: udev gave /dev/fpgastream0 group fpgastream and mode 0660"
fi

if ((keep)); then
	skip_rest "--keep"
fi
check "dkms remove $pkg --all" dkms remove "$pkg" --all
left=$(ls -d "$ko" /var/lib/dkms/fpgastream 2>/dev/null; grep -l 'fpgastream\.ko' "/lib/modules/$kver/modules.dep" 2>/dev/null)
if [[ -z $left ]]; then
	ok "dkms remove left no module, no dkms tree, no modules.dep entry"
else
	not_ok "dkms remove left: $left"
fi
make -s dkms-remove >/dev/null 2>&1
left=$(ls -d /usr/src/fpgastream-* 2>/dev/null)
if [[ -z $left ]]; then
	ok "make dkms-remove removed the sources from /usr/src"
else
	not_ok "make dkms-remove left $left"
fi
finish
