package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Uninstall takes the shim off the node: the label, the drop-in, the
// import the installer added to containerd's config (the config then is
// byte for byte what it was before the install, unless edited since),
// then restarts containerd and removes the shim binary. It refuses while
// CRI lists pod sandboxes on the handlers, unless o.Force. Where an earlier
// run left nothing but the label, it removes the label and asks CRI nothing.
func Uninstall(ctx context.Context, o *Options, out io.Writer) error {
	in, err := newInstaller(o, out)
	if err != nil {
		return err
	}
	return in.uninstall(ctx)
}

func (in *installer) uninstall(ctx context.Context) error {
	o := in.o
	// The shim goes last: with it and the drop-in gone, an earlier run
	// finished, and CRI (restarted without the handlers) need not be asked.
	if !exists(o.Host(o.ShimPath())) && !exists(o.Host(o.DropInPath())) {
		key, _, _ := o.LabelKV()
		return in.node.SetMetadata(ctx, map[string]*string{key: nil}, map[string]*string{RestartNeededAnnotation: nil, InstallFailedAnnotation: nil})
	}
	c, err := DialCRI(o.Host(o.ContainerdAddress))
	if err != nil {
		return err
	}
	pods, err := c.PodsOn(ctx, o.Handlers)
	if err != nil {
		c.Close()
		return err
	}
	// Handlers containerd still serves need a restart even when this run
	// changes no file: an earlier run may have been killed before its own.
	live, err := c.Handlers(ctx)
	c.Close()
	if err != nil {
		return err
	}
	loaded := len(missingHandlers(live, o.Handlers, o.ShimPath())) < len(o.Handlers)
	if len(pods) > 0 {
		msg := fmt.Sprintf("uninstall refused: %d pod(s) use handlers %s on this node: %s (delete them, or uninstall --force)",
			len(pods), strings.Join(o.Handlers, ","), strings.Join(pods, ", "))
		if !o.Force {
			in.node.Report(ctx, corev1.EventTypeWarning, ReasonUninstallRefused, msg)
			return errors.New(msg)
		}
		fmt.Fprintln(in.out, "forced:", msg)
	}
	key, _, _ := o.LabelKV()
	if err := in.node.SetMetadata(ctx, map[string]*string{key: nil}, map[string]*string{RestartNeededAnnotation: nil, InstallFailedAnnotation: nil}); err != nil {
		return err
	}
	dropIn := o.Host(o.DropInPath())
	dropInRemoved := true
	if err := os.Remove(dropIn); os.IsNotExist(err) {
		dropInRemoved = false
	} else if err != nil {
		return fmt.Errorf("remove the drop-in: %w", err)
	}
	configChanged, err := in.unimport()
	if err != nil {
		return err
	}
	if dropInRemoved || configChanged || loaded {
		err := in.restart(ctx, true)
		switch {
		case errors.Is(err, ErrNotSystemd):
			if err := in.node.SetMetadata(ctx, nil, map[string]*string{RestartNeededAnnotation: ptr("true")}); err != nil {
				return err
			}
			in.node.Report(ctx, corev1.EventTypeWarning, ReasonRestartNeeded,
				fmt.Sprintf("restart needed: %v; restart containerd on this node to unload handlers %s", err, strings.Join(o.Handlers, ",")))
		case err != nil:
			return err
		default:
			if err := in.waitCRI(ctx); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(o.Host(o.ShimPath())); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove the shim: %w", err)
	}
	in.node.Report(ctx, corev1.EventTypeNormal, ReasonUninstalled,
		fmt.Sprintf("handlers %s, drop-in %s and shim %s removed", strings.Join(o.Handlers, ","), o.DropInPath(), o.ShimPath()))
	return nil
}

// unimport takes the installer's import out of containerd's config. When
// the config is still exactly what the install made of the backup, the
// backup itself goes back; else the import alone is removed, and not at
// all when the config imported the drop-ins before the install. The backup
// is removed once the config is byte for byte the same.
func (in *installer) unimport() (bool, error) {
	o := in.o
	configPath := o.Host(o.Config)
	backupPath := configPath + BackupSuffix
	current, err := snapshot(configPath)
	if err != nil {
		return false, err
	}
	if !current.exists {
		return false, nil
	}
	backup, err := os.ReadFile(backupPath)
	hasBackup := err == nil
	if err != nil && !os.IsNotExist(err) {
		return false, err
	}
	glob := o.ImportGlob()
	next := current.data
	switch {
	case hasBackup && matchesInstall(configPath, backup, current.data, glob):
		next = backup
	case hasBackup && importsAlready(configPath, backup, glob):
	default:
		if next, err = RemoveImport(configPath, current.data, glob); err != nil {
			return false, err
		}
	}
	changed := !bytes.Equal(next, current.data)
	if changed {
		if _, err := writeAtomic(configPath, next, current.mode); err != nil {
			return false, fmt.Errorf("write containerd config %s: %w", configPath, err)
		}
	}
	if hasBackup && bytes.Equal(next, backup) {
		if err := os.Remove(backupPath); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

func matchesInstall(name string, backup, current []byte, glob string) bool {
	edited, err := AddImport(name, backup, glob)
	return err == nil && bytes.Equal(edited, current)
}

func importsAlready(name string, backup []byte, glob string) bool {
	info, err := ParseConfig(name, backup)
	return err == nil && info.Imported(glob)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
