package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/files"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// stateFile in the sandbox bundle lets `shim delete` clean up a pod whose
// shim is gone.
const stateFile = "pod.json"

// record is what survives the shim (the state file): enough to kill the pause task and
// remove the pod's cgroups from the bundle alone.
type record struct {
	ID             string `json:"id"`
	PausePid       int    `json:"pause_pid,omitempty"`
	PauseStartTime uint64 `json:"pause_start_time,omitempty"`
	cgroups.Layout
	// Files are the CRI pod's hostname, hosts, resolv.conf and shm.
	Files files.Dirs `json:"files"`
	// Sockets are the shim's: a shim killed outright cannot remove them.
	Sockets []string `json:"sockets,omitempty"`
	// bundle is the pod's bundle, which names the copy of the record kept
	// outside it (see orphanDir).
	bundle string
}

// save writes the record to the bundle, and its copy outside the bundle
// first: whatever pod.json names, a copy names too, for the pod to be found
// once containerd has removed the bundle.
func (s record) save(bundle string) error {
	if err := saveOrphan(bundle, s); err != nil {
		return fmt.Errorf("copy of pod state: %w", err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, stateFile))
}

// cleanup removes what the pod made (see release) and then the copy of its
// record outside the bundle, unless some of it could not be removed: the
// copy then lets a later `shim delete` try again once the bundle is gone.
func (s record) cleanup(ctx context.Context) error {
	err := s.release(ctx)
	if err == nil && s.bundle != "" {
		dropOrphan(ctx, s.bundle)
	}
	return err
}

// release removes what the pod made: it kills the pause task if it is still
// the process recorded, stops the pod's units and removes its cgroups and
// files. A start records all it will make before it makes it, so some of
// it may never have been made: that is skipped. It is idempotent: `shim
// delete` may run it after the shim did. The shim's sockets are not the
// pod's to remove: the shim serves them until it exits (CleanupBundle
// removes them once it is gone).
func (s record) release(ctx context.Context) error {
	logger := log.G(ctx).WithField("sandbox", s.ID)
	var errs []error
	switch {
	case s.PausePid > 0 && s.PauseStartTime != 0:
		if err := proc.KillRecorded(s.PausePid, s.PauseStartTime, 2*time.Second); err != nil {
			logger.WithError(err).WithField("pid", s.PausePid).Warn("kill pause task")
			errs = append(errs, err)
		}
	case s.PausePid > 0:
		// Written by a shim that did not refuse an unknown start time:
		// the pid alone may name another process by now.
		logger.WithField("pid", s.PausePid).Warn("pause task recorded without its start time: not killed")
	}
	failpoint.Inject(failpoint.RecordCleanupAfterKill)
	for _, unit := range []string{s.PauseUnit, s.PodUnit} {
		if unit == "" {
			continue
		}
		if err := cgroups.StopUnit(ctx, unit); err != nil {
			logger.WithError(err).WithField("unit", unit).Warn("stop systemd unit")
			errs = append(errs, err)
		}
	}
	if s.PauseCgroup != "" {
		if err := cgroups.Delete(s.PauseCgroup); err != nil {
			logger.WithError(err).Warn("remove pause cgroup")
			errs = append(errs, err)
		}
	}
	if s.OwnsPodCgroup && s.PodCgroup != "" {
		if err := cgroups.Delete(s.PodCgroup); err != nil {
			logger.WithError(err).Warn("remove pod cgroup")
			errs = append(errs, err)
		}
	}
	failpoint.Inject(failpoint.RecordCleanupAfterCgroups)
	if err := s.Files.Remove(); err != nil {
		logger.WithError(err).Warn("remove pod files")
		errs = append(errs, err)
	}
	failpoint.Inject(failpoint.RecordCleanupAfterFiles)
	return errors.Join(errs...)
}

// CleanupBundle is `shim delete` for a sandbox bundle: it reports whether the
// bundle held a pod (false: it is a container's bundle) and cleans the pod up,
// the shim's sockets with it. A record it cannot trust (see decodeRecord) is
// left alone, with an error: it acts on none of it.
func CleanupBundle(ctx context.Context, bundle string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(bundle, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		_, cerr := os.Stat(filepath.Join(bundle, "config.json"))
		// A sandbox bundle from CRI has no config.json; its shim died before
		// its start recorded anything, so before it made anything: nothing
		// to clean.
		return errors.Is(cerr, os.ErrNotExist), nil
	}
	if err != nil {
		return true, err
	}
	s, err := decodeRecord(data)
	if err != nil {
		return true, err
	}
	// The copy of the record goes last: a delete killed before it leaves
	// the copy for the next delete to finish the work.
	cerr := s.release(ctx)
	pool.RemoveSockets(s.Sockets)
	if cerr == nil {
		dropOrphan(ctx, bundle)
	}
	return true, nil
}

// decodeRecord reads a state file and checks it before anything acts on
// it: `shim delete` kills what it names and removes its paths as root, so a
// record that is damaged, or not the shim's, must not reach a process or a
// path the pod never had. Anything else is ErrDataLoss.
func decodeRecord(data []byte) (record, error) {
	var s record
	if err := json.Unmarshal(data, &s); err != nil {
		return record{}, fmt.Errorf("malformed pod state %s: %v: %w", stateFile, err, errdefs.ErrDataLoss)
	}
	if err := s.check(); err != nil {
		return record{}, fmt.Errorf("pod state %s: %w: %w", stateFile, err, errdefs.ErrDataLoss)
	}
	return s, nil
}

// check tells whether every part of the record has the form a pod's start
// gives it.
func (s record) check() error {
	if err := identifiers.Validate(s.ID); err != nil {
		return fmt.Errorf("id: %v", err)
	}
	// The pause task is the shim's child (or grandchild): never pid 1,
	// and a start time goes with its pid.
	if s.PausePid < 0 || s.PausePid == 1 || s.PausePid == 0 && s.PauseStartTime != 0 {
		return fmt.Errorf("pause_pid %d with start time %d", s.PausePid, s.PauseStartTime)
	}
	for _, cg := range []struct{ field, path string }{{"pod_cgroup", s.PodCgroup}, {"pause_cgroup", s.PauseCgroup}} {
		if cg.path == "" {
			continue
		}
		if clean, err := cgroups.CleanPath(cg.field, cg.path); err != nil || clean != cg.path {
			return fmt.Errorf("%s %q is not a cgroup path the shim writes", cg.field, cg.path)
		}
	}
	if s.OwnsPodCgroup && s.PodCgroup == "" {
		return errors.New("owns_pod_cgroup without a pod_cgroup")
	}
	if s.PauseCgroup != "" && path.Dir(s.PauseCgroup) != s.PodCgroup {
		return fmt.Errorf("pause_cgroup %q is not in pod_cgroup %q", s.PauseCgroup, s.PodCgroup)
	}
	if s.PodSlice != "" {
		if p, err := cgroups.ExpandSlice(s.PodSlice); err != nil || p != s.PodCgroup {
			return fmt.Errorf("pod_slice %q is not pod_cgroup %q", s.PodSlice, s.PodCgroup)
		}
	}
	if s.PauseUnit != "" && s.PauseUnit != cgroups.ScopePrefix+"-"+s.ID+".scope" {
		return fmt.Errorf("pause_unit %q is not the pod's scope", s.PauseUnit)
	}
	if s.PodUnit != "" && (s.PodUnit != s.PodSlice || cgroups.ReservedSlice(s.PodUnit)) {
		return fmt.Errorf("pod_unit %q is not a slice of a pod", s.PodUnit)
	}
	for _, dir := range []string{s.Files.Dir, s.Files.VolatileDir} {
		if dir != "" && !isCRISandboxDir(dir, s.ID) {
			return fmt.Errorf("files %q are not the pod's CRI sandbox directory", dir)
		}
	}
	for _, a := range s.Sockets {
		if !isShimSocket(a) {
			return fmt.Errorf("socket %q is not a shim socket address", a)
		}
	}
	return nil
}

// isCRISandboxDir tells whether dir is <dir>/io.containerd.grpc.v1.cri/sandboxes/<id>
// (see files.Locate), whole and clean.
func isCRISandboxDir(dir, id string) bool {
	return filepath.IsAbs(dir) && filepath.Clean(dir) == dir &&
		strings.HasSuffix(dir, string(filepath.Separator)+filepath.Join(files.CRIDirName, "sandboxes", id))
}

// isShimSocket tells whether address is what shim.CreateSocketAddress
// makes: unix://<directory>/<sha256 in hex>.
func isShimSocket(address string) bool {
	p, ok := strings.CutPrefix(address, "unix://")
	if !ok || !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return false
	}
	name := filepath.Base(p)
	if len(name) != 64 {
		return false
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
