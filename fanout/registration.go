package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// resolveStream describes the configured stream, retrying transient errors
// and waiting while it is being created. A stream that does not exist, or
// is being deleted, is ErrStreamNotFound.
func (c *StreamConsumer) resolveStream(ctx context.Context) (*types.StreamDescriptionSummary, error) {
	bo := newBackoff(c.timers.BackoffInitial, c.timers.BackoffMax)
	poll := newBackoff(c.timers.ConsumerPollInitial, c.timers.ConsumerPollMax)
	for {
		sum, err := c.describeStream(ctx)
		switch {
		case err == nil && sum.StreamStatus == types.StreamStatusCreating:
			c.log.Info().Msg("stream is being created; waiting until it is ACTIVE")
			if !sleep(ctx, poll.Next()) {
				return nil, ctx.Err()
			}
			continue
		case err == nil:
			return sum, nil
		case errors.Is(err, ErrStreamNotFound), errorCode(err) == codeAccessDenied:
			return nil, err
		}
		c.log.Warn().Err(err).Msg("describe stream failed, retrying")
		if !sleep(ctx, bo.Next()) {
			return nil, ctx.Err()
		}
	}
}

// describeStream is one DescribeStreamSummary of the configured stream. A
// stream that does not exist or is being deleted is ErrStreamNotFound.
func (c *StreamConsumer) describeStream(ctx context.Context) (*types.StreamDescriptionSummary, error) {
	in := &kinesis.DescribeStreamSummaryInput{}
	if c.spec.ARN != "" {
		in.StreamARN = aws.String(c.spec.ARN)
	} else {
		in.StreamName = aws.String(c.spec.Name)
	}
	out, err := c.client.DescribeStreamSummary(ctx, in)
	switch {
	case err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusDeleting:
		return nil, fmt.Errorf("%w: %s is being deleted", ErrStreamNotFound, c.spec.Name)
	case err == nil:
		return out.StreamDescriptionSummary, nil
	case errorCode(err) == codeResourceNotFound:
		return nil, fmt.Errorf("%w: %s: %v", ErrStreamNotFound, c.spec.Name, err)
	case errorCode(err) == codeAccessDenied:
		return nil, fmt.Errorf("describe stream %s: %w (the IAM policy needs kinesis:DescribeStreamSummary)", c.spec.Name, err)
	}
	return nil, fmt.Errorf("describe stream %s: %w", c.spec.Name, err)
}

// ensureConsumer registers the EFO consumer by its configured name, or reuses
// it when it exists, and waits until it is ACTIVE. With a configured
// consumer ARN it only waits. It returns the consumer's ARN.
func (c *StreamConsumer) ensureConsumer(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timers.ConsumerActiveTimeout)
	defer cancel()
	bo := newBackoff(c.timers.BackoffInitial, c.timers.BackoffMax)
	poll := newBackoff(c.timers.ConsumerPollInitial, c.timers.ConsumerPollMax)
	var refused limitRefusals
	for {
		arn, status, err := c.findOrRegister(ctx)
		switch {
		case err != nil && errors.Is(err, ErrStreamNotFound):
			return "", err
		case err != nil && errorCode(err) == codeAccessDenied:
			return "", err
		case err != nil:
			if c.spec.Read == ReadAuto {
				if why := c.efoRefusal(ctx, err, &refused); why != "" {
					return "", &errEFOUnavailable{why}
				}
			}
			if ctx.Err() != nil {
				return "", fmt.Errorf("consumer %s did not become ACTIVE within %v: %w", c.spec.Consumer, c.timers.ConsumerActiveTimeout, err)
			}
			c.log.Warn().Err(err).Msg("consumer registration failed, retrying")
			if !sleep(ctx, bo.Next()) {
				return "", fmt.Errorf("consumer %s: %w", c.spec.Consumer, err)
			}
			continue
		case status == types.ConsumerStatusActive:
			c.log.Info().Str("consumer_arn", arn).Msg("consumer ACTIVE")
			return arn, nil
		}
		c.log.Debug().Str("status", string(status)).Msg("waiting for the consumer to become ACTIVE")
		if !sleep(ctx, poll.Next()) {
			return "", fmt.Errorf("consumer %s is still %s after %v", c.spec.Consumer, status, c.timers.ConsumerActiveTimeout)
		}
	}
}

// findOrRegister describes the consumer, registering it when it does not
// exist. A consumer being deleted is waited out, then registered anew.
func (c *StreamConsumer) findOrRegister(ctx context.Context) (string, types.ConsumerStatus, error) {
	var in *kinesis.DescribeStreamConsumerInput
	if c.spec.ConsumerARN != "" {
		in = &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(c.spec.ConsumerARN)}
	} else {
		in = &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(c.streamARN), ConsumerName: aws.String(c.spec.Consumer)}
	}
	out, err := c.client.DescribeStreamConsumer(ctx, in)
	if err == nil {
		d := out.ConsumerDescription
		return aws.ToString(d.ConsumerARN), d.ConsumerStatus, nil
	}
	if errorCode(err) != codeResourceNotFound {
		return "", "", fmt.Errorf("describe consumer: %w", err)
	}
	if c.spec.ConsumerARN != "" {
		return "", "", fmt.Errorf("consumer_arn %s does not exist: %w", c.spec.ConsumerARN, err)
	}
	reg, err := c.client.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(c.streamARN), ConsumerName: aws.String(c.spec.Consumer)})
	if err != nil {
		if errorCode(err) == codeResourceInUse {
			// Registered meanwhile (another instance): describe it next round.
			return "", types.ConsumerStatusCreating, nil
		}
		if errorCode(err) == codeResourceNotFound {
			return "", "", fmt.Errorf("%w: %s: %v", ErrStreamNotFound, c.spec.Name, err)
		}
		return "", "", &registerError{err}
	}
	c.log.Info().Str("consumer_arn", aws.ToString(reg.Consumer.ConsumerARN)).Msg("registered EFO consumer")
	return aws.ToString(reg.Consumer.ConsumerARN), reg.Consumer.ConsumerStatus, nil
}

// consumerARN is the current consumer ARN; it changes when the consumer is
// registered anew after being deregistered behind our back.
func (e *efo) consumerARN() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.arn
}

// reregister is called by a shard loop whose consumer was not found. One
// caller at a time re-ensures the consumer; the others get its result.
func (e *efo) reregister(ctx context.Context, staleARN string) (string, error) {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	if cur := e.consumerARN(); cur != staleARN {
		return cur, nil
	}
	c := e.c
	// The stream may have been deleted and created again under its name (it
	// then has the same ARN and shard IDs, and none of our consumers): its
	// positions mean nothing there, so the stream is read anew.
	if sum, err := c.describeStream(ctx); err != nil {
		if errors.Is(err, ErrStreamNotFound) {
			return "", err
		}
	} else if created := aws.ToTime(sum.StreamCreationTimestamp); !created.Equal(c.created) {
		return "", fmt.Errorf("%w: it was deleted and created again (at %s)", ErrStreamNotFound, created.UTC().Format(time.RFC3339Nano))
	}
	c.log.Warn().Str("consumer_arn", staleARN).Msg("consumer not found; registering it again")
	arn, err := c.ensureConsumer(ctx)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.arn = arn
	e.mu.Unlock()
	return arn, nil
}
