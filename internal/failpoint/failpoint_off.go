//go:build !failpoints

package failpoint

// Inject does nothing in the release build: the call is compiled away.
func Inject(string) {}

// Enabled tells whether this build has failpoints.
const Enabled = false
