package task

import (
	"testing"

	sandboxAPI "github.com/containerd/containerd/api/runtime/sandbox/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/anypb"
)

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
