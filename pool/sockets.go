package pool

import "github.com/containerd/containerd/v2/pkg/shim"

// Shim sockets, as pods' cleanups and the pool's shims remove them: a
// shim's own socket, or a pod's link to its shared shim's.

// AnyListens tells whether a shim answers at one of addrs: its pod is
// alive.
func AnyListens(addrs []string) bool {
	for _, a := range addrs {
		if shim.CanConnect(a) {
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
		if !shim.CanConnect(a) {
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
