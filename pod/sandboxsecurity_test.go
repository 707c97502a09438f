package pod

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

// kubeletSandbox is a PodSandboxConfig as the kubelet sends it: the sandbox's
// seccomp forced to RuntimeDefault, privileged when a container is, and the
// pod's securityContext in sc.
func kubeletSandbox(sc *cri.LinuxSandboxSecurityContext) *cri.PodSandboxConfig {
	if sc.Seccomp == nil {
		sc.Seccomp = &cri.SecurityProfile{ProfileType: cri.SecurityProfile_RuntimeDefault}
	}
	if sc.NamespaceOptions == nil {
		sc.NamespaceOptions = &cri.NamespaceOption{Pid: cri.NamespaceMode_CONTAINER}
	}
	return &cri.PodSandboxConfig{
		Metadata: &cri.PodSandboxMetadata{Name: "web", Uid: "u", Namespace: "default"},
		Hostname: "web",
		Linux:    &cri.LinuxPodSandboxConfig{CgroupParent: "/kubepods/podu", SecurityContext: sc},
	}
}

// newCRIPod makes (without starting) a pod from a PodSandboxConfig on a
// runtime whose PauseUID and PauseGID are 4000 and 4001.
func newCRIPod(t *testing.T, pc *cri.PodSandboxConfig) (*Pod, error) {
	t.Helper()
	b, err := proto.Marshal(pc)
	if err != nil {
		t.Fatal(err)
	}
	o := options.Default()
	o.PauseUID, o.PauseGID = 4000, 4001
	return newPod(&Deps{Options: o}, Spec{ID: "sb", Namespace: "k8s.io", Bundle: t.TempDir(),
		Options: &anypb.Any{TypeUrl: criConfigType, Value: b}})
}

func podUserns() *cri.UserNamespace {
	return &cri.UserNamespace{Mode: cri.NamespaceMode_POD,
		Uids: []*cri.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}},
		Gids: []*cri.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}}}
}

// TestSandboxRunAsSetsPauseCredentials: the pod's run_as_user and
// run_as_group are the pause task's credentials, as they are the pause
// container's with runc; root is never taken (the runtime's PauseUID and
// PauseGID stand in: the pause task needs no privilege).
func TestSandboxRunAsSetsPauseCredentials(t *testing.T) {
	id := func(v int64) *cri.Int64Value { return &cri.Int64Value{Value: v} }
	for _, tc := range []struct {
		name     string
		sc       *cri.LinuxSandboxSecurityContext
		uid, gid uint32
	}{
		{"none given", &cri.LinuxSandboxSecurityContext{}, 4000, 4001},
		{"run_as_user", &cri.LinuxSandboxSecurityContext{RunAsUser: id(1234)}, 1234, 4001},
		{"run_as_user and run_as_group", &cri.LinuxSandboxSecurityContext{RunAsUser: id(1234), RunAsGroup: id(2345)}, 1234, 2345},
		{"root", &cri.LinuxSandboxSecurityContext{RunAsUser: id(0), RunAsGroup: id(0)}, 4000, 4001},
		{"in the pod's user namespace", &cri.LinuxSandboxSecurityContext{RunAsUser: id(1000), RunAsGroup: id(1001),
			NamespaceOptions: &cri.NamespaceOption{UsernsOptions: podUserns()}}, 1000, 1001},
		{"root of the pod's user namespace", &cri.LinuxSandboxSecurityContext{RunAsUser: id(0), RunAsGroup: id(0),
			NamespaceOptions: &cri.NamespaceOption{UsernsOptions: podUserns()}}, 4000, 4001},
	} {
		p, err := newCRIPod(t, kubeletSandbox(tc.sc))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if p.pauseCfg.UID != tc.uid || p.pauseCfg.GID != tc.gid {
			t.Errorf("%s: the pause task runs as %d:%d, want %d:%d", tc.name, p.pauseCfg.UID, p.pauseCfg.GID, tc.uid, tc.gid)
		}
	}
}

// TestSandboxSecurityRefusals: what the pause task cannot honour is refused
// at CreateSandbox with an error naming the field, instead of dropped.
func TestSandboxSecurityRefusals(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	id := func(v int64) *cri.Int64Value { return &cri.Int64Value{Value: v} }
	seccomp := func(typ cri.SecurityProfile_ProfileType, ref string) *cri.SecurityProfile {
		return &cri.SecurityProfile{ProfileType: typ, LocalhostRef: ref}
	}
	for _, tc := range []struct {
		name  string
		sc    *cri.LinuxSandboxSecurityContext
		field string
		kind  func(error) bool
	}{
		{"run_as_group without run_as_user", &cri.LinuxSandboxSecurityContext{RunAsGroup: id(1000)}, "run_as_group", errdefs.IsInvalidArgument},
		{"negative run_as_user", &cri.LinuxSandboxSecurityContext{RunAsUser: id(-1)}, "run_as_user", errdefs.IsInvalidArgument},
		{"run_as_user out of range", &cri.LinuxSandboxSecurityContext{RunAsUser: id(1 << 32)}, "run_as_user", errdefs.IsInvalidArgument},
		{"run_as_user the kernel's no id", &cri.LinuxSandboxSecurityContext{RunAsUser: id(1<<32 - 1)}, "run_as_user", errdefs.IsInvalidArgument},
		{"negative run_as_group", &cri.LinuxSandboxSecurityContext{RunAsUser: id(1000), RunAsGroup: id(-5)}, "run_as_group", errdefs.IsInvalidArgument},
		{"run_as_user unmapped", &cri.LinuxSandboxSecurityContext{RunAsUser: id(70000),
			NamespaceOptions: &cri.NamespaceOption{UsernsOptions: podUserns()}}, "run_as_user", errdefs.IsInvalidArgument},
		{"run_as_group unmapped", &cri.LinuxSandboxSecurityContext{RunAsUser: id(1000), RunAsGroup: id(65536),
			NamespaceOptions: &cri.NamespaceOption{UsernsOptions: podUserns()}}, "run_as_group", errdefs.IsInvalidArgument},
		{"seccomp Localhost", &cri.LinuxSandboxSecurityContext{Seccomp: seccomp(cri.SecurityProfile_Localhost, profile)}, "seccomp", errdefs.IsInvalidArgument},
		{"seccomp reference without Localhost", &cri.LinuxSandboxSecurityContext{Seccomp: seccomp(cri.SecurityProfile_RuntimeDefault, profile)}, "seccomp", errdefs.IsInvalidArgument},
		{"seccomp unknown type", &cri.LinuxSandboxSecurityContext{Seccomp: seccomp(7, "")}, "seccomp", errdefs.IsInvalidArgument},
		{"seccomp_profile_path localhost", &cri.LinuxSandboxSecurityContext{Seccomp: nil, SeccompProfilePath: "localhost/" + profile}, "seccomp_profile_path", errdefs.IsInvalidArgument},
		{"seccomp_profile_path unknown", &cri.LinuxSandboxSecurityContext{SeccompProfilePath: "strict"}, "seccomp_profile_path", errdefs.IsInvalidArgument},
		{"apparmor Localhost", &cri.LinuxSandboxSecurityContext{Apparmor: seccomp(cri.SecurityProfile_Localhost, "k8s-deny-write")}, "apparmor", errdefs.IsInvalidArgument},
		{"apparmor reference without Localhost", &cri.LinuxSandboxSecurityContext{Apparmor: seccomp(cri.SecurityProfile_Unconfined, "x")}, "apparmor", errdefs.IsInvalidArgument},
		{"apparmor unknown type", &cri.LinuxSandboxSecurityContext{Apparmor: seccomp(9, "")}, "apparmor", errdefs.IsInvalidArgument},
	} {
		pc := kubeletSandbox(tc.sc)
		if tc.name == "seccomp_profile_path localhost" || tc.name == "seccomp_profile_path unknown" {
			pc.Linux.SecurityContext.Seccomp = nil // the deprecated path counts only without it
		}
		_, err := newCRIPod(t, pc)
		t.Logf("%s: %v", tc.name, err)
		if !tc.kind(err) || !strings.Contains(errText(err), tc.field) {
			t.Errorf("%s: got %v, want an error of its kind naming %s", tc.name, err, tc.field)
		}
	}
}

// errText is err's text, or "" for no error.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSandboxSELinuxLabel: where SELinux is enabled the pause task cannot
// take the pod's label, and says so; where it is disabled a label is
// accepted and ignored, as runc does.
func TestSandboxSELinuxLabel(t *testing.T) {
	label := &cri.LinuxSandboxSecurityContext{SelinuxOptions: &cri.SELinuxOption{Type: "container_t", Level: "s0:c1,c2"}}
	defer func(f func() bool) { selinuxEnabled = f }(selinuxEnabled)

	selinuxEnabled = func() bool { return true }
	_, err := newCRIPod(t, kubeletSandbox(label))
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(errText(err), "selinux_options") {
		t.Errorf("a label where SELinux is enabled: got %v, want FailedPrecondition naming selinux_options", err)
	}
	if _, err := newCRIPod(t, kubeletSandbox(&cri.LinuxSandboxSecurityContext{SelinuxOptions: &cri.SELinuxOption{}})); err != nil {
		t.Errorf("an empty label where SELinux is enabled: %v", err)
	}

	selinuxEnabled = func() bool { return false }
	if _, err := newCRIPod(t, kubeletSandbox(label)); err != nil {
		t.Errorf("a label where SELinux is disabled: %v", err)
	}
}

// TestSandboxSecurityAccepted: what a kubelet sends for ordinary pods, and
// what the pause task meets by being what it is, starts the pod.
func TestSandboxSecurityAccepted(t *testing.T) {
	defer func(f func() bool) { selinuxEnabled = f }(selinuxEnabled)
	selinuxEnabled = func() bool { return false }
	for _, tc := range []struct {
		name string
		sc   *cri.LinuxSandboxSecurityContext
	}{
		{"kubelet default", &cri.LinuxSandboxSecurityContext{}},
		{"privileged", &cri.LinuxSandboxSecurityContext{Privileged: true}},
		{"read-only root and groups", &cri.LinuxSandboxSecurityContext{ReadonlyRootfs: true, SupplementalGroups: []int64{2000, 3000},
			SupplementalGroupsPolicy: cri.SupplementalGroupsPolicy_Strict}},
		{"seccomp Unconfined", &cri.LinuxSandboxSecurityContext{Seccomp: &cri.SecurityProfile{ProfileType: cri.SecurityProfile_Unconfined}}},
		{"apparmor RuntimeDefault", &cri.LinuxSandboxSecurityContext{Apparmor: &cri.SecurityProfile{ProfileType: cri.SecurityProfile_RuntimeDefault}}},
		{"apparmor Unconfined", &cri.LinuxSandboxSecurityContext{Apparmor: &cri.SecurityProfile{ProfileType: cri.SecurityProfile_Unconfined}}},
		{"SELinux label, SELinux disabled", &cri.LinuxSandboxSecurityContext{SelinuxOptions: &cri.SELinuxOption{Level: "s0:c1,c2"}}},
	} {
		if _, err := newCRIPod(t, kubeletSandbox(tc.sc)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	for _, path := range []string{"", "runtime/default", "docker/default", "unconfined"} {
		pc := kubeletSandbox(&cri.LinuxSandboxSecurityContext{SeccompProfilePath: path})
		pc.Linux.SecurityContext.Seccomp = nil
		if _, err := newCRIPod(t, pc); err != nil {
			t.Errorf("seccomp_profile_path %q: %v", path, err)
		}
	}
}
