package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRISandboxSecurityContext: through CRI, the pod's run_as_user and
// run_as_group are the pause task's credentials, and a sandbox seccomp
// profile the pause task cannot take fails RunPodSandbox naming the field.
func TestCRISandboxSecurityContext(t *testing.T) {
	ctx := requireEnv(t)
	rt, _ := criClients(t)

	config := podConfig(t, "runas", false)
	sc := config.Linux.SecurityContext
	sc.RunAsUser, sc.RunAsGroup = &cri.Int64Value{Value: 1234}, &cri.Int64Value{Value: 2345}
	sc.Seccomp = &cri.SecurityProfile{ProfileType: cri.SecurityProfile_RuntimeDefault}
	sc.SupplementalGroups = []int64{3000}
	pod := runCRIPod(t, ctx, rt, config, "pause")
	procStatus, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pod.pausePid(t, ctx)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Uid": "1234 1234 1234 1234", "Gid": "2345 2345 2345 2345", "Groups": ""}
	for _, line := range strings.Split(string(procStatus), "\n") {
		key, value, _ := strings.Cut(line, ":")
		if w, ok := want[key]; ok && strings.Join(strings.Fields(value), " ") != w {
			t.Errorf("pause task's %s: %q, want %q", key, value, w)
		}
	}

	refused := podConfig(t, "localhost-seccomp", false)
	refused.Linux.SecurityContext.Seccomp = &cri.SecurityProfile{ProfileType: cri.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/none.json"}
	resp, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: refused, RuntimeHandler: "pause"})
	if err == nil {
		_, _ = rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		_, _ = rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		t.Fatal("a Localhost seccomp profile for the sandbox was accepted")
	}
	t.Logf("refused: %v", err)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "linux.security_context.seccomp") {
		t.Errorf("RunPodSandbox error is not InvalidArgument naming the field: %v", err)
	}
}
