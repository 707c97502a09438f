package pod

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/containerd-shim-pause/containerd-shim-pause-v2/pod/pause"
)

// Registry holds a shim's pods by sandbox id, and indexes their containers:
// the lookups on every task call and event of a shared shim (MemberOf,
// Live) cost the same whether it serves one pod or a thousand.
//
// Its lock guards its own maps and counts alone, and is the innermost: a
// pod updates the index under its own lock (members join and leave, the pod
// shuts down), so nothing here takes a pod's lock while holding it.
type Registry struct {
	deps *Deps
	// max is how many pods the shim serves at once; 0 sets no limit.
	max int

	mu   sync.Mutex
	pods map[string]*Pod
	// members maps each container that joined a pod here to its pod.
	members map[string]*Pod
	// live counts the pods not shut down.
	live int
}

// NewRegistry returns the registry of a shim that serves up to max pods at
// once (0: no limit).
func NewRegistry(deps *Deps, max int) *Registry {
	if deps.ContainerdRoot != "" {
		// Where /run is noexec, the pause binary is run from beside
		// containerd's own data (see pause.SetFallbackDir).
		pause.SetFallbackDir(filepath.Join(deps.ContainerdRoot, "io.containerd.pause.v2"))
	}
	return &Registry{deps: deps, max: max, pods: map[string]*Pod{}, members: map[string]*Pod{}}
}

// Deps are what the registry gives its pods.
func (r *Registry) Deps() *Deps { return r.deps }

// Create checks a new pod's configuration and registers it, created. A
// sandbox id already held is AlreadyExists; a shim that serves as many pods
// as it may refuses another (FailedPrecondition).
func (r *Registry) Create(ctx context.Context, sp Spec) (*Pod, error) {
	if err := r.room(sp.ID); err != nil {
		return nil, err
	}
	// Outside the lock: reading the configuration opens files.
	p, err := newPod(r.deps, sp)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.roomLocked(sp.ID); err != nil {
		return nil, err
	}
	// The one pod lock taken under the registry's: no one else knows p
	// yet. Its abandon timer, if it fired at once, would wait for this
	// lock to count the pod out.
	p.reg = r
	p.arm(ctx)
	r.pods[sp.ID] = p
	r.live++
	return p, nil
}

// room tells whether pod id may be created here.
func (r *Registry) room(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.roomLocked(id)
}

func (r *Registry) roomLocked(id string) error {
	if _, ok := r.pods[id]; ok {
		return fmt.Errorf("sandbox %q: %w", id, errdefs.ErrAlreadyExists)
	}
	if r.max == 0 || len(r.pods) < r.max {
		return nil
	}
	held := make([]string, 0, len(r.pods))
	for id := range r.pods {
		held = append(held, id)
	}
	slices.Sort(held)
	return fmt.Errorf("this shim serves %d pods at most and holds %s, not %q: %w", r.max, strings.Join(held, ", "), id, errdefs.ErrFailedPrecondition)
}

// Remove forgets a pod that has shut down, so that a shim serving pod
// after pod does not keep them all; a pod not shut down is kept
// (FailedPrecondition).
func (r *Registry) Remove(id string) error {
	p, err := r.Get(id)
	if err != nil {
		return nil
	}
	if !p.shutDown() {
		return fmt.Errorf("sandbox %q is %s, not shut down: %w", id, p.State(), errdefs.ErrFailedPrecondition)
	}
	// Shut down, it takes no container any more: its members are final.
	left := p.memberIDs()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pods[id] == p {
		delete(r.pods, id)
	}
	for _, c := range left {
		if r.members[c] == p {
			delete(r.members, c)
		}
	}
	return nil
}

// Len is how many pods the shim holds.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pods)
}

// Only returns the shim's pod when it holds exactly one.
func (r *Registry) Only() *Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pods) != 1 {
		return nil
	}
	for _, p := range r.pods {
		return p
	}
	return nil
}

// Get returns the pod of sandbox id, or NotFound.
func (r *Registry) Get(id string) (*Pod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pods[id]
	if !ok {
		return nil, fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	return p, nil
}

// Pods lists the shim's pods.
func (r *Registry) Pods() []*Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	pods := make([]*Pod, 0, len(r.pods))
	for _, p := range r.pods {
		pods = append(pods, p)
	}
	return pods
}

// Live tells whether a pod here is not shut down: the shim must stay.
func (r *Registry) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live > 0
}

// MemberOf returns the pod container id belongs to, or nil.
func (r *Registry) MemberOf(id string) *Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[id]
}

// joined indexes container id as a member of p; p's lock is held.
func (r *Registry) joined(p *Pod, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.members[id] = p
}

// left drops container id, a member of p, from the index; p's lock is held.
func (r *Registry) left(p *Pod, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members[id] == p {
		delete(r.members, id)
	}
}

// shutDown counts p, which has just shut down, out of the live pods; p's
// lock is held. A pod shuts down once, and only while it is here.
func (r *Registry) shutDown(p *Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pods[p.id] == p {
		r.live--
	}
}
