package shim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestGroupOf(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	if g, err := groupOf("sb1", cfg); err != nil || g != "sb1" {
		t.Errorf("sandbox bundle without config.json: %q %v", g, err)
	}
	os.WriteFile(cfg, []byte(`{"annotations":{"io.kubernetes.cri.sandbox-id":"pod9"}}`), 0o600)
	if g, err := groupOf("c1", cfg); err != nil || g != "pod9" {
		t.Errorf("CRI podsandbox container: %q %v, want its pod", g, err)
	}
	os.WriteFile(cfg, []byte(`{"annotations":{"io.containerd.pause.v2.group":"g","io.kubernetes.cri.sandbox-id":"pod9"}}`), 0o600)
	if g, _ := groupOf("c1", cfg); g != "g" {
		t.Errorf("own group label first: %q", g)
	}
	os.WriteFile(cfg, []byte(`{}`), 0o600)
	if g, _ := groupOf("c1", cfg); g != "c1" {
		t.Errorf("plain task: %q", g)
	}
	os.WriteFile(cfg, []byte(`{`), 0o600)
	if _, err := groupOf("c1", cfg); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed config.json: %v", err)
	}
}

// FuzzGroupOf: any config.json yields a group or an invalid-argument error.
func FuzzGroupOf(f *testing.F) {
	f.Add([]byte(`{"annotations":{"io.kubernetes.cri.sandbox-id":"pod9"}}`))
	f.Add([]byte(`{"annotations":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(cfg, data, 0o600); err != nil {
			t.Fatal(err)
		}
		g, err := groupOf("id", cfg)
		if err == nil && g == "" {
			t.Fatal("empty group")
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error of another kind: %v", err)
		}
	})
}

func TestContainerdRootOf(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, "io.containerd.metadata.v1.bolt", "meta.db")
	os.MkdirAll(filepath.Dir(db), 0o700)
	f, err := os.Create(db)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := containerdRootOf(os.Getpid()); err != nil || got != root {
		t.Errorf("root %q, %v; want %q", got, err, root)
	}
	if _, err := containerdRootOf(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
