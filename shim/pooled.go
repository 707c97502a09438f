package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// taskBundles is the directory (under containerd's state) of the bundles of
// tasks; a sandbox's bundle lives under its sandbox controller's.
const taskBundles = "io.containerd.runtime.v2.task"

// isSandboxBundle tells whether `start` runs in a sandbox's bundle (its
// working directory), not a task's: only sandboxes share shims.
func isSandboxBundle() bool {
	cwd, err := os.Getwd()
	if err != nil {
		return false
	}
	return filepath.Base(filepath.Dir(filepath.Dir(cwd))) != taskBundles
}

// startPooled returns the address of pod id on a shim of its pool: the one
// that already serves it, else one with room, else a new one. The pod's
// address is its own (containerd and `shim delete` know the pod by it): a
// symbolic link to its shim's socket.
func (m *Manager) startPooled(ctx context.Context, opts *bootapi.BootstrapParams, runtimeOpts options.Options, id, socketDir string) (string, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", err
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	grpcAddress := opts.GetContainerdGrpcAddress()
	dir := pool.Dir(socketDir, pool.Key(grpcAddress, ns, self, runtimeOpts.Encode()))
	locked, err := pool.Lock(dir)
	if err != nil {
		return "", err
	}
	defer locked.Unlock()
	failpoint.Inject(failpoint.PoolStartAfterLock)
	address, err := shim.CreateSocketAddress(ctx, socketDir, grpcAddress, id, false)
	if err != nil {
		return "", err
	}
	shims, err := locked.Shims()
	if err != nil {
		return "", err
	}
	if holder, held := pool.Holder(shims, id); held {
		if shim.CanConnect(address) {
			return address, nil
		}
		// Its shim died: the pod starts again on another.
		if _, err := locked.Release(holder, id); err != nil {
			return "", err
		}
	}
	host, err := roomIn(ctx, locked, shims, int(runtimeOpts.PodsPerShim))
	if err != nil {
		return "", err
	}
	if host == nil {
		if host, err = addShim(ctx, locked, opts, runtimeOpts, socketDir, dir); err != nil {
			return "", err
		}
	}
	// Record, then act. `shim delete` finds the pool from the bundle (the
	// working directory); a start killed after Assign leaves a pod that
	// never comes, which its shim drops after StartTimeout.
	if err := os.WriteFile(pool.BundleFile, []byte(dir), 0o600); err != nil {
		return "", err
	}
	failpoint.Inject(failpoint.PoolStartAfterBundleFile)
	if err := locked.Assign(host.Name, id); err != nil {
		return "", err
	}
	failpoint.Inject(failpoint.PoolStartAfterAssign)
	if err := recordPodSocket(id, address); err != nil {
		return "", err
	}
	if err := linkPodSocket(address, host.Address); err != nil {
		if _, rerr := locked.Release(*host, id); rerr != nil {
			log.G(ctx).WithError(rerr).Warn("shim pool: release a pod that did not start")
		}
		return "", err
	}
	failpoint.Inject(failpoint.PoolStartEnd)
	log.G(ctx).WithFields(log.Fields{"shim": host.Name, "pods": len(host.Pods) + 1}).Debug("pod given to a shared shim")
	return address, nil
}

// roomIn returns a live shim of the pool's shims with room for a pod (max
// 0: no limit), or nil. Dead shims with no pod left are removed on the way.
func roomIn(ctx context.Context, locked *pool.Pool, shims []pool.Shim, max int) (*pool.Shim, error) {
	for i := range shims {
		s := &shims[i]
		if max != 0 && len(s.Pods) >= max {
			continue
		}
		if shim.CanConnect(s.Address) {
			return s, nil
		}
		if err := removeIfDead(ctx, locked, *s); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// removeIfDead removes shim s from the pool, with its socket, if it serves
// no pod and nobody listens at its address: a start killed before the
// shim listened, or a shim killed as it left its pool, left it so.
func removeIfDead(ctx context.Context, locked *pool.Pool, s pool.Shim) error {
	if len(s.Pods) > 0 || shim.CanConnect(s.Address) {
		return nil
	}
	log.G(ctx).WithField("shim", s.Name).Info("removing a dead shared shim")
	_ = shim.RemoveSocket(s.Address)
	return locked.RemoveShim(s.Name)
}

// spawnShared starts a shared shim's server; tests stand in for it.
var spawnShared = spawn

// addShim records a new shim in the pool, then starts it. Recorded first, a
// shim is never left running with no record naming it (no start would hand
// it out, and it would wait for a pod for ever); a start killed before the
// shim listens leaves a record with no pod and nobody at its address,
// which the next start removes (roomIn).
func addShim(ctx context.Context, locked *pool.Pool, opts *bootapi.BootstrapParams, runtimeOpts options.Options, socketDir, dir string) (*pool.Shim, error) {
	name := locked.NewName()
	shimID := "pause-pool-" + name
	address, err := shim.CreateSocketAddress(ctx, socketDir, opts.GetContainerdGrpcAddress(), shimID, false)
	if err != nil {
		return nil, err
	}
	if err := locked.AddShim(name, address); err != nil {
		return nil, err
	}
	failpoint.Inject(failpoint.PoolStartAfterShimRecord)
	srv := server{
		id: shimID, address: address,
		procs: min(runtime.NumCPU(), 4), // a P per CPU, up to 4
		env:   []string{pool.DirEnv + "=" + dir, pool.NameEnv + "=" + name, pool.AddressEnv + "=" + address},
	}
	if err := spawnShared(ctx, opts, runtimeOpts, socketDir, srv); err != nil {
		if rerr := locked.RemoveShim(name); rerr != nil {
			log.G(ctx).WithError(rerr).WithField("shim", name).Warn("shim pool: remove the record of a shim that did not start")
		}
		if errors.Is(err, errShimRuns) {
			err = fmt.Errorf("a shim already listens at %s: %w", address, err)
		}
		return nil, err
	}
	return &pool.Shim{Name: name, Address: address}, nil
}

// linkPodSocket makes the pod's address a link to its shim's socket.
func linkPodSocket(podAddress, shimAddress string) error {
	if err := shim.RemoveSocket(podAddress); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale pod socket: %w", err)
	}
	if err := os.Symlink(socketPath(shimAddress), socketPath(podAddress)); err != nil {
		return fmt.Errorf("pod socket: %w", err)
	}
	return nil
}

// socketPath is the file of a unix:// address.
func socketPath(address string) string { return strings.TrimPrefix(address, "unix://") }

// leavePool is `shim delete`'s share for a pod of a shared shim: a shim
// that died cannot take its pods out of the pool, so delete does, and takes
// out every dead shim left with no pod (this one with its last pod, or one
// killed as it left the pool). A live shim has taken the pod out itself
// when the pod shut down. dir is the pool's directory, as the pod's bundle
// (pool.BundleFile) or the copy of its record names it.
func leavePool(ctx context.Context, dir, id, bundle string) {
	if _, err := os.Stat(dir); err != nil {
		return // the pool's last shim removed it
	}
	locked, err := pool.Lock(dir)
	if err != nil {
		log.G(ctx).WithError(err).Warn("shim pool")
		return
	}
	defer locked.Unlock()
	// Locking made the pool again if its last shim removed it meanwhile.
	defer func() { _ = locked.Prune() }()
	shims, err := locked.Shims()
	if err != nil {
		return
	}
	bundles := filepath.Dir(bundle)
	for _, s := range shims {
		if shim.CanConnect(s.Address) {
			continue
		}
		// A dead shim's pod is released by its own delete, or, with its
		// bundle gone, by this one: a start killed after it gave the pod
		// to the shim is followed by no delete, only by the bundle's removal.
		for _, pod := range s.Pods {
			if _, err := os.Lstat(filepath.Join(bundles, pod)); pod != id && !errors.Is(err, os.ErrNotExist) {
				continue
			}
			if s, err = locked.Release(s, pod); err != nil {
				log.G(ctx).WithError(err).Warn("shim pool: release pod of a dead shim")
				return
			}
		}
		if err := removeIfDead(ctx, locked, s); err != nil {
			log.G(ctx).WithError(err).Warn("shim pool: remove a dead shim")
		}
	}
}
