package installer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DoneFile, in the installer's container, says its `install --wait` has
// finished: the probe, run in the same container, asks for it, so a new
// pod of a rollout is not Ready on what the pod before it did.
const DoneFile = "/run/containerd-shim-pause-installer/installed"

// Ready answers the DaemonSet's readiness probe: nil when the node carries
// the label (with a node name), this pod's install is done (DoneFile) and
// CRI lists the handlers on the shim.
func Ready(ctx context.Context, o *Options, out io.Writer) error {
	in, err := newInstaller(o, out)
	if err != nil {
		return err
	}
	return in.ready(ctx)
}

func (in *installer) ready(ctx context.Context) error {
	o := in.o
	if in.node.Enabled() && o.DoneFile != "" {
		if _, err := os.Stat(o.DoneFile); err != nil {
			return fmt.Errorf("not ready: this pod's install has not finished (%s: %v)", o.DoneFile, err)
		}
	}
	missing, err := in.missing(ctx)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("not ready: CRI does not list handlers %s on %s", strings.Join(missing, ","), o.ShimPath())
	}
	if in.node.Enabled() {
		key, value, _ := o.LabelKV()
		ok, err := in.node.HasLabel(ctx, key, value)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not ready: node %s has no label %s", o.NodeName, o.Label)
		}
	}
	return nil
}

// Run runs the subcommand o.Command. An install or uninstall with o.Wait
// then blocks until ctx ends (the DaemonSet's SIGTERM) and returns nil: a
// rollout must not take the runtime off the node, and the uninstaller's pod
// stays Ready to show its node is done.
func Run(ctx context.Context, o *Options, out io.Writer) error {
	var err error
	switch o.Command {
	case CmdInstall:
		err = Install(ctx, o, out)
	case CmdUninstall:
		err = Uninstall(ctx, o, out)
	case CmdReady:
		return Ready(ctx, o, out)
	default:
		return fmt.Errorf("unknown subcommand %q", o.Command)
	}
	if err == nil && o.Wait {
		// Only a pod reporting on its node has a probe to answer.
		if o.Command == CmdInstall && o.NodeName != "" {
			if err := markDone(o.DoneFile); err != nil {
				return err
			}
		}
		<-ctx.Done()
	}
	return err
}

// markDone writes path (DoneFile) once the install is done.
func markDone(path string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("mark the install done: %w", err)
	}
	if err := os.WriteFile(path, []byte("installed\n"), 0o644); err != nil {
		return fmt.Errorf("mark the install done: %w", err)
	}
	return nil
}
