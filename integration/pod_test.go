package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apitypes "github.com/containerd/containerd/api/types"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/sandbox"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// podSpec is the OCI spec `ctr sandbox run` takes: a pod with its own
// network, IPC, UTS and PID namespaces.
func podSpec(hostname string) *specs.Spec {
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname,
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
			{Type: specs.UTSNamespace}, {Type: specs.PIDNamespace},
		}},
	}
}

// runPod starts a pod with `ctr sandbox run` and removes it at the end.
func runPod(t *testing.T, id string, spec *specs.Spec) {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := ctr(t, "sandbox", "run", "--runtime", runtimeName, path, id); err != nil {
		t.Fatalf("ctr sandbox run: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := ctr(t, "sandbox", "rm", id); err != nil {
			t.Errorf("ctr sandbox rm: %v: %s", err, out)
		}
	})
}

// runInPod starts a detached container in the pod with `ctr run --sandbox`.
func runInPod(t *testing.T, pod, id string, args ...string) {
	t.Helper()
	cmd := append([]string{"run", "-d", "--rootfs", env.Rootfs, "--runtime", runtimeName}, sandboxFlag(pod)...)
	cmd = append(cmd, id)
	if out, err := ctr(t, append(cmd, args...)...); err != nil {
		t.Fatalf("ctr run %s: %v: %s", id, err, out)
	}
	t.Cleanup(func() { removeContainer(t, id) })
}

func sandboxFlag(pod string) []string {
	if pod == "" {
		return nil
	}
	return []string{"--sandbox", pod}
}

func removeContainer(t *testing.T, id string) {
	t.Helper()
	if out, err := ctr(t, "task", "rm", "-f", id); err != nil && !strings.Contains(out, "not found") {
		t.Errorf("ctr task rm %s: %v: %s", id, err, out)
	}
	if out, err := ctr(t, "container", "rm", id); err != nil && !strings.Contains(out, "not found") {
		t.Errorf("ctr container rm %s: %v: %s", id, err, out)
	}
}

func controller(t *testing.T, ctx context.Context, id string) sandbox.Controller {
	t.Helper()
	sb, err := env.Client.LoadSandbox(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return env.Client.SandboxController(sb.Metadata().Sandboxer)
}

func pausePid(t *testing.T, ctx context.Context, id string) int {
	t.Helper()
	st, err := controller(t, ctx, id).Status(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "SANDBOX_READY" || st.Pid == 0 {
		t.Fatalf("sandbox %s: state %q pid %d, want SANDBOX_READY", id, st.State, st.Pid)
	}
	return int(st.Pid)
}

func loadTask(t *testing.T, ctx context.Context, id string) containerd.Task {
	t.Helper()
	c, err := env.Client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func nsOf(t *testing.T, pid int, ns string) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return link
}

func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

// children lists the pids whose parent is pid, and how many are zombies.
func children(pid int) (all, zombies int) {
	for _, st := range childStats(pid) {
		all++
		if st.state == "Z" {
			zombies++
		}
	}
	return all, zombies
}

// childPids lists the pids of pid's children that are not zombies.
func childPids(pid int) []int {
	var pids []int
	for _, st := range childStats(pid) {
		if st.state != "Z" {
			pids = append(pids, st.pid)
		}
	}
	return pids
}

type childStat struct {
	pid   int
	state string
}

// childStats reads the pid and state of each of pid's children.
func childStats(pid int) []childStat {
	var kids []childStat
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			kids = append(kids, childStat{pid: child, state: f[0]})
		}
	}
	return kids
}

func TestPodSharesNamespacesAndLoopback(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "share", podSpec("share-pod"))
	runInPod(t, "share", "share-srv", "/bin/sh", "-c", "while true; do nc -l -p 8080 -e echo hello-from-srv; done")
	pause := pausePid(t, ctx, "share")
	srv := int(loadTask(t, ctx, "share-srv").Pid())

	for _, ns := range []string{"net", "ipc", "uts", "pid"} {
		if got, want := nsOf(t, srv, ns), nsOf(t, pause, ns); got != want {
			t.Errorf("%s namespace of container %s, of pause task %s", ns, got, want)
		}
		if nsOf(t, pause, ns) == nsOf(t, os.Getpid(), ns) {
			t.Errorf("pause task shares the host's %s namespace", ns)
		}
	}
	// A second container reaches the first over the pod's loopback and sees
	// the pod's hostname and its processes.
	var out string
	var err error
	for i := 0; i < 50; i++ {
		out, err = ctr(t, "run", "--rm", "--rootfs", env.Rootfs, "--runtime", runtimeName, "--sandbox", "share", "share-cli",
			"/bin/sh", "-c", "hostname; ps; nc 127.0.0.1 8080")
		if err == nil && strings.Contains(out, "hello-from-srv") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !strings.Contains(out, "hello-from-srv") {
		t.Fatalf("client container did not reach the server over 127.0.0.1: %v: %s", err, out)
	}
	if !strings.Contains(out, "share-pod") {
		t.Errorf("hostname in the pod: want share-pod in %q", out)
	}
	if !strings.Contains(out, "nc -l -p 8080") || !strings.Contains(out, "pause") {
		t.Errorf("ps in one container should list the other's processes and the pause task: %s", out)
	}
}

func TestPauseTaskLeastPrivilege(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "priv", podSpec("priv"))
	pid := pausePid(t, ctx, "priv")
	for field, want := range map[string]string{"CapEff": "0000000000000000", "CapPrm": "0000000000000000",
		"CapBnd": "0000000000000000", "NoNewPrivs": "1", "Uid": "65535\t65535\t65535\t65535"} {
		if got := procStatus(t, pid, field); got != want {
			t.Errorf("pause task %s = %q, want %q", field, got, want)
		}
	}
	// PID 1 of the pod's PID namespace.
	if nspid := strings.Fields(procStatus(t, pid, "NSpid")); nspid[len(nspid)-1] != "1" {
		t.Errorf("pause task NSpid %v, want PID 1 in its namespace", nspid)
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil || len(entries) != 0 {
		t.Errorf("pause task root should be empty: %v %v", entries, err)
	}
	// Its memory is a few pages: the stock static pause takes ~700 KB.
	if rss := procStatus(t, pid, "VmRSS"); len(strings.Fields(rss)) == 0 {
		t.Errorf("no VmRSS: %q", rss)
	} else if kb, _ := strconv.Atoi(strings.Fields(rss)[0]); kb > 256 {
		t.Errorf("pause task RSS %d kB, want a few pages", kb)
	}
}

func TestZombiesAreReaped(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "reap", podSpec("reap"))
	pause := pausePid(t, ctx, "reap")
	// Each subshell exits at once, so its sleep is orphaned and re-parented
	// to the pod's PID 1, the pause task. The orphans live until the test
	// kills them, however slowly a loaded machine spawns them: the pause
	// task must then reap every one.
	const orphans = 1000
	runInPod(t, "reap", "reap-orphans", "/bin/sh", "-c",
		fmt.Sprintf("i=0; while [ $i -lt %d ]; do (sleep 1000 &); i=$((i+1)); done; sleep 1000", orphans))
	deadline := time.Now().Add(3 * time.Minute)
	var adopted []int
	for time.Now().Before(deadline) && len(adopted) < orphans {
		adopted = childPids(pause)
		time.Sleep(50 * time.Millisecond)
	}
	if len(adopted) < orphans {
		t.Fatalf("pause task adopted %d orphans, want %d", len(adopted), orphans)
	}
	for _, pid := range adopted {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill orphan %d: %v", pid, err)
		}
	}
	for deadline = time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if all, _ := children(pause); all == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	all, zombies := children(pause)
	t.Fatalf("pause task still has %d children (%d zombies) after the orphans were killed", all, zombies)
}

func TestPlainContainerDropIn(t *testing.T) {
	requireEnv(t)
	out, err := ctr(t, "run", "--rm", "--rootfs", env.Rootfs, "--runtime", runtimeName, "plain",
		"/bin/sh", "-c", "echo plain-ok; exit 3")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("ctr run: want exit status 3, got %v: %s", err, out)
	}
	if !strings.Contains(out, "plain-ok") {
		t.Errorf("output %q", out)
	}
}

// startInPod creates a container in the pod with the Go client, which gives
// the tests its exit statuses and IO.
func startInPod(t *testing.T, ctx context.Context, pod, id string, args ...string) (containerd.Container, containerd.Task) {
	t.Helper()
	opts := []containerd.NewContainerOpts{
		containerd.WithNewSpec(oci.WithRootFSPath(env.Rootfs), oci.WithProcessArgs(args...)),
		containerd.WithRuntime(runtimeName, nil),
	}
	if pod != "" {
		opts = append(opts, containerd.WithSandbox(pod))
	}
	c, err := env.Client.NewContainer(ctx, id, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeContainer(t, id) })
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c, task
}

func TestExecWithAndWithoutTTY(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "exec", podSpec("exec"))
	c, task := startInPod(t, ctx, "exec", "exec-c", "/bin/sleep", "1000")
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tty := range []bool{false, true} {
		pspec := *spec.Process
		pspec.Terminal = tty
		pspec.Args = []string{"/bin/sh", "-c", "sleep 0.3; if [ -t 1 ]; then echo is-a-tty; else echo not-a-tty; fi; exit 5"}
		var buf syncBuffer
		streams := []cio.Opt{cio.WithStreams(nil, &buf, &buf)}
		if tty {
			streams = append(streams, cio.WithTerminal)
		}
		id := fmt.Sprintf("e-%v", tty)
		p, err := task.Exec(ctx, id, &pspec, cio.NewCreator(streams...))
		if err != nil {
			t.Fatal(err)
		}
		wait, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if tty {
			if err := p.Resize(ctx, 100, 30); err != nil {
				t.Errorf("resize pty: %v", err)
			}
		}
		st := <-wait
		if st.ExitCode() != 5 {
			t.Errorf("exec tty=%v: exit %d, want 5", tty, st.ExitCode())
		}
		p.Delete(ctx)
		want := map[bool]string{false: "not-a-tty", true: "is-a-tty"}[tty]
		if got := buf.String(); !strings.Contains(got, want) {
			t.Errorf("exec tty=%v: output %q, want %q", tty, got, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the IO copier's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestKillWaitExitCodes(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "kill", podSpec("kill"))
	_, task := startInPod(t, ctx, "kill", "kill-sleep", "/bin/sleep", "1000")
	wait, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := <-wait; st.ExitCode() != 128+uint32(syscall.SIGTERM) {
		t.Errorf("killed with SIGTERM: exit %d, want 143", st.ExitCode())
	}
	_, task = startInPod(t, ctx, "kill", "kill-exit", "/bin/sh", "-c", "sleep 0.2; exit 7")
	wait, err = task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := <-wait; st.ExitCode() != 7 {
		t.Errorf("exit status %d, want 7", st.ExitCode())
	}
}

func TestStatsPauseResume(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "stats", podSpec("stats"))
	_, task := startInPod(t, ctx, "stats", "stats-c", "/bin/sleep", "1000")
	m, err := task.Metrics(ctx)
	if err != nil || m.Data == nil || len(m.Data.GetValue()) == 0 {
		t.Fatalf("task metrics: %v %v", m, err)
	}
	pm, err := controller(t, ctx, "stats").Metrics(ctx, "stats")
	if err != nil || pm.Data == nil || len(pm.Data.GetValue()) == 0 {
		t.Fatalf("sandbox metrics: %v %v", pm, err)
	}
	if err := task.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Paused {
		t.Errorf("after pause: %v %v", st.Status, err)
	}
	if err := task.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Errorf("after resume: %v %v", st.Status, err)
	}
}

func TestPodStopSignalsContainersFirst(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "stop", podSpec("stop"))
	marker := filepath.Join(env.Rootfs, "shared", fmt.Sprintf("stop-%d", os.Getpid()))
	t.Cleanup(func() { os.Remove(marker) })
	_, graceful := startInPod(t, ctx, "stop", "stop-graceful", "/bin/sh", "-c",
		fmt.Sprintf(`trap "echo got-term > /shared/%s; exit 0" TERM; while true; do sleep 0.1; done`, filepath.Base(marker)))
	_, stubborn := startInPod(t, ctx, "stop", "stop-stubborn", "/bin/sh", "-c", `trap "" TERM; while true; do sleep 0.1; done`)
	gwait, _ := graceful.Wait(ctx)
	swait, _ := stubborn.Wait(ctx)
	time.Sleep(300 * time.Millisecond) // let the shells install their traps

	const timeout = 3 * time.Second
	start := time.Now()
	if err := controller(t, ctx, "stop").Stop(ctx, "stop", sandbox.WithTimeout(timeout)); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < timeout || took > timeout+10*time.Second {
		t.Errorf("stop took %v: the container ignoring SIGTERM should hold it for the %v timeout", took, timeout)
	}
	if st := <-gwait; st.ExitCode() != 0 {
		t.Errorf("graceful container: exit %d, want 0 from its TERM handler", st.ExitCode())
	}
	if st := <-swait; st.ExitCode() != 137 {
		t.Errorf("stubborn container: exit %d, want 137 (SIGKILL at the timeout)", st.ExitCode())
	}
	// The handler ran, so the pause task (PID 1) was still there when the
	// containers got SIGTERM: its exit would have killed them outright.
	if data, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(data)) != "got-term" {
		t.Errorf("graceful container's TERM handler did not run: %q %v", data, err)
	}
	st, err := controller(t, ctx, "stop").Status(ctx, "stop", false)
	if err != nil || st.State != "SANDBOX_NOTREADY" {
		t.Errorf("after stop: state %q %v, want SANDBOX_NOTREADY", st.State, err)
	}
	// A stopped pod takes no new containers.
	out, err := ctr(t, "run", "--rootfs", env.Rootfs, "--runtime", runtimeName, "--sandbox", "stop", "stop-late", "/bin/true")
	removeContainer(t, "stop-late")
	if err == nil || !strings.Contains(out, "not ready") {
		t.Errorf("container in a stopped pod: want a 'not ready' error, got %v: %s", err, out)
	}
}

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
