package cri

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The verbose status of a pod, as CRI's podsandbox mode gives it: CRI
// passes a shim's info map through, but decodes and re-encodes its "info"
// entry as its SandboxInfo type, so only SandboxInfo's keys survive there
// (pid, processStatus, netNamespaceClosed, runtimeType, runtimeOptions,
// config, sandboxMetadata, …). crictl inspectp shows that entry as .info;
// the shim's own keys stay beside it in the map.

// RuntimeType is how containerd names this runtime.
const RuntimeType = "io.containerd.pause.v2"

// SandboxInfo is the JSON of CRI's podsandbox SandboxInfo, for the keys the
// shim knows.
type SandboxInfo struct {
	Pid            uint32         `json:"pid"`
	Status         string         `json:"processStatus"`
	NetNSClosed    bool           `json:"netNamespaceClosed"`
	RuntimeType    string         `json:"runtimeType"`
	RuntimeOptions any            `json:"runtimeOptions"`
	Config         map[string]any `json:"config,omitempty"`
	Metadata       *sandboxMeta   `json:"sandboxMetadata,omitempty"`
}

// sandboxMeta is CRI's versioned sandbox Metadata.
type sandboxMeta struct {
	Version  string
	Metadata struct {
		ID, Name       string
		Config         map[string]any `json:",omitempty"`
		NetNSPath      string
		RuntimeHandler string
	}
}

// Info is the "info" entry of the verbose status of pod id, whose pause
// task's part info already holds: the runtime's type, and for a CRI pod (c
// not nil) its configuration and CRI's sandbox metadata.
func Info(info SandboxInfo, id, netnsPath string, c *PodConfig) string {
	info.RuntimeType = RuntimeType
	if c != nil {
		info.Config = c.JSON()
		m := &sandboxMeta{Version: "v1"}
		m.Metadata.ID = id
		// CRI's sandbox name: name_namespace_uid_attempt.
		m.Metadata.Name = strings.Join([]string{c.Name, c.Namespace, c.UID, strconv.FormatUint(c.Attempt, 10)}, "_")
		m.Metadata.Config = info.Config
		m.Metadata.NetNSPath = netnsPath
		info.Metadata = m
	}
	data, _ := json.Marshal(info)
	return string(data)
}

// JSON writes the PodSandboxConfig fields the shim read in the JSON form
// of CRI's Go type (snake_case names, enums as numbers).
func (c *PodConfig) JSON() map[string]any {
	out := map[string]any{
		"metadata": map[string]any{"name": c.Name, "uid": c.UID, "namespace": c.Namespace, "attempt": c.Attempt},
	}
	set := func(key string, v any, present bool) {
		if present {
			out[key] = v
		}
	}
	set("hostname", c.Hostname, c.Hostname != "")
	set("log_directory", c.LogDirectory, c.LogDirectory != "")
	set("labels", c.Labels, len(c.Labels) > 0)
	set("annotations", c.Annotations, len(c.Annotations) > 0)
	if d := c.DNS; d != nil {
		out["dns_config"] = map[string]any{"servers": d.Servers, "searches": d.Searches, "options": d.Options}
	}
	nsOpts := map[string]any{"network": c.Network, "pid": c.PID, "ipc": c.IPC}
	if u := c.Userns; u != nil {
		mappings := func(ms []IDMapping) []map[string]any {
			var out []map[string]any
			for _, m := range ms {
				out = append(out, map[string]any{"host_id": m.HostID, "container_id": m.ContainerID, "length": m.Length})
			}
			return out
		}
		nsOpts["userns_options"] = map[string]any{"mode": u.Mode, "uids": mappings(u.UIDs), "gids": mappings(u.GIDs)}
	}
	security := c.Security.json()
	security["namespace_options"] = nsOpts
	linux := map[string]any{"security_context": security}
	if c.CgroupParent != "" {
		linux["cgroup_parent"] = c.CgroupParent
	}
	if len(c.Sysctls) > 0 {
		linux["sysctls"] = c.Sysctls
	}
	out["linux"] = linux
	return out
}

// json writes the security context in the JSON form of CRI's Go type,
// without its namespace options.
func (s *Security) json() map[string]any {
	out := map[string]any{}
	set := func(key string, v any, present bool) {
		if present {
			out[key] = v
		}
	}
	if se := s.SELinux; se != nil {
		out["selinux_options"] = map[string]any{"user": se.User, "role": se.Role, "type": se.Type, "level": se.Level}
	}
	set("run_as_user", map[string]any{"value": s.RunAsUser}, s.RunAsUser != nil)
	set("run_as_group", map[string]any{"value": s.RunAsGroup}, s.RunAsGroup != nil)
	set("readonly_rootfs", s.ReadonlyRootfs, s.ReadonlyRootfs)
	set("supplemental_groups", s.SupplementalGroups, len(s.SupplementalGroups) > 0)
	set("supplemental_groups_policy", s.SupplementalGroupsPolicy, s.SupplementalGroupsPolicy != 0)
	set("privileged", s.Privileged, s.Privileged)
	set("seccomp_profile_path", s.SeccompProfilePath, s.SeccompProfilePath != "")
	profile := func(p *Profile) map[string]any {
		return map[string]any{"profile_type": p.Type, "localhost_ref": p.LocalhostRef}
	}
	if s.Seccomp != nil {
		out["seccomp"] = profile(s.Seccomp)
	}
	if s.AppArmor != nil {
		out["apparmor"] = profile(s.AppArmor)
	}
	return out
}
