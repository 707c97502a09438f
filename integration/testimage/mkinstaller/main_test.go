package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImageHoldsExactlyTheFiles: the image's one layer holds the files given,
// executable, at its root, and nothing else; two files of one name fail.
func TestImageHoldsExactlyTheFiles(t *testing.T) {
	dir := t.TempDir()
	want := map[string]string{"containerd-shim-pause-v2": "shim", "containerd-shim-pause-installer": "installer"}
	var files []string
	for name, data := range want {
		p := filepath.Join(dir, "bin", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	archive := filepath.Join(dir, "image.tar")
	if err := run("localhost/installer:test", archive, files); err != nil {
		t.Fatal(err)
	}
	blobs := readTar(t, mustRead(t, archive))
	var index ocispec.Index
	unmarshal(t, blobs["index.json"], &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != "localhost/installer:test" {
		t.Fatalf("index %+v", index)
	}
	var manifest ocispec.Manifest
	unmarshal(t, blobs["blobs/sha256/"+index.Manifests[0].Digest.Encoded()], &manifest)
	if len(manifest.Layers) != 1 {
		t.Fatalf("layers %+v", manifest.Layers)
	}
	layer := blobs["blobs/sha256/"+manifest.Layers[0].Digest.Encoded()]
	got := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
			t.Errorf("%s: type %c mode %o, want an executable file", h.Name, h.Typeflag, h.Mode)
		}
		got[h.Name] = string(data)
	}
	if len(got) != len(want) {
		t.Errorf("layer holds %v, want %v", got, want)
	}
	for name, data := range want {
		if got[name] != data {
			t.Errorf("layer: %s holds %q, want %q", name, got[name], data)
		}
	}
	if err := run("x", filepath.Join(dir, "dup.tar"), []string{files[0], files[0]}); err == nil {
		t.Error("two files of one name: no error")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name], _ = io.ReadAll(tr)
	}
}

func unmarshal(t *testing.T, data []byte, into any) {
	t.Helper()
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatal(err)
	}
}

// TestIndexHoldsEachArchitecture: -index writes one image name whose index
// lists a linux manifest per architecture, each with the files of its own
// directory; a bad argument or an empty directory fails.
func TestIndexHoldsEachArchitecture(t *testing.T) {
	dir := t.TempDir()
	var args []string
	for _, arch := range []string{"amd64", "arm64"} {
		d := filepath.Join(dir, "linux-"+arch)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "containerd-shim-pause-v2"), []byte("shim for "+arch), 0o755); err != nil {
			t.Fatal(err)
		}
		args = append(args, arch+"="+d)
	}
	archive := filepath.Join(dir, "image.tar")
	if err := runIndex("localhost/installer:multi", archive, args); err != nil {
		t.Fatal(err)
	}
	blobs := readTar(t, mustRead(t, archive))
	var top ocispec.Index
	unmarshal(t, blobs["index.json"], &top)
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != ocispec.MediaTypeImageIndex ||
		top.Manifests[0].Annotations["io.containerd.image.name"] != "localhost/installer:multi" {
		t.Fatalf("layout index %+v, want one image index named localhost/installer:multi", top)
	}
	var index ocispec.Index
	unmarshal(t, blobs["blobs/sha256/"+top.Manifests[0].Digest.Encoded()], &index)
	got := map[string]string{}
	for _, m := range index.Manifests {
		if m.Platform == nil || m.Platform.OS != "linux" {
			t.Fatalf("manifest %+v: want a linux platform", m)
		}
		var manifest ocispec.Manifest
		unmarshal(t, blobs["blobs/sha256/"+m.Digest.Encoded()], &manifest)
		tr := tar.NewReader(bytes.NewReader(blobs["blobs/sha256/"+manifest.Layers[0].Digest.Encoded()]))
		if _, err := tr.Next(); err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got[m.Platform.Architecture] = string(data)
	}
	if len(got) != 2 || got["amd64"] != "shim for amd64" || got["arm64"] != "shim for arm64" {
		t.Errorf("the index's images hold %v, want each architecture's own shim", got)
	}
	for _, bad := range [][]string{{"amd64"}, {"amd64=" + filepath.Join(dir, "missing")}, {args[0], args[0]}, {"arm64=" + t.TempDir()}} {
		if err := runIndex("x", filepath.Join(dir, "bad.tar"), bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
