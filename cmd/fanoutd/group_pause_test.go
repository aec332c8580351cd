package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/internal/testutil"
)

// A member paused (SIGSTOP, as a VM suspend or a long GC pause would) for
// two lease TTLs while records are produced, then resumed: the others take
// its shards over while it sleeps; once it runs again it publishes nothing
// for a shard it lost (until it claims that shard again, if ever), every
// record is in JetStream exactly once and in order per key, and no shard's
// checkpoint ever moves backwards.
//
// What the paused member publishes is seen on the wire: it reaches NATS
// only through the suite's proxy, which hands a parser every byte the
// member sends; each HPUB of a record names its shard in Kinesis-Shard-Id.
func TestGroupMemberPausedPublishesNothingItLost(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: three daemon processes, a 3-node cluster and a member paused for two lease TTLs")
	}
	g := newGroupSuite(t)
	pubs := &publishLog{}
	g.px.Tap(func() io.Writer { return &pubTap{log: pubs} })
	// The checkpoint bucket, made before the daemons (which use it as it
	// is) with the longest history a bucket keeps; a watcher sees every
	// revision as it is written besides.
	kv, err := g.js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "fanoutd_checkpoints", History: 64, Replicas: 3, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	cps := watchCheckpoints(t, kv)

	for _, name := range []string{"a", "b", "c"} {
		g.start(name)
	}
	g.balanced("3 members share the shards", 60*time.Second)
	g.Produce()
	g.progress(200)

	a := g.mems["a"]
	outAt := map[string]int{"b": len(g.mems["b"].out.String()), "c": len(g.mems["c"].out.String())}
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "member a stopped", func() bool { return processState(a.cmd.Process.Pid) == 'T' })
	stopped := time.Now()
	g.away["a"] = a
	delete(g.mems, "a")
	g.balanced("b and c take the paused member's shards", 30*time.Second)
	g.progress(50)
	if rest := 2*groupLeaseTTL - time.Since(stopped); rest > 0 {
		<-time.After(rest) // the pause itself: two lease TTLs at least
	}
	// The shards a lost, and when: b and c took them over as expired from a.
	lost := map[string]time.Time{}
	for name, at := range outAt {
		for _, l := range logLines(g.mems[name].out.String()[at:]) {
			if l.Message == "lease acquired" && l.PreviousOwner == "a" && lost[l.Shard].IsZero() {
				lost[l.Shard] = l.Time
			}
		}
	}
	if len(lost) == 0 {
		t.Fatal("b and c took no lease over from the paused member")
	}

	aOut := len(a.out.String())
	resumed := time.Now()
	// Nothing published by a for a shard from the moment another member
	// took it over until a claimed it again, if it did (its log says when:
	// the claim is written before any publish).
	noStalePublish := func(when string) {
		t.Helper()
		reclaimed := map[string]time.Time{}
		for _, l := range logLines(a.out.String()[aOut:]) {
			if _, ok := lost[l.Shard]; ok && l.Message == "lease acquired" && reclaimed[l.Shard].IsZero() {
				reclaimed[l.Shard] = l.Time
			}
		}
		for _, p := range pubs.since(stopped) {
			taken, ok := lost[p.shard]
			if !ok || p.at.Before(taken) {
				continue
			}
			if at := reclaimed[p.shard]; at.IsZero() || p.at.Before(at) {
				t.Fatalf("%s: the paused member published a record of shard %s %v after the resume, when another member held its lease (taken over %v after the pause began; claimed again: %v)",
					when, p.shard, p.at.Sub(resumed).Round(time.Millisecond), taken.Sub(stopped).Round(time.Millisecond), at)
			}
		}
	}

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	g.mems["a"] = a
	delete(g.away, "a")
	testutil.WaitFor(t, recoveryBound, "the resumed member logs every lease it lost", func() bool {
		seen := map[string]bool{}
		for _, l := range logLines(a.out.String()[aOut:]) {
			if _, ok := lost[l.Shard]; ok && strings.Contains(l.Message, "lost") {
				seen[l.Shard] = true
			}
		}
		return len(seen) == len(lost)
	})
	g.progress(50)
	noStalePublish("after the resume")
	g.balanced("the resumed member gets its share again", 60*time.Second)
	g.progress(50)

	total := g.StopProducing()
	testutil.WaitFor(t, recoveryBound, fmt.Sprintf("all %d records stored", total), func() bool { return g.delivered() >= total })
	g.checkStored(total)
	noStalePublish("at the end")

	after := len(pubs.since(resumed))
	t.Logf("paused %v; lost %d shards; %d records published by the member after the resume, none for a lost shard before claiming it again",
		resumed.Sub(stopped).Round(time.Millisecond), len(lost), after)

	// No checkpoint moved backwards: every revision the watcher saw, and
	// the history the bucket kept.
	cps.check(t)
	keys, err := kv.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		h, err := kv.History(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		var hist checkpointHistory
		for _, e := range h {
			hist.add(e)
		}
		if err := hist.err(); err != nil {
			t.Errorf("bucket history of %s: %v", k, err)
		}
	}
}

// processState is the state letter of a process in /proc (T: stopped).
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may hold spaces, so after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// logLine is the part of a daemon's JSON log line these checks read.
type logLine struct {
	Message       string    `json:"message"`
	Shard         string    `json:"shard"`
	PreviousOwner string    `json:"previous_owner"`
	Time          time.Time `json:"time"`
}

func logLines(s string) []logLine {
	var out []logLine
	for line := range strings.SplitSeq(s, "\n") {
		var l logLine
		if json.Unmarshal([]byte(line), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// publishLog is every record a client published through the proxy, with
// when the proxy saw it and its shard.
type publishLog struct {
	mu   sync.Mutex
	pubs []tappedPublish
}

type tappedPublish struct {
	at    time.Time
	shard string
}

func (l *publishLog) add(shard string) {
	l.mu.Lock()
	l.pubs = append(l.pubs, tappedPublish{at: time.Now(), shard: shard})
	l.mu.Unlock()
}

func (l *publishLog) since(t time.Time) []tappedPublish {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []tappedPublish
	for _, p := range l.pubs {
		if !p.at.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

// pubTap parses what one NATS client sends (the client protocol: an op
// line, and for PUB and HPUB a payload of the size the line gives) and
// logs the shard of every record published on kinesis.>.
type pubTap struct {
	log *publishLog
	buf []byte
}

func (p *pubTap) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.Index(p.buf, []byte("\r\n"))
		if i < 0 {
			return len(b), nil
		}
		f := strings.Fields(string(p.buf[:i]))
		if len(f) < 3 || (f[0] != "PUB" && f[0] != "HPUB") {
			p.buf = p.buf[i+2:]
			continue
		}
		total, _ := strconv.Atoi(f[len(f)-1])
		hdr := 0
		if f[0] == "HPUB" {
			hdr, _ = strconv.Atoi(f[len(f)-2])
		}
		end := i + 2 + total + 2
		if len(p.buf) < end {
			return len(b), nil
		}
		if strings.HasPrefix(f[1], "kinesis.") {
			for line := range strings.SplitSeq(string(p.buf[i+2:i+2+hdr]), "\r\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Kinesis-Shard-Id") {
					p.log.add(strings.TrimSpace(v))
				}
			}
		}
		p.buf = p.buf[end:]
	}
}

// checkpointWatch records every revision of every checkpoint key, in the
// order the bucket wrote them.
type checkpointWatch struct {
	mu   sync.Mutex
	keys map[string]*checkpointHistory
}

func watchCheckpoints(t *testing.T, kv jetstream.KeyValue) *checkpointWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cw := &checkpointWatch{keys: map[string]*checkpointHistory{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			cw.mu.Lock()
			h := cw.keys[e.Key()]
			if h == nil {
				h = &checkpointHistory{}
				cw.keys[e.Key()] = h
			}
			h.add(e)
			cw.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.Stop(); cancel(); <-done })
	return cw
}

func (cw *checkpointWatch) check(t *testing.T) {
	t.Helper()
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if len(cw.keys) == 0 {
		t.Fatal("the watcher saw no checkpoint")
	}
	n := 0
	for k, h := range cw.keys {
		if err := h.err(); err != nil {
			t.Errorf("checkpoint %s: %v", k, err)
		}
		n += h.revisions
	}
	t.Logf("%d checkpoint writes of %d shards seen, none moved backwards", n, len(cw.keys))
}

// checkpointHistory follows one key's values in revision order and
// remembers the first that moved backwards.
type checkpointHistory struct {
	last      *big.Int
	lastRev   uint64
	lastBy    string
	ended     bool
	revisions int
	backwards string
}

func (h *checkpointHistory) add(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var v struct {
		SequenceNumber string `json:"sequence_number"`
		ShardEnded     bool   `json:"shard_ended"`
		Instance       string `json:"instance"`
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		h.backwards = fmt.Sprintf("revision %d: %v", e.Revision(), err)
		return
	}
	h.revisions++
	if h.backwards != "" {
		return
	}
	if e.Revision() <= h.lastRev {
		h.backwards = fmt.Sprintf("revision %d after %d", e.Revision(), h.lastRev)
		return
	}
	switch {
	case v.ShardEnded:
		h.ended = true
	case h.ended:
		h.backwards = fmt.Sprintf("revision %d (by %s): sequence number %s after the shard's end", e.Revision(), v.Instance, v.SequenceNumber)
	default:
		n, ok := new(big.Int).SetString(v.SequenceNumber, 10)
		if !ok {
			h.backwards = fmt.Sprintf("revision %d: sequence number %q", e.Revision(), v.SequenceNumber)
			return
		}
		if h.last != nil && n.Cmp(h.last) < 0 {
			h.backwards = fmt.Sprintf("revision %d (by %s): sequence number %s after %s (revision %d by %s)", e.Revision(), v.Instance, n, h.last, h.lastRev, h.lastBy)
			return
		}
		h.last = n
	}
	h.lastRev, h.lastBy = e.Revision(), v.Instance
}

func (h *checkpointHistory) err() error {
	if h.backwards != "" {
		return fmt.Errorf("moved backwards: %s", h.backwards)
	}
	return nil
}
