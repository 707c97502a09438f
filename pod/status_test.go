package pod

import (
	"encoding/json"
	"testing"
)

// TestCRIInfoOfACreatedPod: the pause task's part of the verbose status
// before it runs, for a pod whose network namespace is gone.
func TestCRIInfoOfACreatedPod(t *testing.T) {
	p := &Pod{id: "sb1", cfg: &podConfig{NetNSPath: "/nonexistent/netns"}}
	var info struct {
		Pid         uint32 `json:"pid"`
		Status      string `json:"processStatus"`
		NetNSClosed bool   `json:"netNamespaceClosed"`
	}
	if err := json.Unmarshal([]byte(p.criInfo(nil)), &info); err != nil {
		t.Fatal(err)
	}
	if info.Status != "created" || info.Pid != 0 || !info.NetNSClosed {
		t.Errorf("info %+v", info)
	}
}
