package subscriber

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/relay"
)

// A record too big for one NATS message reaches subscribers as a reference
// message: the record's subject and Kinesis headers, an empty payload, and
// Fanoutd-Object-Bucket, -Name, -Size and -Digest, naming the JetStream
// Object Store object that holds the data (see package relay).

// IsObjectReference reports whether m stands for a record stored in the
// Object Store.
func IsObjectReference(m *nats.Msg) bool {
	return m.Header.Get(relay.HeaderObjectName) != "" && m.Header.Get(relay.HeaderObjectBucket) != ""
}

// Reference is what a reference message says about the object.
type Reference struct {
	Bucket, Name string
	Size         uint64
	Digest       string // "SHA-256=" and the base64url digest
}

// ParseReference reads the Fanoutd-Object-* headers of m.
func ParseReference(m *nats.Msg) (Reference, error) {
	if !IsObjectReference(m) {
		return Reference{}, errors.New("not a reference message: no Fanoutd-Object-Bucket and Fanoutd-Object-Name headers")
	}
	r := Reference{
		Bucket: m.Header.Get(relay.HeaderObjectBucket),
		Name:   relay.UnescapeHeaderValue(m.Header.Get(relay.HeaderObjectName)),
		Digest: m.Header.Get(relay.HeaderObjectDigest),
	}
	size, err := strconv.ParseUint(m.Header.Get(relay.HeaderObjectSize), 10, 64)
	if err != nil {
		return Reference{}, fmt.Errorf("reference message: bad %s header %q", relay.HeaderObjectSize, m.Header.Get(relay.HeaderObjectSize))
	}
	r.Size = size
	if _, err := jetstream.DecodeObjectDigest(r.Digest); err != nil {
		return Reference{}, fmt.Errorf("reference message: bad %s header %q", relay.HeaderObjectDigest, r.Digest)
	}
	return r, nil
}

// Open returns a reader of the record behind the reference message m,
// streamed from the Object Store in chunks. The reader returns an error
// wrapping ErrObjectMismatch instead of io.EOF when the data does not have
// the size and SHA-256 digest of the reference; read it to the end before
// trusting it. Close it when done.
func Open(ctx context.Context, js jetstream.JetStream, m *nats.Msg) (io.ReadCloser, error) {
	ref, err := ParseReference(m)
	if err != nil {
		return nil, err
	}
	obs, err := js.ObjectStore(ctx, ref.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open Object Store bucket %s: %w", ref.Bucket, err)
	}
	res, err := obs.Get(ctx, ref.Name)
	if err != nil {
		return nil, fmt.Errorf("get object %s from bucket %s: %w", ref.Name, ref.Bucket, err)
	}
	info, err := res.Info()
	if err != nil {
		res.Close()
		return nil, fmt.Errorf("get object %s from bucket %s: %w", ref.Name, ref.Bucket, err)
	}
	if info.Size != ref.Size || info.Digest != ref.Digest {
		res.Close()
		return nil, fmt.Errorf("%w: object %s in bucket %s has %d bytes and digest %s, the reference says %d bytes and %s",
			ErrObjectMismatch, ref.Name, ref.Bucket, info.Size, info.Digest, ref.Size, ref.Digest)
	}
	return &verifyingReader{r: res, ref: ref, h: sha256.New()}, nil
}

// Fetch returns the whole record behind the reference message m, checked
// against the reference's size and digest.
func Fetch(ctx context.Context, js jetstream.JetStream, m *nats.Msg) ([]byte, error) {
	r, err := Open(ctx, js, m)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	// The size comes from a header: trust it for the allocation only so far.
	buf.Grow(int(min(r.(*verifyingReader).ref.Size, maxPrealloc)) + bytes.MinRead)
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxPrealloc bounds what Fetch allocates before reading: Kinesis records
// are at most 10 MiB.
const maxPrealloc = 16 << 20

// verifyingReader checks size and digest at the end of the object.
type verifyingReader struct {
	r   jetstream.ObjectResult
	ref Reference
	h   hash.Hash
	n   uint64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += uint64(n)
	if errors.Is(err, io.EOF) {
		if got := "SHA-256=" + base64.URLEncoding.EncodeToString(v.h.Sum(nil)); v.n != v.ref.Size || got != v.ref.Digest {
			return n, fmt.Errorf("%w: object %s in bucket %s: read %d bytes with digest %s, the reference says %d bytes and %s",
				ErrObjectMismatch, v.ref.Name, v.ref.Bucket, v.n, got, v.ref.Size, v.ref.Digest)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }
