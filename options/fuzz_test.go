package options

import (
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// checkAccepted fails t if o, accepted, breaks what the shim relies on.
func checkAccepted(t *testing.T, o Options) {
	t.Helper()
	switch {
	case o.PauseUID == 0 || o.PauseGID == 0 || o.PauseUID == math.MaxUint32 || o.PauseGID == math.MaxUint32:
		t.Fatalf("accepted pause ids %d:%d", o.PauseUID, o.PauseGID)
	case o.StartTimeout <= 0 || o.DefaultStopTimeout < 0:
		t.Fatalf("accepted timeouts %v, %v", o.StartTimeout, o.DefaultStopTimeout)
	case o.ShimCgroup != "" && (!strings.HasPrefix(o.ShimCgroup, "/") || path.Clean(o.ShimCgroup) == "/" ||
		slices.Contains(strings.Split(o.ShimCgroup, "/"), "..")):
		t.Fatalf("accepted ShimCgroup %q, outside the cgroup hierarchies", o.ShimCgroup)
	case o.Root != "" && !strings.HasPrefix(o.Root, "/"):
		t.Fatalf("accepted Root %q", o.Root)
	case o.LogLevel != "" && !slices.Contains(logLevels, o.LogLevel):
		t.Fatalf("accepted LogLevel %q", o.LogLevel)
	}
}

// FuzzParse: whatever options table a runtime's configuration holds, Parse
// never panics, refuses it as InvalidArgument or accepts options the shim
// can use, which reach the shim server (through Env) unchanged.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"PodsPerShim = 0\n",
		"PauseUID = 65532\nLogLevel = \"debug\"\n",
		"BinaryName = \"runc\"\nRoot = \"/run/containerd/runc\"\nShimCgroup = \"\"\nPauseUID = 65535\nPauseGID = 65535\n" +
			"DefaultStopTimeout = \"0s\"\nStartTimeout = \"4m\"\nLogLevel = \"\"\nSystemdCgroup = false\nPodsPerShim = 1\n",
		"ShimCgroup = \"/system.slice/pause-shims\"\nTypeUrl = \"containerd.runtime.v1.Options\"\n",
		"ShimCgroup = \"/system.slice/../../x\"\n",
		"PauseUID = 0\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse(data)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		checkAccepted(t, o)
		old, had := os.LookupEnv(Env)
		defer func() {
			if had {
				os.Setenv(Env, old)
			} else {
				os.Unsetenv(Env)
			}
		}()
		os.Setenv(Env, o.Encode())
		back, err := FromEnv()
		if err != nil || back != o {
			t.Fatalf("through %s: %+v, %v; want %+v", Env, back, err, o)
		}
	})
}

// FuzzFromEnv: whatever the server finds in Env, FromEnv never panics, and
// refuses (InvalidArgument) what `start` would not have passed.
func FuzzFromEnv(f *testing.F) {
	f.Add(Default().Encode())
	f.Add(`{"BinaryName":"/opt/runc","Root":"/run/pause-runc","ShimCgroup":"/system.slice/pause-shims","PauseUID":4321,"PauseGID":4322,"DefaultStopTimeout":"1m30s","StartTimeout":"10s","LogLevel":"debug","PodsPerShim":0}`)
	f.Add(`{"PauseUID":0,"PauseGID":1}`)
	f.Add(`{"StartTimeout":"-1s"}`)
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" || strings.IndexByte(v, 0) >= 0 {
			return // the environment holds neither
		}
		old, had := os.LookupEnv(Env)
		defer func() {
			if had {
				os.Setenv(Env, old)
			} else {
				os.Unsetenv(Env)
			}
		}()
		os.Setenv(Env, v)
		o, err := FromEnv()
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		checkAccepted(t, o)
	})
}
