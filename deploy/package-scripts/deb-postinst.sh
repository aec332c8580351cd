#!/bin/sh
# fanoutd .deb postinst: what `dh_installsystemd --no-enable --no-start` puts
# here (debhelper 13). The unit is not enabled or started on a first install:
# the example config names no real stream or NATS server yet. An enablement
# the operator chose is kept across upgrades, and a running service is
# restarted on upgrade so that the new binary runs.
set -e

unit=fanoutd.service

case "$1" in
configure | abort-upgrade | abort-deconfigure | abort-remove)
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		if deb-systemd-helper debian-installed "$unit"; then
			if deb-systemd-helper --quiet was-enabled "$unit"; then
				# New symlinks, if the unit's [Install] section changed.
				deb-systemd-helper enable "$unit" >/dev/null || true
			fi
		fi
		# Records the unit's symlinks, so that a purge removes them.
		deb-systemd-helper update-state "$unit" >/dev/null || true
	fi
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		# $2 is the version upgraded from: empty on a first install.
		if [ -n "$2" ]; then
			deb-systemd-invoke try-restart "$unit" >/dev/null || true
		fi
	fi
	;;
esac

exit 0
