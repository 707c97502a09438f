package pool

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
)

// ServerSpec is a shared shim server for the bootstrap to start.
type ServerSpec struct {
	// ID names it to pkg/shim; Address is its socket's.
	ID, Address string
	// Procs is its GOMAXPROCS.
	Procs int
	// Env is added to its environment.
	Env []string
}

// Bootstrap is what `shim start` lends the pool: the pool decides which
// shim serves a pod, the bootstrap starts shims and keeps pods' records.
type Bootstrap struct {
	// Spawn starts a shim server.
	Spawn func(ctx context.Context, srv ServerSpec) error
	// RecordSocket records the socket of pod id, whose bundle is the
	// working directory, for a later `shim delete` to remove.
	RecordSocket func(id, address string) error
}

// Start returns the address of pod id on a shim of its pool: the one
// that already serves it, else one with room, else a new one. The pod's
// address is its own (containerd and `shim delete` know the pod by it): a
// symbolic link to its shim's socket.
func Start(ctx context.Context, b Bootstrap, opts *bootapi.BootstrapParams, runtimeOpts options.Options, id, socketDir string) (string, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", err
	}
	grpcAddress := opts.GetContainerdGrpcAddress()
	dir, err := DirFor(socketDir, grpcAddress, ns, runtimeOpts)
	if err != nil {
		return "", err
	}
	lctx, cancel := context.WithTimeout(ctx, StartLockTimeout)
	defer cancel()
	locked, err := Lock(lctx, dir)
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
	if holder, held := Holder(shims, id); held {
		if Listens(address) {
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
		if host, err = addShim(ctx, b, locked, opts, socketDir, dir); err != nil {
			return "", err
		}
	}
	// Record, then act. `shim delete` finds the pool from the bundle (the
	// working directory); a start killed after Assign leaves a pod that
	// never comes, which its shim drops after StartTimeout.
	if err := os.WriteFile(BundleFile, []byte(dir), 0o600); err != nil {
		return "", err
	}
	failpoint.Inject(failpoint.PoolStartAfterBundleFile)
	if err := locked.Assign(host.Name, id); err != nil {
		return "", err
	}
	failpoint.Inject(failpoint.PoolStartAfterAssign)
	if err := b.RecordSocket(id, address); err != nil {
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

// DirFor is the directory of the pool a pod joins: the pool of this
// containerd and namespace, this shim binary and these options.
func DirFor(socketDir, grpcAddress, ns string, runtimeOpts options.Options) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	// The running binary's own file, even if another was renamed over
	// its path since it started.
	binary, err := BinaryIdentity("/proc/self/exe")
	if err != nil {
		return "", err
	}
	return Dir(socketDir, Key(grpcAddress, ns, self, binary, runtimeOpts.Encode())), nil
}

// roomIn returns a live shim of the pool's shims with room for a pod (max
// 0: no limit), or nil. Dead shims with no pod left are removed on the way.
func roomIn(ctx context.Context, locked *Pool, shims []Shim, max int) (*Shim, error) {
	for i := range shims {
		s := &shims[i]
		if max != 0 && len(s.Pods) >= max {
			continue
		}
		if Listens(s.Address) {
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
func removeIfDead(ctx context.Context, locked *Pool, s Shim) error {
	if len(s.Pods) > 0 || Listens(s.Address) {
		return nil
	}
	log.G(ctx).WithField("shim", s.Name).Info("removing a dead shared shim")
	_ = shim.RemoveSocket(s.Address)
	return locked.RemoveShim(s.Name)
}

// addShim records a new shim in the pool, then starts it. Recorded first, a
// shim is never left running with no record naming it (no start would hand
// it out, and it would wait for a pod for ever); a start killed before the
// shim listens leaves a record with no pod and nobody at its address,
// which the next start removes (roomIn).
func addShim(ctx context.Context, b Bootstrap, locked *Pool, opts *bootapi.BootstrapParams, socketDir, dir string) (*Shim, error) {
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
	srv := ServerSpec{
		ID: shimID, Address: address,
		Procs: min(runtime.NumCPU(), 4), // its pods' calls run at once, but each P costs memory
		Env:   []string{DirEnv + "=" + dir, NameEnv + "=" + name, AddressEnv + "=" + address},
	}
	if err := b.Spawn(ctx, srv); err != nil {
		if rerr := locked.RemoveShim(name); rerr != nil {
			log.G(ctx).WithError(rerr).WithField("shim", name).Warn("shim pool: remove the record of a shim that did not start")
		}
		return nil, err
	}
	return &Shim{Name: name, Address: address}, nil
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

// Leave is `shim delete`'s share for a pod of a shared shim: a shim
// that died cannot take its pods out of the pool, so delete does, and takes
// out every dead shim left with no pod (this one with its last pod, or one
// killed as it left the pool). A live shim has taken the pod out itself
// when the pod shut down. dir is the pool's directory, as the pod's bundle
// (OfBundle) or the copy of its record names it.
func Leave(ctx context.Context, dir, id, bundle string) {
	if _, err := os.Stat(dir); err != nil {
		return // the pool's last shim removed it
	}
	lctx, cancel := context.WithTimeout(ctx, LeaveLockTimeout)
	defer cancel()
	locked, err := Lock(lctx, dir)
	if err != nil {
		// The pod's own cleanup comes first (see LeaveLockTimeout).
		log.G(ctx).WithError(err).WithField("sandbox", id).Warn("shim pool: the pod is left in its pool's record")
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
		if Listens(s.Address) {
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
