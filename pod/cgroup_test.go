package pod

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

// wantInvalidField checks that err is InvalidArgument and names field.
func wantInvalidField(t *testing.T, what string, err error, field string) {
	t.Helper()
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), field) {
		t.Errorf("%s: got %v, want InvalidArgument naming %s", what, err, field)
	}
}

// TestHostileCgroupPathsRefused: a pod's cgroup given relative, with "..",
// as the root cgroup or as one of systemd's own slices is refused with
// InvalidArgument naming the field, before any cgroup is made.
func TestHostileCgroupPathsRefused(t *testing.T) {
	for _, parent := range []string{
		"kubepods/pod1", "../x", "/kubepods/../../etc", "/kubepods/pod1/..", "/",
		"/kubepods.slice/../../x.slice", "-.slice",
	} {
		_, err := cgroupLayout("sb", "k8s.io", &podConfig{CgroupParent: parent, FromCRI: true}, false)
		wantInvalidField(t, "cgroup parent "+parent, err, "cgroup_parent")
	}
	for _, own := range []string{
		"pod", "relative/pod", "../../escape", "/a/../../b", "/a/..", "/",
		"system.slice", "-.slice", "user.slice",
	} {
		_, err := cgroupLayout("p", "default", &podConfig{CgroupsPath: own}, false)
		wantInvalidField(t, "cgroupsPath "+own, err, "cgroupsPath")
	}
	// What the kubelet and ctr send is taken as it is.
	for _, cfg := range []*podConfig{
		{CgroupParent: "/kubepods/burstable/pod1"}, {CgroupParent: "kubepods-pod1.slice"},
		{CgroupParent: "/kubepods.slice/kubepods-pod1.slice"}, {CgroupsPath: "/pods/p"}, {CgroupsPath: "pods-p.slice"}, {},
	} {
		if _, err := cgroupLayout("p", "default", cfg, false); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// TestHostileCgroupsPathFailsCreate: a sandbox spec whose cgroupsPath
// climbs out of the cgroup hierarchies fails CreateSandbox: no cgroup is
// made, there or anywhere.
func TestHostileCgroupsPathFailsCreate(t *testing.T) {
	r := testRegistry(t, options.Default())
	bundle := t.TempDir()
	escape := "../../../../tmp/" + filepath.Base(bundle) + "-escape"
	spec, _ := json.Marshal(map[string]any{"linux": map[string]any{"cgroupsPath": escape, "namespaces": []any{map[string]string{"type": "pid"}}}})
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := r.Create(podCtx(), Spec{ID: "escape", Namespace: testNamespace, Bundle: bundle})
	if err == nil {
		t.Cleanup(func() { _ = p.Shutdown(podCtx()) })
	}
	wantInvalidField(t, "CreateSandbox", err, "cgroupsPath")
	if _, err := os.Stat("/tmp/" + filepath.Base(bundle) + "-escape"); err == nil {
		t.Error("a cgroup was made outside the cgroup hierarchies")
	}
}
