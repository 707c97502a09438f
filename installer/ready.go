package installer

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Ready answers the DaemonSet's readiness probe: nil when the node carries
// the label (with a node name) and CRI lists the handlers on the shim.
func Ready(ctx context.Context, o *Options, out io.Writer) error {
	in, err := newInstaller(o, out)
	if err != nil {
		return err
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

// Run runs the subcommand o.Command. An install with o.Wait then blocks
// until ctx ends (the DaemonSet's SIGTERM) and returns nil: a rollout must
// not take the runtime off the node.
func Run(ctx context.Context, o *Options, out io.Writer) error {
	switch o.Command {
	case CmdInstall:
		if err := Install(ctx, o, out); err != nil {
			return err
		}
		if o.Wait {
			<-ctx.Done()
		}
		return nil
	case CmdUninstall:
		return Uninstall(ctx, o, out)
	case CmdReady:
		return Ready(ctx, o, out)
	}
	return fmt.Errorf("unknown subcommand %q", o.Command)
}
