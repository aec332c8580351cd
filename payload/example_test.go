package payload_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"

	"github.com/fanoutd/fanoutd/payload"
)

func ExampleDecoder_CloudWatchLogs() {
	var record bytes.Buffer
	w := gzip.NewWriter(&record)
	fmt.Fprint(w, `{"messageType":"DATA_MESSAGE","owner":"111111111111","logGroup":"app","logStream":"i-1",`+
		`"subscriptionFilters":["toKinesis"],"logEvents":[`+
		`{"id":"1","timestamp":1432826855000,"message":"{\"level\":\"info\"}"},`+
		`{"id":"2","timestamp":1432826855001,"message":"plain line"}]}`)
	w.Close()

	d := payload.NewDecoder(0)
	defer d.Release() // after each batch
	for _, data := range [][]byte{record.Bytes(), []byte("not a record")} {
		logs, err := d.CloudWatchLogs(data)
		var perr *payload.Error
		if errors.As(err, &perr) {
			fmt.Println("dead letter:", perr.Reason)
			continue
		}
		if logs.MessageType != payload.DataMessage {
			continue
		}
		for _, e := range logs.Events {
			fmt.Println(logs.LogGroup, logs.LogStream, e.ID, e.Timestamp, string(e.Message))
		}
	}
	// Output:
	// app i-1 1 1432826855000 {"level":"info"}
	// app i-1 2 1432826855001 plain line
	// dead letter: not_cloudwatch_logs
}
