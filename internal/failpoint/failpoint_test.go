package failpoint

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// childEnv makes the test binary, run again, call Inject on the named
// failpoint instead of running the tests.
const childEnv = "FAILPOINT_TEST_INJECT"

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		Inject(name)
		Inject(name)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// inject runs Inject(name) twice in a child with the given environment, and
// tells whether the child was killed.
func inject(t *testing.T, name string, env ...string) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+name)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	return false
}

// TestKillOnce: in a failpoint build, a point armed (by the file, or by
// GOFAIL_FAILPOINTS) with kill:MARKER kills the process that reaches it
// once: the marker names the process, and the next process passes. A point
// not armed, or armed with another action, lets the process go on. In the
// release build, nothing kills.
func TestKillOnce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "terms")
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(file, []byte(PodStartAfterState+`=return("kill:`+marker+`")`), 0o644); err != nil {
		t.Fatal(err)
	}
	fileEnv := FileEnv + "=" + file
	if inject(t, PodStartAfterFiles, fileEnv) {
		t.Error("a point not armed killed the process")
	}
	killed := inject(t, PodStartAfterState, fileEnv)
	if killed != Enabled {
		t.Fatalf("armed point: killed %v, failpoint build %v", killed, Enabled)
	}
	if !Enabled {
		if _, err := os.Stat(marker); err == nil {
			t.Error("the release build acted on a failpoint")
		}
		return
	}
	if data, err := os.ReadFile(marker); err != nil || !strings.HasPrefix(string(data), PodStartAfterState+": pid ") {
		t.Errorf("marker: %q %v", data, err)
	}
	if inject(t, PodStartAfterState, fileEnv) {
		t.Error("a point killed twice with one marker")
	}
	// gofail's own environment variable arms the same points.
	os.Remove(marker)
	if !inject(t, ShimDeleteEnd, "GOFAIL_FAILPOINTS="+ShimDeleteEnd+`=return("kill:`+marker+`")`) {
		t.Error("GOFAIL_FAILPOINTS did not arm the point")
	}
	// Other terms go on: sleep, a return that is not a kill.
	if inject(t, ShimDeleteBegin, "GOFAIL_FAILPOINTS="+ShimDeleteBegin+`=sleep(1);`+ShimDeleteEnd+`=return("other")`) {
		t.Error("sleep killed the process")
	}
	if inject(t, ShimDeleteEnd, "GOFAIL_FAILPOINTS="+ShimDeleteEnd+`=return("other")`) {
		t.Error("a return other than kill killed the process")
	}
}

// TestNamesUnique: every failpoint has its own name (gofail refuses a
// name registered twice).
func TestNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range All {
		if seen[n] || n == "" {
			t.Errorf("failpoint name %q repeated or empty", n)
		}
		seen[n] = true
	}
}
