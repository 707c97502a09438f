// Package pool records which shim process serves which pods when pods
// share shims (the runtime option PodsPerShim is not 1).
//
// A pool is the shims of one containerd, namespace, shim binary and options:
// a directory beside containerd's shim sockets holding a lock file, and for
// each shim its socket address and the ids of the pods it serves. `shim
// start` holds the lock while it picks a shim with room (or starts one) and
// records the pod there; a shim holds it while it takes a pod out and,
// when none is left, itself, before it exits: so start never hands out a
// shim that is on its way out. `shim delete` takes a pod out of a shim that
// died, and the shim out once it has no pod left.
package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Env names carry a shared shim's place in its pool from `shim start` to
// the shim server (its address is in the pool's record).
const (
	DirEnv  = "PAUSE_SHIM_POOL"
	NameEnv = "PAUSE_SHIM_POOL_NAME"
)

// BundleFile, in a pod's bundle, names the pool directory of the pod's
// shim, for `shim delete`, which knows neither the options nor the shim.
const BundleFile = "pause-pool"

// Dir is the directory of the pool of key, under containerd's socket
// directory (a tmpfs only root writes: the pool goes with the sockets).
func Dir(socketDir, key string) string {
	return filepath.Join(socketDir, "pause-pools", key)
}

// Key names a pool after what its shims must have in common.
func Key(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// Pool is a pool directory, locked.
type Pool struct {
	dir  string
	lock *os.File
}

// testHookBeforeOpen, set by tests only, runs in Lock between making the
// pool's directory and opening its lock file.
var testHookBeforeOpen func()

// Lock opens the pool at dir, making it if need be, and waits for its
// lock. Unlock releases it.
func Lock(dir string) (*Pool, error) {
	for {
		p, err := lockOnce(dir)
		if err != nil || p != nil {
			return p, err
		}
		// The pool was removed (Prune) while we waited: lock the new one.
	}
}

// lockOnce locks the pool's lock file, or returns nil when that file was
// removed while it waited.
func lockOnce(dir string) (*Pool, error) {
	// A Prune may remove the pools' directory between MkdirAll's steps.
	err := os.MkdirAll(dir, 0o700)
	for try := 0; errors.Is(err, os.ErrNotExist) && try < 3; try++ {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return nil, fmt.Errorf("shim pool: %w", err)
	}
	if testHookBeforeOpen != nil {
		testHookBeforeOpen()
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("shim pool: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shim pool: lock %s: %w", dir, err)
	}
	held, herr := f.Stat()
	now, nerr := os.Stat(path)
	if herr != nil || nerr != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, nil
	}
	return &Pool{dir: dir, lock: f}, nil
}

// Prune removes the pool's directory if no shim is left in it; the pool
// stays locked until Unlock.
func (p *Pool) Prune() error {
	shims, err := p.Shims()
	if err != nil || len(shims) > 0 {
		return err
	}
	if err := os.Remove(filepath.Join(p.dir, "lock")); err != nil {
		return err
	}
	if err := os.Remove(p.dir); err != nil {
		return err
	}
	_ = os.Remove(filepath.Dir(p.dir)) // the pools' directory, once empty
	return nil
}

// Unlock releases the pool's lock.
func (p *Pool) Unlock() { p.lock.Close() }

// Shim is one shim of a pool.
type Shim struct {
	// Name is the shim's name in its pool.
	Name string
	// Address is its socket's.
	Address string
	// Pods are the pods it serves, or was given and will serve.
	Pods []string
}

func (p *Pool) shimDir(name string) string { return filepath.Join(p.dir, name) }

// Shims lists the pool's shims, oldest first.
func (p *Pool) Shims() ([]Shim, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	var shims []Shim
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s, err := p.Shim(e.Name())
		if err != nil {
			return nil, err
		}
		shims = append(shims, s)
	}
	return shims, nil
}

// Shim returns the record of shim name.
func (p *Pool) Shim(name string) (Shim, error) {
	address, err := os.ReadFile(filepath.Join(p.shimDir(name), "address"))
	if err != nil {
		return Shim{}, fmt.Errorf("shim pool: shim %s: %w", name, err)
	}
	pods, err := os.ReadDir(filepath.Join(p.shimDir(name), "pods"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Shim{}, err
	}
	s := Shim{Name: name, Address: string(address)}
	for _, pod := range pods {
		s.Pods = append(s.Pods, pod.Name())
	}
	return s, nil
}

// NewName returns a name no shim of the pool has: names sort by age.
func (p *Pool) NewName() string {
	for n := time.Now().UnixNano(); ; n++ {
		name := strconv.FormatInt(n, 10)
		if _, err := os.Lstat(p.shimDir(name)); errors.Is(err, os.ErrNotExist) {
			return name
		}
	}
}

// AddShim records a new shim, listening at address, with no pod.
func (p *Pool) AddShim(name, address string) error {
	if err := os.MkdirAll(filepath.Join(p.shimDir(name), "pods"), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.shimDir(name), "address"), []byte(address), 0o600)
}

// RemoveShim forgets a shim and whatever pods it still lists.
func (p *Pool) RemoveShim(name string) error {
	return os.RemoveAll(p.shimDir(name))
}

// Assign records that shim name serves pod.
func (p *Pool) Assign(name, pod string) error {
	f, err := os.OpenFile(filepath.Join(p.shimDir(name), "pods", pod), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("shim pool: give pod %s to shim %s: %w", pod, name, err)
	}
	return f.Close()
}

// Holder returns the shim of shims that serves pod, if one does.
func Holder(shims []Shim, pod string) (Shim, bool) {
	for _, s := range shims {
		if slices.Contains(s.Pods, pod) {
			return s, true
		}
	}
	return Shim{}, false
}

// Release takes pod out of shim s, and returns s as it is left.
func (p *Pool) Release(s Shim, pod string) (Shim, error) {
	if err := os.Remove(filepath.Join(p.shimDir(s.Name), "pods", pod)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	s.Pods = slices.DeleteFunc(slices.Clone(s.Pods), func(id string) bool { return id == pod })
	return s, nil
}

// Retire removes shim name from the pool if it serves no pod, so that no
// start hands it out again; it tells whether it did.
func (p *Pool) Retire(name string) (bool, error) {
	s, err := p.Shim(name)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if len(s.Pods) > 0 {
		return false, nil
	}
	return true, p.RemoveShim(name)
}

// AssignedAt is when pod was given to shim name.
func (p *Pool) AssignedAt(name, pod string) (time.Time, error) {
	fi, err := os.Stat(filepath.Join(p.shimDir(name), "pods", pod))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}
