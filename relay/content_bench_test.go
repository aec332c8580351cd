package relay

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/pattern"
	"github.com/fanoutd/fanoutd/payload"
	"github.com/fanoutd/fanoutd/record"
)

// contentRecord is a JSON record of about 1 KiB, event i.
func contentRecord(i int) []byte {
	return fmt.Appendf(nil, `{"type":%q,"customer":{"id":"c-%05d","tier":"gold"},"amount":%d.5,"items":[%s{"sku":"last"}],"note":%q}`,
		[]string{"order.created", "order.shipped", "order.cancelled"}[i%3], i%100, i%500,
		strings.Repeat(`{"sku":"SKU-000001","qty":1,"price":12.5},`, 20), strings.Repeat("x", 60))
}

// BenchmarkContent measures what reading the payload adds per record, in
// core mode (one op is a batch of 100 records of about 1 KiB of JSON): raw
// is a route that reads nothing; the others render subjects from the data,
// filter, or decompress first. ns/record minus raw's is the added CPU.
func BenchmarkContent(b *testing.B) {
	const n = 100
	filter := []string{
		`{"data": {"type": ["order.refunded"], "amount": [{"numeric": [">", 100]}]}}`,
		`{"data": {"type": [{"prefix": "order."}]}, "partitionKey": [{"anything-but": ["blocked"]}]}`,
	}
	for _, bc := range []struct {
		name, subject string
		filter        []string
		kind          payload.Kind
		gzip          bool
	}{
		{"raw", "kinesis.{stream}.{partition_key}", nil, payload.Raw, false},
		{"data-subject", "orders.{data.type}.{data.customer.id}", nil, payload.Raw, false},
		{"filter", "kinesis.{stream}.{partition_key}", filter, payload.Raw, false},
		{"data-subject+filter", "orders.{data.type}.{data.customer.id}", filter, payload.Raw, false},
		{"gzip+data-subject+filter", "orders.{data.type}.{data.customer.id}", filter, payload.Gzip, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := startServer(b, testServerConfig{})
			tmpl, err := ParseSubjectTemplate(bc.subject)
			if err != nil {
				b.Fatal(err)
			}
			f, errs := pattern.ParseFilter(bc.filter)
			if len(errs) > 0 {
				b.Fatal(errs)
			}
			p, err := NewPublisher(s.connect(b), map[string]*Route{testStream: {Subject: tmpl, Filter: f, Payload: bc.kind}}, Options{Log: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			batch := &record.Batch{Stream: testStream, ShardID: "shardId-000000000000"}
			size := 0
			for i := range n {
				data := contentRecord(i)
				size += len(data)
				if bc.gzip {
					data = testutil.GzipBytes(data)
				}
				batch.Records = append(batch.Records, record.Record{Data: data, PartitionKey: fmt.Sprintf("user-%d", i%10), SequenceNumber: fmt.Sprint(i)})
			}
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Handle(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
