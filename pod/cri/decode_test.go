package cri

import (
	"maps"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func samplePodConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Uid: "u", Namespace: "default", Attempt: 2},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/x",
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80}},
		Labels:       map[string]string{"app": "web"},
		Annotations:  map[string]string{"kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/podu",
			Sysctls:      map[string]string{"net.core.somaxconn": "1024", "kernel.shm_rmid_forced": "1"},
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
					UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
						Uids: []*runtimeapi.IDMapping{{HostId: 1000, ContainerId: 0, Length: 65536}},
						Gids: []*runtimeapi.IDMapping{{HostId: 2000, ContainerId: 0, Length: 65536}, {HostId: 1, ContainerId: 5, Length: 1}}}},
				RunAsUser: &runtimeapi.Int64Value{Value: 1000},
			},
		},
	}
}

// securePodConfig is samplePodConfig with every field of the sandbox's
// security context set.
func securePodConfig() *runtimeapi.PodSandboxConfig {
	c := samplePodConfig()
	sc := c.Linux.SecurityContext
	sc.SelinuxOptions = &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2"}
	sc.RunAsGroup = &runtimeapi.Int64Value{Value: 3000}
	sc.ReadonlyRootfs = true
	sc.SupplementalGroups = []int64{2000, 4000}
	sc.SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Strict
	sc.Privileged = true
	sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/p.json"}
	sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	sc.SeccompProfilePath = "runtime/default" //nolint:staticcheck // deprecated, still sent
	return c
}

// agree checks the wire decoder against the generated one.
func agree(t *testing.T, want *runtimeapi.PodSandboxConfig, got *PodConfig) {
	t.Helper()
	ns := want.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if got.Name != want.GetMetadata().GetName() || got.Namespace != want.GetMetadata().GetNamespace() ||
		got.Hostname != want.GetHostname() || got.CgroupParent != want.GetLinux().GetCgroupParent() ||
		got.Network != uint64(ns.GetNetwork()) || got.PID != uint64(ns.GetPid()) || got.IPC != uint64(ns.GetIpc()) ||
		!maps.Equal(got.Sysctls, want.GetLinux().GetSysctls()) ||
		got.UID != want.GetMetadata().GetUid() || got.Attempt != uint64(want.GetMetadata().GetAttempt()) ||
		got.LogDirectory != want.GetLogDirectory() || !maps.Equal(got.Labels, want.GetLabels()) ||
		!maps.Equal(got.Annotations, want.GetAnnotations()) {
		t.Fatalf("decoded %+v, want %v", got, want)
	}
	uns := ns.GetUsernsOptions()
	if (uns == nil) != (got.Userns == nil) || uns != nil && (got.Userns.Mode != uint64(uns.GetMode()) ||
		!slices.EqualFunc(got.Userns.UIDs, uns.GetUids(), sameMapping) || !slices.EqualFunc(got.Userns.GIDs, uns.GetGids(), sameMapping)) {
		t.Fatalf("decoded userns %+v, want %v", got.Userns, uns)
	}
	agreeSecurity(t, want.GetLinux().GetSecurityContext(), &got.Security)
	if dns := want.GetDnsConfig(); (dns == nil) != (got.DNS == nil) ||
		dns != nil && (!slices.Equal(got.DNS.Servers, dns.Servers) || !slices.Equal(got.DNS.Searches, dns.Searches) || !slices.Equal(got.DNS.Options, dns.Options)) {
		t.Fatalf("decoded DNS %+v, want %v", got.DNS, dns)
	}
}

func TestDecodeCRIPodConfig(t *testing.T) {
	for _, want := range []*runtimeapi.PodSandboxConfig{samplePodConfig(), securePodConfig()} {
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		agree(t, want, got)
		if _, err := Decode(b[:len(b)-3]); err == nil {
			t.Error("truncated message decoded without error")
		}
	}
}

// FuzzDecodeCRIPodConfig: whatever protobuf accepts as a PodSandboxConfig,
// the wire decoder reads the same way, and it never panics on the rest.
func FuzzDecodeCRIPodConfig(f *testing.F) {
	for _, c := range []*runtimeapi.PodSandboxConfig{samplePodConfig(), securePodConfig()} {
		b, _ := proto.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x42, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		var want runtimeapi.PodSandboxConfig
		if proto.Unmarshal(data, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("protobuf reads %v, the wire decoder fails: %v", &want, err)
		}
		agree(t, &want, got)
	})
}

// agreeSecurity checks the wire decoder's security context against the
// generated one's.
func agreeSecurity(t *testing.T, want *runtimeapi.LinuxSandboxSecurityContext, got *Security) {
	t.Helper()
	int64s := func(p *int64, v *runtimeapi.Int64Value) bool {
		return (p == nil) == (v == nil) && (p == nil || *p == v.GetValue())
	}
	profiles := func(p *Profile, sp *runtimeapi.SecurityProfile) bool {
		return (p == nil) == (sp == nil) && (p == nil || p.Type == uint64(sp.GetProfileType()) && p.LocalhostRef == sp.GetLocalhostRef())
	}
	se := want.GetSelinuxOptions()
	if !int64s(got.RunAsUser, want.GetRunAsUser()) || !int64s(got.RunAsGroup, want.GetRunAsGroup()) ||
		got.ReadonlyRootfs != want.GetReadonlyRootfs() || got.Privileged != want.GetPrivileged() ||
		!slices.Equal(got.SupplementalGroups, want.GetSupplementalGroups()) ||
		got.SupplementalGroupsPolicy != uint64(want.GetSupplementalGroupsPolicy()) ||
		!profiles(got.Seccomp, want.GetSeccomp()) || !profiles(got.AppArmor, want.GetApparmor()) ||
		got.SeccompProfilePath != want.GetSeccompProfilePath() || //nolint:staticcheck // deprecated, still sent
		(got.SELinux == nil) != (se == nil) ||
		se != nil && *got.SELinux != (SELinuxOption{User: se.GetUser(), Role: se.GetRole(), Type: se.GetType(), Level: se.GetLevel()}) {
		t.Fatalf("decoded security context %+v, want %v", got, want)
	}
}

func sameMapping(a IDMapping, b *runtimeapi.IDMapping) bool {
	return a.HostID == uint64(b.GetHostId()) && a.ContainerID == uint64(b.GetContainerId()) && a.Length == uint64(b.GetLength())
}

func TestUsernsCheck(t *testing.T) {
	one := []IDMapping{{HostID: 1000, ContainerID: 0, Length: 65536}}
	for _, tc := range []struct {
		name string
		u    *Userns
		kind func(error) bool
	}{
		{"none", nil, func(err error) bool { return err == nil }},
		{"node", &Userns{Mode: ModeNode}, func(err error) bool { return err == nil }},
		{"container mode", &Userns{Mode: 1}, errdefs.IsInvalidArgument},
		{"target mode", &Userns{Mode: 3}, errdefs.IsInvalidArgument},
		{"two mappings", &Userns{UIDs: append(one, one...), GIDs: one}, errdefs.IsInvalidArgument},
		{"root not mapped", &Userns{UIDs: []IDMapping{{HostID: 1000, ContainerID: 1, Length: 10}}, GIDs: one}, errdefs.IsInvalidArgument},
		{"no gid mapping", &Userns{UIDs: one}, errdefs.IsInvalidArgument},
		{"valid pod", &Userns{UIDs: one, GIDs: one}, func(err error) bool { return err == nil }},
	} {
		if err := tc.u.Check(); !tc.kind(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
