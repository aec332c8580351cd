#!/usr/bin/env bash
# The one source of fanoutd's version: `git describe --tags --always --dirty`.
#
#   deploy/version.sh              the describe string, stamped into the binary
#                                  (-X main.version) and printed by --version
#   deploy/version.sh --package    the same, as a .deb/.rpm version
#   deploy/version.sh --package DESCRIBE [COMMIT_DATE]
#                                  the mapping of a given describe string
#                                  (COMMIT_DATE: YYYYMMDDhhmmss, UTC)
#
# The mapping, valid in dpkg and rpm and ordered the same in both:
#   v1.2.0              1.2.0
#   v1.2.0-rc.1         1.2.0~rc.1          (before 1.2.0)
#   v1.2.0-5-gabc1234   1.2.0+git5.abc1234  (after 1.2.0, before 1.2.1)
#   abc1234 (no tag)    0.0.0~git<commit date>.abc1234 (before any release)
#   ...-dirty           the above, then .dirty
set -euo pipefail
cd "$(dirname "$0")/.."

describe() {
  if ! git rev-parse --git-dir >/dev/null 2>&1; then
    echo "version.sh: not a git checkout: the version comes from git describe; build from a clone" >&2
    return 1
  fi
  git describe --tags --always --dirty --match 'v[0-9]*'  # version tags only
}

# The HEAD commit's date in UTC, so that untagged builds sort by commit.
commit_date() {
  TZ=UTC git show -s --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD
}

package_version() {
  local d=$1 date=$2 dirty="" base count="" hash=""
  case "$d" in
  *-dirty)
    dirty=.dirty
    d=${d%-dirty}
    ;;
  esac
  if [[ "$d" =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
    base=${BASH_REMATCH[1]} count=${BASH_REMATCH[2]} hash=${BASH_REMATCH[3]}
  elif [[ "$d" =~ ^[0-9a-f]+$ ]]; then
    echo "0.0.0~git$date.$d$dirty"
    return
  else
    base=$d
  fi
  if ! [[ "$base" =~ ^v?[0-9]+(\.[0-9]+)*(-[0-9A-Za-z.]+)?$ ]]; then
    echo "version.sh: tag $base is not a version: name tags vMAJOR.MINOR.PATCH[-PRERELEASE]" >&2
    return 1
  fi
  base=${base#v}
  # A pre-release sorts before its release: ~ in both dpkg and rpm.
  base=${base/-/\~}
  if [ -n "$hash" ]; then
    echo "$base+git$count.$hash$dirty"
  else
    echo "$base${dirty:++}${dirty#.}"
  fi
}

case "${1:-}" in
"") describe ;;
--package)
  if [ $# -ge 2 ]; then
    package_version "$2" "${3:-$(commit_date)}"
  else
    package_version "$(describe)" "$(commit_date)"
  fi
  ;;
*)
  echo "usage: deploy/version.sh [--package [DESCRIBE [COMMIT_DATE]]]" >&2
  exit 2
  ;;
esac
