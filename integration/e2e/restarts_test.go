//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestKubeletRestart: the kubelet stopped (SIGTERM) and started again with
// the same configuration takes over the running pods: the same sandboxes
// (ids, pause pids) and containers (ids, start times, no restart), still
// Ready; and it starts new pods.
func TestKubeletRestart(t *testing.T) {
	restartScenario(t, "kubelet-restart", c.restartKubelet)
}

// TestContainerdKilled: containerd killed (SIGKILL) and started again on
// its state, under a kubelet that stays up: the pods run on in their shims,
// the kubelet finds them as they were (same sandboxes, containers, pause
// pids, no restart) and starts new pods.
func TestContainerdKilled(t *testing.T) {
	restartScenario(t, "containerd-kill", func(ctx context.Context) error {
		kubelet := c.kubelet.pid
		if err := c.restartContainerd(ctx, syscall.SIGKILL); err != nil {
			return err
		}
		if c.kubelet.exited() || c.kubelet.pid != kubelet {
			return fmt.Errorf("the kubelet (pid %d) did not stay up: %s", kubelet, tail(filepath.Join(c.dir, "kubelet.log"), 20))
		}
		return nil
	})
}

// restartScenario runs a pod on each handler, restarts a component once
// for both, then checks per handler that the pod is the same one, still
// Ready and working, and that a new pod starts.
func restartScenario(t *testing.T, what string, restart func(context.Context) error) {
	ctx := requireCluster(t)
	pods := map[string]*corev1.Pod{}
	for _, h := range handlers {
		needImage(t, h)
		pods[h] = createPod(t, ctx, restartPod(what, h))
	}
	before := map[string]running{}
	for _, h := range handlers {
		pod := waitPod(t, ctx, pods[h].Name, "Ready before the "+what, ready)
		before[h] = observe(t, ctx, pod)
	}

	start := time.Now()
	if err := restart(ctx); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: node Ready again %v later", what, time.Since(start).Round(time.Millisecond))

	for _, h := range handlers {
		t.Run(h, func(t *testing.T) {
			t.Parallel()
			ctx := requireCluster(t)
			// A pod made now starts: the kubelet and the runtime work
			// together again. The kubelet took in the older pods first.
			fresh := createPod(t, ctx, newPod(what+"-after", h, sh("app", idle)))
			waitPod(t, ctx, fresh.Name, "Ready (made after the "+what+")", ready)
			before[h].unchanged(t, ctx, what)
		})
	}
}

// restartPod is a pod of two containers sharing localhost: the client's
// readiness probe reaches the server on 127.0.0.1.
func restartPod(name, handler string) *corev1.Pod {
	server := sh("server", `trap "exit 0" TERM; while true; do echo hello | nc -l -p 8080; done & wait`)
	client := sh("client", idle)
	client.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "nc 127.0.0.1 8080 </dev/null | grep hello"}}},
		PeriodSeconds: 1,
	}
	return newPod(name, handler, server, client)
}

// running is what a restart must not change about a running pod: its
// sandbox (CRI's id, the pause pid) and its containers.
type running struct {
	name, uid  string
	sandbox    string
	pid        int
	containers map[string]containerRun // by name
}

type containerRun struct {
	id       string
	restarts int32
	started  time.Time // zero when not running
}

func (a containerRun) same(b containerRun) bool {
	return a.id == b.id && a.restarts == b.restarts && a.started.Equal(b.started)
}

func (a containerRun) String() string {
	return fmt.Sprintf("%s, %d restarts, started %s", a.id, a.restarts, a.started.Format(time.TimeOnly))
}

// observe reads a pod's sandbox (there must be exactly one) and containers.
func observe(t *testing.T, ctx context.Context, pod *corev1.Pod) running {
	t.Helper()
	r := running{name: pod.Name, uid: string(pod.UID), containers: map[string]containerRun{}}
	r.sandbox, r.pid = sandboxOf(t, ctx, r.uid)
	for _, st := range pod.Status.ContainerStatuses {
		cr := containerRun{id: st.ContainerID, restarts: st.RestartCount}
		if st.State.Running != nil {
			cr.started = st.State.Running.StartedAt.Time
		}
		r.containers[st.Name] = cr
	}
	return r
}

// unchanged checks that the pod is Ready in the same sandbox, with the same
// containers running, none restarted, and still works: an exec through the
// kubelet and CRI's stream server reaches the server over the pod's
// loopback.
func (r running) unchanged(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	r.kept(t, ctx, what)
	if st := sandboxState(t, ctx, r.sandbox); st != cri.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox %s is %v after the %s", r.sandbox, st, what)
	}
	if ev := c.events(r.name); strings.Contains(ev, "SandboxChanged") || strings.Contains(ev, "Killing") {
		t.Errorf("the kubelet replaced pod %s's sandbox or containers after the %s: %s", r.name, what, ev)
	}
	var out string
	var err error
	for i := 0; i < 10; i++ { // the server listens again a moment after each answer
		if out, err = c.exec(ctx, r.name, "client", "sh", "-c", "nc 127.0.0.1 8080 </dev/null"); err == nil && out == "hello\n" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("exec in pod %s after the %s: %v: %q, want hello from the server", r.name, what, err, out)
}

// kept checks, more cheaply than unchanged, that a pod runs on Ready in the
// same sandbox (one, its pause process alive) with the same containers
// running, none restarted.
func (r running) kept(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	pod := waitPod(t, ctx, r.name, "Ready after the "+what, ready)
	if string(pod.UID) != r.uid {
		t.Fatalf("pod %s is a new one after the %s: uid %s, was %s", r.name, what, pod.UID, r.uid)
	}
	if sbs := sandboxesOf(t, ctx, testCRI(t), r.uid); len(sbs) != 1 || sbs[0].Id != r.sandbox {
		t.Fatalf("pod %s's sandbox recreated by the %s: %s before, %v after", r.name, what, r.sandbox, sandboxList(sbs))
	}
	now := observe(t, ctx, pod)
	if now.pid != r.pid {
		t.Errorf("sandbox %s's pause pid changed across the %s: %d before, %d after", r.sandbox, what, r.pid, now.pid)
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", r.pid)); err != nil || strings.TrimSpace(string(comm)) != "pause" {
		t.Errorf("sandbox pid %d is not a live pause process after the %s: %q %v", r.pid, what, comm, err)
	}
	for name, was := range r.containers {
		is, ok := now.containers[name]
		switch {
		case !ok:
			t.Errorf("container %s gone after the %s", name, what)
		case is.started.IsZero():
			t.Errorf("container %s not running after the %s: %s", name, what, podSummary(pod))
		case !is.same(was):
			t.Errorf("container %s changed across the %s: %s before, %s after", name, what, was, is)
		}
	}
}
