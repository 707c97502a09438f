// Package options reads the runtime options an operator gives the shim:
// the `options` table of the runtime in containerd's CRI configuration, or
// runc's own options from a client that sends those.
package options

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
)

// containerd hands `shim start` the table as a runtimeoptions.v1.Options
// (the table as TOML, or the path of a TOML file). `start` checks the
// options, then passes them to the shim server in its environment; the
// server applies them to the pod and its containers.
//
// The package sits at the top level, beside the bootstrap (package shim)
// and the server (packages task and pod), because both ends read it and
// neither should import the other: it imports no package of this module.

// Defaults of the options an operator leaves out.
const (
	// DefaultPauseUID and DefaultPauseGID are the conventional "nobody" of
	// container images, never an id the host gives a person.
	DefaultPauseUID = 65535
	DefaultPauseGID = 65535
	// DefaultRuncBinary is looked up in the shim's PATH, as runc.v2 does.
	DefaultRuncBinary = "runc"
	// DefaultRuncRoot is runc.v2's, so runc's tools find the containers.
	DefaultRuncRoot = "/run/containerd/runc"
	// DefaultStartTimeout is the kubelet's own deadline for RunPodSandbox
	// (twice its 2-minute runtime request timeout).
	DefaultStartTimeout = 4 * time.Minute
)

// Env carries the checked options from `shim start` to the shim server.
const Env = "PAUSE_SHIM_OPTIONS"

// ContainerdRootEnv carries containerd's root directory from `shim start`
// (containerd's child, which finds it cheaply) to the shim server, which
// needs it for a CRI pod's files.
const ContainerdRootEnv = "PAUSE_SHIM_CONTAINERD_ROOT"

// SocketDirEnv carries containerd's shim socket directory from `shim start`
// to the shim server, which removes its pods' sockets there: a shim that
// serves many pods cannot read it from the bundle it started in, which may
// be gone.
const SocketDirEnv = "PAUSE_SHIM_SOCKET_DIR"

// Options are the runtime options. Keys are spelled as runc.v2's (BinaryName,
// Root, ShimCgroup), so a runc runtime's table carries over.
type Options struct {
	// BinaryName is the runc binary that runs the pod's containers.
	BinaryName string `json:",omitempty"`
	// Root is runc's state directory; containerd's namespace is appended.
	Root string `json:",omitempty"`
	// ShimCgroup is an existing cgroup the shim server is moved into.
	ShimCgroup string `json:",omitempty"`
	// PauseUID and PauseGID are the credentials of the pause task (inside
	// the pod's user namespace when it has one) when the pod names none of
	// its own (a CRI pod's run_as_user and run_as_group, other than 0).
	PauseUID uint32
	PauseGID uint32
	// DefaultStopTimeout is how long StopSandbox waits for the containers
	// to exit on SIGTERM when the caller gives no timeout (CRI does not: it
	// has already stopped them with their grace periods); 0 kills at once.
	DefaultStopTimeout Duration `json:",omitempty"`
	// StartTimeout is how long a pod may stay created but not started
	// before the shim removes it and exits. containerd's CRI shuts a sandbox
	// down only when it fails after StartSandbox: one whose pause image pull
	// or start failed would keep its shim for ever.
	StartTimeout Duration `json:",omitempty"`
	// LogLevel of the shim server, over containerd's own level:
	// trace, debug, info, warn, error.
	LogLevel string `json:",omitempty"`
	// SystemdCgroup makes the cgroups the shim chooses itself systemd
	// units: a pod of its own gets a slice, a container without a cgroup
	// path a scope (runc's systemd driver). A cgroup path given in either
	// form (CRI's follows the kubelet's driver) is honoured as it is.
	SystemdCgroup bool `json:",omitempty"`
	// PodsPerShim is how many pods (sandboxes) one shim process serves:
	// 1, the default, gives each pod a shim of its own; N > 1 lets up to N
	// pods share one; 0 sets no limit (one shim per containerd namespace
	// and options). A shared shim saves a Go runtime per pod; its crash
	// takes all its pods. Tasks started outside a sandbox keep a shim per
	// group, as under runc.v2.
	PodsPerShim uint32
}

// containerdKeys are keys of runtimeoptions.v1.Options itself that
// containerd may leave in the table; they are not the shim's.
var containerdKeys = []string{"TypeUrl", "ConfigPath"}

// Default returns the options of a runtime without an options table.
func Default() Options {
	return Options{PauseUID: DefaultPauseUID, PauseGID: DefaultPauseGID, StartTimeout: Duration(DefaultStartTimeout), PodsPerShim: 1}
}

// Keys lists the options' keys, for error messages and documentation.
func Keys() []string {
	return []string{"BinaryName", "Root", "ShimCgroup", "PauseUID", "PauseGID", "DefaultStopTimeout", "StartTimeout", "LogLevel", "SystemdCgroup", "PodsPerShim"}
}

// Duration is a time.Duration written as Go writes one ("30s", "1m30s").
type Duration time.Duration

// UnmarshalText reads "30s"; a bare number is refused, its unit unknown.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\"", text)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration back as "30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// FromBootstrap returns the options containerd gave `shim start`: the
// runtime's options table, or runc's options, or the defaults.
func FromBootstrap(params *bootapi.BootstrapParams) (Options, error) {
	var generic runtimeoptions.Options
	found, err := params.FindExtension(&generic)
	if err != nil {
		return Options{}, invalid(err)
	}
	if found {
		return FromRuntimeOptions(&generic)
	}
	var runc runcoptions.Options
	if found, err = params.FindExtension(&runc); err != nil {
		return Options{}, invalid(err)
	}
	o := Default()
	if found {
		o.BinaryName, o.Root, o.ShimCgroup, o.SystemdCgroup = runc.BinaryName, runc.Root, runc.ShimCgroup, runc.SystemdCgroup
	}
	return o, nil
}

// FromRuntimeOptions reads the options table containerd passes for a
// runtime that is not runc: the table itself as TOML (ConfigBody), or the
// path of a TOML file that holds it (ConfigPath).
func FromRuntimeOptions(r *runtimeoptions.Options) (Options, error) {
	body := r.GetConfigBody()
	if path := r.GetConfigPath(); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Options{}, invalid(fmt.Errorf("ConfigPath: %w", err))
		}
		body = data
	}
	return Parse(body)
}

// Parse reads the options from TOML. An unknown key, a value of the wrong
// type or out of range is an InvalidArgument error that names the key.
func Parse(data []byte) (Options, error) {
	o := Default()
	var table map[string]any
	if err := toml.Unmarshal(data, &table); err != nil {
		return Options{}, invalid(err)
	}
	for key, value := range table {
		if err := o.set(key, value); err != nil {
			return Options{}, invalid(err)
		}
	}
	return o, o.check()
}

// set reads one key of the table; TOML gives strings, int64s and bools.
func (o *Options) set(key string, value any) error {
	str := func(dst *string) error {
		v, ok := value.(string)
		if !ok {
			return fmt.Errorf("%s = %v: want a string", key, value)
		}
		*dst = v
		return nil
	}
	id := func(dst *uint32) error {
		v, ok := value.(int64)
		if !ok || v < 0 || v > math.MaxUint32 {
			return fmt.Errorf("%s = %v: want a number from 1 to 4294967294", key, value)
		}
		*dst = uint32(v)
		return nil
	}
	duration := func(dst *Duration) error {
		v, ok := value.(string)
		if !ok {
			return fmt.Errorf("%s = %v: want a duration such as \"30s\"", key, value)
		}
		if err := dst.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}
	switch key {
	case "BinaryName":
		return str(&o.BinaryName)
	case "Root":
		return str(&o.Root)
	case "ShimCgroup":
		return str(&o.ShimCgroup)
	case "LogLevel":
		return str(&o.LogLevel)
	case "PauseUID":
		return id(&o.PauseUID)
	case "PauseGID":
		return id(&o.PauseGID)
	case "DefaultStopTimeout":
		return duration(&o.DefaultStopTimeout)
	case "StartTimeout":
		return duration(&o.StartTimeout)
	case "SystemdCgroup":
		v, ok := value.(bool)
		if !ok {
			return fmt.Errorf("%s = %v: want true or false", key, value)
		}
		o.SystemdCgroup = v
		return nil
	case "PodsPerShim":
		n, ok := value.(int64)
		if !ok || n < 0 || n > math.MaxUint32 {
			return fmt.Errorf("%s = %v: want a whole number, 0 (no limit) or more", key, value)
		}
		o.PodsPerShim = uint32(n)
		return nil
	}
	if slices.Contains(containerdKeys, key) {
		return nil
	}
	return fmt.Errorf("unknown option %q (the options are %s)", key, strings.Join(Keys(), ", "))
}

func (o Options) check() error {
	// The pause task's own check (pod/pause) refuses root too; saying so
	// here fails the runtime at its first pod, with the option's name.
	if o.PauseUID == 0 || o.PauseGID == 0 {
		return invalid(fmt.Errorf("PauseUID and PauseGID must not be 0: the pause task never runs as root"))
	}
	if o.PauseUID == math.MaxUint32 || o.PauseGID == math.MaxUint32 {
		return invalid(fmt.Errorf("PauseUID and PauseGID must be below 4294967295 (the kernel's \"no id\")"))
	}
	if o.ShimCgroup != "" && !strings.HasPrefix(o.ShimCgroup, "/") {
		return invalid(fmt.Errorf("ShimCgroup %q is not an absolute cgroup path", o.ShimCgroup))
	}
	// Joined to a hierarchy's mount point, a path that climbs names a
	// directory outside /sys/fs/cgroup.
	if slices.Contains(strings.Split(o.ShimCgroup, "/"), "..") {
		return invalid(fmt.Errorf("ShimCgroup %q climbs with \"..\": name a cgroup below the root", o.ShimCgroup))
	}
	if o.ShimCgroup != "" && path.Clean(o.ShimCgroup) == "/" {
		return invalid(fmt.Errorf("ShimCgroup %q is the root cgroup: name one below it", o.ShimCgroup))
	}
	if o.Root != "" && !strings.HasPrefix(o.Root, "/") {
		return invalid(fmt.Errorf("Root %q is not an absolute path", o.Root))
	}
	if o.StartTimeout == 0 {
		return invalid(fmt.Errorf("StartTimeout must be above 0"))
	}
	if o.LogLevel != "" && !slices.Contains(logLevels, o.LogLevel) {
		return invalid(fmt.Errorf("LogLevel %q: want trace, debug, info, warn or error", o.LogLevel))
	}
	return nil
}

func invalid(err error) error {
	return fmt.Errorf("runtime options: %w: %w", err, errdefs.ErrInvalidArgument)
}

// logLevels are the levels LogLevel takes, as containerd's own log.level.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

// Encode writes the options for Env.
func (o Options) Encode() string {
	data, _ := json.Marshal(o)
	return string(data)
}

// FromEnv returns the options `start` passed in Env, or the defaults.
func FromEnv() (Options, error) {
	o := Default()
	v := os.Getenv(Env)
	if v == "" {
		return o, nil
	}
	if err := json.Unmarshal([]byte(v), &o); err != nil {
		return Options{}, invalid(err)
	}
	return o, o.check()
}

// Runc returns the options runc.v2's task service takes for a container.
func (o Options) Runc() *runcoptions.Options {
	return &runcoptions.Options{BinaryName: o.BinaryName, Root: o.Root, SystemdCgroup: o.SystemdCgroup}
}
