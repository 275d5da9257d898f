package main

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/kafkaconn"
)

// registerKafkaSecurity defines the Kafka TLS and SASL flags (and their
// LEADCONV_* variables) of every command that talks to a Kafka cluster.
func registerKafkaSecurity(fs *flagSet, o *kafkaconn.Options) {
	o.Register(fs.FlagSet)
	for _, n := range kafkaconn.FlagNames {
		fs.fromEnv(n)
	}
}

// connectKafka returns the client options of o after checking them against
// brokers: a wrong password or an untrusted certificate stops start-up with
// the broker and the cause instead of endless retries. A broker that is not
// up yet is left to the start-up wait (ops.AwaitDependencies).
func connectKafka(ctx context.Context, o *kafkaconn.Options, brokers []string) ([]kgo.Opt, error) {
	opts, err := o.ClientOpts()
	if err != nil {
		return nil, usagef("%v", err)
	}
	if err := o.Check(ctx, brokers, opts); err != nil && kafkaconn.Fatal(err) {
		return nil, err
	}
	return opts, nil
}
