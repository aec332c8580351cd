package testutil

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
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
func (r LogsRecord) Gzip() []byte {
	raw, err := json.Marshal(r)
	if err != nil {
		panic(err) // strings, numbers and lists: always encodes
	}
	return GzipBytes(raw)
}

// GzipBytes compresses b with gzip.
func GzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b) // into a bytes.Buffer: no error
	zw.Close()
	return buf.Bytes()
}
