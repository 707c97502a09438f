package pause

import (
	"os/exec"
	"runtime"
	"sync"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
)

// forkRequest asks the forker to start cmd.
type forkRequest struct {
	cmd   *exec.Cmd
	reply chan<- forkResult
}

type forkResult struct {
	exit <-chan int
	err  error
}

var (
	forkerOnce sync.Once
	forks      = make(chan forkRequest)
)

// fork starts cmd from the forker's thread; the channel returned receives
// its exit status once the reaper has reaped it.
func fork(cmd *exec.Cmd) (<-chan int, error) {
	forkerOnce.Do(func() {
		exits.subscribe()
		go forker()
	})
	reply := make(chan forkResult, 1)
	forks <- forkRequest{cmd: cmd, reply: reply}
	r := <-reply
	return r.exit, r.err
}

// forker forks every pause task from one OS thread that lives as long as
// the shim. The pause task's parent-death signal (SIGKILL, so that it dies
// with the shim) is bound by Linux to the thread that forked it, not to the
// process: forked from any other thread, it would die whenever the Go
// runtime ends that thread, as it does when a goroutine locked to a thread
// returns without unlocking it (containerd's mount code does so on purpose).
func forker() {
	runtime.LockOSThread() // never unlocked, and forker never returns
	for r := range forks {
		exit, err := exits.start(r.cmd)
		r.reply <- forkResult{exit: exit, err: err}
	}
}

// exits hands each pause task's exit to its waiter. The reaper hands every
// exit of the shim's children (containers, execs, runc) to every
// subscriber: a subscription per pause task would make each exit cost as
// many sends as the shim has pods. One subscription serves them all.
var exits = exitWaiters{waiting: map[int]chan int{}}

type exitWaiters struct {
	mu      sync.Mutex
	waiting map[int]chan int
}

// subscribe starts the one subscription and its dispatch.
func (w *exitWaiters) subscribe() {
	ec := reaper.Default.Subscribe()
	go func() {
		for e := range ec {
			w.mu.Lock()
			ch, ok := w.waiting[e.Pid]
			delete(w.waiting, e.Pid)
			w.mu.Unlock()
			if ok {
				ch <- e.Status
			}
		}
	}()
}

// start starts cmd and registers it, both under the lock: its exit, even
// an immediate one, is dispatched only after that.
func (w *exitWaiters) start(cmd *exec.Cmd) (<-chan int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan int, 1)
	w.waiting[cmd.Process.Pid] = ch
	return ch, nil
}
