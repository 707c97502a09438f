package installer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// minContainerdMajor is the first containerd whose CRI runs a sandbox
// through the shim (sandboxer = "shim").
const minContainerdMajor = 2

// ContainerdVersion asks the containerd at socket for its version.
func ContainerdVersion(ctx context.Context, socket string) (string, error) {
	c, err := containerd.New(socket, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return "", fmt.Errorf("containerd at %s: %w", socket, err)
	}
	defer c.Close()
	v, err := c.Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd at %s: version: %w", socket, err)
	}
	return v.Version, nil
}

// CheckContainerdVersion refuses a containerd older than 2.0, whose CRI
// knows no sandboxer = "shim".
func CheckContainerdVersion(version string) error {
	v := strings.TrimPrefix(version, "v")
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return fmt.Errorf("containerd version %q: cannot read its major version", version)
	}
	if major < minContainerdMajor {
		return fmt.Errorf("containerd %s is too old: the pause handlers need sandboxer = \"shim\", containerd 2.0 or later", version)
	}
	return nil
}
