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

func TestRuntimeClass(t *testing.T) {
	var rc nodev1.RuntimeClass
	decodeStrict(t, "runtimeclass.yaml", &rc)
	if rc.APIVersion != "node.k8s.io/v1" || rc.Kind != "RuntimeClass" || rc.Handler != "pause" {
		t.Errorf("runtime class %s/%s handler %q", rc.APIVersion, rc.Kind, rc.Handler)
	}
	mem := rc.Overhead.PodFixed["memory"]
	if rc.Overhead == nil || mem.Cmp(resource.MustParse("5Mi")) < 0 {
		t.Errorf("overhead %v: want at least the measured 5.3 MB per pod", rc.Overhead)
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

// TestContainerdDropIn: the drop-in is valid TOML declaring the CRI handler
// pause in shim mode without a pause image.
func TestContainerdDropIn(t *testing.T) {
	data, err := os.ReadFile("containerd-pause.toml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Version int `toml:"version"`
		Plugins map[string]struct {
			Containerd struct {
				Runtimes map[string]struct {
					RuntimeType           string `toml:"runtime_type"`
					Sandboxer             string `toml:"sandboxer"`
					DisablePauseImagePull bool   `toml:"disable_pause_image_pull"`
				} `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"plugins"`
	}
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	r := cfg.Plugins["io.containerd.cri.v1.runtime"].Containerd.Runtimes["pause"]
	if cfg.Version != 3 || r.RuntimeType != "io.containerd.pause.v2" || r.Sandboxer != "shim" || !r.DisablePauseImagePull {
		t.Errorf("drop-in: version %d, runtime %+v", cfg.Version, r)
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
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
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
