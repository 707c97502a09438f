package installer

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// TestInstall: on a systemd node the install writes the files, restarts
// containerd once, and labels the node once CRI lists the handlers; a
// second run changes nothing and restarts nothing.
func TestInstall(t *testing.T) {
	in, h, client, _ := newTestInstaller(t)
	if err := in.runInstall(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.restartCalls()); n != 1 {
		t.Errorf("%d restarts, want 1", n)
	}
	key, value, _ := in.o.LabelKV()
	if got := getNode(t, client).Labels[key]; got != value {
		t.Errorf("label %s=%q, want %q", key, got, value)
	}
	files := hostFiles(t, in.o)
	in.restarted = false
	if err := in.runInstall(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(h.restartCalls()); n != 1 {
		t.Errorf("the second run restarted containerd (%d restarts)", n)
	}
	if !maps.Equal(files, hostFiles(t, in.o)) {
		t.Error("the second run changed files")
	}
}

// TestRollbackAfterCancel: a SIGTERM (the context cancelled) while the
// install waits for the handlers rolls back on a context of its own: the
// files go back and containerd is restarted on them, within a deadline.
func TestRollbackAfterCancel(t *testing.T) {
	in, h, client, _ := newTestInstaller(t)
	before := hostFiles(t, in.o)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.broken = true
	h.onRestart = func(_ context.Context, n int) {
		if n == 1 {
			cancel() // the SIGTERM, during the installer's restart
		}
	}
	if err := in.runInstall(ctx); err == nil {
		t.Fatal("an install cancelled before the handlers were live succeeded")
	}
	calls := h.restartCalls()
	if len(calls) != 2 {
		t.Fatalf("restarts %+v, want the install's and the rollback's", calls)
	}
	if rb := calls[1]; rb.ctxErr != nil || !rb.hasDeadline || rb.ifRunning {
		t.Errorf("the rollback's restart was asked with context error %v, deadline %v, ifRunning %v: want a live context with a deadline, any unit state",
			rb.ctxErr, rb.hasDeadline, rb.ifRunning)
	}
	if after := hostFiles(t, in.o); !maps.Equal(before, after) {
		t.Errorf("files after the rollback:\n%v\nwant\n%v", after, before)
	}
	if reasons := eventReasons(t, client); len(reasons) != 1 || reasons[0] != ReasonInstallFailed {
		t.Errorf("events %v, want %s recorded though the context was cancelled", reasons, ReasonInstallFailed)
	}
	// A SIGTERM is not the install's failure: the next pod tries again.
	if a := getNode(t, client).Annotations[InstallFailedAnnotation]; a != "" {
		t.Errorf("a cancelled install recorded %s=%q: the next pod would refuse the same install", InstallFailedAnnotation, a)
	}
}

// TestRestartNeededWait: where containerd is not a systemd unit, install
// --wait annotates the node restart-needed, then asks CRI every poll
// interval until containerd, restarted by hand, lists the handlers on the
// installed shim; then it labels the node, removes the annotation and
// records the install. Without --wait it returns once the node is
// annotated, and a SIGTERM while it waits ends the wait with no error.
func TestRestartNeededWait(t *testing.T) {
	annotated := func(n *corev1.Node) bool { return n.Annotations[RestartNeededAnnotation] == "true" }
	t.Run("wait", func(t *testing.T) {
		in, h, client, _ := newTestInstaller(t)
		h.systemd = false
		in.o.Wait = true
		in.o.PollInterval = time.Millisecond
		key, value, _ := in.o.LabelKV()
		done := make(chan error, 1)
		go func() { done <- in.runInstall(t.Context()) }()
		waitFor(t, "the restart-needed annotation", func() bool { return annotated(getNode(t, client)) })
		polls := h.pollCount()
		waitFor(t, "CRI polled while containerd is not restarted", func() bool { return h.pollCount() > polls+2 })
		if n := getNode(t, client); n.Labels[key] != "" {
			t.Fatalf("labelled before containerd was restarted: %v", n.Labels)
		}
		h.restartByHand()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("install --wait: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("install --wait did not see containerd restarted by hand with the handlers")
		}
		n := getNode(t, client)
		if n.Labels[key] != value || annotated(n) {
			t.Errorf("after the restart by hand: labels %v annotations %v, want %s=%s and no %s", n.Labels, n.Annotations, key, value, RestartNeededAnnotation)
		}
		if r := eventReasons(t, client); !slices.Equal(r, []string{ReasonRestartNeeded, ReasonInstalled}) {
			t.Errorf("events %v", r)
		}
		if len(h.restartCalls()) != 1 {
			t.Errorf("restarts asked %+v, want the one that found no systemd", h.restartCalls())
		}
	})
	t.Run("no wait", func(t *testing.T) {
		in, h, client, _ := newTestInstaller(t)
		h.systemd = false
		in.o.PollInterval = time.Millisecond
		if err := in.runInstall(t.Context()); err != nil {
			t.Fatal(err)
		}
		polls := h.pollCount()
		time.Sleep(20 * time.Millisecond)
		if n := getNode(t, client); !annotated(n) || len(n.Labels) != 0 || h.pollCount() != polls {
			t.Errorf("install: labels %v annotations %v, CRI polled %d times after it returned", n.Labels, n.Annotations, h.pollCount()-polls)
		}
	})
	t.Run("SIGTERM while waiting", func(t *testing.T) {
		in, h, client, _ := newTestInstaller(t)
		h.systemd = false
		in.o.Wait = true
		in.o.PollInterval = time.Millisecond
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- in.runInstall(ctx) }()
		waitFor(t, "the restart-needed annotation", func() bool { return annotated(getNode(t, client)) })
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("SIGTERM while waiting for a restart by hand: %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a SIGTERM did not end the wait")
		}
		if n := getNode(t, client); len(n.Labels) != 0 || !annotated(n) {
			t.Errorf("labels %v annotations %v", n.Labels, n.Annotations)
		}
	})
	t.Run("SIGTERM while labelling after the restart by hand", func(t *testing.T) {
		in, h, client, _ := newTestInstaller(t)
		h.systemd = false
		in.o.Wait = true
		in.o.PollInterval = time.Millisecond
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// The SIGTERM arrives while the label is being set: the patch is
		// cut short by it.
		client.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
			key, value, _ := in.o.LabelKV()
			if strings.Contains(string(a.(k8stesting.PatchAction).GetPatch()), fmt.Sprintf("%q:%q", key, value)) {
				cancel()
				return true, nil, context.Canceled
			}
			return false, nil, nil
		})
		done := make(chan error, 1)
		go func() { done <- in.runInstall(ctx) }()
		waitFor(t, "the restart-needed annotation", func() bool { return annotated(getNode(t, client)) })
		h.restartByHand()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("SIGTERM while labelling: %v, want nil (the next pod labels the node)", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a SIGTERM did not end the install")
		}
		if r := eventReasons(t, client); slices.Contains(r, ReasonInstallFailed) {
			t.Errorf("events %v: a SIGTERM is not a failed install", r)
		}
		if n := getNode(t, client); n.Annotations[InstallFailedAnnotation] != "" {
			t.Errorf("annotations %v", n.Annotations)
		}
	})
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFailedInstallNotRepeated: an install that restarted containerd and
// failed leaves the node's files as they were and records the attempt on
// the node; the kubelet's next try with the same files and containerd
// fails at once, restarting nothing. A change (another shim, here) is
// tried, and so is the same install once the record is removed.
func TestFailedInstallNotRepeated(t *testing.T) {
	in, h, client, _ := newTestInstaller(t, "--restart-timeout", "300ms")
	h.broken = true
	before := hostFiles(t, in.o)
	run := func() error {
		in.restarted, in.restartByHand = false, false
		return in.runInstall(t.Context())
	}
	if err := run(); err == nil {
		t.Fatal("an install on a containerd that never lists the handlers succeeded")
	}
	if n := len(h.restartCalls()); n != 2 {
		t.Fatalf("%d restarts, want the install's and the rollback's", n)
	}
	if after := hostFiles(t, in.o); !maps.Equal(before, after) {
		t.Fatalf("files after the failed install:\n%v\nwant\n%v", after, before)
	}
	if getNode(t, client).Annotations[InstallFailedAnnotation] == "" {
		t.Errorf("no %s on the node after a failed install", InstallFailedAnnotation)
	}

	err := run()
	if err == nil || !strings.Contains(err.Error(), InstallFailedAnnotation) {
		t.Errorf("the same install again: %v, want an error naming %s", err, InstallFailedAnnotation)
	}
	if n := len(h.restartCalls()); n != 2 {
		t.Errorf("the same install again restarted containerd (%d restarts in all)", n)
	}
	if after := hostFiles(t, in.o); !maps.Equal(before, after) {
		t.Errorf("the same install again changed files")
	}

	// A new image: another shim, tried.
	if err := os.WriteFile(in.o.ShimSource, []byte("shim v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run(); err == nil {
		t.Fatal("an install on a containerd that never lists the handlers succeeded")
	}
	if n := len(h.restartCalls()); n != 4 {
		t.Errorf("%d restarts in all, want the new shim tried once (4)", n)
	}

	// The operator mends containerd and removes the record.
	h.broken = false
	if err := in.node.SetMetadata(t.Context(), nil, map[string]*string{InstallFailedAnnotation: nil}); err != nil {
		t.Fatal(err)
	}
	if err := run(); err != nil {
		t.Fatalf("install after the record was removed: %v", err)
	}
	key, value, _ := in.o.LabelKV()
	if n := getNode(t, client); n.Labels[key] != value || n.Annotations[InstallFailedAnnotation] != "" {
		t.Errorf("labels %v annotations %v", n.Labels, n.Annotations)
	}
}

// TestReadyAsksForThisPodsInstall: with the label and the handlers already
// there (an upgrade: the previous pod's doing), a pod is not Ready before
// its own install is done and has written its DoneFile.
func TestReadyAsksForThisPodsInstall(t *testing.T) {
	in, _, _, _ := newTestInstaller(t)
	in.o.DoneFile = filepath.Join(t.TempDir(), "run", "installed")
	if err := in.runInstall(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := in.ready(t.Context()); err == nil || !strings.Contains(err.Error(), "has not finished") {
		t.Fatalf("ready before this pod's install is done: %v, want not ready", err)
	}
	if err := markDone(in.o.DoneFile); err != nil {
		t.Fatal(err)
	}
	if err := in.ready(t.Context()); err != nil {
		t.Errorf("ready once the install is done: %v", err)
	}
}
