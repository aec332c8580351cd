package payload

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/fanoutd/fanoutd/internal/reuse"
)

// awsExample is the record of AWS's CloudWatch Logs User Guide, "Validate
// the flow of log events" (docs.aws.amazon.com/AmazonCloudWatch/latest/
// logs/ValidateLogEventFlow.html): what a subscription filter writes to
// Kinesis, once base64-decoded and gunzipped. Its three events are the same
// there; here the second and third differ, so that order is checked.
const awsExample = `{
    "owner": "111111111111",
    "logGroup": "CloudTrail/logs",
    "logStream": "111111111111_CloudTrail/logs_us-east-1",
    "subscriptionFilters": [
        "RecipientStream"
    ],
    "messageType": "DATA_MESSAGE",
    "logEvents": [
        {
            "id": "3195310660696698337880902507980421114328961542429EXAMPLE",
            "timestamp": 1432826855000,
            "message": "{\"eventVersion\":\"1.03\",\"userIdentity\":{\"type\":\"Root\"}"
        },
        {
            "id": "3195310660696698337880902507980421114328961542430EXAMPLE",
            "timestamp": 1432826855001,
            "message": "{\"eventVersion\":\"1.03\",\"userIdentity\":{\"type\":\"IAMUser\"}"
        },
        {
            "id": "3195310660696698337880902507980421114328961542431EXAMPLE",
            "timestamp": 1432826855002,
            "message": "plain text, tab:\t, unicode: \u00e9\ud83d\ude00"
        }
    ]
}`

// awsControl is a CONTROL_MESSAGE as CloudWatch Logs sends one to check
// that a destination is reachable: the documented record shape; its owner,
// empty log group and stream and message text are as commonly seen, none of
// them is relied on.
const awsControl = `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"",` +
	`"subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1432826855000,` +
	`"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}`

var awsExampleEvents = []LogEvent{
	{"3195310660696698337880902507980421114328961542429EXAMPLE", 1432826855000, []byte(`{"eventVersion":"1.03","userIdentity":{"type":"Root"}`)},
	{"3195310660696698337880902507980421114328961542430EXAMPLE", 1432826855001, []byte(`{"eventVersion":"1.03","userIdentity":{"type":"IAMUser"}`)},
	{"3195310660696698337880902507980421114328961542431EXAMPLE", 1432826855002, []byte("plain text, tab:\t, unicode: é😀")},
}

func checkLogs(t *testing.T, got *Logs, want Logs) {
	t.Helper()
	if got.MessageType != want.MessageType || got.Owner != want.Owner || got.LogGroup != want.LogGroup || got.LogStream != want.LogStream {
		t.Fatalf("got %s owner %q group %q stream %q, want %s owner %q group %q stream %q",
			got.MessageType, got.Owner, got.LogGroup, got.LogStream, want.MessageType, want.Owner, want.LogGroup, want.LogStream)
	}
	if !slices.Equal(got.SubscriptionFilters, want.SubscriptionFilters) {
		t.Fatalf("subscription filters %q, want %q", got.SubscriptionFilters, want.SubscriptionFilters)
	}
	if len(got.Events) != len(want.Events) {
		t.Fatalf("%d events, want %d", len(got.Events), len(want.Events))
	}
	for i, e := range got.Events {
		w := want.Events[i]
		if e.ID != w.ID || e.Timestamp != w.Timestamp || !bytes.Equal(e.Message, w.Message) {
			t.Fatalf("event %d: %q %d %q, want %q %d %q", i, e.ID, e.Timestamp, e.Message, w.ID, w.Timestamp, w.Message)
		}
	}
}

var awsExampleLogs = Logs{
	MessageType:         DataMessage,
	Owner:               "111111111111",
	LogGroup:            "CloudTrail/logs",
	LogStream:           "111111111111_CloudTrail/logs_us-east-1",
	SubscriptionFilters: []string{"RecipientStream"},
	Events:              awsExampleEvents,
}

func TestCloudWatchLogsDataMessage(t *testing.T) {
	d := NewDecoder(0)
	got, err := d.CloudWatchLogs(gz(t, []byte(awsExample)))
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, got, awsExampleLogs)
}

func TestCloudWatchLogsControlMessage(t *testing.T) {
	d := NewDecoder(0)
	got, err := d.CloudWatchLogs(gz(t, []byte(awsControl)))
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, got, Logs{
		MessageType:         ControlMessage,
		Owner:               "CloudwatchLogs",
		SubscriptionFilters: []string{},
		Events:              []LogEvent{{"", 1432826855000, []byte("CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.")}},
	})
	// A control message needs nothing but its type.
	got, err = d.CloudWatchLogs(gz(t, []byte(`{"messageType":"CONTROL_MESSAGE"}`)))
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, got, Logs{MessageType: ControlMessage})
}

func TestCloudWatchLogsPlainJSON(t *testing.T) {
	d := NewDecoder(0)
	got, err := d.CloudWatchLogs([]byte(awsExample))
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, got, awsExampleLogs)
}

func TestCloudWatchLogsIgnoresUnknownMembers(t *testing.T) {
	// Account-level subscription filters add policyLevel; subscription
	// filters with emitSystemFields add fields of their own. Whatever is
	// added, and wherever, is ignored when it is JSON.
	record := strings.Replace(awsExample, `"messageType"`,
		`"policyLevel": "ACCOUNT_LEVEL_POLICY", "extra": {"a": [1, 2.5e3, {"b": null}], "c": "\"}]"}, "messageType"`, 1)
	record = strings.Replace(record, `"timestamp": 1432826855001,`,
		`"timestamp": 1432826855001, "@aws.account": "111111111111", "nested": [[[]], {}],`, 1)
	d := NewDecoder(0)
	got, err := d.CloudWatchLogs(gz(t, []byte(record)))
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, got, awsExampleLogs)
}

func TestCloudWatchLogsMembersInAnyOrderAndNull(t *testing.T) {
	record := `{"logEvents":[{"message":"m","timestamp":-5,"id":"1"}],"owner":null,"logStream":"s",` +
		`"subscriptionFilters":null,"logGroup":"g","\u006dessageType":"DATA_MESSAGE"}`
	d := NewDecoder(0)
	got, err := d.CloudWatchLogs(gz(t, []byte(record)))
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, got, Logs{MessageType: DataMessage, LogGroup: "g", LogStream: "s", Events: []LogEvent{{"1", -5, []byte("m")}}})
}

func TestCloudWatchLogsNotCloudWatchLogs(t *testing.T) {
	deep := `{"messageType":"CONTROL_MESSAGE","x":` + strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + `}`
	tooMany := `{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[` +
		strings.Repeat(`{"id":"","timestamp":0,"message":""},`, MaxLogEvents) + `{"id":"","timestamp":0,"message":""}]}`
	for _, tc := range []struct{ name, json string }{
		{"empty", ``},
		{"more events than CloudWatch Logs writes", tooMany},
		{"not JSON", `CWL log line`},
		{"an array", `[` + awsExample + `]`},
		{"a string", `"DATA_MESSAGE"`},
		{"another shape", `{"type":"order.created","id":1}`},
		{"no messageType", strings.Replace(awsExample, `"messageType": "DATA_MESSAGE",`, ``, 1)},
		{"unknown messageType", strings.Replace(awsExample, `"DATA_MESSAGE"`, `"OTHER_MESSAGE"`, 1)},
		{"messageType not a string", strings.Replace(awsExample, `"DATA_MESSAGE"`, `1`, 1)},
		{"no logGroup", strings.Replace(awsExample, `"logGroup"`, `"logGroupName"`, 1)},
		{"no logStream", strings.Replace(awsExample, `"logStream"`, `"stream"`, 1)},
		{"no logEvents", strings.Replace(awsExample, `"logEvents"`, `"events"`, 1)},
		{"logEvents not an array", `{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":{"id":"1"}}`},
		{"logGroup not a string", strings.Replace(awsExample, `"CloudTrail/logs"`, `["CloudTrail/logs"]`, 1)},
		{"owner not a string", strings.Replace(awsExample, `"111111111111",`, `111111111111,`, 1)},
		{"subscriptionFilters not strings", strings.Replace(awsExample, `"RecipientStream"`, `1`, 1)},
		{"event not an object", `{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":["m"]}`},
		{"event without message", strings.Replace(awsExample, `"message": "plain`, `"msg": "plain`, 1)},
		{"event without id", strings.Replace(awsExample, `"id": "3195310660696698337880902507980421114328961542430EXAMPLE",`, ``, 1)},
		{"event without timestamp", strings.Replace(awsExample, `"timestamp": 1432826855001,`, ``, 1)},
		{"message not a string", strings.Replace(awsExample, `"message": "plain text, tab:\t, unicode: \u00e9\ud83d\ude00"`, `"message": {"text": "x"}`, 1)},
		{"message null", strings.Replace(awsExample, `"message": "plain text, tab:\t, unicode: \u00e9\ud83d\ude00"`, `"message": null`, 1)},
		{"timestamp a string", strings.Replace(awsExample, `1432826855001`, `"1432826855001"`, 1)},
		{"timestamp with a fraction", strings.Replace(awsExample, `1432826855001`, `1432826855001.5`, 1)},
		{"timestamp past int64", strings.Replace(awsExample, `1432826855001`, `9223372036854775808`, 1)},
		{"trailing comma", strings.Replace(awsExample, `"RecipientStream"`, `"RecipientStream",`, 1)},
		{"data after the object", awsExample + `{}`},
		{"truncated", awsExample[:len(awsExample)-1]},
		{"control character in a string", strings.Replace(awsExample, `plain text`, "plain\x01text", 1)},
		{"bad escape", strings.Replace(awsExample, `\t`, `\x`, 1)},
		{"unknown member not JSON", strings.Replace(awsExample, `"owner"`, `"x": [1,, 2], "owner"`, 1)},
		{"unknown member nested too deep", deep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(0)
			for _, data := range [][]byte{gz(t, []byte(tc.json)), []byte(tc.json)} {
				got, err := d.CloudWatchLogs(data)
				wantReason(t, err, ReasonNotCloudWatchLogs)
				if got != nil {
					t.Fatal("Logs returned with an error")
				}
			}
		})
	}
}

func TestCloudWatchLogsGzipErrors(t *testing.T) {
	d := NewDecoder(1 << 10)
	_, err := d.CloudWatchLogs(gz(t, []byte(awsExample+strings.Repeat(" ", 1<<10))))
	wantReason(t, err, ReasonTooLarge)
	good := gz(t, []byte(awsExample))
	_, err = d.CloudWatchLogs(good[:len(good)-1])
	wantReason(t, err, ReasonBadGzip)
	if _, err := d.CloudWatchLogs(good); err != nil {
		t.Fatalf("a good record after bad ones: %v", err)
	}
}

// The Decoder reuses its Logs: nothing of one record shows in the next.
func TestCloudWatchLogsNothingCarriesOver(t *testing.T) {
	d := NewDecoder(0)
	if _, err := d.CloudWatchLogs(gz(t, []byte(awsExample))); err != nil {
		t.Fatal(err)
	}
	got, err := d.CloudWatchLogs(gz(t, []byte(`{"messageType":"CONTROL_MESSAGE"}`)))
	if err != nil {
		t.Fatal(err)
	}
	checkLogs(t, got, Logs{MessageType: ControlMessage})
	if _, err := d.CloudWatchLogs(gz(t, []byte(awsExample))); err != nil {
		t.Fatal(err)
	}
	// The same log group and stream again: the same strings, not copies.
	group := d.logs.LogGroup
	got, err = d.CloudWatchLogs(gz(t, []byte(strings.Replace(awsExample, `"111111111111",`, `"222222222222",`, 1))))
	if err != nil {
		t.Fatal(err)
	}
	want := awsExampleLogs
	want.Owner = "222222222222"
	checkLogs(t, got, want)
	if unsafeStringData(got.LogGroup) != unsafeStringData(group) {
		t.Fatal("the same log group was allocated again")
	}
}

func TestReleaseGivesBackOutsizedBuffers(t *testing.T) {
	var big strings.Builder
	big.WriteString(`{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[`)
	for i := range 20000 {
		fmt.Fprintf(&big, `{"id":"%d","timestamp":%d,"message":"line \"%d\" of a large record, padded to pass a mebibyte in all"},`, i, i, i)
	}
	bigRecord := gz(t, []byte(strings.TrimSuffix(big.String(), ",")+`]}`))
	small := gz(t, []byte(awsExample))

	d := NewDecoder(0)
	logs, err := d.CloudWatchLogs(bigRecord)
	if err != nil || len(logs.Events) != 20000 {
		t.Fatalf("%v", err)
	}
	d.Release()
	if cap(d.doc) <= reuse.KeepBytes || cap(d.msgs) <= reuse.KeepBytes {
		t.Fatalf("doc %d and messages %d bytes: the test needs both over %d", cap(d.doc), cap(d.msgs), reuse.KeepBytes)
	}
	if d.logs.Events != nil {
		t.Fatal("Release kept the events")
	}
	for range reuse.ShrinkAfter {
		if _, err := d.CloudWatchLogs(small); err != nil {
			t.Fatal(err)
		}
		d.Release()
	}
	if c := cap(d.doc) + cap(d.msgs); c > 4<<10 {
		t.Fatalf("%d bytes of buffers kept after %d small records", c, reuse.ShrinkAfter)
	}
	if logs, err := d.CloudWatchLogs(small); err != nil {
		t.Fatal(err)
	} else {
		checkLogs(t, logs, awsExampleLogs)
	}
}

func TestUnescape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`plain`, "plain"},
		{`\"\\\/\b\f\n\r\t`, "\"\\/\b\f\n\r\t"},
		{`\u00e9\u00E9`, "éé"},
		{`\ud83d\ude00`, "😀"},
		{`\ud83d`, "\ufffd"},
		{`\ud83dx`, "\ufffdx"},
		{`\ud83d\u0041`, "\ufffdA"},
		{`\ude00\ud83d\ude00`, "\ufffd😀"},
		{"raw \xff bytes", "raw \xff bytes"},
	} {
		if got := string(unescape(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func unsafeStringData(s string) *byte { return unsafe.StringData(s) }
