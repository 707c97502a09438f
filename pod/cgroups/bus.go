package cgroups

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// busConn is a connection that can tell it broke: systemd's D-Bus
// connection, or a test's.
type busConn interface {
	Connected() bool
	Close()
}

// sharedBus is one connection for the shim's systemd jobs, opened on first
// use, opened again once it breaks, and closed once no job has used it for
// idle: a shared shim runs a job for every pod it starts and stops, and a
// connection per job would pay a dial and an authentication each time;
// but a shim of one pod must not hold its connections (two, each subscribed
// to every job of the node) for the pod's whole life, as a node of many
// such shims would reach the bus's limit of connections per user.
type sharedBus[C busConn] struct {
	dial func(context.Context) (C, error)
	idle time.Duration

	mu    sync.Mutex
	conn  C
	open  bool
	end   context.CancelFunc // ends the connection's context
	users int
	gen   int // bumped on each use: an idle close armed before is void
}

// get returns the open connection, or dials one within ctx, and the
// release to call once the job is done with it.
func (b *sharedBus[C]) get(ctx context.Context) (C, func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	if b.open && !b.conn.Connected() {
		b.closeLocked()
	}
	if !b.open {
		// The connection outlives the job that opens it (godbus closes
		// it when its context ends), but the dial is the job's: it ends
		// with ctx.
		dctx, end := context.WithCancel(context.WithoutCancel(ctx))
		cut := context.AfterFunc(ctx, end)
		conn, err := b.dial(dctx)
		if !cut() {
			if err == nil {
				conn.Close()
			}
			end()
			return conn, nil, fmt.Errorf("dial: %w", ctx.Err())
		}
		if err != nil {
			end()
			return conn, nil, err
		}
		b.conn, b.open, b.end = conn, true, end
	}
	b.users++
	var once sync.Once
	return b.conn, func() { once.Do(b.release) }, nil
}

func (b *sharedBus[C]) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.users--
	if b.users > 0 || !b.open {
		return
	}
	gen := b.gen
	time.AfterFunc(b.idle, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.gen == gen && b.users == 0 && b.open {
			b.closeLocked()
		}
	})
}

func (b *sharedBus[C]) closeLocked() {
	b.conn.Close()
	b.end()
	b.open = false
}
