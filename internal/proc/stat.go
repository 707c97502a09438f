// Package proc names a process for good by its pid with its start time,
// read from /proc/PID/stat (a pid alone may be reused): a process so named
// can be killed without hitting another that took its pid.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// Stat is a process's entry in /proc/PID/stat, the fields the shim reads.
type Stat struct {
	// PPid is its parent's pid (field 4).
	PPid int
	// State is its state letter (field 3): 'Z' for a zombie.
	State byte
	// Start is its start time in clock ticks after boot (field 22), never 0.
	Start uint64
}

// ReadStat reads pid's stat. A start time of 0 is refused: a caller that
// compares start times would take every unreadable one for a match.
func ReadStat(pid int) (Stat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := strings.LastIndexByte(string(data), ')')
	var fields []string
	if i >= 0 {
		fields = strings.Fields(string(data[i+1:]))
	}
	if len(fields) < 20 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields, want at least 22: %w", pid, len(fields)+2, errdefs.ErrDataLoss)
	}
	ppid, perr := strconv.Atoi(fields[1])
	start, serr := strconv.ParseUint(fields[19], 10, 64)
	if perr != nil || serr != nil || start == 0 || len(fields[0]) != 1 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: state %q, parent %q, start time %q: %w", pid, fields[0], fields[1], fields[19], errdefs.ErrFailedPrecondition)
	}
	return Stat{PPid: ppid, State: fields[0][0], Start: start}, nil
}

// StartTime is pid's start time (see Stat.Start).
func StartTime(pid int) (uint64, error) {
	st, err := ReadStat(pid)
	return st.Start, err
}
