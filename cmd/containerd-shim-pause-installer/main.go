// Command containerd-shim-pause-installer puts containerd-shim-pause-v2 on
// the node its DaemonSet pod runs on, takes it off, or says whether it is
// ready (package installer): install [--wait] | uninstall [--force] [--wait] | ready.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/installer"
)

func main() {
	o, err := installer.ParseArgs(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd-shim-pause-installer:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := installer.Run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-pause-installer %s: %v\n", o.Command, err)
		os.Exit(1)
	}
}
