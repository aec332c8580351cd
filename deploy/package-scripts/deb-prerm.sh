#!/bin/sh
# fanoutd .deb prerm: debhelper's prerm-systemd-restart snippet, kept
# although the package does not start the service: a removed package's
# service stops (SIGTERM: final checkpoints written). An upgrade does not
# stop it: postinst restarts it.
set -e

if [ -z "${DPKG_ROOT:-}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop fanoutd.service >/dev/null || true
fi

exit 0
