package task

import (
	"encoding/json"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
)

// ShimUsage is what the shim process itself holds, in a pod's verbose
// status ("shim"): an operator (and the dense soak) sees whether a shim
// that serves pod after pod keeps growing.
type ShimUsage struct {
	Pid        int    `json:"pid"`
	Pods       int    `json:"pods"`
	Goroutines int    `json:"goroutines"`
	Threads    int    `json:"threads"`
	FDs        int    `json:"fds"`
	HeapLive   uint64 `json:"heapLiveBytes"` // live heap after a collection
	Shared     bool   `json:"shared"`
}

// usage describes the shim. It collects garbage first, so that the live
// heap is exact: it is asked for only with a verbose status (crictl
// inspectp), and a shim's heap is a few MB (under a millisecond).
func (s *Service) usage() string {
	runtime.GC()
	u := ShimUsage{Pid: os.Getpid(), Pods: s.pods.Len(), Goroutines: runtime.NumGoroutine(), Shared: s.shared != nil}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		u.FDs = len(fds)
	}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				u.Threads, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 {
		u.HeapLive = sample[0].Value.Uint64()
	}
	data, _ := json.Marshal(u)
	return string(data)
}
