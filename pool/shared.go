package pool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
)

// SharedShim is a shim's place in its pool when it serves the pods of many
// starts (PodsPerShim is not 1).
type SharedShim struct {
	// Dir is its pool's directory, Name its name there.
	Dir, Name string
	// Address is the shim's socket, which it removes as it exits.
	Address string

	mu sync.Mutex
	// logBundle is the bundle whose log pipe is the shim's stderr and which
	// is its working directory: the first pod's, then another's.
	logBundle string
}

// Server is what a shared shim's place in its pool asks of the shim.
type Server interface {
	// Has tells whether pod id came to the shim and is not gone.
	Has(id string) bool
	// Live tells whether a pod of the shim lives.
	Live() bool
	// Bundles are the bundles of the shim's pods.
	Bundles() []string
	// Exit ends the shim.
	Exit()
}

// SharedFromEnv returns the shim's place in its pool, or nil for a shim
// of one pod.
func SharedFromEnv() *SharedShim {
	dir := os.Getenv(DirEnv)
	if dir == "" {
		return nil
	}
	cwd, _ := os.Getwd()
	return &SharedShim{Dir: dir, Name: os.Getenv(NameEnv), Address: os.Getenv(AddressEnv), logBundle: cwd}
}

// Retire takes pod id (if any) out of the pool, with the pods given to
// the shim that will never come (see dropGone; bundle, if known, is the
// leaving pod's, beside theirs) and, when the shim has no pod left, the
// shim too, which then exits (srv.Exit).
func (sh *SharedShim) Retire(ctx context.Context, srv Server, id, bundle string) {
	sh.updateRecord(ctx, srv, func(locked *Pool, own Shim) (Shim, error) {
		if id != "" {
			var err error
			if own, err = locked.Release(own, id); err != nil {
				return own, err
			}
		}
		if bundle == "" {
			return own, nil
		}
		return dropGone(ctx, srv, locked, own, filepath.Dir(bundle))
	})
}

// dropGone takes out of the shim's record the pods given to it that have
// not come and whose bundle, in bundles, is gone: containerd makes a pod's
// bundle before its start and removes it, running no `shim delete`, when
// the start fails (killed after it gave the pod to this shim), so such a
// pod never comes, and the shim need not wait a StartTimeout for it.
func dropGone(ctx context.Context, srv Server, locked *Pool, own Shim, bundles string) (Shim, error) {
	return dropAwaited(srv, locked, own, func(id string) bool {
		if _, err := os.Lstat(filepath.Join(bundles, id)); !errors.Is(err, os.ErrNotExist) {
			return false
		}
		log.G(ctx).WithField("sandbox", id).Info("a pod given to this shim has no bundle left: dropped")
		return true
	})
}

// ExpireUnclaimed drops, every half ttl (the runtime's StartTimeout), the
// pods a start gave the shim more than ttl ago that never came (containerd
// died between start and CreateSandbox, or the start failed after choosing
// this shim): the shim would wait for them for ever. It runs for the
// shim's life.
func (sh *SharedShim) ExpireUnclaimed(ctx context.Context, srv Server, ttl time.Duration) {
	for range time.Tick(ttl / 2) {
		sh.updateRecord(ctx, srv, func(locked *Pool, own Shim) (Shim, error) {
			return dropAwaited(srv, locked, own, func(id string) bool {
				if at, err := locked.AssignedAt(own.Name, id); err != nil || time.Since(at) < ttl {
					return false
				}
				log.G(ctx).WithField("sandbox", id).Warn("a pod given to this shim never came: dropped")
				return true
			})
		})
	}
}

// dropAwaited takes out of the shim's record the pods given to it that
// have not come, and that never says never will.
func dropAwaited(srv Server, locked *Pool, own Shim, never func(id string) bool) (Shim, error) {
	for _, id := range own.Pods {
		if srv.Has(id) || !never(id) {
			continue
		}
		var err error
		if own, err = locked.Release(own, id); err != nil {
			return own, err
		}
	}
	return own, nil
}

// updateRecord runs change on the shim's record in the locked pool, then
// removes the shim from the pool, and ends it, if it has no pod left.
func (sh *SharedShim) updateRecord(ctx context.Context, srv Server, change func(*Pool, Shim) (Shim, error)) {
	lctx, cancel := context.WithTimeout(ctx, StartLockTimeout)
	defer cancel()
	locked, err := Lock(lctx, sh.Dir)
	if err != nil {
		log.G(ctx).WithError(err).Error("shim pool: the shim stays")
		return
	}
	defer locked.Unlock()
	own, err := locked.Shim(sh.Name)
	if errors.Is(err, os.ErrNotExist) {
		// No record names this shim (a reader removed it as damaged, or a
		// start was killed between starting it and recording it): no start
		// hands it out again, so it serves the pods it has and exits after
		// the last.
		log.G(ctx).WithError(err).WithField("shim", sh.Name).Debug("shim pool: this shim has no record")
		own = Shim{Name: sh.Name, Address: sh.Address}
	} else if err != nil {
		log.G(ctx).WithError(err).Error("shim pool: this shim's record")
		return
	}
	if own, err = change(locked, own); err != nil {
		log.G(ctx).WithError(err).Warn("shim pool: release pod")
	}
	failpoint.Inject(failpoint.PoolRetireAfterRelease)
	if srv.Live() || len(own.Pods) > 0 {
		return // pods given to it are still to come
	}
	log.G(ctx).WithField("shim", sh.Name).Info("last pod gone: shared shim exits")
	// The socket, then the record: a shim killed in between leaves a record
	// with no pod and nobody at its address, which the next start removes,
	// never a socket no record names. Unreachable without its socket, the
	// shim exits even if its record stays.
	if own.Address != "" {
		RemoveSockets([]string{own.Address})
	}
	if err := locked.RemoveShim(sh.Name); err != nil {
		log.G(ctx).WithError(err).Warn("shim pool: remove this shim's record")
	}
	failpoint.Inject(failpoint.PoolRetireAfterRetire)
	if err := locked.Prune(); err != nil {
		log.G(ctx).WithError(err).Warn("shim pool: remove the empty pool")
	}
	srv.Exit()
}

// MoveLog points the shim's stderr (its log) and working directory at the
// bundle of a pod it still serves when they are the bundle of the pod that
// left: containerd stops reading that bundle's log pipe and removes the
// directory once the pod is deleted, and after a containerd restart only
// the pipes of live bundles are read.
func (sh *SharedShim) MoveLog(ctx context.Context, srv Server, gone string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.logBundle != gone {
		return
	}
	for _, bundle := range srv.Bundles() {
		if bundle == gone {
			continue
		}
		if err := redirectStderr(filepath.Join(bundle, "log")); err != nil {
			log.G(ctx).WithError(err).WithField("bundle", bundle).Debug("move the shim's log")
			continue
		}
		_ = os.Chdir(bundle)
		sh.logBundle = bundle
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
