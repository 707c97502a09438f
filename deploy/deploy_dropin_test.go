package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

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
