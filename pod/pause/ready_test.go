package pause

import (
	"strings"
	"testing"
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
	parent := []string{"pid ", "26938", "\n"} // as c/pause.c writes them
	child := []string{"ok"}
	for _, msg := range interleavings(parent, child) {
		pid, err := parseReady([]byte(msg))
		if err != nil || pid != 26938 {
			t.Errorf("report %q: pid %d, %v; want pid 26938", msg, pid, err)
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
