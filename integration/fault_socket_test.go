package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sandboxapi "github.com/containerd/containerd/api/runtime/sandbox/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

// peerProbeEnv makes the test binary, run as another user, probe a shim
// socket instead of running tests.
const peerProbeEnv = "PAUSE_IT_PEER_SOCKET"

// probeAsPeer calls PingSandbox on the socket and exits 0 if the call was
// answered, 3 if the shim refused the connection.
func probeAsPeer(socket string) int {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Println("peer: dial:", err)
		return 2
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = sandboxapi.NewTTRPCSandboxClient(client).PingSandbox(ctx, &sandboxapi.PingRequest{SandboxID: "probe"})
	if err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		fmt.Println("peer: refused:", err)
		return 3
	}
	fmt.Println("peer: answered:", err)
	return 0
}

// TestShimSocketRefusesOtherUsers: a pod's shim socket is root's, mode 0600,
// and the shim refuses a peer of another uid even when file permissions are
// bypassed (CAP_DAC_OVERRIDE); root is answered.
func TestShimSocketRefusesOtherUsers(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)
	p := runCRIPod(t, ctx, rt, podConfig(t, "socket", false), "pause")
	state, err := os.ReadFile(filepath.Join(env.Dir, "state", "io.containerd.sandbox.controller.v1.shim", criNamespace, p.id, "pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pod struct{ Sockets []string }
	if err := json.Unmarshal(state, &pod); err != nil || len(pod.Sockets) == 0 {
		t.Fatalf("no socket in the pod's state: %s %v", state, err)
	}
	socket := strings.TrimPrefix(pod.Sockets[0], "unix://")
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || st.Uid != 0 {
		t.Errorf("shim socket mode %v uid %d, want 0600 root", fi.Mode().Perm(), st.Uid)
	}
	if code := probeAsPeer(socket); code != 0 {
		t.Fatalf("root's probe was refused (%d)", code)
	}
	// The test binary, runnable by another user, as uid 65534 with
	// CAP_DAC_OVERRIDE so that only the shim's own check can refuse it.
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(env.Dir, "peer-probe")
	if err := os.WriteFile(probe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(probe)
	cmd := exec.Command(probe)
	cmd.Env = append(os.Environ(), peerProbeEnv+"="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
		AmbientCaps: []uintptr{unix.CAP_DAC_OVERRIDE},
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("a peer of another uid: %v: %s", err, out)
	}
}
