// Package installer puts containerd-shim-pause-v2 on a Kubernetes node from
// a privileged pod with the host's root mounted: it copies the shim, writes
// the containerd drop-in declaring the CRI handlers, makes containerd's
// config import the drop-in directory (editing only that, so the rest of
// the file stays byte for byte), restarts containerd through the host's
// systemd, waits until CRI lists the handlers and then labels the node, so
// that RuntimeClasses schedule pods only where the handlers are live. It
// also undoes all of that (Uninstall) and answers a readiness probe (Ready).
// Every step is idempotent: a second run changes nothing, and an install
// that failed after restarting containerd is not repeated unchanged.
package installer
