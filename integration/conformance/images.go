package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

const (
	e2eImages = "registry.k8s.io/e2e-test-images/"
	criTools  = "gcr.io/k8s-staging-cri-tools/"
)

// The user database of the upstream busybox image, which the specs on image
// users and groups rely on (www-data, nobody, users).
const (
	passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`
)

// standinSources are the stand-ins' C programs, built static.
var standinSources = map[string]string{
	"webserver":  filepath.Join("integration", "conformance", "standin", "webserver.c"),
	"nonewprivs": filepath.Join("integration", "conformance", "standin", "nonewprivs.c"),
	"pause":      filepath.Join("integration", "bench", "stockpause", "pause.c"),
}

// buildStandins builds the stand-ins' programs into dir; with prebuilt set
// (a node without a compiler), it reads them from there instead.
func buildStandins(repo, dir, prebuilt string) (map[string][]byte, error) {
	bins := map[string][]byte{}
	for name, src := range standinSources {
		var (
			data []byte
			err  error
		)
		if prebuilt != "" {
			data, err = os.ReadFile(filepath.Join(prebuilt, name))
		} else {
			data, err = testimage.BuildStatic(filepath.Join(repo, src), filepath.Join(dir, name))
		}
		if err != nil {
			return nil, err
		}
		bins[name] = data
	}
	return bins, nil
}

// publishImages builds the stand-ins for every image critest pulls and
// pushes them to the local registry under their upstream names.
func publishImages(env *testenv.Env, registry, work, prebuilt string) error {
	bins, err := buildStandins(env.Repo, work, prebuilt)
	if err != nil {
		return err
	}

	base, err := busybox()
	if err != nil {
		return err
	}
	with := func(name string, extra []testimage.File, mutate func(*testimage.Image)) testimage.Image {
		img := base
		img.Name = name
		img.Files = append(append([]testimage.File{}, base.Files...), extra...)
		if mutate != nil {
			mutate(&img)
		}
		return img
	}
	// Installed as /usr/sbin/<mode>, so its command name is nginx or httpd.
	webserver := func(name, mode, port string) testimage.Image {
		return with(name, []testimage.File{{Path: "usr/sbin/" + mode, Data: bins["webserver"], Mode: 0o755}},
			func(i *testimage.Image) { i.Entrypoint, i.Cmd = []string{"/usr/sbin/" + mode, mode, port}, nil })
	}
	marker := func(name, file string) testimage.Image {
		return with(name, []testimage.File{{Path: file, Data: []byte(file + "\n"), Mode: 0o644}}, nil)
	}
	user := func(name, u string) testimage.Image {
		return with(name, nil, func(i *testimage.Image) { i.User = u })
	}
	images := []testimage.Image{
		with(e2eImages+"busybox:1.29-2", nil, nil),
		webserver(e2eImages+"nginx:1.14-2", "nginx", "80"),
		webserver(e2eImages+"httpd:2.4.39-4", "httpd", "80"),
		webserver(criTools+"hostnet-nginx-"+runtime.GOARCH+":latest", "nginx", "12003"),
		with(e2eImages+"nonewprivs:1.3", []testimage.File{{Path: "usr/local", Dir: true},
			{Path: "usr/local/bin", Dir: true}, {Path: "usr/local/bin/nnp", Data: bins["nonewprivs"], Mode: 0o4755}},
			func(i *testimage.Image) { i.Entrypoint, i.Cmd = []string{"/usr/local/bin/nnp"}, nil }),
		user(criTools+"test-image-user-uid:latest", "1002"),
		user(criTools+"test-image-user-username:latest", "www-data"),
		user(criTools+"test-image-user-uid-group:latest", "1003:1004"),
		user(criTools+"test-image-user-username-group:latest", "www-data:1004"),
		with(criTools+"test-image-predefined-group:latest", []testimage.File{
			{Path: "etc/passwd", Data: []byte(passwd + "default-user:x:1000:1000::/home/default-user:/bin/sh\n"), Mode: 0o644},
			{Path: "etc/group", Data: []byte(group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"), Mode: 0o644},
		}, func(i *testimage.Image) { i.User = "1000" }),
		testimage.Pause("registry.k8s.io/pause:3.10.2", bins["pause"]),
	}
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3"} {
		images = append(images, marker(criTools+n+":latest", n))
	}
	images = append(images, marker(criTools+"test-image-latest:latest", "test-image-latest"))
	for _, tag := range []string{"1", "2", "3"} {
		images = append(images, marker(criTools+"test-image-tags:"+tag, "test-image-tags"))
	}
	for _, tag := range []string{"test", "all"} {
		images = append(images, marker(criTools+"test-image-tag:"+tag, "test-image-tag"))
	}

	const staging = "conformance-images"
	ctr := func(args ...string) error {
		out, err := exec.Command("ctr", append(env.CtrArgs(staging), args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, img := range images {
		// Push under the registry's own address; containerd pulls the
		// upstream name, which its registry config maps to the same path.
		local := registry + "/" + pathOf(img.Name)
		img.Name = local
		archive := filepath.Join(work, "image.tar")
		if err := testimage.WriteArchive(img, archive); err != nil {
			return err
		}
		if err := ctr("images", "import", "--all-platforms", archive); err != nil {
			return err
		}
		if err := ctr("images", "push", "--plain-http", local); err != nil {
			return err
		}
		if err := ctr("images", "rm", "--sync", local); err != nil {
			return err
		}
	}
	return nil
}

// pathOf is a reference without its registry host.
func pathOf(ref string) string {
	_, path, _ := strings.Cut(ref, "/")
	return path
}

// busybox is the stand-in for e2e-test-images/busybox: busybox built as
// upstream builds it (make deps-conformance), every applet a hard link (a
// masked path then hides that applet alone), and upstream's user database.
func busybox() (testimage.Image, error) {
	bin, err := exec.LookPath("busybox-upstream")
	if err != nil {
		return testimage.Image{}, fmt.Errorf("busybox-upstream is not installed (run `make deps-conformance`): %w", err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return testimage.Image{}, err
	}
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return testimage.Image{}, err
	}
	files := []testimage.File{
		{Path: "bin", Dir: true}, {Path: "sbin", Dir: true}, {Path: "usr", Dir: true},
		{Path: "usr/bin", Dir: true}, {Path: "usr/sbin", Dir: true},
		{Path: "etc", Dir: true}, {Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "var", Dir: true}, {Path: "var/run", Dir: true},
		{Path: "bin/busybox", Data: data, Mode: 0o755},
		{Path: "etc/passwd", Data: []byte(passwd), Mode: 0o644},
		{Path: "etc/group", Data: []byte(group), Mode: 0o644},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "bin/busybox" {
			files = append(files, testimage.File{Path: applet, Linkname: "bin/busybox", Hardlink: true})
		}
	}
	return testimage.Image{Files: files, Cmd: []string{"sh"}}, nil
}
