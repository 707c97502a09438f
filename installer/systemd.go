package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/containerd/log"
	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// ErrNotSystemd is returned when containerd is not a systemd unit the
// installer can restart: no system bus under the host root, or the unit
// is not found or inactive there.
var ErrNotSystemd = errors.New("containerd is not a running systemd unit")

// errUnitFailed is returned for a unit systemd reports failed: containerd
// is systemd's, but down, and the installer does not start it on its own.
var errUnitFailed = errors.New("is failed")

// errNoRestartJob marks a RestartUnit error returned before systemd was
// asked to restart the unit: containerd was not touched.
var errNoRestartJob = errors.New("containerd was not restarted")

// unitStatePoll is how often a unit's state is read while systemd is
// starting or reloading it.
const unitStatePoll = time.Second

// RestartUnit restarts unit through the host's systemd, reached over the
// D-Bus system bus at socket, and waits for the restart job's result. With
// ifRunning, it first waits for a unit systemd is starting or reloading to
// be active, and restarts only an active unit; without (a rollback, after
// the installer's own restart), it restarts the unit in whatever state.
// An error before the restart job wraps errNoRestartJob.
func RestartUnit(ctx context.Context, socket, unit string, ifRunning bool) error {
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("%w: no system bus at %s", ErrNotSystemd, socket)
	}
	conn, err := sd.NewConnection(func() (*dbus.Conn, error) { return dialBus(ctx, socket) })
	if err != nil {
		return fmt.Errorf("%w: system bus at %s: %v", ErrNotSystemd, socket, err)
	}
	defer conn.Close()
	if ifRunning {
		state := func(ctx context.Context) (unitState, error) {
			units, err := conn.ListUnitsByNamesContext(ctx, []string{unit})
			if err != nil {
				return unitState{}, err
			}
			if len(units) != 1 {
				return unitState{load: "not-found"}, nil
			}
			return unitState{units[0].LoadState, units[0].ActiveState}, nil
		}
		if err := awaitUnit(ctx, unit, state, unitStatePoll); err != nil {
			return fmt.Errorf("%w (%w)", err, errNoRestartJob)
		}
	}
	log.G(ctx).WithField("unit", unit).Info("restarting containerd through systemd")
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return fmt.Errorf("restart %s: %w", unit, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("restart %s: job %s", unit, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("restart %s: %w", unit, ctx.Err())
	}
}

// unitState is a unit's load and active state as systemd names them.
type unitState struct{ load, active string }

// awaitUnit reads the unit's state every interval until it is settled and
// says whether the installer may restart it: nil when active; ErrNotSystemd
// when not found or inactive (containerd, if running, runs some other way);
// errUnitFailed when failed. A unit systemd is starting, reloading or
// stopping is containerd's: awaitUnit waits for it until ctx ends.
func awaitUnit(ctx context.Context, unit string, state func(context.Context) (unitState, error), interval time.Duration) error {
	for {
		s, err := state(ctx)
		if err != nil && ctx.Err() != nil {
			// The deadline or a SIGTERM, not an answer: nothing says
			// containerd is not systemd's.
			return fmt.Errorf("containerd's unit %s: %w", unit, ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("%w: systemd: unit %s: %v", ErrNotSystemd, unit, err)
		}
		switch {
		case s.load == "not-found" || s.load == "":
			return fmt.Errorf("%w: unit %s not found", ErrNotSystemd, unit)
		case s.active == "active":
			return nil
		case s.active == "inactive":
			return fmt.Errorf("%w: unit %s is %s/%s", ErrNotSystemd, unit, s.load, s.active)
		case s.active == "failed":
			return fmt.Errorf("containerd's unit %s %w (systemctl status %s): start it, then the installer restarts it with the handlers", unit, errUnitFailed, unit)
		}
		log.G(ctx).WithFields(log.Fields{"unit": unit, "state": s.active}).Debug("waiting for containerd's unit to settle")
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd's unit %s is still %s: %w", unit, s.active, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// dialBus opens an authenticated connection to the bus at socket, as
// root: the installer runs privileged.
func dialBus(ctx context.Context, socket string) (*dbus.Conn, error) {
	conn, err := dbus.Dial("unix:path="+socket, dbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
