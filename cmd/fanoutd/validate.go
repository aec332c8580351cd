package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/relay"
)

// ValidateCmd checks a config file without connecting to anything.
type ValidateCmd struct {
	Config string `short:"c" required:"" placeholder:"FILE" help:"Config file to check."`
}

// Run loads and validates the file: exit 0 and a summary, or exit 2 with one
// line per problem.
func (v *ValidateCmd) Run(ctx context.Context, w io.Writer) error {
	cfg, err := loadConfig(v.Config)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: OK (%d stream(s))\n", v.Config, len(cfg.Streams))
	for _, s := range cfg.Streams {
		fmt.Fprintf(w, "  %s -> %s (consumer %s, start %s, read %s)\n", s.StreamName(), s.Subject, s.Consumer, s.StartPosition, s.Read)
	}
	if n := cfg.NATS; n.Context != "" {
		gives := strings.Join(n.ContextKeys(), ", ")
		if gives == "" {
			gives = "nothing the nats section does not set"
		}
		fmt.Fprintf(w, "  nats: context %s (%s) gives %s\n", n.Context, n.ContextFile(), gives)
	}
	// Whether the server has JetStream is known only at start: say what
	// depends on it.
	switch p := cfg.NATS.LargeRecordPolicy(); p {
	case relay.OversizeObjectStore:
		when := "at start"
		if !cfg.NATS.JetStream {
			when = "at the first such record"
		}
		fmt.Fprintf(w, "  records too big for one NATS message -> Object Store bucket %s (needs JetStream on the NATS server: without it they become dead letters; created %s if missing)\n", cfg.NATS.ObjectStore.Bucket, when)
	default:
		fmt.Fprintf(w, "  records too big for one NATS message -> %s\n", p)
	}
	if cfg.NATS.Oversize != "" {
		fmt.Fprintf(w, "  note: nats.oversize is deprecated: rename it nats.large_records\n")
	}
	return nil
}

// loadConfig loads a config file; any problem is a usage error (exit 2).
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usageError{fmt.Errorf("config file %s does not exist", path)}
	case errors.Is(err, fs.ErrPermission):
		return nil, usageError{fmt.Errorf("config file %s cannot be read: permission denied", path)}
	case err != nil:
		return nil, usageError{fmt.Errorf("invalid configuration:\n%w", err)}
	}
	return cfg, nil
}
