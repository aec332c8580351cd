package emulator

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const (
	contentTypeJSON        = "application/x-amz-json-1.1"
	contentTypeEventStream = "application/vnd.amazon.eventstream"
	targetPrefix           = "Kinesis_20131202."
	maxRequestBody         = 32 << 20
)

// Options configures a Server. Zero durations take AWS's values; a negative
// duration means none (no delay).
type Options struct {
	// Addr is the address to listen on; default 127.0.0.1:0 (a free port).
	Addr string
	// PlainHTTP serves HTTP/1.1 and cleartext HTTP/2 instead of HTTP/2 over TLS.
	PlainHTTP bool
	// CAFile is where the generated CA certificate is written (PEM). Default:
	// a file in a new temporary directory, removed by Close.
	CAFile string
	// Region and AccountID appear in ARNs. Defaults us-east-1, 000000000000.
	Region    string
	AccountID string

	// SubscriptionLifetime is how long a SubscribeToShard stream lives before
	// the service ends it cleanly (AWS: 5 minutes).
	SubscriptionLifetime time.Duration
	// ConsumerActivationDelay is how long a registered consumer stays CREATING
	// (AWS: seconds; default here 3s).
	ConsumerActivationDelay time.Duration
	// ConsumerDeletionDelay is how long a deregistered consumer stays DELETING.
	ConsumerDeletionDelay time.Duration
	// StreamCreationDelay is how long a new stream stays CREATING; default none.
	StreamCreationDelay time.Duration
	// StreamUpdateDelay is how long a stream stays UPDATING after a reshard,
	// a retention, encryption or record size change; default none.
	StreamUpdateDelay time.Duration
	// StreamDeletionDelay is how long a deleted stream stays DELETING;
	// default ConsumerDeletionDelay.
	StreamDeletionDelay time.Duration
	// EmptyEventInterval is how often a subscription with nothing new sends an
	// event without records (default 5s).
	EmptyEventInterval time.Duration
	// ReadThroughput is the bytes per second one subscription may receive
	// (AWS: 2 MiB/s per shard per consumer). Negative: unlimited.
	ReadThroughput int
	// TakeoverGrace is the time after a successful SubscribeToShard during
	// which another call for the same consumer and shard fails with
	// ResourceInUseException (AWS: 5s).
	TakeoverGrace time.Duration
	// SubscribeRate is the minimum time between two SubscribeToShard calls for
	// one consumer and shard (AWS: 1s); faster calls get LimitExceededException.
	SubscribeRate time.Duration
	// IteratorLifetime is how long a shard iterator is valid after it was
	// issued (AWS: 5 minutes); GetRecords then answers ExpiredIteratorException.
	IteratorLifetime time.Duration
	// GetRecordsPerSecond is how many GetRecords calls a second a shard
	// serves, shared by every caller (AWS: 5), in bursts of as many: the 6th
	// of 6 calls in a row is refused. Negative: unlimited.
	GetRecordsPerSecond int
	// GetRecordsThroughput is the bytes per second a shard serves to
	// GetRecords, shared by every caller (AWS: 2 MiB/s). A call may return
	// more than the budget left (up to 10 MiB); the following calls are
	// refused until the rate has made up for it. Negative: unlimited.
	GetRecordsThroughput int
	// GetRecordsCooldown is how long a shard refuses GetRecords after a call
	// that returned 10 MiB (AWS: 5s). Negative: no cooldown.
	GetRecordsCooldown time.Duration
	// MaxConsumersPerStream is how many consumers a stream takes (AWS: 20;
	// 50 for On-demand Advantage streams); RegisterStreamConsumer past it
	// answers LimitExceededException. Negative: none, as on a stream whose
	// consumers other applications took. SetMaxConsumers changes one stream's.
	MaxConsumersPerStream int
	// WithoutSubscribeToShard makes the endpoint answer SubscribeToShard as
	// a Kinesis server without it does (see NotServed); the other
	// operations, consumer registration included, work as usual.
	WithoutSubscribeToShard NotServed
	// EnforceLimits applies AWS's documented API limits (see limits.go):
	// control-plane calls per second, 1,000 records and 1 MiB a second
	// written per shard, 5 GetShardIterator calls a second per shard.
	// GetRecords' limits apply regardless.
	EnforceLimits bool
}

// NotServed is how an endpoint answers an operation it does not serve.
type NotServed string

const (
	// Served: the operation works.
	Served NotServed = ""
	// NotServedKinesisMock answers HTTP 404 with
	// {"__type":"ApiNotImplemented","message":"SubscribeToShard is not yet
	// supported"}, as kinesis-mock (etspaceman/kinesis-mock) answers
	// SubscribeToShard in its releases without enhanced fan-out.
	NotServedKinesisMock NotServed = "kinesis-mock"
	// NotServedUnknownOperation answers HTTP 400 UnknownOperationException,
	// as AWS answers an operation it does not have.
	NotServedUnknownOperation NotServed = "unknown-operation"
)

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		} else if *d < 0 {
			*d = 0
		}
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "000000000000"
	}
	def(&o.SubscriptionLifetime, 5*time.Minute)
	def(&o.ConsumerActivationDelay, 3*time.Second)
	def(&o.ConsumerDeletionDelay, time.Second)
	def(&o.StreamCreationDelay, -1)
	def(&o.StreamUpdateDelay, -1)
	if o.StreamDeletionDelay == 0 {
		o.StreamDeletionDelay = o.ConsumerDeletionDelay
	} else if o.StreamDeletionDelay < 0 {
		o.StreamDeletionDelay = 0
	}
	def(&o.EmptyEventInterval, 5*time.Second)
	def(&o.TakeoverGrace, 5*time.Second)
	def(&o.SubscribeRate, time.Second)
	def(&o.IteratorLifetime, 5*time.Minute)
	def(&o.GetRecordsCooldown, defaultGetRecordsCooldown)
	if o.ReadThroughput == 0 {
		o.ReadThroughput = 2 << 20
	}
	if o.GetRecordsPerSecond == 0 {
		o.GetRecordsPerSecond = defaultGetRecordsPerSecond
	}
	if o.GetRecordsThroughput == 0 {
		o.GetRecordsThroughput = defaultGetRecordsThroughput
	}
	if o.MaxConsumersPerStream == 0 {
		o.MaxConsumersPerStream = defaultMaxConsumersPerStream
	} else if o.MaxConsumersPerStream < 0 {
		o.MaxConsumersPerStream = 0
	}
}

// Server is a running emulator.
type Server struct {
	opts    Options
	ln      net.Listener
	srv     *http.Server
	url     string
	caFile  string
	caPEM   []byte
	tmpDir  string
	closing atomic.Bool

	mu        sync.Mutex
	streams   map[string]*stream
	counter   uint64
	subs      map[subKey]*subscription
	lastCall  map[subKey]time.Time
	nextSubID uint64
	faults    []*faultRule
	conns     map[net.Conn]struct{}
	protos    map[string]int
	ops       map[string]int
	limiters  map[string]*rate.Limiter
	limitHits map[string]int
	// readsRefused counts GetRecords calls refused by read limits, by stream.
	readsRefused map[string]int
	// timeOffset shifts the emulator's clock forward (AdvanceClock), so tests
	// can age records out of retention without waiting.
	timeOffset time.Duration
	// lastCreated is the creation time of each stream name's latest
	// incarnation: a stream created again gets a later timestamp (in
	// milliseconds, as AWS shows it) even within one millisecond.
	lastCreated map[string]time.Time
	// takeovers counts subscriptions that took over a live one of the same
	// consumer and shard; refusedInUse those refused because one was live
	// (two readers of one shard).
	takeovers, refusedInUse int

	wg sync.WaitGroup
}

// New creates a server with opts and starts it listening.
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	s := &Server{
		opts:         opts,
		streams:      map[string]*stream{},
		subs:         map[subKey]*subscription{},
		lastCall:     map[subKey]time.Time{},
		conns:        map[net.Conn]struct{}{},
		protos:       map[string]int{},
		ops:          map[string]int{},
		limiters:     map[string]*rate.Limiter{},
		limitHits:    map[string]int{},
		readsRefused: map[string]int{},
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", opts.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ConnState:         s.trackConn,
		ErrorLog:          nil,
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	if opts.PlainHTTP {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		s.srv.Protocols = &p
		s.url = "http://" + ln.Addr().String()
	} else {
		ca, err := newCertAuthority([]string{host})
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.caPEM = ca.caPEM
		if err := s.writeCA(); err != nil {
			ln.Close()
			return nil, err
		}
		s.srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{ca.server},
			NextProtos:   []string{"h2", "http/1.1"},
			MinVersion:   tls.VersionTLS12,
		}
		ln = tls.NewListener(ln, s.srv.TLSConfig)
		s.url = "https://" + s.ln.Addr().String()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *Server) writeCA() error {
	path := s.opts.CAFile
	if path == "" {
		dir, err := os.MkdirTemp("", "fanoutd-emulator-")
		if err != nil {
			return fmt.Errorf("create CA directory: %w", err)
		}
		s.tmpDir = dir
		path = filepath.Join(dir, "ca.pem")
	}
	if err := os.WriteFile(path, s.caPEM, 0o644); err != nil {
		return fmt.Errorf("write CA file: %w", err)
	}
	s.caFile = path
	return nil
}

// URL is the endpoint, e.g. https://127.0.0.1:4567.
func (s *Server) URL() string { return s.url }

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// CAFile is the path of the PEM file holding the CA that signed the server's
// certificate ("" with PlainHTTP). Point AWS_CA_BUNDLE at it.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM is the CA certificate in PEM form.
func (s *Server) CAPEM() []byte { return s.caPEM }

// Region is the region used in ARNs.
func (s *Server) Region() string { return s.opts.Region }

// EnvLines are the environment settings that point the AWS CLI and SDKs at
// this emulator.
func (s *Server) EnvLines() []string {
	lines := []string{
		"AWS_ENDPOINT_URL_KINESIS=" + s.url,
		"AWS_REGION=" + s.opts.Region,
		"AWS_DEFAULT_REGION=" + s.opts.Region,
		"AWS_ACCESS_KEY_ID=emulator",
		"AWS_SECRET_ACCESS_KEY=emulator",
	}
	if s.caFile != "" {
		lines = append(lines, "AWS_CA_BUNDLE="+s.caFile)
	}
	return lines
}

// Close stops the server: every subscription ends and every connection closes.
func (s *Server) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	s.mu.Lock()
	for _, sub := range s.subs {
		sub.send(control{kind: ctlEnd})
	}
	s.mu.Unlock()
	// Closing at once, not gracefully: HTTP/2 shutdown would wait a second
	// for clients to notice the GOAWAY, and an emulator has nothing to save.
	err := s.srv.Close()
	s.wg.Wait()
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch state {
	case http.StateNew:
		s.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	}
}

func (s *Server) now() time.Time {
	return time.Now().Add(s.timeOffset)
}

// ServeHTTP dispatches a Kinesis JSON 1.1 request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-amzn-RequestId", newRequestID())
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, errorf(ErrUnknownOperation, "only POST / is served"))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	if !ok || handlers[op] == nil && op != "SubscribeToShard" {
		writeError(w, unknownOperation(target))
		return
	}
	if r.Header.Get("Authorization") == "" {
		writeError(w, errorf(ErrMissingAuthToken, "Missing Authentication Token"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		writeError(w, errorf(ErrSerialization, "read request body: %v", err))
		return
	}
	if len(body) > maxRequestBody {
		writeError(w, errorf(ErrSerialization, "request body over %d bytes", maxRequestBody))
		return
	}
	s.mu.Lock()
	s.protos[r.Proto]++
	s.ops[op]++
	fe := s.takeFault(op)
	if fe == nil {
		fe = s.checkAPILimit(op, streamOf(body))
	}
	s.mu.Unlock()
	if fe != nil {
		writeError(w, fe)
		return
	}
	if op == "SubscribeToShard" && s.opts.WithoutSubscribeToShard != Served {
		writeError(w, notServedAnswer(s.opts.WithoutSubscribeToShard, target))
		return
	}
	if op == "SubscribeToShard" {
		s.subscribeToShard(w, r, body)
		return
	}
	out, aerr := handlers[op](s, body)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	resp, err := json.Marshal(out)
	if err != nil {
		writeError(w, errorf(ErrInternalFailure, "encode response: %v", err))
		return
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
	_, _ = w.Write(resp)
}

type handlerFunc func(s *Server, body []byte) (any, *apiError)

var handlers map[string]handlerFunc

func init() {
	handlers = map[string]handlerFunc{
		"CreateStream":             (*Server).createStream,
		"DeleteStream":             (*Server).deleteStream,
		"DescribeStream":           (*Server).describeStream,
		"DescribeStreamSummary":    (*Server).describeStreamSummary,
		"ListStreams":              (*Server).listStreams,
		"ListShards":               (*Server).listShards,
		"PutRecord":                (*Server).putRecord,
		"PutRecords":               (*Server).putRecords,
		"GetShardIterator":         (*Server).getShardIterator,
		"GetRecords":               (*Server).getRecords,
		"RegisterStreamConsumer":   (*Server).registerStreamConsumer,
		"DescribeStreamConsumer":   (*Server).describeStreamConsumer,
		"ListStreamConsumers":      (*Server).listStreamConsumers,
		"DeregisterStreamConsumer": (*Server).deregisterStreamConsumer,
		"SplitShard":               (*Server).splitShard,
		"MergeShards":              (*Server).mergeShards,
		"UpdateShardCount":         (*Server).updateShardCount,
	}
	for op, h := range settingsHandlers {
		handlers[op] = h
	}
}

// decode parses a JSON request body into v; a malformed body is a
// SerializationException, as on AWS.
func decode(body []byte, v any) *apiError {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(ErrSerialization, "cannot parse request: %v", err)
	}
	return nil
}

// streamOf is the stream a request names, for per-stream limits.
func streamOf(body []byte) string {
	var ref struct {
		StreamName string `json:"StreamName"`
		StreamARN  string `json:"StreamARN"`
	}
	_ = json.Unmarshal(body, &ref)
	if ref.StreamARN != "" {
		return ref.StreamARN
	}
	return ref.StreamName
}

var requestCounter atomic.Uint64

func newRequestID() string {
	n := requestCounter.Add(1)
	return fmt.Sprintf("fanoutd-%08x-%016x", time.Now().Unix()&0xffffffff, n)
}

// ProtocolCounts reports how many requests arrived per HTTP protocol
// ("HTTP/2.0", "HTTP/1.1").
func (s *Server) ProtocolCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.protos)
}

// OpCount reports how many requests for op arrived.
func (s *Server) OpCount(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ops[op]
}
