package installer

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestUnimport: the config goes back byte for byte when the install's edit
// is all that changed (even where RemoveImport alone could not tell the
// edit apart), keeps edits made since, and leaves an import the config had
// before the install.
func TestUnimport(t *testing.T) {
	for _, tc := range []struct {
		name, orig, later, want string
		keepBackup              bool
	}{
		{name: "empty imports array", orig: "version = 3\nimports = []\n[a]\n", want: "version = 3\nimports = []\n[a]\n"},
		{name: "no imports", orig: "version = 2\n[a]\n", want: "version = 2\n[a]\n"},
		{
			name: "edited since", orig: "version = 3\n[a]\n",
			later: "# edited\nversion = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[a]\n",
			want:  "# edited\nversion = 3\n[a]\n", keepBackup: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			o, err := ParseArgs([]string{"uninstall", "--host-root", root}, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			config := o.Host(o.Config)
			installed, err := AddImport(config, []byte(tc.orig), o.ImportGlob())
			if err != nil {
				t.Fatal(err)
			}
			if tc.later != "" {
				installed = []byte(tc.later)
			}
			os.MkdirAll(filepath.Dir(config), 0o755)
			os.WriteFile(config, installed, 0o600)
			os.WriteFile(config+BackupSuffix, []byte(tc.orig), 0o600)
			in := &installer{o: o}
			changed, err := in.unimport()
			if err != nil || !changed {
				t.Fatalf("changed=%v err=%v", changed, err)
			}
			got, _ := os.ReadFile(config)
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if st, _ := os.Stat(config); st.Mode().Perm() != 0o600 {
				t.Errorf("config mode %v", st.Mode())
			}
			if _, err := os.Stat(config + BackupSuffix); (err == nil) != tc.keepBackup {
				t.Errorf("backup kept: %v, want %v", err == nil, tc.keepBackup)
			}
			if changed, err := in.unimport(); changed || err != nil {
				t.Errorf("a second unimport: changed=%v err=%v", changed, err)
			}
		})
	}
}

// TestUninstallWithNothingLeft: on a node where nothing of the installer's
// is left (a second run of the uninstaller, or a node never installed), the
// uninstall succeeds without asking CRI, which may no longer be there.
func TestUninstallWithNothingLeft(t *testing.T) {
	root := t.TempDir()
	o, err := ParseArgs([]string{"uninstall", "--host-root", root, "--node-name", "",
		"--containerd-address", "/nonexistent/containerd.sock"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	config := o.Host(o.Config)
	os.MkdirAll(filepath.Dir(config), 0o755)
	const orig = "version = 3\n[a]\n"
	os.WriteFile(config, []byte(orig), 0o600)
	if err := Uninstall(t.Context(), o, io.Discard); err != nil {
		t.Fatalf("uninstall with nothing installed: %v", err)
	}
	if got, _ := os.ReadFile(config); string(got) != orig {
		t.Errorf("config changed: %q", got)
	}

	// With the shim still there, the pods are checked: CRI must answer.
	os.MkdirAll(filepath.Dir(o.Host(o.ShimPath())), 0o755)
	os.WriteFile(o.Host(o.ShimPath()), []byte("shim"), 0o755)
	if err := Uninstall(t.Context(), o, io.Discard); err == nil {
		t.Error("uninstall with the shim installed and no CRI to ask succeeded")
	}
}

// TestUninstallTakesWait: the uninstaller DaemonSet's main container runs
// `uninstall --wait`.
func TestUninstallTakesWait(t *testing.T) {
	o, err := ParseArgs([]string{"uninstall", "--wait"}, func(string) string { return "" }, io.Discard)
	if err != nil || !o.Wait {
		t.Fatalf("uninstall --wait: wait=%v err=%v", o != nil && o.Wait, err)
	}
}

// TestUninstallKeepsAnImportTheConfigHad: a config that imported the
// drop-in directory before the install (containerd's own default config
// does, as do nodes set up by hand) keeps its import after the uninstall:
// other drop-ins there go on loading.
func TestUninstallKeepsAnImportTheConfigHad(t *testing.T) {
	for _, orig := range []string{
		"version = 3\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n[a]\n",
		"version = 3\nimports = ['/etc/containerd/conf.d/*.toml']\n[a]\n",
	} {
		root := t.TempDir()
		o, err := ParseArgs([]string{"install", "--host-root", root}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		config := o.Host(o.Config)
		os.MkdirAll(filepath.Dir(config), 0o755)
		os.WriteFile(config, []byte(orig), 0o644)
		before, err := snapshot(config)
		if err != nil {
			t.Fatal(err)
		}
		edited, err := AddImport(config, []byte(orig), o.ImportGlob())
		if err != nil {
			t.Fatal(err)
		}
		in := &installer{o: o}
		if _, err := in.importDropIns(config, before, edited); err != nil {
			t.Fatal(err)
		}
		if _, err := in.unimport(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(config); string(got) != orig {
			t.Errorf("after install and uninstall: %q, want the config as it was, %q", got, orig)
		}
		if _, err := os.Stat(config + BackupSuffix); err == nil {
			t.Error("the backup is left after the uninstall")
		}
	}
}
