package fanout

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// The Kinesis admin calls behind `fanoutd consumers`: looking up a stream and
// its EFO consumers, deregistering one. Errors say what to check.

// DescribeStreamARN resolves a stream name or ARN to its ARN.
func DescribeStreamARN(ctx context.Context, kc *kinesis.Client, stream string) (string, error) {
	in := &kinesis.DescribeStreamSummaryInput{}
	if strings.HasPrefix(stream, "arn:") {
		in.StreamARN = aws.String(stream)
	} else {
		in.StreamName = aws.String(stream)
	}
	out, err := kc.DescribeStreamSummary(ctx, in)
	if err != nil {
		if errorCode(err) == codeResourceNotFound {
			return "", fmt.Errorf("%w: stream %s not found in region %s: check the stream name and the region (--region, aws.region or AWS_REGION)", ErrStreamNotFound, stream, kc.Options().Region)
		}
		return "", fmt.Errorf("describe stream %s: %w", stream, err)
	}
	return aws.ToString(out.StreamDescriptionSummary.StreamARN), nil
}

// ListConsumers returns every consumer of the stream, all pages.
func ListConsumers(ctx context.Context, kc *kinesis.Client, streamARN string) ([]types.Consumer, error) {
	var out []types.Consumer
	p := kinesis.NewListStreamConsumersPaginator(kc, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(streamARN)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list consumers of %s: %w", streamARN, err)
		}
		out = append(out, page.Consumers...)
	}
	return out, nil
}

// DescribeConsumer describes the consumer named name on the stream;
// ErrConsumerNotFound when there is none.
func DescribeConsumer(ctx context.Context, kc *kinesis.Client, streamARN, name string) (*types.ConsumerDescription, error) {
	d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(streamARN), ConsumerName: aws.String(name)})
	if err != nil {
		if errorCode(err) == codeResourceNotFound {
			return nil, fmt.Errorf("%w: %s", ErrConsumerNotFound, name)
		}
		return nil, fmt.Errorf("describe consumer %s: %w", name, err)
	}
	return d.ConsumerDescription, nil
}

// DeregisterConsumer deregisters a consumer by its ARN.
func DeregisterConsumer(ctx context.Context, kc *kinesis.Client, consumerARN string) error {
	_, err := kc.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
	switch {
	case err == nil:
		return nil
	case errorCode(err) == codeAccessDenied:
		return fmt.Errorf("deregister consumer %s: %w (the IAM policy needs kinesis:DeregisterStreamConsumer on the consumer ARN)", consumerARN, err)
	}
	return fmt.Errorf("deregister consumer %s: %w", consumerARN, err)
}

// WaitConsumerGone polls until the consumer no longer exists (DELETING
// takes a few seconds on AWS) or ctx ends.
func WaitConsumerGone(ctx context.Context, kc *kinesis.Client, consumerARN string) error {
	poll := newBackoff(100*time.Millisecond, 2*time.Second)
	for {
		_, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
		switch {
		case errorCode(err) == codeResourceNotFound:
			return nil
		case err != nil && ctx.Err() == nil:
			return fmt.Errorf("describe consumer %s: %w", consumerARN, err)
		}
		if !sleep(ctx, poll.Next()) {
			return fmt.Errorf("consumer %s is still DELETING: %w", consumerARN, ctx.Err())
		}
	}
}
