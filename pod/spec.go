package pod

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
)

// criContainerType is the annotation CRI sets on every container it makes.
const criContainerType = "io.kubernetes.cri.container-type"

// joinPod rewrites a container's OCI spec so that runc starts it inside the
// pod. CRI already points a container's namespaces at the sandbox's pid
// (from SandboxStatus); `ctr run --sandbox` sets none, so the shim joins the
// pod's network, IPC, UTS and (when shared) PID namespaces, and puts the
// container's cgroup under the pod's. It returns the container's cgroup
// path as runc will read it, so that the spec is read once per container.
// It runs without the pod's lock: pausePid is the pod's pause task, which
// the caller read under it.
func joinPod(configPath, id string, p *Pod, pausePid int) (string, error) {
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
		if err := checkMemberCgroupsPath(spec.Linux.CgroupsPath); err != nil {
			return "", err
		}
		return spec.Linux.CgroupsPath, checkPodMembership(&spec, p.cfg)
	}
	out, cgroupsPath, err := rewriteSpecJSON(data, pausePid, p.cfg, p.rec.ContainerCgroup(id))
	if err != nil {
		return "", err
	}
	tmp := configPath + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return "", err
	}
	return cgroupsPath, os.Rename(tmp, configPath)
}

// checkMemberCgroupsPath refuses a pod member's cgroup path (CRI's) that
// climbs with "..", in either form: the container would leave the pod's
// cgroup, or the hierarchies.
func checkMemberCgroupsPath(p string) error {
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == ':' }) {
		if part == ".." {
			return fmt.Errorf("container spec's linux.cgroupsPath %q climbs with \"..\": %w", p, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// rewriteSpecJSON is rewriteForPod on the spec's bytes, touching only the
// keys it changes: the hostname, and under linux the namespaces of the pod
// and the cgroupsPath. Every other key keeps its bytes, those of fields
// newer than the runtime-spec this shim was built with too, which a round
// trip through specs.Spec would drop. It returns the new spec and the
// container's cgroup path in it.
func rewriteSpecJSON(data []byte, pausePid int, cfg *podConfig, cgroupsPath string) ([]byte, string, error) {
	var top, linux map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, "", fmt.Errorf("malformed container spec: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(top["linux"], &linux); err != nil || linux == nil {
		return nil, "", fmt.Errorf("container spec's linux section: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	// The entries of other namespaces stay whole: only their type is read.
	var entries []json.RawMessage
	if raw, ok := linux["namespaces"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, "", fmt.Errorf("container spec's linux.namespaces: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	kept := entries[:0]
	for _, e := range entries {
		var ns struct {
			Type specs.LinuxNamespaceType `json:"type"`
		}
		if err := json.Unmarshal(e, &ns); err != nil {
			return nil, "", fmt.Errorf("container spec's linux.namespaces: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if !isPodNamespace(ns.Type) {
			kept = append(kept, e)
		}
	}
	for _, ns := range podNamespaces(pausePid, cfg) {
		e, err := json.Marshal(ns)
		if err != nil {
			return nil, "", err
		}
		kept = append(kept, e)
	}
	var err error
	if linux["namespaces"], err = json.Marshal(kept); err != nil {
		return nil, "", err
	}
	// The hostname belongs to the pod's UTS namespace: a container that set
	// its own would rename the whole pod.
	delete(top, "hostname")
	if cgroupsPath != "" && !cfg.FromCRI {
		if linux["cgroupsPath"], err = json.Marshal(cgroupsPath); err != nil {
			return nil, "", err
		}
	} else if raw, ok := linux["cgroupsPath"]; ok {
		if err := json.Unmarshal(raw, &cgroupsPath); err != nil {
			return nil, "", fmt.Errorf("container spec's linux.cgroupsPath: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	if top["linux"], err = marshalKeepingBytes(linux); err != nil {
		return nil, "", err
	}
	out, err := marshalKeepingBytes(top)
	return out, cgroupsPath, err
}

// marshalKeepingBytes encodes v without escaping <, > and & in the raw
// values it holds, which json.Marshal would rewrite.
func marshalKeepingBytes(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// podNamespaceTypes are the namespaces a pod decides for its containers.
var podNamespaceTypes = []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.PIDNamespace}

func isPodNamespace(typ specs.LinuxNamespaceType) bool {
	for _, t := range podNamespaceTypes {
		if t == typ {
			return true
		}
	}
	return false
}

// podNamespaces are the entries a container of the pod gets for the pod's
// namespaces: none for those the pod shares with the host, the pause
// task's to join, or a new one (PID, when the pod does not share it).
func podNamespaces(pausePid int, cfg *podConfig) []specs.LinuxNamespace {
	nsPath := func(name string) string { return "/proc/" + strconv.Itoa(pausePid) + "/ns/" + name }
	var out []specs.LinuxNamespace
	for _, ns := range []struct {
		typ  specs.LinuxNamespaceType
		name string
		host bool // the pod shares the host's: so does the container
		join bool // else the container joins the pause task's, or gets its own
	}{
		{specs.NetworkNamespace, "net", cfg.HostNetwork, true},
		{specs.IPCNamespace, "ipc", cfg.HostIPC, true},
		{specs.UTSNamespace, "uts", cfg.HostUTS, true},
		{specs.PIDNamespace, "pid", cfg.HostPID, cfg.SharePID},
	} {
		switch {
		case ns.host:
		case ns.join:
			out = append(out, specs.LinuxNamespace{Type: ns.typ, Path: nsPath(ns.name)})
		default:
			out = append(out, specs.LinuxNamespace{Type: ns.typ})
		}
	}
	return out
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
		if _, _, _, ok := cgroups.SplitSystemdPath(cgroupsPath); !ok {
			return false, false, nil // a relative path: runc's own rules
		}
		if err := cgroups.RequireSystemd(fmt.Sprintf("container %s (cgroupsPath %s)", id, cgroupsPath)); err != nil {
			return false, false, err
		}
		return true, true, nil
	}
	return false, false, nil
}
