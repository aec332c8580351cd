package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fanoutd/fanoutd/pattern"
	"github.com/fanoutd/fanoutd/payload"
)

func TestContentKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(`streams:
  - name: orders
    subject: "orders.{data.type}"
    subject_fallback: unknown
    filter:
      - '{"data": {"type": [{"prefix": "order."}]}}'
      - partitionKey: [{prefix: "vip-"}]
    payload: gzip
    max_decompressed: 512KiB
checkpoint:
  dir: /tmp
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Streams[0]
	if s.Filter[1] != `{"partitionKey":[{"prefix":"vip-"}]}` {
		t.Fatalf("a YAML mapping pattern became %q, want its JSON", s.Filter[1])
	}
	r, err := s.Route()
	if err != nil {
		t.Fatal(err)
	}
	if r.Payload != payload.Gzip || r.MaxDecompressed != 512<<10 || r.Subject.Fallback() != "unknown" || len(r.Filter) != 2 {
		t.Fatalf("route %+v", r)
	}
	vip := &pattern.Input{PartitionKey: "vip-7", Data: []byte(`{"type":"refund"}`), JSON: true}
	other := &pattern.Input{PartitionKey: "k", Data: []byte(`{"type":"refund"}`), JSON: true}
	if !r.Filter.Match(vip) || r.Filter.Match(other) {
		t.Fatal("the filter does not match as its patterns say")
	}
}
