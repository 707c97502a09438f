// Package reaptest helps tests that run pause tasks: it does what the
// shim's signal loop does, so that containerd's reaper reports their exits.
package reaptest

import (
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
)

// Children reaps on SIGCHLD until the test ends.
func Children(t testing.TB) {
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, syscall.SIGCHLD)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				_ = reaper.Reap()
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { signal.Stop(ch); close(done) })
}
