//go:build e2e

package e2e

import (
	"context"
	"flag"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testenv"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/integration/testimage"
)

// pauseImage tells whether handler runc's pause image is in the node's
// image store yet. The suite imports it (ensurePauseImage) only before the
// first pod on handler runc: until then the store holds no pause image, as
// on a node where only handler pause runs pods.
var pauseImage struct {
	sync.Mutex
	imported bool
}

// ensurePauseImage imports, once, the pause image handler runc (CRI's
// podsandbox mode) runs its pods on: built from the shim's own pause binary,
// under the name of CRI's sandbox image, so no registry is reached.
func ensurePauseImage(t *testing.T) {
	t.Helper()
	pauseImage.Lock()
	defer pauseImage.Unlock()
	if pauseImage.imported {
		return
	}
	binary, err := os.ReadFile(filepath.Join(c.repo, "pod", "pause", "pause_"+runtime.GOARCH+".elf"))
	if err != nil {
		t.Fatalf("handler runc's pause image: %v", err)
	}
	archive := filepath.Join(c.dir, "pause.tar")
	if err := testimage.WriteArchive(testimage.Pause(c.sandboxImage, binary), archive); err != nil {
		t.Fatalf("handler runc's pause image: %v", err)
	}
	if err := testimage.Import(c.env.CtrArgs(testenv.CRINamespace), archive); err != nil {
		t.Fatalf("handler runc's pause image: import %s: %v", c.sandboxImage, err)
	}
	pauseImage.imported = true
}

// isPauseImage tells an image name that is CRI's sandbox image, or whose
// repository is named pause (registry.k8s.io/pause, any tag or digest).
func isPauseImage(name string) bool {
	if name == c.sandboxImage {
		return true
	}
	repo, _, _ := strings.Cut(name, "@")
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return path.Base(repo) == "pause"
}

// storeImages lists the images of containerd's store in CRI's namespace
// (k8s.io), and those of them that are pause images.
func storeImages(t *testing.T, ctx context.Context) (all, pause []string) {
	t.Helper()
	imgs, err := c.env.Client.ImageService().List(testenv.CRIContext())
	if err != nil {
		t.Fatalf("containerd's images: %v", err)
	}
	for _, img := range imgs {
		all = append(all, img.Name)
		if isPauseImage(img.Name) {
			pause = append(pause, img.Name)
		}
	}
	return all, pause
}

// criHasImage tells whether CRI's image service has image (what CRI looks
// up before it would pull the sandbox image).
func criHasImage(t *testing.T, ctx context.Context, image string) bool {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+c.env.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := cri.NewImageServiceClient(conn).ImageStatus(ctx, &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: image}})
	if err != nil {
		t.Fatalf("CRI ImageStatus %s: %v", image, err)
	}
	return st.Image != nil
}

func shuffled() bool {
	f := flag.Lookup("test.shuffle")
	return f != nil && f.Value.String() != "off"
}

// TestNoPauseImage: pods on handler pause need no pause image, and CRI
// pulls none for them. While only handler pause has run pods (this test
// runs first: its file sorts first), containerd's image store holds no
// image named like a pause image, nor the sandbox image CRI is configured
// with (containerd's pinned_images.sandbox), and CRI does not know that
// image. Then the same check finds the image handler runc is given.
func TestNoPauseImage(t *testing.T) {
	ctx := requireCluster(t)
	pauseImage.Lock()
	imported := pauseImage.imported
	pauseImage.Unlock()
	if imported {
		if shuffled() {
			t.Skip("a pod on handler runc ran before this test (-shuffle): the store holds its pause image by design")
		}
		t.Fatal("handler runc's pause image was imported before this test: it must run before any pod on handler runc")
	}
	if all, pause := storeImages(t, ctx); len(pause) > 0 {
		t.Fatalf("the image store holds pause images %v before any pod ran (all: %v)", pause, all)
	}

	pod := createPod(t, ctx, newPod("nopause", "pause", sh("app", idle), sh("sidecar", idle)))
	host := newPod("nopause-hostnet", "pause", sh("app", idle))
	host.Spec.HostNetwork = true
	host = createPod(t, ctx, host)
	waitPod(t, ctx, pod.Name, "Ready", ready)
	waitPod(t, ctx, host.Name, "Ready", ready)

	// The node has run pods on handler pause only.
	rt := testCRI(t)
	sbs, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs.Items) < 2 {
		t.Fatalf("CRI lists %d sandboxes, want at least the test's 2", len(sbs.Items))
	}
	for _, sb := range sbs.Items {
		record(sb.Id)
		if sb.RuntimeHandler != "pause" {
			t.Fatalf("sandbox %s (pod %s) ran on handler %q: not a node where only handler pause ran pods", sb.Id, sb.Metadata.GetName(), sb.RuntimeHandler)
		}
	}

	all, pause := storeImages(t, ctx)
	if len(pause) > 0 {
		t.Errorf("with only handler pause's pods run, the image store holds pause images %v (all: %v)", pause, all)
	}
	if criHasImage(t, ctx, c.sandboxImage) {
		t.Errorf("with only handler pause's pods run, CRI has the sandbox image %s", c.sandboxImage)
	}
	t.Logf("images in namespace %s with handler pause's pods running: %v", testenv.CRINamespace, all)

	// The check is not blind: once handler runc's pause image is in, it
	// finds it.
	ensurePauseImage(t)
	if _, pause := storeImages(t, ctx); !slices.Contains(pause, c.sandboxImage) {
		t.Errorf("pause images %v after importing %s: the check misses it", pause, c.sandboxImage)
	}
}
