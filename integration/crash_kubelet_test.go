package integration

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// kubelet drives CRI as the kubelet would, around a crash: it retries
// what fails, and notes what it saw.
type kubelet struct {
	t       *testing.T
	ctx     context.Context
	rt      cri.RuntimeServiceClient
	handler string
	sw      *crashSweep
	// strict: no call may fail (no crash is armed).
	strict     bool
	events     []string
	configs    []*cri.PodSandboxConfig
	containers []string
	// ownBefore are the shim's own pod cgroups before the case, baseline
	// what was left before it (see leftSince).
	ownBefore map[string]bool
	baseline  []string
}

func (k *kubelet) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if k.strict {
		k.t.Error(msg)
	}
	k.events = append(k.events, msg)
}

// podConfig is a pod as the kubelet sends it, its cgroup under the sweep's
// containerd namespace; own: with no cgroup parent at all.
func (k *kubelet) podConfig(name string, own bool) *cri.PodSandboxConfig {
	config := podConfig(k.t, name, false)
	switch {
	case own:
		config.Linux.CgroupParent = ""
	case !testenv.SystemdDriver():
		config.Linux.CgroupParent = "/" + k.sw.env.Namespace + "/pod" + config.Metadata.Uid
	}
	k.configs = append(k.configs, config)
	return config
}

// call runs one CRI call with a deadline of its own.
func call[R any](k *kubelet, f func(context.Context) (R, error)) (R, error) {
	ctx, cancel := context.WithTimeout(k.ctx, time.Minute)
	defer cancel()
	return f(ctx)
}

// runPodWithContainer brings up the pod with a running container, as the
// kubelet would: a pod that fails to start is started again, a pod that
// is not ready is removed and started again, a container that fails is
// created again; five rounds at most, a second apart.
func (k *kubelet) runPodWithContainer(config *cri.PodSandboxConfig) {
	t := k.t
	id := ""
	for round := 1; round <= 5; round++ {
		if round > 1 {
			time.Sleep(time.Second)
		}
		if id == "" {
			resp, err := call(k, func(ctx context.Context) (*cri.RunPodSandboxResponse, error) {
				return k.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: config, RuntimeHandler: k.handler})
			})
			if err != nil {
				k.note("round %d: RunPodSandbox: %v", round, err)
				continue
			}
			id = resp.PodSandboxId
		}
		if err := k.startContainer(id, config, round); err == nil {
			return
		}
		st, err := call(k, func(ctx context.Context) (*cri.PodSandboxStatusResponse, error) {
			return k.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id})
		})
		if err != nil || st.Status.State != cri.PodSandboxState_SANDBOX_READY {
			k.note("round %d: pod %s not ready (%v %v): removed, to start anew", round, id, st.GetStatus().GetState(), err)
			k.removePod(id)
			id = ""
		}
	}
	t.Errorf("no running pod with a container after five rounds on %s:\n  %s", k.handler, strings.Join(k.events, "\n  "))
}

// startContainer creates and starts the pod's container, its attempt-th;
// one that fails to start is removed, as the kubelet does before trying
// again.
func (k *kubelet) startContainer(pod string, config *cri.PodSandboxConfig, attempt int) error {
	resp, err := call(k, func(ctx context.Context) (*cri.CreateContainerResponse, error) {
		return k.rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: config,
			Config: &cri.ContainerConfig{Metadata: &cri.ContainerMetadata{Name: "c", Attempt: uint32(attempt)}, Image: &cri.ImageSpec{Image: busyboxImage},
				Command: []string{"/bin/sleep", "100000"}, LogPath: fmt.Sprintf("c-%d.log", attempt)}})
	})
	if err != nil {
		k.note("attempt %d: CreateContainer in pod %s: %v", attempt, pod, err)
		return err
	}
	k.containers = append(k.containers, resp.ContainerId)
	if _, err := call(k, func(ctx context.Context) (*cri.StartContainerResponse, error) {
		return k.rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: resp.ContainerId})
	}); err != nil {
		k.note("attempt %d: StartContainer %s: %v", attempt, resp.ContainerId, err)
		if _, rerr := call(k, func(ctx context.Context) (*cri.RemoveContainerResponse, error) {
			return k.rt.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: resp.ContainerId})
		}); rerr != nil {
			k.note("attempt %d: RemoveContainer %s: %v", attempt, resp.ContainerId, rerr)
		}
		return err
	}
	return nil
}

// checkAgreement waits until what CRI says runs does run: a ready pod's
// pause task and a running container's process are alive (a crash makes
// CRI's view lag for a moment).
func (k *kubelet) checkAgreement() {
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if last = k.disagreement(); last == nil {
			return
		}
	}
	k.t.Errorf("CRI's view and the host disagree: %v", last)
}

func (k *kubelet) disagreement() error {
	pods, err := call(k, func(ctx context.Context) (*cri.ListPodSandboxResponse, error) {
		return k.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.State != cri.PodSandboxState_SANDBOX_READY {
			continue
		}
		st, err := call(k, func(ctx context.Context) (*cri.PodSandboxStatusResponse, error) {
			return k.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: p.Id, Verbose: true})
		})
		if err != nil {
			return fmt.Errorf("pod %s: %w", p.Id, err)
		}
		pid, _ := strconv.Atoi(st.Info["pause_pid"])
		if st.Status.State == cri.PodSandboxState_SANDBOX_READY && !alive(pid) {
			return fmt.Errorf("pod %s is ready, its pause task %q is not alive", p.Id, st.Info["pause_pid"])
		}
	}
	cs, err := call(k, func(ctx context.Context) (*cri.ListContainersResponse, error) {
		return k.rt.ListContainers(ctx, &cri.ListContainersRequest{})
	})
	if err != nil {
		return err
	}
	for _, c := range cs.Containers {
		if c.State != cri.ContainerState_CONTAINER_RUNNING {
			continue
		}
		st, err := call(k, func(ctx context.Context) (*cri.ContainerStatusResponse, error) {
			return k.rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c.Id, Verbose: true})
		})
		if err != nil {
			return fmt.Errorf("container %s: %w", c.Id, err)
		}
		if st.Status.State == cri.ContainerState_CONTAINER_RUNNING && !alive(infoPid(st.Info["info"])) {
			return fmt.Errorf("container %s is running, its process is not alive", c.Id)
		}
	}
	return nil
}

func alive(pid int) bool {
	s := procState(pid)
	return pid > 0 && s != "" && s != "Z"
}

// infoPid is the pid in CRI's verbose container info, 0 if none.
func infoPid(info string) int {
	_, rest, _ := strings.Cut(info, `"pid":`)
	end := strings.IndexAny(rest, ",}")
	if end < 0 {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(rest[:end]))
	return pid
}

// removeAll stops and removes every pod CRI lists, as the kubelet does for
// pods being deleted, then their cgroups.
func (k *kubelet) removeAll() {
	k.removePods()
	for _, config := range k.configs {
		k.removeCgroup(config)
	}
}

// removePods stops and removes every pod CRI lists.
func (k *kubelet) removePods() {
	pods, err := call(k, func(ctx context.Context) (*cri.ListPodSandboxResponse, error) {
		return k.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	})
	if err != nil {
		k.t.Errorf("ListPodSandbox: %v", err)
		return
	}
	for _, p := range pods.Items {
		k.removePod(p.Id)
	}
}

// kubeletPatience is how long the kubelet goes on retrying a pod's stop
// or removal (its sync loop would go on for ever, every few seconds).
const kubeletPatience = 20 * time.Second

// removePod stops and removes a pod, each call retried every second for
// kubeletPatience.
func (k *kubelet) removePod(id string) {
	try := func(what string, f func(context.Context) error) {
		var err error
		start := time.Now()
		for attempt := 1; ; attempt++ {
			if err = func() error {
				ctx, cancel := context.WithTimeout(k.ctx, time.Minute)
				defer cancel()
				return f(ctx)
			}(); err == nil {
				if attempt > 1 {
					k.note("%s %s succeeded at attempt %d, after %v", what, id, attempt, time.Since(start).Round(100*time.Millisecond))
				}
				return
			}
			k.note("%s %s (attempt %d): %v", what, id, attempt, err)
			if time.Since(start) > kubeletPatience {
				break
			}
			time.Sleep(time.Second)
		}
		k.t.Errorf("%s %s still fails after %v: %v", what, id, kubeletPatience, err)
	}
	try("StopPodSandbox", func(ctx context.Context) error {
		_, err := k.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id})
		return err
	})
	try("RemovePodSandbox", func(ctx context.Context) error {
		_, err := k.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	})
}

// removeCgroup removes a pod's cgroup (or slice) as the kubelet does once
// the pod is gone; what the pod left in it keeps it.
func (k *kubelet) removeCgroup(config *cri.PodSandboxConfig) {
	parent := config.Linux.CgroupParent
	switch {
	case parent == "":
	case testenv.SystemdDriver():
		testenv.StopUnit(k.t, path.Base(parent))
	default:
		for _, root := range testenv.CgroupRoots() {
			if err := os.Remove(filepath.Join(root, parent)); err != nil && !os.IsNotExist(err) {
				k.t.Errorf("remove pod cgroup %s: %v (left in it: %v)", parent, err, subdirNames(filepath.Join(root, parent)))
			}
		}
	}
}
