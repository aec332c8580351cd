package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/record"
)

// Every way a record can go, by policy and by what NATS refuses: plan
// builds the message and reroute makes the one decision.
func TestPlanRoutes(t *testing.T) {
	t.Parallel()
	const maxPayload = 4096
	s := startServer(t, testServerConfig{JetStream: true, MaxPayload: maxPayload})
	nc := s.connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.CreateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: "PLAN_ROUTES"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", MaxSubjectBytes)
	for _, tc := range []struct {
		policy    OversizePolicy
		key       string
		data      int
		want      route
		wantSubj  string // the subject of the message plan hands over
		wantError error
	}{
		{OversizeDeadLetter, "k", 10, asRecord, "kinesis.orders.k", nil},
		{OversizeDeadLetter, "k", maxPayload, asDeadLetter, "fanoutd.deadletter.orders", nil},
		{OversizeDeadLetter, long, 10, asDeadLetter, "fanoutd.deadletter.orders", nil},
		{OversizeFail, "k", maxPayload, asRecord, "", record.ErrStop},
		{OversizeFail, long, 10, asRecord, "", record.ErrStop},
		{OversizeObjectStore, "k", maxPayload, asObject, "kinesis.orders.k", nil},
		// The Object Store can't shorten a subject.
		{OversizeObjectStore, long, 10, asDeadLetter, "fanoutd.deadletter.orders", nil},
	} {
		t.Run(fmt.Sprintf("%s/key=%d/data=%d", tc.policy, len(tc.key), tc.data), func(t *testing.T) {
			p := newTestPublisher(t, nc, Options{Oversize: tc.policy, Objects: obs, ObjectBucket: "PLAN_ROUTES"})
			b := testBatch(1)
			rec := &b.Records[0]
			rec.PartitionKey, rec.Data = tc.key, make([]byte, tc.data)
			sc := &scratch{tmpl: testTemplates(t)[testStream], maxPayload: nc.MaxPayload()}
			var m nats.Msg
			for _, rh := range []*recordHeader{nil, newRecordHeader()} {
				r, err := p.plan(context.Background(), sc, b, 0, &m, rh)
				if !errors.Is(err, tc.wantError) || r != tc.want {
					t.Fatalf("plan (reused header %t) = %s, %v; want %s, %v", rh != nil, r, err, tc.want, tc.wantError)
				}
				if err == nil && m.Subject != tc.wantSubj {
					t.Fatalf("plan (reused header %t): subject %q, want %q", rh != nil, m.Subject, tc.wantSubj)
				}
				if r != asRecord && len(m.Data) != 0 {
					t.Fatalf("plan: %s with %d bytes of data, want none", r, len(m.Data))
				}
			}
		})
	}
}

// A PubAck error that refuses a message for its size reroutes it; no
// other does.
func TestPubAckRefusal(t *testing.T) {
	t.Parallel()
	s := startServer(t, testServerConfig{})
	p := newTestPublisher(t, s.connect(t), Options{})
	m := &nats.Msg{Subject: "kinesis.orders.k", Data: make([]byte, 100)}
	for _, tc := range []struct {
		err  error
		want refusalCause
	}{
		{fmt.Errorf("publish: %w", nats.ErrMaxPayload), tooLarge},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum, Description: "message size exceeds maximum allowed"}, tooLarge},
		{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, notRefused},
		{jetstream.ErrNoStreamResponse, notRefused},
		{context.DeadlineExceeded, notRefused},
	} {
		if got := p.pubAckRefusal(tc.err, m); got.cause != tc.want || (got.cause == tooLarge) != (got.reason != "") {
			t.Errorf("pubAckRefusal(%v) = %+v, want cause %d with a reason", tc.err, got, tc.want)
		}
	}
}
