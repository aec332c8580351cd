// Package fanout consumes Kinesis data streams through enhanced fan-out: it
// registers (or reuses) the EFO consumer, keeps the shard map and its lineage,
// runs one SubscribeToShard loop per shard with resubscription, backoff and an
// idle watchdog, de-aggregates KPL records, hands each event's records to a
// Handler and checkpoints once the handler succeeded. It knows nothing of NATS.
package fanout
