package pod

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// A pod's record has two owners. pod.json lives in the bundle, and
// containerd runs `shim delete` once after a shim dies and then removes the
// bundle, pod.json with it: a delete killed midway (or timed out) would
// leave the pod's mount, files, cgroups and sockets with no record of them.
// So every save also keeps a copy outside the bundle, in orphanDir, which
// outlives bundles; the pod's cleanup removes it last, and every `shim
// delete` of a sandbox sweeps the copies whose bundle is gone.
//
// orphanDir is beside the shared pause binary, on tmpfs: it goes away with
// a reboot, as does all a record names (processes, mounts, cgroups,
// sockets), so a copy never outlives what it describes. Only root writes
// there: a copy names what a sweep kills and removes as root. Copies are
// keyed by a hash of the bundle path, which holds containerd's state
// directory, the namespace and the pod's id: two containerds or namespaces
// never share a name.
var orphanDir = filepath.Join(pause.CacheDir, "pods")

// SetOrphanDir moves the record copies to dir. For the tests of other
// packages: a copy they left where a real `shim delete` sweeps would be
// swept (or kept, with its bundle's directory gone) on the host.
func SetOrphanDir(dir string) { orphanDir = dir }

// staleTemp is the age after which a temporary copy is a save that was
// killed: a save writes and renames it at once.
const staleTemp = time.Minute

// orphan is the copy of a pod's record kept outside its bundle.
type orphan struct {
	// Bundle is the pod's bundle: while it exists, its pod.json and
	// containerd's `shim delete` own the pod and the copy is not acted on.
	Bundle string `json:"bundle"`
	// Pool is the pool directory of the pod's shared shim, if it has one
	// (as the bundle names it: pool.OfBundle).
	Pool   string `json:"pool,omitempty"`
	Record record `json:"record"`
}

// orphanPath is the copy of the record of the pod whose bundle is bundle.
func orphanPath(bundle string) string {
	sum := sha256.Sum256([]byte(bundle))
	return filepath.Join(orphanDir, hex.EncodeToString(sum[:16])+".json")
}

// saveOrphan writes the copy of s, the record of the pod in bundle, in one
// rename: a reader sees the old copy or the new one.
func saveOrphan(bundle string, s record) error {
	o := orphan{Bundle: bundle, Record: s}
	var err error
	if o.Pool, err = pool.OfBundle(bundle); err != nil {
		return err
	}
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	// The parent first, as the pause binary's cache makes it (open to
	// all for execution); the copies' directory is root's alone.
	if err := os.Mkdir(filepath.Dir(orphanDir), 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := os.Mkdir(orphanDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	tmp, err := os.CreateTemp(orphanDir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), orphanPath(bundle))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

// dropOrphan removes the copy of the record of the pod in bundle, once the
// pod is cleaned up.
func dropOrphan(ctx context.Context, bundle string) {
	if err := os.Remove(orphanPath(bundle)); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.G(ctx).WithError(err).WithField("bundle", bundle).Warn("remove copy of pod state")
	}
}

// decodeOrphan reads the copy at path and checks it as decodeRecord checks
// pod.json, and that it is the copy of the bundle it names: a copy that is
// damaged, or not the shim's, is ErrDataLoss and nothing acts on it.
func decodeOrphan(path string, data []byte) (orphan, error) {
	var o orphan
	if err := json.Unmarshal(data, &o); err != nil {
		return orphan{}, fmt.Errorf("malformed copy of pod state %s: %v: %w", path, err, errdefs.ErrDataLoss)
	}
	if err := o.check(path); err != nil {
		return orphan{}, fmt.Errorf("copy of pod state %s: %w: %w", path, err, errdefs.ErrDataLoss)
	}
	return o, nil
}

func (o orphan) check(path string) error {
	if !filepath.IsAbs(o.Bundle) || filepath.Clean(o.Bundle) != o.Bundle || filepath.Base(o.Bundle) != o.Record.ID {
		return fmt.Errorf("bundle %q is not the bundle of pod %q", o.Bundle, o.Record.ID)
	}
	if orphanPath(o.Bundle) != path {
		return fmt.Errorf("bundle %q is not the one this copy is named after", o.Bundle)
	}
	if o.Pool != "" && !pool.ValidDir(o.Pool) {
		return fmt.Errorf("pool %q is not a shim pool directory", o.Pool)
	}
	return o.Record.check()
}

// SweepOrphans is `shim delete`'s look for pods whose own delete never
// ended: for each copy of a record whose bundle is gone, it cleans the pod
// up from the copy, takes it out of its pool (leavePool, given the pool's
// directory and the pod's id), removes its sockets where nobody listens,
// and then the copy. A copy whose bundle exists is its pod's, and left
// alone; so is one it cannot trust. A cleanup that fails keeps the copy,
// for the next sweep to try again.
func SweepOrphans(ctx context.Context, leavePool func(ctx context.Context, dir, id, bundle string)) {
	entries, err := os.ReadDir(orphanDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("look for pods left by a shim delete")
		}
		return
	}
	for _, e := range entries {
		path := filepath.Join(orphanDir, e.Name())
		if strings.HasPrefix(e.Name(), ".tmp-") {
			removeStaleTemp(path)
			continue
		}
		sweepOrphan(ctx, path, leavePool)
	}
}

func sweepOrphan(ctx context.Context, path string, leavePool func(ctx context.Context, dir, id, bundle string)) {
	data, err := os.ReadFile(path)
	if err != nil {
		return // another sweep took it
	}
	logger := log.G(ctx).WithField("copy", path)
	o, err := decodeOrphan(path, data)
	if err != nil {
		logger.WithError(err).Warn("copy of pod state not trusted: left alone")
		return
	}
	if !bundleGone(o.Bundle) || pool.AnyListens(o.Record.Sockets) {
		return
	}
	logger = logger.WithFields(log.Fields{"sandbox": o.Record.ID, "bundle": o.Bundle})
	logger.Info("cleaning up a pod whose shim delete did not end")
	err = o.Record.release(ctx)
	if o.Pool != "" && leavePool != nil {
		leavePool(ctx, o.Pool, o.Record.ID, o.Bundle)
	}
	pool.RemoveDeadSockets(o.Record.Sockets)
	if err != nil {
		logger.WithError(err).Warn("pod left by a shim delete: cleanup incomplete, tried again at the next")
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		logger.WithError(err).Warn("remove copy of pod state")
	}
}

// bundleGone tells whether bundle no longer exists, where the directory of
// bundles it was in (containerd's state, beside the namespace) still does:
// a sweep that cannot see that containerd's state at all (another mount
// namespace) must not take its pods for gone.
func bundleGone(bundle string) bool {
	if _, err := os.Lstat(bundle); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	_, err := os.Stat(filepath.Dir(filepath.Dir(bundle)))
	return err == nil
}

// removeStaleTemp removes a temporary copy left by a save that was killed;
// one younger than staleTemp may be a save under way.
func removeStaleTemp(path string) {
	if fi, err := os.Lstat(path); err == nil && time.Since(fi.ModTime()) > staleTemp {
		_ = os.Remove(path)
	}
}

// RecordShimSockets is `shim start`'s record of the sockets it makes for
// pod id, whose bundle is bundle, before it makes them: containerd runs no
// `shim delete` after a start that failed (it only removes the bundle),
// so a start killed once it has made the pod's socket, or a server that
// dies before it serves, would leave it with no owner. The copy lets a
// later sweep remove it where nobody listens; the pod's own record, once
// saved, takes its place.
func RecordShimSockets(bundle, id string, sockets []string) error {
	s := record{ID: id, Sockets: sockets}
	if err := s.check(); err != nil {
		return fmt.Errorf("shim sockets of %s: %w: %w", id, err, errdefs.ErrInvalidArgument)
	}
	return saveOrphan(bundle, s)
}
