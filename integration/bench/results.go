package main

// result is one handler's figures.
type result struct {
	SandboxReadyMs     quantiles `json:"sandbox_ready_ms"`
	SandboxReadyHostMs quantiles `json:"sandbox_ready_hostnet_ms"`
	PodReadyMs         quantiles `json:"pod_ready_ms"`
	TeardownMs         quantiles `json:"teardown_ms"`
	SandboxReadyAt10Ms quantiles `json:"sandbox_ready_at_10_ms"`
	SandboxReadyAtNMs  quantiles `json:"sandbox_ready_at_n_ms"`
	// P99Growth is p99 sandbox ready with N live pods over p99 with 10
	// (0 when the run has no more than 10 pods).
	P99Growth float64 `json:"p99_growth_10_to_n"`
	// Parts of sandbox_ready read from containerd's log (logtimes.go), over
	// the pods whose lines were found (Parts.Pods of them).
	Parts parts `json:"sandbox_ready_parts"`
	// Memory with the N pods live: PSS per pod counts each shim process
	// once, however many pods it serves (memory.go).
	PSSPerPodKB    float64 `json:"pss_per_pod_kb"`
	PausePSSKB     float64 `json:"pause_pss_kb"`
	ThreadsPerShim float64 `json:"threads_per_shim"`
	Shims          int     `json:"shims"`
	PodsPerS       float64 `json:"pods_per_s"`
}

// parts split sandbox_ready, from containerd's own log.
type parts struct {
	// CNIMs is CRI's CNI setup ("begin cni setup" to "cni result").
	CNIMs quantiles `json:"cni_ms"`
	// AfterCNIMs is everything after the network up to RunPodSandbox's
	// answer: CRI's records, the shim's bootstrap and its sandbox calls (or,
	// for runc, the pause container).
	AfterCNIMs quantiles `json:"after_cni_ms"`
	// ShimCallsMs is containerd connecting to the shim up to the shim's
	// "sandbox started": CreateSandbox and StartSandbox as containerd
	// waits for them, the pause task's start included (this shim only).
	ShimCallsMs quantiles `json:"shim_calls_ms"`
	Pods        int       `json:"pods"`
}

type quantiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// floorResult is the CNI floor (floor.go): what a pod's network costs
// alone, in the same run.
type floorResult struct {
	SetupMs    quantiles `json:"setup_ms"`    // netns + CNI ADD: the floor of sandbox_ready
	TeardownMs quantiles `json:"teardown_ms"` // CNI DEL + netns removal: the floor of teardown
	Cycles     int       `json:"cycles"`
}

type results struct {
	Date     string            `json:"date"`
	Machine  string            `json:"machine"`
	Versions map[string]string `json:"versions"`
	Pods     int               `json:"pods"`
	// HandlerOrder lists the handlers as reports show them; runc first,
	// the reference of every ratio.
	HandlerOrder []string          `json:"handler_order"`
	Handlers     map[string]result `json:"handlers"`
	Floor        floorResult       `json:"floor"`
	// Ratio is, per handler other than runc, each measure over runc's.
	Ratio map[string]map[string]float64 `json:"ratio"`
	// Targets are the goals, checked.
	Targets []verdict `json:"targets"`
	// Samples are the raw latencies (ms), per handler and metric, for the
	// charts; FloorSamples the CNI floor's, keyed by the metric they are
	// the floor of (sandbox_ready, teardown).
	Samples      map[string]map[string][]float64 `json:"samples"`
	FloorSamples map[string][]float64            `json:"floor_samples"`
	// Memory is PSS per pod (kB) against live pods, per handler.
	Memory map[string][][2]float64 `json:"memory_by_pods"`
	// Exec is the shim binary's cost per invocation.
	Exec execResult `json:"exec"`
}
