package shim

import (
	"runtime/debug"

	"github.com/containerd/containerd/v2/version"
)

// packageName is what `make build` stamps into containerd's version.Package.
const packageName = "containerd-shim-pause-v2"

// StampVersion makes -v report the module version and revision that the Go
// toolchain recorded when the binary was not built by make, which stamps
// them with -ldflags -X: `go install …@vX.Y.Z` then shows vX.Y.Z, not
// containerd's own version.
func StampVersion() {
	// A make build is stamped already: it reads no build info at each start.
	if version.Package == packageName {
		return
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		stampFrom(info)
	}
}

func stampFrom(info *debug.BuildInfo) {
	if version.Package == packageName {
		return
	}
	version.Package = packageName
	version.Version = "devel"
	if v := info.Main.Version; v != "" && v != "(devel)" {
		version.Version = v
	}
	version.Revision = ""
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			version.Revision = s.Value
		}
	}
}
