package testenv

import "fmt"

// WithRegistryMirror sends every image pull to the registry at host:port
// (plain HTTP, on loopback): images keep their upstream names.
func WithRegistryMirror(hostport string) Option {
	return func(e *Env) { e.mirror = hostport }
}

// WithDropIn makes containerd import the given drop-in (a glob, as in
// containerd's imports) instead of the repository's deploy/ one.
func WithDropIn(pattern string) Option {
	return func(e *Env) { e.dropIn = pattern }
}

// WithPodSubnet gives the CNI bridge a subnet other than PodSubnet (a
// run with more live pods than a /24 holds).
func WithPodSubnet(cidr string) Option {
	return func(e *Env) { e.podSubnet = cidr }
}

// WithLogLevel sets containerd's log level (debug by default), which is
// also the level containerd asks of the shims it starts.
func WithLogLevel(level string) Option {
	return func(e *Env) { e.logLevel = level }
}

// WithSharedHost is for a suite that may run beside others on this host
// (make e2e): CRI's network namespaces go under containerd's state
// directory, where the mount check finds any left, and Leaks skips the
// host-wide scan of /var/run/netns, which would count the other suites'
// pods. Pause tasks are counted by their shim (see ownsOrOrphaned) either way.
func WithSharedHost() Option {
	return func(e *Env) { e.sharedHost = true }
}

// WithDefaultRuntime makes handler CRI's default runtime
// (default_runtime_name), the one pods without a RuntimeClass get; runc
// unless set.
func WithDefaultRuntime(handler string) Option {
	return func(e *Env) { e.defaultRuntime = handler }
}

// WithEnv adds variables (KEY=value) to containerd's environment, which
// every shim process it starts inherits; a later PATH wins over the test's.
func WithEnv(kv ...string) Option {
	return func(e *Env) { e.extraEnv = append(e.extraEnv, kv...) }
}

// Runtime is a CRI runtime handler on this shim.
type Runtime struct {
	Name string
	// Options is the body of its options table: key = value lines.
	Options string
	// PullPauseImage leaves CRI's pause image pull on, as a handler that
	// forgot disable_pause_image_pull would.
	PullPauseImage bool
	// Binary, when set, is the shim's absolute path (runtime_type), as
	// the node installer's drop-in names it, or another runtime type.
	Binary string
	// Sandboxer is CRI's sandboxer for it: "shim" unless set.
	Sandboxer string
}

// WithRuntime adds a CRI runtime handler on this shim.
func WithRuntime(r Runtime) Option {
	return func(e *Env) {
		table := `plugins."io.containerd.cri.v1.runtime".containerd.runtimes.` + r.Name
		runtimeType := RuntimeName
		if r.Binary != "" {
			runtimeType = r.Binary
		}
		sandboxer := r.Sandboxer
		if sandboxer == "" {
			sandboxer = "shim"
		}
		e.runtimes += fmt.Sprintf("[%s]\n  runtime_type = %q\n  sandboxer = %q\n  disable_pause_image_pull = %t\n[%s.options]\n%s\n",
			table, runtimeType, sandboxer, !r.PullPauseImage, table, r.Options)
	}
}
