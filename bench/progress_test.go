package bench

import (
	"bytes"
	"strings"
	"testing"
)

// Written to a file or a pipe, the progress is plain lines, without the
// carriage returns that redraw it on a terminal.
func TestProgressPlainWithoutTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf}
	p.show("catch-up: %d records", 10)
	p.show("catch-up: %d records", 20) // within plainEvery: not printed
	p.line("catch-up: done")
	p.show("steady: %ds left", 3)
	if got, want := buf.String(), "catch-up: 10 records\ncatch-up: done\nsteady: 3s left\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// On a terminal, the progress line is redrawn in place and cleared before a
// summary line.
func TestProgressLiveRedraws(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, live: true}
	p.show("catch-up: %d records", 10)
	p.line("catch-up: done")
	if got := buf.String(); !strings.HasPrefix(got, "\rcatch-up: 10 records\r") || !strings.HasSuffix(got, "\rcatch-up: done\n") {
		t.Errorf("output %q", got)
	}
}
