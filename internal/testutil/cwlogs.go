package testutil

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"testing"
)

// LogEvent is one log event of a CloudWatch Logs subscription record.
type LogEvent struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// LogsRecord is a CloudWatch Logs subscription record in the shape AWS
// documents ("Subscription filters with Amazon Kinesis Data Streams",
// CloudWatch Logs User Guide): what a subscription filter writes into a
// Kinesis stream, before compression.
type LogsRecord struct {
	Owner               string     `json:"owner"`
	LogGroup            string     `json:"logGroup"`
	LogStream           string     `json:"logStream"`
	SubscriptionFilters []string   `json:"subscriptionFilters"`
	MessageType         string     `json:"messageType"`
	LogEvents           []LogEvent `json:"logEvents"`
}

// ControlRecord is the CONTROL_MESSAGE CloudWatch Logs writes to check that
// it can reach the stream (the documented example).
var ControlRecord = LogsRecord{
	Owner:               "CloudwatchLogs",
	LogGroup:            "",
	LogStream:           "",
	SubscriptionFilters: []string{},
	MessageType:         "CONTROL_MESSAGE",
	LogEvents: []LogEvent{{ID: "", Timestamp: 1432826855000,
		Message: "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}},
}

// Gzip is r as Kinesis carries it: its JSON, gzip-compressed.
func (r LogsRecord) Gzip(t testing.TB) []byte {
	t.Helper()
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return GzipBytes(t, raw)
}

// GzipBytes compresses b with gzip.
func GzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
