// Package shim bootstraps the shim process: `start` answers the socket of
// the shim that serves a task or pod, starting that shim unless it runs (a
// shared shim is package pool's choice); `delete` cleans up after a task or
// pod from its bundle alone; `-info` describes the runtime. The shim's
// services are package task's: the bootstrap imports pod, pool and options,
// never task.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcmanager "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/internal/failpoint"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/cgroups"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pool"
)

// RuntimeName is the containerd runtime type this shim serves.
const RuntimeName = "io.containerd.pause.v2"

// groupLabels put tasks on the shim of their pod, in this order: this
// runtime's own group label, then CRI's sandbox id (podsandbox mode, where
// the pause container and the pod's containers arrive as plain tasks).
var groupLabels = []string{
	"io.containerd.pause.v2.group",
	"io.containerd.runc.v2.group",
	"io.kubernetes.cri.sandbox-id",
}

// Manager is the shim's bootstrap. Containers' bundles are runc.v2 bundles,
// so their `delete` and the runtime's `-info` are containerd's runc.v2
// manager's; `start` and a pod's `delete` are this one's.
type Manager struct {
	shim.Shim
}

// NewManager returns the bootstrap of runtime name.
func NewManager(name string) *Manager {
	return &Manager{Shim: runcmanager.NewShimManager(name)}
}

// Start returns the address of the shim that serves this task or pod,
// starting that shim unless one already listens there.
func (m *Manager) Start(ctx context.Context, opts *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	defer logAside()()
	result := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc"}
	id := opts.GetInstanceID()
	// Options are checked at every start, so a bad options table fails
	// the pod that meets it with the key's name, not a later call.
	runtimeOpts, err := options.FromBootstrap(opts)
	if err != nil {
		return nil, err
	}
	if runtimeOpts.SystemdCgroup {
		if err := cgroups.RequireSystemd("runtime option SystemdCgroup = true"); err != nil {
			return nil, err
		}
	}
	socketDir := opts.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	if runtimeOpts.PodsPerShim != 1 && isSandboxBundle() {
		address, err := pool.Start(ctx, bootstrap(opts, runtimeOpts, socketDir), opts, runtimeOpts, id, socketDir)
		if err != nil {
			return nil, err
		}
		result.Address = address
		return result, nil
	}
	grouping, err := groupOf(id, "config.json")
	if err != nil {
		return nil, err
	}
	address, err := shim.CreateSocketAddress(ctx, socketDir, opts.GetContainerdGrpcAddress(), grouping, false)
	if err != nil {
		return nil, err
	}
	if isSandboxBundle() {
		// Recorded before it is made: containerd runs no `shim delete`
		// after a failed start, and a server that dies before it serves
		// would leave its socket with no owner.
		if err := recordPodSocket(id, address); err != nil {
			return nil, err
		}
	}
	if err := spawn(ctx, opts, runtimeOpts, socketDir, server{id: id, address: address, procs: 1}); err != nil {
		if errors.Is(err, errShimRuns) {
			// The pod's shim already runs: its containers share it.
			result.Address = address
			return result, nil
		}
		return nil, err
	}
	result.Address = address
	return result, nil
}

// taskBundles is the directory (under containerd's state) of the bundles of
// tasks; a sandbox's bundle lives under its sandbox controller's.
const taskBundles = "io.containerd.runtime.v2.task"

// isSandboxBundle tells whether `start` runs in a sandbox's bundle (its
// working directory), not a task's: only sandboxes share shims.
func isSandboxBundle() bool {
	cwd, err := os.Getwd()
	if err != nil {
		return false
	}
	return filepath.Base(filepath.Dir(filepath.Dir(cwd))) != taskBundles
}

// spawnShared starts a shared shim's server; tests stand in for it.
var spawnShared = spawn

// bootstrap is what the pool of a shared shim borrows from `start`.
func bootstrap(opts *bootapi.BootstrapParams, runtimeOpts options.Options, socketDir string) pool.Bootstrap {
	return pool.Bootstrap{
		Spawn: func(ctx context.Context, srv pool.ServerSpec) error {
			err := spawnShared(ctx, opts, runtimeOpts, socketDir, server{id: srv.ID, address: srv.Address, procs: srv.Procs, env: srv.Env})
			if errors.Is(err, errShimRuns) {
				err = fmt.Errorf("a shim already listens at %s: %w", srv.Address, err)
			}
			return err
		},
		RecordSocket: recordPodSocket,
	}
}

// recordPodSocket records the socket of pod id, whose bundle is the
// working directory, for a later `shim delete` to remove where nobody
// listens (pod.RecordShimSockets).
func recordPodSocket(id, address string) error {
	bundle, err := os.Getwd()
	if err != nil {
		return err
	}
	return pod.RecordShimSockets(bundle, id, []string{address})
}

// logAside sends the log away from `start`'s standard error, and returns
// what puts it back: containerd reads start's standard output and error
// together as its answer, so a line logged there fails the pod's start.
// The lines go to the bundle's log pipe when containerd reads it (it opens
// it before it runs start), else nowhere.
func logAside() (restore func()) {
	logger := log.L.Logger
	prev := logger.Out
	// Non-blocking to open (a pipe nobody reads is refused, not waited
	// for), blocking to write (logrus reports a short write on stderr).
	fd, err := unix.Open("log", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		if err = unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		logger.SetOutput(io.Discard)
		return func() { logger.SetOutput(prev) }
	}
	pipe := os.NewFile(uintptr(fd), "log")
	logger.SetOutput(pipe)
	return func() {
		logger.SetOutput(prev)
		pipe.Close()
	}
}

// errShimRuns is spawn's answer when a live shim already listens at the
// address.
var errShimRuns = errors.New("a shim already listens there")

// server is a shim server to start.
type server struct {
	// id names it to pkg/shim; address is its socket's.
	id, address string
	// procs is its GOMAXPROCS. A shim of one pod mostly waits on children
	// and one socket, and each further P costs every pod's shim memory; a
	// shared shim runs many pods' calls at once, and pays for its Ps once.
	procs int
	// env is added to its environment.
	env []string
}

// spawn starts srv, unless a live shim already listens at its address
// (errShimRuns).
func spawn(ctx context.Context, opts *bootapi.BootstrapParams, runtimeOpts options.Options, socketDir string, srv server) (retErr error) {
	address := srv.address
	listener, err := shim.NewSocket(address)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return fmt.Errorf("create shim socket: %w", err)
		}
		if pool.Listens(address) {
			return errShimRuns
		}
		// A dead shim left its socket behind.
		if err := shim.RemoveSocket(address); err != nil {
			return fmt.Errorf("remove stale shim socket: %w", err)
		}
		if listener, err = shim.NewSocket(address); err != nil {
			return fmt.Errorf("create shim socket: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			listener.Close()
			_ = shim.RemoveSocket(address)
		}
	}()
	f, err := listener.File()
	if err != nil {
		return err
	}
	defer f.Close()

	cmd, err := serveCommand(ctx, srv, opts.GetContainerdGrpcAddress(), opts.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG)
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Env, options.Env+"="+runtimeOpts.Encode(), options.SocketDirEnv+"="+socketDir)
	cmd.Env = append(cmd.Env, srv.env...)
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
		}
	}()
	// The server outlives this process; reap it only if it dies first.
	go func() { _ = cmd.Wait() }()
	if path := runtimeOpts.ShimCgroup; path != "" {
		if err := cgroups.Join(path, cmd.Process.Pid); err != nil {
			return fmt.Errorf("move shim into ShimCgroup: %w", err)
		}
	}
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		return fmt.Errorf("adjust OOM score of shim: %w", err)
	}
	// The server has its own copy of the socket: keep the path.
	listener.SetUnlinkOnClose(false)
	listener.Close()
	failpoint.Inject(failpoint.ShimStartAfterSpawn)
	return nil
}

// groupOf is the shim grouping of a task: its group label, else its own id.
// A sandbox bundle from CRI has no config.json: the sandbox is its own group.
func groupOf(id, configPath string) (string, error) {
	data, err := os.ReadFile(configPath)
	if errors.Is(err, os.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return "", err
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("malformed config.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	for _, label := range groupLabels {
		if group, ok := spec.Annotations[label]; ok && group != "" {
			return group, nil
		}
	}
	return id, nil
}

// serveCommand re-executes this binary as the long-lived shim server srv.
func serveCommand(ctx context.Context, srv server, containerdAddress string, debug bool) (*exec.Cmd, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", srv.id, "-address", containerdAddress}
	if debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(srv.procs))
	// This process is containerd's child: tell the server containerd's root.
	if root, err := containerdRootOf(os.Getppid()); err == nil {
		cmd.Env = append(cmd.Env, options.ContainerdRootEnv+"="+root)
	} else {
		log.G(ctx).WithError(err).Warn("containerd's root directory not found: CRI pods will fail")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// Stop is `shim delete`: for a pod's bundle it takes the pod out of its
// pool if it has one, kills what the pod left, removes its cgroups and its
// sockets; a container's bundle is runc.v2's.
// It also finishes the work of any earlier delete of a pod that was killed
// before it ended (see pod.SweepOrphans): containerd runs delete only once.
func (m *Manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	failpoint.Inject(failpoint.ShimDeleteBegin)
	if dir, err := pool.OfBundle(bundle); err == nil && dir != "" {
		pool.Leave(ctx, dir, id, bundle)
	}
	failpoint.Inject(failpoint.ShimDeleteAfterPool)
	isPod, err := pod.CleanupBundle(ctx, bundle)
	if err != nil {
		log.G(ctx).WithError(err).WithField("sandbox", id).Warn("clean up pod")
	}
	failpoint.Inject(failpoint.ShimDeleteEnd)
	if isPod {
		// A shim that died before its pod had a record left the pod's
		// address, which no record names.
		pool.RemoveDeadSockets(podSockets(ctx, bundle, id))
		pod.SweepOrphans(ctx, pool.Leave)
		return shim.StopStatus{ExitedAt: time.Now(), ExitStatus: 128 + int(unix.SIGKILL)}, nil
	}
	return m.Shim.Stop(ctx, id)
}

// podSockets are the addresses of pod id's sockets (the debug one too), as
// `shim start` made them: in the socket directory the bundle's link "s"
// names, from containerd's address (the -address flag pkg/shim registers),
// as pkg/shim's own cleanup finds a task's.
func podSockets(ctx context.Context, bundle, id string) []string {
	dir, err := os.Readlink(filepath.Join(bundle, "s"))
	if err != nil {
		dir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	var grpcAddress string
	if f := flag.Lookup("address"); f != nil {
		grpcAddress = f.Value.String()
	}
	var addrs []string
	for _, debug := range []bool{false, true} {
		if address, err := shim.CreateSocketAddress(ctx, dir, grpcAddress, id, debug); err == nil {
			addrs = append(addrs, address)
		}
	}
	return addrs
}
