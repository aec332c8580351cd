#!/bin/sh
# fanoutd .deb postrm: systemd forgets the removed unit; a purge also removes
# the unit's enablement symlinks (dpkg removes /etc/fanoutd/fanoutd.yaml).
# The checkpoints in /var/lib/fanoutd stay: they are data, not config.
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ] && [ -x /usr/bin/deb-systemd-helper ]; then
	deb-systemd-helper purge fanoutd.service >/dev/null || true
fi

exit 0
