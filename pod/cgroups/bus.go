package cgroups

import (
	"context"
	"sync"
)

// busConn is a connection that can tell it broke: systemd's D-Bus
// connection, or a test's.
type busConn interface {
	Connected() bool
	Close()
}

// sharedBus is one connection for the whole shim, opened on first use and
// opened again once it breaks: a shared shim runs a systemd job for every
// pod it starts and stops, and a connection per job would pay a dial and an
// authentication each time, and hold a socket of the bus each meanwhile.
type sharedBus[C busConn] struct {
	dial func(context.Context) (C, error)

	mu   sync.Mutex
	conn C
	open bool
}

// get returns the open connection, or dials one.
func (b *sharedBus[C]) get(ctx context.Context) (C, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open && b.conn.Connected() {
		return b.conn, nil
	}
	if b.open {
		b.conn.Close()
		b.open = false
	}
	conn, err := b.dial(ctx)
	if err != nil {
		return conn, err
	}
	b.conn, b.open = conn, true
	return conn, nil
}
