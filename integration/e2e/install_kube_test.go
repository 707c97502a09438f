//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// helmOK runs helm on the cluster as its admin, with its caches in the
// cluster's directory and the context's deadline as its own.
func helmOK(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	deadline, _ := ctx.Deadline()
	args = append([]string{"--kubeconfig", c.kubeconfig}, args...)
	args = append(args, fmt.Sprintf("--timeout=%ds", int(time.Until(deadline).Seconds())))
	cmd := exec.CommandContext(ctx, "helm", args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(c.dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(c.dir, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(c.dir, "helm", "data"))
	if out, err := cmd.CombinedOutput(); err != nil {
		pods, _ := c.kubectl(context.Background(), nil, "-n", installNS, "describe", "pods")
		logs, _ := c.kubectl(context.Background(), nil, "-n", installNS, "logs", "-l", "app.kubernetes.io/part-of=containerd-shim-pause-v2", "--all-containers", "--tail=30")
		t.Fatalf("helm %s: %v: %s\npods:\n%s\nlogs:\n%s", strings.Join(args, " "), err, out, pods, logs)
	}
}

// apiHostPort splits the API server's URL.
func apiHostPort(t *testing.T, server string) (string, string) {
	t.Helper()
	host, port, ok := strings.Cut(strings.TrimPrefix(server, "https://"), ":")
	if !ok {
		t.Fatalf("API server %q: no port", server)
	}
	return host, port
}

// withAPIServer copies the manifests of dir (its files, not its
// subdirectories) to a directory of the test's, where the installer's
// containers reach the API server at server: this cluster has no
// kube-proxy, so the kubernetes Service's address leads nowhere, as on
// clusters that replace kube-proxy, whose operators set the same two
// variables. Nothing else changes.
func withAPIServer(t *testing.T, dir, server string) string {
	t.Helper()
	host, port := apiHostPort(t, server)
	out := filepath.Join(c.dir, "manifests-"+filepath.Base(dir))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	patched := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, key := range []string{"env:\n", "env: &env\n"} {
			extra := fmt.Sprintf("            - name: KUBERNETES_SERVICE_HOST\n              value: %q\n            - name: KUBERNETES_SERVICE_PORT\n              value: %q\n", host, port)
			n := strings.Count(s, "          "+key)
			s = strings.ReplaceAll(s, "          "+key, "          "+key+extra)
			patched += n
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if patched == 0 {
		t.Fatalf("no container env list in %s to add the API server's address to", dir)
	}
	return out
}

func kubectlOK(t *testing.T, ctx context.Context, args ...string) {
	t.Helper()
	if out, err := c.kubectl(ctx, nil, args...); err != nil {
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// rollout waits until every node runs the DaemonSet's current pod, Ready.
func rollout(t *testing.T, ctx context.Context, ds string) {
	t.Helper()
	rolloutIn(t, ctx, installNS, ds)
}

func rolloutIn(t *testing.T, ctx context.Context, ns, ds string) {
	t.Helper()
	deadline, _ := ctx.Deadline()
	timeout := fmt.Sprintf("--timeout=%ds", int(time.Until(deadline).Seconds()))
	if out, err := c.kubectl(ctx, nil, "-n", ns, "rollout", "status", "daemonset/"+ds, timeout); err != nil {
		pods, _ := c.kubectl(context.Background(), nil, "-n", ns, "describe", "pods")
		logs, _ := c.kubectl(context.Background(), nil, "-n", ns, "logs", "-l", "app.kubernetes.io/part-of=containerd-shim-pause-v2", "--all-containers", "--tail=30")
		t.Fatalf("daemonset %s did not roll out: %v: %s\npods:\n%s\nlogs:\n%s", ds, err, out, pods, logs)
	}
}

func nodeLabelled(t *testing.T, ctx context.Context) bool {
	t.Helper()
	node, err := c.client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node.Labels[readyLabel] == "true"
}
