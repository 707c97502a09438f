package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/typeurl/v2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
)

// runtimeName is what the shim's -info names (package shim's RuntimeName).
const runtimeName = "io.containerd.pause.v2"

func checkCmd(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	version := fs.String("version", "", "the release's version")
	revision := fs.String("revision", "", "the commit the shims must name")
	archList := fs.String("arches", "amd64 arm64", "the architectures the release must hold")
	image := fs.String("image", "", "the installer image archive's name in -dir")
	dir := fs.String("dir", "", "the release directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkVersion(*version); err != nil {
		return err
	}
	if *dir == "" || *revision == "" || *image == "" {
		return fmt.Errorf("check needs -dir, -revision and -image")
	}
	want := strings.Fields(*archList)
	slices.Sort(want)
	got, err := arches(*dir, *version)
	if err != nil {
		return err
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: tarballs of version %s for %v, want %v", *dir, *version, got, want)
	}
	if err := checkSums(*dir); err != nil {
		return err
	}
	fmt.Printf("check-release: %s verifies (sha256sum -c)\n", sumsName)
	shims := map[string][]byte{}
	for _, arch := range want {
		shim, err := checkTarball(*dir, *version, arch)
		if err != nil {
			return fmt.Errorf("%s: %w", tarballName(*version, arch), err)
		}
		if err := checkShim(shim, arch, *version, *revision); err != nil {
			return fmt.Errorf("%s: %w", tarballName(*version, arch), err)
		}
		shims[arch] = shim
		fmt.Printf("check-release: %s: the listed files; -v and -info name %s\n", tarballName(*version, arch), *version)
	}
	if err := checkImage(filepath.Join(*dir, *image), *version, shims); err != nil {
		return fmt.Errorf("%s: %w", *image, err)
	}
	fmt.Printf("check-release: %s: an index of %v, each with its tarball's shim\n", *image, want)
	return nil
}

// checkSums runs sha256sum -c, as a user does, and checks that SHA256SUMS
// names every other file of dir.
func checkSums(dir string) error {
	cmd := exec.Command("sha256sum", "--strict", "-c", sumsName)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sha256sum -c %s: %v\n%s", sumsName, err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, sumsName))
	if err != nil {
		return err
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		_, name, ok := strings.Cut(line, "  ")
		if !ok {
			return fmt.Errorf("%s: %q is not sha256sum's format", sumsName, line)
		}
		listed = append(listed, name)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		if e.Name() != sumsName {
			files = append(files, e.Name())
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, files) {
		return fmt.Errorf("%s lists %v, the directory holds %v", sumsName, listed, files)
	}
	return nil
}

// checkTarball checks that the tarball of arch holds exactly the files
// members lists, below its top directory, with their modes and the
// checkout's contents (the drop-in: naming the shim in /usr/local/bin), and
// returns its shim.
func checkTarball(dir, version, arch string) ([]byte, error) {
	name := tarballName(version, arch)
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	top := strings.TrimSuffix(name, ".tar.gz") + "/"
	files := map[string][]byte{}
	modes := map[string]int64{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		rel, ok := strings.CutPrefix(h.Name, top)
		if !ok && h.Name != top {
			return nil, fmt.Errorf("%s: outside %s", h.Name, top)
		}
		if h.Uid != 0 || h.Gid != 0 {
			return nil, fmt.Errorf("%s: owner %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%s: type %c, want files and directories", h.Name, h.Typeflag)
		}
		if _, dup := files[rel]; dup {
			return nil, fmt.Errorf("%s twice", h.Name)
		}
		if files[rel], err = io.ReadAll(tr); err != nil {
			return nil, err
		}
		modes[rel] = h.Mode
	}
	// The shim comes from the build: the list's other files from the
	// checkout; the drop-in is checked by its runtime_type.
	ms, err := members(os.DevNull, os.DevNull)
	if err != nil {
		return nil, err
	}
	var want, have []string
	for _, m := range ms {
		want = append(want, m.name)
	}
	for n := range files {
		have = append(have, n)
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		return nil, fmt.Errorf("holds %v, want %v", have, want)
	}
	for _, m := range ms {
		if modes[m.name] != m.mode {
			return nil, fmt.Errorf("%s: mode %o, want %o", m.name, modes[m.name], m.mode)
		}
		if m.name == shimName || m.name == dropinName {
			continue
		}
		src, err := os.ReadFile(m.src)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(src, files[m.name]) {
			return nil, fmt.Errorf("%s differs from the checkout's", m.name)
		}
	}
	const runtimeType = `runtime_type = "/usr/local/bin/` + shimName + `"`
	if dropin := string(files[dropinName]); !strings.Contains(dropin, runtimeType) || strings.Contains(dropin, `runtime_type = "`+runtimeName) {
		return nil, fmt.Errorf("%s: want every handler's %s", dropinName, runtimeType)
	}
	return files[shimName], nil
}

// checkShim runs the shim of arch (under qemu user emulation when it is
// not the host's): -v and -info must name version, and -v revision. -info
// is given a stand-in runc: the version needs none.
func checkShim(shim []byte, arch, version, revision string) error {
	tmp, err := os.MkdirTemp("", "check-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, shimName)
	if err := os.WriteFile(bin, shim, 0o755); err != nil {
		return err
	}
	run := func(stdin []byte, args ...string) ([]byte, error) {
		argv := append([]string{bin}, args...)
		if arch != runtime.GOARCH {
			qemu := "qemu-" + qemuArch[arch] + "-static"
			if _, err := exec.LookPath(qemu); err != nil {
				return nil, fmt.Errorf("%s runs %s binaries here: %w", qemu, arch, err)
			}
			argv = append([]string{qemu}, argv...)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, stderr.Bytes())
		}
		return out, nil
	}

	out, err := run(nil, "-v")
	if err != nil {
		return err
	}
	for _, line := range []string{"  Version:  " + version, "  Revision: " + revision} {
		if !slices.Contains(strings.Split(string(out), "\n"), line) {
			return fmt.Errorf("-v does not say %q:\n%s", line, out)
		}
	}

	runc := filepath.Join(tmp, "runc")
	if err := os.WriteFile(runc, []byte("#!/bin/sh\necho '{}'\n"), 0o755); err != nil {
		return err
	}
	opts, err := typeurl.MarshalAnyToProto(&runcoptions.Options{BinaryName: runc})
	if err != nil {
		return err
	}
	stdin, err := proto.Marshal(opts)
	if err != nil {
		return err
	}
	if out, err = run(stdin, "-info"); err != nil {
		return err
	}
	var info types.RuntimeInfo
	if err := proto.Unmarshal(out, &info); err != nil {
		return fmt.Errorf("-info: %w", err)
	}
	if info.GetName() != runtimeName || info.GetVersion().GetVersion() != version || info.GetVersion().GetRevision() != revision {
		return fmt.Errorf("-info: name %q version %q revision %q, want %q %q %q", info.GetName(),
			info.GetVersion().GetVersion(), info.GetVersion().GetRevision(), runtimeName, version, revision)
	}
	return nil
}

// checkImage checks the installer image archive: an OCI layout whose one
// image, tagged version, is an index of one image per architecture of
// shims, each holding that architecture's shim; and every blob's digest.
func checkImage(archive, version string, shims map[string][]byte) error {
	blobs, err := readTar(archive)
	if err != nil {
		return err
	}
	for name, data := range blobs {
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			if sum := sha256Hex(data); sum != hex {
				return fmt.Errorf("%s: digest %s", name, sum)
			}
		}
	}
	blob := func(d ocispec.Descriptor, v any) error {
		data, ok := blobs["blobs/sha256/"+d.Digest.Encoded()]
		if !ok {
			return fmt.Errorf("no blob %s", d.Digest)
		}
		return json.Unmarshal(data, v)
	}
	var layout ocispec.Index
	if err := json.Unmarshal(blobs["index.json"], &layout); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	if len(layout.Manifests) != 1 || layout.Manifests[0].MediaType != ocispec.MediaTypeImageIndex {
		return fmt.Errorf("index.json lists %+v, want one image index", layout.Manifests)
	}
	if name := layout.Manifests[0].Annotations["io.containerd.image.name"]; !strings.HasSuffix(name, ":"+version) {
		return fmt.Errorf("image named %q, want the tag %s", name, version)
	}
	var index ocispec.Index
	if err := blob(layout.Manifests[0], &index); err != nil {
		return err
	}
	var got, want []string
	for arch := range shims {
		want = append(want, "linux/"+arch)
	}
	for _, md := range index.Manifests {
		if md.Platform == nil {
			return fmt.Errorf("manifest %s has no platform", md.Digest)
		}
		arch := md.Platform.Architecture
		got = append(got, md.Platform.OS+"/"+arch)
		var m ocispec.Manifest
		if err := blob(md, &m); err != nil {
			return err
		}
		if len(m.Layers) != 1 {
			return fmt.Errorf("%s: %d layers, want 1", arch, len(m.Layers))
		}
		layer, err := readTarBytes(blobs["blobs/sha256/"+m.Layers[0].Digest.Encoded()])
		if err != nil {
			return fmt.Errorf("%s layer: %w", arch, err)
		}
		if !bytes.Equal(layer[shimName], shims[arch]) {
			return fmt.Errorf("%s: the image's shim is not the tarball's", arch)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("index of %v, want %v", got, want)
	}
	return nil
}

func readTar(file string) (map[string][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return readTarBytes(data)
}

// readTarBytes returns the regular files of a tar by name.
func readTarBytes(data []byte) (map[string][]byte, error) {
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if files[path.Clean(h.Name)], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
}
