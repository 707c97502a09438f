package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/containerd/log"
	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// ErrNotSystemd is returned when containerd is not a systemd unit the
// installer can restart: no system bus under the host root, or the unit
// is not loaded and active there.
var ErrNotSystemd = errors.New("containerd is not a running systemd unit")

// RestartUnit restarts unit through the host's systemd, reached over the
// D-Bus system bus at socket, and waits for the restart job's result.
func RestartUnit(ctx context.Context, socket, unit string) error {
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("%w: no system bus at %s", ErrNotSystemd, socket)
	}
	conn, err := sd.NewConnection(func() (*dbus.Conn, error) { return dialBus(ctx, socket) })
	if err != nil {
		return fmt.Errorf("%w: system bus at %s: %v", ErrNotSystemd, socket, err)
	}
	defer conn.Close()
	units, err := conn.ListUnitsByNamesContext(ctx, []string{unit})
	if err != nil {
		return fmt.Errorf("%w: systemd at %s: %v", ErrNotSystemd, socket, err)
	}
	if len(units) != 1 || units[0].LoadState != "loaded" || units[0].ActiveState != "active" {
		state := "unknown"
		if len(units) == 1 {
			state = units[0].LoadState + "/" + units[0].ActiveState
		}
		return fmt.Errorf("%w: unit %s is %s", ErrNotSystemd, unit, state)
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
