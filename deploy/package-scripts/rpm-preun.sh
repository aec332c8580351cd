# shellcheck shell=sh
# fanoutd .rpm %preun: what %systemd_preun does. $1 is 0 on an erase (not an
# upgrade): disable and stop the service (final checkpoints written).
if [ "$1" -eq 0 ]; then
	systemctl --no-reload disable --now fanoutd.service >/dev/null 2>&1 || :
fi
