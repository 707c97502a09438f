package installer

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseArgsDefaults(t *testing.T) {
	o, err := ParseArgs([]string{"install"}, func(k string) string {
		if k == "NODE_NAME" {
			return "node-1"
		}
		return ""
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := &Options{
		Command: "install", HostRoot: "/host", Config: "/etc/containerd/config.toml",
		DropInDir: "/etc/containerd/conf.d", BinDir: "/usr/local/bin",
		Handlers: []string{"pause", "pause-dense"}, ContainerdAddress: "/run/containerd/containerd.sock",
		ContainerdUnit: "containerd.service", SystemdBus: "/run/dbus/system_bus_socket", NodeName: "node-1",
		Label: "containerd-shim-pause-v2/ready=true", RestartTimeout: 2 * time.Minute,
		ShimSource: "/containerd-shim-pause-v2", DoneFile: DoneFile,
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
	if o.Host(o.Config) != "/host/etc/containerd/config.toml" || o.ImportGlob() != "/etc/containerd/conf.d/*.toml" ||
		o.ShimPath() != "/usr/local/bin/containerd-shim-pause-v2" {
		t.Errorf("paths: %s %s %s", o.Host(o.Config), o.ImportGlob(), o.ShimPath())
	}
}

func TestParseArgsEnvAndFlags(t *testing.T) {
	env := map[string]string{
		"PAUSE_HOST_ROOT": "/rootfs", "PAUSE_CONFIG": "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
		"PAUSE_HANDLERS": "pause, pause-dense ,x", "PAUSE_DENSE_PODS_PER_SHIM": "10",
		"PAUSE_RESTART_TIMEOUT": "30s", "PAUSE_FORCE": "true", "NODE_NAME": "from-downward-api",
		"PAUSE_NODE_NAME": "from-env",
	}
	o, err := ParseArgs([]string{"uninstall", "--host-root", "/flag", "--label=a/b=c"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.HostRoot != "/flag" || o.Config != env["PAUSE_CONFIG"] || !reflect.DeepEqual(o.Handlers, []string{"pause", "pause-dense", "x"}) ||
		o.DensePodsPerShim != 10 || o.RestartTimeout != 30*time.Second || !o.Force || o.NodeName != "from-env" {
		t.Fatalf("%+v", o)
	}
	if k, v, _ := o.LabelKV(); k != "a/b" || v != "c" {
		t.Errorf("label %q=%q", k, v)
	}
	// An empty --node-name leaves the node alone.
	o, err = ParseArgs([]string{"ready", "--node-name", ""}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || o.NodeName != "" {
		t.Fatalf("%v %+v", err, o)
	}
}

func TestParseArgsErrors(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"remove"}, "unknown subcommand"},
		{[]string{"install", "--handlers", "Pause"}, "not a valid handler"},
		{[]string{"install", "--handlers", ","}, "at least one handler"},
		{[]string{"install", "--restart-timeout", "soon"}, "restart-timeout"},
		{[]string{"install", "--dense-pods-per-shim", "-1"}, "dense-pods-per-shim"},
		{[]string{"install", "--label", "ready"}, "key=value"},
		{[]string{"install", "--config", "etc/config.toml"}, "absolute"},
		{[]string{"install", "--force"}, "not defined"},
		{[]string{"install", "extra"}, "unexpected"},
	} {
		if _, err := ParseArgs(tc.args, none, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
