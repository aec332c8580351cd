# shellcheck shell=sh
# fanoutd .rpm %post: what %systemd_post does. $1 is 1 on a first install:
# the unit is enabled only if the system's presets say so (most enable
# nothing by default), and not started.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	systemctl --no-reload preset fanoutd.service >/dev/null 2>&1 || :
fi
