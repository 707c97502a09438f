package task

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestExplainSpecVersion(t *testing.T) {
	dir := t.TempDir()
	runtime := filepath.Join(dir, "crun")
	script := "#!/bin/sh\necho 'crun version 1.8.1'\necho 'commit: abc'\necho 'spec: 1.0.0'\necho '+SYSTEMD'\n"
	if err := os.WriteFile(runtime, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"ociVersion":"1.3.0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := anypb.New(&runcoptions.Options{BinaryName: runtime})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	refused := errgrpc.ToGRPC(errors.New("OCI runtime create failed: unknown version specified"))
	got := explainSpecVersion(ctx, refused, opts, dir)
	want := "unknown version specified: the OCI runtime " + runtime + " (crun version 1.8.1, spec: 1.0.0) does not know the runtime-spec version of the container's spec (1.3.0, as containerd wrote it)"
	if got == nil || !strings.Contains(got.Error(), want) {
		t.Errorf("got %v, want it to contain %q", got, want)
	}
	other := errgrpc.ToGRPC(errdefs.ErrNotFound)
	if got := explainSpecVersion(ctx, other, opts, dir); got != other {
		t.Errorf("another error became %v", got)
	}
	if got := explainSpecVersion(ctx, nil, opts, dir); got != nil {
		t.Errorf("no error became %v", got)
	}
}
