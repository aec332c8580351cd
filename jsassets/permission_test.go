package jsassets_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/fanoutd/fanoutd/jsassets"
)

// connectDenied connects to a JetStream server as a user that may not
// publish to deny.
func connectDenied(t *testing.T, deny string) *nats.Conn {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
		Users: []*server.User{{Username: "fanoutd", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{deny}}}}}})
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
	t.Cleanup(nc.Close)
	return nc
}

// Without permission to create the dead-letter stream, the error wraps
// ErrJetStreamPermission and names the permission to grant, at once (no
// retry cures it).
func TestEnsureDeadLetterStreamWithoutPermission(t *testing.T) {
	t.Parallel()
	nc := connectDenied(t, "$JS.API.STREAM.CREATE.>")
	start := time.Now()
	err := jsassets.EnsureDeadLetterStream(t.Context(), nc, jsassets.DeadLetterStreamSpec{Name: "DL"}, []string{"dl.*"}, zerolog.Nop())
	if !errors.Is(err, jsassets.ErrJetStreamPermission) || !strings.Contains(err.Error(), "$JS.API.STREAM.CREATE.DL") ||
		!strings.Contains(err.Error(), "dl.*") {
		t.Fatalf("EnsureDeadLetterStream: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %v: retried what no retry cures", d)
	}
}

// Without permission to create the Object Store bucket, the error wraps
// ErrJetStreamPermission and says what to grant, or which policy to set.
func TestEnsureObjectStoreWithoutPermission(t *testing.T) {
	t.Parallel()
	nc := connectDenied(t, "$JS.API.STREAM.CREATE.>")
	spec := jsassets.ObjectStoreSpec{Bucket: "B", Key: "nats.object_store"}
	_, err := jsassets.EnsureObjectStore(t.Context(), nc, spec, zerolog.Nop())
	if !errors.Is(err, jsassets.ErrJetStreamPermission) || !strings.Contains(err.Error(), "nats.object_store.bucket") ||
		!strings.Contains(err.Error(), "OBJ_B") {
		t.Fatalf("EnsureObjectStore: %v", err)
	}
}
