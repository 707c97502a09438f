package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
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
	podCgroups
	// Files are the CRI pod's hostname, hosts, resolv.conf and shm.
	Files podFiles `json:"files"`
	// Sockets are the shim's: a shim killed outright cannot remove them.
	Sockets []string `json:"sockets,omitempty"`
}

func (s record) save(bundle string) error {
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

// cleanup kills the pause task if it is still the process recorded and
// removes the pod's cgroups. It is idempotent: `shim delete` may run it after
// the shim did.
func (s record) cleanup(ctx context.Context, bundle string) {
	logger := log.G(ctx).WithField("sandbox", s.ID)
	if s.PausePid > 0 && s.PauseStartTime != 0 {
		if st, err := procStartTime(s.PausePid); err == nil && st == s.PauseStartTime {
			_ = syscall.Kill(s.PausePid, syscall.SIGKILL)
			waitGone(s.PausePid, s.PauseStartTime, 2*time.Second)
		}
	}
	failpoint.Inject(failpoint.RecordCleanupAfterKill)
	for _, unit := range []string{s.PauseUnit, s.PodUnit} {
		if unit == "" {
			continue
		}
		if err := stopUnit(ctx, unit); err != nil {
			logger.WithError(err).WithField("unit", unit).Warn("stop systemd unit")
		}
	}
	if s.PauseCgroup != "" {
		if err := DeleteCgroup(s.PauseCgroup); err != nil {
			logger.WithError(err).Warn("remove pause cgroup")
		}
	}
	if s.OwnsPodCgroup && s.PodCgroup != "" {
		if err := DeleteCgroup(s.PodCgroup); err != nil {
			logger.WithError(err).Warn("remove pod cgroup")
		}
	}
	failpoint.Inject(failpoint.RecordCleanupAfterCgroups)
	if err := s.Files.remove(); err != nil {
		logger.WithError(err).Warn("remove pod files")
	}
	failpoint.Inject(failpoint.RecordCleanupAfterFiles)
	RemoveSockets(s.Sockets)
}

// CleanupBundle is `shim delete` for a sandbox bundle: it reports whether the
// bundle held a pod (false: it is a container's bundle) and cleans the pod up.
func CleanupBundle(ctx context.Context, bundle string) (bool, error) {
	data, err := os.ReadFile(filepath.Join(bundle, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		_, cerr := os.Stat(filepath.Join(bundle, "config.json"))
		// A sandbox bundle from CRI has no config.json; its shim died before
		// the pause task started: nothing to clean.
		return errors.Is(cerr, os.ErrNotExist), nil
	}
	if err != nil {
		return true, err
	}
	var s record
	if err := json.Unmarshal(data, &s); err != nil {
		return true, fmt.Errorf("malformed pod state %s: %v: %w", stateFile, err, errdefs.ErrDataLoss)
	}
	s.cleanup(ctx, bundle)
	return true, nil
}

// procStartTime is the start time of pid in clock ticks since boot (field 22
// of /proc/PID/stat): with the pid it names one process for good.
func procStartTime(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat reads a process's start time and state letter ('Z' for a zombie).
func procStat(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces; the fields after it are plain.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0][0], err
}

// waitGone waits until pid no longer names the process that started at
// start; a zombie is gone for this purpose (its parent reaps it).
func waitGone(pid int, start uint64, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		st, state, err := procStat(pid)
		if err != nil || st != start || state == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RemoveSockets removes shim sockets; a socket already gone is fine.
func RemoveSockets(addrs []string) {
	for _, a := range addrs {
		_ = shim.RemoveSocket(a)
	}
}
