// Package deploy holds the manifests and files that install the runtime on
// nodes; its test decodes them strictly with the Kubernetes API types.
package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

func decodeStrict(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// denseOverheadFloor is the PSS per pod make bench measured on a shim
// shared by 10 pods (753-762 kB); more pods share it for less.
const denseOverheadFloor = "762Ki"

// TestRuntimeClass: each RuntimeClass names its handler in the drop-in and
// declares at least the memory make bench measured per pod.
func TestRuntimeClass(t *testing.T) {
	for _, c := range []struct {
		file, name, measured string
		min                  resource.Quantity
	}{
		{"runtimeclass.yaml", "pause", "5.3 MB per pod", resource.MustParse("5Mi")},
		{"runtimeclass-dense.yaml", "pause-dense", "762 kB per pod with 10 pods on a shim", resource.MustParse(denseOverheadFloor)},
	} {
		var rc nodev1.RuntimeClass
		decodeStrict(t, c.file, &rc)
		if rc.APIVersion != "node.k8s.io/v1" || rc.Kind != "RuntimeClass" || rc.Name != c.name || rc.Handler != c.name {
			t.Errorf("%s: runtime class %s/%s %q handler %q", c.file, rc.APIVersion, rc.Kind, rc.Name, rc.Handler)
		}
		if _, ok := dropInRuntimes(t)[rc.Handler]; !ok {
			t.Errorf("%s: handler %q is not in the drop-in", c.file, rc.Handler)
		}
		if rc.Overhead == nil {
			t.Errorf("%s: no overhead", c.file)
			continue
		}
		mem := rc.Overhead.PodFixed["memory"]
		if mem.Cmp(c.min) < 0 {
			t.Errorf("%s: overhead %v: want at least %s (%s)", c.file, rc.Overhead, c.min.String(), c.measured)
		}
		if cpu := rc.Overhead.PodFixed["cpu"]; cpu.IsZero() {
			t.Errorf("%s: no cpu overhead", c.file)
		}
	}
}

func TestInstallerDaemonSet(t *testing.T) {
	var ds appsv1.DaemonSet
	decodeStrict(t, "installer.yaml", &ds)
	if ds.Kind != "DaemonSet" || ds.Spec.Selector == nil ||
		ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != ds.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Fatalf("daemon set selector does not match its pods: %+v", ds.Spec.Selector)
	}
	spec := ds.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || !strings.HasPrefix(spec.InitContainers[0].Image, "containerd-shim-pause-v2-installer:") {
		t.Fatalf("install container %+v", spec.InitContainers)
	}
	mounts := map[string]bool{}
	for _, m := range spec.InitContainers[0].VolumeMounts {
		mounts[m.MountPath] = true
	}
	for _, want := range []string{"/host/usr/local/bin", "/host/etc/containerd/conf.d"} {
		if !mounts[want] {
			t.Errorf("install container lacks the mount %s", want)
		}
	}
}

// dropInRuntime is a CRI runtime handler of the drop-in.
type dropInRuntime struct {
	RuntimeType           string         `toml:"runtime_type"`
	Sandboxer             string         `toml:"sandboxer"`
	DisablePauseImagePull bool           `toml:"disable_pause_image_pull"`
	Options               map[string]any `toml:"options"`
}

// dropInRuntimes decodes the drop-in strictly (version 3) and returns its
// CRI runtime handlers.
func dropInRuntimes(t *testing.T) map[string]dropInRuntime {
	t.Helper()
	data, err := os.ReadFile("containerd-pause.toml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Version int `toml:"version"`
		Plugins map[string]struct {
			Containerd struct {
				Runtimes map[string]dropInRuntime `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"plugins"`
	}
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 3 || len(cfg.Plugins) != 1 {
		t.Fatalf("drop-in: version %d, plugins %v", cfg.Version, cfg.Plugins)
	}
	return cfg.Plugins["io.containerd.cri.v1.runtime"].Containerd.Runtimes
}

// TestContainerdDropIn: the drop-in is valid TOML declaring the CRI
// handlers pause and pause-dense in shim mode without a pause image, the
// latter with pods sharing a shim (PodsPerShim = 0); its options table
// parses as the shim parses it.
func TestContainerdDropIn(t *testing.T) {
	runtimes := dropInRuntimes(t)
	if len(runtimes) != 2 {
		t.Errorf("drop-in handlers %v, want pause and pause-dense", runtimes)
	}
	for _, name := range []string{"pause", "pause-dense"} {
		r, ok := runtimes[name]
		if !ok || r.RuntimeType != "io.containerd.pause.v2" || r.Sandboxer != "shim" || !r.DisablePauseImagePull {
			t.Errorf("drop-in: runtime %s %+v", name, r)
		}
	}
	if o := runtimes["pause"].Options; o != nil {
		t.Errorf("pause: options %v, want the defaults (none)", o)
	}
	table, err := toml.Marshal(runtimes["pause-dense"].Options)
	if err != nil {
		t.Fatal(err)
	}
	o, err := options.Parse(table)
	if err != nil {
		t.Fatalf("pause-dense options: %v", err)
	}
	want := options.Default()
	want.PodsPerShim = 0
	if o.BinaryName, o.Root = "", ""; o != want {
		t.Errorf("pause-dense options %+v, want the defaults with PodsPerShim 0", o)
	}
}

// TestDropInDocumentsDefaults: the drop-in's commented options table names
// every runtime option with its default, as the shim parses it.
func TestDropInDocumentsDefaults(t *testing.T) {
	data, err := os.ReadFile("containerd-pause.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, example, found := strings.Cut(string(data), ".pause.options]\n")
	if !found {
		t.Fatal("no commented options table in the drop-in")
	}
	var table strings.Builder
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#") {
			break // the end of the commented table
		}
		line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		if value, _, _ := strings.Cut(line, " #"); value != "" {
			table.WriteString(value + "\n")
		}
	}
	o, err := options.Parse([]byte(table.String()))
	if err != nil {
		t.Fatalf("the documented options do not parse: %v\n%s", err, table.String())
	}
	if o.BinaryName != options.DefaultRuncBinary || o.Root != options.DefaultRuncRoot {
		t.Errorf("documented runc defaults %q %q, want %q %q", o.BinaryName, o.Root, options.DefaultRuncBinary, options.DefaultRuncRoot)
	}
	o.BinaryName, o.Root = "", ""
	if o != options.Default() {
		t.Errorf("documented options %+v, want the defaults %+v", o, options.Default())
	}
	for _, key := range options.Keys() {
		if !strings.Contains(table.String(), key+" = ") {
			t.Errorf("option %s is not documented in the drop-in", key)
		}
	}
}
