package cgroups

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MemoryEvents is the memory.events file of a cgroup, "" on cgroup v1
// (whose counters do not add up a cgroup's descendants).
func MemoryEvents(cgroupPath string) string {
	if !Unified() {
		return ""
	}
	return filepath.Join("/sys/fs/cgroup", cgroupPath, "memory.events")
}

// ReadOOMKills reads the oom_kill line of a memory.events file.
func ReadOOMKills(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "oom_kill "); ok {
			return strconv.ParseUint(v, 10, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no oom_kill line", path)
}
