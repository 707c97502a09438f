// Package testimage builds small OCI image archives from files on this host
// (busybox-static, the shim's own pause binary): the tests (the demo too)
// import images with `ctr images import`, never from a registry.
package testimage

import (
	"archive/tar"
	"bytes"
	_ "crypto/sha256" // registers the digest algorithm
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one entry of an image's single layer.
type File struct {
	Path     string // inside the image, no leading slash
	Data     []byte
	Mode     int64
	Linkname string // a symlink when set (a hard link with Hardlink)
	Hardlink bool
	Dir      bool
}

// Image is what an archive holds: one layer and a run configuration.
type Image struct {
	Name       string // full reference, e.g. docker.io/library/busybox:latest
	Files      []File
	Entrypoint []string
	Cmd        []string
	User       string // the image config's User
	Arch       string // the platform's architecture (GOARCH); the host's when empty
}

// Busybox is an image of the host's static busybox with the applets linked
// and the usual passwd and group entries.
func Busybox(name string, applets ...string) (Image, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return Image{}, err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return Image{}, err
	}
	files := []File{
		{Path: "bin", Dir: true}, {Path: "etc", Dir: true}, {Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "bin/busybox", Data: data, Mode: 0o755},
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), Mode: 0o644},
		{Path: "etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\n"), Mode: 0o644},
	}
	for _, a := range applets {
		files = append(files, File{Path: "bin/" + a, Linkname: "busybox"})
	}
	return Image{Name: name, Files: files, Cmd: []string{"/bin/sh"}}, nil
}

// Pause is a pause image whose /pause is the shim's own pause binary (run
// without flags it only holds its namespaces and reaps): the stand-in for
// registry.k8s.io/pause in CRI's podsandbox mode.
func Pause(name string, binary []byte) Image {
	return Image{Name: name, Files: []File{{Path: "pause", Data: binary, Mode: 0o755}}, Entrypoint: []string{"/pause"}}
}

// WriteArchive writes img as an OCI image layout archive, as
// `ctr images import` takes it.
func WriteArchive(img Image, out string) error {
	md, blobs, err := manifestOf(img)
	if err != nil {
		return err
	}
	return writeLayout(out, named(md, img.Name), blobs)
}

// WriteIndexArchive writes imgs, one per architecture, as one image named
// name: an OCI image index of their manifests, which a node's runtime
// resolves to its own platform's.
func WriteIndexArchive(name string, imgs []Image, out string) error {
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	index.SchemaVersion = 2
	var blobs [][]byte
	for _, img := range imgs {
		md, b, err := manifestOf(img)
		if err != nil {
			return err
		}
		index.Manifests = append(index.Manifests, md)
		blobs = append(blobs, b...)
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	blobs = append(blobs, indexJSON)
	return writeLayout(out, named(descriptor(ocispec.MediaTypeImageIndex, indexJSON), name), blobs)
}

// manifestOf builds img's manifest: its descriptor, with the platform, and
// the blobs (config, layer, manifest).
func manifestOf(img Image) (ocispec.Descriptor, [][]byte, error) {
	layer, err := layerTar(img.Files)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	arch := img.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	config := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			User:       img.User,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digestOf(layer)}},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	manifest := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptor(ocispec.MediaTypeImageConfig, configJSON),
		Layers:    []ocispec.Descriptor{descriptor(ocispec.MediaTypeImageLayer, layer)},
	}
	manifest.SchemaVersion = 2
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	md := descriptor(ocispec.MediaTypeImageManifest, manifestJSON)
	md.Platform = &config.Platform
	return md, [][]byte{configJSON, layer, manifestJSON}, nil
}

// named is the descriptor of an image named name, as the layout's index
// lists it.
func named(d ocispec.Descriptor, name string) ocispec.Descriptor {
	d.Annotations = map[string]string{
		"io.containerd.image.name": name,
		ocispec.AnnotationRefName:  refName(name),
	}
	return d
}

// writeLayout writes an OCI image layout archive whose index lists top,
// with blobs.
func writeLayout(out string, top ocispec.Descriptor, blobs [][]byte) error {
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{top}}
	index.SchemaVersion = 2
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	entries := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", indexJSON},
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		if p := blobPath(b); !seen[p] {
			seen[p] = true
			entries = append(entries, struct {
				name string
				data []byte
			}{p, b})
		}
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// epoch keeps archives byte-for-byte reproducible.
var epoch = time.Unix(0, 0)

func layerTar(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.Path, Mode: f.Mode, ModTime: epoch}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, f.Path+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Hardlink:
			// Appliers set the link's mode on the shared inode: keep the
			// target's (0755 unless given).
			h.Typeflag, h.Linkname = tar.TypeLink, f.Linkname
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Linkname != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Linkname, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, bytes.NewReader(f.Data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func descriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digestOf(data), Size: int64(len(data))}
}

func digestOf(data []byte) digest.Digest { return digest.FromBytes(data) }

func blobPath(data []byte) string {
	return path.Join("blobs", "sha256", digest.FromBytes(data).Encoded())
}

// refName is the tag of a reference ("latest" for "busybox:latest").
func refName(name string) string {
	for i := len(name) - 1; i >= 0 && name[i] != '/'; i-- {
		if name[i] == ':' {
			return name[i+1:]
		}
	}
	return "latest"
}

// BuildStatic compiles a C program of the repository statically (gcc,
// against libc) and returns the binary: the stand-ins for upstream images.
func BuildStatic(src, out string) ([]byte, error) {
	if msg, err := exec.Command("gcc", "-O2", "-static", "-Wall", "-o", out, src).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %v: %s", src, err, msg)
	}
	return os.ReadFile(out)
}

// Import loads an archive into containerd's namespace with ctr.
func Import(ctrArgs []string, archive string) error {
	args := append(append([]string{}, ctrArgs...), "images", "import", "--all-platforms", archive)
	out, err := exec.Command("ctr", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import: %v: %s", err, out)
	}
	return nil
}
