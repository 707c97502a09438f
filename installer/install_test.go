package installer

import (
	"context"
	"maps"
	"testing"
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
}
