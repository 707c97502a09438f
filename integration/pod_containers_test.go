package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/sandbox"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

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
