package fanout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/rs/zerolog"
)

// ReadMode is how the shards of a stream are read.
type ReadMode string

// The read modes.
const (
	// ReadEFO reads through enhanced fan-out, on the stream's EFO consumer.
	ReadEFO ReadMode = "efo"
	// ReadPolling reads with GetRecords, on the shards' shared throughput.
	ReadPolling ReadMode = "polling"
	// ReadAuto reads through enhanced fan-out unless Kinesis refuses the
	// consumer (the stream has its maximum of consumers) or the endpoint
	// does not serve SubscribeToShard; then it polls.
	ReadAuto ReadMode = "auto"
)

// ReadModes are every ReadMode, for validation.
var ReadModes = []ReadMode{ReadEFO, ReadPolling, ReadAuto}

// minConsumerLimit is the least number of EFO consumers a stream takes (20;
// 50 with On-demand Advantage).
const minConsumerLimit = 20

// errEFOUnavailable: enhanced fan-out can't be used on this stream; auto
// polls instead.
type errEFOUnavailable struct{ why string }

func (e *errEFOUnavailable) Error() string { return "enhanced fan-out unavailable: " + e.why }

// newReader is the stream reader of mode.
func newReader(c *StreamConsumer, mode ReadMode, decoder Decoder) streamReader {
	switch mode {
	case ReadPolling:
		return polling{c}
	case ReadAuto:
		return &auto{c: c, efo: &efo{c: c, decoder: decoder}, poll: polling{c}}
	}
	return &efo{c: c, decoder: decoder}
}

// ReadMode is how the stream is read now: ReadEFO or ReadPolling (what
// ReadAuto chose so far).
func (c *StreamConsumer) ReadMode() ReadMode {
	if a, ok := c.reader.(*auto); ok {
		return a.mode()
	}
	if _, ok := c.reader.(polling); ok {
		return ReadPolling
	}
	return ReadEFO
}

// auto reads through enhanced fan-out until it finds it unavailable, then
// polls for the rest of the consumer's life.
type auto struct {
	c    *StreamConsumer
	efo  *efo
	poll polling

	mu      sync.Mutex
	polling bool
}

func (a *auto) mode() ReadMode {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.polling {
		return ReadPolling
	}
	return ReadEFO
}

// fallBack switches the stream to polling, saying why once.
func (a *auto) fallBack(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.polling {
		return
	}
	a.polling = true
	a.c.log.Warn().Str("read", string(ReadAuto)).Str("reason", why).
		Str("cost", "polling shares each shard's 5 GetRecords calls and 2 MB a second with every other polling application: "+
			"about 200 ms of latency with one, about 1 s with five, against about 70 ms through enhanced fan-out").
		Msg("enhanced fan-out unavailable; reading by polling")
}

func (a *auto) prepare(ctx context.Context) error {
	if a.mode() == ReadPolling {
		return nil
	}
	err := a.efo.prepare(ctx)
	var u *errEFOUnavailable
	if errors.As(err, &u) {
		a.fallBack(u.why)
		return nil
	}
	return err
}

func (a *auto) shard(shardID string, log zerolog.Logger) shardReader {
	return &autoShard{a: a, efo: a.efo.shard(shardID, log), poll: a.poll.shard(shardID, log)}
}

// autoShard opens a shard's readers in the stream's current mode.
type autoShard struct {
	a         *auto
	efo, poll shardReader
	// last is the one that opened last: its errors are classified by it.
	last shardReader
}

func (s *autoShard) open(ctx context.Context, at position) (reader, error) {
	if s.a.mode() == ReadPolling {
		s.last = s.poll
		return s.poll.open(ctx, at)
	}
	s.last = s.efo
	r, err := s.efo.open(ctx, at)
	if err != nil && notServed(err) {
		s.a.fallBack("the endpoint does not serve SubscribeToShard")
		s.last = s.poll
		return s.poll.open(ctx, at)
	}
	return r, err
}

func (s *autoShard) current() shardReader {
	if s.last == nil {
		return s.efo
	}
	return s.last
}

func (s *autoShard) fault(err error) readFault { return s.current().fault(err) }

// restore, when the consumer can't be registered again, polls instead.
func (s *autoShard) restore(ctx context.Context) error {
	err := s.current().restore(ctx)
	var u *errEFOUnavailable
	if errors.As(err, &u) {
		s.a.fallBack(u.why)
		return nil
	}
	return err
}

func (s *autoShard) settle() time.Duration { return s.current().settle() }

// notServed reports whether err says that the endpoint does not serve the
// operation: UnknownOperationException, or HTTP 404 or 501.
func notServed(err error) bool {
	if errorCode(err) == codeUnknownOperation {
		return true
	}
	var hs interface{ HTTPStatusCode() int }
	if errors.As(err, &hs) {
		switch hs.HTTPStatusCode() {
		case http.StatusNotFound, http.StatusNotImplemented:
			return true
		}
	}
	return false
}

// limitRefusals are the registrations refused with LimitExceededException
// in a row.
type limitRefusals struct {
	n     int
	first time.Time
}

// efoRefusal says why a registration error means that enhanced fan-out is
// unavailable on the stream ("" when it may be retried): the endpoint does
// not serve it, or the stream has its maximum of consumers. Kinesis
// answers LimitExceededException for that, but also for 5 consumers being
// created at once in the account and for the call rate, which pass within
// seconds. A stream with fewer than 20 consumers has room: its refusals are
// retried as enhanced fan-out retries them. With 20 or more (the maximum,
// or 50 on an On-demand Advantage stream), or when the count is unknown,
// only refusals that go on for longer than a consumer takes to be created
// mean the maximum.
func (c *StreamConsumer) efoRefusal(ctx context.Context, err error, lr *limitRefusals) string {
	if notServed(err) {
		return "the endpoint does not serve enhanced fan-out consumers"
	}
	var re *registerError
	if !errors.As(err, &re) || errorCode(err) != codeLimitExceeded {
		*lr = limitRefusals{}
		return ""
	}
	if lr.n == 0 {
		lr.first = time.Now()
	}
	lr.n++
	count := int32(-1)
	out, derr := c.client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: aws.String(c.streamARN)})
	if derr == nil && out.StreamDescriptionSummary != nil && out.StreamDescriptionSummary.ConsumerCount != nil {
		count = *out.StreamDescriptionSummary.ConsumerCount
	}
	if count >= 0 && count < minConsumerLimit {
		return ""
	}
	if lr.n < 3 || time.Since(lr.first) < 2*c.timers.ConsumerPollMax {
		return ""
	}
	if count < 0 {
		return "RegisterStreamConsumer keeps answering LimitExceededException and the stream's consumer count is unavailable: taken for the stream's maximum of EFO consumers"
	}
	return fmt.Sprintf("the stream has %d EFO consumers, its maximum: RegisterStreamConsumer keeps answering LimitExceededException", count)
}

// registerError is a refused RegisterStreamConsumer.
type registerError struct{ err error }

func (e *registerError) Error() string { return "register consumer: " + e.err.Error() }
func (e *registerError) Unwrap() error { return e.err }
