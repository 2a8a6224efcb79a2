package api

import (
	"os/exec"
	"testing"
)

// TestSnippetWithNode runs the snippet's DOM-free unit tests
// (testdata/stray-check.test.js) when node is installed.
func TestSnippetWithNode(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	out, err := exec.Command(node, "--test", "testdata/stray-check.test.js").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
