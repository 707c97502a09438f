package installer

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
)

// Subcommands of the installer command.
const (
	CmdInstall   = "install"
	CmdUninstall = "uninstall"
	CmdReady     = "ready"
)

// Options are the installer's settings. Paths other than HostRoot,
// ShimSource and Kubeconfig are as the host sees them; the installer
// reaches them under HostRoot.
type Options struct {
	Command string

	HostRoot          string
	Config            string
	DropInDir         string
	BinDir            string
	Handlers          []string
	DensePodsPerShim  int
	ContainerdAddress string
	ContainerdUnit    string
	SystemdBus        string
	NodeName          string
	Label             string // key=value
	RestartTimeout    time.Duration
	Kubeconfig        string
	ShimSource        string

	Wait  bool // install, uninstall: block until SIGTERM once done
	Force bool // uninstall: even while pods use the handlers

	// DoneFile is written by install --wait once done, and asked for by
	// ready with a node name (DoneFile by default; "" asks for none).
	DoneFile string

	// PollInterval is how often install --wait asks CRI whether a
	// containerd it could not restart was restarted by hand (0: every
	// DefaultPollInterval).
	PollInterval time.Duration
}

// DefaultPollInterval is how often install --wait asks CRI for the
// handlers on a node awaiting a restart by hand: a verbose status on a
// local socket, cheap at this pace.
const DefaultPollInterval = 5 * time.Second

func (o *Options) pollInterval() time.Duration {
	if o.PollInterval > 0 {
		return o.PollInterval
	}
	return DefaultPollInterval
}

// DenseHandler is the handler whose pods share shims (PodsPerShim).
const DenseHandler = "pause-dense"

// ShimName is the installed shim's file name.
const ShimName = "containerd-shim-pause-v2"

// DropInName is the drop-in's file name in DropInDir.
const DropInName = "pause.toml"

// BackupSuffix names the copy of containerd's config taken before the
// first edit.
const BackupSuffix = ".pause-backup"

// RestartNeededAnnotation marks a node whose containerd must be restarted
// by hand to load the handlers (it is not a systemd unit).
const RestartNeededAnnotation = "containerd-shim-pause-v2/restart-needed"

// InstallFailedAnnotation records on the node an install that restarted
// containerd and failed: what it was tried with (a digest) and why it
// failed. The same install is not tried again while it is there.
const InstallFailedAnnotation = "containerd-shim-pause-v2/install-failed"

// ParseArgs reads the subcommand and its flags from args (without the
// program name); each flag's default comes from the environment variable
// PAUSE_<FLAG> (upper snake case) when set, from getenv. Flag errors and
// -h output go to out.
func ParseArgs(args []string, getenv func(string) string, out io.Writer) (*Options, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("usage: containerd-shim-pause-installer install|uninstall|ready [flags]")
	}
	o := &Options{Command: args[0], DoneFile: DoneFile}
	switch o.Command {
	case CmdInstall, CmdUninstall, CmdReady:
	default:
		return nil, fmt.Errorf("unknown subcommand %q: want install, uninstall or ready", o.Command)
	}
	fs := flag.NewFlagSet(o.Command, flag.ContinueOnError)
	fs.SetOutput(out)
	env := func(name, def string) string {
		key := "PAUSE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v, ok := lookup(getenv, key); ok {
			return v
		}
		return def
	}
	str := func(p *string, name, def, usage string) { fs.StringVar(p, name, env(name, def), usage) }
	var handlers, timeout, dense string
	str(&o.HostRoot, "host-root", "/host", "where the host's / is mounted")
	str(&o.Config, "config", "/etc/containerd/config.toml", "containerd's config file")
	str(&o.DropInDir, "drop-in-dir", "/etc/containerd/conf.d", "directory of containerd drop-ins the config imports")
	str(&o.BinDir, "bin-dir", "/usr/local/bin", "directory the shim is installed in")
	str(&handlers, "handlers", "pause,"+DenseHandler, "CRI runtime handlers to declare, comma separated")
	str(&dense, "dense-pods-per-shim", "0", "PodsPerShim of handler "+DenseHandler+" (0: no limit)")
	str(&o.ContainerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd's socket (CRI and API)")
	str(&o.ContainerdUnit, "containerd-unit", "containerd.service", "containerd's systemd unit")
	str(&o.SystemdBus, "systemd-bus", "/run/dbus/system_bus_socket", "the host's D-Bus system bus socket")
	// The downward API gives the pod's node as NODE_NAME.
	str(&o.NodeName, "node-name", getenv("NODE_NAME"), `this node's name ("": do not touch the node, report on stdout)`)
	str(&o.Label, "label", "containerd-shim-pause-v2/ready=true", "node label (key=value) once the handlers are live")
	str(&timeout, "restart-timeout", "2m", "how long containerd may take to list the handlers after a restart")
	str(&o.Kubeconfig, "kubeconfig", "", `kubeconfig file ("": in-cluster config)`)
	str(&o.ShimSource, "shim-source", "/"+ShimName, "the shim binary to install")
	if o.Command == CmdInstall || o.Command == CmdUninstall {
		fs.BoolVar(&o.Wait, "wait", envBool(getenv, "PAUSE_WAIT"), "once done, block until SIGTERM (a DaemonSet's main container)")
	}
	if o.Command == CmdUninstall {
		fs.BoolVar(&o.Force, "force", envBool(getenv, "PAUSE_FORCE"), "uninstall even while pods use the handlers")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	// Flags given on the command line were parsed as strings too.
	var err error
	if o.RestartTimeout, err = time.ParseDuration(timeout); err != nil || o.RestartTimeout <= 0 {
		return nil, fmt.Errorf("--restart-timeout %q: want a positive duration", timeout)
	}
	if o.DensePodsPerShim, err = strconv.Atoi(dense); err != nil || o.DensePodsPerShim < 0 {
		return nil, fmt.Errorf("--dense-pods-per-shim %q: want a number >= 0", dense)
	}
	for _, h := range strings.Split(handlers, ",") {
		if h = strings.TrimSpace(h); h != "" {
			o.Handlers = append(o.Handlers, h)
		}
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	if len(o.Handlers) == 0 {
		return errors.New("--handlers: at least one handler")
	}
	for _, h := range o.Handlers {
		if !validHandler(h) {
			return fmt.Errorf("--handlers: %q is not a valid handler name (a DNS label: lower case letters, digits, '-')", h)
		}
	}
	if _, _, err := o.LabelKV(); err != nil {
		return err
	}
	for name, p := range map[string]string{"config": o.Config, "drop-in-dir": o.DropInDir, "bin-dir": o.BinDir, "containerd-address": o.ContainerdAddress, "systemd-bus": o.SystemdBus} {
		if !path.IsAbs(p) {
			return fmt.Errorf("--%s %q: want an absolute path (as the host sees it)", name, p)
		}
	}
	if o.HostRoot == "" {
		return errors.New("--host-root: empty")
	}
	return nil
}

// LabelKV splits Label into its key and value.
func (o *Options) LabelKV() (string, string, error) {
	k, v, ok := strings.Cut(o.Label, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("--label %q: want key=value", o.Label)
	}
	return k, v, nil
}

// Host is p (a path as the host sees it) under HostRoot.
func (o *Options) Host(p string) string { return path.Join(o.HostRoot, p) }

// ShimPath is the installed shim as the host (and containerd) sees it.
func (o *Options) ShimPath() string { return path.Join(o.BinDir, ShimName) }

// DropInPath is the drop-in as the host sees it.
func (o *Options) DropInPath() string { return path.Join(o.DropInDir, DropInName) }

// ImportGlob is the entry containerd's imports needs for the drop-in.
func (o *Options) ImportGlob() string { return path.Join(o.DropInDir, "*.toml") }

// validHandler accepts a RuntimeClass handler (a DNS label), which is also
// a TOML bare key.
func validHandler(h string) bool {
	if len(h) > 63 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return h[0] != '-' && h[len(h)-1] != '-'
}

func lookup(getenv func(string) string, key string) (string, bool) {
	v := getenv(key)
	return v, v != ""
}

func envBool(getenv func(string) string, key string) bool {
	b, _ := strconv.ParseBool(getenv(key))
	return b
}
