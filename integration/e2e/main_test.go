//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// namespace is where the tests make their pods.
const namespace = "default"

// c is the cluster the tests share; skip says why the tests cannot run
// here, when they cannot.
var (
	c    *cluster
	skip string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		repo, _ := filepath.Abs("../..")
		shim, missing := prerequisites(repo)
		if missing != "" {
			skip = "e2e: " + missing
			return m.Run()
		}
		if out := os.Getenv(conformanceEnv); out != "" {
			// make e2e-conformance: TestNodeConformance starts a
			// cluster per handler; the scenarios have none.
			conformance = &conformanceRun{repo: repo, shim: shim, out: out}
			skip = "e2e: " + conformanceEnv + " is set: TestNodeConformance runs alone, on clusters of its own"
			return m.Run()
		}
		if images := os.Getenv(installEnv); images != "" {
			// make test-node: TestClusterInstall takes over the node's
			// containerd.service, on a cluster of its own.
			install = &installRun{repo: repo, shim: shim, images: images}
			skip = "e2e: " + installEnv + " is set: TestClusterInstall runs alone, on a cluster of its own"
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "pause-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: FAIL:", err)
			return 1
		}
		c = &cluster{dir: dir}
		code := 1
		if err := startCluster(c, repo, shim, options{}); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: FAIL: cluster:", err)
		} else {
			code = m.Run()
			if os.Getenv("E2E_KEEP") != "" {
				keep(c)
			}
			if err := c.drain(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: FAIL: drain:", err)
				code = 1
			}
		}
		if leaks := c.stop(); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: the suite left behind:\n  %s\n", strings.Join(leaks, "\n  "))
			code = 1
		}
		if code == 0 {
			os.RemoveAll(dir)
			if c.env != nil {
				os.RemoveAll(c.env.Dir)
			}
		} else {
			fmt.Fprintf(os.Stderr, "e2e: logs kept in %s (etcd, kube-apiserver, kubelet) and %s (containerd)\n", dir, c.env.Dir)
		}
		return code
	}())
}

// keep leaves the cluster up, for a look by hand, until SIGINT or SIGTERM.
func keep(c *cluster) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	fmt.Fprintf(os.Stderr, "e2e: the cluster stays up (E2E_KEEP); interrupt to tear it down:\n  export KUBECONFIG=%s PATH=%s\n  kubectl get nodes\n", c.kubeconfig, os.Getenv("PATH"))
	<-sigs
}

// requireCluster skips a test only when the cluster cannot run here.
func requireCluster(t *testing.T) context.Context {
	t.Helper()
	if skip != "" {
		t.Skip(skip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience(3*time.Minute))
	t.Cleanup(cancel)
	return ctx
}

// drain deletes the DaemonSets and pods the tests left, in every
// namespace, then waits for the kubelet's garbage collection (once a
// minute) to remove every sandbox and container of the deleted pods: what
// stays after that, stop reports.
func (c *cluster) drain() error {
	ctx, cancel := context.WithTimeout(context.Background(), patience(5*time.Minute))
	defer cancel()
	// A DaemonSet a failed test left makes its pod again as soon as it is
	// deleted: the wait below would last its whole deadline.
	sets, err := c.client.AppsV1().DaemonSets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, ds := range sets.Items {
		_ = c.client.AppsV1().DaemonSets(ds.Namespace).Delete(ctx, ds.Name, metav1.DeleteOptions{})
	}
	pods, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		grace := int64(1)
		_ = c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	}
	rt, done, err := criClient(c.env.Address)
	if err != nil {
		return err
	}
	defer done()
	for {
		pods, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		sbs, err2 := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
		if err == nil && err2 == nil && len(pods.Items) == 0 && len(sbs.Items) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return nil // stop names what is left
		}
		time.Sleep(time.Second)
	}
}

// testCRI is a CRI client of the cluster's containerd for the test.
func testCRI(t *testing.T) cri.RuntimeServiceClient {
	t.Helper()
	rt, done, err := criClient(c.env.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	return rt
}

func criClient(address string) (cri.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return cri.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

// seen holds every sandbox and container id the tests met, to look for
// them in runc's state afterwards (runc's root is shared with the host).
var seen = struct {
	sync.Mutex
	ids map[string]bool
}{ids: map[string]bool{}}

func record(ids ...string) {
	seen.Lock()
	defer seen.Unlock()
	for _, id := range ids {
		seen.ids[id] = true
	}
}

// runcLeftovers lists the ids met that runc still keeps state for.
func runcLeftovers() []string {
	seen.Lock()
	defer seen.Unlock()
	var leaks []string
	for id := range seen.ids {
		if _, err := os.Stat(filepath.Join("/run/containerd/runc/k8s.io", id)); err == nil {
			leaks = append(leaks, "runc container "+id)
		}
	}
	return leaks
}

// removeCRILeftovers stops and removes, through CRI, the sandboxes the
// kubelet left, naming each one as a leak.
func removeCRILeftovers(address string) []string {
	rt, done, err := criClient(address)
	if err != nil {
		return []string{"CRI: " + err.Error()}
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var leaks []string
	if cs, err := rt.ListContainers(ctx, &cri.ListContainersRequest{}); err == nil {
		for _, ctr := range cs.Containers {
			record(ctr.Id)
			leaks = append(leaks, fmt.Sprintf("container %s (%s of pod %s) left by the kubelet", ctr.Id, ctr.Metadata.GetName(), ctr.Labels["io.kubernetes.pod.name"]))
		}
	}
	sbs, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return append(leaks, "CRI: "+err.Error())
	}
	for _, sb := range sbs.Items {
		record(sb.Id)
		leaks = append(leaks, fmt.Sprintf("sandbox %s (pod %s, %s) left by the kubelet", sb.Id, sb.Metadata.GetName(), sb.State))
		if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			leaks = append(leaks, fmt.Sprintf("stop sandbox %s: %v", sb.Id, err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			leaks = append(leaks, fmt.Sprintf("remove sandbox %s: %v", sb.Id, err))
		}
	}
	return leaks
}

// sandboxOf is the one sandbox CRI holds for a pod, and its pid (the pause
// task's, or the pause container's for handler runc).
func sandboxOf(t *testing.T, ctx context.Context, uid string) (id string, pid int) {
	t.Helper()
	rt, done, err := criClient(c.env.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	sbs := sandboxesOf(t, ctx, rt, uid)
	if len(sbs) != 1 {
		t.Fatalf("pod %s has %d sandboxes, want 1: %v", uid, len(sbs), sandboxList(sbs))
	}
	id = sbs[0].Id
	st, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("sandbox %s: no pid in its verbose status (%v): %q", id, err, st.Info["info"])
	}
	return id, info.Pid
}

// sandboxesOf lists the sandboxes CRI holds for a pod.
func sandboxesOf(t *testing.T, ctx context.Context, rt cri.RuntimeServiceClient, uid string) []*cri.PodSandbox {
	t.Helper()
	sbs, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{Filter: &cri.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs.Items {
		record(sb.Id)
	}
	return sbs.Items
}

func sandboxList(sbs []*cri.PodSandbox) []string {
	var ids []string
	for _, sb := range sbs {
		ids = append(ids, sb.Id+" "+sb.State.String())
	}
	return ids
}

// sandboxState is the state CRI reports for a sandbox.
func sandboxState(t *testing.T, ctx context.Context, id string) cri.PodSandboxState {
	t.Helper()
	rt, done, err := criClient(c.env.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	st, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.State
}
