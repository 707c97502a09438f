//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestShareProcessNamespace: with shareProcessNamespace the pod's PID 1 is
// its pause process and the containers see each other; without it each
// container is PID 1 of its own namespace.
func TestShareProcessNamespace(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		for _, share := range []bool{true, false} {
			pod := newPod(fmt.Sprintf("sharepid-%t", share), handler,
				sh("a", `trap "exit 0" TERM; sleep 3601 & wait`), sh("b", idle))
			pod.Spec.ShareProcessNamespace = ptr(share)
			pod = createPod(t, ctx, pod)
			waitPod(t, ctx, pod.Name, "Ready", ready)
			out, err := c.exec(ctx, pod.Name, "b", "sh", "-c", "cat /proc/1/comm; ps -o args")
			if err != nil {
				t.Fatalf("exec: %v: %s", err, out)
			}
			pid1 := strings.SplitN(out, "\n", 2)[0]
			seesA := strings.Contains(out, "sleep 3601")
			if share && (pid1 != "pause" || !seesA) {
				t.Errorf("shared PID namespace: PID 1 is %q, container a seen: %t, want pause and true:\n%s", pid1, seesA, out)
			}
			if !share && (pid1 != "sh" || seesA) {
				t.Errorf("own PID namespaces: PID 1 is %q, container a seen: %t, want sh and false:\n%s", pid1, seesA, out)
			}
		}
	})
}

// TestHostNetworkAndSysctls: a host-network pod is in the host's network
// and UTS namespaces; a pod's namespaced sysctls are set in its own.
func TestHostNetworkAndSysctls(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		host := newPod("hostnet", handler, sh("app", idle))
		host.Spec.HostNetwork = true
		host = createPod(t, ctx, host)
		sysctl := newPod("sysctls", handler, sh("app", idle))
		sysctl.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{
			{Name: "net.ipv4.ip_unprivileged_port_start", Value: "1000"}, {Name: "kernel.shm_rmid_forced", Value: "1"}}}
		sysctl = createPod(t, ctx, sysctl)

		waitPod(t, ctx, host.Name, "Ready", ready)
		hostNet, _ := os.Readlink("/proc/self/ns/net")
		hostName, _ := os.Hostname()
		if out, err := c.exec(ctx, host.Name, "app", "sh", "-c", "readlink /proc/self/ns/net; hostname"); err != nil || out != hostNet+"\n"+hostName+"\n" {
			t.Errorf("host-network pod: %v: %q, want %q and %q", err, out, hostNet, hostName)
		}
		waitPod(t, ctx, sysctl.Name, "Ready", ready)
		if out, err := c.exec(ctx, sysctl.Name, "app", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/shm_rmid_forced"); err != nil || out != "1000\n1\n" {
			t.Errorf("pod sysctls: %v: %q, want 1000 and 1", err, out)
		}
		if out, err := c.exec(ctx, sysctl.Name, "app", "readlink", "/proc/self/ns/net"); err != nil || out == hostNet+"\n" {
			t.Errorf("sysctl pod's network namespace: %v: %q, the host's is %q", err, out, hostNet)
		}
	})
}

// TestEmptyDirShared: a file one container writes in an emptyDir, the
// other reads.
func TestEmptyDirShared(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		writer := sh("writer", `echo from-writer > /data/file; trap "exit 0" TERM; sleep 3600 & wait`)
		reader := sh("reader", idle)
		for _, ctr := range []*corev1.Container{&writer, &reader} {
			ctr.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}
		pod := newPod("emptydir", handler, writer, reader)
		pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		pod = createPod(t, ctx, pod)
		waitPod(t, ctx, pod.Name, "Ready", ready)
		var out string
		var err error
		for i := 0; i < 20; i++ {
			if out, err = c.exec(ctx, pod.Name, "reader", "cat", "/data/file"); err == nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil || out != "from-writer\n" {
			t.Errorf("reader: %v: %q", err, out)
		}
	})
}
