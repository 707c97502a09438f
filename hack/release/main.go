// Command release packs a release of the shim, or checks one (make
// release, make check-release).
//
//	release version VERSION
//	release pack -version VERSION -dropin FILE -mtime SECONDS -out DIR ARCH=BINDIR...
//	release check -version VERSION -revision REVISION -dir DIR
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// A release is a tarball per architecture holding the shim, the containerd
// drop-in, deploy/, LICENSE and README.md, beside the installer image
// archive, with SHA256SUMS over them. The tarballs are reproducible: their
// entries sorted, owned by root, dated -mtime (the commit's time), gzip
// without a name or date; so one commit and one Go toolchain give the same
// bytes.

const (
	shimName = "containerd-shim-pause-v2"
	// dropinName is the drop-in as `make install` writes it, naming the
	// shim in /usr/local/bin, under the name it is installed as.
	dropinName = "pause.toml"
	sumsName   = "SHA256SUMS"
)

const usage = `usage: release version VERSION
       release pack -version VERSION -dropin FILE -mtime SECONDS -out DIR ARCH=BINDIR...
       release check -version VERSION -revision REVISION -dir DIR`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "version":
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		err = checkVersion(args[0])
	case "pack":
		err = packCmd(args)
	case "check":
		err = checkCmd(args)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// semver is a semantic version with Go's leading v: the tarballs' names
// and the image's tag carry it.
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

func checkVersion(v string) error {
	if !semver.MatchString(v) {
		return fmt.Errorf("version %q is not vMAJOR.MINOR.PATCH[-PRERELEASE] (make release VERSION=vX.Y.Z)", v)
	}
	return nil
}

// tarballName is the release's tarball for arch.
func tarballName(version, arch string) string {
	return fmt.Sprintf("%s-%s-linux-%s.tar.gz", shimName, version, arch)
}

// member is one file of a tarball, below its top directory.
type member struct {
	name string // slash-separated, relative to the top directory
	src  string // the file it is read from
	mode int64
}

// members lists a tarball's files: the shim of bindir, the drop-in, and
// from the checkout LICENSE, README.md and the files git tracks in deploy/
// except the Go tests that check them.
func members(bindir, dropin string) ([]member, error) {
	out, err := exec.Command("git", "ls-files", "-z", "--", "deploy").Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files deploy: %w", err)
	}
	ms := []member{
		{shimName, filepath.Join(bindir, shimName), 0o755},
		{dropinName, dropin, 0o644},
		{"LICENSE", "LICENSE", 0o644},
		{"README.md", "README.md", 0o644},
	}
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		ms = append(ms, member{f, filepath.FromSlash(f), 0o644})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
	return ms, nil
}

func packCmd(args []string) error {
	fs := flag.NewFlagSet("pack", flag.ContinueOnError)
	version := fs.String("version", "", "the release's version")
	dropin := fs.String("dropin", "", "the containerd drop-in naming the installed shim")
	mtime := fs.Int64("mtime", 0, "the entries' time, seconds since the epoch (the commit's)")
	out := fs.String("out", "", "the release directory, holding the installer image archive")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkVersion(*version); err != nil {
		return err
	}
	if *dropin == "" || *out == "" || fs.NArg() == 0 {
		return fmt.Errorf("pack needs -dropin, -out and ARCH=BINDIR")
	}
	for _, a := range fs.Args() {
		arch, bindir, ok := strings.Cut(a, "=")
		if !ok || arch == "" || bindir == "" {
			return fmt.Errorf("%q: want ARCH=BINDIR", a)
		}
		ms, err := members(bindir, *dropin)
		if err != nil {
			return err
		}
		name := tarballName(*version, arch)
		data, err := pack(strings.TrimSuffix(name, ".tar.gz"), ms, time.Unix(*mtime, 0))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			return err
		}
	}
	return writeSums(*out)
}

// pack writes ms below the directory top as a gzipped tar whose bytes
// depend on nothing but the files' contents, modes and names, and mtime.
func pack(top string, ms []member, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	header := func(name string, typ byte, mode, size int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: mtime, Format: tar.FormatPAX}
	}
	dirs := map[string]bool{}
	var mkdir func(dir string) error
	mkdir = func(dir string) error {
		if dir == "." || dirs[dir] {
			return nil
		}
		if err := mkdir(path.Dir(dir)); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(header(dir+"/", tar.TypeDir, 0o755, 0))
	}
	for _, m := range ms {
		data, err := os.ReadFile(m.src)
		if err != nil {
			return nil, err
		}
		name := path.Join(top, m.name)
		if err := mkdir(path.Dir(name)); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(header(name, tar.TypeReg, m.mode, int64(len(data)))); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeSums writes SHA256SUMS, in sha256sum's format, over every other
// file of dir.
func writeSums(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var sums strings.Builder
	for _, e := range entries {
		if e.Name() == sumsName {
			continue
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file in %s", e.Name(), dir)
		}
		sum, err := fileSum(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, e.Name())
	}
	return os.WriteFile(filepath.Join(dir, sumsName), []byte(sums.String()), 0o644)
}

func fileSum(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return sha256Hex(data), nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// qemuArch maps a Go architecture to qemu's name for it.
var qemuArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// arches lists the architectures the release's tarballs are for.
func arches(dir, version string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	prefix, suffix := fmt.Sprintf("%s-%s-linux-", shimName, version), ".tar.gz"
	var as []string
	for _, e := range entries {
		if a, ok := strings.CutPrefix(e.Name(), prefix); ok && strings.HasSuffix(a, suffix) {
			as = append(as, strings.TrimSuffix(a, suffix))
		}
	}
	slices.Sort(as)
	return as, nil
}
