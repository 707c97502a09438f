package cgroups

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeConn is a connection a test breaks.
type fakeConn struct {
	broken, closed atomic.Bool
}

func (c *fakeConn) Connected() bool { return !c.broken.Load() }
func (c *fakeConn) Close()          { c.closed.Store(true) }

// TestSharedBusDialsOnceAndAgainWhenBroken: jobs share one connection,
// dialed by the first of many at once; a broken one is closed and dialed
// again; a failed dial is not kept.
func TestSharedBusDialsOnceAndAgainWhenBroken(t *testing.T) {
	var dials atomic.Int32
	failNext := atomic.Bool{}
	b := &sharedBus[*fakeConn]{dial: func(context.Context) (*fakeConn, error) {
		dials.Add(1)
		if failNext.Swap(false) {
			return nil, errors.New("bus down")
		}
		return &fakeConn{}, nil
	}}
	ctx := context.Background()
	var wg sync.WaitGroup
	conns := make([]*fakeConn, 50)
	for i := range conns {
		wg.Go(func() {
			c, err := b.get(ctx)
			if err != nil {
				t.Error(err)
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials for 50 jobs, want 1", n)
	}
	first := conns[0]
	for _, c := range conns {
		if c != first {
			t.Fatal("jobs got different connections")
		}
	}

	first.broken.Store(true)
	failNext.Store(true)
	if _, err := b.get(ctx); err == nil {
		t.Fatal("a failed dial answered a connection")
	}
	if !first.closed.Load() {
		t.Error("the broken connection was not closed")
	}
	second, err := b.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || dials.Load() != 3 {
		t.Errorf("after a break: same connection %v, %d dials, want a new one and 3", second == first, dials.Load())
	}
	if again, _ := b.get(ctx); again != second {
		t.Error("a working connection was not reused")
	}
}
