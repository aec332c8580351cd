package jsassets_test

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
	"github.com/fanoutd/fanoutd/jsassets"
)

// Instances of a group start together: each finds the stream, the
// dead-letter stream, the key-value bucket or the Object Store bucket
// missing and creates it, and every one of them must start, whichever
// create the server took first. On a cluster,
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
				return jsassets.EnsureStream(ctx, nc, jsassets.StreamSpec{Name: fmt.Sprintf("REC%d", round), Subjects: []string{fmt.Sprintf("rec%d.>", round)}, Replicas: 3}, log)
			},
			"dead-letter stream": func(ctx context.Context, i int, nc *nats.Conn) error {
				// Auto: 3 on this cluster of three.
				return jsassets.EnsureDeadLetterStream(ctx, nc, jsassets.DeadLetterStreamSpec{Name: fmt.Sprintf("DL%d", round), Replicas: jsassets.AutoReplicas}, []string{fmt.Sprintf("dl%d.>", round)}, log)
			},
			"key-value bucket and joining the group": func(ctx context.Context, i int, nc *nats.Conn) error {
				kv, err := jsassets.EnsureKV(ctx, nc, jsassets.KVSpec{Name: fmt.Sprintf("kv%d", round), Replicas: 3}, log)
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
				_, err := jsassets.EnsureObjectStore(ctx, nc, jsassets.ObjectStoreSpec{Bucket: fmt.Sprintf("OBJ%d", round), Replicas: 3}, log)
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
		ctx, cancel := context.WithTimeout(t.Context(), testutil.ClusterBound)
		defer cancel()
		s, err := jetstream.New(conns[0])
		if err != nil {
			t.Fatal(err)
		}
		dl, err := s.Stream(ctx, fmt.Sprintf("DL%d", round))
		if err != nil {
			t.Fatal(err)
		}
		if r := dl.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("the dead-letter stream with auto replicas has %d on a cluster of three, want 3", r)
		}
	}
}
