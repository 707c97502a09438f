package installer

import (
	"os"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestParseStatus reads the verbose CRI status containerd 2.4.2 answered
// with the rendered drop-in imported (testdata/cri-status.json, only its
// directories renamed).
func TestParseStatus(t *testing.T) {
	data, err := os.ReadFile("testdata/cri-status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st cri.StatusResponse
	if err := protojson.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	live, err := ParseStatus(&st)
	if err != nil {
		t.Fatal(err)
	}
	const shim = "/usr/local/bin/containerd-shim-pause-v2"
	want := map[string]string{"pause": shim, "pause-dense": shim, "runc": "io.containerd.runc.v2"}
	if !reflect.DeepEqual(live, want) {
		t.Fatalf("got %v, want %v", live, want)
	}
	if m := missingHandlers(live, []string{"pause", "pause-dense"}, shim); len(m) != 0 {
		t.Errorf("missing %v", m)
	}
	if m := missingHandlers(live, []string{"pause", "pause-big"}, shim); !reflect.DeepEqual(m, []string{"pause-big"}) {
		t.Errorf("missing %v, want pause-big", m)
	}
	// The handlers on another shim binary are not ours.
	if m := missingHandlers(live, []string{"pause"}, "/opt/bin/"+ShimName); !reflect.DeepEqual(m, []string{"pause"}) {
		t.Errorf("missing %v, want pause", m)
	}
	st.Info["config"] = "{"
	if _, err := ParseStatus(&st); err == nil {
		t.Error("a broken info config was accepted")
	}
}

func TestCheckContainerdVersion(t *testing.T) {
	for v, ok := range map[string]bool{"v2.4.2": true, "2.0.0": true, "2.4.2+unknown": true, "v1.7.27": false, "1.6.0": false, "garbage": false} {
		if err := CheckContainerdVersion(v); (err == nil) != ok {
			t.Errorf("%s: %v", v, err)
		}
	}
}
