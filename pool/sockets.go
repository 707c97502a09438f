package pool

import (
	"errors"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/shim"
)

// Shim sockets, as pods' cleanups and the pool's shims remove them: a
// shim's own socket, or a pod's link to its shared shim's.

// Listens tells whether a shim listens at address. A dead shim's socket
// refuses the connection, or is gone; a live shim whose listen queue is
// full (a loaded node, pods starting at once) answers "try again" at once,
// which pkg/shim's CanConnect takes for dead: a start would then put a
// second shim beside it, or remove its socket.
func Listens(address string) bool {
	conn, err := shim.AnonDialer(address, time.Second)
	if err != nil {
		return errors.Is(err, syscall.EAGAIN)
	}
	conn.Close()
	return true
}

// AnyListens tells whether a shim answers at one of addrs: its pod is
// alive.
func AnyListens(addrs []string) bool {
	for _, a := range addrs {
		if Listens(a) {
			return true
		}
	}
	return false
}

// RemoveDeadSockets removes those of addrs where nobody listens: a live
// shim serves its socket and removes it itself as it exits. The address of
// a pod of a shared shim is a link to that shim's socket: the link goes
// once that shim is dead.
func RemoveDeadSockets(addrs []string) {
	for _, a := range addrs {
		if !Listens(a) {
			_ = shim.RemoveSocket(a)
		}
	}
}

// RemoveSockets removes shim sockets; a socket already gone is fine.
func RemoveSockets(addrs []string) {
	for _, a := range addrs {
		_ = shim.RemoveSocket(a)
	}
}
