// Package relay owns the NATS side of fanoutd: the connection (servers,
// authentication, TLS, reconnecting forever once up), subject templates,
// the Kinesis-* headers, the core NATS and JetStream publishers (with fast
// batches) that confirm every batch before it counts as delivered, and what
// becomes of a record NATS cannot carry as one message: an Object Store
// reference or a dead letter, decided once per record (plan.go). Its
// Publisher implements record.Handler; it knows nothing of Kinesis' HTTP/2
// event streams, only of record.Batch.
package relay
