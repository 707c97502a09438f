package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCrunTooOldNamesBothVersions: a BinaryName whose runtime is too old
// for the spec containerd writes (Debian 12's crun 1.8.1 knows runtime-spec
// 1.0.0, containerd 2.4 writes 1.2.x) fails the container with an error
// that names the runtime's version and the spec's, not crun's bare
// "unknown version specified".
func TestCrunTooOldNamesBothVersions(t *testing.T) {
	requireEnv(t)
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Skip("needs crun (Debian's crun package; make deps installs it)")
	}
	config := filepath.Join(t.TempDir(), "crun.toml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("BinaryName = %q\n", crun)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ctr(t, "run", "--rm", "--rootfs", env.Rootfs, "--runtime", runtimeName, "--runtime-config-path", config,
		"old-crun", "/bin/true")
	_, _ = ctr(t, "container", "rm", "old-crun")
	if err == nil {
		t.Skipf("this crun runs containerd's spec (Debian 13's does): nothing to explain")
	}
	for _, w := range []string{"unknown version specified", crun, "crun version "} {
		if !strings.Contains(out, w) {
			t.Errorf("the error does not name %q: %s", w, out)
		}
	}
	if !regexp.MustCompile(`\(1\.\d+\.\d+, as containerd wrote it\)`).MatchString(out) {
		t.Errorf("the error does not name the spec's version: %s", out)
	}
	t.Logf("%s", out)
}
