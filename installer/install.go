package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containerd/log"
	corev1 "k8s.io/api/core/v1"
)

// Event reasons the installer records on the node.
const (
	ReasonInstalled        = "PauseRuntimeInstalled"
	ReasonRestartNeeded    = "PauseRuntimeRestartNeeded"
	ReasonInstallFailed    = "PauseRuntimeInstallFailed"
	ReasonUninstalled      = "PauseRuntimeUninstalled"
	ReasonUninstallRefused = "PauseRuntimeUninstallRefused"
)

// installer is one run's state: the options, the node and the host's
// files as they were before the run touched them.
type installer struct {
	o         *Options
	node      *Node
	out       io.Writer
	restarted bool // containerd was restarted by this run
	// The run ended with the node annotated restart-needed.
	restartByHand bool

	// What the run asks of the node's containerd and systemd; tests stand
	// in for them.
	version     func(context.Context) (string, error)
	handlers    func(context.Context) (map[string]string, error)
	restartUnit func(ctx context.Context, ifRunning bool) error
}

func newInstaller(o *Options, out io.Writer) (*installer, error) {
	node, err := NewNode(o.NodeName, o.Kubeconfig, out)
	if err != nil {
		return nil, err
	}
	in := &installer{o: o, node: node, out: out}
	in.version = func(ctx context.Context) (string, error) {
		return ContainerdVersion(ctx, o.Host(o.ContainerdAddress))
	}
	in.handlers = func(ctx context.Context) (map[string]string, error) {
		c, err := DialCRI(o.Host(o.ContainerdAddress))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.Handlers(ctx)
	}
	in.restartUnit = func(ctx context.Context, ifRunning bool) error {
		return RestartUnit(ctx, o.Host(o.SystemdBus), o.ContainerdUnit, ifRunning)
	}
	return in, nil
}

// Install puts the shim and its handlers on the node (see the package
// comment). It returns nil also when containerd must be restarted by hand:
// the node then carries the restart-needed annotation and no label.
func Install(ctx context.Context, o *Options, out io.Writer) error {
	in, err := newInstaller(o, out)
	if err != nil {
		return err
	}
	return in.runInstall(ctx)
}

// runInstall installs and reports a failure. With o.Wait, an install that
// left the node awaiting a restart by hand then waits for that restart.
func (in *installer) runInstall(ctx context.Context) error {
	err := in.install(ctx)
	if err == nil && in.restartByHand && in.o.Wait {
		return in.awaitRestartByHand(ctx)
	}
	if err != nil {
		// A SIGTERM may have ended ctx: the failure is reported still.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		defer cancel()
		in.node.Report(rctx, corev1.EventTypeWarning, ReasonInstallFailed, err.Error())
	}
	return err
}

// reportTimeout bounds the report of a failure made after ctx ended.
const reportTimeout = 10 * time.Second

// RollbackTimeout bounds a rollback on an install whose restart timeout is
// restart: a restart of containerd on the restored files, the wait for
// CRI, and the file writes. The installer pod's termination grace period
// must cover a restart already under way (restart) plus this.
func RollbackTimeout(restart time.Duration) time.Duration {
	return 2*restart + 15*time.Second
}

func (in *installer) install(ctx context.Context) error {
	o := in.o
	configPath := o.Host(o.Config)
	// The edit replaces the file by rename, which would turn a link into a
	// copy: the file it points to is the one to name.
	if st, err := os.Lstat(configPath); err == nil && st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("containerd config %s is a symbolic link: give --config the file it points to", configPath)
	}
	config, err := os.ReadFile(configPath)
	if err != nil {
		return fmt.Errorf("containerd config: %w", err)
	}
	info, err := ParseConfig(configPath, config)
	if err != nil {
		return err
	}
	if info.Version < 2 {
		return fmt.Errorf("containerd config %s has version %d: containerd 2.0 or later with a version 2 or 3 config is needed (`containerd config migrate`)", configPath, info.Version)
	}
	version, err := in.version(ctx)
	if err != nil {
		return err
	}
	if err := CheckContainerdVersion(version); err != nil {
		return err
	}
	edited, err := AddImport(configPath, config, o.ImportGlob())
	if err != nil {
		return err
	}

	// What the run may change, to put back on failure.
	var before []fileState
	for _, p := range []string{o.Host(o.ShimPath()), o.Host(o.DropInPath()), configPath, configPath + BackupSuffix} {
		s, err := snapshot(p)
		if err != nil {
			return err
		}
		before = append(before, s)
	}
	dropIn := RenderDropIn(o.ShimPath(), o.Handlers, o.DensePodsPerShim)
	digest, err := attemptDigest(before, o.ShimSource, dropIn, edited, version)
	if err != nil {
		return err
	}
	if err := in.checkAttempt(ctx, digest, version); err != nil {
		return err
	}
	rollback := func(cause error) error {
		err := in.rollback(ctx, before, cause)
		// A SIGTERM (a rollout, a deleted pod) is not the install's own
		// failure: the next pod tries the same install again.
		if in.restarted && ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
			defer cancel()
			in.recordAttempt(rctx, digest, err)
		}
		return err
	}

	if _, err := InstallShim(o.ShimSource, o.Host(o.ShimPath())); err != nil {
		return rollback(err)
	}
	dropInChanged, err := InstallDropIn(o.Host(o.DropInPath()), dropIn)
	if err != nil {
		return rollback(err)
	}
	configChanged, err := in.importDropIns(configPath, before[2], edited)
	if err != nil {
		return rollback(err)
	}
	missing, err := in.missing(ctx)
	if err != nil {
		return rollback(err)
	}
	log.G(ctx).WithFields(log.Fields{"containerd": version, "config_changed": configChanged, "drop_in_changed": dropInChanged, "missing": missing}).Debug("installed files")
	// A new shim alone needs no restart: containerd starts the new binary
	// for new pods. Handlers not live need one even when the files are
	// unchanged, as when a previous run stopped before its restart.
	if configChanged || dropInChanged || len(missing) > 0 {
		err := in.restart(ctx, true)
		if errors.Is(err, ErrNotSystemd) {
			return in.restartNeeded(ctx, err)
		}
		if err != nil {
			return rollback(err)
		}
		if err := in.waitHandlers(ctx); err != nil {
			return rollback(err)
		}
	}
	return in.installed(ctx, version)
}

// installed labels the node once CRI lists the handlers on the shim, and
// takes off the restart-needed annotation.
func (in *installer) installed(ctx context.Context, version string) error {
	o := in.o
	key, value, _ := o.LabelKV()
	if err := in.node.SetMetadata(ctx, map[string]*string{key: &value}, map[string]*string{RestartNeededAnnotation: nil, InstallFailedAnnotation: nil}); err != nil {
		return err
	}
	in.node.Report(ctx, corev1.EventTypeNormal, ReasonInstalled,
		fmt.Sprintf("handlers %s live on containerd %s with shim %s", strings.Join(o.Handlers, ","), version, o.ShimPath()))
	return nil
}

// importDropIns writes containerd's config edited to import the drop-ins,
// after a backup of the config as it was. The backup is made even when the
// config imports them already: it is how uninstall tells an import the
// config had from the one the install added.
func (in *installer) importDropIns(configPath string, orig fileState, edited []byte) (bool, error) {
	if err := in.backupOnce(configPath, orig); err != nil {
		return false, err
	}
	if string(edited) == string(orig.data) {
		return false, nil
	}
	if _, err := writeAtomic(configPath, edited, orig.mode); err != nil {
		return false, fmt.Errorf("write containerd config %s: %w", configPath, err)
	}
	return true, nil
}

// backupOnce keeps the config as it was before the installer first edited
// it; a later run never overwrites that copy.
func (in *installer) backupOnce(configPath string, orig fileState) error {
	backup := configPath + BackupSuffix
	if _, err := os.Stat(backup); err == nil {
		return nil
	}
	if _, err := writeAtomic(backup, orig.data, orig.mode); err != nil {
		return fmt.Errorf("backup of containerd config: %w", err)
	}
	return nil
}

// missing lists the handlers CRI does not serve on the installed shim.
func (in *installer) missing(ctx context.Context) ([]string, error) {
	live, err := in.handlers(ctx)
	if err != nil {
		return nil, err
	}
	return missingHandlers(live, in.o.Handlers, in.o.ShimPath()), nil
}

// restart restarts containerd's unit within the restart timeout: with
// ifRunning only a unit that is (or is becoming) active, else in any state.
func (in *installer) restart(ctx context.Context, ifRunning bool) error {
	ctx, cancel := context.WithTimeout(ctx, in.o.RestartTimeout)
	defer cancel()
	err := in.restartUnit(ctx, ifRunning)
	if !errors.Is(err, ErrNotSystemd) && !errors.Is(err, errNoRestartJob) {
		in.restarted = true // even a failed restart job may have stopped it
	}
	return err
}

// waitHandlers waits, up to the restart timeout, until CRI lists every
// handler on the installed shim.
func (in *installer) waitHandlers(ctx context.Context) error {
	return in.waitContainerd(ctx, " with the handlers", func(ctx context.Context) error {
		missing, err := in.missing(ctx)
		if err == nil && len(missing) > 0 {
			err = fmt.Errorf("CRI does not list handlers %s on %s", strings.Join(missing, ","), in.o.ShimPath())
		}
		return err
	})
}

// waitContainerd polls ready, up to the restart timeout, until it returns
// nil; what says what containerd must come back with.
func (in *installer) waitContainerd(ctx context.Context, what string, ready func(context.Context) error) error {
	deadline := time.Now().Add(in.o.RestartTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, criPollTimeout)
		err := ready(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not come back%s within %v: %w", what, in.o.RestartTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// restartNeeded is the end of an install on a containerd the installer
// cannot restart: the files are in place, the node says a restart is
// needed and carries no label.
func (in *installer) restartNeeded(ctx context.Context, cause error) error {
	key, _, _ := in.o.LabelKV()
	if err := in.node.SetMetadata(ctx, map[string]*string{key: nil}, map[string]*string{RestartNeededAnnotation: ptr("true"), InstallFailedAnnotation: nil}); err != nil {
		return err
	}
	in.node.Report(ctx, corev1.EventTypeWarning, ReasonRestartNeeded,
		fmt.Sprintf("restart needed: %v; restart containerd on this node to load handlers %s", cause, strings.Join(in.o.Handlers, ",")))
	in.restartByHand = true
	return nil
}

// awaitRestartByHand asks CRI every poll interval whether containerd, now
// restarted by someone else, lists the handlers on the installed shim;
// once it does, the node is labelled as after an install's own restart. A
// CRI that does not answer (containerd down for its restart) is asked
// again. It returns nil when ctx ends first: a SIGTERM only ends the wait.
func (in *installer) awaitRestartByHand(ctx context.Context) error {
	log.G(ctx).WithField("interval", in.o.pollInterval()).Info("waiting for containerd to be restarted by hand")
	tick := time.NewTicker(in.o.pollInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, criPollTimeout)
		missing, err := in.missing(cctx)
		cancel()
		if err != nil || len(missing) > 0 {
			log.G(ctx).WithError(err).WithField("missing", missing).Debug("containerd not restarted with the handlers yet")
			continue
		}
		// The restart may have brought another containerd.
		cctx, cancel = context.WithTimeout(ctx, criPollTimeout)
		version, err := in.version(cctx)
		cancel()
		if err != nil {
			continue
		}
		err = in.installed(ctx, version)
		if ctx.Err() != nil {
			// A SIGTERM cut the labelling short: it is no failure, and the
			// DaemonSet's next pod finds the handlers live and labels.
			return nil
		}
		return err
	}
}

// criPollTimeout bounds one question to containerd.
const criPollTimeout = 5 * time.Second

// rollback puts the files back as they were, restarts containerd on them
// when this run restarted it, and returns cause with what could not be
// undone. It runs to its end, within RollbackTimeout, even when ctx has
// ended: a SIGTERM must not leave containerd on files no longer there.
func (in *installer) rollback(ctx context.Context, before []fileState, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RollbackTimeout(in.o.RestartTimeout))
	defer cancel()
	var errs []error
	for _, s := range before {
		if err := s.restore(); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", s.path, err))
		}
	}
	done := "the node's files were restored"
	if in.restarted {
		// The installer's own restart may have left the unit failed.
		if err := in.restart(ctx, false); err != nil {
			errs = append(errs, fmt.Errorf("restart containerd on the restored config: %w", err))
		} else if err := in.waitCRI(ctx); err != nil {
			errs = append(errs, err)
		}
		done += " and containerd restarted on them"
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; the node could not be fully restored: %w", cause, errors.Join(errs...))
	}
	return fmt.Errorf("%w; %s", cause, done)
}

// waitCRI waits, up to the restart timeout, until CRI answers.
func (in *installer) waitCRI(ctx context.Context) error {
	return in.waitContainerd(ctx, "", func(ctx context.Context) error {
		_, err := in.missing(ctx)
		return err
	})
}
