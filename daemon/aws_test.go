package daemon

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fanoutd/fanoutd/config"
)

// The credential chain is named in the SDK's order, with what this process
// set for each step.
func TestCredentialChain(t *testing.T) {
	home := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
		"AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", home)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIA")
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg := config.Default()
	cfg.AWS.Profile = "prod"
	got := credentialChain(cfg)
	for _, want := range []string{
		"1. the environment (set: AWS_ACCESS_KEY_ID)",
		"2. the shared credentials and config files " + filepath.Join(home, ".aws", "credentials") + " and " + filepath.Join(home, ".aws", "config") + `, profile "prod"`,
		"3. web identity (set: AWS_ROLE_ARN)",
		"4. the ECS container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, AWS_CONTAINER_CREDENTIALS_FULL_URI: unset)",
		"5. EC2 instance metadata (IMDS), disabled by AWS_EC2_METADATA_DISABLED",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("credentialChain lacks %q:\n%s", want, got)
		}
	}
}
