//go:build stress

package integration

import (
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// TestSharedShimMassRemoval: every pod of a shared shim, each with a
// running container, deleted at once as a kubelet does when a namespace
// or a node's pods go (each pod: its container stopped, then the pod
// stopped and removed). A shim per pod does it beside, as the reference.
// The shared shim's removal may take at most a few times the reference's,
// with a floor for a loaded machine. It stalled for a minute and more when
// the kills overlapped (docs/failure-model.md); this test leaves that to
// chance and runs in make stress, while
// TestSharedShimMassRemovalOverlappingKills forces it in make test.
func TestSharedShimMassRemoval(t *testing.T) {
	ctx := requireEnv(t)
	if testenv.Slow() {
		t.Skip("an emulated node runs fewer pods; make stress runs this on the host")
	}
	rt, _ := criClients(t)
	took := map[string]time.Duration{}
	for _, handler := range []string{"pause", denseHandler} {
		took[handler] = removeAtOnce(t, ctx, rt, handler, cri.NamespaceMode_POD)
	}
	shimPerPodPace(t, took)
}
