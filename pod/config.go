package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"
)

// podConfig is what a pod asks of its pause task. It comes from CRI's
// PodSandboxConfig (CreateSandbox options), or from the OCI spec that
// `ctr sandbox run` writes into the sandbox bundle, or, with neither, is a
// fully isolated pod.
type podConfig struct {
	Hostname string
	// Host* are the namespaces the pod shares with the node (NODE mode).
	HostNetwork bool
	HostIPC     bool
	HostPID     bool
	HostUTS     bool
	// SharePID: the pod's containers join the pause task's PID namespace.
	SharePID bool
	// NetNSPath is the network namespace to join (CRI made it and ran CNI).
	NetNSPath string
	Sysctls   map[string]string
	// CgroupParent is CRI's pod cgroup; CgroupsPath is the OCI spec's.
	CgroupParent string
	CgroupsPath  string
	// FromCRI: CRI sets the containers' namespace joins itself.
	FromCRI bool
	// Userns is the pod's own user namespace (CRI's POD mode), or nil.
	Userns *usernsConfig `json:",omitempty"`
	// CRI is the pod's CRI configuration (DNS, hostname files).
	CRI *criPodConfig `json:"-"`
}

const criConfigType = "runtime.v1.PodSandboxConfig"

// parsePodConfig reads the pod's configuration from the request's options,
// else from the bundle's config.json.
func parsePodConfig(options *anypb.Any, bundle, netnsPath string) (*podConfig, error) {
	var (
		cfg *podConfig
		err error
	)
	switch {
	case options != nil && options.GetTypeUrl() != "":
		cfg, err = fromOptions(options)
	default:
		cfg, err = fromBundle(bundle)
	}
	if err != nil {
		return nil, err
	}
	if netnsPath != "" {
		if cfg.HostNetwork {
			return nil, fmt.Errorf("netns_path %q given for a pod on the host network: %w", netnsPath, errdefs.ErrInvalidArgument)
		}
		if err := checkNetNS(netnsPath); err != nil {
			return nil, err
		}
		cfg.NetNSPath = netnsPath
	}
	return cfg, nil
}

func fromOptions(options *anypb.Any) (*podConfig, error) {
	if options.GetTypeUrl() != criConfigType {
		return nil, fmt.Errorf("sandbox options of type %q: want %s: %w", options.GetTypeUrl(), criConfigType, errdefs.ErrInvalidArgument)
	}
	pc, err := decodeCRIPodConfig(options.GetValue())
	if err != nil {
		return nil, err
	}
	if err := pc.Userns.check(); err != nil {
		return nil, err
	}
	cfg := &podConfig{
		FromCRI:      true,
		CRI:          pc,
		Hostname:     pc.Hostname,
		HostNetwork:  pc.Network == modeNode,
		HostIPC:      pc.IPC == modeNode,
		HostPID:      pc.PID == modeNode,
		SharePID:     pc.PID == modePod,
		Sysctls:      pc.Sysctls,
		CgroupParent: pc.CgroupParent,
	}
	if pc.Userns != nil && pc.Userns.Mode == modePod {
		cfg.Userns = pc.Userns
	}
	// Kubernetes gives a host-network pod the node's hostname: it keeps the
	// host's UTS namespace then.
	cfg.HostUTS = cfg.HostNetwork
	if cfg.HostUTS {
		cfg.Hostname = ""
	}
	return cfg, nil
}

func fromBundle(bundle string) (*podConfig, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		// Neither CRI options nor a spec: an isolated pod of its own.
		return &podConfig{SharePID: true}, nil
	}
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("malformed sandbox spec: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	cfg := &podConfig{Hostname: spec.Hostname, HostNetwork: true, HostIPC: true, HostPID: true, HostUTS: true}
	if spec.Linux == nil {
		return cfg, nil
	}
	for _, ns := range spec.Linux.Namespaces {
		switch ns.Type {
		case specs.NetworkNamespace:
			cfg.HostNetwork = false
			if ns.Path != "" {
				if err := checkNetNS(ns.Path); err != nil {
					return nil, err
				}
				cfg.NetNSPath = ns.Path
			}
		case specs.IPCNamespace, specs.UTSNamespace, specs.PIDNamespace:
			if ns.Path != "" {
				return nil, fmt.Errorf("sandbox spec joins %s namespace %q: the pause task makes the pod's own: %w", ns.Type, ns.Path, errdefs.ErrInvalidArgument)
			}
			switch ns.Type {
			case specs.IPCNamespace:
				cfg.HostIPC = false
			case specs.UTSNamespace:
				cfg.HostUTS = false
			case specs.PIDNamespace:
				cfg.HostPID, cfg.SharePID = false, true
			}
		}
	}
	if cfg.HostUTS && cfg.Hostname != "" {
		return nil, fmt.Errorf("sandbox spec sets hostname %q without a UTS namespace: %w", cfg.Hostname, errdefs.ErrInvalidArgument)
	}
	cfg.Sysctls = spec.Linux.Sysctl
	cfg.CgroupsPath = spec.Linux.CgroupsPath
	return cfg, nil
}

// checkNetNS accepts only a path to a network namespace other than the host's
// (a host-network pod says so instead of passing the host's namespace).
func checkNetNS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("netns_path %q: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	nstype, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || nstype != unix.CLONE_NEWNET {
		return fmt.Errorf("netns_path %q is not a network namespace: %w", path, errdefs.ErrInvalidArgument)
	}
	var given, host unix.Stat_t
	if unix.Fstat(int(f.Fd()), &given) == nil && unix.Stat("/proc/self/ns/net", &host) == nil &&
		given.Ino == host.Ino && given.Dev == host.Dev {
		return fmt.Errorf("netns_path %q is the host's network namespace: %w", path, errdefs.ErrInvalidArgument)
	}
	return nil
}

// selinuxEnabled tells whether SELinux is enabled on the host: its
// filesystem is mounted where libselinux looks. A variable, for tests.
var selinuxEnabled = func() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}
