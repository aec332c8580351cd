package e2e

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/fanoutd/fanoutd/emulator"
)

// ProducerKeys is how many partition keys a Producer writes to.
const ProducerKeys = 24

// Producer writes records "key:i" round robin over ProducerKeys keys to
// stream "s" until stopped, and remembers what it wrote.
type Producer struct {
	emu *emulator.Server

	mu       sync.Mutex
	produced map[string]int    // key -> records written
	lastSeq  map[string]string // shard -> sequence number of its last record
	total    int
	stop     context.CancelFunc
	done     chan struct{}
}

// NewProducer returns a producer writing to emu; Produce starts it.
func NewProducer(emu *emulator.Server) *Producer {
	return &Producer{emu: emu, produced: map[string]int{}, lastSeq: map[string]string{}}
}

// Produce writes a record every 2 ms until StopProducing.
func (p *Producer) Produce() {
	ctx, cancel := context.WithCancel(context.Background())
	p.stop, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			k := fmt.Sprintf("key%02d", i%ProducerKeys)
			p.mu.Lock()
			n := p.produced[k]
			p.mu.Unlock()
			shard, seq, err := p.emu.PutRecord("s", k, []byte(fmt.Sprintf("%s:%d", k, n)))
			if err != nil {
				continue // e.g. during a reshard; the record was not written
			}
			p.mu.Lock()
			p.produced[k]++
			p.total++
			p.lastSeq[shard] = seq
			p.mu.Unlock()
		}
	}()
}

// StopProducing stops the producer and returns how many records it wrote.
func (p *Producer) StopProducing() int {
	p.stop()
	<-p.done
	return p.ProducedSoFar()
}

// ProducedSoFar is how many records were written.
func (p *Producer) ProducedSoFar() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// Add counts records a test wrote itself: n more of key ("" counts them
// in the total only).
func (p *Producer) Add(key string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key != "" {
		p.produced[key] += n
	}
	p.total += n
}

// Want is what was written: key -> records.
func (p *Producer) Want() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.produced)
}

// LastSeqs are the sequence numbers of each shard's last record.
func (p *Producer) LastSeqs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.lastSeq)
}
