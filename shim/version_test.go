package shim

import (
	"runtime/debug"
	"testing"

	"github.com/containerd/containerd/v2/version"
)

func TestStampVersion(t *testing.T) {
	saved := [3]string{version.Package, version.Version, version.Revision}
	t.Cleanup(func() { version.Package, version.Version, version.Revision = saved[0], saved[1], saved[2] })

	reset := func() {
		version.Package, version.Version, version.Revision = "github.com/containerd/containerd/v2", "2.4.2+unknown", ""
	}
	for _, tc := range []struct {
		name              string
		info              debug.BuildInfo
		version, revision string
	}{
		{"go install at a version", debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3", ""},
		{"go build in a clone", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}}}, "devel", "abc123"},
	} {
		reset()
		stampFrom(&tc.info)
		if version.Package != packageName || version.Version != tc.version || version.Revision != tc.revision {
			t.Errorf("%s: package %q version %q revision %q, want %q %q %q", tc.name, version.Package, version.Version, version.Revision, packageName, tc.version, tc.revision)
		}
	}

	// A build by make is stamped already: its version stays.
	version.Package, version.Version, version.Revision = packageName, "v9.9.9", "def456"
	stampFrom(&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}})
	if version.Version != "v9.9.9" || version.Revision != "def456" {
		t.Errorf("a make build's stamp was replaced: version %q revision %q", version.Version, version.Revision)
	}
}
