package pod

// Orphans: `shim delete` runs once after a shim dies, and then containerd
// removes the bundle, pod.json with it. A `shim delete` killed midway (or
// timed out) would leave whatever pod.json named with no record of it. So
// every record has a second copy outside the bundle, which the next `shim
// delete` of any sandbox finds once its bundle is gone.

// SweepOrphans is given a stub first: the test that follows shows what is
// left without it.
import "context"

// SweepOrphans cleans up the pods whose bundle is gone but whose record is
// left.
func SweepOrphans(ctx context.Context, leavePool func(ctx context.Context, dir, id string)) {}

var orphanDir = "/run/containerd-shim-pause-v2/pods"
