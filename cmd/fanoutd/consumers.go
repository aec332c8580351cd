package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/fanoutd/fanoutd/config"
	"github.com/fanoutd/fanoutd/fanout"
)

// ConsumersCmd groups the commands on a stream's enhanced fan-out consumers.
// Each registered consumer is billed per shard-hour whether or not anything
// reads through it, and it stays registered when fanoutd stops.
type ConsumersCmd struct {
	List       ConsumersListCmd       `cmd:"" help:"List the EFO consumers registered on a stream."`
	Deregister ConsumersDeregisterCmd `cmd:"" help:"Deregister an EFO consumer (stops its billing; a running fanoutd that uses it registers it again)."`
}

// awsFlags select the Kinesis client: the aws section of --config when given,
// else --region, --profile and --endpoint, else the SDK's default chain.
type awsFlags struct {
	Config   string `short:"c" placeholder:"FILE" help:"Take region, profile and endpoint from the aws section of this config file."`
	Region   string `placeholder:"REGION" help:"AWS region (default: the SDK chain, e.g. AWS_REGION)."`
	Profile  string `placeholder:"NAME" help:"AWS shared config profile."`
	Endpoint string `placeholder:"URL" help:"Kinesis endpoint URL (e.g. the emulator's)."`
}

// client builds the Kinesis client, and returns the loaded config (nil
// without --config). A stream ARN supplies the region when no flag does.
func (f awsFlags) client(ctx context.Context, stream string) (*kinesis.Client, *config.Config, error) {
	o := fanout.ClientOptions{Region: f.Region, Profile: f.Profile, Endpoint: f.Endpoint}
	if a, err := fanout.ParseStreamARN(stream); err == nil && o.Region == "" {
		o.Region = a.Region
	}
	var cfg *config.Config
	if f.Config != "" {
		if f.Region != "" || f.Profile != "" || f.Endpoint != "" {
			return nil, nil, usageError{errors.New("give --config or --region/--profile/--endpoint, not both")}
		}
		var err error
		if cfg, err = loadConfig(f.Config); err != nil {
			return nil, nil, err
		}
		o = fanout.ClientOptions{Region: cfg.AWS.Region, Profile: cfg.AWS.Profile, Endpoint: cfg.AWS.Endpoint}
	}
	kc, err := fanout.NewClient(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return kc, cfg, nil
}

// ConsumersListCmd prints a table of the consumers of one stream, or of every
// stream in --config.
type ConsumersListCmd struct {
	awsFlags
	Stream string `short:"s" placeholder:"NAME|ARN" help:"Stream name or ARN (default with --config: every configured stream)."`
}

// Run lists the consumers.
func (c *ConsumersListCmd) Run(ctx context.Context, w io.Writer) error {
	kc, cfg, err := c.client(ctx, c.Stream)
	if err != nil {
		return err
	}
	// streams are named to Kinesis by refs, to the reader by names.
	refs, names := []string{c.Stream}, []string{c.Stream}
	if c.Stream == "" {
		if cfg == nil {
			return usageError{errors.New("consumers list: --stream is required (or --config, for every configured stream)")}
		}
		refs, names = refs[:0], names[:0]
		for _, s := range cfg.Streams {
			refs, names = append(refs, streamRef(s)), append(names, s.StreamName())
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(refs) > 1 {
		fmt.Fprintln(tw, "STREAM\tNAME\tSTATUS\tCREATED\tARN")
	} else {
		fmt.Fprintln(tw, "NAME\tSTATUS\tCREATED\tARN")
	}
	total := 0
	for i, s := range refs {
		arn, err := fanout.DescribeStreamARN(ctx, kc, s)
		if err != nil {
			return err
		}
		consumers, err := fanout.ListConsumers(ctx, kc, arn)
		if err != nil {
			return err
		}
		for _, cs := range consumers {
			if len(refs) > 1 {
				fmt.Fprintf(tw, "%s\t", names[i])
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", aws.ToString(cs.ConsumerName), cs.ConsumerStatus,
				aws.ToTime(cs.ConsumerCreationTimestamp).UTC().Format(time.RFC3339), aws.ToString(cs.ConsumerARN))
		}
		total += len(consumers)
	}
	if total == 0 {
		fmt.Fprintf(w, "no consumers registered on %s\n", strings.Join(refs, ", "))
		return nil
	}
	return tw.Flush()
}

// ConsumersDeregisterCmd deregisters one consumer by name.
type ConsumersDeregisterCmd struct {
	awsFlags
	Stream   string `short:"s" required:"" placeholder:"NAME|ARN" help:"Stream name or ARN."`
	Consumer string `required:"" placeholder:"NAME" help:"Name of the consumer to deregister."`
	Yes      bool   `short:"y" help:"Do not ask for confirmation (required when stdin is not a terminal)."`
	Wait     bool   `help:"Wait until the consumer is gone (DELETING takes a few seconds)."`
}

// confirmInput is where deregister reads its confirmation; tests replace it.
var confirmInput = func() (r io.Reader, terminal bool) { return os.Stdin, stdinIsTerminal() }

// Run deregisters the consumer after confirmation.
func (c *ConsumersDeregisterCmd) Run(ctx context.Context, std stdio) error {
	kc, _, err := c.client(ctx, c.Stream)
	if err != nil {
		return err
	}
	arn, err := fanout.DescribeStreamARN(ctx, kc, c.Stream)
	if err != nil {
		return err
	}
	desc, err := fanout.DescribeConsumer(ctx, kc, arn, c.Consumer)
	if errors.Is(err, fanout.ErrConsumerNotFound) {
		return fmt.Errorf("consumer %s is not registered on stream %s: see `fanoutd consumers list --stream %s`", c.Consumer, c.Stream, c.Stream)
	}
	if err != nil {
		return err
	}
	consumerARN := aws.ToString(desc.ConsumerARN)
	if desc.ConsumerStatus == types.ConsumerStatusDeleting {
		fmt.Fprintf(std.out, "consumer %s on stream %s is already DELETING\n", c.Consumer, c.Stream)
		return c.waitGone(ctx, kc, consumerARN, std.out)
	}
	if !c.Yes {
		in, terminal := confirmInput()
		if !terminal {
			return usageError{fmt.Errorf("consumers deregister: stdin is not a terminal, so there is no one to confirm: pass --yes to deregister consumer %s", c.Consumer)}
		}
		fmt.Fprintf(std.err, "Deregister consumer %s (%s, %s, created %s) from stream %s?\n"+
			"Subscriptions through it end at once; a fanoutd still configured with it registers it again.\n"+
			"Type yes to confirm: ", c.Consumer, consumerARN, desc.ConsumerStatus,
			aws.ToTime(desc.ConsumerCreationTimestamp).UTC().Format(time.RFC3339), c.Stream)
		line, _ := bufio.NewReader(in).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "yes" && a != "y" {
			return fmt.Errorf("not confirmed: consumer %s was not deregistered", c.Consumer)
		}
	}
	if err := fanout.DeregisterConsumer(ctx, kc, consumerARN); err != nil {
		return err
	}
	fmt.Fprintf(std.out, "consumer %s on stream %s: DELETING (%s)\n", c.Consumer, c.Stream, consumerARN)
	return c.waitGone(ctx, kc, consumerARN, std.out)
}

// waitGone waits, with --wait, until the consumer no longer exists.
func (c *ConsumersDeregisterCmd) waitGone(ctx context.Context, kc *kinesis.Client, consumerARN string, w io.Writer) error {
	if !c.Wait {
		return nil
	}
	if err := fanout.WaitConsumerGone(ctx, kc, consumerARN); err != nil {
		return err
	}
	fmt.Fprintf(w, "consumer %s on stream %s: deregistered\n", c.Consumer, c.Stream)
	return nil
}

// streamRef is how a configured stream is named to Kinesis: its ARN when the
// config gives one, else its name.
func streamRef(s config.StreamConfig) string {
	if s.ARN != "" {
		return s.ARN
	}
	return s.Name
}

// stdinIsTerminal reports whether stdin is an interactive terminal: a
// character device that is not /dev/null.
func stdinIsTerminal() bool {
	st, err := os.Stdin.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}
