package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/sandbox"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBadInput(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "dup", podSpec("dup"))

	// createSandbox goes through containerd's sandbox store and its shim
	// controller to the shim, as ctr and CRI do, and removes what it made.
	createSandbox := func(id string, spec *specs.Spec, opts ...sandbox.CreateOpt) error {
		meta := sandbox.Sandbox{ID: id, Sandboxer: "shim", Runtime: sandbox.RuntimeOpts{Name: runtimeName}}
		if spec != nil {
			any, err := typeurl.MarshalAny(spec)
			if err != nil {
				t.Fatal(err)
			}
			meta.Spec = any
		}
		meta, err := env.Client.SandboxStore().Create(ctx, meta)
		if err != nil {
			return err
		}
		defer env.Client.SandboxStore().Delete(ctx, id)
		ctrl := env.Client.SandboxController(meta.Sandboxer)
		if err := ctrl.Create(ctx, meta, opts...); err != nil {
			return err
		}
		t.Errorf("sandbox %s was created", id)
		return ctrl.Shutdown(ctx, id)
	}

	notNetNS := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notNetNS, nil, 0o600)
	badIPC := podSpec("bad")
	badIPC.Linux.Namespaces[1].Path = "/proc/1/ns/ipc"

	for _, tc := range []struct {
		name string
		err  error
		kind func(error) bool
	}{
		{"id with slash", createSandbox("a/b", podSpec("x")), errdefs.IsInvalidArgument},
		{"id with dots", createSandbox("..", podSpec("x")), errdefs.IsInvalidArgument},
		{"id with NUL", createSandbox("a\x00b", podSpec("x")), errdefs.IsInvalidArgument},
		{"id over 1 KiB", createSandbox(strings.Repeat("a", 1100), podSpec("x")), errdefs.IsInvalidArgument},
		{"duplicate id", createSandbox("dup", podSpec("x")), errdefs.IsAlreadyExists},
		{"missing netns", createSandbox("netns-missing", podSpec("x"), sandbox.WithNetNSPath("/nonexistent/netns")), errdefs.IsInvalidArgument},
		{"netns not a netns", createSandbox("netns-file", podSpec("x"), sandbox.WithNetNSPath(notNetNS)), errdefs.IsInvalidArgument},
		{"host netns", createSandbox("netns-host", podSpec("x"), sandbox.WithNetNSPath("/proc/1/ns/net")), errdefs.IsInvalidArgument},
		{"options not a pod config", createSandbox("bad-options", nil, sandbox.WithOptions(&apitypes.Platform{OS: "not-a-pod-config"})), errdefs.IsInvalidArgument},
		{"spec joins host ipc", createSandbox("bad-spec", badIPC), errdefs.IsInvalidArgument},
		{"unknown sandbox", func() error { _, err := env.Client.SandboxController("shim").Wait(ctx, "no-such-pod"); return err }(), errdefs.IsNotFound},
	} {
		if tc.err == nil || !tc.kind(tc.err) {
			t.Errorf("%s: got error %v", tc.name, tc.err)
		}
	}
	// The pod the duplicate named is untouched.
	pausePid(t, ctx, "dup")
}

func TestShimVersionAndInfo(t *testing.T) {
	requireEnv(t)
	out, err := exec.Command(env.Shim, "-v").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Version:") {
		t.Errorf("-v: %v: %s", err, out)
	}
	cmd := exec.Command(env.Shim, "-info")
	cmd.Stdin = strings.NewReader("")
	out, err = cmd.Output()
	if err != nil || !strings.Contains(string(out), runtimeName) || !strings.Contains(string(out), "runtime-spec") {
		t.Errorf("-info: %v: %q", err, out)
	}
}
