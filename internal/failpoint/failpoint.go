// Package failpoint marks the steps of the shim where a crash test kills
// the process: each step calls Inject with its name.
package failpoint

// The steps: sandbox create, start, stop and shutdown, a container's
// admission, `shim start` (and its pool) and `shim delete`.
//
// In the release build (no build tag) Inject is an empty function the
// compiler removes. Built with `-tags failpoints` (make build-failpoints),
// each name is a failpoint of go.etcd.io/gofail's runtime: its terms come
// from GOFAIL_FAILPOINTS, as gofail reads them, or from the file FileEnv
// names, read again at every Inject. The file lets one containerd (whose
// environment every shim process inherits, and which it cannot change once
// started) serve a whole sweep: the test arms one point at a time by
// rewriting the file. A term returning the string "kill" makes Inject
// SIGKILL its own process; "kill:PATH" does so only if it creates PATH now
// (O_EXCL), so that a point is crashed once per arming although containerd
// restarts shims, runs `shim delete` and retries, and passes there again.

// FileEnv names the file of failpoint terms, in GOFAIL_FAILPOINTS' form
// (name=terms[;name=terms]...), of a failpoint build.
const FileEnv = "PAUSE_FAILPOINTS_FILE"

// The failpoints, named after where they stand.
const (
	// CreateSandbox: before the pod is made, and once it is registered.
	SandboxCreateBegin = "sandboxCreateBegin"
	SandboxCreateEnd   = "sandboxCreateEnd"
	// StartSandbox, around the pod's start.
	SandboxStartBegin = "sandboxStartBegin"
	SandboxStartEnd   = "sandboxStartEnd"
	// The pod's start, step by step: after its files (and /dev/shm), its
	// own cgroup (a pod without a CRI cgroup parent), its pause task,
	// its state file; then, off the start path, once the pause task is in
	// its cgroup or its systemd scope.
	PodStartAfterFiles  = "podStartAfterFiles"
	PodStartAfterCgroup = "podStartAfterCgroup"
	PodStartAfterPause  = "podStartAfterPause"
	PodStartAfterState  = "podStartAfterState"
	PodPauseAfterCgroup = "podPauseAfterCgroup"
	PodPauseAfterScope  = "podPauseAfterScope"
	// A container's admission: its spec rewritten for the pod; then
	// admitted, before runc creates it; then created, before the pod
	// counts it.
	PodAdmitAfterSpec    = "podAdmitAfterSpec"
	TaskCreateAfterAdmit = "taskCreateAfterAdmit"
	TaskCreateAfterRunc  = "taskCreateAfterRunc"
	// StopSandbox, and the pod's stop once its containers are stopped.
	SandboxStopBegin    = "sandboxStopBegin"
	PodStopAfterMembers = "podStopAfterMembers"
	SandboxStopEnd      = "sandboxStopEnd"
	// ShutdownSandbox, and the pod's shutdown: its containers deleted,
	// its pause task killed, the recorded cgroups and files removed (in
	// the shim, and again by `shim delete`).
	SandboxShutdownBegin      = "sandboxShutdownBegin"
	PodShutdownAfterMembers   = "podShutdownAfterMembers"
	PodCleanupAfterPause      = "podCleanupAfterPause"
	RecordCleanupAfterKill    = "recordCleanupAfterKill"
	RecordCleanupAfterCgroups = "recordCleanupAfterCgroups"
	RecordCleanupAfterFiles   = "recordCleanupAfterFiles"
	SandboxShutdownEnd        = "sandboxShutdownEnd"
	// A shared shim's retirement of a pod: its record released, the shim
	// retired from its pool.
	PoolRetireAfterRelease = "poolRetireAfterRelease"
	PoolRetireAfterRetire  = "poolRetireAfterRetire"
	// `shim start`: the server spawned (its socket made).
	ShimStartAfterSpawn = "shimStartAfterSpawn"
	// `shim start` on a shared shim's pool: the pool locked, a new shim's
	// record written, the bundle's pool file written, the pod assigned, the
	// pod's socket link made (the end).
	PoolStartAfterLock       = "poolStartAfterLock"
	PoolStartAfterShimRecord = "poolStartAfterShimRecord"
	PoolStartAfterBundleFile = "poolStartAfterBundleFile"
	PoolStartAfterAssign     = "poolStartAfterAssign"
	PoolStartEnd             = "poolStartEnd"
	// `shim delete`: before anything, after leaving the pool, after the
	// pod's cleanup.
	ShimDeleteBegin     = "shimDeleteBegin"
	ShimDeleteAfterPool = "shimDeleteAfterPool"
	ShimDeleteEnd       = "shimDeleteEnd"
)

// All names every failpoint, for the build that registers them and the
// sweep that crashes each.
var All = []string{
	SandboxCreateBegin, SandboxCreateEnd, SandboxStartBegin, SandboxStartEnd,
	PodStartAfterFiles, PodStartAfterCgroup, PodStartAfterPause, PodStartAfterState,
	PodPauseAfterCgroup, PodPauseAfterScope,
	PodAdmitAfterSpec, TaskCreateAfterAdmit, TaskCreateAfterRunc,
	SandboxStopBegin, PodStopAfterMembers, SandboxStopEnd,
	SandboxShutdownBegin, PodShutdownAfterMembers, PodCleanupAfterPause,
	RecordCleanupAfterKill, RecordCleanupAfterCgroups, RecordCleanupAfterFiles, SandboxShutdownEnd,
	PoolRetireAfterRelease, PoolRetireAfterRetire,
	ShimStartAfterSpawn,
	PoolStartAfterLock, PoolStartAfterShimRecord, PoolStartAfterBundleFile, PoolStartAfterAssign, PoolStartEnd,
	ShimDeleteBegin, ShimDeleteAfterPool, ShimDeleteEnd,
}
