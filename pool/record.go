package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// A shim's record is a directory named after the shim, holding its socket
// address (file "address") and an empty file per pod it serves ("pods/<id>").
// `shim start` may be killed at any step (containerd kills it on timeout),
// so a record is made under a temporary name and renamed into place, and
// removed by renaming it away first: the pool holds whole records only,
// and what a killed step leaves is a temporary, which readers (holding the
// pool) remove. A record found incomplete all the same (written by an older
// shim, or damaged) is removed as well rather than failing the whole pool:
// its shim, if it lives, no longer finds its record and exits after its
// pods.
//
// The pool lives with the sockets on a tmpfs: nothing is synced, a record
// only has to survive the process that writes it.
const (
	addressFile = "address"
	podsDir     = "pods"
	// tempPrefix starts the names of records being made or removed; no
	// shim's name starts so.
	tempPrefix = "."
	// maxAddress bounds an address file: a socket path is shorter.
	maxAddress = 4096
)

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

// Shims lists the pool's shims, oldest first. Incomplete records are
// skipped and removed.
func (p *Pool) Shims() ([]Shim, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	var shims []Shim
	for _, e := range entries {
		if !e.IsDir() {
			continue // the lock file
		}
		if strings.HasPrefix(e.Name(), tempPrefix) {
			// A record a killed start was making or removing.
			if err := os.RemoveAll(p.shimDir(e.Name())); err != nil {
				return nil, fmt.Errorf("shim pool: remove an unfinished record: %w", err)
			}
			continue
		}
		s, err := p.Shim(e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue // incomplete, and removed
		}
		if err != nil {
			return nil, err
		}
		shims = append(shims, s)
	}
	return shims, nil
}

// Shim returns the record of shim name. A record that is not there, or
// incomplete (then removed), is an error that wraps os.ErrNotExist.
func (p *Pool) Shim(name string) (Shim, error) {
	if err := checkName(name); err != nil {
		return Shim{}, err
	}
	s, err := p.readShim(name)
	if err == nil || !damaged(err) || !exists(p.shimDir(name)) {
		return s, err
	}
	if rerr := p.RemoveShim(name); rerr != nil {
		return Shim{}, fmt.Errorf("shim pool: shim %s: incomplete record (%v) not removed: %w", name, err, rerr)
	}
	return Shim{}, fmt.Errorf("shim pool: shim %s: incomplete record removed (%v): %w", name, err, os.ErrNotExist)
}

// readShim reads the record of shim name, or says what is wrong with it.
func (p *Pool) readShim(name string) (Shim, error) {
	address, err := readAddress(filepath.Join(p.shimDir(name), addressFile))
	if err != nil {
		return Shim{}, fmt.Errorf("shim pool: shim %s: %w", name, err)
	}
	entries, err := os.ReadDir(filepath.Join(p.shimDir(name), podsDir))
	if err != nil {
		return Shim{}, fmt.Errorf("shim pool: shim %s: %w", name, err)
	}
	s := Shim{Name: name, Address: address}
	for _, e := range entries {
		// Pods are empty files named by containerd ids; anything else is
		// no pod of ours (and goes with the record).
		if e.Type().IsRegular() && identifiers.Validate(e.Name()) == nil {
			s.Pods = append(s.Pods, e.Name())
		}
	}
	return s, nil
}

// readAddress reads an address file, which must be a regular file holding
// a unix socket's address.
func readAddress(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAddress+1))
	if err != nil {
		return "", err
	}
	address := string(data)
	if err := checkAddress(address); err != nil {
		return "", err
	}
	return address, nil
}

// checkAddress accepts the address of a unix socket at an absolute path:
// start links pods' sockets to it and removes it once its shim is dead.
func checkAddress(address string) error {
	path, ok := strings.CutPrefix(address, "unix://")
	if !ok || len(address) > maxAddress || !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" || strings.ContainsAny(path, "\x00\n") {
		return fmt.Errorf("shim pool: address %q: not a unix socket at an absolute path: %w", address, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkName accepts a shim's name: one path element, not a temporary's.
func checkName(name string) error {
	if name == "" || name == ".." || strings.HasPrefix(name, tempPrefix) || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("shim pool: shim name %q: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// damaged tells whether err says a record is incomplete or malformed, not
// that it could not be read now (out of file descriptors, say): only a
// damaged record is removed.
func damaged(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errdefs.IsInvalidArgument(err) ||
		errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
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

// AddShim records a new shim, listening at address, with no pod. The
// record appears whole or not at all.
func (p *Pool) AddShim(name, address string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := checkAddress(address); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(p.dir, tempPrefix+name+"-")
	if err != nil {
		return fmt.Errorf("shim pool: record shim %s: %w", name, err)
	}
	defer os.RemoveAll(tmp) // gone once renamed into place
	if err := os.Mkdir(filepath.Join(tmp, podsDir), 0o700); err != nil {
		return fmt.Errorf("shim pool: record shim %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, addressFile), []byte(address), 0o600); err != nil {
		return fmt.Errorf("shim pool: record shim %s: %w", name, err)
	}
	if err := os.Rename(tmp, p.shimDir(name)); err != nil {
		return fmt.Errorf("shim pool: record shim %s: %w", name, err)
	}
	return nil
}

// RemoveShim forgets a shim and whatever pods it still lists. The record
// goes whole: it is renamed away before it is taken apart.
func (p *Pool) RemoveShim(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	tmp := p.shimDir(tempPrefix + "gone-" + name)
	if err := os.RemoveAll(tmp); err != nil { // left by a killed removal
		return fmt.Errorf("shim pool: remove shim %s: %w", name, err)
	}
	if err := os.Rename(p.shimDir(name), tmp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("shim pool: remove shim %s: %w", name, err)
	}
	return os.RemoveAll(tmp)
}

// Assign records that shim name serves pod.
func (p *Pool) Assign(name, pod string) error {
	if err := identifiers.Validate(pod); err != nil {
		return fmt.Errorf("shim pool: give pod %q to shim %s: %w", pod, name, err)
	}
	f, err := os.OpenFile(filepath.Join(p.shimDir(name), podsDir, pod), os.O_CREATE|os.O_WRONLY, 0o600)
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
	if err := os.Remove(filepath.Join(p.shimDir(s.Name), podsDir, pod)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	s.Pods = slices.DeleteFunc(slices.Clone(s.Pods), func(id string) bool { return id == pod })
	return s, nil
}

// Retire removes shim name from the pool if it serves no pod, so that no
// start hands it out again; it tells whether it did (or no record was
// left to remove).
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
	fi, err := os.Stat(filepath.Join(p.shimDir(name), podsDir, pod))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}
