package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// contextHome is a home directory with a nats CLI context and the files it
// names.
type contextHome struct {
	dir, xdg, creds, ca string
}

func newContextHome(t *testing.T) contextHome {
	t.Helper()
	h := contextHome{dir: t.TempDir()}
	h.xdg = filepath.Join(h.dir, "xdg")
	h.creds = filepath.Join(h.dir, "user.creds")
	h.ca = filepath.Join(h.dir, "ca.pem")
	for _, f := range []string{h.creds, h.ca} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// save writes the context called name (a nats CLI context file) and
// returns its path.
func (h contextHome) save(t *testing.T, name, json string) string {
	t.Helper()
	dir := filepath.Join(h.xdg, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (h contextHome) lookup() func(string) (string, bool) {
	return mapLookup(map[string]string{"XDG_CONFIG_HOME": h.xdg, "HOME": h.dir, "CREDS": h.creds, "NATS_TOKEN": "t0ken"})
}

const contextBase = "streams:\n  - name: orders\ncheckpoint:\n  dir: /var/lib/fanoutd\n"

func TestLoad_NATSContext(t *testing.T) {
	t.Parallel()
	h := newContextHome(t)
	h.save(t, "prod", `{"description": "production", "url": "nats://a:4222, nats://b:4222",
		"creds": "`+h.creds+`", "ca": "~/ca.pem", "color_scheme": "blue", "some_future_key": 1}`)
	cfg, err := LoadBytes([]byte(contextBase+"nats:\n  context: prod\n"), h.lookup())
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.NATS
	if got, want := n.Servers, []string{"nats://a:4222", "nats://b:4222"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Servers = %q, want %q", got, want)
	}
	wantFields(t, []field{{n.CredsFile, h.creds}, {n.TLS.CAFile, h.ca}, {n.Name, "fanoutd"}})
	if got, want := n.ContextKeys(), []string{"servers", "creds_file", "tls.ca_file"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ContextKeys() = %q, want %q", got, want)
	}
	if got, want := n.ConnOptions().CredsFile, h.creds; got != want {
		t.Errorf("ConnOptions().CredsFile = %q, want %q", got, want)
	}
}

// TestLoad_NATSContextPrecedence: a key of the nats section that has a
// value wins over the context, servers even when it says the default.
func TestLoad_NATSContextPrecedence(t *testing.T) {
	t.Parallel()
	h := newContextHome(t)
	h.save(t, "prod", `{"url": "nats://a:4222", "user": "ctxuser", "password": "ctxpass", "ca": "/nowhere/ca.pem"}`)
	cfg, err := LoadBytes([]byte(contextBase+`nats:
  context: prod
  servers: [nats://127.0.0.1:4222]
  user: me
  password: mine
  tls:
    ca_file: `+h.ca+`
`), h.lookup())
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.NATS
	if got, want := n.Servers, []string{DefaultNATSServer}; !reflect.DeepEqual(got, want) {
		t.Errorf("Servers = %q, want %q", got, want)
	}
	wantFields(t, []field{{n.User, "me"}, {string(n.Password), "mine"}, {n.TLS.CAFile, h.ca}})

	// Identity comes whole from one place: a section naming a user takes
	// neither the context's password nor its creds; a token beside a
	// context's creds is the section's way to authenticate, alone.
	for _, tc := range []struct{ section, ctx string }{
		{"  user: alice\n", `{"user": "bob", "password": "bobpw"}`},
		{"  token: tok\n", `{"creds": "` + h.creds + `"}`},
		{"  tls:\n    cert_file: " + h.ca + "\n    key_file: " + h.ca + "\n", `{"cert": "/other/cert.pem", "key": "/other/key.pem"}`},
	} {
		cfg, err := LoadBytes([]byte(contextBase+"nats:\n  context: "+h.save(t, "mixed", tc.ctx)+"\n"+tc.section), h.lookup())
		if err != nil {
			t.Fatalf("%s: %v", tc.section, err)
		}
		n := cfg.NATS
		if n.Password == "bobpw" || n.CredsFile != "" || strings.HasPrefix(n.TLS.KeyFile, "/other") || strings.HasPrefix(n.TLS.CertFile, "/other") {
			t.Fatalf("%s: the section's identity mixed with the context's: %+v", tc.section, n)
		}
	}

	// Empty values and an empty list count as not set.
	_, err = LoadBytes([]byte(contextBase+"nats:\n  context: prod\n  servers: []\n  user: \"\"\n"), h.lookup())
	if err == nil || !strings.Contains(err.Error(), "nats.tls.ca_file: file /nowhere/ca.pem does not exist (from nats context prod, ") {
		t.Fatalf("err = %v, want the context's CA file reported with its origin", err)
	}
	// Through a merge key, as the decoder reads it.
	cfg, err = LoadBytes([]byte(contextBase+`nats:
  <<: {servers: [nats://c:4222]}
  context: `+h.save(t, "nocas", `{"url": "nats://a:4222"}`)+`
`), h.lookup())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.NATS.Servers, []string{"nats://c:4222"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Servers = %q, want %q", got, want)
	}
}

func TestLoad_NATSContextPath(t *testing.T) {
	t.Parallel()
	h := newContextHome(t)
	p := filepath.Join(h.dir, "ctx", "dev.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(`{"url": "nats://dev:4222", "creds": "file://$CREDS"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{p, "~/ctx/dev.json"} {
		cfg, err := LoadBytes([]byte(contextBase+"nats:\n  context: "+ref+"\n"), h.lookup())
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		wantFields(t, []field{{cfg.NATS.Servers[0], "nats://dev:4222"}, {cfg.NATS.CredsFile, h.creds}})
	}
}

// TestLoad_NATSContextProblems: a context fanoutd can't use is reported at
// nats.context, in the same pass as every other problem.
func TestLoad_NATSContextProblems(t *testing.T) {
	t.Parallel()
	h := newContextHome(t)
	h.save(t, "broken", `{"url": "nats://a:4222",`)
	h.save(t, "domain", `{"url": "nats://a:4222", "jetstream_domain": "hub", "inbox_prefix": "_I"}`)
	h.save(t, "envtoken", `{"token": "env://NATS_TOKEN"}`)
	h.save(t, "opcreds", `{"creds": "op://vault/nats/creds"}`)
	h.save(t, "creds", `{"creds": "`+h.creds+`", "url": "nats://a:4222"}`)
	h.save(t, "gone", `{"creds": "/nowhere/user.creds"}`)
	h.save(t, "badurl", `{"url": "http://a:4222"}`)
	for _, tc := range []struct {
		name, nats string
		want       []string // problems, in order
	}{
		{"missing", "context: nope", []string{
			"nats.context: no nats context nope (" + filepath.Join(h.xdg, "nats", "context", "nope.json") + " does not exist): create it with `nats context save nope --server URL --creds FILE`, or give the path of a context file",
		}},
		{"missing path", "context: /nowhere/x.json", []string{
			"nats.context: no nats context /nowhere/x.json (/nowhere/x.json does not exist)",
		}},
		{"malformed", "context: broken", []string{
			"nats.context: context file " + filepath.Join(h.xdg, "nats", "context", "broken.json") + " is not a nats context (JSON as `nats context save` writes it): unexpected end of JSON input",
		}},
		{"unsupported", "context: domain", []string{
			"sets jetstream_domain, inbox_prefix, which fanoutd does not use",
		}},
		{"reference", "context: envtoken", []string{
			"envtoken.json: its token is a reference (env://...), which fanoutd does not resolve: set nats.token in fanoutd's config instead",
		}},
		{"reference overridden", "context: envtoken\n  token: ${NATS_TOKEN}\n  publish_timeout: 0s", []string{"nats.publish_timeout: must be greater than 0"}},
		{"path reference", "context: opcreds", []string{
			"opcreds.json: its creds is a reference (op://...), which fanoutd does not resolve: set nats.creds_file in fanoutd's config instead",
		}},
		{"file", "context: gone", []string{
			"nats.creds_file: file /nowhere/user.creds does not exist (from nats context gone, ",
		}},
		{"value", "context: badurl", []string{
			`nats.servers[0]: must be a URL with scheme nats, tls, ws or wss (got "http://a:4222") (from nats context badurl`,
		}},
		{"with others", "context: nope\n  publish_timeout: 0s", []string{"nats.context: no nats context nope", "nats.publish_timeout: must be greater than 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadBytes([]byte(contextBase+"nats:\n  "+tc.nats+"\n"), h.lookup())
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if got, want := len(ve.Problems), len(tc.want); got != want {
				t.Fatalf("%d problems, want %d:\n%v", got, want, err)
			}
			for i, w := range tc.want {
				if got := ve.Problems[i].String(); !strings.Contains(got, w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got, w)
				}
			}
		})
	}
}

// TestLoad_NATSContextFromEnv: nats.context can come from the environment,
// and an unset variable is reported once, without reading a context.
func TestLoad_NATSContextFromEnv(t *testing.T) {
	t.Parallel()
	h := newContextHome(t)
	h.save(t, "prod", `{"url": "nats://a:4222"}`)
	_, err := LoadBytes([]byte(contextBase+"nats:\n  context: ${NATS_CONTEXT}\n"), h.lookup())
	if err == nil || err.Error() != "nats.context: environment variable NATS_CONTEXT is not set" {
		t.Fatalf("err = %v", err)
	}
	env := map[string]string{"XDG_CONFIG_HOME": h.xdg, "NATS_CONTEXT": "prod"}
	cfg, err := LoadBytes([]byte(contextBase+"nats:\n  context: ${NATS_CONTEXT}\n"), mapLookup(env))
	if err != nil {
		t.Fatal(err)
	}
	wantFields(t, []field{{cfg.NATS.Servers[0], "nats://a:4222"}})
}

func TestContextPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"prod", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/nats/context/prod.json"},
		{"prod", map[string]string{"HOME": "/h"}, "/h/.config/nats/context/prod.json"},
		{"prod", map[string]string{"XDG_CONFIG_HOME": "", "HOME": "/h"}, "/h/.config/nats/context/prod.json"},
		{"./prod.json", map[string]string{"HOME": "/h"}, "./prod.json"},
		{"~/ctx/prod.json", map[string]string{"HOME": "/h"}, "/h/ctx/prod.json"},
		{"/etc/fanoutd/nats.json", nil, "/etc/fanoutd/nats.json"},
	} {
		got, err := ContextPath(tc.name, mapLookup(tc.env))
		if err != nil || got != tc.want {
			t.Errorf("ContextPath(%q, %v) = %q, %v; want %q", tc.name, tc.env, got, err, tc.want)
		}
	}
}
