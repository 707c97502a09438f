package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/installer"
)

// stockConfig is a node's containerd config that imports no drop-ins, as
// distributions ship it (version 2: containerd 2 migrates it).
const stockConfig = `# containerd config of this node
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`

// installerBinary is the installer `make build` wrote, or one built here.
func installerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(env.Repo, "bin", "containerd-shim-pause-installer")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	bin = filepath.Join(t.TempDir(), "containerd-shim-pause-installer")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/containerd-shim-pause-installer")
	cmd.Dir = env.Repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the installer: %v: %s", err, out)
	}
	return bin
}

// runInstaller runs the installer binary with only PATH from the test's
// environment (no PAUSE_* or NODE_NAME leaks in).
func runInstaller(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	t.Logf("installer %s:\n%s", strings.Join(args, " "), out)
	return string(out), err
}

// fileStamp is a file's bytes, inode and mtime: a rewrite changes one.
type fileStamp struct {
	data  string
	ino   uint64
	mtime int64
}

func stamp(t *testing.T, path string) fileStamp {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileStamp{string(data), st.Sys().(*syscall.Stat_t).Ino, st.ModTime().UnixNano()}
}

// TestInstallerWithoutSystemd: on a host root whose containerd is not a
// systemd unit (no system bus), install puts the shim and the drop-in in
// place, makes the config import the drop-ins with every other byte
// unchanged, keeps a backup, and takes the restart-needed path (with no
// node name: reported on stdout, no label). A second run changes nothing.
// Uninstall refuses while a pod runs on handler pause, naming it, and
// then gives back the config byte for byte.
func TestInstallerWithoutSystemd(t *testing.T) {
	ctx := requireEnv(t)
	bin := installerBinary(t)
	host := t.TempDir()
	config := filepath.Join(host, "etc", "containerd", "config.toml")
	if err := os.MkdirAll(filepath.Dir(config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(stockConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// The node's containerd socket is the test's containerd.
	sock := filepath.Join(host, "run", "containerd", "containerd.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(env.Address, sock); err != nil {
		t.Fatal(err)
	}
	args := []string{"--host-root", host, "--node-name", "", "--shim-source", env.Shim, "--restart-timeout", "20s"}

	out, err := runInstaller(t, bin, append([]string{"install"}, args...)...)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if !strings.Contains(out, installer.ReasonRestartNeeded) || strings.Contains(out, installer.ReasonInstalled) {
		t.Errorf("install did not take the restart-needed path:\n%s", out)
	}
	shim := filepath.Join(host, "usr", "local", "bin", installer.ShimName)
	want, _ := os.ReadFile(env.Shim)
	if got, err := os.ReadFile(shim); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the installed shim is not the built one: %v", err)
	}
	dropIn := filepath.Join(host, "etc", "containerd", "conf.d", installer.DropInName)
	if got, err := os.ReadFile(dropIn); err != nil ||
		!bytes.Equal(got, installer.RenderDropIn("/usr/local/bin/"+installer.ShimName, []string{"pause", "pause-dense"}, 0)) {
		t.Errorf("drop-in: %v\n%s", err, got)
	}
	edited, _ := os.ReadFile(config)
	line := `imports = ["/etc/containerd/conf.d/*.toml"]` + "\n"
	if string(edited) != strings.Replace(stockConfig, "\n[plugins", "\n"+line+"[plugins", 1) {
		t.Errorf("edited config:\n%s", edited)
	}
	if backup, err := os.ReadFile(config + installer.BackupSuffix); err != nil || string(backup) != stockConfig {
		t.Errorf("backup: %v\n%s", err, backup)
	}

	// A second run: the same files, not rewritten.
	files := []string{shim, dropIn, config, config + installer.BackupSuffix}
	var before []fileStamp
	for _, f := range files {
		before = append(before, stamp(t, f))
	}
	if _, err := runInstaller(t, bin, append([]string{"install"}, args...)...); err != nil {
		t.Fatalf("second install: %v", err)
	}
	for i, f := range files {
		if after := stamp(t, f); after != before[i] {
			t.Errorf("the second install rewrote %s", f)
		}
	}
	for _, dir := range []string{filepath.Dir(shim), filepath.Dir(dropIn), filepath.Dir(config)} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file left: %s", filepath.Join(dir, e.Name()))
			}
		}
	}
	if _, err := runInstaller(t, bin, append([]string{"ready"}, args...)...); err == nil {
		t.Error("ready while CRI does not serve the handlers on the installed shim")
	}

	// A pod on handler pause blocks the uninstall, which names it.
	conn, rt := dialCRI(t, env.Address)
	defer conn.Close()
	pod, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podConfig(t, "blocks-uninstall", true), RuntimeHandler: "pause"})
	if err != nil {
		t.Fatal(err)
	}
	out, err = runInstaller(t, bin, append([]string{"uninstall"}, args...)...)
	if err == nil || !strings.Contains(out, "default/blocks-uninstall") || !strings.Contains(out, pod.PodSandboxId) {
		t.Errorf("uninstall with a pod on handler pause: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(config); !bytes.Equal(got, edited) {
		t.Error("the refused uninstall changed the config")
	}
	if _, err := rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}

	if _, err := runInstaller(t, bin, append([]string{"uninstall"}, args...)...); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if got, _ := os.ReadFile(config); string(got) != stockConfig {
		t.Errorf("the config after uninstall is not the original:\n%s", got)
	}
	for _, f := range []string{shim, dropIn, config + installer.BackupSuffix} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s (%v)", f, err)
		}
	}
}

// TestInstallerRefuses: a config that cannot be parsed, or of version 1,
// makes install fail with a message naming the file (and the line), and
// leaves every file as it was.
func TestInstallerRefuses(t *testing.T) {
	requireEnv(t)
	bin := installerBinary(t)
	for _, tc := range []struct{ name, config, want string }{
		{"unparsable", "version = 2\n[plugins\n", "config.toml:2:"},
		{"version 1", "[plugins.cri]\n  x = 1\n", "has version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := t.TempDir()
			config := filepath.Join(host, "etc", "containerd", "config.toml")
			os.MkdirAll(filepath.Dir(config), 0o755)
			if err := os.WriteFile(config, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runInstaller(t, bin, "install", "--host-root", host, "--node-name", "", "--shim-source", env.Shim,
				"--containerd-address", env.Address)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("install: %v, want an error with %q:\n%s", err, tc.want, out)
			}
			if got, _ := os.ReadFile(config); string(got) != tc.config {
				t.Error("the refused install changed the config")
			}
			var files []string
			filepath.Walk(host, func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() && p != config {
					files = append(files, p)
				}
				return nil
			})
			if len(files) > 0 {
				t.Errorf("the refused install wrote %v", files)
			}
		})
	}
}

// TestInstallerDropInLoads: a containerd 2.4.2 that imports the drop-in
// directory the installer wrote serves both handlers on the installed
// shim; on that containerd the installer finds them live, restarts
// nothing and reports the install done, and ready answers yes.
func TestInstallerDropInLoads(t *testing.T) {
	ctx := requireEnv(t)
	bin := installerBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte("version = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--host-root", "/", "--node-name", "", "--shim-source", env.Shim, "--config", config,
		"--drop-in-dir", filepath.Join(dir, "conf.d"), "--bin-dir", filepath.Join(dir, "bin"), "--dense-pods-per-shim", "3",
		// Not this host's systemd.
		"--systemd-bus", filepath.Join(dir, "no-bus"), "--restart-timeout", "20s"}
	if _, err := runInstaller(t, bin, append([]string{"install", "--containerd-address", env.Address}, args...)...); err != nil {
		t.Fatalf("install: %v", err)
	}
	other := startContainerdWithDropIns(t, "pause-installer", filepath.Join(dir, "conf.d", "*.toml"))
	c, err := installer.DialCRI(other.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	live, err := c.Handlers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(dir, "bin", installer.ShimName)
	for _, h := range []string{"pause", "pause-dense"} {
		if live[h] != shim {
			t.Errorf("CRI serves handler %s on %q, want %s (all: %v)", h, live[h], shim, live)
		}
	}
	args = append(args, "--containerd-address", other.Address)
	out, err := runInstaller(t, bin, append([]string{"install"}, args...)...)
	if err != nil || !strings.Contains(out, installer.ReasonInstalled) || strings.Contains(out, installer.ReasonRestartNeeded) {
		t.Errorf("install on a containerd serving the handlers: %v\n%s", err, out)
	}
	if _, err := runInstaller(t, bin, append([]string{"ready"}, args...)...); err != nil {
		t.Errorf("ready: %v", err)
	}

	// An uninstall killed after it removed the drop-in and the import, but
	// before its restart: containerd still serves the handlers, so the next
	// uninstall must restart it (here, with no systemd, ask for a restart).
	if err := os.Remove(filepath.Join(dir, "conf.d", "pause.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(config+installer.BackupSuffix, config); err != nil {
		t.Fatal(err)
	}
	out, err = runInstaller(t, bin, append([]string{"uninstall"}, args...)...)
	if err != nil || !strings.Contains(out, installer.ReasonRestartNeeded) {
		t.Errorf("uninstall with the handlers still loaded: %v, want a restart asked for\n%s", err, out)
	}
}

// TestInstallerWaitsForRestartByHand: install --wait where containerd is
// not a systemd unit takes the restart-needed path and keeps asking CRI;
// once the node's containerd, restarted by hand (here: the socket now
// leads to a containerd that imports the drop-in directory), serves the
// handlers on the installed shim, it records the install, and then only
// waits: SIGTERM ends it with exit 0 and removes nothing.
func TestInstallerWaitsForRestartByHand(t *testing.T) {
	requireEnv(t)
	bin := installerBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte("version = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The node's containerd socket, before its restart: the test's
	// containerd, which imports no drop-ins.
	sock := filepath.Join(dir, "containerd.sock")
	if err := os.Symlink(env.Address, sock); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "install", "--wait", "--host-root", "/", "--node-name", "", "--shim-source", env.Shim,
		"--config", config, "--drop-in-dir", filepath.Join(dir, "conf.d"), "--bin-dir", filepath.Join(dir, "bin"),
		"--containerd-address", sock, "--systemd-bus", filepath.Join(dir, "no-bus"), "--restart-timeout", "20s")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed once the installer has exited, with its error in
	// exitErr.
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		t.Logf("installer output:\n%s", out.String())
	}()
	waitOutput := func(what string, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !strings.Contains(out.String(), what) {
			select {
			case <-exited:
				t.Fatalf("the installer exited (%v) before printing %s", exitErr, what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s from the installer within %v", what, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitOutput(installer.ReasonRestartNeeded, 30*time.Second)
	// Not restarted yet: it waits and records nothing.
	time.Sleep(2 * installer.DefaultPollInterval)
	if strings.Contains(out.String(), installer.ReasonInstalled) {
		t.Fatal("install recorded before containerd was restarted with the handlers")
	}

	// The restart by hand: the node's socket now leads to a containerd
	// that loads the drop-in.
	other := startContainerdWithDropIns(t, "pause-byhand", filepath.Join(dir, "conf.d", "*.toml"))
	next := sock + ".next"
	if err := os.Symlink(other.Address, next); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, sock); err != nil {
		t.Fatal(err)
	}
	waitOutput(installer.ReasonInstalled, 30*time.Second)
	select {
	case <-exited:
		t.Fatalf("install --wait exited (%v) after the install; want it to wait for SIGTERM", exitErr)
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("install --wait on SIGTERM: %v, want exit 0", exitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("install --wait did not end on SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, "conf.d", installer.DropInName)); err != nil {
		t.Errorf("the drop-in after SIGTERM: %v", err)
	}
}
