// Package integration drives the shim through a real containerd, runc, ctr
// with CRI (package testenv starts them), then checks that nothing the tests
// made is left on the host.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

const (
	runtimeName  = testenv.RuntimeName
	criNamespace = testenv.CRINamespace
	busyboxImage = testenv.BusyboxImage
)

// env is the private containerd the tests share; skip says why the tests
// cannot run here, when they cannot.
var (
	env  *testenv.Env
	skip string
)

func TestMain(m *testing.M) {
	if socket := os.Getenv(peerProbeEnv); socket != "" {
		os.Exit(probeAsPeer(socket)) // a child of TestShimSocketRefusesOtherUsers
	}
	code := func() int {
		repo, _ := filepath.Abs("..")
		shim, missing := testenv.Prerequisites(repo)
		if missing != "" {
			skip = "integration tests: " + missing
			return m.Run()
		}
		e, err := testenv.Start(repo, shim, fmt.Sprintf("pause-it-%d", os.Getpid()), denseRuntimes()...)
		env = e
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			env.Stop()
			return 1
		}
		code := m.Run()
		if leaks := env.Leaks(); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "integration: the suite left behind:\n  %s\n", strings.Join(leaks, "\n  "))
			code = 1
		}
		if code == 0 {
			os.RemoveAll(env.Dir)
		} else {
			fmt.Fprintln(os.Stderr, "integration: containerd log kept in", filepath.Join(env.Dir, "containerd.log"))
		}
		return code
	}()
	os.Exit(code)
}

// requireEnv skips a test only when its prerequisites are truly missing.
func requireEnv(t *testing.T) context.Context {
	t.Helper()
	if skip != "" {
		t.Skip(skip)
	}
	deadline := 2 * time.Minute
	if testenv.Slow() {
		deadline = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), env.Namespace), deadline)
	t.Cleanup(cancel)
	return ctx
}

// ctr runs the real ctr against the private containerd.
func ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("ctr", append(env.CtrArgs(env.Namespace), args...)...)
	out, err := cmd.CombinedOutput()
	return dropDeprecation(string(out)), err
}

// dropDeprecation removes ctr's cgroup v1 warning from its output.
func dropDeprecation(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "DEPRECATION") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// Handlers whose pods share shims (PodsPerShim): no limit, and two and ten
// pods a shim.
const (
	denseHandler = "pause-dense"
	pairHandler  = "pause-pair"
	tenHandler   = "pause-ten"
)

func denseRuntimes() []testenv.Option {
	return []testenv.Option{
		testenv.WithRuntime(testenv.Runtime{Name: denseHandler, Options: "PodsPerShim = 0"}),
		testenv.WithRuntime(testenv.Runtime{Name: pairHandler, Options: "PodsPerShim = 2"}),
		testenv.WithRuntime(testenv.Runtime{Name: tenHandler, Options: "PodsPerShim = 10"}),
	}
}
