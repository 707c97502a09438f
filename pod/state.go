package pod

import (
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
)

// state is what a pod may do in one of its states, a type each (see the
// diagram in pod.go). Every method runs under the pod's lock
// and returns at once: a transition sets p.state, and the work that waits
// runs between two transitions, without the lock. A method a state does not
// allow returns an errdefs error naming the sandbox and its state.
type state interface {
	fmt.Stringer
	// start begins StartSandbox: created → starting.
	start(p *Pod) error
	// started ends a start, ok if it made the pause task: starting → ready,
	// or back to created. A stop that began meanwhile (stopping) waited
	// for it, and now stops what it made.
	started(p *Pod, ok bool) error
	// starting is closed when the start under way ends; nil when none is.
	starting() <-chan struct{}
	// admit lets a container join the pod: only a ready pod takes one.
	admit(p *Pod) error
	// running tells whether the pod is ready: its pause task runs.
	running(p *Pod) bool
	// pauseExited: the pause task died on its own: ready → pause exited.
	pauseExited(p *Pod) error
	// stop begins StopSandbox or ShutdownSandbox: any state but shut down
	// → stopping. A shut-down pod answers errNothingToStop.
	stop(p *Pod) error
	// stopped ends StopSandbox: stopping → stopped.
	stopped(p *Pod) error
	// shutDown ends ShutdownSandbox (or abandon): stopping → shut down.
	shutDown(p *Pod) error
	// abandon removes a pod created but never started: created → stopping.
	abandon(p *Pod) error
}

// errNothingToStop is a shut-down pod's answer to a stop: there is nothing
// left of it, and stopping it again succeeds at once.
var errNothingToStop = errors.New("sandbox is shut down")

func errNotReady(p *Pod) error {
	return fmt.Errorf("sandbox %s is not ready: its pause task is not running: %w", p.id, errdefs.ErrFailedPrecondition)
}

// errState refuses what the pod's state does not allow.
func errState(p *Pod, s state, what string) error {
	return fmt.Errorf("sandbox %s is %s: %s: %w", p.id, s, what, errdefs.ErrFailedPrecondition)
}

// errTransition is a transition the state machine never makes: a bug.
func errTransition(p *Pod, s state, to string) error {
	return fmt.Errorf("sandbox %s: invalid transition from %s to %s: %w", p.id, s, to, errdefs.ErrFailedPrecondition)
}

// to makes the transition to next.
func to(p *Pod, next state) error {
	p.state = next
	return nil
}

// toShutDown makes the transition to shut down, which no transition
// leaves: the pod is gone for good, and its registry no longer counts it
// among the pods that keep the shim.
func toShutDown(p *Pod) error {
	p.state = &shutdownState{}
	p.gone.Store(true)
	if p.reg != nil {
		p.reg.shutDown(p)
	}
	return nil
}

// stopTimer stops the abandon timer, which matters only before a start.
func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// inactive holds what the states where nothing runs and no start is under
// way (created, pause exited, stopped, shut down) answer alike.
type inactive struct{}

func (inactive) started(p *Pod, _ bool) error { return errTransition(p, p.state, "started") }
func (inactive) starting() <-chan struct{}    { return nil }
func (inactive) admit(p *Pod) error           { return errNotReady(p) }
func (inactive) running(*Pod) bool            { return false }
func (inactive) abandon(p *Pod) error         { return errState(p, p.state, "not abandoned") }

// createdState: CreateSandbox made the pod; nothing runs. timer abandons it
// if no start comes within the StartTimeout.
type createdState struct {
	inactive
	timer *time.Timer
}

func (s *createdState) String() string { return "created" }

func (s *createdState) start(p *Pod) error {
	p.state = &startingState{done: make(chan struct{}), timer: s.timer}
	return nil
}

func (s *createdState) pauseExited(p *Pod) error { return errTransition(p, s, "pause exited") }

func (s *createdState) stop(p *Pod) error {
	stopTimer(s.timer)
	p.state = &stoppingState{}
	return nil
}

func (s *createdState) stopped(p *Pod) error  { return errTransition(p, s, "stopped") }
func (s *createdState) shutDown(p *Pod) error { return errTransition(p, s, "shut down") }

func (s *createdState) abandon(p *Pod) error { return to(p, &stoppingState{}) }

// startingState: StartSandbox runs the pause task, without the lock; done
// is closed when it ends.
type startingState struct {
	done  chan struct{}
	timer *time.Timer
}

func (s *startingState) String() string { return "starting" }

func (s *startingState) start(p *Pod) error {
	return fmt.Errorf("sandbox %q is already starting: %w", p.id, errdefs.ErrAlreadyExists)
}

func (s *startingState) started(p *Pod, ok bool) error {
	close(s.done)
	if !ok {
		p.state = &createdState{timer: s.timer} // the abandon timer still runs
		return nil
	}
	stopTimer(s.timer)
	p.state = &readyState{}
	return nil
}

func (s *startingState) starting() <-chan struct{} { return s.done }
func (s *startingState) admit(p *Pod) error        { return errNotReady(p) }
func (s *startingState) running(*Pod) bool         { return false }
func (s *startingState) pauseExited(p *Pod) error  { return errTransition(p, s, "pause exited") }

func (s *startingState) stop(p *Pod) error {
	stopTimer(s.timer)
	p.state = &stoppingState{startDone: s.done}
	return nil
}

func (s *startingState) stopped(p *Pod) error  { return errTransition(p, s, "stopped") }
func (s *startingState) shutDown(p *Pod) error { return errTransition(p, s, "shut down") }
func (s *startingState) abandon(p *Pod) error  { return errState(p, s, "not abandoned") }

// readyState: the pause task runs (p.pause); the pod takes containers. The
// pause task may have died a moment before watchPause says so: running
// asks it.
type readyState struct{}

func (s *readyState) String() string { return "ready" }

func (s *readyState) start(p *Pod) error {
	return fmt.Errorf("sandbox %q already started: %w", p.id, errdefs.ErrAlreadyExists)
}

func (s *readyState) started(p *Pod, _ bool) error { return errTransition(p, s, "started") }
func (s *readyState) starting() <-chan struct{}    { return nil }

func (s *readyState) admit(p *Pod) error {
	if !s.running(p) {
		return errNotReady(p)
	}
	return nil
}

func (s *readyState) running(p *Pod) bool { return !p.pause.Exited() }

func (s *readyState) pauseExited(p *Pod) error { return to(p, &pauseExitedState{}) }

func (s *readyState) stop(p *Pod) error { return to(p, &stoppingState{}) }

func (s *readyState) stopped(p *Pod) error  { return errTransition(p, s, "stopped") }
func (s *readyState) shutDown(p *Pod) error { return errTransition(p, s, "shut down") }
func (s *readyState) abandon(p *Pod) error  { return errState(p, s, "not abandoned") }

// pauseExitedState: the pause task died on its own (killed from the host):
// the pod is not ready, its containers are killed, and it waits for
// containerd to stop and shut it down.
type pauseExitedState struct{ inactive }

func (s *pauseExitedState) String() string { return "pause exited" }

func (s *pauseExitedState) start(p *Pod) error {
	return fmt.Errorf("sandbox %q already started: %w", p.id, errdefs.ErrAlreadyExists)
}

func (s *pauseExitedState) pauseExited(p *Pod) error { return errTransition(p, s, "pause exited") }

func (s *pauseExitedState) stop(p *Pod) error { return to(p, &stoppingState{}) }

func (s *pauseExitedState) stopped(p *Pod) error  { return errTransition(p, s, "stopped") }
func (s *pauseExitedState) shutDown(p *Pod) error { return errTransition(p, s, "shut down") }

// stoppingState: StopSandbox or ShutdownSandbox (or abandon) has begun; the
// pod takes no container and no start. startDone, when not nil, is the start
// under way when the stop began: the stop waits for it, and it publishes
// its pause task for the stop to end.
type stoppingState struct{ startDone chan struct{} }

func (s *stoppingState) String() string { return "stopping" }

func (s *stoppingState) start(p *Pod) error {
	return errState(p, s, "it does not start")
}

func (s *stoppingState) started(p *Pod, _ bool) error {
	if s.startDone == nil {
		return errTransition(p, s, "started")
	}
	close(s.startDone)
	s.startDone = nil
	return nil
}

func (s *stoppingState) starting() <-chan struct{} { return s.startDone }

func (s *stoppingState) admit(p *Pod) error {
	return errState(p, s, "it takes no new container")
}

func (s *stoppingState) running(*Pod) bool { return false }

// pauseExited: the stop ended it, or it died as the stop began.
func (s *stoppingState) pauseExited(*Pod) error { return nil }

// stop: another stop (a ShutdownSandbox during a StopSandbox) runs too,
// each one idempotent.
func (s *stoppingState) stop(*Pod) error { return nil }

func (s *stoppingState) stopped(p *Pod) error { return to(p, &stoppedState{}) }

func (s *stoppingState) shutDown(p *Pod) error { return toShutDown(p) }

func (s *stoppingState) abandon(p *Pod) error { return errState(p, s, "not abandoned") }

// stoppedState: StopSandbox ended; the pod's containers and pause task
// have exited. ShutdownSandbox removes it.
type stoppedState struct{ inactive }

func (s *stoppedState) String() string { return "stopped" }

func (s *stoppedState) start(p *Pod) error {
	return errState(p, s, "it does not start again")
}

func (s *stoppedState) pauseExited(*Pod) error { return nil }

func (s *stoppedState) stop(p *Pod) error { return to(p, &stoppingState{}) }

// stopped: a stop that ran beside another one ended second.
func (s *stoppedState) stopped(*Pod) error { return nil }

// shutDown: a ShutdownSandbox ran beside a StopSandbox that ended first.
func (s *stoppedState) shutDown(p *Pod) error { return toShutDown(p) }

// shutdownState: the pod is removed; the shim exits once no container is
// left. It stays in the registry so that calls about it get answers.
type shutdownState struct{ inactive }

func (s *shutdownState) String() string { return "shut down" }

func (s *shutdownState) start(p *Pod) error {
	return errState(p, s, "it does not start again")
}

func (s *shutdownState) pauseExited(*Pod) error { return nil }
func (s *shutdownState) stop(*Pod) error        { return errNothingToStop }

// stopped, shutDown: a stop or a shutdown that ran beside the one that
// ended first.
func (s *shutdownState) stopped(*Pod) error  { return nil }
func (s *shutdownState) shutDown(*Pod) error { return nil }
