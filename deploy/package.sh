#!/usr/bin/env bash
# Build fanoutd for one Linux architecture and package it:
#
#   deploy/package.sh GOARCH OUTDIR [FORMAT...]
#
# FORMAT is deb, rpm or tar.gz (default: all three). OUTDIR gets the
# packages and the archive, named by format convention; OUTDIR/stage-GOARCH
# the binary and the packaged unit. The version is deploy/version.sh's. Only
# Go modules are downloaded: the toolchain builds the pinned nfpm.
set -euo pipefail
cd "$(dirname "$0")/.."

# To bump: `go list -m -versions github.com/goreleaser/nfpm/v2`, then run
# deploy/test-packages.sh; a newer release may need a newer Go than go.mod's.
NFPM_VERSION=v2.48.0

if [ $# -lt 2 ]; then
  echo "usage: deploy/package.sh GOARCH OUTDIR [deb|rpm|tar.gz...]" >&2
  exit 2
fi
goarch=$1
out=$2
shift 2
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(deb rpm tar.gz)

describe=$(deploy/version.sh)
pkg_version=$(deploy/version.sh --package)
stage="$out/stage-$goarch"
mkdir -p "$stage"
out=$(cd "$out" && pwd)
stage=$(cd "$stage" && pwd)

# Packages and archives carry the commit's time, not the build's: the same
# commit gives the same files.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH

CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" go build -trimpath \
  -ldflags "-s -w -X main.version=$describe" -o "$stage/fanoutd" ./cmd/fanoutd

# The repository's unit runs /usr/local/bin/fanoutd (a binary built from
# source, docs/operations.md); the packages install it in /usr/bin.
sed 's|^ExecStart=/usr/local/bin/fanoutd |ExecStart=/usr/bin/fanoutd |' \
  deploy/systemd/fanoutd.service >"$stage/fanoutd.service"
if ! grep -q '^ExecStart=/usr/bin/fanoutd ' "$stage/fanoutd.service"; then
  echo "package.sh: deploy/systemd/fanoutd.service has no ExecStart=/usr/local/bin/fanoutd line to point at /usr/bin/fanoutd" >&2
  exit 1
fi

for format in "${formats[@]}"; do
  case "$format" in
  deb | rpm)
    FANOUTD_ARCH=$goarch FANOUTD_PKG_VERSION=$pkg_version FANOUTD_STAGE=$stage \
      go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" package \
      --config deploy/nfpm.yaml --packager "$format" --target "$out/" >/dev/null
    ;;
  tar.gz)
    # The repository's layout, so that the README's links resolve; the unit
    # as in the repository (/usr/local/bin/fanoutd).
    name="fanoutd-$describe-linux-$goarch"
    tree="$stage/$name"
    rm -rf "$tree"
    mkdir -p "$tree/docs" "$tree/deploy/systemd" "$tree/deploy/prometheus" "$tree/deploy/grafana"
    cp "$stage/fanoutd" README.md "$tree/"
    cp docs/*.md "$tree/docs/"
    cp deploy/fanoutd.example.yaml "$tree/deploy/"
    cp deploy/systemd/fanoutd.service "$tree/deploy/systemd/"
    cp deploy/prometheus/fanoutd-alerts.yml "$tree/deploy/prometheus/"
    cp deploy/grafana/fanoutd-dashboard.json "$tree/deploy/grafana/"
    [ ! -f LICENSE ] || cp LICENSE "$tree/"
    tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner \
      --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -n >"$out/$name.tar.gz"
    rm -rf "$tree"
    ;;
  *)
    echo "package.sh: unknown format $format (deb, rpm or tar.gz)" >&2
    exit 2
    ;;
  esac
done
