package relay

import "context"

// flushHook wraps a Publisher's flusher to act between a core chunk's
// publishes and its flush.
type flushHook struct {
	flusher
	before func()
}

func (h flushHook) FlushWithContext(ctx context.Context) error {
	h.before()
	return h.flusher.FlushWithContext(ctx)
}

// beforeFlush makes p call f between the publishes and the flush of every
// core chunk, on either connection; nil stops it.
func beforeFlush(p *Publisher, f func()) {
	p.beforeDirectFlush = f
	if f == nil {
		p.flusher = p.nc
		return
	}
	p.flusher = flushHook{flusher: p.nc, before: f}
}
