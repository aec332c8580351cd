// Package fanout consumes Kinesis data streams: it keeps the shard map and
// its lineage, runs one loop per shard over a reader (an enhanced fan-out
// subscription on the EFO consumer it registers or reuses, or GetRecords
// polling; the stream's read mode chooses) with reopening,
// backoff and an idle watchdog, de-aggregates KPL records, hands each
// event's records to a Handler and checkpoints once the handler succeeded.
// It knows nothing of NATS. The event-stream reader and decoder are
// internal/efostream.
package fanout
