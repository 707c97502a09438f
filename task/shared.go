package task

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// sharedShim is a shim's place in its pool when it serves the pods of many
// starts (PodsPerShim is not 1): see package pool.
type sharedShim struct {
	dir, name string
	// address is the shim's socket, which it removes as it exits.
	address string

	mu sync.Mutex
	// logBundle is the bundle whose log pipe is the shim's stderr and which
	// is its working directory: the first pod's, then another's.
	logBundle string
}

// sharedFromEnv returns the shim's place in its pool, or nil for a shim
// of one pod.
func sharedFromEnv() *sharedShim {
	dir := os.Getenv(pool.DirEnv)
	if dir == "" {
		return nil
	}
	cwd, _ := os.Getwd()
	return &sharedShim{dir: dir, name: os.Getenv(pool.NameEnv), address: os.Getenv(pool.AddressEnv), logBundle: cwd}
}

// podGone is the end of pod id in this shim, once it is shut down (or was
// never created): its sockets go, and a shim of one pod exits; a shared
// shim takes the pod out of its pool, and exits only once it has no pod
// left and none on its way (a start that gave it one holds the pool).
func (s *Service) podGone(ctx context.Context, id, bundle string) {
	pool.RemoveSockets(shimSockets(ctx, s.socketDir, s.grpcAddress, id))
	if err := s.pods.Remove(id); err != nil {
		log.G(ctx).WithError(err).Warn("forget sandbox")
	}
	if s.shared == nil {
		// A shutdown naming another pod (bad input) must not end this one.
		if !s.pods.Live() {
			s.exitAfterReply()
		}
		return
	}
	// Retire first: its lines go to the log containerd still reads.
	s.retire(ctx, id, bundle)
	s.moveLog(ctx, bundle)
}

// retire takes pod id (if any) out of the pool, with the pods given to
// the shim that will never come (see dropGone; bundle, if known, is the
// leaving pod's, beside theirs) and, when the shim has no pod left, the
// shim too, which then exits.
func (s *Service) retire(ctx context.Context, id, bundle string) {
	s.updateRecord(ctx, func(locked *pool.Pool, own pool.Shim) (pool.Shim, error) {
		if id != "" {
			var err error
			if own, err = locked.Release(own, id); err != nil {
				return own, err
			}
		}
		if bundle == "" {
			return own, nil
		}
		return s.dropGone(ctx, locked, own, filepath.Dir(bundle))
	})
}

// dropGone takes out of the shim's record the pods given to it that have
// not come and whose bundle, in bundles, is gone: containerd makes a pod's
// bundle before its start and removes it, running no `shim delete`, when
// the start fails (killed after it gave the pod to this shim), so such a
// pod never comes, and the shim need not wait a StartTimeout for it.
func (s *Service) dropGone(ctx context.Context, locked *pool.Pool, own pool.Shim, bundles string) (pool.Shim, error) {
	for _, id := range own.Pods {
		if _, err := s.pods.Get(id); err == nil {
			continue
		}
		if _, err := os.Lstat(filepath.Join(bundles, id)); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		log.G(ctx).WithField("sandbox", id).Info("a pod given to this shim has no bundle left: dropped")
		var err error
		if own, err = locked.Release(own, id); err != nil {
			return own, err
		}
	}
	return own, nil
}

// expireUnclaimed drops, every half StartTimeout, the pods a start gave
// the shim more than a StartTimeout ago that never came (containerd died
// between start and CreateSandbox, or the start failed after choosing this
// shim): the shim would wait for them for ever. It runs for the shim's life.
func (s *Service) expireUnclaimed(ctx context.Context) {
	ttl := time.Duration(s.opts.StartTimeout)
	for range time.Tick(ttl / 2) {
		s.updateRecord(ctx, func(locked *pool.Pool, own pool.Shim) (pool.Shim, error) {
			for _, id := range own.Pods {
				if _, err := s.pods.Get(id); err == nil {
					continue // it came
				}
				if at, err := locked.AssignedAt(own.Name, id); err != nil || time.Since(at) < ttl {
					continue
				}
				log.G(ctx).WithField("sandbox", id).Warn("a pod given to this shim never came: dropped")
				var err error
				if own, err = locked.Release(own, id); err != nil {
					return own, err
				}
			}
			return own, nil
		})
	}
}

// updateRecord runs change on the shim's record in the locked pool, then
// removes the shim from the pool, and ends it, if it has no pod left.
func (s *Service) updateRecord(ctx context.Context, change func(*pool.Pool, pool.Shim) (pool.Shim, error)) {
	sh := s.shared
	locked, err := pool.Lock(sh.dir)
	if err != nil {
		log.G(ctx).WithError(err).Error("shim pool: the shim stays")
		return
	}
	defer locked.Unlock()
	own, err := locked.Shim(sh.name)
	if errors.Is(err, os.ErrNotExist) {
		// No record names this shim (a reader removed it as damaged, or a
		// start was killed between starting it and recording it): no start
		// hands it out again, so it serves the pods it has and exits after
		// the last.
		log.G(ctx).WithError(err).WithField("shim", sh.name).Debug("shim pool: this shim has no record")
		own = pool.Shim{Name: sh.name, Address: sh.address}
	} else if err != nil {
		log.G(ctx).WithError(err).Error("shim pool: this shim's record")
		return
	}
	if own, err = change(locked, own); err != nil {
		log.G(ctx).WithError(err).Warn("shim pool: release pod")
	}
	failpoint.Inject(failpoint.PoolRetireAfterRelease)
	if s.pods.Live() || len(own.Pods) > 0 {
		return // pods given to it are still to come
	}
	log.G(ctx).WithField("shim", sh.name).Info("last pod gone: shared shim exits")
	// The socket, then the record: a shim killed in between leaves a record
	// with no pod and nobody at its address, which the next start removes,
	// never a socket no record names. Unreachable without its socket, the
	// shim exits even if its record stays.
	if own.Address != "" {
		pool.RemoveSockets([]string{own.Address})
	}
	if err := locked.RemoveShim(sh.name); err != nil {
		log.G(ctx).WithError(err).Warn("shim pool: remove this shim's record")
	}
	failpoint.Inject(failpoint.PoolRetireAfterRetire)
	if err := locked.Prune(); err != nil {
		log.G(ctx).WithError(err).Warn("shim pool: remove the empty pool")
	}
	s.exitAfterReply()
}

// moveLog points the shim's stderr (its log) and working directory at the
// bundle of a pod it still serves when they are the bundle of the pod that
// left: containerd stops reading that bundle's log pipe and removes the
// directory once the pod is deleted, and after a containerd restart only
// the pipes of live bundles are read.
func (s *Service) moveLog(ctx context.Context, gone string) {
	sh := s.shared
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.logBundle != gone {
		return
	}
	for _, p := range s.pods.Pods() {
		if p.Bundle() == gone {
			continue
		}
		if err := redirectStderr(filepath.Join(p.Bundle(), "log")); err != nil {
			log.G(ctx).WithError(err).WithField("bundle", p.Bundle()).Debug("move the shim's log")
			continue
		}
		_ = os.Chdir(p.Bundle())
		sh.logBundle = p.Bundle()
		return
	}
	// No pod left to log through: the shim is about to exit, or waits for a
	// pod whose bundle it does not know yet.
	_ = redirectStderr(os.DevNull)
	_ = os.Chdir("/")
	sh.logBundle = ""
}

// redirectStderr makes path (a pipe containerd reads, or /dev/null) the
// process's stderr and the logger's output (pkg/shim gave the logger the
// first bundle's pipe of its own). A pipe nobody reads is refused rather
// than waited for.
func redirectStderr(path string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetNonblock(fd, false); err != nil {
		return err
	}
	if err := unix.Dup3(fd, int(os.Stderr.Fd()), 0); err != nil {
		return err
	}
	log.L.Logger.SetOutput(os.Stderr)
	return nil
}

// replyGrace is how long the shim outlives its answer to ShutdownSandbox.
const replyGrace = 200 * time.Millisecond

// exitAfterReply ends the shim (once no container is left) shortly after
// the current call has answered (abandon has no call: the delay is
// harmless). pkg/shim exits as soon as shutdown begins, without draining the
// ttrpc server, and containerd's sandbox controller, unlike its task manager,
// takes a connection closed before the reply for a failure.
func (s *Service) exitAfterReply() {
	time.AfterFunc(replyGrace, func() {
		_, _ = s.runc.Shutdown(context.Background(), &taskAPI.ShutdownRequest{})
	})
}
