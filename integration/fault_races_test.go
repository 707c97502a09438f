package integration

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// TestConcurrentLifecycleRaces: execs, waits, a kill and a delete race on
// one container of a pod. Each call answers (success or a clear error kind),
// nothing hangs, and the pod then runs a new container.
func TestConcurrentLifecycleRaces(t *testing.T) {
	ctx := requireEnv(t)
	runPod(t, "races", podSpec("races"))
	c, task := startInPod(t, ctx, "races", "races-c", "/bin/sleep", "1000")
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expected := func(err error) bool {
		return err == nil || errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) ||
			errdefs.IsAlreadyExists(err) || errdefs.IsUnknown(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			ps := *spec.Process
			ps.Args = []string{"/bin/sleep", "0.05"}
			p, err := task.Exec(ctx, fmt.Sprintf("race-%d", i), &ps, cio.NullIO)
			if err != nil {
				if !expected(err) {
					errs <- fmt.Errorf("exec: %w", err)
				}
				return
			}
			w, err := p.Wait(ctx)
			if err == nil {
				if err = p.Start(ctx); err == nil {
					<-w
				}
			}
			if !expected(err) {
				errs <- fmt.Errorf("exec start: %w", err)
			}
			if _, err := p.Delete(ctx); !expected(err) {
				errs <- fmt.Errorf("exec delete: %w", err)
			}
		})
	}
	wg.Go(func() {
		time.Sleep(30 * time.Millisecond)
		if err := task.Kill(ctx, syscall.SIGKILL); !expected(err) {
			errs <- fmt.Errorf("kill: %w", err)
		}
	})
	wg.Go(func() {
		w, err := task.Wait(ctx)
		if err != nil {
			errs <- fmt.Errorf("wait: %w", err)
			return
		}
		<-w
		if _, err := task.Delete(ctx); !expected(err) {
			errs <- fmt.Errorf("delete: %w", err)
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("lifecycle calls hang")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, again := startInPod(t, ctx, "races", "races-after", "/bin/sh", "-c", "exit 4")
	w, _ := again.Wait(ctx)
	if st := <-w; st.ExitCode() != 4 {
		t.Errorf("a new container after the races: exit %d", st.ExitCode())
	}
}
