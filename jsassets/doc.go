// Package jsassets owns every JetStream asset fanoutd creates or checks:
// the records stream, the dead-letter stream, the Object Store bucket of
// large records and the key-value buckets of checkpoints and coordination,
// and whether streams capture the subjects fanoutd publishes to. An asset
// that exists is used as it is: fanoutd does not change what it did not
// make, it warns once per setting that differs from the config.
package jsassets
