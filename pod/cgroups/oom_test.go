package cgroups

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadOOMKills(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		data string
		want uint64
		ok   bool
	}{
		"kernel 6.1":  {"low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n", 2, true},
		"no oom_kill": {"low 0\nhigh 0\n", 0, false},
		"garbage":     {"oom_kill x\n", 0, false},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadOOMKills(path)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %d, %v; want %d (ok %t)", name, got, err, tc.want, tc.ok)
		}
	}
}
