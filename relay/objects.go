package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fanoutd/fanoutd/record"
)

// A record too big for one NATS message (Kinesis allows 10 MiB, NATS's
// max_payload is 1 MB by default) can be relayed as a claim check: the
// record's data is put into a JetStream Object Store bucket, and a
// reference message takes the record's place on its own subject, in its
// place in the shard's order, with every Kinesis header, the Fanoutd-Object-*
// headers below and an empty payload. The put completes (every chunk and the
// object's metadata confirmed by JetStream) before the reference is
// published, so no reference points at a missing or partial object. The
// object's name (ObjectName) comes from the record's stream, shard, sequence
// and sub-sequence numbers, like its Nats-Msg-Id: a replay after a crash
// rewrites the same object (or finds it already whole) and publishes the same
// reference, which JetStream deduplicates.

// Headers of a reference message.
const (
	// HeaderObjectBucket is the Object Store bucket holding the record.
	HeaderObjectBucket = "Fanoutd-Object-Bucket"
	// HeaderObjectName is the object's name in the bucket (ObjectName).
	HeaderObjectName = "Fanoutd-Object-Name"
	// HeaderObjectSize is the record's size in bytes, in decimal.
	HeaderObjectSize = "Fanoutd-Object-Size"
	// HeaderObjectDigest is the SHA-256 of the record's data as the Object
	// Store writes it: "SHA-256=" and the digest in base64url with padding
	// (the Digest of `nats object info`).
	HeaderObjectDigest = "Fanoutd-Object-Digest"
)

// ObjectStore is what the publisher needs of a JetStream Object Store
// bucket; jetstream.ObjectStore has it.
type ObjectStore interface {
	Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error)
	GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error)
}

// ObjectName is "<stream>/<shard-id>/<sequence>/<sub-sequence>" (sub-sequence
// 0 for plain records): unique per user record and the same on every replay.
// A message unpacked from a record (a CloudWatch Logs event) adds
// "/<index>", its place among the record's messages.
// The Object Store encodes names in its subjects, so '/' is allowed.
func ObjectName(stream, shardID, seq string, subSeq int64) string {
	return stream + "/" + shardID + "/" + seq + "/" + strconv.FormatInt(subSeq, 10)
}

// ObjectStats are the Object Store counters of the publisher.
type ObjectStats struct {
	// Stored counts records relayed as a reference to an object (counted
	// when their batch is confirmed, as Published).
	Stored uint64
	// Bytes counts the data bytes of Stored.
	Bytes uint64
	// Reused counts puts skipped because a replay found the object already
	// stored whole (same size and digest).
	Reused uint64
	// Failures counts object puts that failed (the batch is replayed).
	Failures uint64
}

// storeObject puts the data of rec into the Object Store under its
// ObjectName and turns m, the record's message with its headers set, into
// the reference message: same subject and headers, plus the
// Fanoutd-Object-* headers, and no data. It returns only once the object is
// stored whole. A replay that finds the object already stored with the same
// size and digest does not put it again.
func (p *Publisher) storeObject(ctx context.Context, b *record.Batch, rec *record.Record, m *nats.Msg) error {
	subSeq := int64(0)
	if rec.Aggregated {
		subSeq = rec.SubSequenceNumber
	}
	name := ObjectName(b.Stream, b.ShardID, rec.SequenceNumber, subSeq)
	if rec.Unpacked != nil { // one of the messages unpacked from the record
		name += "/" + strconv.Itoa(rec.Unpacked.Index)
	}
	// publish_timeout bounds every ~4 MiB, as for a chunk of messages.
	ctx, cancel := context.WithTimeout(ctx, p.timeout*time.Duration(1+len(rec.Data)/chunkBytes))
	defer cancel()
	start := time.Now()
	digest, err := p.putObject(ctx, name, b, rec, m.Header)
	if p.observeObject != nil {
		p.observeObject(b.Stream, len(rec.Data), time.Since(start), err)
	}
	if err != nil {
		p.objectFailures.Add(1)
		return fmt.Errorf("store record %s/%d in the Object Store bucket %s as %s: %w", rec.SequenceNumber, rec.SubSequenceNumber, p.objectBucket, name, err)
	}
	m.Header.Set(HeaderObjectBucket, p.objectBucket)
	m.Header.Set(HeaderObjectName, EscapeHeaderValue(name))
	m.Header.Set(HeaderObjectSize, strconv.Itoa(len(rec.Data)))
	m.Header.Set(HeaderObjectDigest, digest)
	m.Data = nil
	return nil
}

// putObject stores rec's data as name and returns its digest.
func (p *Publisher) putObject(ctx context.Context, name string, b *record.Batch, rec *record.Record, h nats.Header) (string, error) {
	info, err := p.objects.GetInfo(ctx, name)
	switch {
	case err == nil && info.Size == uint64(len(rec.Data)):
		sum := sha256.Sum256(rec.Data)
		if d := digestValue(sum[:]); d == info.Digest {
			p.objectsReused.Add(1)
			return d, nil
		}
	case err != nil && !errors.Is(err, jetstream.ErrObjectNotFound):
		return "", fmt.Errorf("look up the object: %w", err)
	}
	meta := jetstream.ObjectMeta{
		Name:        name,
		Description: "Kinesis record " + rec.SequenceNumber + " of " + b.Stream + "/" + b.ShardID + ", relayed by fanoutd",
		Headers:     objectHeaders(h),
	}
	// The reader streams the record's own bytes: nothing is copied but the
	// 128 KiB chunk the Object Store publishes at a time.
	info, err = p.objects.Put(ctx, meta, bytes.NewReader(rec.Data))
	if err != nil {
		return "", err
	}
	if info.Size != uint64(len(rec.Data)) {
		return "", fmt.Errorf("the Object Store stored %d bytes of %d", info.Size, len(rec.Data))
	}
	return info.Digest, nil
}

// objectHeaders are the Kinesis headers of the record, kept with the
// object so that `nats object info` shows where it comes from.
func objectHeaders(h nats.Header) nats.Header {
	out := make(nats.Header, len(h))
	for k, v := range h {
		if strings.HasPrefix(k, "Kinesis-") || k == nats.MsgIdHdr {
			out[k] = v
		}
	}
	return out
}

// digestValue is a SHA-256 sum as the Object Store writes it.
func digestValue(sum []byte) string {
	return "SHA-256=" + base64.URLEncoding.EncodeToString(sum)
}

// ObjectStats returns the Object Store counters.
func (p *Publisher) ObjectStats() ObjectStats {
	return ObjectStats{
		Stored:   p.objectsStored.Load(),
		Bytes:    p.objectBytes.Load(),
		Reused:   p.objectsReused.Load(),
		Failures: p.objectFailures.Load(),
	}
}
