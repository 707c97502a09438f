package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/pkg/netns"
	gocni "github.com/containerd/go-cni"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// cniFloor is the part of a pod's start and teardown no runtime handler
// avoids: the pod's network. It makes and removes a pod network the way
// CRI does for every handler here, with the same code and inputs, but
// alone: containerd's netns package (a bind-mounted namespace where CRI
// mounts its pods'), go-cni loaded as CRI loads it (CRI's loopback network
// and the first network of CRI's conf dir, attached in parallel; plugins
// from the same directory; the same host-local IPAM store and bridge), and
// CRI's pod labels.
type cniFloor struct {
	cni      gocni.CNI
	netnsDir string
	seq      int
}

func newCNIFloor(env *testenv.Env) (*cniFloor, error) {
	// internal/cri/server/service_linux.go initPlatform and cniLoadOptions.
	c, err := gocni.New(gocni.WithMinNetworkCount(2),
		gocni.WithPluginConfDir(env.CNIConfDir()),
		gocni.WithPluginMaxConfNum(1),
		gocni.WithPluginDir([]string{testenv.CNIBinDir}))
	if err != nil {
		return nil, err
	}
	if err := c.Load(gocni.WithLoNetwork, gocni.WithDefaultConf); err != nil {
		return nil, fmt.Errorf("load CNI configuration: %w", err)
	}
	return &cniFloor{cni: c, netnsDir: env.NetNSDir()}, nil
}

// cycle sets a pod network up and tears it down, timing each half as CRI
// spends it: network namespace + CNI ADD before the sandbox is created
// (RunPodSandbox), CNI DEL + namespace removal when it stops
// (StopPodSandbox).
func (f *cniFloor) cycle(ctx context.Context, cgroupParent string) (setup, teardown time.Duration, err error) {
	f.seq++
	id, err := sandboxID()
	if err != nil {
		return 0, 0, err
	}
	name := fmt.Sprintf("floor-%d", f.seq)
	// internal/cri/server/sandbox_run.go cniNamespaceOpts, for a pod
	// without port mappings, bandwidth annotations or DNS config.
	opts := []gocni.NamespaceOpts{
		gocni.WithLabels(map[string]string{
			"K8S_POD_NAMESPACE": "bench", "K8S_POD_NAME": name,
			"K8S_POD_INFRA_CONTAINER_ID": id, "K8S_POD_UID": name, "IgnoreUnknown": "1",
		}),
		gocni.WithCapability("io.kubernetes.cri.pod-annotations", map[string]string{}),
		gocni.WithCapabilityCgroupPath(cgroupParent),
	}
	start := time.Now()
	ns, err := netns.NewNetNS(f.netnsDir)
	if err != nil {
		return 0, 0, fmt.Errorf("CNI floor: network namespace: %w", err)
	}
	if _, err := f.cni.Setup(ctx, id, ns.GetPath(), opts...); err != nil {
		return 0, 0, errors.Join(fmt.Errorf("CNI floor: setup: %w", err),
			f.cni.Remove(ctx, id, ns.GetPath(), opts...), ns.Remove())
	}
	setup = time.Since(start)
	start = time.Now()
	if err := f.cni.Remove(ctx, id, ns.GetPath(), opts...); err != nil {
		return 0, 0, errors.Join(fmt.Errorf("CNI floor: teardown: %w", err), ns.Remove())
	}
	if err := ns.Remove(); err != nil {
		return 0, 0, fmt.Errorf("CNI floor: remove network namespace: %w", err)
	}
	return setup, time.Since(start), nil
}

// sandboxID is a random id shaped as CRI's (64 hex digits): the id names
// the IPAM reservation and libcni's result cache file.
func sandboxID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
