package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"google.golang.org/protobuf/proto"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
)

// The shim binary's invocations that containerd makes for every sandbox
// and every container, timed as whole processes beside a minimal static Go
// binary: `start` of a container whose pod's shim runs (it answers that
// shim's address), `delete` of a pod whose shim has cleaned up (the work
// left is the sweep), and `-v`.
var execCommands = []string{"start", "delete", "-v"}

// execTarget is the bound on each invocation's p50 over the
// minimal binary's.
const execTarget = 1.3

// execRuns is how many times each command runs, in turns.
const execRuns = 40

// execResult is the exec cost of each of execCommands and of the minimal
// binary (key "minimal"), in ms.
type execResult struct {
	Runs  int                  `json:"runs"`
	Ms    map[string]quantiles `json:"ms"`
	Ratio map[string]float64   `json:"ratio_to_minimal"`
}

// measureExec runs the minimal binary and the shim's commands in turns,
// execRuns times each.
func measureExec(env *testenv.Env) (execResult, error) {
	dir := filepath.Join(env.Dir, "exec")
	minimal, err := buildMinimal(filepath.Join(dir, "minimal"))
	if err != nil {
		return execResult{}, err
	}
	cmds, cleanup, err := shimCommands(env, dir)
	if err != nil {
		return execResult{}, err
	}
	defer cleanup()
	cmds["minimal"] = func() *exec.Cmd { return exec.Command(minimal) }
	order := append([]string{"minimal"}, execCommands...)
	samples := map[string][]float64{}
	for i := range execRuns + 1 {
		for _, name := range rotate(order, i) {
			cmd := cmds[name]()
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			began := time.Now()
			err := cmd.Run()
			took := time.Since(began)
			if err != nil {
				return execResult{}, fmt.Errorf("%s: %w: %s", name, err, out.String())
			}
			if i > 0 { // the first round warms the page cache
				samples[name] = append(samples[name], float64(took.Microseconds())/1000)
			}
		}
	}
	res := execResult{Runs: execRuns, Ms: map[string]quantiles{}, Ratio: map[string]float64{}}
	for name, s := range samples {
		res.Ms[name] = quantile(s)
	}
	for _, name := range execCommands {
		res.Ratio[name] = ratio(res.Ms[name].P50, res.Ms["minimal"].P50)
	}
	return res, nil
}

// buildMinimal builds the reference: a static Go binary that writes a line
// and exits, with the shim's build flags.
func buildMinimal(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"minimal\\n\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module minimal\n\ngo 1.24\n"), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "minimal")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the minimal Go binary: %w: %s", err, out)
	}
	return bin, nil
}

// shimCommands makes what the shim's start and delete find when containerd
// runs them: a container's bundle labelled with its pod, the pod's shim
// listening (here, a listener that only accepts), and a pod bundle with
// nothing left in it.
func shimCommands(env *testenv.Env, dir string) (map[string]func() *exec.Cmd, func(), error) {
	const ns, pod, ctr = "bench-exec", "pod", "ctr"
	grpcAddress := filepath.Join(dir, "containerd.sock") // nobody listens: neither command calls it
	socketDir := filepath.Join(dir, "s")
	taskBundle := filepath.Join(dir, "state", "io.containerd.runtime.v2.task", ns, ctr)
	podBundle := filepath.Join(dir, "state", "sandboxes", ns, pod)
	for _, d := range []string{socketDir, taskBundle, podBundle} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, nil, err
		}
	}
	spec := `{"ociVersion":"1.2.0","annotations":{"io.kubernetes.cri.sandbox-id":"` + pod + `"}}`
	if err := os.WriteFile(filepath.Join(taskBundle, "config.json"), []byte(spec), 0o600); err != nil {
		return nil, nil, err
	}
	ctx := namespaces.WithNamespace(context.Background(), ns)
	address, err := shim.CreateSocketAddress(ctx, socketDir, grpcAddress, pod, false)
	if err != nil {
		return nil, nil, err
	}
	l, err := net.Listen("unix", strings.TrimPrefix(address, "unix://"))
	if err != nil {
		return nil, nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	params, err := proto.Marshal(&bootapi.BootstrapParams{InstanceID: ctr, Namespace: ns, ContainerdGrpcAddress: grpcAddress, SocketDir: &socketDir})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	base := func(id string) []string {
		return []string{"-namespace", ns, "-address", grpcAddress, "-publish-binary", "/bin/true", "-id", id}
	}
	cmds := map[string]func() *exec.Cmd{
		"-v": func() *exec.Cmd { return exec.Command(env.Shim, "-v") },
		"start": func() *exec.Cmd {
			c := exec.Command(env.Shim, append(base(ctr), "start")...)
			c.Dir, c.Stdin = taskBundle, bytes.NewReader(params)
			return c
		},
		"delete": func() *exec.Cmd {
			c := exec.Command(env.Shim, append(base(pod), "-bundle", podBundle, "delete")...)
			c.Dir = podBundle
			return c
		},
	}
	// start must answer the pod's shim, or it timed another path.
	c := cmds["start"]()
	out, err := c.Output()
	var res bootapi.BootstrapResult
	if err == nil {
		err = proto.Unmarshal(out, &res)
	}
	if err == nil && res.GetAddress() != address {
		err = errors.New("answered " + res.GetAddress() + ", want the pod's shim " + address)
	}
	if err != nil {
		l.Close()
		return nil, nil, fmt.Errorf("shim start of a container whose pod's shim runs: %w", err)
	}
	return cmds, func() { l.Close() }, nil
}

// execVerdicts checks each command's ratio to the minimal binary against
// execTarget.
func execVerdicts(r execResult) []verdict {
	var out []verdict
	for _, name := range execCommands {
		v := verdict{Handler: "shim binary", Key: "exec " + name, Label: "exec cost of `" + name + "` over a minimal Go binary's",
			Ratio: r.Ratio[name], Max: execTarget}
		v.Known = v.Ratio > 0
		v.Met = v.Known && v.Ratio <= execTarget
		out = append(out, v)
	}
	return out
}

// execMarkdown is the exec cost's table.
func execMarkdown(r execResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nExec cost of the shim binary, as containerd runs it for every sandbox and container (%d runs each, in turns with a minimal static Go binary; wall time of fork, exec and wait):\n\n", r.Runs)
	b.WriteString("| command | p50 / p99 | over the minimal binary's p50 | target |\n| --- | --- | --- | --- |\n")
	m := r.Ms["minimal"]
	fmt.Fprintf(&b, "| minimal static Go binary | %.1f / %.1f ms | 1 | |\n", m.P50, m.P99)
	for i, v := range execVerdicts(r) {
		name := execCommands[i]
		fmt.Fprintf(&b, "| `%s` | %.1f / %.1f ms | %.2f | %s |\n", name, r.Ms[name].P50, r.Ms[name].P99, v.Ratio, v)
	}
	return b.String()
}
