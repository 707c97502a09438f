package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// TestRuntimeOptions: each key of the runtime's CRI options table changes
// what it says, beside a handler without options that keeps the defaults;
// an unknown key or a bad value fails the pod with the key's name.
func TestRuntimeOptions(t *testing.T) {
	requireEnv(t)
	dir := t.TempDir()
	wrapper, calls := notingRunc(t, dir)
	runcRoot := filepath.Join(dir, "runc-root")
	// ShimCgroup must exist, as with runc.v2: the operator makes it.
	shimCgroup := fmt.Sprintf("/pause-it-shims-%d", os.Getpid())
	for _, root := range testenv.CgroupRoots() {
		if err := os.Mkdir(filepath.Join(root, shimCgroup), 0o755); err != nil {
			t.Fatal(err)
		}
		// A v1 cpuset cgroup takes no process before it has cpus and mems.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(root, f)); err == nil && !unifiedRoot(root) {
				if err := os.WriteFile(filepath.Join(root, shimCgroup, f), v, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	t.Cleanup(func() { removeCgroup(t, shimCgroup) })

	// containerd at info: debug lines can only come from LogLevel.
	other, err := testenv.Start(env.Repo, env.Shim, fmt.Sprintf("pause-options-%d", os.Getpid()),
		testenv.WithLogLevel("info"),
		testenv.WithRuntime(testenv.Runtime{Name: "pause-tuned", Options: fmt.Sprintf(`BinaryName = %q
Root = %q
ShimCgroup = %q
PauseUID = 4321
PauseGID = 4322
DefaultStopTimeout = "30s"
LogLevel = "debug"`, wrapper, runcRoot, shimCgroup)}),
		testenv.WithRuntime(testenv.Runtime{Name: "pause-typo", Options: `PauseUser = 1000`}),
		testenv.WithRuntime(testenv.Runtime{Name: "pause-loud", Options: `LogLevel = "loud"`}),
		testenv.WithRuntime(testenv.Runtime{Name: "pause-root", Options: `PauseUID = 0`}),
		testenv.WithRuntime(testenv.Runtime{Name: "pause-systemd", Options: `SystemdCgroup = true`}),
		// CRI creates the sandbox, fails to pull the pause image (none
		// here), and never starts nor shuts it down.
		testenv.WithRuntime(testenv.Runtime{Name: "pause-pulls", Options: `StartTimeout = "1s"`, PullPauseImage: true}))
	// Registered first, so it runs after the pods' own cleanups.
	t.Cleanup(func() {
		other.Stop()
		if leaks := other.Leaks(); len(leaks) > 0 {
			t.Errorf("left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		if !t.Failed() {
			os.RemoveAll(other.Dir)
		} else {
			t.Logf("containerd log kept in %s", filepath.Join(other.Dir, "containerd.log"))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, rt := dialCRI(t, other.Address)
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	t.Run("CRI introspects handlers with options", func(t *testing.T) {
		// containerd asks `shim -info` with the handler's options: one it
		// cannot introspect loses user namespaces and recursive read-only
		// mounts in CRI.
		st, err := rt.Status(ctx, &cri.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		features := map[string]string{}
		for _, h := range st.GetRuntimeHandlers() {
			features[h.GetName()] = h.GetFeatures().String()
		}
		if features["pause-tuned"] != features["pause"] || features["pause"] == "" {
			t.Errorf("handler features: pause-tuned %q, pause %q", features["pause-tuned"], features["pause"])
		}
	})

	t.Run("bad options fail the pod", func(t *testing.T) {
		bad := map[string]string{
			"pause-typo": `unknown option "PauseUser"`,
			"pause-loud": `LogLevel "loud"`,
			"pause-root": `must not be 0`,
		}
		// The systemd driver on a host without systemd (make test-node
		// runs it where systemd is PID 1).
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			bad["pause-systemd"] = "SystemdCgroup = true asks for the systemd cgroup driver, but systemd is not running"
		}
		for handler, want := range bad {
			_, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podConfig(t, "bad", false), RuntimeHandler: handler})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("pod on %s: got %v, want an error naming %s", handler, err, want)
			}
		}
	})

	t.Run("StartTimeout", func(t *testing.T) {
		shims := other.ShimProcesses()
		_, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podConfig(t, "pulls", false), RuntimeHandler: "pause-pulls"})
		if err == nil || !strings.Contains(err.Error(), "pull") {
			t.Fatalf("pod on a handler that pulls an absent pause image: got %v, want a pull error", err)
		}
		// The shim CRI left behind removes its pod and exits.
		for deadline := time.Now().Add(15 * time.Second); other.ShimProcesses() > shims; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d shims run, %d before the failed pod: the abandoned pod's shim stayed", other.ShimProcesses(), shims)
			}
		}
	})

	// A container that exits 0 on SIGTERM: its exit code tells whether the
	// pod's stop gave it SIGTERM and time, or SIGKILL at once (137).
	graceful := []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"}
	tuned := runCRIPod(t, ctx, rt, podConfig(t, "tuned", false), "pause-tuned")
	tunedCtr := tuned.start(t, ctx, "graceful", graceful...)
	plain := runCRIPod(t, ctx, rt, podConfig(t, "plain", false), "pause")
	plainCtr := plain.start(t, ctx, "graceful", graceful...)

	t.Run("PauseUID and PauseGID", func(t *testing.T) {
		pid := tuned.pausePid(t, ctx)
		if uid, gid := procStatus(t, pid, "Uid"), procStatus(t, pid, "Gid"); uid != "4321\t4321\t4321\t4321" || gid != "4322\t4322\t4322\t4322" {
			t.Errorf("pause task of pause-tuned runs as uid %q gid %q, want 4321 and 4322", uid, gid)
		}
		pid = plain.pausePid(t, ctx)
		if uid := procStatus(t, pid, "Uid"); !strings.HasPrefix(uid, "65535\t") {
			t.Errorf("pause task without options runs as uid %q, want the default 65535", uid)
		}
	})

	t.Run("ShimCgroup", func(t *testing.T) {
		shimPid := parentOf(t, tuned.pausePid(t, ctx))
		if !inCgroup(t, shimPid, shimCgroup) {
			t.Errorf("shim %d of pause-tuned is not in %s", shimPid, shimCgroup)
		}
		if shimPid := parentOf(t, plain.pausePid(t, ctx)); inCgroup(t, shimPid, shimCgroup) {
			t.Errorf("shim %d without options is in %s", shimPid, shimCgroup)
		}
	})

	t.Run("BinaryName and Root", func(t *testing.T) {
		data, err := os.ReadFile(calls)
		if err != nil {
			t.Fatalf("the runc of BinaryName never ran: %v", err)
		}
		noted := string(data)
		if !strings.Contains(noted, "--root "+filepath.Join(runcRoot, testenv.CRINamespace)) || !strings.Contains(noted, "create") || !strings.Contains(noted, tunedCtr) {
			t.Errorf("the runc of BinaryName did not create %s under Root: calls\n%s", tunedCtr, noted)
		}
		if strings.Contains(noted, plainCtr) {
			t.Errorf("a container of the runtime without options ran through BinaryName:\n%s", noted)
		}
		if _, err := os.Stat(filepath.Join(runcRoot, testenv.CRINamespace, tunedCtr, "state.json")); err != nil {
			t.Errorf("runc state not under Root: %v", err)
		}
		// Exec goes through the same runc and root.
		if got := execSync(t, ctx, rt, tunedCtr, "echo", "hi"); got != "hi" {
			t.Errorf("exec: %q", got)
		}
	})

	t.Run("LogLevel and log fields", func(t *testing.T) {
		lines := logLines(t, filepath.Join(other.Dir, "containerd.log"))
		want := []string{"level=debug", `msg="container joins pod"`, "container=" + tunedCtr, "pod=default/tuned", "sandbox=" + tuned.id}
		if !anyLineHasAll(lines, want) {
			t.Errorf("no shim debug line with %v in containerd's log", want)
		}
		// Without options the shim logs at containerd's level (info), with
		// the pod named on its lines.
		if anyLineHasAll(lines, []string{"level=debug", "sandbox=" + plain.id}) {
			t.Errorf("the shim without options logs at debug while containerd is at info")
		}
		want = []string{"level=info", `msg="container created"`, "container=" + plainCtr, "pod=default/plain", "sandbox=" + plain.id}
		if !anyLineHasAll(lines, want) {
			t.Errorf("no shim info line with %v in containerd's log", want)
		}
	})

	t.Run("DefaultStopTimeout", func(t *testing.T) {
		// The sandbox API's own stop, without a timeout (CRI's StopPodSandbox
		// kills the containers itself before it stops the sandbox).
		nsctx := namespaces.WithNamespace(ctx, testenv.CRINamespace)
		for _, c := range []struct {
			pod      *criPod
			ctr      string
			wantCode int32
		}{{tuned, tunedCtr, 0}, {plain, plainCtr, 137}} {
			start := time.Now()
			if err := other.Client.SandboxController("shim").Stop(nsctx, c.pod.id); err != nil {
				t.Fatalf("stop sandbox %s: %v", c.pod.id, err)
			}
			took := time.Since(start)
			code := waitExited(t, ctx, rt, c.ctr, 20*time.Second).ExitCode
			if code != c.wantCode || took > 20*time.Second {
				t.Errorf("container of pod %s exited %d after a stop of %v, want %d", c.pod.config.Metadata.Name, code, took, c.wantCode)
			}
		}
	})
}

// TestPlainContainerRuntimeConfigPath: a plain container (`ctr run --runtime`)
// takes the same options from a file (`--runtime-config-path`); a bad file
// fails the container with the key's name.
func TestPlainContainerRuntimeConfigPath(t *testing.T) {
	requireEnv(t)
	dir := t.TempDir()
	wrapper, calls := notingRunc(t, dir)
	root := filepath.Join(dir, "runc-root")
	config := filepath.Join(dir, "pause.toml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("BinaryName = %q\nRoot = %q\n", wrapper, root)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ctr(t, "run", "--rm", "--rootfs", env.Rootfs, "--runtime", runtimeName, "--runtime-config-path", config,
		"configured", "/bin/sh", "-c", "echo configured-ok")
	if err != nil || !strings.Contains(out, "configured-ok") {
		t.Fatalf("ctr run with --runtime-config-path: %v: %s", err, out)
	}
	noted, err := os.ReadFile(calls)
	if err != nil || !strings.Contains(string(noted), "--root "+filepath.Join(root, env.Namespace)) || !strings.Contains(string(noted), "create") {
		t.Errorf("the container did not run through BinaryName under Root: %v\n%s", err, noted)
	}

	if err := os.WriteFile(config, []byte("Bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = ctr(t, "run", "--rm", "--rootfs", env.Rootfs, "--runtime", runtimeName, "--runtime-config-path", config,
		"misconfigured", "/bin/true")
	_, _ = ctr(t, "container", "rm", "misconfigured")
	if err == nil || !strings.Contains(out, `unknown option "Bogus"`) {
		t.Errorf("ctr run with a bad config file: %v: %s", err, out)
	}
}

// notingRunc writes a runc that notes each call's arguments in calls, so a
// test sees which runc ran and how.
func notingRunc(t *testing.T, dir string) (wrapper, calls string) {
	t.Helper()
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	calls = filepath.Join(dir, "runc-calls")
	wrapper = filepath.Join(dir, "runc-noted")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", calls, runc)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, calls
}

// unifiedRoot tells whether a cgroup root is the v2 hierarchy (there cpuset
// files of a child are inherited, not required).
func unifiedRoot(root string) bool {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return err == nil
}

// inCgroup tells whether pid is in cgroup path in some hierarchy.
func inCgroup(t *testing.T, pid int, path string) bool {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasSuffix(line, ":"+path) {
			return true
		}
	}
	return false
}

func logLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func anyLineHasAll(lines, parts []string) bool {
	for _, line := range lines {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
