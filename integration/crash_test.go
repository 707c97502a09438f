package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
)

// failpointsBinaryEnv names the failpoint build of the shim (make
// build-failpoints); bin/containerd-shim-pause-v2-failpoints if unset.
const failpointsBinaryEnv = "SHIM_FAILPOINTS_BINARY"

// crashCase is how the sweep reaches a failpoint.
type crashCase struct {
	point string
	// sharedOnly: the point is on a shared shim's path (its pool).
	sharedOnly bool
	// systemd: the point is on the systemd driver's path (true) or on the
	// cgroupfs one (false), when it is on one of them only.
	systemd *bool
	// ownCgroup: the pod comes without a CRI cgroup parent, so the shim
	// makes the pod's cgroup itself.
	ownCgroup bool
	// after is a point crashed first, which leads to this one: `shim
	// delete` runs only for a shim that died.
	after string
}

var (
	onSystemd  = true
	onCgroupfs = false
)

// crashCases are every failpoint, as the sweep reaches it; a failpoint
// added without a case fails the sweep.
var crashCases = []crashCase{
	{point: failpoint.SandboxCreateBegin},
	{point: failpoint.SandboxCreateEnd},
	{point: failpoint.SandboxStartBegin},
	{point: failpoint.PodStartAfterFiles},
	{point: failpoint.PodStartAfterCgroup, ownCgroup: true},
	{point: failpoint.PodStartAfterPause},
	{point: failpoint.PodStartAfterState},
	{point: failpoint.SandboxStartEnd},
	{point: failpoint.PodPauseAfterCgroup, systemd: &onCgroupfs},
	{point: failpoint.PodPauseAfterScope, systemd: &onSystemd},
	{point: failpoint.PodAdmitAfterSpec},
	{point: failpoint.TaskCreateAfterAdmit},
	{point: failpoint.TaskCreateAfterRunc},
	{point: failpoint.SandboxStopBegin},
	{point: failpoint.PodStopAfterMembers},
	{point: failpoint.SandboxStopEnd},
	{point: failpoint.SandboxShutdownBegin},
	{point: failpoint.PodShutdownAfterMembers},
	{point: failpoint.PodCleanupAfterPause},
	{point: failpoint.RecordCleanupAfterKill},
	{point: failpoint.RecordCleanupAfterCgroups},
	{point: failpoint.RecordCleanupAfterFiles},
	{point: failpoint.SandboxShutdownEnd},
	{point: failpoint.PoolRetireAfterRelease, sharedOnly: true},
	{point: failpoint.PoolRetireAfterRetire, sharedOnly: true},
	{point: failpoint.ShimStartAfterSpawn},
	{point: failpoint.PoolStartAfterLock, sharedOnly: true},
	{point: failpoint.PoolStartAfterShimRecord, sharedOnly: true},
	{point: failpoint.PoolStartAfterBundleFile, sharedOnly: true},
	{point: failpoint.PoolStartAfterAssign, sharedOnly: true},
	{point: failpoint.PoolStartEnd, sharedOnly: true},
	{point: failpoint.ShimDeleteBegin, after: failpoint.SandboxStartEnd},
	{point: failpoint.ShimDeleteAfterPool, after: failpoint.SandboxStartEnd},
	{point: failpoint.ShimDeleteEnd, after: failpoint.SandboxStartEnd},
}

// TestReleaseBinaryHasNoFailpoints: the shim under test (make build) has no
// failpoint compiled in; the failpoint build has them.
func TestReleaseBinaryHasNoFailpoints(t *testing.T) {
	requireEnv(t)
	data, err := os.ReadFile(env.Shim)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("gofail")) || bytes.Contains(data, []byte(failpoint.PodStartAfterState)) {
		t.Errorf("%s carries failpoints", env.Shim)
	}
	if fp := failpointsBinary(t); !hasFailpoints(t, fp) {
		t.Errorf("%s has no failpoint compiled in (build it with -tags failpoints)", fp)
	}
}

// failpointsBinary is the failpoint build of the shim; the test is skipped
// where there is none.
func failpointsBinary(t *testing.T) string {
	t.Helper()
	fp := os.Getenv(failpointsBinaryEnv)
	if fp == "" {
		fp = filepath.Join(env.Repo, "bin", "containerd-shim-pause-v2-failpoints")
	}
	if _, err := os.Stat(fp); err != nil {
		t.Skipf("no failpoint build of the shim (make build-failpoints, or set %s): %v", failpointsBinaryEnv, err)
	}
	fp, err := filepath.EvalSymlinks(fp)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func hasFailpoints(t *testing.T, binary string) bool {
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(data, []byte("gofail"))
}

// crashSweep is a containerd whose shims are the failpoint build, with
// the file that arms its failpoints.
type crashSweep struct {
	env   *testenv.Env
	dir   string // the terms file and the kill markers
	terms string
}

// TestCrashPoints: the process at each failpoint (the shim, `shim start`
// or `shim delete`) is killed there once, on a shim per pod (handler
// pause) and on a shared shim (pause-dense). containerd and CRI do what
// they do (restart, `shim delete`, retry), and the test acts as the
// kubelet: it retries RunPodSandbox and CreateContainer, stops and removes
// the pods CRI lists, and removes their cgroups. Then: CRI's view agreed
// with the host throughout; nothing is left (process, mount, cgroup,
// systemd unit, socket, pool record, bundle); the next pod on the handler
// starts. One containerd serves the sweep: the test arms one point at a
// time through the failpoint file every shim process reads.
func TestCrashPoints(t *testing.T) {
	requireEnv(t)
	fp := failpointsBinary(t)
	if !hasFailpoints(t, fp) {
		t.Fatalf("%s has no failpoint compiled in (build it with -tags failpoints)", fp)
	}
	for _, name := range failpoint.All {
		if !slices.ContainsFunc(crashCases, func(c crashCase) bool { return c.point == name }) {
			t.Errorf("failpoint %s has no case in the sweep", name)
		}
	}
	sw := startCrashSweep(t, fp)
	modes := []string{"pause", denseHandler}
	if testenv.Slow() {
		modes = modes[:1]
	}
	start := time.Now()
	points, cases, failed := map[string]bool{}, 0, 0
	for _, mode := range modes {
		for _, c := range crashCases {
			if c.sharedOnly && mode == "pause" {
				continue
			}
			if c.systemd != nil && *c.systemd != testenv.SystemdDriver() {
				continue
			}
			ran := false
			ok := t.Run(mode+"/"+c.point, func(t *testing.T) { ran = true; sw.crash(t, mode, c) })
			if !ran {
				continue // not selected by -run
			}
			points[c.point] = true
			cases++
			if !ok {
				failed++
			}
		}
	}
	if failed == 0 {
		t.Logf("%d crash points × %d modes (%d cases), all recovered, in %v", len(points), len(modes), cases, time.Since(start).Round(time.Second))
	} else {
		t.Logf("%d crash points × %d modes (%d cases): %d cases did not recover, in %v", len(points), len(modes), cases, failed, time.Since(start).Round(time.Second))
	}
}

// startCrashSweep runs a containerd of its own on the failpoint build:
// the handlers of the drop-in find it on containerd's PATH under the
// shim's name.
func startCrashSweep(t *testing.T, fp string) *crashSweep {
	dir, err := os.MkdirTemp("", "pause-crash-")
	if err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fp, filepath.Join(binDir, "containerd-shim-pause-v2")); err != nil {
		t.Fatal(err)
	}
	sw := &crashSweep{dir: dir, terms: filepath.Join(dir, "terms")}
	e, err := testenv.Start(env.Repo, fp, fmt.Sprintf("pause-crash-%d", os.Getpid()),
		testenv.WithPodSubnet("10.251.0.0/24"),
		testenv.WithEnv("PATH="+binDir+":"+os.Getenv("PATH"), failpoint.FileEnv+"="+sw.terms))
	sw.env = e
	t.Cleanup(func() {
		leaks := e.Leaks()
		if len(leaks) > 0 {
			t.Errorf("the crash sweep left behind:\n  %s", strings.Join(leaks, "\n  "))
		}
		if t.Failed() {
			t.Logf("the sweep's containerd log: %s", e.LogPath())
			return
		}
		os.RemoveAll(e.Dir)
		os.RemoveAll(dir)
	})
	if err != nil {
		t.Fatalf("crash sweep's containerd: %v", err)
	}
	return sw
}

// arm writes the failpoint file every shim process of the sweep reads:
// terms in GOFAIL_FAILPOINTS' form, "" to disarm.
func (sw *crashSweep) arm(t *testing.T, terms string) {
	t.Helper()
	if err := os.WriteFile(sw.terms+".tmp", []byte(terms), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sw.terms+".tmp", sw.terms); err != nil {
		t.Fatal(err)
	}
}

// killOnce is the term that kills the first process to reach point, and
// notes the kill in marker.
func killOnce(point, marker string) string {
	return fmt.Sprintf("%s=return(\"kill:%s\")", point, marker)
}

// crash runs one case: see TestCrashPoints.
func (sw *crashSweep) crash(t *testing.T, handler string, c crashCase) {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), criNamespace), 3*time.Minute)
	defer cancel()
	conn, rt := dialCRI(t, sw.env.Address)
	defer conn.Close()
	// What an earlier case left and could not be swept up is its own
	// failure, not this one's.
	before := sw.residue(t, ctx, rt, nil)
	if len(before) > 0 {
		t.Logf("left by an earlier case, not counted here:\n  %s", strings.Join(before, "\n  "))
	}
	name := strings.ToLower(c.point)
	marker := filepath.Join(sw.dir, handler+"-"+c.point)
	terms := killOnce(c.point, marker)
	var afterMarker string
	if c.after != "" {
		afterMarker = marker + "-after"
		terms = killOnce(c.after, afterMarker) + ";" + terms
	}
	sw.arm(t, terms)
	k := &kubelet{t: t, ctx: ctx, rt: rt, handler: handler, sw: sw, ownBefore: ownedCgroups(), baseline: before}
	config := k.podConfig(name, c.ownCgroup)
	k.runPodWithContainer(config)
	k.checkAgreement()
	k.removeAll()
	for _, m := range []string{afterMarker, marker} {
		if m == "" {
			continue
		}
		if data, err := os.ReadFile(m); err != nil {
			t.Errorf("the sweep never reached %s: %v", filepath.Base(m), err)
		} else {
			t.Logf("killed at %s", strings.TrimSpace(string(data)))
		}
	}
	sw.arm(t, "")
	leaks := sw.leftSince(t, ctx, rt, k)
	if len(leaks) > 0 {
		t.Errorf("left after the crash at %s:\n  %s", c.point, strings.Join(leaks, "\n  "))
	}
	// The next pod on the handler starts at once, beside whatever the
	// crash left.
	next := &kubelet{t: t, ctx: ctx, rt: rt, handler: handler, sw: sw, strict: true, ownBefore: k.ownBefore, baseline: slices.Concat(before, leaks)}
	next.runPodWithContainer(next.podConfig(name+"-next", c.ownCgroup))
	next.removeAll()
	nextLeaks := sw.leftSince(t, ctx, rt, next)
	if len(nextLeaks) > 0 {
		t.Errorf("left by the next pod:\n  %s", strings.Join(nextLeaks, "\n  "))
	}
	if len(leaks) > 0 || len(nextLeaks) > 0 {
		sw.sweepUp(t, k)
	}
	if t.Failed() {
		for _, e := range k.events {
			t.Logf("kubelet: %s", e)
		}
	}
}

// leftSince is what is left after kubelet k's pods are gone, and was not
// before it began: residue, and the pod cgroups the shim made.
func (sw *crashSweep) leftSince(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, k *kubelet) []string {
	all := sw.residue(t, ctx, rt, k.containers)
	for dir := range ownedCgroupsSince(k.ownBefore) {
		all = append(all, "the shim's own pod cgroup "+dir)
	}
	var leaks []string
	for _, l := range all {
		if !slices.Contains(k.baseline, l) {
			leaks = append(leaks, l)
		}
	}
	return leaks
}
