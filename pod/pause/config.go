package pause

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Config says which namespaces the pause task creates or joins and how it
// drops its privileges.
type Config struct {
	// NetNSPath is a network namespace to join (CRI and CNI made it).
	NetNSPath string
	// NewNetwork creates a network namespace with lo up (when NetNSPath is empty).
	NewNetwork bool
	NewIPC     bool
	NewUTS     bool
	// NewPID makes the pause task PID 1 of a new PID namespace.
	NewPID   bool
	Hostname string
	// Sysctls are namespaced sysctls ("net.ipv4.ip_forward": "1").
	Sysctls map[string]string
	UID     uint32
	GID     uint32
	// UIDMappings and GIDMappings, when set, put the pause task in a user
	// namespace of the pod's own; its other new namespaces belong to it.
	// UID and GID are then IDs inside it.
	UIDMappings []syscall.SysProcIDMap
	GIDMappings []syscall.SysProcIDMap
}

// Validate reports a configuration the pause task cannot honour.
func (c Config) Validate() error {
	if !c.NewUTS && c.Hostname != "" {
		return fmt.Errorf("hostname %q needs a UTS namespace of the pod's own: %w", c.Hostname, errdefs.ErrInvalidArgument)
	}
	if len(c.Hostname) > 64 {
		return fmt.Errorf("hostname %q is longer than 64 bytes: %w", c.Hostname, errdefs.ErrInvalidArgument)
	}
	if c.NetNSPath != "" && c.NewNetwork {
		return fmt.Errorf("both a network namespace to join and a new one: %w", errdefs.ErrInvalidArgument)
	}
	if c.UID == 0 && len(c.UIDMappings) == 0 {
		return fmt.Errorf("the pause task must not run as root: %w", errdefs.ErrInvalidArgument)
	}
	if (len(c.UIDMappings) == 0) != (len(c.GIDMappings) == 0) {
		return fmt.Errorf("a user namespace needs both UID and GID mappings: %w", errdefs.ErrInvalidArgument)
	}
	for k, v := range c.Sysctls {
		if err := c.validateSysctl(k, v); err != nil {
			return err
		}
	}
	return nil
}

// validateSysctl accepts only sysctls that live in a namespace the pod owns,
// as runc does: anything else would change the host.
func (c Config) validateSysctl(key, value string) error {
	bad := func(why string) error {
		return fmt.Errorf("sysctl %q: %s: %w", key, why, errdefs.ErrInvalidArgument)
	}
	if key == "" || strings.Contains(key, "..") || strings.ContainsAny(key, "= \x00") ||
		strings.HasPrefix(key, ".") || strings.HasPrefix(key, "/") || strings.ContainsAny(value, "\x00") {
		return bad("malformed")
	}
	k := strings.ReplaceAll(key, "/", ".")
	ipc := map[string]bool{"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true,
		"kernel.sem": true, "kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true,
		"kernel.shm_rmid_forced": true}
	switch {
	case ipc[k] || strings.HasPrefix(k, "fs.mqueue."):
		if !c.NewIPC {
			return bad("the pod shares the host's IPC namespace")
		}
	case strings.HasPrefix(k, "net."):
		if !c.NewNetwork && c.NetNSPath == "" {
			return bad("the pod shares the host's network namespace")
		}
	default:
		return bad("not a namespaced sysctl")
	}
	return nil
}

// Args is the pause task's command line for this configuration.
func (c Config) Args() []string {
	args := []string{"pause"}
	ids := []string{"-r", "-u", strconv.FormatUint(uint64(c.UID), 10), "-g", strconv.FormatUint(uint64(c.GID), 10)}
	switch {
	case c.joinsUserns():
		// Credentials first: -U forks, and both processes drop to them.
		args = append(append(args, ids...), "-U", c.NetNSPath)
		ids = nil
	case c.NetNSPath != "":
		args = append(args, "-n", c.NetNSPath)
	}
	if c.NewNetwork {
		args = append(args, "-l")
	}
	if c.Hostname != "" {
		args = append(args, "-h", c.Hostname)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Sysctls)) {
		args = append(args, "-s", strings.ReplaceAll(k, ".", "/")+"="+c.Sysctls[k])
	}
	return append(args, ids...)
}

// userns tells whether the pause task holds a user namespace of the pod's.
func (c Config) userns() bool { return len(c.UIDMappings) > 0 }

// joinsUserns: CRI made the pod's network namespace inside the pod's user
// namespace; the pause task joins both (and makes the rest) itself, since
// the pod's containers must mount sysfs in a network namespace their user
// namespace owns. A host-network pod gets a new user namespace instead.
func (c Config) joinsUserns() bool { return c.userns() && c.NetNSPath != "" }

func (c Config) cloneflags() uintptr {
	if c.joinsUserns() {
		return 0
	}
	var f uintptr
	for _, ns := range []struct {
		on   bool
		flag uintptr
	}{{c.userns(), unix.CLONE_NEWUSER}, {c.NewNetwork, unix.CLONE_NEWNET}, {c.NewIPC, unix.CLONE_NEWIPC}, {c.NewUTS, unix.CLONE_NEWUTS}, {c.NewPID, unix.CLONE_NEWPID}} {
		if ns.on {
			f |= ns.flag
		}
	}
	return f
}
