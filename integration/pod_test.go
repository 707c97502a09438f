package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/sandbox"
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
