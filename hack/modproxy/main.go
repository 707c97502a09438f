// Command modproxy writes a Go module proxy directory (GOPROXY=file://DIR)
// holding one version of the module in a checkout, so that
// `go install MODULE/cmd/…@VERSION` can be tried before a release exists
// (hack/goinstall.sh). It zips the files git tracks, as the module proxy
// would serve them: nested modules (a go.mod below the root) are left out.
package main

import (
	"archive/zip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "the module's checkout")
	version := flag.String("version", "", "the version to serve, e.g. v0.0.0-20261205000000-abcdef123456")
	out := flag.String("out", "", "the proxy directory to write")
	flag.Parse()
	if err := write(*dir, *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

func write(dir, version, out string) error {
	if version == "" || out == "" {
		return fmt.Errorf("-version and -out are required")
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	module := modulePath(gomod)
	if module == "" {
		return fmt.Errorf("%s/go.mod names no module", dir)
	}
	files, err := trackedFiles(dir)
	if err != nil {
		return err
	}
	vdir := filepath.Join(out, module, "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	info, _ := json.Marshal(struct{ Version, Time string }{version, time.Now().UTC().Format(time.RFC3339)})
	for name, data := range map[string][]byte{"list": []byte(version + "\n"), version + ".info": info, version + ".mod": gomod} {
		if err := os.WriteFile(filepath.Join(vdir, name), data, 0o644); err != nil {
			return err
		}
	}
	return writeZip(filepath.Join(vdir, version+".zip"), dir, module+"@"+version, files)
}

// modulePath reads the module line of a go.mod.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// trackedFiles lists the files git tracks, without those of nested modules.
func trackedFiles(dir string) ([]string, error) {
	out, err := exec.Command("git", "-C", dir, "ls-files", "-z").Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files: %w", err)
	}
	all := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	var nested []string
	for _, f := range all {
		if path.Base(f) == "go.mod" && f != "go.mod" {
			nested = append(nested, path.Dir(f)+"/")
		}
	}
	var files []string
next:
	for _, f := range all {
		for _, n := range nested {
			if strings.HasPrefix(f, n) {
				continue next
			}
		}
		files = append(files, f)
	}
	return files, nil
}

func writeZip(name, dir, prefix string, files []string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	for _, file := range files {
		src, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		w, err := zw.Create(prefix + "/" + file)
		if err == nil {
			_, err = io.Copy(w, src)
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
