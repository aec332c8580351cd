package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawCall sends a request as a hand-made client would, and returns the status
// and the AWS error type.
func rawCall(t testing.TB, s *Server, target string, body []byte, auth bool) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	req.Header.Set("Content-Type", contentTypeJSON)
	if auth {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/kinesis/aws4_request")
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		return res.StatusCode, ""
	}
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Type == "" || e.Message == "" {
		t.Fatalf("error response %d is not AWS-shaped: %q", res.StatusCode, b)
	}
	if res.Header.Get("X-Amzn-ErrorType") != e.Type {
		t.Fatalf("header error type %q != body %q", res.Header.Get("X-Amzn-ErrorType"), e.Type)
	}
	return res.StatusCode, e.Type
}

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	opts := fast()
	opts.SubscriptionLifetime = 50 * time.Millisecond
	s := startEmulator(t, opts)
	if err := s.CreateStream("s", 1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target, body string
		noAuth             bool
		status             int
		typ                string
	}{
		{"no target", "", `{}`, false, 400, ErrUnknownOperation},
		{"unknown op", "Kinesis_20131202.Frobnicate", `{}`, false, 400, ErrUnknownOperation},
		{"other service", "DynamoDB_20120810.ListTables", `{}`, false, 400, ErrUnknownOperation},
		{"no auth", "Kinesis_20131202.ListStreams", `{}`, true, 400, ErrMissingAuthToken},
		{"bad json", "Kinesis_20131202.PutRecord", `{"StreamName":`, false, 400, ErrSerialization},
		{"wrong type", "Kinesis_20131202.PutRecord", `{"StreamName":5}`, false, 400, ErrSerialization},
		{"bad base64", "Kinesis_20131202.PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"!!"}`, false, 400, ErrSerialization},
		{"no stream", "Kinesis_20131202.PutRecord", `{"PartitionKey":"k","Data":"eA=="}`, false, 400, ErrInvalidArgument},
		{"empty key", "Kinesis_20131202.PutRecord", `{"StreamName":"s","PartitionKey":"","Data":"eA=="}`, false, 400, ErrInvalidArgument},
		{"bad arn", "Kinesis_20131202.DescribeStreamSummary", `{"StreamARN":"nope"}`, false, 400, ErrValidation},
		{"subscribe empty", "Kinesis_20131202.SubscribeToShard", `{}`, false, 400, ErrInvalidArgument},
		{"subscribe bad arn", "Kinesis_20131202.SubscribeToShard", `{"ConsumerARN":"x","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}}`, false, 400, ErrValidation},
		{"bad iterator type", "Kinesis_20131202.GetShardIterator", `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"EARLIEST"}`, false, 400, ErrValidation},
		{"null body", "Kinesis_20131202.ListShards", `null`, false, 400, ErrInvalidArgument},
		{"array body", "Kinesis_20131202.ListShards", `[]`, false, 400, ErrSerialization},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, typ := rawCall(t, s, tc.target, []byte(tc.body), !tc.noAuth)
			if status != tc.status || typ != tc.typ {
				t.Fatalf("got %d %s, want %d %s", status, typ, tc.status, tc.typ)
			}
		})
	}
	// GET is not served.
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != 400 {
		t.Fatalf("GET: %d", w.Code)
	}
	// An oversized body is refused, not buffered without end.
	big := strings.NewReader(`{"StreamName":"s","PartitionKey":"k","Data":"` + strings.Repeat("A", maxRequestBody) + `"}`)
	req := httptest.NewRequest(http.MethodPost, "/", big)
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecord")
	req.Header.Set("Authorization", "x")
	w = httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != 400 {
		t.Fatalf("oversized: %d", w.Code)
	}
}

// FuzzRequests sends arbitrary bodies to every operation: the answer is always
// a well-formed success or AWS error, never a panic or a hang.
func FuzzRequests(f *testing.F) {
	s, err := New(Options{PlainHTTP: true, SubscriptionLifetime: 20 * time.Millisecond, ConsumerActivationDelay: -1,
		SubscribeRate: -1, TakeoverGrace: -1, EmptyEventInterval: 5 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateStream("s", 2); err != nil {
		f.Fatal(err)
	}
	arn, err := s.RegisterConsumer("s", "c")
	if err != nil {
		f.Fatal(err)
	}
	var ops []string
	for op := range handlers {
		ops = append(ops, op)
	}
	ops = append(ops, "SubscribeToShard")
	seeds := []string{
		`{}`, `{"StreamName":"s"}`, `{"StreamName":"s","ShardCount":3}`,
		`{"StreamName":"s","PartitionKey":"k","Data":"eA=="}`,
		`{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"eA=="}]}`,
		`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`,
		`{"ConsumerARN":"` + arn + `","ShardId":"shardId-000000000000","StartingPosition":{"Type":"TRIM_HORIZON"}}`,
		`{"ConsumerARN":"` + arn + `","ShardId":"shardId-000000000001","StartingPosition":{"Type":"AT_SEQUENCE_NUMBER","SequenceNumber":"49000000000000000000000000000000000000000000000000000001"}}`,
		`{"StreamName":"s","ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":1.7e9}}`,
		`{"StreamName":"s","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"1"}`,
		`{"StreamName":"s","TargetShardCount":4,"ScalingType":"UNIFORM_SCALING"}`,
		`{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","ConsumerName":"d"}`,
		`{"NextToken":"eyJzIjoicyIsImEiOiIifQ"}`, `null`, `[`, "\x00",
	}
	for i, seed := range seeds {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		op := ops[int(opIndex)%len(ops)]
		if op == "DeleteStream" || op == "DeregisterStreamConsumer" {
			op = "DescribeStream" // keep the fixture alive
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			status, _ := rawCall(t, s, targetPrefix+op, body, true)
			if status != 200 && status != 400 && status != 500 && status != 503 {
				t.Errorf("%s: status %d", op, status)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s hung on %q", op, body)
		}
	})
}
