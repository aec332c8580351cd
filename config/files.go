package config

import (
	"errors"
	"io/fs"
	"os"
)

// checkFiles reports, by key path, each file the config names that this
// process cannot read: a missing creds file is found by `fanoutd validate`,
// not by the first connection attempt.
func (c *Config) checkFiles(ps *problems) {
	n := c.NATS
	for _, f := range []struct{ key, path string }{
		{"nats.creds_file", n.CredsFile},
		{"nats.nkey_seed_file", n.NKeySeedFile},
		{"nats.tls.ca_file", n.TLS.CAFile},
		{"nats.tls.cert_file", n.TLS.CertFile},
		{"nats.tls.key_file", n.TLS.KeyFile},
	} {
		if f.path != "" {
			checkReadable(f.key, f.path, ps)
		}
	}
}

func checkReadable(key, path string, ps *problems) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ps.add(key, "file %s does not exist", path)
		case errors.Is(err, fs.ErrPermission):
			ps.add(key, "file %s is not readable by this user (uid %d); under systemd's DynamicUser, pass it with LoadCredential= and name ${CREDENTIALS_DIRECTORY}/...", path, os.Getuid())
		case errors.As(err, &pe):
			ps.add(key, "cannot read %s: %v", path, pe.Err)
		default:
			ps.add(key, "cannot read %s: %v", path, err)
		}
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		ps.add(key, "cannot read %s: %v", path, err)
	case fi.IsDir():
		ps.add(key, "%s is a directory, not a file", path)
	}
}
