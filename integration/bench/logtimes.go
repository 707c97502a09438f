package main

import (
	"bufio"
	"io"
	"regexp"
	"time"
)

// podTimes are the moments of one RunPodSandbox in containerd's log (at
// level debug; the shims' own lines are relayed into it with their own
// timestamps, from the same clock).
type podTimes struct {
	cniBegin time.Time // CRI: "begin cni setup" (after the netns is made)
	cniEnd   time.Time // CRI: "cni result"
	connect  time.Time // containerd: "connecting to shim <id>" (bootstrap done)
	started  time.Time // this shim: "sandbox started" (end of StartSandbox)
	returned time.Time // CRI: "RunPodSandbox … returns sandbox id"
}

// spans are the parts of a sandbox's start read from podTimes, in ms; a
// part whose lines are missing is absent (ok false).
type spans struct {
	cni, afterCNI, shimCalls       float64
	cniOK, afterCNIOK, shimCallsOK bool
}

func (t *podTimes) spans() spans {
	var s spans
	ms := func(a, b time.Time) (float64, bool) {
		if a.IsZero() || b.IsZero() || b.Before(a) {
			return 0, false
		}
		return float64(b.Sub(a).Microseconds()) / 1000, true
	}
	s.cni, s.cniOK = ms(t.cniBegin, t.cniEnd)
	s.afterCNI, s.afterCNIOK = ms(t.cniEnd, t.returned)
	s.shimCalls, s.shimCallsOK = ms(t.connect, t.started)
	return s
}

var (
	logTime      = regexp.MustCompile(`^time="([^"]+)"`)
	logCNIBegin  = regexp.MustCompile(`msg="begin cni setup".* podsandboxid=([0-9a-f]{64})`)
	logCNIResult = regexp.MustCompile(`msg="cni result: .* podsandboxid=([0-9a-f]{64})`)
	logConnect   = regexp.MustCompile(`msg="connecting to shim ([0-9a-f]{64})"`)
	logStarted   = regexp.MustCompile(`msg="sandbox started".* sandbox=([0-9a-f]{64})`)
	logReturned  = regexp.MustCompile(`msg="RunPodSandbox for .* returns sandbox id \\"([0-9a-f]{64})\\""`)
)

// parseLog collects podTimes by sandbox id; the first line of each kind
// counts (runc's app container connects again under its own id).
func parseLog(r io.Reader) (map[string]*podTimes, error) {
	out := map[string]*podTimes{}
	at := func(id string) *podTimes {
		if out[id] == nil {
			out[id] = &podTimes{}
		}
		return out[id]
	}
	set := func(t *time.Time, v time.Time) {
		if t.IsZero() {
			*t = v
		}
	}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for s.Scan() {
		line := s.Text()
		m := logTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		if m := logCNIBegin.FindStringSubmatch(line); m != nil {
			set(&at(m[1]).cniBegin, t)
		} else if m := logCNIResult.FindStringSubmatch(line); m != nil {
			set(&at(m[1]).cniEnd, t)
		} else if m := logConnect.FindStringSubmatch(line); m != nil {
			set(&at(m[1]).connect, t)
		} else if m := logStarted.FindStringSubmatch(line); m != nil {
			set(&at(m[1]).started, t)
		} else if m := logReturned.FindStringSubmatch(line); m != nil {
			set(&at(m[1]).returned, t)
		}
	}
	return out, s.Err()
}
