// Package installer puts containerd-shim-pause-v2 on a Kubernetes node from
// a privileged pod with the host's root mounted, takes it off (Uninstall),
// or says whether the node is ready (Ready).
package installer

// An install copies the shim, writes the containerd drop-in declaring the
// CRI handlers, makes containerd's config import the drop-in directory
// (editing only that, so the rest of the file stays byte for byte),
// restarts containerd through the host's systemd, waits until CRI lists the
// handlers, then labels the node, so that RuntimeClasses schedule pods only
// where the handlers are live. Every step is idempotent: a second run
// changes nothing, and an install that failed after restarting containerd
// is not repeated unchanged.
