// Package monitor owns what operators and systemd see of a running daemon:
// Prometheus metrics, readiness and stall detection, the HTTP endpoint
// (/metrics, /healthz, /readyz, /status) and the systemd notifications
// (READY, WATCHDOG, STATUS, STOPPING, RELOADING), and the pprof profiles
// the environment asks for. It reads snapshots from the consumers and the
// publisher; it changes nothing in them.
package monitor
