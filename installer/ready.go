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
		<-ctx.Done()
	}
	return err
}
