package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"google.golang.org/protobuf/types/known/anypb"
)

// unknownSpecVersion is how crun refuses a runtime-spec version newer than
// the ones it knows; it says neither which version nor its own.
const unknownSpecVersion = "unknown version specified"

// explainSpecVersion adds to an OCI runtime's refusal of the spec's
// version what an operator needs to act on it: the runtime's binary and
// version, and the spec version containerd wrote. Other errors pass
// unchanged.
func explainSpecVersion(ctx context.Context, err error, options *anypb.Any, bundle string) error {
	if err == nil || !strings.Contains(err.Error(), unknownSpecVersion) {
		return err
	}
	binary := "runc"
	var opts runcoptions.Options
	if options != nil && options.MessageIs(&opts) && options.UnmarshalTo(&opts) == nil && opts.BinaryName != "" {
		binary = opts.BinaryName
	}
	return errgrpc.ToGRPC(fmt.Errorf("%w: the OCI runtime %s (%s) does not know the runtime-spec version of the container's spec (%s, as containerd wrote it): use a release of it that does",
		errgrpc.ToNative(err), binary, runtimeVersion(ctx, binary), specVersion(bundle)))
}

// runtimeVersion is what `binary --version` says of itself and of the
// runtime-spec versions it knows, on one line.
func runtimeVersion(ctx context.Context, binary string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		log.G(ctx).WithError(err).WithField("runtime", binary).Warn("OCI runtime version")
		return "version unknown"
	}
	var parts []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line = strings.TrimSpace(line); strings.Contains(line, "version") || strings.HasPrefix(line, "spec:") {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, ", ")
}

// specVersion is the ociVersion of the bundle's spec.
func specVersion(bundle string) string {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "unknown"
	}
	var spec struct {
		OCIVersion string `json:"ociVersion"`
	}
	if err := json.Unmarshal(data, &spec); err != nil || spec.OCIVersion == "" {
		return "unknown"
	}
	return spec.OCIVersion
}
