package pod

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/options"
	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// The registry's calls on a shared shim's hot paths (a container's Kill,
// Delete and exit events, a task Shutdown, a container's create), in a
// registry that holds 10, 100 and 1000 ready pods of one container each:
// their cost per call must not grow with the pods.

var benchSizes = []int{10, 100, 1000}

// readyRegistry holds n pods, each made ready without a pause task of its
// own (a Process that has not exited) and with one member, "c<i>".
func readyRegistry(b *testing.B, n int) *Registry {
	b.Helper()
	opts := options.Default()
	r := NewRegistry(&Deps{Options: opts, Tasks: noTasks{}}, 0)
	dir := b.TempDir()
	spec := criContainerSpec(b, dir)
	ctx := podCtx()
	for i := range n {
		sp := criPodSpec(b, r, fmt.Sprintf("pod%d", i))
		p, err := r.Create(ctx, sp)
		if err != nil {
			b.Fatal(err)
		}
		markReady(p)
		if _, err := p.Admit(ctx, fmt.Sprintf("c%d", i), spec); err != nil {
			b.Fatal(err)
		}
		p.Created(fmt.Sprintf("c%d", i), true)
	}
	b.Cleanup(func() {
		for _, p := range r.Pods() {
			p.mu.Lock()
			if s, ok := p.state.(*createdState); ok {
				stopTimer(s.timer)
			}
			p.mu.Unlock()
		}
	})
	return r
}

// markReady moves a created pod to ready as a start would, with a pause
// task that never exits.
func markReady(p *Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.state.(*createdState); ok {
		stopTimer(s.timer)
	}
	p.pause = &pause.Process{Pid: os.Getpid()}
	p.state = &readyState{}
}

// criContainerSpec writes the spec of a CRI container, which joinPod reads
// and leaves as it is.
func criContainerSpec(b testing.TB, dir string) string {
	spec := ctrSpec()
	spec.Annotations = map[string]string{criContainerType: "container"}
	spec.Linux.CgroupsPath = "/kubepods/c"
	data, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchPods(b *testing.B, run func(b *testing.B, r *Registry, n int)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			r := readyRegistry(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			run(b, r, n)
		})
	}
}

// BenchmarkMemberOf looks up a member of the last pod (Kill, Delete, a
// member's exit event) and a container of no pod here (any plain task).
func BenchmarkMemberOf(b *testing.B) {
	benchPods(b, func(b *testing.B, r *Registry, n int) {
		member := fmt.Sprintf("c%d", n-1)
		for i := 0; b.Loop(); i++ {
			id := member
			if i%2 == 1 {
				id = "no-such-container"
			}
			if p := r.MemberOf(id); (p != nil) != (id == member) {
				b.Fatalf("MemberOf(%s) = %v", id, p)
			}
		}
	})
}

// BenchmarkLive asks whether the shim must stay (every task Shutdown).
func BenchmarkLive(b *testing.B) {
	benchPods(b, func(b *testing.B, r *Registry, _ int) {
		for b.Loop() {
			if !r.Live() {
				b.Fatal("no live pod")
			}
		}
	})
}

// BenchmarkAdmit admits a container to one pod, ends its create and
// deletes it, as a container's Create and Delete do.
func BenchmarkAdmit(b *testing.B) {
	benchPods(b, func(b *testing.B, r *Registry, n int) {
		ctx := podCtx()
		spec := criContainerSpec(b, b.TempDir())
		p, err := r.Get(fmt.Sprintf("pod%d", n/2))
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := p.Admit(ctx, "new", spec); err != nil {
				b.Fatal(err)
			}
			p.Created("new", true)
			if r.MemberOf("new") != p {
				b.Fatal("admitted container is no member")
			}
			r.MemberOf("new").Forget("new")
		}
	})
}
