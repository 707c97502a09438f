package shim

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	// Registers runc's Features type, as the shim binary's imports do.
	_ "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/version"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
)

// TestInfoTakesTheOptionsTable: containerd's CRI introspects every handler
// with `shim -info`, its options on stdin. A handler with an options table
// (SystemdCgroup, PauseUID…) sends them as runtimeoptions; if -info fails,
// CRI takes the handler for one without user namespaces or recursive
// read-only mounts. -info answers with runc's features, from the table's
// BinaryName, and refuses a bad table by its key.
func TestInfoTakesTheOptionsTable(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (make deps)")
	}
	m := NewManager(RuntimeName)
	stdin := func(msg proto.Message) *bytes.Reader {
		a, err := typeurl.MarshalAnyToProto(msg)
		if err != nil {
			t.Fatal(err)
		}
		data, err := proto.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(data)
	}
	link := filepath.Join(t.TempDir(), "my-runc")
	if err := os.Symlink(runc, link); err != nil {
		t.Fatal(err)
	}
	info, err := m.Info(context.Background(), stdin(&runtimeoptions.Options{ConfigBody: []byte("SystemdCgroup = false\nBinaryName = \"" + link + "\"\n")}))
	if err != nil {
		t.Fatalf("-info with an options table: %v", err)
	}
	if info.GetFeatures() == nil {
		t.Error("-info gave no runc features")
	}
	var got runcoptions.Options
	if err := typeurl.UnmarshalTo(info.GetOptions(), &got); err != nil || got.BinaryName != link {
		t.Errorf("options in -info: %v %v", &got, err)
	}
	if _, err := m.Info(context.Background(), stdin(&runtimeoptions.Options{ConfigBody: []byte("PauseUser = 1\n")})); !errdefs.IsInvalidArgument(err) {
		t.Errorf("-info with a bad table: %v", err)
	}
	if info, err := m.Info(context.Background(), bytes.NewReader(nil)); err != nil || info.GetFeatures() == nil {
		t.Errorf("-info without options: %v %v", info, err)
	}
}

// TestInfoReportsTheVersion: -info names the runtime and the version that
// -v prints (make stamps it with -ldflags -X), so `make check-release` can
// read a release's version from -info as containerd does. The runc it names
// is a stand-in answering `features`: the version needs no runc.
func TestInfoReportsTheVersion(t *testing.T) {
	saved := [2]string{version.Version, version.Revision}
	t.Cleanup(func() { version.Version, version.Revision = saved[0], saved[1] })
	version.Version, version.Revision = "v1.2.3-test", "0123abcd"

	runc := filepath.Join(t.TempDir(), "runc")
	if err := os.WriteFile(runc, []byte("#!/bin/sh\necho '{\"ociVersionMin\":\"1.0.0\",\"ociVersionMax\":\"1.2.1\"}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := typeurl.MarshalAnyToProto(&runcoptions.Options{BinaryName: runc})
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	info, err := NewManager(RuntimeName).Info(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != RuntimeName || info.GetVersion().GetVersion() != "v1.2.3-test" || info.GetVersion().GetRevision() != "0123abcd" {
		t.Errorf("-info: name %q version %v, want %q v1.2.3-test 0123abcd", info.GetName(), info.GetVersion(), RuntimeName)
	}
	if info.GetFeatures() == nil {
		t.Error("-info gave no features from the stand-in runc")
	}
}
