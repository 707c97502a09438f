package pool

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
)

// pooledStart runs `shim start` for pods of a shared-shim handler, with
// shim servers that are listeners of the test.
type pooledStart struct {
	ctx         context.Context
	opts        *bootapi.BootstrapParams
	runtimeOpts options.Options
	socketDir   string
	bootstrap   Bootstrap
	// dir is the handler's pool.
	dir string

	mu sync.Mutex
	// spawned are the servers started; listeners, their sockets.
	spawned   []ServerSpec
	listeners map[string]net.Listener
	// beforeSpawn, when set, runs as a server is started; an error fails
	// the start.
	beforeSpawn func(srv ServerSpec) error
}

func newPooledStart(t *testing.T, podsPerShim uint32) *pooledStart {
	t.Helper()
	// Socket paths have a length limit: keep the directory short.
	socketDir, err := os.MkdirTemp("", "pool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(socketDir) })
	t.Chdir(t.TempDir()) // the pod's bundle
	ps := &pooledStart{
		ctx:         namespaces.WithNamespace(context.Background(), "pool-test"),
		opts:        &bootapi.BootstrapParams{ContainerdGrpcAddress: "/run/test/containerd.sock", SocketDir: &socketDir},
		runtimeOpts: options.Default(),
		socketDir:   socketDir,
		listeners:   map[string]net.Listener{},
	}
	ps.runtimeOpts.PodsPerShim = podsPerShim
	if ps.dir, err = DirFor(socketDir, ps.opts.ContainerdGrpcAddress, "pool-test", ps.runtimeOpts); err != nil {
		t.Fatal(err)
	}
	ps.bootstrap.RecordSocket = func(string, string) error { return nil }
	ps.bootstrap.Spawn = func(_ context.Context, srv ServerSpec) error {
		ps.mu.Lock()
		hook := ps.beforeSpawn
		ps.mu.Unlock()
		if hook != nil {
			if err := hook(srv); err != nil {
				return err
			}
		}
		l, err := net.Listen("unix", socketPath(srv.Address))
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		ps.mu.Lock()
		ps.spawned = append(ps.spawned, srv)
		ps.listeners[srv.Address] = l
		ps.mu.Unlock()
		return nil
	}
	return ps
}

func (ps *pooledStart) start(id string) (string, error) {
	return Start(ps.ctx, ps.bootstrap, ps.opts, ps.runtimeOpts, id, ps.socketDir)
}

// shims lists the pool's shims.
func (ps *pooledStart) shims(t *testing.T) []Shim {
	t.Helper()
	locked, err := Lock(context.Background(), ps.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer locked.Unlock()
	shims, err := locked.Shims()
	if err != nil {
		t.Fatal(err)
	}
	return shims
}

// A pool holding a shim's record with no address (a start killed while it
// wrote it) does not fail the handler's next pods.
func TestStartOverAnIncompleteRecord(t *testing.T) {
	ps := newPooledStart(t, 3)
	if err := os.MkdirAll(filepath.Join(ps.dir, "100", "pods"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pod-a", "pod-b"} {
		if _, err := ps.start(id); err != nil {
			t.Fatalf("start %s with an incomplete record in the pool: %v", id, err)
		}
	}
	shims := ps.shims(t)
	if len(shims) != 1 || len(shims[0].Pods) != 2 || len(ps.spawned) != 1 {
		t.Errorf("shims %+v, %d spawned: want the two pods on one new shim", shims, len(ps.spawned))
	}
	if _, err := os.Lstat(filepath.Join(ps.dir, "100")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the incomplete record is left: %v", err)
	}
}

// A start records a new shim before it starts it, so that a start killed
// in between leaves a record that a later start cleans up, never a shim
// no record names.
func TestStartRecordsTheShimBeforeItRuns(t *testing.T) {
	ps := newPooledStart(t, 3)
	recorded := false
	ps.beforeSpawn = func(srv ServerSpec) error {
		for _, kv := range srv.Env {
			if name, ok := strings.CutPrefix(kv, NameEnv+"="); ok {
				address, err := os.ReadFile(filepath.Join(ps.dir, name, "address"))
				recorded = err == nil && string(address) == srv.Address
			}
		}
		return nil
	}
	if _, err := ps.start("pod-a"); err != nil {
		t.Fatal(err)
	}
	if !recorded {
		t.Fatal("the shim ran before the pool recorded it")
	}
}

// A shim that failed to start leaves no record.
func TestStartThatFailsLeavesNoRecord(t *testing.T) {
	ps := newPooledStart(t, 3)
	ps.beforeSpawn = func(ServerSpec) error { return errors.New("exec failed") }
	if _, err := ps.start("pod-a"); err == nil {
		t.Fatal("start succeeded with a shim that failed to start")
	}
	if shims := ps.shims(t); len(shims) != 0 {
		t.Errorf("records of shims that never ran: %+v", shims)
	}
}

// What a start killed after recording a shim and before starting it
// leaves (a record no one listens at, with no pod) goes at the next start.
func TestStartAfterAStartKilledBeforeSpawn(t *testing.T) {
	ps := newPooledStart(t, 3)
	locked, err := Lock(context.Background(), ps.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := locked.AddShim("100", "unix://"+filepath.Join(ps.socketDir, "never-started")); err != nil {
		t.Fatal(err)
	}
	locked.Unlock()
	if _, err := ps.start("pod-a"); err != nil {
		t.Fatal(err)
	}
	if shims := ps.shims(t); len(shims) != 1 || shims[0].Name == "100" {
		t.Errorf("shims %+v: want only the new one", shims)
	}
}

// A shared shim killed after it took its last pod out of its record, but
// before it removed its socket and record, leaves both with nobody at the
// address: the `shim delete` that follows for that pod removes them, and
// the pool, rather than leaving them for a start that may never come.
func TestShimDeleteRemovesADeadShimWithNoPod(t *testing.T) {
	ps := newPooledStart(t, 2)
	dead := filepath.Join(ps.socketDir, "dead")
	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	locked, err := Lock(context.Background(), ps.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := locked.AddShim("100", "unix://"+dead); err != nil {
		t.Fatal(err)
	}
	locked.Unlock()
	Leave(ps.ctx, ps.dir, "pod-a", filepath.Join(t.TempDir(), "pod-a"))
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead shim's socket is left: %v", err)
	}
	if _, err := os.Lstat(ps.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pool of a dead shim with no pod is left: %v", err)
	}
}

// A shared shim that died holding a pod whose start was killed after it
// gave the pod away (no `shim delete` ever comes for that pod: containerd
// only removes its bundle) is taken out of the pool by the `shim delete`
// of any other pod of the pool, once that pod's bundle is gone.
func TestShimDeleteReleasesPodsOfADeadShimWhoseBundleIsGone(t *testing.T) {
	ps := newPooledStart(t, 2)
	bundles := t.TempDir()
	dead := filepath.Join(ps.socketDir, "dead")
	if err := os.WriteFile(dead, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(bundles, "still-here"), 0o700); err != nil {
		t.Fatal(err)
	}
	locked, err := Lock(context.Background(), ps.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{locked.AddShim("100", "unix://"+dead), locked.Assign("100", "never-came"), locked.AddShim("200", "unix://"+dead+"2"), locked.Assign("200", "still-here")} {
		if step != nil {
			t.Fatal(step)
		}
	}
	locked.Unlock()
	Leave(ps.ctx, ps.dir, "other", filepath.Join(bundles, "other"))
	shims := ps.shims(t)
	if len(shims) != 1 || shims[0].Name != "200" {
		t.Errorf("pool after the delete: %+v, want only shim 200 (its pod's bundle is still there: its own delete will come)", shims)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead shim's socket is left: %v", err)
	}
}
