package pause

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// interleavings are every order in which two processes' writes to one pipe
// can land, each write whole (a write of less than PIPE_BUF bytes to a
// pipe is atomic).
func interleavings(a, b []string) []string {
	if len(a) == 0 || len(b) == 0 {
		return []string{strings.Join(a, "") + strings.Join(b, "")}
	}
	var out []string
	for _, rest := range interleavings(a[1:], b) {
		out = append(out, a[0]+rest)
	}
	for _, rest := range interleavings(a, b[1:]) {
		out = append(out, b[0]+rest)
	}
	return out
}

// TestParseReadyAcceptsEveryInterleaving: with -U the pod's PID 1 and its
// parent report on one pipe, each on its own schedule; every order the
// kernel allows is a pod that started.
func TestParseReadyAcceptsEveryInterleaving(t *testing.T) {
	parent := []string{"pid 26938\n"} // as c/pause.c writes them: a write per line
	child := []string{"ok\n"}
	for _, msg := range interleavings(parent, child) {
		pid, err := parseReady([]byte(msg), true)
		if err != nil || pid != 26938 {
			t.Errorf("report %q: pid %d, %v; want pid 26938", msg, pid, err)
		}
	}
	if pid, err := parseReady([]byte("ok\n"), false); err != nil || pid != 0 {
		t.Errorf("report without -U: pid %d, %v", pid, err)
	}
}

// TestParseReadyNamesWhatFailed: a failed step, in any order with the other
// reports, fails the start with that step; so does a report that is missing
// or malformed.
func TestParseReadyNamesWhatFailed(t *testing.T) {
	for _, c := range []struct {
		parent, child []string
		wantPid       bool
		want          string
	}{
		{[]string{"pid 7\n"}, []string{"join netns: errno 22\n"}, true, "join netns: errno 22"},
		{[]string{"pid 7\n", "setuid: errno 1\n"}, []string{"ok\n"}, true, "setuid: errno 1"},
		{[]string{"join user namespace: errno 1\n"}, nil, true, "join user namespace: errno 1"},
		{nil, nil, false, "exited without reporting ready"},
		{[]string{"pid 7\n"}, nil, true, "exited without reporting ready"},
		{nil, []string{"ok\n"}, true, "without the pid of the pod's PID 1"},
		{[]string{"pid 7\n"}, []string{"ok\n"}, false, `unexpected report "pid 7"`},
		{[]string{"pid 7\n", "pid 8\n"}, []string{"ok\n"}, true, `unexpected report "pid 8"`},
		{[]string{"pid x\n"}, []string{"ok\n"}, true, `unexpected report "pid x"`},
		{[]string{"pid 0\n"}, []string{"ok\n"}, true, `unexpected report "pid 0"`},
		{nil, []string{"ok"}, false, `a report cut short ("ok")`},
	} {
		for _, msg := range interleavings(c.parent, c.child) {
			_, err := parseReady([]byte(msg), c.wantPid)
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("report %q: got %v, want a failed precondition naming %q", msg, err, c.want)
			}
		}
	}
}

// TestUsernsPauseTaskReportsInAnyOrder: the real binary, built with a
// define that makes the -U parent report after its child has (what a
// loaded machine does now and then), starts the pod every time.
func TestUsernsPauseTaskReportsInAnyOrder(t *testing.T) {
	c := joinsUsernsConfig(t)
	useBinary(t, buildVariant(t, "gcc", "-DPAUSE_TEST_REPORT_PID_LAST"))
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p)
	if len(p.Pids) != 2 || p.Pids[0] == p.Pid {
		t.Fatalf("pids %v, pod's PID 1 %d: want the parent and PID 1", p.Pids, p.Pid)
	}
	if ppid := parentOf(t, p.Pid); ppid != p.Pids[0] {
		t.Errorf("pod's PID 1 %d has parent %d, want %d", p.Pid, ppid, p.Pids[0])
	}
}
