// Package files makes the files CRI mounts into every container of a pod
// (hostname, hosts, resolv.conf) and the pod's /dev/shm.
package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cri"
)

// CRIDirName is the CRI plugin's directory under containerd's root and state.
const CRIDirName = "io.containerd.grpc.v1.cri"

// defaultShmSize is CRI's size of a pod's /dev/shm (64 MiB).
const defaultShmSize = 64 << 20

// Dirs hold the files CRI mounts into every container of a pod when they
// exist: in shim mode nothing but the shim creates them. CRI looks for them
// at <root>/io.containerd.grpc.v1.cri/sandboxes/<id>/{hostname,hosts,resolv.conf}
// and <state>/io.containerd.grpc.v1.cri/sandboxes/<id>/shm.
type Dirs struct {
	Dir         string `json:"dir,omitempty"`          // hostname, hosts, resolv.conf
	VolatileDir string `json:"volatile_dir,omitempty"` // shm
}

// Locate finds CRI's sandbox directories for pod id. containerd's state
// directory holds the bundle (<state>/<plugin>/<ns>/<id>).
func Locate(containerdRoot, bundle, id string) (Dirs, error) {
	if containerdRoot == "" {
		return Dirs{}, fmt.Errorf("containerd's root directory is unknown (%s unset): %w", options.ContainerdRootEnv, errdefs.ErrFailedPrecondition)
	}
	state := filepath.Dir(filepath.Dir(filepath.Dir(bundle)))
	return Dirs{
		Dir:         filepath.Join(containerdRoot, CRIDirName, "sandboxes", id),
		VolatileDir: filepath.Join(state, CRIDirName, "sandboxes", id),
	}, nil
}

// Create writes the pod's hostname, hosts and resolv.conf and mounts its
// /dev/shm (unless the pod shares the host's IPC namespace, whose /dev/shm
// CRI then mounts).
func (f Dirs) Create(pc *cri.PodConfig, hostIPC bool) (retErr error) {
	defer func() {
		if retErr != nil {
			f.Remove()
		}
	}()
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return err
	}
	hostname := pc.Hostname
	if hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		hostname = h
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "hostname"), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "hosts"), hosts, 0o644); err != nil {
		return err
	}
	resolv, err := resolvConf(pc.DNS)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "resolv.conf"), resolv, 0o644); err != nil {
		return err
	}
	if hostIPC {
		return nil
	}
	shm := filepath.Join(f.VolatileDir, "shm")
	if err := os.MkdirAll(shm, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV,
		fmt.Sprintf("mode=1777,size=%d", defaultShmSize)); err != nil {
		return fmt.Errorf("mount pod shm: %w", err)
	}
	return nil
}

// resolvConf is the pod's resolv.conf: CRI's DNSConfig, or the host's.
func resolvConf(dns *cri.DNSConfig) ([]byte, error) {
	if dns == nil {
		data, err := os.ReadFile("/etc/resolv.conf")
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return data, err
	}
	var b strings.Builder
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Searches, " "))
	}
	for _, s := range dns.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	return []byte(b.String()), nil
}

// Remove unmounts the pod's shm and removes what Create made. Idempotent.
func (f Dirs) Remove() error {
	var errs []error
	if f.VolatileDir != "" {
		shm := filepath.Join(f.VolatileDir, "shm")
		if err := mount.UnmountAll(shm, unix.MNT_DETACH); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		errs = append(errs, os.RemoveAll(f.VolatileDir))
	}
	if f.Dir != "" {
		errs = append(errs, os.RemoveAll(f.Dir))
	}
	return errors.Join(errs...)
}
