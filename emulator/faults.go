package emulator

import (
	"net/http"
	"time"
)

// faultRule makes the next requests of one operation fail.
type faultRule struct {
	op        string // an operation name, "PutRecords.entry" for PutRecords entries
	remaining int
	err       *apiError
}

// takeFault returns the error the next request of op must fail with, if any.
// Called with s.mu held.
func (s *Server) takeFault(op string) *apiError {
	for i, f := range s.faults {
		if f.op == op && f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			e := *f.err
			return &e
		}
	}
	return nil
}

// takeEntryFaults returns, for n PutRecords entries, the error each must fail
// with (nil for none). Called with s.mu held.
func (s *Server) takeEntryFaults(n int) []*apiError {
	out := make([]*apiError, n)
	for i := range out {
		out[i] = s.takeFault("PutRecords.entry")
	}
	return out
}

// PendingFaults counts the injected request failures not yet used up.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.remaining
	}
	return n
}

// FailNext makes the next n requests of op (e.g. "SubscribeToShard",
// "ListShards") fail with the AWS error errType and message. The HTTP status
// follows the type: 500 for InternalFailure, 503 for ServiceUnavailable, else
// 400. Use FailNextStatus for another status.
func (s *Server) FailNext(op string, n int, errType, message string) {
	s.addFault(op, n, errorf(errType, "%s", message))
}

// FailNextStatus is FailNext with an explicit HTTP status, e.g. 502.
func (s *Server) FailNextStatus(op string, n, status int, errType, message string) {
	e := errorf(errType, "%s", message)
	e.status = status
	s.addFault(op, n, e)
}

// Throttle makes the next n requests of op fail as AWS throttles them:
// ProvisionedThroughputExceededException for PutRecord, PutRecords and
// GetRecords, LimitExceededException for the rest.
func (s *Server) Throttle(op string, n int) {
	typ := ErrLimitExceeded
	switch op {
	case "PutRecord", "PutRecords", "GetRecords":
		typ = ErrProvisionedThroughput
	}
	s.FailNext(op, n, typ, "Rate exceeded for "+op+" (injected).")
}

// FailPutRecordsEntries makes the next n PutRecords entries fail one by one
// with errType (ProvisionedThroughputExceededException or
// InternalFailure), reported in the response as AWS does.
func (s *Server) FailPutRecordsEntries(n int, errType string) {
	s.addFault("PutRecords.entry", n, errorf(errType, "Rate exceeded for shard (injected)."))
}

func (s *Server) addFault(op string, n int, e *apiError) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultRule{op: op, remaining: n, err: e})
}

// controlSubs sends c to the active subscriptions of stream and shard ("" for
// all), and returns how many got it.
func (s *Server) controlSubs(streamName, shardID string, c control) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, sub := range s.subs {
		if (streamName == "" || sub.stream == streamName) && (shardID == "" || k.shardID == shardID) {
			sub.send(c)
			n++
		}
	}
	return n
}

// EndSubscriptions ends the active subscriptions of a shard ("" for every
// shard of the stream, or of every stream) with an exception frame of type
// excType, e.g. "InternalFailureException" or "KMSThrottlingException"; with
// excType "" they end cleanly, as at the end of their lifetime.
func (s *Server) EndSubscriptions(streamName, shardID, excType, message string) int {
	if excType == "" {
		return s.controlSubs(streamName, shardID, control{kind: ctlEnd})
	}
	if message == "" {
		message = excType + " (injected)"
	}
	return s.controlSubs(streamName, shardID, control{kind: ctlException, excType: excType, msg: message})
}

// CutSubscriptions cuts the active subscriptions mid-frame: the client gets
// half an event and then a reset stream.
func (s *Server) CutSubscriptions(streamName, shardID string) int {
	return s.controlSubs(streamName, shardID, control{kind: ctlCut})
}

// StallSubscriptions makes the active subscriptions go silent without closing:
// no events, no end, as a half-open connection looks. New subscriptions are
// not affected.
func (s *Server) StallSubscriptions(streamName, shardID string) int {
	return s.controlSubs(streamName, shardID, control{kind: ctlStall})
}

// ResumeSubscriptions undoes StallSubscriptions.
func (s *Server) ResumeSubscriptions(streamName, shardID string) int {
	return s.controlSubs(streamName, shardID, control{kind: ctlResume})
}

// DropConnections closes every client TCP connection at once, as a network
// failure does, and returns how many it closed.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	conns := make([]interface{ Close() error }, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// ActiveSubscriptions counts the open subscriptions of a stream and shard
// ("" for all).
func (s *Server) ActiveSubscriptions(streamName, shardID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, sub := range s.subs {
		if (streamName == "" || sub.stream == streamName) && (shardID == "" || k.shardID == shardID) {
			n++
		}
	}
	return n
}

// SetSubscriptionLifetime changes the lifetime of subscriptions started from
// now on.
func (s *Server) SetSubscriptionLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.SubscriptionLifetime = d
}

// SetConsumerActivationDelay changes how long consumers registered from now
// on stay CREATING.
func (s *Server) SetConsumerActivationDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.ConsumerActivationDelay = d
}

// AdvanceClock moves the emulator's clock forward by d, so that records age
// out of retention (24 hours) without waiting.
func (s *Server) AdvanceClock(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeOffset += d
}

// SubscriptionConflicts counts the SubscribeToShard calls made while a
// subscription of the same consumer and shard was live: those that took it
// over, and those refused (within the takeover grace). Both mean two
// readers of one shard.
func (s *Server) SubscriptionConflicts() (takeovers, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeovers, s.refusedInUse
}

// Now is the emulator's clock: the real time plus every AdvanceClock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

var _ http.Handler = (*Server)(nil)
