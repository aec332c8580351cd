package daemon

// ConfigError is a failure that only an operator can cure: a change of
// configuration, permissions, credentials or of what exists in Kinesis or
// NATS. A restart would meet it again, so fanoutd exits 2 and systemd does
// not restart it (RestartPreventExitStatus=2).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }
