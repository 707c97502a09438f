package task

import (
	"encoding/json"
	"testing"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIInfoSurvivesCRI: containerd's CRI decodes the "info" entry into
// its SandboxInfo type and encodes it again; what the shim writes must read
// back as the pod's configuration, pid and runtime, as for a runc pod.
func TestCRIInfoSurvivesCRI(t *testing.T) {
	sample := samplePodConfig()
	data, _ := proto.Marshal(sample)
	c, err := decodeCRIPodConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{state: podState{ID: "sb1"}, cfg: &podConfig{CRI: c, NetNSPath: "/nonexistent/netns"}}
	var info struct {
		Pid            uint32                `json:"pid"`
		Status         string                `json:"processStatus"`
		NetNSClosed    bool                  `json:"netNamespaceClosed"`
		RuntimeType    string                `json:"runtimeType"`
		RuntimeOptions map[string]any        `json:"runtimeOptions"`
		Config         *cri.PodSandboxConfig `json:"config"`
		Metadata       struct {
			Version  string
			Metadata struct{ ID, Name, NetNSPath string }
		} `json:"sandboxMetadata"`
	}
	if err := json.Unmarshal([]byte(p.criInfo(map[string]any{"PauseUID": 65535})), &info); err != nil {
		t.Fatal(err)
	}
	// The fields the shim does not read are not claimed.
	want := proto.Clone(sample).(*cri.PodSandboxConfig)
	want.PortMappings = nil
	want.Linux.SecurityContext.RunAsUser = nil
	if !proto.Equal(info.Config, want) {
		t.Errorf("config reads back as\n %v\nwant\n %v", info.Config, want)
	}
	if info.Status != "created" || info.Pid != 0 || !info.NetNSClosed || info.RuntimeType != runtimeType || info.RuntimeOptions["PauseUID"] != 65535.0 {
		t.Errorf("info %+v", info)
	}
	if m := info.Metadata; m.Version != "v1" || m.Metadata.ID != "sb1" || m.Metadata.Name != "web_default_u_2" || m.Metadata.NetNSPath != "/nonexistent/netns" {
		t.Errorf("sandbox metadata %+v", m)
	}
}

// TestUpdateSandboxReadsCRIExtension: containerd sends a pod's new
// resources as the sandbox's "updated-resources" extension (the Resources
// field is deprecated and never set); the pod's limit is resources plus
// overhead.
func TestUpdateSandboxReadsCRIExtension(t *testing.T) {
	ext := func(v string) *sandboxAPI.UpdateSandboxRequest {
		return &sandboxAPI.UpdateSandboxRequest{SandboxID: "sb", Sandbox: &types.Sandbox{Extensions: map[string]*anypb.Any{
			updatedResourcesKey: {TypeUrl: updatedResourcesType, Value: []byte(v)},
		}}}
	}
	res, err := requestedResources(ext(`{"Overhead":{"memory_limit_in_bytes":6291456,"cpu_period":100000,"cpu_quota":1000,"cpu_shares":10},
		"Resources":{"memory_limit_in_bytes":134217728,"cpu_period":100000,"cpu_quota":50000,"cpu_shares":512,"cpuset_cpus":"0"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if res == nil || res.Memory == nil || *res.Memory.Limit != 134217728+6291456 ||
		*res.CPU.Quota != 51000 || *res.CPU.Period != 100000 || *res.CPU.Shares != 522 || res.CPU.Cpus != "0" {
		t.Fatalf("pod limits %+v", res)
	}
	if res, err := requestedResources(ext(`{"Resources":{}}`)); err != nil || res != nil {
		t.Errorf("no limits: %+v %v", res, err)
	}
	if _, err := requestedResources(ext(`{`)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed extension: %v", err)
	}
	bad := ext(`{}`)
	bad.Sandbox.Extensions[updatedResourcesKey].TypeUrl = "x.Other"
	if _, err := requestedResources(bad); !errdefs.IsInvalidArgument(err) {
		t.Errorf("extension of another type: %v", err)
	}
	if res, err := requestedResources(&sandboxAPI.UpdateSandboxRequest{SandboxID: "sb"}); err != nil || res != nil {
		t.Errorf("an update of labels only: %+v %v", res, err)
	}
}
