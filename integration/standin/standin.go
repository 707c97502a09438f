// Package standin serves the images the conformance suites pull (critest in
// make conformance, e2e.test in make e2e-conformance) without reaching any
// registry: each is a stand-in built here from host files and small static
// programs, pushed to go-containerregistry's registry on 127.0.0.1 under its
// upstream name. containerd sends every pull there (testenv's
// WithRegistryMirror), so the images keep their upstream names.
package standin

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

// The user database of the upstream busybox image, which the specs on image
// users and groups rely on (www-data, nobody, users).
const (
	Passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	Group = `root:x:0:
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

// sources are the stand-ins' C programs, built static.
var sources = map[string]string{
	"webserver":  filepath.Join("integration", "standin", "c", "webserver.c"),
	"nonewprivs": filepath.Join("integration", "standin", "c", "nonewprivs.c"),
	"pause":      filepath.Join("integration", "bench", "stockpause", "pause.c"),
}

// Programs are the stand-ins' programs, by name: webserver (nginx and
// httpd), nonewprivs (a setuid program printing its effective uid), pause
// (Kubernetes' pause, as a container image).
type Programs map[string][]byte

// BuildPrograms builds the stand-ins' programs into dir; with prebuilt set
// (a node without a compiler), it reads them from there instead.
func BuildPrograms(repo, dir, prebuilt string) (Programs, error) {
	bins := Programs{}
	for name, src := range sources {
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

// Busybox is the stand-in for e2e-test-images/busybox: busybox built as
// upstream builds it (make deps-conformance), laid out as docker-library's
// busybox image (which e2e-test-images/busybox is built from) lays it out:
// every applet a hard link in /bin (`busybox --install /bin`; a masked
// path then hides that applet alone), /usr/bin/env a link to it, and
// upstream's user database.
func Busybox() (testimage.Image, error) {
	bin, err := exec.LookPath("busybox-upstream")
	if err != nil {
		return testimage.Image{}, fmt.Errorf("busybox-upstream is not installed (run `make deps-conformance`): %w", err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return testimage.Image{}, err
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return testimage.Image{}, err
	}
	files := []testimage.File{
		{Path: "bin", Dir: true}, {Path: "sbin", Dir: true}, {Path: "usr", Dir: true},
		{Path: "usr/bin", Dir: true}, {Path: "usr/sbin", Dir: true},
		{Path: "etc", Dir: true}, {Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "var", Dir: true}, {Path: "var/run", Dir: true},
		{Path: "bin/busybox", Data: data, Mode: 0o755},
		{Path: "usr/bin/env", Linkname: "../../bin/env"},
		{Path: "etc/passwd", Data: []byte(Passwd), Mode: 0o644},
		{Path: "etc/group", Data: []byte(Group), Mode: 0o644},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			files = append(files, testimage.File{Path: "bin/" + applet, Linkname: "bin/busybox", Hardlink: true})
		}
	}
	return testimage.Image{Files: files, Cmd: []string{"sh"}}, nil
}

// With is base named name, with extra files after base's (a file of the
// same path replaces base's), changed by mutate when not nil.
func With(base testimage.Image, name string, extra []testimage.File, mutate func(*testimage.Image)) testimage.Image {
	img := base
	img.Name = name
	img.Files = append(append([]testimage.File{}, base.Files...), extra...)
	if mutate != nil {
		mutate(&img)
	}
	return img
}

// Webserver is base with the webserver program installed as
// /usr/sbin/<mode> (nginx or httpd, so its command name is that) serving
// HTTP on port.
func Webserver(base testimage.Image, bins Programs, name, mode, port string) testimage.Image {
	return With(base, name, []testimage.File{{Path: "usr/sbin/" + mode, Data: bins["webserver"], Mode: 0o755}},
		func(i *testimage.Image) { i.Entrypoint, i.Cmd = []string{"/usr/sbin/" + mode, mode, port}, nil })
}

// Nonewprivs is base with the nonewprivs program, setuid root, as
// e2e-test-images/nonewprivs has it (/usr/local/bin/nnp, its entrypoint).
func Nonewprivs(base testimage.Image, bins Programs, name string) testimage.Image {
	return With(base, name, []testimage.File{{Path: "usr/local", Dir: true},
		{Path: "usr/local/bin", Dir: true}, {Path: "usr/local/bin/nnp", Data: bins["nonewprivs"], Mode: 0o4755}},
		func(i *testimage.Image) { i.Entrypoint, i.Cmd = []string{"/usr/local/bin/nnp"}, nil })
}

// Push pushes images to the registry at registry (host:port) through the
// containerd of env, under the registry's own address and each image's
// upstream path: containerd's registry configuration maps the upstream
// name to the same path. work holds the archives meanwhile.
func Push(env *testenv.Env, registry, work string, images []testimage.Image) error {
	const staging = "standin-images"
	ctr := func(args ...string) error {
		out, err := exec.Command("ctr", append(env.CtrArgs(staging), args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, img := range images {
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

// StartRegistry serves a registry on 127.0.0.1 (go-containerregistry's
// `crane registry serve`), logging to work/registry.log, and returns its
// host:port and how to stop it.
func StartRegistry(work string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(work, "registry.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("crane", "registry", "serve", "--address", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("registry on %s did not come up: %w", addr, err)
		}
	}
}
