package cri

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIInfoSurvivesCRI: containerd's CRI decodes the "info" entry into
// its SandboxInfo type and encodes it again; what the shim writes must read
// back as the pod's configuration, pid and runtime, as for a runc pod.
func TestCRIInfoSurvivesCRI(t *testing.T) {
	sample := securePodConfig()
	data, _ := proto.Marshal(sample)
	c, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	pause := SandboxInfo{Pid: 42, Status: "running", NetNSClosed: true, RuntimeOptions: map[string]any{"PauseUID": 65535}}
	var info struct {
		Pid            uint32                       `json:"pid"`
		Status         string                       `json:"processStatus"`
		NetNSClosed    bool                         `json:"netNamespaceClosed"`
		RuntimeType    string                       `json:"runtimeType"`
		RuntimeOptions map[string]any               `json:"runtimeOptions"`
		Config         *runtimeapi.PodSandboxConfig `json:"config"`
		Metadata       struct {
			Version  string
			Metadata struct{ ID, Name, NetNSPath string }
		} `json:"sandboxMetadata"`
	}
	if err := json.Unmarshal([]byte(Info(pause, "sb1", "/nonexistent/netns", c)), &info); err != nil {
		t.Fatal(err)
	}
	// The fields the shim does not read are not claimed.
	want := proto.Clone(sample).(*runtimeapi.PodSandboxConfig)
	want.PortMappings = nil
	if !proto.Equal(info.Config, want) {
		t.Errorf("config reads back as\n %v\nwant\n %v", info.Config, want)
	}
	if info.Status != "running" || info.Pid != 42 || !info.NetNSClosed || info.RuntimeType != RuntimeType || info.RuntimeOptions["PauseUID"] != 65535.0 {
		t.Errorf("info %+v", info)
	}
	if m := info.Metadata; m.Version != "v1" || m.Metadata.ID != "sb1" || m.Metadata.Name != "web_default_u_2" || m.Metadata.NetNSPath != "/nonexistent/netns" {
		t.Errorf("sandbox metadata %+v", m)
	}
}
