package main

import (
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/config"
)

// levelSwitch is the daemon's log level, changeable at run time (SIGHUP).
type levelSwitch struct{ level atomic.Int32 }

func (l *levelSwitch) set(s string) {
	lv, err := zerolog.ParseLevel(s)
	if err != nil || s == "" {
		lv = zerolog.InfoLevel
	}
	l.level.Store(int32(lv))
}

// levelWriter drops events below the switch's level.
type levelWriter struct {
	w  zerolog.LevelWriter
	sw *levelSwitch
}

func (lw levelWriter) Write(p []byte) (int, error) { return lw.w.Write(p) }

func (lw levelWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < zerolog.Level(lw.sw.level.Load()) {
		return len(p), nil
	}
	return lw.w.WriteLevel(l, p)
}

// newLogger returns the daemon's logger and its level switch: JSON (for
// journald) or console, "auto" picking console when w is a terminal.
func newLogger(c config.LogConfig, w io.Writer) (zerolog.Logger, *levelSwitch) {
	sw := &levelSwitch{}
	sw.set(c.Level)
	zerolog.TimeFieldFormat = time.RFC3339Nano
	format := c.Format
	if format == "auto" || format == "" {
		format = "json"
		if isTerminal(w) {
			format = "console"
		}
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !isTerminal(w)}
	}
	return zerolog.New(levelWriter{w: zerolog.LevelWriterAdapter{Writer: w}, sw: sw}).With().Timestamp().Logger(), sw
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
