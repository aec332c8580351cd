package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/internal/testutil"
	"github.com/fanoutd/fanoutd/internal/testutil/e2e"
	"github.com/fanoutd/fanoutd/internal/testutil/emutest"
	"github.com/fanoutd/fanoutd/jsassets"
	"github.com/fanoutd/fanoutd/record"
	"github.com/fanoutd/fanoutd/subscriber"
)

// objectStream is the stream behind the Object Store bucket of large
// records.
const objectStream = "OBJ_" + jsassets.DefaultObjectBucket

// In core mode against a server with JetStream, fanoutd creates nothing
// there at start: no bucket while no record is too large for a message. The
// first large records (one on every shard at once) create the bucket; a
// creation that fails (another stream holds the bucket's subjects) fails
// their batches, which are replayed until it succeeds: every large record
// then reaches subscribers whole through the Object Store, none is lost.
func TestRunCoreCreatesObjectStoreAtFirstLargeRecord(t *testing.T) {
	const shards = 4
	e := newE2E(t, emutest.Options(), true)
	if err := e.Emu.CreateStream("s", shards); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := emutest.Client(t, e.Emu).UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{
		StreamARN: aws.String(e.Emu.StreamARN("s")), MaxRecordSizeInKiB: aws.Int32(10240)}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.NS.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// Holds the bucket's subjects: creating the bucket fails until it goes.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BLOCKER", Subjects: []string{"$O." + jsassets.DefaultObjectBucket + ".>"}}); err != nil {
		t.Fatal(err)
	}

	e.run(e.config(false, efoStream))
	e.Put("s", e2e.Keys(8), 0, 5)
	testutil.WaitFor(t, 30*time.Second, "the small records", func() bool { return len(e.Msgs.OnSubject("kinesis.")) >= 40 })
	if _, err := js.Stream(ctx, objectStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream %s after the start: %v, want none", objectStream, err)
	}
	if !strings.Contains(e.logs.String(), "created at the first record too big for one message") {
		t.Fatalf("no log line says when the bucket is created:\n%s", e.logs.String())
	}

	large := map[string][]byte{} // by partition key
	for i := range shards {
		key := fmt.Sprintf("big%d", i)
		data := bytes.Repeat([]byte{byte('a' + i)}, 2<<20)
		// The hash key of the start of shard i's range (shards split the
		// range evenly).
		hash := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(int64(i)), 128), big.NewInt(shards))
		if _, _, err := e.Emu.PutRecordHashKey("s", key, hash.String(), data); err != nil {
			t.Fatal(err)
		}
		large[key] = data
	}
	testutil.WaitFor(t, 30*time.Second, "a failed creation of the bucket", func() bool {
		return strings.Contains(e.logs.String(), "could not deliver a batch") && strings.Contains(e.logs.String(), "Object Store bucket")
	})
	if n := len(references(e.Msgs.OnSubject("kinesis."))); n != 0 {
		t.Fatalf("%d references published while the bucket could not be created", n)
	}
	if err := js.DeleteStream(ctx, "BLOCKER"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 60*time.Second, "every large record", func() bool { return len(references(e.Msgs.OnSubject("kinesis."))) >= shards })
	got := map[string]bool{}
	for _, m := range references(e.Msgs.OnSubject("kinesis.")) {
		key := m.Header.Get("Kinesis-Partition-Key")
		data, err := subscriber.Fetch(ctx, js, m)
		if err != nil {
			t.Fatalf("fetch the record behind %v: %v", m.Header, err)
		}
		if !bytes.Equal(data, large[key]) {
			t.Fatalf("record %s: %d bytes, not the %d written", key, len(data), len(large[key]))
		}
		got[key] = true
	}
	if len(got) != shards {
		t.Fatalf("records %v fetched, want all %d", got, shards)
	}
	if _, err := js.Stream(ctx, objectStream); err != nil {
		t.Fatalf("stream %s: %v", objectStream, err)
	}
}

// references are the messages of msgs that stand for a record in the
// Object Store.
func references(msgs []*nats.Msg) []*nats.Msg {
	var out []*nats.Msg
	for _, m := range msgs {
		if subscriber.IsObjectReference(m) {
			out = append(out, m)
		}
	}
	return out
}

// Many shards meeting their first large record at once create the bucket
// once; a caller whose context ends while another creates it fails (its
// batch is replayed) and a later call succeeds.
func TestObjectStoreOnDemandCreatesOnce(t *testing.T) {
	t.Parallel()
	ns := testutil.StartNATS(t, testutil.NATSOptions{JetStream: true})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var logs testutil.SyncBuffer
	o := &objectStoreOnDemand{nc: nc, spec: jsassets.ObjectStoreSpec{Bucket: "B", Replicas: 1}, log: zerolog.New(&logs), sem: make(chan struct{}, 1)}

	o.sem <- struct{}{} // another caller is creating the bucket
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = o.Put(short, jetstream.ObjectMeta{Name: "x"}, strings.NewReader("x"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put while the bucket is being created, past its deadline: %v", err)
	}
	<-o.sem

	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			name := fmt.Sprintf("o%d", i)
			if _, err := o.GetInfo(t.Context(), name); !errors.Is(err, jetstream.ErrObjectNotFound) {
				errs <- fmt.Errorf("GetInfo %s: %v, want ErrObjectNotFound", name, err)
				return
			}
			if _, err := o.Put(t.Context(), jetstream.ObjectMeta{Name: name}, strings.NewReader(name)); err != nil {
				errs <- fmt.Errorf("Put %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := strings.Count(logs.String(), "first large record: creating the Object Store bucket"); n != 1 {
		t.Fatalf("the bucket was created %d times, want once:\n%s", n, logs.String())
	}
	js, _ := jetstream.New(nc)
	obs, err := js.ObjectStore(t.Context(), "B")
	if err != nil {
		t.Fatal(err)
	}
	list, err := obs.List(t.Context())
	if err != nil || len(list) != callers {
		t.Fatalf("%d objects (%v), want %d", len(list), err, callers)
	}
}

// Without permission to create the bucket no replay helps: the error stops
// the stream (record.ErrStop, exit 2) and says what to grant.
func TestObjectStoreOnDemandWithoutPermissionStops(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
		Users: []*server.User{{Username: "fanoutd", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.CREATE.>"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("fanoutd", "pw"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	o := &objectStoreOnDemand{nc: nc, spec: jsassets.ObjectStoreSpec{Bucket: "B", Replicas: 1, Key: "nats.object_store"}, log: zerolog.Nop(), sem: make(chan struct{}, 1)}
	_, err = o.Put(t.Context(), jetstream.ObjectMeta{Name: "x"}, strings.NewReader("x"))
	if !errors.Is(err, record.ErrStop) || !errors.Is(err, jsassets.ErrJetStreamPermission) || !strings.Contains(err.Error(), "nats.large_records to dead_letter") {
		t.Fatalf("Put without permission to create the bucket: %v", err)
	}
	if !operatorFailure(err) {
		t.Fatalf("%v is not an operator failure (exit 2)", err)
	}
}
