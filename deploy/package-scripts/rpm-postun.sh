# shellcheck shell=sh
# fanoutd .rpm %postun: what %systemd_postun_with_restart does. $1 is 1 or
# more on an upgrade: a running service restarts on the new binary.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
	systemctl try-restart fanoutd.service >/dev/null 2>&1 || :
fi
