//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	gofail "go.etcd.io/gofail/runtime"
)

// Enabled tells whether this build has failpoints.
const Enabled = true

// points are the failpoints registered with gofail's runtime, which gives
// each the terms GOFAIL_FAILPOINTS sets for it.
var points = func() map[string]*gofail.Failpoint {
	m := make(map[string]*gofail.Failpoint, len(All))
	for _, name := range All {
		m[name] = gofail.NewFailpoint(name)
	}
	return m
}()

// armed is what the file FileEnv names last said, and the names it armed.
var armed struct {
	sync.Mutex
	terms string
	names []string
}

// Inject evaluates failpoint name's terms, and acts on the value they
// return (see the package's comment).
func Inject(name string) {
	fp, ok := points[name]
	if !ok {
		panic("failpoint: unknown failpoint " + name)
	}
	rearm()
	v, err := fp.Acquire()
	if err != nil {
		return // disabled, or its terms returned nothing
	}
	if s, ok := v.(string); ok {
		act(name, s)
	}
}

// rearm applies the terms of the file FileEnv names when they changed:
// the points it named before are disabled, those it names now enabled.
// A missing file arms nothing.
func rearm() {
	path := os.Getenv(FileEnv)
	if path == "" {
		return
	}
	data, _ := os.ReadFile(path)
	terms := strings.TrimSpace(string(data))
	armed.Lock()
	defer armed.Unlock()
	if terms == armed.terms {
		return
	}
	for _, name := range armed.names {
		_ = gofail.Disable(name)
	}
	armed.terms, armed.names = terms, nil
	for _, entry := range strings.Split(terms, ";") {
		name, t, ok := strings.Cut(entry, "=")
		if !ok {
			continue
		}
		// gofail reports a bad term on stdout only; the shim's log is its
		// stderr. (In `shim start` containerd reads both as the answer,
		// so a bad term fails the start loudly.)
		if err := gofail.Enable(name, t); err != nil {
			fmt.Fprintf(os.Stderr, "failpoint %s=%s: %v\n", name, t, err)
			continue
		}
		armed.names = append(armed.names, name)
	}
}

// act carries out a term's value: "kill" SIGKILLs this process, "kill:PATH"
// does so if it creates PATH now, noting in it which process died where.
func act(name, v string) {
	switch {
	case v == "kill":
	case strings.HasPrefix(v, "kill:"):
		f, err := os.OpenFile(strings.TrimPrefix(v, "kill:"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return // crashed there once already
		}
		fmt.Fprintf(f, "%s: pid %d: %s\n", name, os.Getpid(), strings.Join(os.Args, " "))
		f.Close()
	default:
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: SIGKILL to process %d\n", name, os.Getpid())
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way: go no further
}
