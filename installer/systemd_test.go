package installer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestAwaitUnit: a unit systemd is starting or reloading is containerd's
// unit (the installer waits for it to be active, within the deadline);
// only a unit not found or inactive means containerd runs some other way;
// a failed unit is an error of its own.
func TestAwaitUnit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		states  []unitState // what systemd answers, in turn; the last repeats
		want    error       // nil, ErrNotSystemd, or errUnitFailed
		timeout bool        // the deadline passes first
		// askFails: once the deadline passed, asking systemd fails with
		// the context's error, as a D-Bus call does.
		askFails bool
	}{
		{name: "active", states: []unitState{{"loaded", "active"}}},
		{name: "activating", states: []unitState{{"loaded", "activating"}, {"loaded", "activating"}, {"loaded", "active"}}},
		{name: "reloading", states: []unitState{{"loaded", "reloading"}, {"loaded", "active"}}},
		{name: "inactive", states: []unitState{{"loaded", "inactive"}}, want: ErrNotSystemd},
		{name: "not found", states: []unitState{{"not-found", "inactive"}}, want: ErrNotSystemd},
		{name: "failed", states: []unitState{{"loaded", "failed"}}, want: errUnitFailed},
		{name: "activating then failed", states: []unitState{{"loaded", "activating"}, {"loaded", "failed"}}, want: errUnitFailed},
		{name: "activating for ever", states: []unitState{{"loaded", "activating"}}, timeout: true},
		{name: "asked as the deadline passes", states: []unitState{{"loaded", "activating"}}, timeout: true, askFails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			asked := 0
			state := func(ctx context.Context) (unitState, error) {
				if tc.askFails && asked > 0 {
					<-ctx.Done()
					return unitState{}, ctx.Err()
				}
				s := tc.states[min(asked, len(tc.states)-1)]
				asked++
				return s, nil
			}
			err := awaitUnit(ctx, "containerd.service", state, time.Millisecond)
			switch {
			case tc.timeout && tc.askFails:
				if err == nil || errors.Is(err, ErrNotSystemd) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("got %v, want the deadline's error, not the restart-needed path", err)
				}
			case tc.timeout:
				if err == nil || errors.Is(err, ErrNotSystemd) || !strings.Contains(err.Error(), "still activating") {
					t.Errorf("got %v, want an error saying the unit is still activating", err)
				}
			case tc.want == nil && err != nil:
				t.Errorf("got %v, want the unit active", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if tc.want == errUnitFailed && (errors.Is(err, ErrNotSystemd) || !strings.Contains(err.Error(), "containerd.service")) {
				t.Errorf("a failed unit: %v, want an error naming it, not the restart-needed path", err)
			}
		})
	}
}
