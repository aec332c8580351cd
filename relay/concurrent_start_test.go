package relay

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/coordination"
	"github.com/fanoutd/fanoutd/internal/testutil"
)

// Instances of a group start together: each finds the stream, the dead-letter
// stream, the key-value bucket or the Object Store bucket missing and
// creates it, and every one of
// them must start, whichever create the server took first. On a cluster,
// the meta leader refuses a create while an identical one is in flight
// ("stream name already in use"), which a single server never does.
func TestEnsureWhileOthersCreateTheSame(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a 3-node JetStream cluster")
	}
	c := testutil.StartCluster(t, 3)
	urls := c.URLs()
	const instances = 6
	conns := make([]*nats.Conn, instances)
	for i := range conns {
		nc, err := nats.Connect(urls[i%len(urls)])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		conns[i] = nc
	}
	log := zerolog.Nop()
	for round := range 1 {
		ensures := map[string]func(ctx context.Context, i int, nc *nats.Conn) error{
			"stream": func(ctx context.Context, i int, nc *nats.Conn) error {
				return EnsureStream(ctx, nc, StreamSpec{Name: fmt.Sprintf("REC%d", round), Subjects: []string{fmt.Sprintf("rec%d.>", round)}, Replicas: 3}, log)
			},
			"dead-letter stream": func(ctx context.Context, i int, nc *nats.Conn) error {
				return EnsureDeadLetterStream(ctx, nc, DeadLetterStreamSpec{Name: fmt.Sprintf("DL%d", round), Replicas: 3}, []string{fmt.Sprintf("dl%d.>", round)}, log)
			},
			"key-value bucket and joining the group": func(ctx context.Context, i int, nc *nats.Conn) error {
				js, err := jetstream.New(nc)
				if err != nil {
					return err
				}
				kv, err := coordination.CreateBucket(ctx, js, coordination.BucketConfig{Name: fmt.Sprintf("kv%d", round), Replicas: 3})
				if err != nil {
					return err
				}
				// At once into the bucket that may have just been created.
				g, err := coordination.Join(ctx, kv, coordination.Options{Instance: fmt.Sprintf("instance-%d", i), Log: log})
				if err != nil {
					return err
				}
				// Leaving is not what this test is about: a deadline of its own.
				cctx, cancel := context.WithTimeout(context.Background(), testutil.ClusterBound)
				defer cancel()
				return g.Close(cctx)
			},
			"object bucket": func(ctx context.Context, i int, nc *nats.Conn) error {
				_, err := EnsureObjectBucket(ctx, nc, ObjectBucketSpec{Bucket: fmt.Sprintf("OBJ%d", round), Replicas: 3}, log)
				return err
			},
		}
		for what, ensure := range ensures {
			var wg sync.WaitGroup
			errs := make([]error, instances)
			start := make(chan struct{})
			for i, nc := range conns {
				wg.Go(func() {
					<-start
					// A cluster answers slowly on a loaded machine; the
					// deadline is not what this test is about. One per
					// instance and step: the steps run one after the other.
					ctx, cancel := context.WithTimeout(context.Background(), testutil.ClusterBound)
					defer cancel()
					errs[i] = ensure(ctx, i, nc)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("round %d, %s, instance %d: %v", round, what, i, err)
				}
			}
		}
	}
}
