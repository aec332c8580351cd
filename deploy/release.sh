#!/usr/bin/env bash
# Build a release into dist/: for linux/amd64 and linux/arm64, the .deb, the
# .rpm and a .tar.gz (binary, unit, example config, docs, alert rules,
# dashboard), and SHA256SUMS over all of them. The version is
# deploy/version.sh's (`git describe --tags --always --dirty`): tag the
# commit (vMAJOR.MINOR.PATCH) first for a release. Needs Go, git and GNU
# tar (Linux); nfpm is built from the module proxy.
#
#   deploy/release.sh
#   (cd dist && sha256sum -c SHA256SUMS)
set -euo pipefail
cd "$(dirname "$0")/.."

describe=$(deploy/version.sh)
case "$describe" in
*-dirty)
  echo "release: the work tree has uncommitted changes (version $describe): commit or stash them; a release is built from a commit" >&2
  exit 1
  ;;
esac

rm -rf dist
mkdir dist
for goarch in amd64 arm64; do
  deploy/package.sh "$goarch" dist deb rpm tar.gz
  rm -rf "dist/stage-$goarch"
done
(cd dist && sha256sum -- *.deb *.rpm *.tar.gz >SHA256SUMS)
echo "dist/ (fanoutd $describe, package version $(deploy/version.sh --package)):"
ls -l dist
