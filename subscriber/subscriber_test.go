package subscriber

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/relay"
)

var (
	logArrival = time.Date(2026, 12, 7, 8, 0, 1, 500e6, time.UTC)
	logged     = time.Date(2026, 12, 7, 8, 0, 0, 250e6, time.UTC)
)

// logEventMsg is a message as the relay publishes a CloudWatch Logs event
// unpacked from a record.
func logEventMsg() *nats.Msg {
	m := nats.NewMsg("logs.orders")
	m.Header, _ = relay.RecordHeader(&record.Batch{Stream: "logs", ShardID: "shardId-000000000000"}, &record.Record{
		PartitionKey: "6a0f1c8e", SequenceNumber: "49001", ArrivalTime: logArrival,
		Unpacked: &record.Unpacked{
			Index: 2, LogGroup: "/aws/lambda/orders", LogStream: "2026/12/07/[$LATEST]café",
			Owner: "123456789012", EventID: "31953106606966983378809025079804211143289615424298221570",
			Timestamp: logged.UnixMilli(), SubscriptionFilters: "to-kinesis",
		},
	})
	m.Data = []byte(`{"level":"error","msg":"payment failed"}`)
	return m
}

func TestFormatShowsCloudWatchLogsEvent(t *testing.T) {
	out := Format(logEventMsg(), 1, logArrival.Add(20*time.Millisecond))
	for _, want := range []string{
		"#1 logs.orders  lag 20ms  logged 1.27s ago\n",
		"  Cloudwatch-Log-Group: /aws/lambda/orders\n",
		"  Cloudwatch-Log-Stream: 2026/12/07/[$LATEST]café\n", // percent-decoded
		"  Cloudwatch-Owner: 123456789012\n",
		"  Cloudwatch-Event-Id: 31953106606966983378809025079804211143289615424298221570\n",
		"  Cloudwatch-Event-Timestamp: 2026-12-07T08:00:00.250Z\n",
		"  Cloudwatch-Subscription-Filters: to-kinesis\n",
		"  Nats-Msg-Id: logs:shardId-000000000000:49001:0:2\n",
		`  data (40 bytes): {"level":"error","msg":"payment failed"}` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The CloudWatch Logs headers follow the Kinesis ones, before the ID.
	last := -1
	for _, h := range []string{"Kinesis-Arrival-Time", "Cloudwatch-Log-Group", "Cloudwatch-Log-Stream", "Cloudwatch-Owner",
		"Cloudwatch-Event-Id", "Cloudwatch-Event-Timestamp", "Cloudwatch-Subscription-Filters", "Nats-Msg-Id", "data"} {
		i := strings.Index(out, "  "+h)
		if i < last {
			t.Errorf("%s out of order", h)
		}
		last = i
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func TestFormatPlainRecordHasNoLoggedLag(t *testing.T) {
	m := nats.NewMsg("kinesis.orders")
	m.Header, _ = relay.RecordHeader(&record.Batch{Stream: "orders", ShardID: "shardId-000000000000"},
		&record.Record{PartitionKey: "k", SequenceNumber: "49001", ArrivalTime: logArrival})
	out := Format(m, 1, logArrival.Add(time.Second))
	if first := out[:strings.IndexByte(out, '\n')]; first != "#1 kinesis.orders  lag 1s" {
		t.Errorf("first line %q", first)
	}
	if strings.Contains(out, "Cloudwatch-") {
		t.Errorf("plain record shows CloudWatch headers:\n%s", out)
	}
}

func TestJSONCloudWatchLogsEvent(t *testing.T) {
	b, err := json.Marshal(JSON(logEventMsg()))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"log_group": "/aws/lambda/orders", "log_stream": "2026/12/07/[$LATEST]café", "owner": "123456789012",
		"event_id": "31953106606966983378809025079804211143289615424298221570", "event_timestamp": "2026-12-07T08:00:00.250Z",
		"arrival_time": "2026-12-07T08:00:01.500Z", "msg_id": "logs:shardId-000000000000:49001:0:2",
		"data": `{"level":"error","msg":"payment failed"}`,
	} {
		if got[k] != want {
			t.Errorf("%s = %#v, want %#v", k, got[k], want)
		}
	}
	if h := got["headers"].(map[string]any)[relay.HeaderLogStream].([]any)[0]; h != "2026/12/07/[$LATEST]caf%C3%A9" {
		t.Errorf("raw header %v, want it as sent", h)
	}

	// A plain record's JSON has none of these fields.
	m := nats.NewMsg("kinesis.orders")
	m.Header, _ = relay.RecordHeader(&record.Batch{Stream: "orders"}, &record.Record{SequenceNumber: "1"})
	b, _ = json.Marshal(JSON(m))
	for _, k := range []string{"log_group", "log_stream", "owner", "event_id", "event_timestamp"} {
		if strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("plain record has %s: %s", k, b)
		}
	}
}
