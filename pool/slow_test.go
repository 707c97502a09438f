package pool

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A shared shim slow to accept (a loaded node: its listen queue full) is
// alive: the next pod goes to it, not to a second shim started beside it.
func TestStartGivesAPodToASlowShim(t *testing.T) {
	ps := newPooledStart(t, 0)
	if _, err := ps.start("pod-a"); err != nil {
		t.Fatal(err)
	}
	address := ps.spawned[0].Address
	ps.listeners[address].Close()
	// The shim's socket again, with a queue of one, full, and nobody
	// accepting for a while.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	path := socketPath(address)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	for queued := 0; ; queued++ {
		c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(c) })
		if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
			if !errors.Is(err, unix.EAGAIN) || queued == 0 {
				t.Fatalf("fill the shim's queue: %v after %d", err, queued)
			}
			break
		}
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		for {
			c, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
			if err != nil {
				return
			}
			unix.Close(c)
		}
	}()
	if _, err := ps.start("pod-b"); err != nil {
		t.Fatal(err)
	}
	if shims := ps.shims(t); len(ps.spawned) != 1 || len(shims) != 1 || len(shims[0].Pods) != 2 {
		t.Errorf("%d shims spawned, pool %+v: want both pods on the slow shim", len(ps.spawned), shims)
	}
}
