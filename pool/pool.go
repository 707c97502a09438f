// Package pool shares shims among pods when the runtime option PodsPerShim
// is not 1: `shim start` gives a pod to a shim with room, or starts one; a
// shared shim leaves its pool with its last pod; `shim delete` clears what
// a dead shim left. It sits below pod: of the rooms it imports options alone.
package pool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Env names carry a shared shim's place in its pool from `shim start` to
// the shim server.
const (
	DirEnv  = "PAUSE_SHIM_POOL"
	NameEnv = "PAUSE_SHIM_POOL_NAME"
	// AddressEnv is the shim's own socket, for it to remove when it
	// leaves even if its record is gone.
	AddressEnv = "PAUSE_SHIM_POOL_ADDRESS"
)

// BundleFile, in a pod's bundle, names the pool directory of the pod's
// shim, for `shim delete`, which knows neither the options nor the shim.
// Start writes it; OfBundle reads it.
const BundleFile = "pause-pool"

// OfBundle returns the pool directory that the pod's bundle names, or ""
// when the pod's shim is not shared.
func OfBundle(bundle string) (string, error) {
	data, err := os.ReadFile(filepath.Join(bundle, BundleFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return string(data), err
}

// poolsDir, under containerd's socket directory, holds the pools.
const poolsDir = "pause-pools"

// Dir is the directory of the pool of key, under containerd's socket
// directory (a tmpfs only root writes: the pool goes with the sockets).
func Dir(socketDir, key string) string {
	return filepath.Join(socketDir, poolsDir, key)
}

// ValidDir tells whether dir, read back from a file, can be a pool's
// directory.
func ValidDir(dir string) bool {
	return filepath.IsAbs(dir) && filepath.Clean(dir) == dir && filepath.Base(filepath.Dir(dir)) == poolsDir
}

// BinaryIdentity tells the shim binary at path from another one installed
// at the same path: an upgrade renames a new file over it. A pool's key
// carries it, so that after an upgrade new pods go to shims of the new
// binary while the old binary's shims keep their pods until those end.
func BinaryIdentity(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("shim binary: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("shim binary %s: no inode", path)
	}
	return fmt.Sprintf("%d:%d:%d:%d", st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano()), nil
}

// Key names a pool after what its shims must have in common.
func Key(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8])
}

// lockFile, in a pool's directory, is the file the pool's lock is on.
const lockFile = "lock"

// Pool is a pool directory, locked.
//
// A pool is the shims of one containerd, namespace, shim binary and options:
// a directory beside containerd's shim sockets holding a lock file, and for
// each shim its socket address and the ids of the pods it serves. `shim
// start` holds the lock while it picks a shim with room (or starts one) and
// records the pod there; a shim holds it while it takes a pod out and,
// when none is left, itself, before it exits: so start never hands out a
// shim that is on its way out. `shim delete` takes a pod out of a shim that
// died, and the shim out once it has no pod left. Whoever leaves the pool
// empty removes it as it unlocks (see Lock).
type Pool struct {
	dir  string
	lock *os.File
	// prune: Unlock removes the pool, which Prune found empty.
	prune bool
}

// testHookBeforeOpen, set by tests only, runs in Lock between making the
// pool's directory and opening its lock file.
var testHookBeforeOpen func()

// Lock opens the pool at dir, making it if need be, and waits for its
// lock until ctx ends (then the error names the lock's holders). Unlock
// releases it.
//
// The lock is a flock on the pool's lock file, and an empty pool goes
// with its last holder, lock file and all (a lock file kept for ever
// elsewhere would be a file no one removes). For the lock to exclude all
// the same, its file is removed only as the very last step of a hold (in
// Unlock, after which the holder touches nothing in the pool), so that
// whoever locks after that starts after the hold has ended: a newcomer
// that finds the directory or the file gone as it comes makes the pool
// anew, and one that waited on the removed file sees that it is no longer
// the pool's and starts over.
func Lock(ctx context.Context, dir string) (*Pool, error) {
	for {
		p, err := lockOnce(ctx, dir)
		if err != nil || p != nil {
			return p, err
		}
		// The pool was removed as we came: lock the one made anew.
	}
}

// lockOnce locks the pool's lock file, or returns nil when the pool's
// last holder removed the pool before that.
func lockOnce(ctx context.Context, dir string) (*Pool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if removedMeanwhile(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("shim pool: %w", err)
	}
	if testHookBeforeOpen != nil {
		testHookBeforeOpen()
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // the pool's directory went since MkdirAll
	}
	if err != nil {
		return nil, fmt.Errorf("shim pool: %w", err)
	}
	if err := flockExclusive(ctx, f); err != nil {
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

// removedMeanwhile tells whether MkdirAll failed because a holder removed
// the pool or the pools' directory between its steps: a parent went
// before its mkdir (ENOENT), or a directory that was there as it made it
// went before it checked it (EEXIST, and nothing there now, or a
// directory again). Anything else in the way is an error.
func removedMeanwhile(err error) bool {
	var pe *os.PathError
	if !errors.As(err, &pe) {
		return false
	}
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if !errors.Is(err, os.ErrExist) {
		return false
	}
	fi, lerr := os.Lstat(pe.Path)
	return errors.Is(lerr, os.ErrNotExist) || lerr == nil && fi.IsDir()
}

// Prune marks the pool for removal if no shim is left in it, and removes
// nothing itself: Unlock removes the lock file while it still holds the
// lock, then the pool's directories if no newcomer has filled them since.
func (p *Pool) Prune() error {
	shims, err := p.Shims()
	if err != nil {
		return err
	}
	p.prune = len(shims) == 0
	return nil
}

// Unlock releases the pool's lock, and removes the pool if Prune found it
// empty. Only the first call does anything: a second must not remove the
// lock file of a pool made anew.
func (p *Pool) Unlock() {
	if p.lock == nil {
		return
	}
	if p.prune {
		// The lock file first, while it is still locked (see Lock). A
		// newcomer may make the pool again meanwhile: the directories go
		// only if empty.
		_ = os.Remove(filepath.Join(p.dir, lockFile))
		_ = os.Remove(p.dir)
		_ = os.Remove(filepath.Dir(p.dir)) // the pools' directory, once empty
	}
	p.lock.Close()
	p.lock = nil
}
