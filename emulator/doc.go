// Package emulator is a local Kinesis endpoint that speaks enhanced fan-out as
// AWS does: the JSON 1.1 protocol over HTTP/2 and TLS, SubscribeToShard event
// streams, resharding with lineage, and the errors and limits of the real
// service. The daemon's tests, `fanoutd demo` and users developing push
// consumers on a laptop all run on it. It also lets tests inject the faults a
// real network and service produce: exception frames, cut connections,
// throttling and stalls.
//
// It does not check SigV4 signatures (any credentials are accepted, but a
// request must carry an Authorization header, as on AWS), and it keeps all
// data in memory.
package emulator
