// Package efostream reads a SubscribeToShard event stream: fanoutd's own
// reader of the HTTP/2 response and decoder of its events, or the SDK's
// event-stream reader. It knows nothing of shards' lineage or checkpoints.
package efostream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/reuse"
	"github.com/fanoutd/fanoutd/record"
)

var subscribeOp = smithy.NewOperationSchema(schemas.SubscribeToShard, schemas.SubscribeToShardInput, schemas.SubscribeToShardOutput)

var signer = v4.NewSigner()

// maxErrorBody bounds the body of an HTTP error read into memory.
const maxErrorBody = 64 << 10

// Subscription is one SubscribeToShard response body, read by fanoutd. It
// uses the SDK's pieces for everything but the hot path: the SDK's
// serializer builds the request, its endpoint resolver picks the URL, its
// SigV4 signer signs it with the client's credentials, and its awsJson 1.1
// codec turns HTTP errors, the initial-response frame, exception and error
// frames, unknown events and any frame or JSON the fast path does not
// recognise into exactly what the SDK's own reader returns. Only well-formed
// SubscribeToShardEvent frames take the fast path (frame.go, decode.go).
type Subscription struct {
	body     io.ReadCloser
	r        *bufio.Reader
	cancel   context.CancelFunc
	once     sync.Once
	codec    *awsjson.Protocol // the SDK's codec, for everything but the fast path
	frame    []byte            // the current frame, reused
	frameUse reuse.Use
	dec      eventDecoder
	log      zerolog.Logger // the shard's logger, for frames that end the stream
}

// Subscribe sends SubscribeToShard with the client options o and reads
// its initial response. log receives what ends the stream without an error.
func Subscribe(ctx context.Context, o kinesis.Options, in *kinesis.SubscribeToShardInput, log zerolog.Logger) (*Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := sendSubscribe(ctx, o, in)
	if err != nil {
		cancel()
		return nil, err
	}
	s.cancel = cancel
	s.log = log
	return s, nil
}

func sendSubscribe(ctx context.Context, o kinesis.Options, in *kinesis.SubscribeToShardInput) (*Subscription, error) {
	if o.EndpointResolverV2 == nil {
		o.EndpointResolverV2 = kinesis.NewDefaultEndpointResolverV2()
	}
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, kinesis.EndpointParameters{
		Region:        aws.String(o.Region),
		UseDualStack:  aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		UseFIPS:       aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		Endpoint:      o.BaseEndpoint,
		ConsumerARN:   in.ConsumerARN,
		OperationType: aws.String("data"),
	})
	if err != nil {
		return nil, fmt.Errorf("resolve SubscribeToShard endpoint: %w", err)
	}
	codec := awsjson.New11(schemas.Kinesis_20131202)
	sreq := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	u := ep.URI
	sreq.URL = &u
	if err := codec.SerializeRequest(ctx, subscribeOp, in, sreq); err != nil {
		return nil, fmt.Errorf("serialize SubscribeToShard: %w", err)
	}
	var body []byte
	if st := sreq.GetStream(); st != nil {
		if body, err = io.ReadAll(st); err != nil {
			return nil, fmt.Errorf("serialize SubscribeToShard: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sreq.URL.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build SubscribeToShard request: %w", err)
	}
	for k, v := range sreq.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/vnd.amazon.eventstream")
	if o.Credentials == nil {
		return nil, fmt.Errorf("SubscribeToShard: no AWS credentials")
	}
	creds, err := o.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieve AWS credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "kinesis", o.Region, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("sign SubscribeToShard: %w", err)
	}
	if o.HTTPClient == nil {
		return nil, fmt.Errorf("SubscribeToShard: no HTTP client")
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("operation error Kinesis: SubscribeToShard, %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		defer resp.Body.Close()
		resp.Body = io.NopCloser(io.LimitReader(resp.Body, maxErrorBody))
		return nil, httpError(codec, resp)
	}
	s := &Subscription{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 16<<10), codec: codec}
	if err := s.initialResponse(); err != nil {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("operation error Kinesis: SubscribeToShard, deserialize initial response: %w", err)
	}
	return s, nil
}

// httpError is the SDK's error for an HTTP error response, with its
// status code (HTTPStatusCode).
func httpError(codec *awsjson.Protocol, resp *http.Response) error {
	err := codec.DeserializeResponse(context.Background(), subscribeOp, kinesis.TypeRegistry, &smithyhttp.Response{Response: resp}, &kinesis.SubscribeToShardOutput{})
	if err == nil {
		err = fmt.Errorf("unexpected status %s", resp.Status)
	}
	return fmt.Errorf("operation error Kinesis: SubscribeToShard, %w", &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: err},
		RequestID:     resp.Header.Get("X-Amzn-Requestid"),
	})
}

// initialResponse reads the first frame as the SDK does.
func (s *Subscription) initialResponse() error {
	frame, err := s.readFrame()
	if err == errFrameLimit {
		return fmt.Errorf("decode initial response: %w", err)
	}
	return s.codec.DeserializeInitialResponse(schemas.SubscribeToShardOutput, frameReader(frame, err), &kinesis.SubscribeToShardOutput{})
}

// frameReader gives the SDK's decoder what it would have read from the
// stream: the bytes of frame, then readErr (EOF when nil).
func frameReader(frame []byte, readErr error) io.Reader {
	var r io.Reader = bytes.NewReader(frame)
	if readErr != nil && readErr != io.EOF && readErr != io.ErrUnexpectedEOF {
		r = io.MultiReader(r, errReader{readErr})
	}
	return r
}

// Close ends the stream and unblocks Next; it may be called from another
// goroutine, more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.cancel()
		_ = s.body.Close()
	})
}

// Next blocks until the next SubscribeToShardEvent, appends its Kinesis
// records to dst (KPL aggregates whole) and returns them; their Data alias
// buffers that the next call reuses. ok is false when the stream ended:
// cleanly when err is nil. Unknown events are skipped.
func (s *Subscription) Next(dst []record.Record) (Event, []record.Record, bool, error) {
	for {
		frame, err := s.readFrame()
		if err != nil {
			if len(frame) == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return Event{}, dst, false, nil
			}
			if len(frame) == 0 {
				return Event{}, dst, false, fmt.Errorf("decode event: %w", err)
			}
			// A stream cut inside a frame, or a frame the fast path does not
			// take: what the SDK makes of the same bytes.
			return s.slow(frame, dst, err)
		}
		if f, ok := parseFrame(frame); ok && f.messageType == "event" && f.eventType == "SubscribeToShardEvent" {
			ev, recs, ok, err := s.dec.decode(dst, f.payload)
			if err != nil || ok {
				return ev, recs, ok, err
			}
		}
		ev, recs, ok, err := s.slow(frame, dst, nil)
		if err == errSDKEnd {
			// A corrupt frame (its checksums hold, its headers do not):
			// the SDK reads it as the end of the stream, and so does
			// fanoutd. Nothing is skipped: the next subscription starts
			// from the checkpoint. Said, as the end is otherwise clean.
			s.log.Warn().Int("frame_bytes", len(frame)).
				Str("hint", "its headers overrun their block; the SDK ends the stream there too, and the next subscription starts from the checkpoint").
				Msg("corrupt event-stream frame; subscription ended")
			return Event{}, dst, false, nil
		}
		if ok || err != nil {
			return ev, recs, ok, err
		}
		// an unknown event: skip it
	}
}

// slow decodes frame with the SDK's codec. readErr is the error that cut
// the frame short (nil for a whole frame): the SDK sees the same bytes and
// then that error.
func (s *Subscription) slow(frame []byte, dst []record.Record, readErr error) (_ Event, _ []record.Record, _ bool, err error) {
	defer func() {
		// smithy-go panics on some values (a NaN timestamp): an error here,
		// not the end of the daemon.
		if p := recover(); p != nil {
			err = fmt.Errorf("decode event: SDK decoder panicked: %v", p)
		}
	}()
	var ev smithy.Deserializable
	ev, err = s.codec.DeserializeEventMessage(schemas.SubscribeToShardEventStream, kinesis.TypeRegistry, frameReader(frame, readErr))
	if err != nil {
		if err == io.EOF {
			// The SDK ends the stream here, for a cut frame and also for a
			// whole frame whose headers claim more bytes than the header
			// block holds (its header decoder reads an io.EOF there).
			if readErr == nil {
				return Event{}, dst, false, errSDKEnd
			}
			return Event{}, dst, false, nil
		}
		return Event{}, dst, false, err
	}
	if e, ok := ev.(*types.SubscribeToShardEvent); ok {
		return eventOf(e), Records(dst, e.Records), true, nil
	}
	// An unknown event (skipped by next), or a cut frame that decoded
	// (impossible: the checksum covers the whole frame): no event.
	return Event{}, dst, false, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Event-stream frame limits, as the SDK's decoder checks them.
const (
	preludeLen     = 12
	maxPayloadLen  = 16 << 20
	maxHeadersLen  = 128 << 10
	minMessageLen  = preludeLen + 4
	maxMessageLen  = minMessageLen + maxHeadersLen + maxPayloadLen
	frameCRCLength = 4
)

// readFrame reads one whole frame into s.frame. On an error it returns what
// it read of the frame so far with the error; a frame whose prelude is
// invalid comes back alone, without error, for the SDK to reject.
func (s *Subscription) readFrame() ([]byte, error) {
	buf := s.frame[:0]
	if cap(buf) < preludeLen {
		buf = make([]byte, 0, 4096)
	}
	buf = buf[:preludeLen]
	n, err := io.ReadFull(s.r, buf)
	if err != nil {
		s.frame = buf
		return buf[:n], err
	}
	total := binary.BigEndian.Uint32(buf[0:4])
	headers := binary.BigEndian.Uint32(buf[4:8])
	if total == 0 || crc32.ChecksumIEEE(buf[:8]) != binary.BigEndian.Uint32(buf[8:12]) {
		// The SDK's decoder rejects this prelude by itself.
		s.frame = buf
		return buf, nil
	}
	if total > maxMessageLen || headers > maxHeadersLen || uint64(headers)+minMessageLen > uint64(total) {
		s.frame = buf
		return nil, errFrameLimit
	}
	if cap(buf) < int(total) || reuse.Fit(&s.frameUse, buf, int(total)) == nil {
		nb := make([]byte, total, bufSize(int(total)))
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:total]
	n, err = io.ReadFull(s.r, buf[preludeLen:])
	s.frame = buf
	if err != nil {
		return buf[:preludeLen+n], err
	}
	return buf, nil
}

// bufSize is the capacity to give a buffer that must hold n bytes: n plus
// an eighth, in steps of 64 KiB, so that a subscription's buffers grow a few
// times, not at every slightly larger event, and hold little more than the
// largest event (a power of two would waste up to half).
func bufSize(n int) int {
	const step = 64 << 10
	size := n + n/8
	return (size + step - 1) / step * step
}
