package task

import (
	"maps"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func samplePodConfig() *cri.PodSandboxConfig {
	return &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: "web", Uid: "u", Namespace: "default"},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/x",
		DnsConfig:    &cri.DNSConfig{Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
		PortMappings: []*cri.PortMapping{{ContainerPort: 80}},
		Labels:       map[string]string{"app": "web"},
		Linux: &cri.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/podu",
			Sysctls:      map[string]string{"net.core.somaxconn": "1024", "kernel.shm_rmid_forced": "1"},
			SecurityContext: &cri.LinuxSandboxSecurityContext{
				NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE, Pid: cri.NamespaceMode_CONTAINER, Ipc: cri.NamespaceMode_POD},
				RunAsUser:        &cri.Int64Value{Value: 1000},
			},
		},
	}
}

// agree checks the wire decoder against the generated one.
func agree(t *testing.T, want *cri.PodSandboxConfig, got *criPodConfig) {
	t.Helper()
	ns := want.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if got.Hostname != want.GetHostname() || got.CgroupParent != want.GetLinux().GetCgroupParent() ||
		got.Network != uint64(ns.GetNetwork()) || got.PID != uint64(ns.GetPid()) || got.IPC != uint64(ns.GetIpc()) ||
		!maps.Equal(got.Sysctls, want.GetLinux().GetSysctls()) {
		t.Fatalf("decoded %+v, want %v", got, want)
	}
	if dns := want.GetDnsConfig(); (dns == nil) != (got.DNS == nil) ||
		dns != nil && (!slices.Equal(got.DNS.Servers, dns.Servers) || !slices.Equal(got.DNS.Searches, dns.Searches) || !slices.Equal(got.DNS.Options, dns.Options)) {
		t.Fatalf("decoded DNS %+v, want %v", got.DNS, dns)
	}
}

func TestDecodeCRIPodConfig(t *testing.T) {
	want := samplePodConfig()
	b, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeCRIPodConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	agree(t, want, got)
	if _, err := decodeCRIPodConfig(b[:len(b)-3]); err == nil {
		t.Error("truncated message decoded without error")
	}
}

// FuzzDecodeCRIPodConfig: whatever protobuf accepts as a PodSandboxConfig,
// the wire decoder reads the same way, and it never panics on the rest.
func FuzzDecodeCRIPodConfig(f *testing.F) {
	b, _ := proto.Marshal(samplePodConfig())
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x42, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeCRIPodConfig(data)
		var want cri.PodSandboxConfig
		if proto.Unmarshal(data, &want) != nil || err != nil {
			return
		}
		agree(t, &want, got)
	})
}
