package pod

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// criContainerType is the annotation CRI sets on every container it makes.
const criContainerType = "io.kubernetes.cri.container-type"

// joinPod rewrites a container's OCI spec so that runc starts it inside the
// pod. CRI already points a container's namespaces at the sandbox's pid
// (from SandboxStatus); `ctr run --sandbox` sets none, so the shim joins the
// pod's network, IPC, UTS and (when shared) PID namespaces, and puts the
// container's cgroup under the pod's. It returns the container's cgroup
// path as runc will read it, so that the spec is read once per container.
func joinPod(configPath, id string, p *Pod) (string, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return "", fmt.Errorf("read container spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("malformed container spec: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if spec.Linux == nil {
		return "", fmt.Errorf("container spec has no linux section: %w", errdefs.ErrInvalidArgument)
	}
	if _, fromCRI := spec.Annotations[criContainerType]; fromCRI {
		return spec.Linux.CgroupsPath, checkPodMembership(&spec, p.cfg)
	}
	rewriteForPod(&spec, id, p.pause.Pid, p.cfg, p.rec.containerCgroup(id))
	out, err := json.Marshal(&spec)
	if err != nil {
		return "", err
	}
	tmp := configPath + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return "", err
	}
	return spec.Linux.CgroupsPath, os.Rename(tmp, configPath)
}

// rewriteForPod is the pure part of joinPod; cgroupsPath is the container's
// place in the pod ("" keeps the spec's).
func rewriteForPod(spec *specs.Spec, id string, pausePid int, cfg *podConfig, cgroupsPath string) {
	nsPath := func(name string) string { return "/proc/" + strconv.Itoa(pausePid) + "/ns/" + name }
	pod := []struct {
		typ  specs.LinuxNamespaceType
		name string
		host bool // the pod shares the host's: so does the container
		join bool // else the container joins the pause task's, or gets its own
	}{
		{specs.NetworkNamespace, "net", cfg.HostNetwork, true},
		{specs.IPCNamespace, "ipc", cfg.HostIPC, true},
		{specs.UTSNamespace, "uts", cfg.HostUTS, true},
		{specs.PIDNamespace, "pid", cfg.HostPID, cfg.SharePID},
	}
	for _, ns := range pod {
		spec.Linux.Namespaces = withoutNamespace(spec.Linux.Namespaces, ns.typ)
		switch {
		case ns.host:
		case ns.join:
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: ns.typ, Path: nsPath(ns.name)})
		default:
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: ns.typ})
		}
	}
	// The hostname belongs to the pod's UTS namespace: a container that set
	// its own would rename the whole pod.
	spec.Hostname = ""
	if cgroupsPath != "" && !cfg.FromCRI {
		spec.Linux.CgroupsPath = cgroupsPath
	}
}

// checkPodMembership refuses a container (from CRI, which sets its joins
// itself) that would share a host namespace its pod does not: the pod's
// isolation is the pod's decision, not one container's.
func checkPodMembership(spec *specs.Spec, cfg *podConfig) error {
	has := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range spec.Linux.Namespaces {
		has[ns.Type] = true
	}
	for _, ns := range []struct {
		typ  specs.LinuxNamespaceType
		host bool
	}{
		{specs.NetworkNamespace, cfg.HostNetwork}, {specs.IPCNamespace, cfg.HostIPC},
		{specs.UTSNamespace, cfg.HostUTS}, {specs.PIDNamespace, cfg.HostPID},
	} {
		if !ns.host && !has[ns.typ] {
			return fmt.Errorf("container asks for the host's %s namespace, but its pod has its own: %w", ns.typ, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func withoutNamespace(list []specs.LinuxNamespace, typ specs.LinuxNamespaceType) []specs.LinuxNamespace {
	out := list[:0]
	for _, ns := range list {
		if ns.Type != typ {
			out = append(out, ns)
		}
	}
	return out
}

// SpecCgroupsPath reads the cgroup path of the spec of a container outside
// any pod of the shim (a pod's members have theirs from Admit).
func SpecCgroupsPath(configPath string) (string, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return "", fmt.Errorf("read container spec: %w", err)
	}
	var spec struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("malformed container spec: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if spec.Linux == nil {
		return "", nil
	}
	return spec.Linux.CgroupsPath, nil
}

// RuncSystemdCgroup tells which cgroup driver runc must use for container
// id, whose spec gives cgroupsPath: the form of that path chooses
// (decided), as it chooses the format in CRI, which writes it in systemd
// form ("slice:prefix:id") when the pod's parent is a slice, whatever the
// handler's options say; runc's cgroupfs driver would take that for a
// relative path outside the pod. A container without a path, or with a
// relative one, follows the options (not decided).
func RuncSystemdCgroup(id, cgroupsPath string) (systemd, decided bool, err error) {
	switch {
	case strings.HasPrefix(cgroupsPath, "/"):
		return false, true, nil
	case cgroupsPath != "":
		if _, _, _, ok := splitSystemdPath(cgroupsPath); !ok {
			return false, false, nil // a relative path: runc's own rules
		}
		if err := RequireSystemd(fmt.Sprintf("container %s (cgroupsPath %s)", id, cgroupsPath)); err != nil {
			return false, false, err
		}
		return true, true, nil
	}
	return false, false, nil
}
