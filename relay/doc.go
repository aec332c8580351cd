// Package relay owns the NATS side of fanoutd: the connection (servers,
// authentication, TLS, reconnecting forever once up), subject templates,
// the Kinesis-* headers, the core NATS and JetStream publishers that confirm
// every batch before it counts as delivered, and dead letters for records
// that NATS cannot carry. Its Publisher implements record.Handler; it knows
// nothing of Kinesis' HTTP/2 event streams, only of record.Batch.
package relay
