package pool

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

// Layouts of a fuzzed record on disk, beside its address and pod: what a
// killed writer, an older shim or a stranger may leave.
const (
	noAddress      = 1 << iota // the address file missing
	addressIsDir               // a directory where the address file goes
	addressIsLink              // the address file a symbolic link to one
	noPods                     // the pods directory missing
	podsIsFile                 // a file where the pods directory goes
	podIsDir                   // the pod a directory, not a file
	strayTemporary             // a temporary left by a killed AddShim
)

// FuzzShims: whatever a pool directory holds, Shims lists its well-formed
// records exactly and fails on none; it removes the rest, so that once its
// shims are gone the pool is removed whole.
func FuzzShims(f *testing.F) {
	real := "unix:///run/containerd/s/5a3f3b0e1b9f0f1e8f6a1c4d2b7e9a0c3d5f7b9e1a2c4d6f8b0a1c3e5f7092b4"
	pod := "8c2a5b3f7e1d4c6a9b0e2f4d6c8a1b3e5f7092b4d6e8f0a2c4e6b8d0f1a3c5e7"
	f.Add("1733300000000000000", real, pod, uint8(0))
	f.Add("1733300000000000001", real, pod, uint8(noAddress))
	f.Add("1733300000000000002", "", pod, uint8(0))
	f.Add("1733300000000000003", "unix:///run/contai", pod, uint8(0))
	f.Add("1733300000000000004", "unix://run/containerd/s/x", pod, uint8(0))
	f.Add("1733300000000000005", "unix:///run/../etc/shadow", pod, uint8(0))
	f.Add("1733300000000000006", "/run/containerd/s/x", pod, uint8(0))
	f.Add("1733300000000000007", real+"\n", pod, uint8(0))
	f.Add("1733300000000000008", real, "..-not an id", uint8(0))
	f.Add("1733300000000000009", real, pod, uint8(addressIsDir|podIsDir))
	f.Add("1733300000000000010", real, pod, uint8(addressIsLink|strayTemporary))
	f.Add("1733300000000000011", real, pod, uint8(noPods))
	f.Add("1733300000000000012", real, pod, uint8(podsIsFile))
	f.Add(".new-1733300000000000013-42", real, pod, uint8(0))
	f.Fuzz(func(t *testing.T, name, address, pod string, layout uint8) {
		if name == "" || name == "." || name == ".." || name == "lock" || name == "1" || strings.ContainsAny(name, "/\x00") || len(name) > 200 ||
			pod == "" || pod == "." || pod == ".." || strings.ContainsAny(pod, "/\x00") || len(pod) > 200 {
			t.Skip("not a file name")
		}
		dir := Dir(t.TempDir(), "k")
		p, err := Lock(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Unlock()
		good := "1" // fuzzed names skip it
		if err := p.AddShim(good, real); err != nil {
			t.Fatal(err)
		}
		writeRecord(t, filepath.Join(dir, name), address, pod, layout)
		if layout&strayTemporary != 0 {
			writeRecord(t, filepath.Join(dir, ".new-2-1"), real, "", 0)
		}

		shims, err := p.Shims()
		if err != nil {
			t.Fatalf("Shims: %v", err)
		}
		wellFormed := !strings.HasPrefix(name, ".") && layout&(noAddress|addressIsDir|addressIsLink|noPods|podsIsFile) == 0 &&
			checkAddress(address) == nil
		var wantPods []string
		if layout&podIsDir == 0 && identifiers.Validate(pod) == nil {
			wantPods = []string{pod}
		}
		var listed []string
		for _, s := range shims {
			listed = append(listed, s.Name)
			if err := checkAddress(s.Address); err != nil {
				t.Errorf("shim %s listed with a bad address: %v", s.Name, err)
			}
			if again, err := p.Shim(s.Name); err != nil || again.Address != s.Address || !slices.Equal(again.Pods, s.Pods) {
				t.Errorf("Shim(%s) = %+v, %v; Shims listed %+v", s.Name, again, err, s)
			}
			if s.Name == name && (s.Address != address || !slices.Equal(s.Pods, wantPods)) {
				t.Errorf("record %q listed as %+v, want address %q and pods %q", name, s, address, wantPods)
			}
		}
		if !slices.Contains(listed, good) {
			t.Errorf("the good record is not listed beside %q: %q", name, listed)
		}
		if slices.Contains(listed, name) != wellFormed {
			t.Errorf("record %q (address %q, layout %b) listed: %v, well formed: %v", name, address, layout, slices.Contains(listed, name), wellFormed)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != lockFile && !slices.Contains(listed, e.Name()) {
				t.Errorf("%q left in the pool, not a record", e.Name())
			}
		}

		for _, s := range shims {
			for _, pod := range s.Pods {
				if s, err = p.Release(s, pod); err != nil {
					t.Fatal(err)
				}
			}
			if retired, err := p.Retire(s.Name); !retired || err != nil {
				t.Fatalf("retire %s: %v %v", s.Name, retired, err)
			}
		}
		if err := p.Prune(); err != nil {
			t.Fatal(err)
		}
		p.Unlock()
		if _, err := os.Lstat(filepath.Dir(dir)); !os.IsNotExist(err) {
			t.Errorf("the pool is left once its shims are gone: %v", err)
		}
	})
}

// writeRecord writes a shim's record at path as layout says, with the
// address and one pod (none if pod is empty).
func writeRecord(t *testing.T, path, address, pod string, layout uint8) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(path, 0o700))
	switch {
	case layout&noPods != 0:
	case layout&podsIsFile != 0:
		must(os.WriteFile(filepath.Join(path, podsDir), nil, 0o600))
	default:
		must(os.Mkdir(filepath.Join(path, podsDir), 0o700))
		if pod == "" {
			break
		}
		if layout&podIsDir != 0 {
			must(os.Mkdir(filepath.Join(path, podsDir, pod), 0o700))
		} else {
			must(os.WriteFile(filepath.Join(path, podsDir, pod), nil, 0o600))
		}
	}
	file := filepath.Join(path, addressFile)
	switch {
	case layout&noAddress != 0:
	case layout&addressIsDir != 0:
		must(os.Mkdir(file, 0o700))
	case layout&addressIsLink != 0:
		target := filepath.Join(t.TempDir(), "elsewhere")
		must(os.WriteFile(target, []byte(address), 0o600))
		must(os.Symlink(target, file))
	default:
		must(os.WriteFile(file, []byte(address), 0o600))
	}
}
