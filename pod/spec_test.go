package pod

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/proc"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

func nsMap(spec *specs.Spec) map[specs.LinuxNamespaceType]string {
	m := map[specs.LinuxNamespaceType]string{}
	for _, ns := range spec.Linux.Namespaces {
		m[ns.Type] = ns.Path
	}
	return m
}

// rewriteForPod runs joinPod's rewrite (rewriteSpecJSON) on spec, through
// its JSON as joinPod reads it.
func rewriteForPod(spec *specs.Spec, _ string, pausePid int, cfg *podConfig, cgroupsPath string) {
	data, err := json.Marshal(spec)
	if err != nil {
		panic(err)
	}
	out, _, err := rewriteSpecJSON(data, pausePid, cfg, cgroupsPath)
	if err != nil {
		panic(err)
	}
	*spec = specs.Spec{}
	if err := json.Unmarshal(out, spec); err != nil {
		panic(err)
	}
}

func ctrSpec() *specs.Spec {
	return &specs.Spec{Hostname: "own", Linux: &specs.Linux{
		CgroupsPath: "/default/c1",
		Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
			{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}},
	}}
}

func TestRewriteJoinsPodNamespaces(t *testing.T) {
	spec := ctrSpec()
	rewriteForPod(spec, "c1", 42, &podConfig{SharePID: true}, "/default/pod/c1")
	ns := nsMap(spec)
	for typ, want := range map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: "/proc/42/ns/net", specs.IPCNamespace: "/proc/42/ns/ipc",
		specs.UTSNamespace: "/proc/42/ns/uts", specs.PIDNamespace: "/proc/42/ns/pid", specs.MountNamespace: "",
	} {
		if got, ok := ns[typ]; !ok || got != want {
			t.Errorf("%s namespace: %q (present %v), want %q", typ, got, ok, want)
		}
	}
	if spec.Hostname != "" {
		t.Errorf("hostname %q kept: it would rename the pod", spec.Hostname)
	}
	if spec.Linux.CgroupsPath != "/default/pod/c1" {
		t.Errorf("cgroupsPath %q, want under the pod", spec.Linux.CgroupsPath)
	}
}

func TestRewriteHostNamespacesAndOwnPID(t *testing.T) {
	spec := ctrSpec()
	rewriteForPod(spec, "c1", 42, &podConfig{HostNetwork: true, HostUTS: true}, "")
	ns := nsMap(spec)
	if _, ok := ns[specs.NetworkNamespace]; ok {
		t.Error("a container of a host-network pod must share the host's network")
	}
	if _, ok := ns[specs.UTSNamespace]; ok {
		t.Error("a container of a host-UTS pod must share the host's UTS namespace")
	}
	if p, ok := ns[specs.PIDNamespace]; !ok || p != "" {
		t.Errorf("pid namespace not shared in the pod: want a new one, got %q (present %v)", p, ok)
	}
	if spec.Linux.CgroupsPath != "/default/c1" {
		t.Errorf("cgroupsPath changed without a pod cgroup: %q", spec.Linux.CgroupsPath)
	}
}

func TestCRIContainerMayNotJoinHostNamespaces(t *testing.T) {
	joined := func() *specs.Spec {
		return &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.NetworkNamespace, Path: "/proc/9/ns/net"}, {Type: specs.IPCNamespace, Path: "/proc/9/ns/ipc"},
			{Type: specs.UTSNamespace, Path: "/proc/9/ns/uts"}, {Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
		}}}
	}
	if err := checkPodMembership(joined(), &podConfig{}); err != nil {
		t.Errorf("a container joined to its pod: %v", err)
	}
	spec := joined()
	spec.Linux.Namespaces = withoutNamespace(spec.Linux.Namespaces, specs.NetworkNamespace)
	if err := checkPodMembership(spec, &podConfig{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("host network in an isolated pod: %v", err)
	}
	if err := checkPodMembership(spec, &podConfig{HostNetwork: true}); err != nil {
		t.Errorf("host network in a host-network pod: %v", err)
	}
	spec = joined()
	spec.Linux.Namespaces = withoutNamespace(spec.Linux.Namespaces, specs.PIDNamespace)
	if err := checkPodMembership(spec, &podConfig{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("host PID in an isolated pod: %v", err)
	}
}

func TestJoinPodLeavesCRIContainers(t *testing.T) {
	dir := t.TempDir()
	spec := ctrSpec()
	spec.Annotations = map[string]string{criContainerType: "container"}
	data, _ := json.Marshal(spec)
	path := filepath.Join(dir, "config.json")
	os.WriteFile(path, data, 0o600)
	if _, err := joinPod(path, "c1", &Pod{cfg: &podConfig{}}, 0); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(data) {
		t.Error("a CRI container's spec was rewritten: CRI sets its own joins")
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := joinPod(path, "c1", &Pod{cfg: &podConfig{}}, 0); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed spec: %v", err)
	}
}

func TestPodConfigFromCRI(t *testing.T) {
	pc := &cri.PodSandboxConfig{Hostname: "web", Linux: &cri.LinuxPodSandboxConfig{
		CgroupParent: "/kubepods/pod1",
		Sysctls:      map[string]string{"net.core.somaxconn": "1024"},
		SecurityContext: &cri.LinuxSandboxSecurityContext{NamespaceOptions: &cri.NamespaceOption{
			Network: cri.NamespaceMode_POD, Pid: cri.NamespaceMode_CONTAINER, Ipc: cri.NamespaceMode_NODE,
		}},
	}}
	data, _ := proto.Marshal(pc)
	cfg, err := parsePodConfig(&anypb.Any{TypeUrl: criConfigType, Value: data}, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.FromCRI || cfg.Hostname != "web" || cfg.HostNetwork || !cfg.HostIPC || cfg.SharePID || cfg.HostPID ||
		cfg.CgroupParent != "/kubepods/pod1" || cfg.Sysctls["net.core.somaxconn"] != "1024" {
		t.Errorf("config %+v", cfg)
	}
	l, err := cgroupLayout("sb", "k8s.io", cfg, false)
	if err != nil || l.PodCgroup != "/kubepods/pod1" || l.PauseCgroup != "/kubepods/pod1/sb" || l.OwnsPodCgroup || l.Systemd() {
		t.Errorf("cgroup layout %+v %v: the kubelet owns the pod cgroup", l, err)
	}
	if _, err := parsePodConfig(&anypb.Any{TypeUrl: criConfigType, Value: []byte{0xff}}, t.TempDir(), ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed options: %v", err)
	}
	if _, err := parsePodConfig(&anypb.Any{TypeUrl: "x.Other"}, t.TempDir(), ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("options of another type: %v", err)
	}
}

func TestPodConfigFromBundle(t *testing.T) {
	dir := t.TempDir()
	cfg, err := parsePodConfig(nil, dir, "")
	if err != nil || cfg.HostNetwork || cfg.HostPID || !cfg.SharePID {
		t.Fatalf("no spec: want an isolated pod, got %+v %v", cfg, err)
	}
	write := func(s *specs.Spec) {
		data, _ := json.Marshal(s)
		os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
	}
	write(&specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.IPCNamespace}}}})
	cfg, err = parsePodConfig(nil, dir, "")
	if err != nil || !cfg.HostNetwork || cfg.HostIPC || !cfg.HostPID || !cfg.HostUTS {
		t.Errorf("spec with only ipc: %+v %v", cfg, err)
	}
	write(&specs.Spec{Hostname: "x", Linux: &specs.Linux{}})
	if _, err := parsePodConfig(nil, dir, ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("hostname without a UTS namespace: %v", err)
	}
	if _, err := parsePodConfig(nil, t.TempDir(), "/proc/self/ns/net"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("host netns: %v", err)
	}
	if _, err := parsePodConfig(nil, t.TempDir(), "/proc/self/ns/ipc"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ipc namespace as netns: %v", err)
	}
	l, err := cgroupLayout("p1", "default", &podConfig{}, false)
	if err != nil || l.PodCgroup != "/default/p1" || l.PauseCgroup != "/default/p1/pause" || !l.OwnsPodCgroup {
		t.Errorf("default cgroup layout %+v %v", l, err)
	}
}

func TestProcStartTime(t *testing.T) {
	a, err := proc.StartTime(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("%d %v", a, err)
	}
	if b, _ := proc.StartTime(os.Getpid()); a != b {
		t.Errorf("start time changed: %d %d", a, b)
	}
	if _, err := proc.StartTime(1 << 30); err == nil {
		t.Error("no error for a pid that does not exist")
	}
}

// FuzzRewriteForPod: whatever container spec arrives, the rewrite leaves
// exactly one entry per pod namespace, pointing at the pause task's, and
// never panics.
func FuzzRewriteForPod(f *testing.F) {
	seed, _ := json.Marshal(ctrSpec())
	f.Add(seed, false, false)
	f.Add([]byte(`{"linux":{"namespaces":[{"type":"network","path":"/x"},{"type":"network"}]}}`), true, false)
	f.Fuzz(func(t *testing.T, data []byte, hostNet, hostPID bool) {
		var spec specs.Spec
		if json.Unmarshal(data, &spec) != nil || spec.Linux == nil {
			return
		}
		cfg := &podConfig{HostNetwork: hostNet, HostUTS: hostNet, HostPID: hostPID, SharePID: !hostPID}
		rewriteForPod(&spec, "c", 7, cfg, "/pod/c")
		count := map[specs.LinuxNamespaceType]int{}
		for _, ns := range spec.Linux.Namespaces {
			count[ns.Type]++
			if ns.Type == specs.NetworkNamespace && ns.Path != "/proc/7/ns/net" {
				t.Fatalf("network namespace %q", ns.Path)
			}
		}
		if want := map[bool]int{false: 1, true: 0}[hostNet]; count[specs.NetworkNamespace] != want || count[specs.IPCNamespace] != 1 {
			t.Fatalf("namespaces %+v", spec.Linux.Namespaces)
		}
	})
}

// FuzzPodConfigFromBundle: a sandbox spec either parses or is refused as
// invalid; nothing panics.
func FuzzPodConfigFromBundle(f *testing.F) {
	f.Add([]byte(`{"hostname":"p","linux":{"namespaces":[{"type":"network"},{"type":"uts"}],"sysctl":{"net.core.somaxconn":"1"}}}`))
	f.Add([]byte(`{"linux":{"namespaces":[{"type":"ipc","path":"/proc/1/ns/ipc"}]}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := fromBundle(dir); err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error of another kind: %v", err)
		}
	})
}

// TestSystemdCgroupLayout: under the systemd driver the pause task goes in
// cri-containerd-<id>.scope in the pod's slice (the kubelet's, given as a
// name or as its expanded path), and the slice's path is the pod's cgroup.
func TestSystemdCgroupLayout(t *testing.T) {
	for _, parent := range []string{
		"kubepods-besteffort-pod1234.slice",
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice",
	} {
		l, err := cgroupLayout("sb", "k8s.io", &podConfig{CgroupParent: parent, FromCRI: true}, false)
		if err != nil {
			t.Fatal(err)
		}
		want := cgroups.Layout{
			PodCgroup: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice",
			PodSlice:  "kubepods-besteffort-pod1234.slice", PauseUnit: "cri-containerd-sb.scope",
		}
		if l != want {
			t.Errorf("parent %s: layout %+v, want %+v", parent, l, want)
		}
	}
	// Guaranteed pods sit right under kubepods.slice.
	l, _ := cgroupLayout("sb", "k8s.io", &podConfig{CgroupParent: "kubepods-pod99.slice"}, false)
	if l.PodCgroup != "/kubepods.slice/kubepods-pod99.slice" {
		t.Errorf("guaranteed pod cgroup %s", l.PodCgroup)
	}
	// A pod of the shim's own under SystemdCgroup: a slice it starts and
	// stops, escaped so that dashes in ids open no level.
	l, err := cgroupLayout("my-pod", "default", &podConfig{}, true)
	if err != nil || l.PodUnit != `pause-default_my\x2dpod.slice` || l.PauseUnit != "cri-containerd-my-pod.scope" ||
		l.PodCgroup != `/pause.slice/pause-default_my\x2dpod.slice` {
		t.Errorf("own pod under SystemdCgroup: %+v %v", l, err)
	}
	if got := l.ContainerCgroup("c1"); got != `pause-default_my\x2dpod.slice:cri-containerd:c1` {
		t.Errorf("container of a systemd pod: %s", got)
	}
	if _, err := cgroupLayout("p", "default", &podConfig{CgroupsPath: "system.slice:pause:p"}, false); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a pod cgroupsPath naming a scope: %v", err)
	}
	for _, bad := range []string{"x.scope", "a--b.slice", "-a.slice", ".slice"} {
		if _, err := cgroups.ExpandSlice(bad); err == nil {
			t.Errorf("cgroups.ExpandSlice(%q) accepted", bad)
		}
	}
	if p, _ := cgroups.ExpandSlice("-.slice"); p != "/" {
		t.Errorf("root slice: %s", p)
	}
}

// TestJoinPodKeepsUnknownSpecFields: the rewrite of a container's spec
// changes its namespaces, hostname and cgroup path and nothing else: fields
// newer than the runtime-spec this shim knows (at the top, under linux,
// under process, in a namespace entry it keeps) reach runc as they came.
func TestJoinPodKeepsUnknownSpecFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	in := `{"ociVersion":"1.9.0","hostname":"own","futureTop":{"a":[1,2,{"b":null}]},` +
		`"process":{"args":["sh"],"cwd":"/","futureProcess":"x","user":{"uid":0,"gid":0,"futureUser":7}},` +
		`"linux":{"cgroupsPath":"/default/c1","futureLinux":[1.50,"<&>"],` +
		`"namespaces":[{"type":"pid"},{"type":"mount","futureNS":true},{"type":"network"}],` +
		`"resources":{"futureResource":{"max":5}}}}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Pod{cfg: &podConfig{SharePID: true}, pause: &pause.Process{Pid: 42}, rec: record{Layout: cgroups.Layout{PodCgroup: "/default/pod"}}}
	cgroupsPath, err := joinPod(path, "c1", p, p.pause.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if cgroupsPath != "/default/pod/c1" {
		t.Errorf("cgroupsPath %q", cgroupsPath)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	var linux, process map[string]json.RawMessage
	_ = json.Unmarshal(out["linux"], &linux)
	_ = json.Unmarshal(out["process"], &process)
	for _, kept := range []struct{ where, got, want string }{
		{"top", string(out["futureTop"]), `{"a":[1,2,{"b":null}]}`},
		{"ociVersion", string(out["ociVersion"]), `"1.9.0"`},
		{"process", string(process["futureProcess"]), `"x"`},
		{"process.user", string(process["user"]), `{"uid":0,"gid":0,"futureUser":7}`},
		{"linux", string(linux["futureLinux"]), `[1.50,"<&>"]`},
		{"linux.resources", string(linux["resources"]), `{"futureResource":{"max":5}}`},
		{"linux.cgroupsPath", string(linux["cgroupsPath"]), `"/default/pod/c1"`},
	} {
		if kept.got != kept.want {
			t.Errorf("%s: %s, want %s", kept.where, kept.got, kept.want)
		}
	}
	if _, ok := out["hostname"]; ok {
		t.Error("the container's hostname is kept: it would rename the pod")
	}
	var ns []map[string]any
	if err := json.Unmarshal(linux["namespaces"], &ns); err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, n := range ns {
		got[n["type"].(string)] = n
	}
	if m, ok := got["mount"].(map[string]any); !ok || m["futureNS"] != true {
		t.Errorf("the mount namespace entry lost its fields: %v", got["mount"])
	}
	for typ, want := range map[string]string{"network": "/proc/42/ns/net", "ipc": "/proc/42/ns/ipc", "uts": "/proc/42/ns/uts", "pid": "/proc/42/ns/pid"} {
		if n, ok := got[typ].(map[string]any); !ok || n["path"] != want {
			t.Errorf("%s namespace: %v, want path %s", typ, got[typ], want)
		}
	}
}

// FuzzRewriteSpecJSON: whatever spec bytes arrive, the rewrite never
// panics, refuses only as InvalidArgument, and keeps every top-level key
// but the hostname as it came.
func FuzzRewriteSpecJSON(f *testing.F) {
	seed, _ := json.Marshal(ctrSpec())
	f.Add(seed)
	f.Add([]byte(`{"ociVersion":"1.9.0","future":{"x":"<&>"},"linux":{"namespaces":[{"type":"mount","future":1},{"type":"pid"}],"future":[1.50]}}`))
	f.Add([]byte(`{"linux":{"namespaces":null,"cgroupsPath":7}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _, err := rewriteSpecJSON(data, 7, &podConfig{SharePID: true}, "/pod/c")
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		var in, got map[string]json.RawMessage
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatalf("accepted a spec that is no JSON object: %v", err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("wrote a spec that is no JSON object: %v", err)
		}
		for k, v := range in {
			if k == "hostname" || k == "linux" {
				continue
			}
			var a, b bytes.Buffer
			_ = json.Compact(&a, v)
			_ = json.Compact(&b, got[k])
			if a.String() != b.String() {
				t.Fatalf("key %q: %s, want %s", k, b.String(), a.String())
			}
		}
		if _, ok := got["hostname"]; ok {
			t.Fatal("hostname kept")
		}
	})
}
