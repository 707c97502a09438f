package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cri"
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
	Userns *cri.Userns `json:",omitempty"`
	// RunAsUser and RunAsGroup are the pod's run_as_user and run_as_group
	// when the pause task takes them (never 0), else nil: the runtime's
	// PauseUID and PauseGID then.
	RunAsUser  *uint32 `json:",omitempty"`
	RunAsGroup *uint32 `json:",omitempty"`
	// CRI is the pod's CRI configuration (DNS, hostname files).
	CRI *cri.PodConfig `json:"-"`
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
	pc, err := cri.Decode(options.GetValue())
	if err != nil {
		return nil, err
	}
	if err := pc.Userns.Check(); err != nil {
		return nil, err
	}
	if err := checkSecurity(pc); err != nil {
		return nil, err
	}
	cfg := &podConfig{
		FromCRI:      true,
		CRI:          pc,
		Hostname:     pc.Hostname,
		HostNetwork:  pc.Network == cri.ModeNode,
		HostIPC:      pc.IPC == cri.ModeNode,
		HostPID:      pc.PID == cri.ModeNode,
		SharePID:     pc.PID == cri.ModePod,
		Sysctls:      pc.Sysctls,
		CgroupParent: pc.CgroupParent,
	}
	if pc.Userns != nil && pc.Userns.Mode == cri.ModePod {
		cfg.Userns = pc.Userns
	}
	var uids, gids []cri.IDMapping
	if u := cfg.Userns; u != nil {
		uids, gids = u.UIDs, u.GIDs
	}
	if cfg.RunAsUser, err = runAs("run_as_user", pc.Security.RunAsUser, uids); err != nil {
		return nil, err
	}
	if cfg.RunAsGroup, err = runAs("run_as_group", pc.Security.RunAsGroup, gids); err != nil {
		return nil, err
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

// pauseIDs are the pause task's credentials: the pod's run_as_user and
// run_as_group where it takes them, else the runtime's uid and gid.
func (c *podConfig) pauseIDs(uid, gid uint32) (uint32, uint32) {
	if c.RunAsUser != nil {
		uid = *c.RunAsUser
	}
	if c.RunAsGroup != nil {
		gid = *c.RunAsGroup
	}
	return uid, gid
}

// securityField names a field of the sandbox's security context in errors,
// as CRI's PodSandboxConfig spells it.
func securityField(name string) string { return "linux.security_context." + name }

// runAs is the pod's run_as_user or run_as_group (named field) as the pause
// task takes it, as runc's pause container would: nil if not given, or 0.
// runc would run the pause container as root then; the pause task needs no
// privilege, so it keeps the runtime's unprivileged ID, and inside the pod's
// user namespace it never takes the pod's root either. Any other ID must be
// one the kernel can take: in a user namespace (mapped: its one mapping), one
// the mapping covers.
func runAs(field string, id *int64, mapped []cri.IDMapping) (*uint32, error) {
	if id == nil || *id == 0 {
		return nil, nil
	}
	field = securityField(field)
	// 4294967295 is the kernel's "no id" (-1 to setresuid).
	if *id < 0 || *id >= math.MaxUint32 {
		return nil, fmt.Errorf("%s %d is not a Linux ID: %w", field, *id, errdefs.ErrInvalidArgument)
	}
	if len(mapped) > 0 {
		if m := mapped[0]; uint64(*id) >= m.ContainerID+m.Length {
			return nil, fmt.Errorf("%s %d is not mapped by the pod's user namespace (%d IDs): %w", field, *id, m.Length, errdefs.ErrInvalidArgument)
		}
	}
	v := uint32(*id)
	return &v, nil
}

// Values of CRI's SecurityProfile.ProfileType.
const (
	profileRuntimeDefault = 0
	profileUnconfined     = 1
	profileLocalhost      = 2
)

// checkSecurity refuses what of the sandbox's security context the pause
// task cannot honour. The rest it meets by what it is, each for the reason
// given here.
//
//   - run_as_user, run_as_group: the pause task's credentials (runAs).
//   - seccomp: the pause task installs its own allowlist, which holds only
//     the calls it makes once ready: stricter than RuntimeDefault, so it
//     meets RuntimeDefault (the kubelet's value for every sandbox) and
//     Unconfined. A Localhost profile is refused: the pause task cannot load
//     another filter, and an operator who names a profile wants that one.
//   - seccomp_profile_path (deprecated, read only without seccomp): the same
//     for its spelling of those values.
//   - apparmor: the pause task takes no AppArmor profile; what a profile
//     guards (files, mounts, network, capabilities) are calls outside its
//     seccomp allowlist. RuntimeDefault and Unconfined are met, Localhost
//     is refused as for seccomp.
//   - selinux_options: where SELinux is disabled a label means nothing and
//     is ignored, as runc ignores it. Where SELinux is enabled the pause task
//     cannot take a label (it would have to be written to the process's
//     exec attribute before exec, and completed from the host's policy), so
//     a label is refused.
//   - privileged: the kubelet sets it when a container of the pod is
//     privileged; the containers get their privileges from their own
//     configuration, the pause task needs none.
//   - readonly_rootfs: the pause task's root is an empty directory owned by
//     root, which it cannot write to.
//   - supplemental_groups, supplemental_groups_policy: the containers'
//     groups; the pause task drops all supplemental groups.
func checkSecurity(c *cri.PodConfig) error {
	s := &c.Security
	if s.RunAsGroup != nil && s.RunAsUser == nil {
		// CRI: "the runtime MUST error".
		return fmt.Errorf("%s is given without run_as_user: %w", securityField("run_as_group"), errdefs.ErrInvalidArgument)
	}
	const filter = "the pause task runs under its own seccomp allowlist, stricter than RuntimeDefault"
	if err := checkProfile("seccomp", s.Seccomp, filter); err != nil {
		return err
	}
	if s.Seccomp == nil {
		switch p := s.SeccompProfilePath; {
		case p == "" || p == "runtime/default" || p == "docker/default" || p == "unconfined":
		case strings.HasPrefix(p, "localhost/"):
			return fmt.Errorf("%s %q for the sandbox is not supported: %s; ask runtime/default: %w",
				securityField("seccomp_profile_path"), p, filter, errdefs.ErrInvalidArgument)
		default:
			return fmt.Errorf("%s %q is not runtime/default, unconfined or localhost/<path>: %w", securityField("seccomp_profile_path"), p, errdefs.ErrInvalidArgument)
		}
	}
	if err := checkProfile("apparmor", s.AppArmor, "the pause task takes no AppArmor profile: its seccomp allowlist leaves it no call a profile guards"); err != nil {
		return err
	}
	if l := s.SELinux; l != nil && *l != (cri.SELinuxOption{}) {
		if selinuxEnabled() {
			return fmt.Errorf("%s %+v: the pause task cannot take an SELinux label: %w", securityField("selinux_options"), *l, errdefs.ErrFailedPrecondition)
		}
		log.L.WithFields(log.Fields{"pod": c.Namespace + "/" + c.Name, "selinux_options": fmt.Sprintf("%+v", *l)}).
			Debug("SELinux is disabled on this host: the sandbox's label is ignored")
	}
	return nil
}

// checkProfile accepts a sandbox's RuntimeDefault or Unconfined profile for
// the named field, and refuses a Localhost one for the reason why; see
// checkSecurity.
func checkProfile(field string, p *cri.Profile, why string) error {
	if p == nil {
		return nil
	}
	field = securityField(field)
	switch p.Type {
	case profileRuntimeDefault, profileUnconfined:
		if p.LocalhostRef != "" {
			return fmt.Errorf("%s: localhost_ref %q is only for a Localhost profile: %w", field, p.LocalhostRef, errdefs.ErrInvalidArgument)
		}
		return nil
	case profileLocalhost:
		return fmt.Errorf("%s: Localhost profile %q for the sandbox is not supported: %s; ask RuntimeDefault: %w",
			field, p.LocalhostRef, why, errdefs.ErrInvalidArgument)
	default:
		return fmt.Errorf("%s: unknown profile type %d: %w", field, p.Type, errdefs.ErrInvalidArgument)
	}
}

// selinuxEnabled tells whether SELinux is enabled on the host: its
// filesystem is mounted where libselinux looks. A variable, for tests.
var selinuxEnabled = func() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}
