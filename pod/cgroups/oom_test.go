package cgroups

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOOMKills(t *testing.T) {
	root := t.TempDir()
	for name, tc := range map[string]struct {
		data string // memory.events; "" for none
		want uint64
		ok   bool
	}{
		"kernel 6.1":  {"low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n", 2, true},
		"no oom_kill": {"low 0\nhigh 0\n", 0, true},
		"garbage":     {"oom_kill x\n", 0, false},
		"no file":     {"", 0, false},
	} {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if tc.data != "" {
			if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		got, err := OOMKills(root, "/"+name)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %d, %v; want %d (ok %t)", name, got, err, tc.want, tc.ok)
		}
	}
}
