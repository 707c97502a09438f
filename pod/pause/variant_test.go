package pause

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// releaseCFlags are the release build's flags, read from c/cflags (which
// hack/pause.sh builds the committed binaries with), so a
// variant a test builds differs from the release binary only by its -D
// defines (the release binary carries no test code).
func releaseCFlags(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("c", "cflags"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// buildVariant compiles c/pause.c with compiler cc, the release flags and
// defines, and returns the binary's path. A missing compiler skips the
// test, saying which package brings it.
func buildVariant(t *testing.T, cc string, defines ...string) string {
	t.Helper()
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("needs %s (Debian package %s; hack/deps.sh installs it)", cc, debianPackage(cc))
	}
	out := filepath.Join(t.TempDir(), "pause")
	args := append(releaseCFlags(t), defines...)
	args = append(args, "-o", out, filepath.Join("c", "pause.c"))
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, b)
	}
	return out
}

func debianPackage(cc string) string {
	if cc == "gcc" {
		return "gcc"
	}
	return "gcc-" + strings.TrimSuffix(cc, "-gcc")
}

// useBinary makes Start execute path instead of the embedded binary until
// the test ends.
func useBinary(t *testing.T, path string) {
	t.Helper()
	exeOnce, exePath, exeErr = sync.Once{}, "", nil
	exeOnce.Do(func() { exePath = path })
	t.Cleanup(func() { exeOnce, exePath, exeErr = sync.Once{}, "", nil })
}
