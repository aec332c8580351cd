package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"

	"github.com/fanoutd/fanoutd/config"
)

// checkAWS makes sure, before any stream starts, that the SDK finds
// credentials and that AWS answers DescribeStreamSummary for every stream,
// retrying within aws.startup_timeout. While it retries, /readyz and the
// systemd STATUS line say why the daemon is not ready. No credentials by
// the bound, or AWS refusing the credentials or the permission, is a
// ConfigError naming the credential chain tried and how to fix it; AWS
// unreachable by the bound is a plain error (a restart may cure it). A
// stream that does not exist passes: its consumer reports it.
func (d *Daemon) checkAWS(ctx context.Context, cfg *config.Config) error {
	bound := time.Duration(cfg.AWS.StartupTimeout)
	if bound <= 0 {
		bound = config.DefaultAWSStartupTimeout
	}
	bctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	defer d.mon.SetWaiting("")
	wait := time.Duration(cfg.Timers.BackoffInitial)
	maxWait := time.Duration(cfg.Timers.BackoffMax)
	var credErr, callErr error
	for attempt := 1; ; attempt++ {
		c, e := d.awsAttempt(bctx, cfg)
		if (c != nil || e != nil) && bctx.Err() != nil && attempt > 1 {
			// The bound ended this attempt: the previous one's errors say more.
			c, e = credErr, callErr
		}
		credErr, callErr = c, e
		switch {
		case credErr == nil && callErr == nil:
			if attempt > 1 {
				d.log.Info().Int("attempts", attempt).Msg("AWS credentials found and every stream described")
			}
			return nil
		case credErr == nil && refused(callErr):
			return &ConfigError{fmt.Errorf("%w: AWS refused the credentials or a permission: check which credentials the SDK found (%s), and grant them the IAM permissions listed in docs/operations.md#iam",
				callErr, credentialSource(ctx, d.kc))}
		}
		what, err := "AWS did not answer yet", callErr
		if credErr != nil {
			what, err = "no AWS credentials yet", credErr
		}
		d.mon.SetWaiting(what + ": " + firstLine(err))
		if attempt == 1 || attempt%10 == 0 {
			d.log.Warn().Err(err).Int("attempt", attempt).Str("startup_timeout", bound.String()).Str("reason", what).
				Msg("waiting for AWS; retrying")
		}
		t := time.NewTimer(wait)
		select {
		case <-bctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if credErr != nil {
				return &ConfigError{fmt.Errorf("no AWS credentials found within aws.startup_timeout (%v): %s. Last error: %v. %s",
					bound, credentialChain(cfg), credErr, credentialFix())}
			}
			return fmt.Errorf("AWS did not answer within aws.startup_timeout (%v): %w: check the network path to Kinesis (aws.region, aws.endpoint, AWS_ENDPOINT_URL_KINESIS, proxies)", bound, callErr)
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// awsAttempt resolves the credentials, then describes every stream. It
// returns the credentials' error, or the first call's.
func (d *Daemon) awsAttempt(ctx context.Context, cfg *config.Config) (credErr, callErr error) {
	if p := d.kc.Options().Credentials; p != nil {
		if _, err := p.Retrieve(ctx); err != nil {
			return err, nil
		}
	}
	for _, s := range cfg.Streams {
		in := &kinesis.DescribeStreamSummaryInput{}
		if s.ARN != "" {
			in.StreamARN = aws.String(s.ARN)
		} else {
			in.StreamName = aws.String(s.Name)
		}
		_, err := d.kc.DescribeStreamSummary(ctx, in)
		var ae smithy.APIError
		if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException") {
			return nil, fmt.Errorf("describe stream %s: %w", s.StreamName(), err)
		}
	}
	return nil, nil
}

// refused reports whether AWS answered that the credentials or their
// permissions are wrong.
func refused(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && operatorCodes[ae.ErrorCode()]
}

// credentialChain names, in the SDK's order (aws-sdk-go-v2 config's
// default chain), where credentials were looked for, with what this
// process has set for each.
func credentialChain(cfg *config.Config) string {
	env := func(keys ...string) string {
		var set []string
		for _, k := range keys {
			if os.Getenv(k) != "" {
				set = append(set, k)
			}
		}
		if len(set) == 0 {
			return strings.Join(keys, ", ") + ": unset"
		}
		return "set: " + strings.Join(set, ", ")
	}
	profile := cfg.AWS.Profile
	if profile == "" {
		profile = os.Getenv("AWS_PROFILE")
	}
	if profile == "" {
		profile = "default"
	}
	credFile := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" {
		credFile = awsconfig.DefaultSharedCredentialsFilename()
	}
	confFile := os.Getenv("AWS_CONFIG_FILE")
	if confFile == "" {
		confFile = awsconfig.DefaultSharedConfigFilename()
	}
	imds := "EC2 instance metadata (IMDS)"
	if strings.EqualFold(os.Getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		imds += ", disabled by AWS_EC2_METADATA_DISABLED"
	}
	return fmt.Sprintf("the SDK's default chain tried, in order: 1. the environment (%s); "+
		"2. the shared credentials and config files %s and %s, profile %q (static keys, SSO, assume role, credential_process); "+
		"3. web identity (%s); 4. the ECS container endpoint (%s); 5. %s",
		env("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), credFile, confFile, profile,
		env("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"),
		env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"), imds)
}

// credentialFix says how to give fanoutd credentials.
func credentialFix() string {
	return "Fix: attach an IAM role with the Kinesis permissions of docs/operations.md#iam to the instance (or the pod or task), " +
		"or set aws.profile to a profile of the shared files readable by this user, " +
		"or put AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the EnvironmentFile (/etc/fanoutd/fanoutd.env); then start fanoutd again"
}

// firstLine is err's message up to its first line break.
func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// credentialSource names the provider of the credentials the SDK found
// (such as EnvConfigCredentials, SharedConfigCredentials, EC2RoleProvider).
func credentialSource(ctx context.Context, kc *kinesis.Client) string {
	p := kc.Options().Credentials
	if p == nil {
		return "none"
	}
	c, err := p.Retrieve(ctx)
	if err != nil || c.Source == "" {
		return "unknown"
	}
	return c.Source
}
