package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tether-gw/tether/internal/testkit"
)

// haproxyBlock matches a ```haproxy fenced block of a Markdown file; group 1 is its body.
var haproxyBlock = regexp.MustCompile("(?ms)^```haproxy\n(.*?)^```")

// sectionLine matches a global or defaults section header.
var sectionLine = regexp.MustCompile(`(?m)^(global|defaults)\b`)

// TestDeployDocHAProxyConfigs: every haproxy configuration in docs/DEPLOY.md is one
// haproxy accepts without a warning (haproxy -dW -c). The first block is the global and
// defaults sections; each later block is checked appended to it, with the certificate
// path replaced by a real PEM file (haproxy loads certificates when it checks).
func TestDeployDocHAProxyConfigs(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy not installed: apt-get install haproxy")
	}
	doc, err := os.ReadFile("../../docs/DEPLOY.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := haproxyBlock.FindAllSubmatch(doc, -1)
	if len(blocks) < 5 {
		t.Fatalf("docs/DEPLOY.md has %d haproxy blocks, want the common settings and at least 4 shapes", len(blocks))
	}
	common := string(blocks[0][1])
	if len(sectionLine.FindAllString(common, -1)) != 2 {
		t.Fatalf("the first haproxy block must be the global and defaults sections:\n%s", common)
	}
	pemPath, _ := testkit.ServerPEM(t)
	dir := t.TempDir()
	for i, b := range blocks[1:] {
		body := strings.ReplaceAll(string(b[1]), "/etc/haproxy/certs/tether.pem", pemPath)
		if sectionLine.MatchString(body) {
			t.Errorf("block %d repeats the global or defaults section", i+1)
		}
		cfg := filepath.Join(dir, "check.cfg")
		if err := os.WriteFile(cfg, []byte(common+"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-dW", "-c", "-f", cfg).CombinedOutput(); err != nil {
			t.Errorf("haproxy refuses block %d of docs/DEPLOY.md: %v\n%s\n--- block ---\n%s", i+1, err, out, b[1])
		}
	}
}
