package cgroups

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	}, idle: time.Hour}
	ctx := context.Background()
	var wg sync.WaitGroup
	conns := make([]*fakeConn, 50)
	for i := range conns {
		wg.Go(func() {
			c, release, err := b.get(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
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
	if _, _, err := b.get(ctx); err == nil {
		t.Fatal("a failed dial answered a connection")
	}
	if !first.closed.Load() {
		t.Error("the broken connection was not closed")
	}
	second, release, err := b.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if second == first || dials.Load() != 3 {
		t.Errorf("after a break: same connection %v, %d dials, want a new one and 3", second == first, dials.Load())
	}
	if again, _, _ := b.get(ctx); again != second {
		t.Error("a working connection was not reused")
	}
}

// TestSharedBusClosesWhenIdle: a connection no job has used for idle is
// closed (a shim of one pod holds none for the pod's life); one in use, or
// used again meanwhile, is not.
func TestSharedBusClosesWhenIdle(t *testing.T) {
	var dials atomic.Int32
	b := &sharedBus[*fakeConn]{dial: func(context.Context) (*fakeConn, error) {
		dials.Add(1)
		return &fakeConn{}, nil
	}, idle: 50 * time.Millisecond}
	ctx := context.Background()
	held, releaseHeld, err := b.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, release, _ := b.get(ctx)
	release()
	time.Sleep(150 * time.Millisecond)
	if held.closed.Load() {
		t.Fatal("a connection in use was closed")
	}
	releaseHeld()
	releaseHeld() // a second release changes nothing
	time.Sleep(20 * time.Millisecond)
	// Used again before the idle close: it stays.
	again, release, _ := b.get(ctx)
	if again != held {
		t.Fatal("the open connection was not reused")
	}
	time.Sleep(100 * time.Millisecond)
	if held.closed.Load() {
		t.Fatal("a connection used again was closed by an earlier idle close")
	}
	release()
	deadline := time.Now().Add(2 * time.Second)
	for !held.closed.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !held.closed.Load() {
		t.Fatal("an idle connection stayed open")
	}
	next, release, _ := b.get(ctx)
	release()
	if next == held || dials.Load() != 2 {
		t.Errorf("after the idle close: same connection %v, %d dials, want a new one and 2", next == held, dials.Load())
	}
}

// TestSharedBusDialEndsWithTheJob: a dial that hangs (a wedged bus) ends
// with the job's context, and holds no later job for ever.
func TestSharedBusDialEndsWithTheJob(t *testing.T) {
	b := &sharedBus[*fakeConn]{dial: func(ctx context.Context) (*fakeConn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, idle: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := b.get(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a hung dial answered a connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a hung dial outlived its job's context")
	}
}
