#!/usr/bin/env bash
# Build the .deb for this machine's architecture and put it through an
# operator's life cycle with dpkg: install, upgrade over itself with an
# edited config, upgrade to a newer package whose config changed too,
# remove, purge. Then build the .rpm and check its files and scriptlets.
# Run as root on a Debian machine without fanoutd installed (CI runs it
# from .ci/run); the package is purged whatever happens. It never starts
# the service.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "test-packages: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "run as root: it installs and purges the fanoutd package"
command -v dpkg >/dev/null 2>&1 || fail "dpkg is required (a Debian machine)"
# Never touch an operator's installation.
if dpkg-query -W -f='${Status}' fanoutd 2>/dev/null | grep -qv 'not-installed'; then
  fail "fanoutd is installed on this machine: remove or purge it first (dpkg -P fanoutd)"
fi
wants=/etc/systemd/system/multi-user.target.wants/fanoutd.service
for f in /usr/bin/fanoutd /usr/lib/systemd/system/fanoutd.service /etc/fanoutd "$wants"; do
  if [ -e "$f" ] || [ -L "$f" ]; then
    fail "$f exists: this test installs, enables and purges the package there; move it away first"
  fi
done

# Runs a command without standard input (a dpkg that asked a question
# fails), printing its output only if it fails.
quiet() {
  local out
  if ! out=$("$@" 2>&1 </dev/null); then
    echo "$out" >&2
    fail "$* failed"
  fi
}

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  echo "installing $*"
  quiet apt-get update -qq
  quiet apt-get install -y -qq --no-install-recommends "$@"
}
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
command -v rpm >/dev/null 2>&1 || apt_install rpm

work=$(mktemp -d)
installed=0
cleanup() {
  if [ "$installed" -eq 1 ]; then
    dpkg -P fanoutd >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The version mapping (deploy/version.sh), and that dpkg and rpm order the
# mapped versions as the describe strings are ordered.
check_mapping() {
  local got
  got=$(deploy/version.sh --package "$1" 20260102030405)
  [ "$got" = "$2" ] || fail "version.sh --package $1: got $got, want $2"
}
check_mapping v1.2.0 1.2.0
check_mapping v1.2.0-rc.1 1.2.0~rc.1
check_mapping v1.2.0-5-gabc1234 1.2.0+git5.abc1234
check_mapping v1.2.0-12-gabc1234-dirty 1.2.0+git12.abc1234.dirty
check_mapping abc1234 0.0.0~git20260102030405.abc1234
check_mapping abc1234-dirty 0.0.0~git20260102030405.abc1234.dirty
ordered=(0.0.0~git20260102030405.abc1234 0.0.0~git20260102030406.abc1234 1.2.0~rc.1 1.2.0
  1.2.0+git5.abc1234 1.2.0+git12.abc1234 1.2.1~rc.1 1.2.1)
for ((i = 1; i < ${#ordered[@]}; i++)); do
  a=${ordered[i - 1]} b=${ordered[i]}
  dpkg --compare-versions "$a" lt "$b" || fail "dpkg orders $a after $b"
  [ "$(rpm --eval "%{lua: print(rpm.vercmp('$a', '$b'))}")" = "-1" ] || fail "rpm orders $a after $b"
done
echo "version mapping: OK"

arch=$(dpkg --print-architecture) # amd64 and arm64: also GOARCH names
describe=$(deploy/version.sh)
pkg_version=$(deploy/version.sh --package)
deploy/package.sh "$arch" "$work" deb rpm
deb="$work/fanoutd_${pkg_version}_$arch.deb"
[ -f "$deb" ] || fail "no $deb after deploy/package.sh"

# The files both packages must hold, directories included.
expected="$work/expected"
{
  printf '%s\n' /etc/fanoutd /etc/fanoutd/fanoutd.yaml /usr/bin/fanoutd \
    /usr/lib/systemd/system/fanoutd.service /usr/share/doc/fanoutd \
    /usr/share/doc/fanoutd/README.md /usr/share/doc/fanoutd/docs \
    /usr/share/doc/fanoutd/examples /usr/share/doc/fanoutd/examples/fanoutd.example.yaml \
    /usr/share/doc/fanoutd/grafana /usr/share/doc/fanoutd/grafana/fanoutd-dashboard.json \
    /usr/share/doc/fanoutd/prometheus /usr/share/doc/fanoutd/prometheus/fanoutd-alerts.yml
  for f in docs/*.md; do echo "/usr/share/doc/fanoutd/$f"; done
} | sort >"$expected"

# The .deb: its files (directories it owns alone: not /usr or /etc).
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||; s|/$||' | grep -E '^/(etc/fanoutd|usr/bin/|usr/lib/systemd/system/|usr/share/doc/fanoutd)' |
  sort >"$work/deb-files"
diff -u "$expected" "$work/deb-files" || fail "the .deb's files differ from the expected list (- expected, + .deb)"
[ "$(dpkg-deb -f "$deb" Version)" = "$pkg_version" ] || fail "the .deb's version is not $pkg_version"
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = /etc/fanoutd/fanoutd.yaml ] ||
  fail "the .deb's conffiles is not /etc/fanoutd/fanoutd.yaml alone"

# Install.
installed=1
quiet dpkg -i "$deb"
[ "$(dpkg-query -W -f='${Status} ${Version}' fanoutd)" = "install ok installed $pkg_version" ] ||
  fail "dpkg does not show fanoutd $pkg_version installed"
version_out=$(/usr/bin/fanoutd --version)
[ "$(echo "$version_out" | awk '{print $2}')" = "$describe" ] ||
  fail "/usr/bin/fanoutd --version printed \"$version_out\", not version $describe"
echo "installed: $version_out"

unit=/usr/lib/systemd/system/fanoutd.service
grep -q '^ExecStart=/usr/bin/fanoutd run --config /etc/fanoutd/fanoutd.yaml$' "$unit" ||
  fail "$unit does not run /usr/bin/fanoutd"
# As .ci/run's unit check: verify exits 0 on unknown keys and bad values
# (only warning "ignoring"), so any output at all is a failure too.
if ! verify_out=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$verify_out" ]; then
  echo "$verify_out" >&2
  fail "the installed $unit does not verify"
fi
/usr/bin/fanoutd validate --config /etc/fanoutd/fanoutd.yaml >/dev/null ||
  fail "the installed /etc/fanoutd/fanoutd.yaml does not validate"
[ "$(stat -c '%a %U:%G' /etc/fanoutd/fanoutd.yaml)" = "644 root:root" ] ||
  fail "/etc/fanoutd/fanoutd.yaml is not 0644 root:root"
cmp -s /etc/fanoutd/fanoutd.yaml deploy/fanoutd.example.yaml || fail "/etc/fanoutd/fanoutd.yaml is not the example config"
if [ -e "$wants" ] || [ -L "$wants" ]; then
  fail "a first install enabled fanoutd.service"
fi

# The operator enables the unit and edits the config; an upgrade (the same
# package again) keeps both. dpkg keeps an edited conffile without asking
# when the package's copy did not change; it asks (without standard input:
# fails) only when both changed.
systemctl enable fanoutd.service >/dev/null 2>&1
[ -L "$wants" ] || fail "systemctl enable did not create $wants"
marker="# edited by deploy/test-packages.sh"
echo "$marker" >>/etc/fanoutd/fanoutd.yaml
quiet dpkg -i "$deb"
grep -qxF "$marker" /etc/fanoutd/fanoutd.yaml || fail "the upgrade replaced the edited /etc/fanoutd/fanoutd.yaml"
leftovers=$(find /etc/fanoutd -name 'fanoutd.yaml.dpkg-*')
[ -z "$leftovers" ] || fail "the upgrade left $leftovers"
[ -L "$wants" ] || fail "the upgrade disabled fanoutd.service"
[ -x /usr/bin/fanoutd ] || fail "the upgrade lost /usr/bin/fanoutd"
[ -f "$unit" ] || fail "the upgrade lost $unit"
echo "upgraded: the edited config and the enablement kept"

# A newer package whose example config changed too: dpkg would ask which
# to keep; --force-confold keeps the edited one and puts the package's
# beside it (docs/operations.md). The newer package is this one, repacked.
next="$work/next"
dpkg-deb -R "$deb" "$next"
echo "# changed in the next release" >>"$next/etc/fanoutd/fanoutd.yaml"
sed -i "s/^Version: .*/Version: $pkg_version+next/" "$next/DEBIAN/control"
(cd "$next" && find etc usr -type f -exec md5sum {} + >DEBIAN/md5sums)
quiet dpkg-deb -Znone -b "$next" "$work/next.deb"
quiet dpkg -i --force-confold "$work/next.deb"
[ "$(dpkg-query -W -f='${Version}' fanoutd)" = "$pkg_version+next" ] || fail "the upgrade to $pkg_version+next did not happen"
grep -qxF "$marker" /etc/fanoutd/fanoutd.yaml || fail "an upgrade with --force-confold replaced the edited /etc/fanoutd/fanoutd.yaml"
grep -qxF "# changed in the next release" /etc/fanoutd/fanoutd.yaml.dpkg-dist ||
  fail "an upgrade with --force-confold did not leave the new config as /etc/fanoutd/fanoutd.yaml.dpkg-dist"
[ -L "$wants" ] || fail "the upgrade to $pkg_version+next disabled fanoutd.service"
echo "upgraded to a newer package with a changed config: the edited one kept, the new one in fanoutd.yaml.dpkg-dist"

# Remove: the binary, the unit and the docs go; the edited config stays.
quiet dpkg -r fanoutd
for f in /usr/bin/fanoutd "$unit" /usr/share/doc/fanoutd; do
  [ ! -e "$f" ] || fail "dpkg -r left $f"
done
grep -qxF "$marker" /etc/fanoutd/fanoutd.yaml || fail "dpkg -r did not keep the edited /etc/fanoutd/fanoutd.yaml"
[ "$(dpkg-query -W -f='${Status}' fanoutd)" = "deinstall ok config-files" ] || fail "dpkg -r: fanoutd is not in config-files state"
echo "removed: the binary and unit gone, the edited config kept"

# Purge: the config, its directory and the enablement go.
quiet dpkg -P fanoutd
installed=0
for f in /etc/fanoutd "$wants"; do
  if [ -e "$f" ] || [ -L "$f" ]; then
    fail "dpkg -P left $f"
  fi
done
if dpkg-query -W fanoutd >/dev/null 2>&1; then
  fail "dpkg -P: dpkg still knows fanoutd"
fi
echo "purged: the config and the enablement gone"

# The .rpm: its files, the config marked %config(noreplace), the version.
rpm_arch=$(case "$arch" in amd64) echo x86_64 ;; arm64) echo aarch64 ;; *) echo "$arch" ;; esac)
rpm_file="$work/fanoutd-$pkg_version-1.$rpm_arch.rpm"
[ -f "$rpm_file" ] || fail "no $rpm_file after deploy/package.sh"
rpm -qlp "$rpm_file" 2>/dev/null | sort >"$work/rpm-files"
diff -u "$expected" "$work/rpm-files" || fail "the .rpm's files differ from the expected list (- expected, + .rpm)"
[ "$(rpm -qp --qf '%{VERSION}-%{RELEASE} %{ARCH}' "$rpm_file" 2>/dev/null)" = "$pkg_version-1 $rpm_arch" ] ||
  fail "the .rpm is not version $pkg_version-1 for $rpm_arch"
# rpm's fflags: c = %config, n = noreplace.
[ "$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm_file" 2>/dev/null | grep '^/etc/fanoutd/fanoutd.yaml ')" = "/etc/fanoutd/fanoutd.yaml cn" ] ||
  fail "the .rpm does not mark /etc/fanoutd/fanoutd.yaml %config(noreplace)"
# Its scriptlets (they run on RPM systems only): present and valid sh.
for s in postin preun postun; do
  rpm -qp --qf "%{${s^^}}" "$rpm_file" 2>/dev/null >"$work/$s"
  grep -q 'fanoutd.service' "$work/$s" || fail "the .rpm has no %$s scriptlet for fanoutd.service"
  sh -n "$work/$s" || fail "the .rpm's %$s scriptlet is not valid sh"
done
echo "rpm: $(basename "$rpm_file"): OK"
