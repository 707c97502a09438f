package installer

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// runtimeTable is a CRI runtime handler as the drop-ins declare it.
type runtimeTable struct {
	RuntimeType           string         `toml:"runtime_type"`
	Sandboxer             string         `toml:"sandboxer"`
	DisablePauseImagePull bool           `toml:"disable_pause_image_pull"`
	Options               map[string]any `toml:"options"`
}

func decodeRuntimes(t *testing.T, data []byte) (int, map[string]runtimeTable) {
	t.Helper()
	var doc struct {
		Version int `toml:"version"`
		Plugins map[string]struct {
			Containerd struct {
				Runtimes map[string]runtimeTable `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"plugins"`
	}
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the drop-in is not TOML: %v\n%s", err, data)
	}
	return doc.Version, doc.Plugins["io.containerd.cri.v1.runtime"].Containerd.Runtimes
}

func TestRenderDropIn(t *testing.T) {
	const shim = "/opt/pause bin/containerd-shim-pause-v2"
	data := RenderDropIn(shim, []string{"pause", "pause-dense", "pause-two"}, 7)
	version, runtimes := decodeRuntimes(t, data)
	if version != 3 {
		t.Errorf("version %d", version)
	}
	if len(runtimes) != 3 {
		t.Fatalf("handlers %v", runtimes)
	}
	for name, r := range runtimes {
		if r.RuntimeType != shim || r.Sandboxer != "shim" || !r.DisablePauseImagePull {
			t.Errorf("handler %s: %+v", name, r)
		}
	}
	if got := runtimes["pause-dense"].Options["PodsPerShim"]; got != int64(7) {
		t.Errorf("pause-dense PodsPerShim = %v, want 7", got)
	}
	if runtimes["pause"].Options != nil || runtimes["pause-two"].Options != nil {
		t.Error("options on a handler other than pause-dense")
	}
}

// TestRenderDropInMatchesDeploy: the rendered drop-in declares the
// handlers of deploy/containerd-pause.toml as that file does, but for the
// shim's absolute path.
func TestRenderDropInMatchesDeploy(t *testing.T) {
	deploy, err := os.ReadFile(filepath.Join("..", "deploy", "containerd-pause.toml"))
	if err != nil {
		t.Fatal(err)
	}
	_, want := decodeRuntimes(t, deploy)
	_, got := decodeRuntimes(t, RenderDropIn("/usr/local/bin/containerd-shim-pause-v2", []string{"pause", "pause-dense"}, 0))
	for name, r := range want {
		r.RuntimeType = "/usr/local/bin/containerd-shim-pause-v2"
		if !reflect.DeepEqual(got[name], r) {
			t.Errorf("handler %s: rendered %+v, deploy/ has %+v", name, got[name], r)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rendered %d handlers, deploy/ has %d", len(got), len(want))
	}
}

func TestInstallIdempotent(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("shim v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "host", "usr", "local", "bin", ShimName)
	dropIn := filepath.Join(dir, "host", "etc", "containerd", "conf.d", DropInName)
	data := RenderDropIn("/usr/local/bin/"+ShimName, []string{"pause"}, 0)
	for i, want := range []bool{true, false} {
		changed, err := InstallShim(src, dst)
		if err != nil || changed != want {
			t.Fatalf("run %d: shim changed=%v err=%v, want changed=%v", i, changed, err, want)
		}
		changed, err = InstallDropIn(dropIn, data)
		if err != nil || changed != want {
			t.Fatalf("run %d: drop-in changed=%v err=%v, want changed=%v", i, changed, err, want)
		}
	}
	st1, _ := os.Stat(dst)
	if st1.Mode().Perm() != 0o755 {
		t.Errorf("shim mode %v", st1.Mode())
	}
	// A new shim replaces the old file by rename: a running shim keeps
	// the inode it executes.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(src, []byte("shim v2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := InstallShim(src, dst); err != nil || !changed {
		t.Fatalf("a new shim was not installed: %v", err)
	}
	st2, _ := os.Stat(dst)
	if os.SameFile(st1, st2) {
		t.Error("the shim was rewritten in place, not replaced")
	}
	if got, _ := os.ReadFile(dst); string(got) != "shim v2" {
		t.Errorf("installed %q", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
