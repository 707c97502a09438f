package installer

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeHost stands in for a node's containerd and systemd: a restart loads
// the handlers the drop-in on disk declares (none when broken), as
// containerd would, and CRI then lists them.
type fakeHost struct {
	mu       sync.Mutex
	o        *Options
	systemd  bool // a systemd unit: restarts happen; else ErrNotSystemd
	broken   bool // containerd comes back without the handlers
	live     map[string]string
	restarts []restartCall
	polls    int // CRI status calls
	// onRestart, when set, runs on each restart, after it.
	onRestart func(ctx context.Context, n int)
}

// restartCall is what a restart was asked with.
type restartCall struct {
	ifRunning   bool
	ctxErr      error // the context's error when asked
	hasDeadline bool
}

func (h *fakeHost) handlers(ctx context.Context) (map[string]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.polls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string]string{"runc": "io.containerd.runc.v2"}
	for k, v := range h.live {
		out[k] = v
	}
	return out, nil
}

func (h *fakeHost) restartUnit(ctx context.Context, ifRunning bool) error {
	h.mu.Lock()
	_, hasDeadline := ctx.Deadline()
	h.restarts = append(h.restarts, restartCall{ifRunning, ctx.Err(), hasDeadline})
	n := len(h.restarts)
	if !h.systemd {
		h.mu.Unlock()
		return ErrNotSystemd
	}
	if err := ctx.Err(); err != nil {
		h.mu.Unlock()
		return err
	}
	h.load()
	hook := h.onRestart
	h.mu.Unlock()
	if hook != nil {
		hook(ctx, n)
	}
	return nil
}

// load is containerd starting on the files on disk.
func (h *fakeHost) load() {
	h.live = map[string]string{}
	if _, err := os.Stat(h.o.Host(h.o.DropInPath())); err == nil && !h.broken {
		for _, name := range h.o.Handlers {
			h.live[name] = h.o.ShimPath()
		}
	}
}

func (h *fakeHost) pollCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.polls
}

// restartByHand is someone restarting containerd on the node, not
// through the installer.
func (h *fakeHost) restartByHand() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.load()
}

func (h *fakeHost) restartCalls() []restartCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]restartCall(nil), h.restarts...)
}

// testNode is the node the test installer reports on.
const testNode = "n1"

// newTestInstaller is an installer on a host root in a temporary directory
// holding a containerd config that imports no drop-ins, with fakeHost for
// containerd and systemd and a fake API server holding node testNode.
func newTestInstaller(t *testing.T, args ...string) (*installer, *fakeHost, *fake.Clientset, *bytes.Buffer) {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), ShimName)
	if err := os.WriteFile(src, []byte("shim v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := ParseArgs(append([]string{"install", "--host-root", root, "--shim-source", src, "--node-name", "",
		"--restart-timeout", "2s"}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	config := o.Host(o.Config)
	if err := os.MkdirAll(filepath.Dir(config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(testConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &fakeHost{o: o, systemd: true}
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}})
	// The fake API server does not generate names, as the real one does.
	var events atomic.Int64
	client.PrependReactor("create", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if ev, ok := a.(k8stesting.CreateAction).GetObject().(*corev1.Event); ok && ev.Name == "" {
			ev.Name = ev.GenerateName + strconv.FormatInt(events.Add(1), 10)
		}
		return false, nil, nil
	})
	var out bytes.Buffer
	in := &installer{o: o, node: &Node{name: testNode, client: client, out: &out}, out: &out,
		version:     func(context.Context) (string, error) { return "v2.4.2", nil },
		handlers:    h.handlers,
		restartUnit: h.restartUnit,
	}
	return in, h, client, &out
}

const testConfig = "version = 3\n\n[a]\n  b = 1\n"

// hostFiles is every file under the host root with its bytes.
func hostFiles(t *testing.T, o *Options) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(o.HostRoot, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		files[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func getNode(t *testing.T, client *fake.Clientset) *corev1.Node {
	t.Helper()
	node, err := client.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node
}

func eventReasons(t *testing.T, client *fake.Clientset) []string {
	t.Helper()
	events, err := client.CoreV1().Events(metav1.NamespaceDefault).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}
