package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	systemd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	ocsystemd "github.com/opencontainers/cgroups/systemd"
)

// The systemd cgroup driver. On a node whose kubelet uses it, CRI gives a
// pod's cgroup parent as a slice (kubepods-besteffort-pod<uid>.slice) and
// its containers the path "<slice>:cri-containerd:<id>", which runc's
// systemd driver turns into a transient scope. The pause task goes the
// same way, into the scope containerd would give a pause container,
// cri-containerd-<sandbox id>.scope, started over systemd's D-Bus API.

// systemdRunning tells whether systemd is the init system (sd_booted(3)).
func systemdRunning() bool {
	_, err := os.Stat("/run/systemd/system")
	return err == nil
}

// RequireSystemd refuses the systemd driver, which what asks for, on a host
// without systemd.
func RequireSystemd(what string) error {
	if systemdRunning() {
		return nil
	}
	return fmt.Errorf("%s asks for the systemd cgroup driver, but systemd is not running on this host (no /run/systemd/system): "+
		"use the cgroupfs driver (kubelet cgroupDriver: cgroupfs, no SystemdCgroup): %w", what, errdefs.ErrFailedPrecondition)
}

// IsSlice tells a systemd slice name or path ("x.slice", "/a.slice/a-b.slice").
func IsSlice(p string) bool { return strings.HasSuffix(p, ".slice") }

// SplitSystemdPath splits runc's systemd form "slice:prefix:name".
func SplitSystemdPath(p string) (slice, prefix, name string, ok bool) {
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// ExpandSlice turns a slice name into its cgroup path, as systemd lays it
// out: each dash opens a level ("a-b.slice" is /a.slice/a-b.slice). It is
// runc's own expansion (opencontainers/cgroups), so a pod's slice is where
// runc puts its containers' scopes.
func ExpandSlice(slice string) (string, error) {
	p, err := ocsystemd.ExpandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("%q is not a systemd slice name: %v: %w", slice, err, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// UnitNameEscape escapes s for one level of a unit name: systemd reads a
// dash as a level of the slice tree, so dashes (and the separator "_") are
// written as \xNN, as systemd-escape does.
func UnitNameEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// systemdTimeout bounds one unit job: systemd answers in milliseconds, but a
// busy or wedged manager must not hold a pod's start or stop for ever.
const systemdTimeout = 30 * time.Second

// systemdBus is the shim's connection to systemd, shared by its jobs,
// closed after a few idle seconds.
var systemdBus = &sharedBus[*systemd.Conn]{dial: systemd.NewWithContext, idle: 5 * time.Second}

// withSystemd runs fn on the shim's connection to systemd, within
// systemdTimeout.
func withSystemd(ctx context.Context, fn func(context.Context, *systemd.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	conn, release, err := systemdBus.get(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer release()
	return fn(ctx, conn)
}

// StartScope starts the transient scope unit in slice holding pids.
func StartScope(ctx context.Context, unit, slice string, pids []int) error {
	return withSystemd(ctx, func(ctx context.Context, conn *systemd.Conn) error {
		return startScopeOn(ctx, conn, unit, slice, pids)
	})
}

func startScopeOn(ctx context.Context, conn *systemd.Conn, unit, slice string, pids []int) error {
	upids := make([]uint32, len(pids))
	for i, p := range pids {
		upids[i] = uint32(p)
	}
	props := []systemd.Property{
		systemd.PropDescription("pause task of a pod (containerd-shim-pause-v2)"),
		systemd.PropSlice(slice),
		systemd.PropPids(upids...),
		// As runc's scopes: no ordering against shutdown targets, so
		// stopping the node does not stop a pod behind the kubelet's back.
		{Name: "DefaultDependencies", Value: godbus.MakeVariant(false)},
	}
	return runJob(ctx, unit, "start", func(ch chan<- string) (int, error) {
		return conn.StartTransientUnitContext(ctx, unit, "replace", props, ch)
	})
}

// StopUnit stops unit and forgets a failed state; a unit that is already
// gone is fine (`shim delete` may run after the shim did this).
func StopUnit(ctx context.Context, unit string) error {
	return withSystemd(ctx, func(ctx context.Context, conn *systemd.Conn) error {
		err := runJob(ctx, unit, "stop", func(ch chan<- string) (int, error) {
			return conn.StopUnitContext(ctx, unit, "replace", ch)
		})
		if err != nil && !noSuchUnit(err) {
			return err
		}
		_ = conn.ResetFailedUnitContext(ctx, unit)
		return nil
	})
}

// runJob runs one systemd job and waits for its result.
func runJob(ctx context.Context, unit, verb string, submit func(chan<- string) (int, error)) error {
	ch := make(chan string, 1)
	if _, err := submit(ch); err != nil {
		return fmt.Errorf("%s unit %s: %w", verb, unit, err)
	}
	select {
	case result := <-ch:
		if result != "done" {
			return fmt.Errorf("%s unit %s: job %s", verb, unit, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s unit %s: %w", verb, unit, ctx.Err())
	}
}

func noSuchUnit(err error) bool {
	var derr godbus.Error
	return errors.As(err, &derr) && derr.Name == "org.freedesktop.systemd1.NoSuchUnit"
}
