package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
)

func TestParseEveryOption(t *testing.T) {
	o, err := Parse([]byte(`
BinaryName = "/opt/runc/bin/runc"
Root = "/run/pause-runc"
ShimCgroup = "/system.slice/pause-shims"
PauseUID = 4321
PauseGID = 4322
DefaultStopTimeout = "1m30s"
StartTimeout = "10s"
LogLevel = "debug"
PodsPerShim = 0
TypeUrl = "containerd.runtime.v1.Options"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		BinaryName: "/opt/runc/bin/runc", Root: "/run/pause-runc", ShimCgroup: "/system.slice/pause-shims",
		PauseUID: 4321, PauseGID: 4322, DefaultStopTimeout: Duration(90 * time.Second), StartTimeout: Duration(10 * time.Second), LogLevel: "debug",
		PodsPerShim: 0,
	}
	if o != want {
		t.Fatalf("got %+v, want %+v", o, want)
	}
	// What start passes to the server comes back the same.
	t.Setenv(Env, o.Encode())
	back, err := FromEnv()
	if err != nil || back != want {
		t.Fatalf("through %s: got %+v, %v; want %+v", Env, back, err, want)
	}
	if r := o.Runc(); r.BinaryName != want.BinaryName || r.Root != want.Root {
		t.Fatalf("runc options %+v do not carry BinaryName and Root", r)
	}
}

func TestDefaults(t *testing.T) {
	for name, body := range map[string]string{"empty table": "", "containerd's keys only": `TypeUrl = "x"`} {
		o, err := Parse([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o != Default() || o.PauseUID != 65535 || o.PauseGID != 65535 || o.DefaultStopTimeout != 0 || o.StartTimeout != Duration(4*time.Minute) || o.PodsPerShim != 1 {
			t.Fatalf("%s: got %+v, want the defaults", name, o)
		}
	}
	t.Setenv(Env, "")
	if o, err := FromEnv(); err != nil || o != Default() {
		t.Fatalf("no %s: got %+v, %v", Env, o, err)
	}
	o, err := FromBootstrap(&bootapi.BootstrapParams{})
	if err != nil || o != Default() {
		t.Fatalf("no extension: got %+v, %v", o, err)
	}
}

func TestBadOptions(t *testing.T) {
	for body, wantMsg := range map[string]string{
		`PauseUser = 1000`:                "unknown option \"PauseUser\"",
		`pauseuid = 1000`:                 "unknown option \"pauseuid\"",
		`SystemdCgroup = "yes"`:           "SystemdCgroup = yes: want true or false",
		`PauseUID = 0`:                    "must not be 0",
		`PauseGID = 0`:                    "must not be 0",
		`PauseUID = -1`:                   "PauseUID",
		`PauseUID = 4294967296`:           "PauseUID",
		`PauseUID = 4294967295`:           "below 4294967295",
		`PauseUID = "nobody"`:             "PauseUID",
		`DefaultStopTimeout = 30`:         "DefaultStopTimeout",
		`DefaultStopTimeout = "30"`:       "is not a duration",
		`DefaultStopTimeout = "-5s"`:      "is negative",
		`StartTimeout = "0s"`:             "StartTimeout must be above 0",
		`StartTimeout = 240`:              "StartTimeout",
		`LogLevel = "loud"`:               "LogLevel \"loud\"",
		`PodsPerShim = -1`:                "PodsPerShim = -1: want a whole number",
		`PodsPerShim = "all"`:             "PodsPerShim",
		`PodsPerShim = 2.5`:               "PodsPerShim",
		`ShimCgroup = "pause"`:            "not an absolute cgroup path",
		`ShimCgroup = "/shims/../../x"`:   "ShimCgroup \"/shims/../../x\" climbs",
		`ShimCgroup = "/"`:                "the root cgroup",
		`Root = "run/runc"`:               "not an absolute path",
		`BinaryName = [ "runc" ]`:         "BinaryName",
		"LogLevel = \"debug\"\nLogLevel=": "runtime options",
	} {
		_, err := Parse([]byte(body))
		if err == nil {
			t.Errorf("%s: accepted", body)
			continue
		}
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("%s: got %v, want InvalidArgument naming %q", body, err, wantMsg)
		}
	}
}

func TestFromBootstrap(t *testing.T) {
	// The CRI options table of a runtime that is not runc arrives as TOML.
	params := &bootapi.BootstrapParams{}
	if err := params.AddExtension(&runtimeoptions.Options{ConfigBody: []byte("PauseUID = 1001\nLogLevel = \"warn\"\n")}); err != nil {
		t.Fatal(err)
	}
	o, err := FromBootstrap(params)
	if err != nil || o.PauseUID != 1001 || o.PauseGID != DefaultPauseGID || o.LogLevel != "warn" {
		t.Fatalf("got %+v, %v", o, err)
	}

	// Or as the path of a file (the table's ConfigPath, ctr's --runtime-config-path).
	path := filepath.Join(t.TempDir(), "pause.toml")
	if err := os.WriteFile(path, []byte(`BinaryName = "/usr/local/sbin/runc"`), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err = FromRuntimeOptions(&runtimeoptions.Options{ConfigPath: path})
	if err != nil || o.BinaryName != "/usr/local/sbin/runc" {
		t.Fatalf("from ConfigPath: got %+v, %v", o, err)
	}
	if _, err := FromRuntimeOptions(&runtimeoptions.Options{ConfigPath: path + ".missing"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("missing ConfigPath: got %v", err)
	}

	// runc's options, from a client that speaks runc.v2's.
	params = &bootapi.BootstrapParams{}
	if err := params.AddExtension(&runcoptions.Options{BinaryName: "crun", Root: "/run/crun", ShimCgroup: "/shims"}); err != nil {
		t.Fatal(err)
	}
	o, err = FromBootstrap(params)
	if err != nil || o.BinaryName != "crun" || o.Root != "/run/crun" || o.ShimCgroup != "/shims" || o.PauseUID != DefaultPauseUID {
		t.Fatalf("runc options: got %+v, %v", o, err)
	}
	params = &bootapi.BootstrapParams{}
	if err := params.AddExtension(&runcoptions.Options{SystemdCgroup: true}); err != nil {
		t.Fatal(err)
	}
	if o, err := FromBootstrap(params); err != nil || !o.SystemdCgroup || !o.Runc().SystemdCgroup {
		t.Fatalf("runc options with SystemdCgroup: got %+v, %v", o, err)
	}
}

func TestFromEnvRefusesBadValues(t *testing.T) {
	t.Setenv(Env, `{"PauseUID":0,"PauseGID":1}`)
	if _, err := FromEnv(); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("got %v", err)
	}
	t.Setenv(Env, `{`)
	if _, err := FromEnv(); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("got %v", err)
	}
}
