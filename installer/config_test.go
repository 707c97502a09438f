package installer

import (
	"strings"
	"testing"
)

const glob = "/etc/containerd/conf.d/*.toml"

func TestAddImportKeepsEveryOtherByte(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		// removed is what RemoveImport gives back when it cannot be the
		// original (Uninstall then restores the backup).
		removed string
	}{
		{
			name: "no imports: a line before the first table",
			in:   "# stock\nversion = 3\n\n# the CRI plugin\n[plugins.\"io.containerd.cri.v1.runtime\"]\n  x = 1\n",
			want: "# stock\nversion = 3\n\n# the CRI plugin\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[plugins.\"io.containerd.cri.v1.runtime\"]\n  x = 1\n",
		},
		{
			name: "no imports, no table: at the end",
			in:   "version = 3\nroot = \"/var/lib/containerd\"\n",
			want: "version = 3\nroot = \"/var/lib/containerd\"\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n",
		},
		{
			name: "no final newline",
			in:   "version = 3",
			want: "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]",
		},
		{
			name: "version 2 config",
			in:   "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n",
			want: "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n",
		},
		{
			name: "empty imports array",
			in:   "version = 3\nimports = []\n[a]\n",
			want: "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[a]\n",
			// The edit looks like an inserted line.
			removed: "version = 3\n[a]\n",
		},
		{
			name: "one import",
			in:   "version = 3\nimports = [\"/etc/other/*.toml\"] # site config\n[a]\n",
			want: "version = 3\nimports = [\"/etc/other/*.toml\", \"/etc/containerd/conf.d/*.toml\"] # site config\n[a]\n",
		},
		{
			name: "multi-line imports with a trailing comma and comments",
			in:   "version = 3\nimports = [\n  '/etc/a.toml', # a\n  \"/etc/b.toml\",\n  # end\n]\n[a]\n",
			want: "version = 3\nimports = [\n  '/etc/a.toml', # a\n  \"/etc/b.toml\", \"/etc/containerd/conf.d/*.toml\",\n  # end\n]\n[a]\n",
		},
		{
			name: "a table's own imports key is not the top-level one",
			in:   "version = 3\n[x]\n  imports = [\"y\"]\n",
			want: "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[x]\n  imports = [\"y\"]\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AddImport("config.toml", []byte(tc.in), glob)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			info, err := ParseConfig("config.toml", got)
			if err != nil {
				t.Fatalf("the edited config does not parse: %v", err)
			}
			if !info.Imported(glob) {
				t.Fatalf("the edited config imports %v", info.Imports)
			}
			again, err := AddImport("config.toml", got, glob)
			if err != nil || string(again) != string(got) {
				t.Fatalf("a second AddImport changed the config: %v\n%s", err, again)
			}
			back, err := RemoveImport("config.toml", got, glob)
			if err != nil {
				t.Fatal(err)
			}
			if tc.removed != "" {
				if string(back) != tc.removed {
					t.Fatalf("RemoveImport gave\n%q\nwant\n%q", back, tc.removed)
				}
				return
			}
			if string(back) != tc.in {
				t.Fatalf("RemoveImport gave\n%q\nwant the original\n%q", back, tc.in)
			}
		})
	}
}

func TestAddImportAlreadyImported(t *testing.T) {
	in := []byte("version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n")
	got, err := AddImport("config.toml", in, glob)
	if err != nil || string(got) != string(in) {
		t.Fatalf("changed an importing config: %v\n%s", err, got)
	}
}

func TestRemoveImportKeepsOthersImports(t *testing.T) {
	// An import added by someone after the installer's.
	in := "version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\", \"/etc/x.toml\"]\n"
	got, err := RemoveImport("config.toml", []byte(in), glob)
	if err != nil {
		t.Fatal(err)
	}
	if want := "version = 3\nimports = [\"/etc/x.toml\"]\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	none := []byte("version = 3\n")
	if got, err := RemoveImport("config.toml", none, glob); err != nil || string(got) != string(none) {
		t.Fatalf("changed a config without the import: %v %q", err, got)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unparsable", "version = 3\n[plugins\n", "config.toml:2:"},
		{"duplicate key", "version = 3\nversion = 2\n", "config.toml:2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := AddImport("/etc/containerd/config.toml", []byte(tc.in), glob)
			if err == nil || !strings.Contains(err.Error(), "/etc/containerd/"+tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := AddImport("c.toml", []byte("imports = \"/x\"\n"), glob); err == nil {
		t.Error("imports as a string was accepted")
	}
}

func TestParseConfigVersion(t *testing.T) {
	for in, want := range map[string]int{"": 1, "version = 2\n": 2, "version = 3\n[a]\n": 3} {
		info, err := ParseConfig("c", []byte(in))
		if err != nil || info.Version != want {
			t.Errorf("%q: version %d, %v; want %d", in, info.Version, err, want)
		}
	}
}
