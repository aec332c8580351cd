package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// natsContext is what fanoutd reads of a nats CLI context: the JSON file
// `nats context save` writes (nats-io/jsm.go's natscontext). The file is
// read here rather than through jsm.go, whose natscontext package brings
// the whole JetStream management library, an expression language and the
// helpers that run external programs (nsc, 1Password) into the daemon.
type natsContext struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	User     string `json:"user"`
	Password string `json:"password"`
	Creds    string `json:"creds"`
	NKey     string `json:"nkey"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	CA       string `json:"ca"`

	// Set, these change how a connection is made or authenticated in ways
	// fanoutd does not follow: a context that sets one is refused rather
	// than half used. description, color_scheme and name are ignored.
	NSC           string   `json:"nsc"`
	SocksProxy    string   `json:"socks_proxy"`
	JSDomain      string   `json:"jetstream_domain"`
	JSAPIPrefix   string   `json:"jetstream_api_prefix"`
	JSEventPrefix string   `json:"jetstream_event_prefix"`
	InboxPrefix   string   `json:"inbox_prefix"`
	UserJWT       string   `json:"user_jwt"`
	UserSeed      string   `json:"user_seed"`
	TLSFirst      bool     `json:"tls_first"`
	WinCertStore  string   `json:"windows_cert_store"`
	WinCertMatch  string   `json:"windows_cert_match"`
	WinCACerts    []string `json:"windows_ca_certs_match"`
}

// unsupported lists the keys of c that fanoutd cannot honour.
func (c *natsContext) unsupported() []string {
	var out []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"nsc", c.NSC != ""}, {"socks_proxy", c.SocksProxy != ""},
		{"jetstream_domain", c.JSDomain != ""}, {"jetstream_api_prefix", c.JSAPIPrefix != ""},
		{"jetstream_event_prefix", c.JSEventPrefix != ""}, {"inbox_prefix", c.InboxPrefix != ""},
		{"user_jwt", c.UserJWT != ""}, {"user_seed", c.UserSeed != ""}, {"tls_first", c.TLSFirst},
		{"windows_cert_store", c.WinCertStore != ""}, {"windows_cert_match", c.WinCertMatch != ""},
		{"windows_ca_certs_match", len(c.WinCACerts) > 0},
	} {
		if f.set {
			out = append(out, f.key)
		}
	}
	return out
}

// ContextPath is where the nats CLI keeps the context called name:
// $XDG_CONFIG_HOME/nats/context/NAME.json, by default under ~/.config. A
// name ending in .json or holding a path separator is a path to the file.
func ContextPath(name string, lookup func(string) (string, bool)) (string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if strings.HasSuffix(name, ".json") || strings.ContainsRune(name, os.PathSeparator) || strings.Contains(name, "/") {
		return expandHome(name, lookup), nil
	}
	if name == "." || name == ".." {
		return "", fmt.Errorf("%q is not a context name", name)
	}
	root, _ := lookup("XDG_CONFIG_HOME")
	if root == "" {
		home, err := homeDir(lookup)
		if err != nil {
			return "", fmt.Errorf("find the nats contexts: set XDG_CONFIG_HOME or HOME, or give the context file's path: %w", err)
		}
		root = filepath.Join(home, ".config")
	}
	return filepath.Join(root, "nats", "context", name+".json"), nil
}

func homeDir(lookup func(string) (string, bool)) (string, error) {
	if h, ok := lookup("HOME"); ok && h != "" {
		return h, nil
	}
	return os.UserHomeDir()
}

// expandHome expands $VAR and a leading ~ in a path, as the nats CLI does
// for the files a context names.
func expandHome(p string, lookup func(string) (string, bool)) string {
	p = os.Expand(p, func(k string) string { v, _ := lookup(k); return v })
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := homeDir(lookup); err == nil {
			p = h + p[1:]
		}
	}
	return p
}

// readNATSContext reads the context called (or at) name.
func readNATSContext(name string, lookup func(string) (string, bool)) (*natsContext, string, error) {
	path, err := ContextPath(name, lookup)
	if err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, path, fmt.Errorf("no nats context %s (%s does not exist): create it with `nats context save %s --server URL --creds FILE`, or give the path of a context file", name, path, name)
	case errors.Is(err, fs.ErrPermission):
		return nil, path, fmt.Errorf("context file %s is not readable by this user (uid %d)", path, os.Getuid())
	case err != nil:
		return nil, path, fmt.Errorf("read context file %s: %w", path, err)
	}
	var c natsContext
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, path, fmt.Errorf("context file %s is not a nats context (JSON as `nats context save` writes it): %w", path, err)
	}
	if bad := c.unsupported(); len(bad) > 0 {
		return nil, path, fmt.Errorf("context file %s sets %s, which fanoutd does not use: remove them, or point nats.context at a copy without them", path, strings.Join(bad, ", "))
	}
	for _, p := range []*string{&c.Creds, &c.NKey, &c.Cert, &c.Key, &c.CA} {
		if scheme, rest, ok := strings.Cut(*p, "://"); ok && strings.EqualFold(scheme, "file") {
			*p = rest
		}
		if reference(*p) == "" {
			*p = expandHome(*p, lookup)
		}
	}
	return &c, path, nil
}

// reference returns the scheme of v ("env://") when v is a credential
// reference of the nats CLI, which fanoutd does not resolve (env://, op://,
// nsc://, data:, and file:// but in the fields that name files), else "".
func reference(v string) string {
	for _, s := range []string{"env://", "op://", "nsc://", "data:", "file://"} {
		if len(v) >= len(s) && strings.EqualFold(v[:len(s)], s) {
			return s
		}
	}
	return ""
}

// serversSet reports whether the file lists nats.servers, read from its
// tree after the shape check (through merge keys and anchors, as the
// decoder reads it): servers has a default, so the decoded value can't
// tell whether the operator wrote it.
func serversSet(doc *yaml.Node) bool {
	var set struct {
		NATS struct {
			Servers yaml.Node `yaml:"servers"`
		} `yaml:"nats"`
	}
	if doc == nil || doc.Decode(&set) != nil {
		return false
	}
	v := deref(&set.NATS.Servers)
	return v != nil && v.Kind == yaml.SequenceNode && len(v.Content) > 0
}

// applyContext fills the keys of the nats section that the file leaves
// out or empty from the nats CLI context nats.context names (servers:
// unless serversSet). It reports a context it cannot use at nats.context.
func (n *NATSConfig) applyContext(serversSet bool, lookup func(string) (string, bool), ps *problems) {
	if n.Context == "" {
		return
	}
	c, path, err := readNATSContext(n.Context, lookup)
	if err != nil {
		ps.add("nats.context", "%v", err)
		return
	}
	n.contextFile = path
	fill := func(key string, dst *string, v string) {
		if v == "" || *dst != "" {
			return // the section's value wins
		}
		if scheme := reference(v); scheme != "" {
			ps.add("nats.context", "context file %s: its %s is a reference (%s...), which fanoutd does not resolve: set nats.%s in fanoutd's config instead (${VAR} reads the environment)", path, contextField[key], scheme, key)
			return
		}
		*dst = v
		n.fromContext = append(n.fromContext, key)
	}
	if c.URL != "" && !serversSet {
		n.Servers = nil
		for s := range strings.SplitSeq(c.URL, ",") {
			if s = strings.TrimSpace(s); s != "" {
				n.Servers = append(n.Servers, s)
			}
		}
		n.fromContext = append(n.fromContext, "servers")
	}
	// Who fanoutd is comes whole from one place: a section that names any
	// way to authenticate takes none of the context's (alice's user with
	// bob's password would connect as nobody), and a client certificate
	// goes with its key.
	if n.CredsFile == "" && n.NKeySeedFile == "" && n.Token == "" && n.User == "" && n.Password == "" {
		fill("creds_file", &n.CredsFile, c.Creds)
		fill("nkey_seed_file", &n.NKeySeedFile, c.NKey)
		fill("token", (*string)(&n.Token), c.Token)
		fill("user", &n.User, c.User)
		fill("password", (*string)(&n.Password), c.Password)
	}
	fill("tls.ca_file", &n.TLS.CAFile, c.CA)
	if n.TLS.CertFile == "" && n.TLS.KeyFile == "" {
		fill("tls.cert_file", &n.TLS.CertFile, c.Cert)
		fill("tls.key_file", &n.TLS.KeyFile, c.Key)
	}
}

// contextField is the context's name of each key of the nats section it
// fills.
var contextField = map[string]string{"creds_file": "creds", "nkey_seed_file": "nkey", "token": "token", "user": "user",
	"password": "password", "tls.ca_file": "ca", "tls.cert_file": "cert", "tls.key_file": "key"}

// contextNote says where the value of key came from, for a problem with
// it: "" when the file set it.
func (n NATSConfig) contextNote(key string) string {
	switch {
	case !slices.Contains(n.fromContext, key):
	case n.Context == n.contextFile:
		return fmt.Sprintf(" (from nats context %s)", n.contextFile)
	default:
		return fmt.Sprintf(" (from nats context %s, %s)", n.Context, n.contextFile)
	}
	return ""
}

// ContextFile is the nats context file Load read ("" when none).
func (n NATSConfig) ContextFile() string { return n.contextFile }

// ContextKeys are the keys of the nats section whose values came from the
// nats context (servers, creds_file, tls.ca_file...).
func (n NATSConfig) ContextKeys() []string { return n.fromContext }

// ContextNATS is the nats section of a command that connects through the
// nats CLI context name (a name or a path), as nats.context would read it;
// servers, when given, win over the context's url.
func ContextNATS(name string, servers []string) (NATSConfig, error) {
	n := NATSConfig{Context: name, Servers: servers}
	var ps problems
	n.applyContext(len(servers) > 0, os.LookupEnv, &ps)
	if len(ps) > 0 {
		return n, errors.New(ps[0].Message)
	}
	return n, nil
}
