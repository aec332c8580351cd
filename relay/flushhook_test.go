package relay

// beforeFlush makes p call f between the publishes and the flush of every
// core chunk, on either connection; nil stops it.
func beforeFlush(p *Publisher, f func()) {
	p.beforeFlush = f
}
