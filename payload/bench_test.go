package payload

import (
	"fmt"
	"strings"
	"testing"
)

// benchRecord is a DATA_MESSAGE of n events in the documented shape, each
// message a CloudTrail-like JSON event (escaped quotes) or, every other
// one, a plain text line.
func benchRecord(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"messageType":"DATA_MESSAGE","owner":"111111111111","logGroup":"CloudTrail/logs",` +
		`"logStream":"111111111111_CloudTrail/logs_us-east-1","subscriptionFilters":["RecipientStream"],"logEvents":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		msg := fmt.Sprintf(`{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":\"IAMUser\",\"arn\":\"arn:aws:iam::111111111111:user/u%d\"},\"eventName\":\"PutObject\",\"requestID\":\"%08d\"}`, i, i)
		if i%2 == 1 {
			msg = fmt.Sprintf(`2026-12-07T07:00:%02d.000Z INFO request %d served in 12 ms by worker-3 for client 10.0.0.%d`, i%60, i, i%256)
		}
		fmt.Fprintf(&b, `{"id":"3195310660696698337880902507980421114328961542%04dEXAMPLE","timestamp":%d,"message":"%s"}`, i, 1765090800000+int64(i), msg)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func BenchmarkCloudWatchLogs(b *testing.B) {
	plain := benchRecord(100)
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"gzip", gz(b, plain)},
		{"plain", plain},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDecoder(0)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				logs, err := d.CloudWatchLogs(bc.data)
				if err != nil || len(logs.Events) != 100 {
					b.Fatal(err)
				}
				d.Release()
			}
		})
	}
}

func BenchmarkGunzip(b *testing.B) {
	plain := benchRecord(100)
	data := gz(b, plain)
	d := NewDecoder(0)
	var dst []byte
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = d.Gunzip(dst[:0], data); err != nil {
			b.Fatal(err)
		}
	}
}
