package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPackIsReproducible: one set of inputs gives the same tarball bytes
// whatever the files' own times, and the tarball holds exactly the listed
// files (checkTarball, the check make check-release runs); one without
// LICENSE, or one whose drop-in names no installed shim, fails the check.
func TestPackIsReproducible(t *testing.T) {
	t.Chdir("../..") // the checkout's root, as make runs it
	dir := t.TempDir()
	bindir := filepath.Join(dir, "bin")
	if err := os.Mkdir(bindir, 0o755); err != nil {
		t.Fatal(err)
	}
	shim := []byte("not really a shim")
	if err := os.WriteFile(filepath.Join(bindir, shimName), shim, 0o755); err != nil {
		t.Fatal(err)
	}
	toml, err := os.ReadFile("deploy/containerd-pause.toml")
	if err != nil {
		t.Fatal(err)
	}
	dropin := filepath.Join(dir, dropinName)
	installed := strings.ReplaceAll(string(toml), `runtime_type = "`+runtimeName+`"`, `runtime_type = "/usr/local/bin/`+shimName+`"`)
	if err := os.WriteFile(dropin, []byte(installed), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := members(bindir, dropin)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1700000000, 0)
	const version = "v1.2.3-test"
	top := strings.TrimSuffix(tarballName(version, "amd64"), ".tar.gz")
	first, err := pack(top, ms, mtime)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(bindir, shimName), time.Now(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	again, err := pack(top, ms, mtime)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Error("two packs of the same files differ")
	}

	out := filepath.Join(dir, "release")
	write := func(data []byte) {
		t.Helper()
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, tarballName(version, "amd64")), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(first)
	got, err := checkTarball(out, version, "amd64")
	if err != nil {
		t.Fatalf("check of a packed tarball: %v", err)
	}
	if !bytes.Equal(got, shim) {
		t.Errorf("the tarball's shim is %q, want %q", got, shim)
	}

	var noLicense []member
	for _, m := range ms {
		if m.name != "LICENSE" {
			noLicense = append(noLicense, m)
		}
	}
	data, err := pack(top, noLicense, mtime)
	if err != nil {
		t.Fatal(err)
	}
	write(data)
	if _, err := checkTarball(out, version, "amd64"); err == nil {
		t.Error("a tarball without LICENSE passes the check")
	}

	if err := os.WriteFile(dropin, toml, 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err = pack(top, ms, mtime); err != nil {
		t.Fatal(err)
	}
	write(data)
	if _, err := checkTarball(out, version, "amd64"); err == nil {
		t.Error("a drop-in naming no installed shim passes the check")
	}
}

// TestSumsCoverTheRelease: SHA256SUMS, in sha256sum's format, verifies with
// sha256sum -c and names every other file; a changed file or one it does
// not name fails the check.
func TestSumsCoverTheRelease(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("needs sha256sum (coreutils)")
	}
	dir := t.TempDir()
	for name, data := range map[string]string{"a.tar.gz": "a", "image.tar": "image"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeSums(dir); err != nil {
		t.Fatal(err)
	}
	if err := checkSums(dir); err != nil {
		t.Fatalf("fresh sums: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.tar.gz"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkSums(dir); err == nil {
		t.Error("a file SHA256SUMS does not name passes the check")
	}
	if err := writeSums(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.tar.gz"), []byte("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkSums(dir); err == nil {
		t.Error("a changed file passes the check")
	}
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"v1.2.3": true, "v0.0.0-ci": true, "v1.0.0-rc.1": true, "v0.1.0-3-gabc1234-dirty": true,
		"1.2.3": false, "v1.2": false, "0676004": false, "v1.2.3/x": false, "": false,
	} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("version %q: %v, want ok=%v", v, err, ok)
		}
	}
}
